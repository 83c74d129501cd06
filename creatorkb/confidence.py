"""Whether a draft is good enough to keep: confidence from evidence, not the model's word.

The composite combines four components, each stored with the routing decision:

- schema_valid: the draft parsed and validated against the Insight schema (else score 0);
- grounding: the share of its quotes and tool names found verbatim in the transcript;
- coverage: the share of the transcript's parts read whole (a silently truncated part or an
  unanswered one lowers it);
- self_reported: the model's own confidence.

score = w_grounding * grounding + w_coverage * coverage + w_self * self_reported.
A draft is accepted only if its score reaches the threshold AND coverage is complete AND
grounding reaches the policy's minimum, so a transcript that talks the model into claiming
full confidence cannot buy a local accept without evidence actually found in the transcript.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from creatorkb.insight import Insight

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class ConfidenceWeights:
    grounding: float = 0.5
    coverage: float = 0.25
    self_reported: float = 0.25


@dataclass(frozen=True)
class Confidence:
    """The components, the composite score, and why the draft falls short (if it does)."""

    schema_valid: bool
    grounding: float
    coverage: float
    self_reported: float
    score: float
    accepted: bool
    reasons: list[str] = field(default_factory=list)

    def components(self) -> dict[str, float | bool]:
        return {
            "schema_valid": self.schema_valid,
            "grounding": round(self.grounding, 4),
            "coverage": round(self.coverage, 4),
            "self_reported": round(self.self_reported, 4),
        }


def normalize(text: str) -> str:
    """Lower case, accents kept, punctuation and spacing collapsed: for verbatim matching."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", folded).strip()


def grounding(insight: Insight, transcript: str) -> tuple[float, list[str]]:
    """Share of quotes and tool names found in the transcript, and the ones that were not."""
    haystack = f" {normalize(transcript)} "
    claims = [("quote", quote) for quote in insight.evidence_quotes]
    claims += [("quote", tool.quote) for tool in insight.tools]
    claims += [("tool", tool.name) for tool in insight.tools]
    missing = []
    found = 0
    for kind, text in claims:
        needle = normalize(text)
        if needle and f" {needle} " in haystack:
            found += 1
        else:
            missing.append(f"{kind} {text[:80]!r}")
    if not claims:
        return 0.0, ["no quotes or tools to check against the transcript"]
    return found / len(claims), missing


def assess(
    insight: Insight | None,
    transcript: str,
    *,
    coverage: float,
    coverage_problems: list[str],
    threshold: float,
    min_grounding: float,
    weights: ConfidenceWeights = ConfidenceWeights(),
) -> Confidence:
    """Score a draft against its transcript."""
    if insight is None:
        reasons = ["the draft is not valid JSON for the insight schema", *coverage_problems]
        return Confidence(False, 0.0, coverage, 0.0, 0.0, False, reasons)
    share, missing = grounding(insight, transcript)
    self_reported = min(max(insight.confidence, 0.0), 1.0)
    score = (
        weights.grounding * share
        + weights.coverage * coverage
        + weights.self_reported * self_reported
    )
    reasons = list(coverage_problems)
    if share < min_grounding:
        shown = "; ".join(missing[:5])
        reasons.append(
            f"grounding {share:.2f} is below {min_grounding:.2f}: not found in the transcript: "
            f"{shown}"
        )
    if score < threshold:
        reasons.append(f"confidence {score:.2f} is below the threshold {threshold:.2f}")
    accepted = not reasons
    return Confidence(True, share, coverage, self_reported, score, accepted, reasons)
