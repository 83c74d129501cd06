"""Routed generations for any prompt: the call the owner's agents make, and consensus.

Agent levels map onto creator priorities (L1 -> critical, L2 -> medium, L3 -> low), so the
routing policy decides for prompts as it does for videos: by default L1 goes to the cloud,
L2 and L3 start locally. A local answer is kept unless it was cut or empty; then, or when
Ollama is down, the cloud answers. When the cloud cannot, a local answer is the fallback.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from creatorkb.agreement import mean_agreement, text_agreement
from creatorkb.calls import LocalUnavailable, ModelAnswer, ModelCall, Purpose
from creatorkb.errors import KBError
from creatorkb.ledger import Ledger, Write
from creatorkb.local_model import LocalModel
from creatorkb.pricing import call_costs, call_row
from creatorkb.roster import Priority
from creatorkb.routing import Route, RoutingPolicy, Start, decision_write
from creatorkb.settings import CostOptions
from creatorkb.spending import BudgetedCloud

DEFAULT_SYSTEM = "You are a helpful, precise assistant. Answer concisely."


class NoModelAnswered(KBError):
    """Neither the local nor the cloud model could answer the prompt."""


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


@dataclass
class _Trail:
    """The calls one prompt made, and the budget reservations to close."""

    calls: list[ModelCall] = field(default_factory=list)
    closings: list[Write] = field(default_factory=list)


@dataclass
class PromptRouter:
    """Answers prompts by the routing policy, recording every decision and call."""

    ledger: Ledger
    policy: RoutingPolicy
    costs: CostOptions
    local: LocalModel
    local_model: str
    cloud: BudgetedCloud
    consensus_models: list[str] = field(default_factory=list)
    flow_run_id: str | None = None

    def answer(
        self,
        prompt: str,
        priority: Priority,
        *,
        system: str = DEFAULT_SYSTEM,
        prefer_local: bool = False,
        force_cloud: bool = False,
    ) -> PromptResult:
        """Route one prompt, record the decision and every call, return the answer."""
        if not prompt.strip():
            raise KBError("the prompt is empty")
        trail = _Trail()
        if force_cloud or (self.policy.start("", priority) is Start.cloud and not prefer_local):
            cloud = self._ask_cloud(trail, system, prompt)
            if isinstance(cloud, ModelAnswer):
                reason = "forced to the cloud" if force_cloud else f"{priority} starts in the cloud"
                return self._record(trail, Route.cloud_direct, reason, cloud)
            local = self._ask_local(trail, system, prompt) if not force_cloud else "not tried"
            if isinstance(local, ModelAnswer) and local.text.strip():
                return self._record(trail, Route.fallback_local, f"cloud: {cloud}", local)
            return self._give_up(trail, cloud, local)
        local = self._ask_local(trail, system, prompt)
        if isinstance(local, ModelAnswer) and _complete(local):
            return self._record(trail, Route.local_accept, "local answer kept", local)
        cloud = self._ask_cloud(trail, system, prompt)
        if isinstance(cloud, ModelAnswer):
            if isinstance(local, ModelAnswer):
                return self._record(trail, Route.cloud_refine, "local answer cut or empty", cloud)
            return self._record(trail, Route.fallback_cloud, f"local: {local}", cloud)
        return self._give_up(trail, cloud, local if isinstance(local, str) else "cut or empty")

    def consensus(
        self, prompt: str, models: list[str] | None = None, *, system: str = DEFAULT_SYSTEM
    ) -> PromptResult:
        """Several local models (default: `consensus_models`) answer at once; a synthesis is
        built; the cloud is asked when they agree too little. The decision's confidence is
        their agreement."""
        if not prompt.strip():
            raise KBError("the prompt is empty")
        models = models or self.consensus_models or [self.local_model]
        trail = _Trail()
        with ThreadPoolExecutor(len(models)) as pool:
            asked = list(
                pool.map(lambda m: self._ask_local(trail, system, prompt, m, "consensus"), models)
            )
        answers = [a for a in asked if isinstance(a, ModelAnswer) and _complete(a)]
        if not answers:
            cloud = self._ask_cloud(trail, system, prompt)
            if isinstance(cloud, ModelAnswer):
                return self._record(trail, Route.fallback_cloud, "no local answer", cloud)
            return self._give_up(trail, cloud, "no consensus model answered")
        score = mean_agreement([answer.text for answer in answers], text_agreement)
        components = {"agreement": round(score, 4), "answers": len(answers), "models": models}
        combined = _synthesis_prompt(prompt, [answer.text for answer in answers])
        if score < self.policy.consensus_threshold:
            cloud = self._ask_cloud(trail, system, combined, "refine")
            if isinstance(cloud, ModelAnswer):
                reason = f"the models agree too little ({score:.2f})"
                return self._record(trail, Route.cloud_refine, reason, cloud, components)
        synthesis = self._synthesize(trail, system, combined)
        if synthesis is None:
            return self._give_up(trail, "not asked", "the consensus could not be synthesised")
        reason = f"{len(answers)} models agree ({score:.2f})"
        return self._record(trail, Route.consensus, reason, synthesis, components)

    def _synthesize(self, trail: _Trail, system: str, combined: str) -> ModelAnswer | None:
        if self.policy.synthesizer == "cloud":
            cloud = self._ask_cloud(trail, system, combined, "synthesis")
            if isinstance(cloud, ModelAnswer):
                return cloud
        local = self._ask_local(trail, system, combined, self.local_model, "synthesis")
        return local if isinstance(local, ModelAnswer) and _complete(local) else None

    def _ask_local(
        self,
        trail: _Trail,
        system: str,
        prompt: str,
        model: str | None = None,
        purpose: Purpose = "prompt",
    ) -> ModelAnswer | str:
        try:
            answer = self.local.generate(model or self.local_model, system, prompt, purpose)
        except LocalUnavailable as error:
            trail.calls += [error.call] if error.call else []
            return str(error)
        trail.calls.append(answer.call)
        return answer

    def _ask_cloud(
        self, trail: _Trail, system: str, prompt: str, purpose: Purpose = "prompt"
    ) -> ModelAnswer | str:
        reply = self.cloud.ask(system, prompt, purpose)
        trail.calls += reply.calls
        trail.closings += reply.closings
        return reply.answer or reply.problem or "the cloud did not answer"

    def _writes(self, trail: _Trail, decision_id: str | None) -> list[Write]:
        rows = [
            call_row(
                call,
                self.costs,
                flow_run_id=self.flow_run_id,
                video_id=None,
                decision_id=decision_id,
            )
            for call in trail.calls
        ]
        return [Write.insert_new("llm_calls", ("call_id",), rows), *trail.closings]

    def _give_up(self, trail: _Trail, cloud: str, local: str) -> PromptResult:
        self.ledger.write(*self._writes(trail, None))
        raise NoModelAnswered(f"no model could answer: cloud: {cloud}; local: {local}")

    def _record(
        self,
        trail: _Trail,
        route: Route,
        reason: str,
        answer: ModelAnswer,
        agreement: dict[str, Any] | None = None,
    ) -> PromptResult:
        decision_id = uuid.uuid4().hex
        decision = decision_write(
            decision_id=decision_id,
            route=route,
            reason=reason,
            policy=self.policy,
            flow_run_id=self.flow_run_id,
            confidence=agreement["agreement"] if agreement else None,
            components=agreement,
        )
        self.ledger.write(*self._writes(trail, decision_id), decision)
        return PromptResult(
            answer.text,
            route,
            answer.call.provider,
            answer.call.model,
            decision_id,
            sum((call_costs(call, self.costs).cost_usd for call in trail.calls), Decimal(0)),
            agreement["agreement"] if agreement else None,
        )


def _synthesis_prompt(prompt: str, answers: list[str]) -> str:
    listed = "\n\n".join(f"Answer {n}:\n{text}" for n, text in enumerate(answers, start=1))
    return (
        f"Question:\n{prompt}\n\n{len(answers)} models answered it:\n\n{listed}\n\n"
        "Write the best single answer: keep what they agree on, correct what is wrong."
    )


def _complete(answer: ModelAnswer) -> bool:
    return bool(answer.text.strip()) and not answer.prompt_cut and not answer.answer_cut
