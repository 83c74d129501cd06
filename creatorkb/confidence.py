"""Whether a draft is good enough to keep: confidence from evidence, not the model's word.

Four components are stored with each routing decision:

- schema_valid: the draft parsed and validated against the Insight schema;
- grounding: the share of its claims found in the transcript: each evidence quote and tool
  quote must be a passage (at least `min_quote_words` words, found verbatim, case, spacing
  and punctuation ignored), a tool's quote must name the tool and say more, and each tool
  name must occur;
- coverage: the share of the local reads that saw their whole prompt (Ollama silently cuts
  what exceeds its context window);
- self_reported: the model's own confidence.

Every gate is necessary, none makes up for another: the schema is valid, the transcript was
read whole, the record says something, grounding reaches `min_grounding`, and the
confidence, the smaller of the model's own word and the grounding, reaches the accept
threshold. So evidence can veto a confident draft but never rescue an unsure one, and a
transcript that talks the model into claiming full confidence buys nothing without evidence.
The decision's reason lists every gate that failed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from creatorkb.insight import Insight

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
MIN_SUMMARY_WORDS = 5  # a summary shorter than this says nothing


@dataclass(frozen=True)
class Confidence:
    """The components, the confidence, and every gate the draft failed (if any)."""

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


def grounding(
    insight: Insight, transcript: str, min_quote_words: int = 4
) -> tuple[float, list[str]]:
    """Share of the record's claims found in the transcript, and why the others were not."""
    haystack = f" {normalize(transcript)} "

    def found(text: str) -> bool:
        needle = normalize(text)
        return bool(needle) and f" {needle} " in haystack

    problems: list[str] = []

    def passage(text: str, what: str) -> bool:
        words = len(normalize(text).split())
        if words < min_quote_words:
            problems.append(f"{what} {text[:80]!r} is not a passage ({words} words)")
            return False
        if not found(text):
            problems.append(f"{what} {text[:80]!r} is not in the transcript")
            return False
        return True

    checks = [passage(quote, "quote") for quote in insight.evidence_quotes]
    for tool in insight.tools:
        named = f" {normalize(tool.name)} " in f" {normalize(tool.quote)} "
        if not named:
            problems.append(f"the quote for tool {tool.name!r} does not name it")
        checks.append(named and passage(tool.quote, f"quote for {tool.name!r}"))
        in_transcript = found(tool.name)
        if not in_transcript:
            problems.append(f"tool {tool.name[:80]!r} is not in the transcript")
        checks.append(in_transcript)
    if not checks:
        return 0.0, ["no quotes or tools to check against the transcript"]
    return sum(checks) / len(checks), problems


def assess(
    insight: Insight | None,
    transcript: str,
    *,
    coverage: float,
    coverage_problems: list[str],
    threshold: float,
    min_grounding: float,
    min_quote_words: int = 4,
) -> Confidence:
    """Score a draft against its transcript and list every gate it fails."""
    if insight is None:
        reasons = ["the draft is not valid JSON for the insight schema", *coverage_problems]
        return Confidence(False, 0.0, coverage, 0.0, 0.0, False, reasons)
    share, missing = grounding(insight, transcript, min_quote_words)
    # Out-of-range numbers from a model that ignored the schema's bounds count as none.
    self_reported = min(max(insight.confidence, 0.0), 1.0)
    score = min(self_reported, share)
    reasons = list(coverage_problems)
    if coverage < 1:
        reasons.append(f"coverage {coverage:.2f}: the transcript was not read whole")
    if len(insight.summary.split()) < MIN_SUMMARY_WORDS or not insight.key_points:
        reasons.append(f"the record says nothing (summary {insight.summary[:60]!r})")
    shown = "; ".join(missing[:5])
    if share < min_grounding:
        reasons.append(f"grounding {share:.2f} is below {min_grounding:.2f}: {shown}")
    elif share < threshold:
        reasons.append(f"grounding {share:.2f} keeps the confidence below {threshold:.2f}: {shown}")
    if self_reported < threshold:
        reasons.append(
            f"the model's own confidence {self_reported:.2f} is below the threshold {threshold:.2f}"
        )
    return Confidence(True, share, coverage, self_reported, score, not reasons, reasons)
