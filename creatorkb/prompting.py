"""Routed generations for any prompt: the call the owner's agents make, as a job kind.

Agent levels map onto creator priorities (L1 -> critical, L2 -> medium, L3 -> low), so the
routing policy decides for prompts as it does for videos: by default L1 goes to the cloud,
L2 and L3 start locally. A local answer is kept unless it was cut or empty; then, or when
Ollama is down, the cloud answers. When the cloud cannot, a local answer is the fallback; a
prompt never waits for a later run: when no model answers, NoModelAnswered is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from creatorkb.agreement import text_agreement
from creatorkb.calls import CallLog, LocalBackend, ModelAnswer, ModelRequest, Purpose
from creatorkb.engine import Draft, Job, Outcome, RoutingEngine, Verdict
from creatorkb.errors import KBError
from creatorkb.roster import Priority
from creatorkb.routing import Route, RoutingPolicy, Start

DEFAULT_SYSTEM = "You are a helpful, precise assistant. Answer concisely."
CUT_OR_EMPTY = "local answer cut or empty"


@dataclass(frozen=True)
class PromptResult:
    """The answer, and where it came from."""

    text: str
    route: Route
    provider: str
    model: str
    decision_id: str
    cost_usd: Decimal
    agreement: float | None = None  # for a consensus: how much the models agreed

    @classmethod
    def of(cls, outcome: Outcome[str]) -> PromptResult:
        assert outcome.payload is not None
        return cls(
            outcome.payload,
            outcome.route,
            "anthropic" if outcome.tier == "cloud" else "ollama",
            outcome.model or "",
            outcome.decision_id,
            outcome.cloud_usd,
            outcome.components.get("agreement") if outcome.components else None,
        )


class PromptJob(Job[str]):
    """One prompt, answered in text."""

    can_defer = False

    def __init__(
        self,
        prompt: str,
        priority: Priority,
        *,
        system: str = DEFAULT_SYSTEM,
        prefer_local: bool = False,
        force_cloud: bool = False,
    ) -> None:
        if not prompt.strip():
            raise KBError("the prompt is empty")
        self.prompt = prompt
        self.priority = priority
        self.system = system
        self.prefer_local = prefer_local
        self.force_cloud = force_cloud

    def start(self, policy: RoutingPolicy) -> Start:
        in_cloud = policy.start("", self.priority) is Start.cloud and not self.prefer_local
        return Start.cloud if self.force_cloud or in_cloud else Start.local

    @property
    def cloud_first_reason(self) -> str:
        return "forced to the cloud" if self.force_cloud else f"{self.priority} starts in the cloud"

    @property
    def local_fallback(self) -> bool:
        return not self.force_cloud

    def purpose(self, step: Purpose) -> Purpose:
        return step if step in ("consensus", "synthesis") else "prompt"

    def direct_prompt(self) -> str:
        return self.prompt

    def draft(self, local: LocalBackend, log: CallLog, model: str, purpose: Purpose) -> Draft[str]:
        answer = log.ask(local, ModelRequest(self.system, self.prompt, purpose, model=model))
        problems = [] if answer.complete else [CUT_OR_EMPTY]
        return Draft(self.parse(answer), answer.text, problems=problems, model=model)

    def check(self, draft: Draft[str]) -> Verdict:
        if draft.payload is not None and not draft.problems:
            return Verdict(True, [])
        return Verdict(False, draft.problems or [CUT_OR_EMPTY])

    def refine_prompt(self, draft: Draft[str], reasons: list[str]) -> str:
        if not draft.text or not draft.text.strip():
            return self.prompt
        problems = "\n".join(f"- {reason}" for reason in reasons)
        return (
            f"{self.prompt}\n\nA smaller model drafted the answer below, and it fell short:\n"
            f"{problems}\n\nDraft:\n{draft.text}\n\nWrite the best answer yourself."
        )

    def parse(self, answer: ModelAnswer) -> str | None:
        return answer.text if answer.text.strip() else None

    def text_of(self, payload: str) -> str:
        return payload

    def agreement(self, first: str, second: str) -> float:
        return text_agreement(first, second)

    def synthesis_prompt(self, payloads: list[str]) -> str:
        listed = "\n\n".join(f"Answer {n}:\n{text}" for n, text in enumerate(payloads, start=1))
        return (
            f"Question:\n{self.prompt}\n\n{len(payloads)} models answered it:\n\n{listed}\n\n"
            "Write the best single answer: keep what they agree on, correct what is wrong."
        )


def answer_prompt(
    engine: RoutingEngine,
    prompt: str,
    priority: Priority,
    *,
    system: str = DEFAULT_SYSTEM,
    prefer_local: bool = False,
    force_cloud: bool = False,
) -> PromptResult:
    """Route one prompt, record the decision and every call, return the answer."""
    job = PromptJob(
        prompt, priority, system=system, prefer_local=prefer_local, force_cloud=force_cloud
    )
    return PromptResult.of(engine.run(job))


def prompt_consensus(
    engine: RoutingEngine,
    prompt: str,
    models: list[str] | None = None,
    *,
    system: str = DEFAULT_SYSTEM,
) -> PromptResult:
    """Several local models (default: the engine's consensus models) answer at once; a
    synthesis is built; the cloud is asked when they agree too little."""
    job = PromptJob(prompt, Priority.medium, system=system)
    return PromptResult.of(engine.run(job, Start.consensus, models))
