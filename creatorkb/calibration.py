"""How often a local accept was good enough, measured by its shadow reviews, and the accept
threshold that would reach the owner's target precision.

A shadow review answers an accepted video in the cloud too; the local record was good enough
when the two agree (`shadow_agreement`). Precision is the share of reviewed accepts that were
good enough, shown with its 95% Wilson interval, since a few samples say little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from creatorkb.ledger import LedgerReader
from creatorkb.routing import RoutingPolicy

MIN_SAMPLES = 10  # fewer reviews above a threshold say too little to recommend it
Z_95 = 1.959964


def wilson(good: int, samples: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a share `good`/`samples` (None without samples)."""
    if samples == 0:
        return None
    share = good / samples
    centre = share + z * z / (2 * samples)
    spread = z * math.sqrt(share * (1 - share) / samples + z * z / (4 * samples * samples))
    denominator = 1 + z * z / samples
    return (max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator))


@dataclass(frozen=True)
class Precision:
    """Of `samples` reviewed accepts, `good` were good enough."""

    good: int
    samples: int

    @property
    def share(self) -> float | None:
        return self.good / self.samples if self.samples else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.good, self.samples)

    def describe(self) -> str:
        if not self.samples:
            return "n/a (no shadow samples)"
        low, high = self.interval or (0.0, 0.0)
        return (
            f"{self.share:.1%} (95% interval {low:.0%}-{high:.0%}, {self.samples:,} shadow samples)"
        )


@dataclass(frozen=True)
class Calibration:
    """The current threshold's precision and the threshold that reaches the target."""

    threshold: float
    target: float
    current: Precision
    recommended: float | None  # None: no threshold reaches the target on enough samples
    at_recommended: Precision | None

    def describe(self) -> str:
        if self.recommended is None or self.at_recommended is None:
            return (
                f"no accept threshold reaches {self.target:.0%} precision on at least "
                f"{MIN_SAMPLES} shadow samples yet (current {self.threshold:.2f}: "
                f"{self.current.describe()})"
            )
        return (
            f"accept at confidence >= {self.recommended:.2f} for {self.target:.0%} precision: "
            f"{self.at_recommended.describe()}; current {self.threshold:.2f}: "
            f"{self.current.describe()}"
        )


_REVIEWS = """
SELECT d.confidence, s.local_good_enough
FROM shadow_reviews s JOIN routing_decisions d USING (decision_id)
WHERE d.confidence IS NOT NULL AND (? IS NULL OR s.ts >= ?) AND (? IS NULL OR s.ts < ?)
"""


def calibrate(
    ledger: LedgerReader,
    policy: RoutingPolicy,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Calibration:
    """From the shadow reviews (within [start, end) when given): the smallest threshold whose
    reviewed accepts reach `policy.target_precision` on at least MIN_SAMPLES of them."""
    rows = ledger.rows(_REVIEWS, [start, start, end, end])
    reviews = sorted((float(r["confidence"]), bool(r["local_good_enough"])) for r in rows)
    current = _precision(reviews, policy.accept_threshold)
    recommended, at = None, None
    for threshold in sorted({confidence for confidence, _ in reviews}):
        precision = _precision(reviews, threshold)
        if precision.samples < MIN_SAMPLES:
            break
        if (precision.share or 0) >= policy.target_precision:
            recommended, at = threshold, precision
            break
    return Calibration(policy.accept_threshold, policy.target_precision, current, recommended, at)


def _precision(reviews: list[tuple[float, bool]], threshold: float) -> Precision:
    above = [good for confidence, good in reviews if confidence >= threshold]
    return Precision(sum(above), len(above))
