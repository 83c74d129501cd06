"""Local-accept precision from shadow reviews, with its interval, and `kb calibrate`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from creatorkb.calibration import calibrate, wilson
from creatorkb.ledger import Ledger, Write
from creatorkb.routing import RoutingPolicy
from tests.conftest import run_kb


def test_the_wilson_interval_matches_a_hand_computation() -> None:
    low, high = wilson(1, 2) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.0945, 0.9055)
    assert wilson(0, 0) is None
    low, high = wilson(20, 20) or (0, 0)
    assert high == 1.0 and round(low, 3) == 0.839


def reviews(ledger: Ledger, samples: list[tuple[float, bool]]) -> None:
    now = datetime.now(UTC)
    decisions, rows = [], []
    for index, (confidence, good) in enumerate(samples):
        decision = {
            "decision_id": f"d{index}",
            "ts": now,
            "flow_run_id": None,
            "video_id": f"v{index}",
            "priority": "medium",
            "route": "local_accept",
            "reason": "test",
            "confidence": confidence,
            "threshold": 0.7,
            "components": None,
            "policy_version": "default@test",
        }
        decisions.append(decision)
        rows.append(
            {
                "video_id": f"v{index}",
                "decision_id": f"d{index}",
                "call_id": f"c{index}",
                "agreement": 0.9 if good else 0.2,
                "local_good_enough": good,
                "ts": now,
            }
        )
    ledger.write(
        Write.insert_new("routing_decisions", ("decision_id",), decisions),
        Write.insert_new("shadow_reviews", ("video_id",), rows),
    )


# Accepts at 0.70-0.79 are right half the time, at 0.80 and above nine times in ten.
SAMPLES = [(0.70 + i / 100, i % 2 == 0) for i in range(10)] + [
    (0.80 + i / 100, i != 3) for i in range(15)
]


def test_calibration_finds_the_threshold_that_reaches_the_target(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    reviews(ledger, SAMPLES)

    found = calibrate(ledger, RoutingPolicy())

    assert (found.current.good, found.current.samples) == (19, 25)
    assert found.recommended == 0.8
    assert found.at_recommended is not None and found.at_recommended.share == 14 / 15
    strict = calibrate(ledger, RoutingPolicy(target_precision=1.0))
    assert strict.recommended == pytest.approx(0.84)  # above the one miss: 11 of 11


def test_too_few_reviews_recommend_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    reviews(ledger, SAMPLES[-5:])
    found = calibrate(ledger, RoutingPolicy())
    assert found.recommended is None
    assert "no accept threshold reaches 90% precision on at least 10" in found.describe()


def test_kb_calibrate_prints_the_recommendation(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_kb("init")
    reviews(Ledger(kb_env / "data" / "kb.duckdb"), SAMPLES)

    printed = run_kb("calibrate").stdout

    assert "accept at confidence >= 0.80 for 90% precision: 93.3%" in printed
    assert "15 shadow samples" in printed and "current 0.70: 76.0%" in printed
    assert "KB_POLICY_ACCEPT_THRESHOLD=0.8" in printed  # how to apply it
