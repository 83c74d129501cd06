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
    assert result.score == 0.8  # the smaller of the model's word and the evidence


def test_quotes_match_despite_case_punctuation_and_spacing() -> None:
    insight = Insight.model_validate(
        {
            **grounded(PROMPT),
            "evidence_quotes": ["first LOAD the flux model,  and set the sampler"],
            "tools": [
                ToolMention(name="comfyui", quote="portrait workflow in ComfyUI").model_dump()
            ],
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


def test_a_low_self_report_is_not_outvoted_by_found_quotes() -> None:
    # Before: 0.5 x 1 + 0.25 x 1 + 0.25 x 0.4 = 0.85, accepted. The owner's plan: < 0.7 goes up.
    result = check(Insight.model_validate(grounded(PROMPT, confidence=0.4)))
    assert result.grounding == 1.0 and not result.accepted
    assert result.reasons == ["the model's own confidence 0.40 is below the threshold 0.70"]
    assert result.score == 0.4


def test_single_words_are_not_evidence() -> None:
    # Seen in a full run: "quotes" that are names found in any transcript about the field.
    words = {
        **grounded(PROMPT),
        "evidence_quotes": ["Flux", "LoRA", "ComfyUI"],
        "tools": [{"name": "ComfyUI", "quote": "sampler"}],
    }
    result = check(Insight.model_validate(words))
    assert not result.accepted and result.grounding == 0.2  # only the tool's name was found
    [reason] = [r for r in result.reasons if r.startswith("grounding")]
    assert "quote 'Flux' is not a passage (1 words)" in reason
    assert "the quote for tool 'ComfyUI' does not name it" in reason


def test_a_record_that_says_nothing_fails_every_gate_it_fails() -> None:
    # Before: summary "x", ComfyUI "quoted" as "ComfyUI", self-report 0: scored 0.75, accepted.
    empty = {
        "summary": "x",
        "key_points": [],
        "techniques": [],
        "tools": [{"name": "ComfyUI", "quote": "ComfyUI"}],
        "topics": [],
        "relevance": 0.1,
        "evidence_quotes": [],
        "confidence": 0.0,
    }
    result = check(Insight.model_validate(empty))
    assert not result.accepted
    assert [reason.split(" ", 2)[:2] for reason in result.reasons] == [
        ["the", "record"],  # says nothing
        ["grounding", "0.50"],  # keeps the confidence below the threshold
        ["the", "model's"],  # own confidence 0.00
    ]
    assert "not a passage" in result.reasons[1]


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
