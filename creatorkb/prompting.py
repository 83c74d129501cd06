"""Routed generations for any prompt: the call the owner's agents make, as a job kind.

Agent levels map onto creator priorities (L1 -> critical, L2 -> medium, L3 -> low), so the
routing policy decides for prompts as it does for videos: by default L1 goes to the cloud,
L2 and L3 start locally. A local answer is kept unless it was cut or empty; then, or when
Ollama is down, the cloud answers. When the cloud cannot, a local answer is the fallback; a
prompt never waits for a later run: when no model answers, NoModelAnswered is raised.
"""

from __future__ import annotations

from creatorkb.agreement import text_agreement
from creatorkb.answers import Answer
from creatorkb.calls import CallLog, LocalBackend, ModelAnswer, ModelRequest, Purpose
from creatorkb.engine import Draft, OnDemandJob, Outcome, RoutingEngine, Verdict
from creatorkb.errors import KBError
from creatorkb.roster import Priority
from creatorkb.routing import Start

DEFAULT_SYSTEM = "You are a helpful, precise assistant. Answer concisely."
CUT_OR_EMPTY = "local answer cut or empty"


class PromptJob(OnDemandJob[str]):
    """One prompt, answered in text."""

    def __init__(
        self,
        prompt: str,
        priority: Priority,
        *,
        system: str = DEFAULT_SYSTEM,
        prefer_local: bool = False,
        force_cloud: bool = False,
        flow_run_id: str | None = None,
    ) -> None:
        if not prompt.strip():
            raise KBError("the prompt is empty")
        self.flow_run_id = flow_run_id
        self.prompt = prompt
        self.priority = priority
        self.system = system
        self.prefer_local = prefer_local
        self.force_cloud = force_cloud

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

    def answer(self, outcome: Outcome[str]) -> Answer:
        """The outcome as kb's answer (the same when rebuilt: its id is the decision's)."""
        assert outcome.payload is not None
        return Answer.of(outcome, "prompt", self.prompt, outcome.payload)


def answer_prompt(
    engine: RoutingEngine,
    prompt: str,
    priority: Priority,
    *,
    system: str = DEFAULT_SYSTEM,
    prefer_local: bool = False,
    force_cloud: bool = False,
) -> Answer:
    """Route one prompt, record the decision, every call and the answer; return it."""
    job = PromptJob(
        prompt,
        priority,
        system=system,
        prefer_local=prefer_local,
        force_cloud=force_cloud,
        flow_run_id=engine.flow_run_id,
    )
    return job.answer(engine.run(job))


def prompt_consensus(
    engine: RoutingEngine,
    prompt: str,
    models: list[str] | None = None,
    *,
    system: str = DEFAULT_SYSTEM,
) -> Answer:
    """Several local models (default: the engine's consensus models) answer at once; a
    synthesis is built; the cloud is asked when they agree too little."""
    job = PromptJob(prompt, Priority.medium, system=system, flow_run_id=engine.flow_run_id)
    return job.answer(engine.run(job, Start.consensus, models))
