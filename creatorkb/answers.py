"""Answers kb gives (to a routed prompt or a question about the knowledge base), as they are
stored in `answers`, returned as a flow's persisted result and shown as an artifact."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from creatorkb.ledger import Write

if TYPE_CHECKING:
    from creatorkb.engine import Outcome

AnswerKind = Literal["prompt", "ask"]


class Citation(BaseModel):
    """A passage an answer rests on: `[n]` in the text, the moment in the video."""

    n: int
    video_id: str
    title: str | None = None
    start_s: float | None = None
    link: str
    quote: str = ""  # the words of the passage the answer relies on


class Answer(BaseModel):
    """What a model (or kb, when the knowledge base has nothing) answered, and its route."""

    answer_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: AnswerKind
    question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    route: str | None = None  # None: no model was asked
    reason: str = ""
    provider: str | None = None
    model: str | None = None
    decision_id: str | None = None
    cost_usd: Decimal = Decimal(0)
    agreement: float | None = None  # for a consensus: how much the models agreed

    @classmethod
    def of(
        cls,
        outcome: Outcome[Any],
        kind: AnswerKind,
        question: str,
        text: str,
        citations: list[Citation] | None = None,
    ) -> Answer:
        """A routed job's answer; its id is the decision's, so it is the same when rebuilt."""
        return cls(
            answer_id=outcome.decision_id,
            kind=kind,
            question=question,
            text=text,
            citations=citations or [],
            route=str(outcome.route),
            reason=outcome.reason,
            provider="anthropic" if outcome.tier == "cloud" else "ollama",
            model=outcome.model,
            decision_id=outcome.decision_id,
            cost_usd=outcome.cloud_usd,
            agreement=outcome.components.get("agreement") if outcome.components else None,
        )

    def write(self, now: datetime | None = None, flow_run_id: str | None = None) -> Write:
        """Its row in `answers`."""
        row = {
            "answer_id": self.answer_id,
            "ts": now or datetime.now(UTC),
            "kind": self.kind,
            "question": self.question,
            "decision_id": self.decision_id,
            "flow_run_id": flow_run_id,
            "text": self.text,
            "citations": [citation.model_dump(mode="json") for citation in self.citations],
        }
        return Write.insert_new("answers", ("answer_id",), [row])

    def to_markdown(self) -> str:
        """The answer as the UI's artifact shows it."""
        lines = [f"# {'Question' if self.kind == 'ask' else 'Prompt'}", "", _quoted(self.question)]
        lines += ["", "## Answer", "", self.text]
        if self.citations:
            lines += ["", "## Sources", ""]
            lines += [
                f"{c.n}. [{c.title or c.video_id}{_at(c.start_s)}]({c.link})"
                + (f": “{c.quote}”" if c.quote else "")
                for c in self.citations
            ]
        via = f"{self.route} via {self.provider} {self.model}" if self.route else "no model asked"
        lines += ["", f"_{via}; cloud ${self.cost_usd:.6f}. {self.reason}_".rstrip()]
        return "\n".join(lines)


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines() or [""])


def _at(start_s: float | None) -> str:
    from creatorkb.segments import clock

    return f" at {clock(start_s)}" if start_s is not None else ""
