"""Confidence from evidence: schema, grounding in the transcript, coverage, self-report."""

from __future__ import annotations

from creatorkb.agreement import agreement
from creatorkb.chunking import split_text
from creatorkb.confidence import assess, grounding
from creatorkb.insight import Insight, ToolMention
from tests.analysts import fabricated, grounded

TRANSCRIPT = (
    "Welcome back! Today we build a portrait workflow in ComfyUI. First load the Flux model "
    "and set the sampler to twenty steps. Then add a LoRA for the painterly style. Finally "
    "upscale the image twice, which keeps the detail sharp."
)
PROMPT = f"Video title: t\n\n<transcript>\n{TRANSCRIPT}\n</transcript>"


def check(insight: Insight | None, coverage: float = 1.0, problems: list[str] | None = None):
    return assess(
        insight,
        TRANSCRIPT,
        coverage=coverage,
        coverage_problems=problems or [],
        threshold=0.7,
        min_grounding=0.5,
    )


def test_a_grounded_draft_is_accepted() -> None:
    result = check(Insight.model_validate(grounded(PROMPT, confidence=0.8)))
    assert result.accepted
    assert result.grounding == 1.0
    assert result.score == 0.5 * 1.0 + 0.25 * 1.0 + 0.25 * 0.8


def test_quotes_match_despite_case_punctuation_and_spacing() -> None:
    insight = Insight.model_validate(
        {
            **grounded(PROMPT),
            "evidence_quotes": ["first LOAD the flux model,  and set the sampler"],
            "tools": [ToolMention(name="comfyui", quote="workflow in ComfyUI").model_dump()],
        }
    )
    share, missing = grounding(insight, TRANSCRIPT)
    assert (share, missing) == (1.0, [])


def test_claimed_full_confidence_does_not_buy_an_accept() -> None:
    result = check(Insight.model_validate(fabricated(PROMPT, confidence=1.0)))
    assert not result.accepted
    assert result.self_reported == 1.0
    assert result.grounding == 0.0
    assert result.score < 0.7
    assert any("grounding 0.00 is below 0.50" in reason for reason in result.reasons)
    assert any("MagicTool 9000" in reason for reason in result.reasons)


def test_a_truncated_draft_is_never_accepted_however_good() -> None:
    insight = Insight.model_validate(grounded(PROMPT, confidence=1.0))
    result = check(insight, coverage=0.5, problems=["part 2 of 2 was cut"])
    assert not result.accepted
    assert result.score >= 0.7  # the score alone would have passed
    assert result.reasons[0] == "part 2 of 2 was cut"


def test_an_invalid_draft_scores_zero() -> None:
    result = check(None)
    assert (result.schema_valid, result.score, result.accepted) == (False, 0.0, False)


def test_agreement_of_records() -> None:
    careful = Insight.model_validate(grounded(PROMPT))
    assert agreement(careful, careful) == 1.0
    assert agreement(careful, Insight.model_validate(fabricated(PROMPT))) < 0.2


def test_long_text_is_split_without_losing_a_word() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(2_000))
    parts = split_text(text, 300)
    assert len(parts) > 10
    assert all(len(part) <= 900 for part in parts)
    assert " ".join(parts).split() == text.split()
    assert split_text("x" * 5_000, 100) == ["x" * 300] * 16 + ["x" * 200]
