"""The routing engine: route -> local attempt -> check -> escalate -> record, for every job.

A job kind (a video's analysis, a routed prompt, a question) supplies its prompts, its check
and its payload; the engine decides where the work goes by the routing policy, asks the
models through one call log, escalates to the cloud with the draft and the reasons it fell
short, falls back when a tier is down, and records everything the job produced in one
transaction: its calls (each paid one settling its budget reservation), the decision, and
the job's own rows.

    start cloud      direct ──ok──> cloud_direct
                        └─fails──> deferred | local draft ──> fallback_local | deferred
    start local      draft ──down──> direct ──ok──> fallback_cloud, else deferred
                       ├─passes──> local_accept (a sample also answered in the cloud:
                       │           a shadow that disagrees replaces it, cloud_refine)
                       └─short───> refine ──ok──> cloud_refine (refine_models in turn,
                                     │             cheapest first, until one passes the check)
                                     └─fails──> fallback_local (flagged) | deferred
    start consensus  drafts of several models ──agree──> consensus (their synthesis)
                       └─too little, or one usable──> refine as above

A job that cannot wait (a prompt) is never deferred: instead NoModelAnswered is raised, its
calls still recorded.

A cloud step the policy lets wait (`batch_purposes`: a video's refine or shadow) is queued as
a Message Batch item instead of sent: the job's calls so far and the item are recorded and the
video waits (Outcome.waiting). A later run collects the answer (creatorkb/batches.py) and
`resume` goes on from the same step: the cascade, the shadow comparison, or, for an item that
failed, `when_batch_fails`.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from creatorkb.agreement import mean_agreement
from creatorkb.budget import week_start
from creatorkb.calls import CallLog, LocalBackend, ModelAnswer, ModelCall, ModelRequest, Purpose
from creatorkb.chunking import estimate_tokens
from creatorkb.errors import BudgetExhausted, CloudUnavailable, LocalUnavailable, NoModelAnswered
from creatorkb.ledger import Ledger, Write
from creatorkb.pricing import all_cloud_usd, call_costs
from creatorkb.recording import call_writes
from creatorkb.roster import Priority
from creatorkb.routing import JobCosts, Route, RoutingPolicy, Start, decision_write
from creatorkb.settings import CostOptions

if TYPE_CHECKING:
    from creatorkb.answers import Answer
    from creatorkb.batches import BatchItem
    from creatorkb.spending import BudgetedCloud

P = TypeVar("P")
Tier = Literal["local", "cloud", "consensus"]


@dataclass(frozen=True)
class Draft(Generic[P]):
    """A local answer: its payload (None if unusable), the text passed along when it is
    refined, how much of the input was read whole, and what went wrong."""

    payload: P | None
    text: str | None
    coverage: float = 1.0
    problems: list[str] = field(default_factory=list)
    model: str | None = None  # the local model that answered


@dataclass(frozen=True)
class Verdict:
    """Whether a draft is good enough to keep, and why not."""

    accepted: bool
    reasons: list[str]
    score: float | None = None
    components: dict[str, Any] | None = None


@dataclass(frozen=True)
class CloudAnswer(Generic[P]):
    payload: P
    model: str
    call_id: str


@dataclass(frozen=True)
class NoAnswer:
    """Why a tier gave nothing usable."""

    problem: str


_RETRY = NoAnswer("asked again directly")  # a batched step that failed, per when_batch_fails


@dataclass(frozen=True)
class Outcome(Generic[P]):
    """Where a job ended, with what, and why."""

    route: Route
    reason: str
    decision_id: str
    payload: P | None
    tier: Tier | None
    model: str | None
    confidence: float | None  # the decision's (for consensus: the models' agreement)
    components: dict[str, Any] | None
    cloud_usd: Decimal
    waiting: str | None = None  # the batch item (custom_id) the job waits on; no decision yet

    @property
    def flagged(self) -> bool:
        """A local result the cloud should have checked."""
        return self.route is Route.fallback_local

    @property
    def deferred(self) -> bool:
        return self.route is Route.deferred


class Job(ABC, Generic[P]):
    """One piece of model work. A kind supplies its prompts, its check and its payload."""

    system: str
    schema: dict[str, Any] | None = None
    priority: Priority = Priority.medium
    start_key: str = ""  # the channel id the policy may start per creator
    video_id: str | None = None
    can_defer: bool = True  # else, when nothing answers, NoModelAnswered is raised
    shadow_key: str | None = None  # set for jobs whose local accepts are sampled
    max_output_tokens: int | None = None  # the most an answer can need (None: the cap)

    def start(self, policy: RoutingPolicy) -> Start:
        return policy.start(self.start_key, self.priority)

    @property
    def cloud_first_reason(self) -> str:
        return f"priority {self.priority} starts in the cloud"

    @property
    def local_fallback(self) -> bool:
        """Whether a local answer may stand in when the cloud cannot answer."""
        return True

    def purpose(self, step: Purpose) -> Purpose:
        """What the ledger calls a call made for this step of the job."""
        return step

    @abstractmethod
    def direct_prompt(self) -> str:
        """The prompt a model answers the job from scratch with."""

    @abstractmethod
    def draft(self, local: LocalBackend, log: CallLog, model: str, purpose: Purpose) -> Draft[P]:
        """A local model's answer; raises LocalUnavailable."""

    @abstractmethod
    def check(self, draft: Draft[P]) -> Verdict:
        """Whether the draft is good enough to keep."""

    @abstractmethod
    def refine_prompt(self, draft: Draft[P], reasons: list[str]) -> str:
        """Ask the cloud to correct a draft, saying why it fell short."""

    @abstractmethod
    def parse(self, answer: ModelAnswer) -> P | None:
        """The payload in a model's answer, or None if there is none."""

    @abstractmethod
    def text_of(self, payload: P) -> str:
        """The payload as text, to pass it along to another model."""

    @abstractmethod
    def agreement(self, first: P, second: P) -> float:
        """How much two answers agree, 0 to 1."""

    @abstractmethod
    def synthesis_prompt(self, payloads: list[P]) -> str:
        """Ask for one answer built from several models' answers."""

    def result_writes(self, outcome: Outcome[P], now: datetime) -> list[Write]:
        """The job's own rows, written with its decision and calls."""
        return []

    def restore(self, text: str | None) -> P | None:
        """A payload from its text (`text_of`), for a job resumed from a batch."""
        raise NotImplementedError(f"{type(self).__name__} cannot wait for a batch")


class OnDemandJob(Job[P]):
    """A job someone waits for (a prompt, a question): it is never deferred, the policy's
    priority decides where it starts unless `prefer_local` or `force_cloud` says otherwise,
    and a forced cloud job never falls back to a local answer."""

    can_defer = False
    prefer_local: bool = False
    force_cloud: bool = False
    flow_run_id: str | None = None  # recorded with the answer

    @abstractmethod
    def answer(self, outcome: Outcome[P]) -> Answer:
        """The outcome as kb's answer (`answers` row, flow result, artifact)."""

    def result_writes(self, outcome: Outcome[P], now: datetime) -> list[Write]:
        if outcome.payload is None:
            return []
        return [self.answer(outcome).write(now, self.flow_run_id)]

    def start(self, policy: RoutingPolicy) -> Start:
        in_cloud = policy.start("", self.priority) is Start.cloud and not self.prefer_local
        return Start.cloud if self.force_cloud or in_cloud else Start.local

    @property
    def cloud_first_reason(self) -> str:
        return "forced to the cloud" if self.force_cloud else f"{self.priority} starts in the cloud"

    @property
    def local_fallback(self) -> bool:
        return not self.force_cloud


@dataclass
class _Work(Generic[P]):
    job: Job[P]
    log: CallLog
    earlier: list[ModelCall] = field(default_factory=list)  # recorded before (batched work)
    closing: list[Write] = field(default_factory=list)  # written with the job's decision


@dataclass
class _Cascade(Generic[P]):
    """Where a refine is in the policy's refine models (kept with a batch item as JSON)."""

    reasons: list[str]  # why the draft fell short
    current: Draft[P]  # what the next model refines
    why: list[str]  # and why that fell short
    models: list[str]
    step: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    answer: CloudAnswer[P] | NoAnswer | None = None  # the current step's, when resumed
    retried: bool = False  # the current step's batch item failed and was asked again directly

    def to_json(self) -> dict[str, Any]:
        return {
            "reasons": self.reasons,
            "current": _draft_json(self.current),
            "why": self.why,
            "models": self.models,
            "step": self.step,
            "steps": self.steps,
            "problems": self.problems,
        }

    @classmethod
    def from_json(cls, job: Job[P], data: dict[str, Any]) -> _Cascade[P]:
        return cls(
            reasons=data["reasons"],
            current=_draft_from(job, data["current"]),
            why=data["why"],
            models=data["models"],
            step=data["step"],
            steps=data["steps"],
            problems=data["problems"],
        )


def _draft_json(draft: Draft[Any]) -> dict[str, Any]:
    return {
        "text": draft.text,
        "coverage": draft.coverage,
        "problems": draft.problems,
        "model": draft.model,
    }


def _draft_from(job: Job[P], data: dict[str, Any]) -> Draft[P]:
    return Draft(
        job.restore(data["text"]), data["text"], data["coverage"], data["problems"], data["model"]
    )


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "accepted": verdict.accepted,
        "reasons": verdict.reasons,
        "score": verdict.score,
        "components": verdict.components,
    }


class RoutingEngine:
    """Routes jobs by the policy; safe to use from many threads at once."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: RoutingPolicy,
        costs: CostOptions,
        local: LocalBackend,
        cloud: BudgetedCloud,
        draft_model: str,
        consensus_models: list[str] | None = None,
        flow_run_id: str | None = None,
        warnings: list[str] | None = None,
        batching: bool = False,
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.costs = costs
        self.local = local
        self.cloud = cloud
        self.draft_model = draft_model
        self.consensus_models = consensus_models or [draft_model]
        self.flow_run_id = flow_run_id
        self.warnings = warnings or []  # what this run cannot do, and how to fix it
        self.batching = batching  # work the policy lets wait is sent as a Message Batch

    @property
    def local_slots(self) -> int:
        return self.local.parallel

    @property
    def cloud_slots(self) -> int:
        return self.cloud.slots

    def run(
        self, job: Job[P], start: Start | None = None, models: list[str] | None = None
    ) -> Outcome[P]:
        """Route one job (`start` overrides the policy; `models` the consensus models)."""
        work = _Work(job, CallLog())
        start = start or job.start(self.policy)
        if start is Start.cloud:
            return self._cloud_first(work)
        if start is Start.consensus:
            return self._consensus(work, models or self.consensus_models)
        try:
            draft = job.draft(self.local, work.log, self.draft_model, job.purpose("draft"))
        except LocalUnavailable as error:
            return self._cloud_instead(work, f"local model unavailable ({error})")
        verdict = job.check(draft)
        if verdict.accepted:
            return self._accept(work, draft, verdict)
        return self._escalate(work, draft, verdict, verdict.reasons)

    def resume(self, job: Job[P], item: BatchItem) -> Outcome[P]:
        """Go on with a job whose cloud step waited for a batch, from where it was queued:
        with the item's answer, or (errored, expired, canceled, lost) per the policy's
        `when_batch_fails`; the item is marked done with the job's decision."""
        context = item.context
        earlier = [ModelCall.from_json(c) for c in context["calls"]]
        if item.call is not None:
            earlier.append(item.call)
        work = _Work(job, CallLog(), earlier, [item.done_write(datetime.now(UTC))])
        draft = _draft_from(job, context["draft"])
        verdict = Verdict(**context["verdict"])
        answer: CloudAnswer[P] | NoAnswer | None
        if item.answered and item.call is not None:
            payload = job.restore(item.result_text) if item.result_text else None
            answer = (
                CloudAnswer(payload, item.model, item.call.call_id)
                if payload is not None
                else NoAnswer(f"{item.model}'s batch answer is not valid for the schema")
            )
        elif self.policy.when_batch_fails == "retry_direct":
            answer = None  # asked once again, directly
        else:
            answer = NoAnswer(item.problem or f"batch item {item.custom_id} failed")
        if context["kind"] == "shadow":
            return self._accept(work, draft, verdict, shadow=answer or _RETRY)
        cascade = _Cascade.from_json(job, context["cascade"])
        if answer is None:
            cascade.retried = True  # the step is asked again, directly
        elif isinstance(answer, NoAnswer) and not item.answered:
            return self._cloud_failed(work, answer.problem, draft, verdict)
        else:
            cascade.answer = answer
        agreement = context.get("agreement")
        return self._escalate(work, draft, verdict, cascade.reasons, agreement, cascade)

    # -- the routes -----------------------------------------------------------------

    def _cloud_first(self, work: _Work[P]) -> Outcome[P]:
        answer = self._ask_cloud(work, "direct", work.job.direct_prompt())
        if isinstance(answer, CloudAnswer):
            return self._record(work, Route.cloud_direct, work.job.cloud_first_reason, answer)
        return self._cloud_failed(work, answer.problem, None, None)

    def _cloud_instead(self, work: _Work[P], local_problem: str) -> Outcome[P]:
        answer = self._ask_cloud(work, "direct", work.job.direct_prompt())
        if isinstance(answer, CloudAnswer):
            return self._record(work, Route.fallback_cloud, local_problem, answer)
        return self._give_up(work, f"{local_problem} and cloud unavailable ({answer.problem})")

    def _accept(
        self,
        work: _Work[P],
        draft: Draft[P],
        verdict: Verdict,
        shadow: CloudAnswer[P] | NoAnswer | None = None,
    ) -> Outcome[P]:
        """Keep the draft; a sample is also answered in the cloud (a shadow review), and a
        paid shadow answer that disagrees becomes the record instead. (`shadow`: the review's
        answer when it waited for a batch; _RETRY to ask once again directly.)"""
        score = f" ({verdict.score:.2f})" if verdict.score is not None else ""
        reason = f"local draft passed the check{score}"
        key, local = work.job.shadow_key, draft.payload
        if shadow is None and (key is None or local is None or not self._sampled(key)):
            return self._record(work, Route.local_accept, reason, draft, verdict=verdict)
        if shadow is None and self._waits(work, "shadow"):
            context = {
                "kind": "shadow",
                "draft": _draft_json(draft),
                "verdict": _verdict_json(verdict),
            }
            queued = self._enqueue(work, "shadow", work.job.direct_prompt(), None, context)
            if isinstance(queued, Outcome):
                return queued
            shadow = queued  # not even the batch price fits the budget: no review this time
        if shadow is None or shadow is _RETRY:
            answer = self._ask_cloud(work, "shadow", work.job.direct_prompt())
        else:
            answer = shadow
        if not isinstance(answer, CloudAnswer) or key is None or local is None:
            # no review this time; the draft stands
            return self._record(work, Route.local_accept, reason, draft, verdict=verdict)
        agreement = work.job.agreement(local, answer.payload)
        good = agreement >= self.policy.shadow_agreement
        decision_id = uuid.uuid4().hex
        review = {
            "video_id": key,
            "decision_id": decision_id,
            "call_id": answer.call_id,
            "agreement": agreement,
            "local_good_enough": good,
            "ts": datetime.now(UTC),
        }
        update = tuple(name for name in review if name != "video_id")
        reviewed = Write.upsert("shadow_reviews", ("video_id",), [review], update)
        if good:
            return self._record(
                work,
                Route.local_accept,
                reason,
                draft,
                verdict,
                also=[reviewed],
                decision_id=decision_id,
            )
        replaced = (
            f"{reason}, but its shadow review disagreed ({agreement:.2f} < "
            f"{self.policy.shadow_agreement:.2f}): the cloud's record replaces it"
        )
        return self._record(
            work,
            Route.cloud_refine,
            replaced,
            answer,
            verdict,
            also=[reviewed],
            decision_id=decision_id,
        )

    def _sampled(self, key: str) -> bool:
        """Whether this accept gets a shadow review: a stable sample of `shadow_rate`, and every
        accept while the week has fewer than `min_weekly_shadows` reviews."""
        if self.policy.shadows(key):
            return True
        if self.policy.min_weekly_shadows == 0:
            return False
        start = week_start(datetime.now(UTC), self.costs.timezone)
        [row] = self.ledger.rows("SELECT count(*) AS n FROM shadow_reviews WHERE ts >= ?", [start])
        return int(row["n"]) < self.policy.min_weekly_shadows

    def _escalate(
        self,
        work: _Work[P],
        draft: Draft[P],
        verdict: Verdict,
        reasons: list[str],
        agreement: dict[str, Any] | None = None,
        cascade: _Cascade[P] | None = None,
    ) -> Outcome[P]:
        """The cloud corrects the draft, told why it fell short: the policy's refine models
        in turn, cheapest first, each next one given the previous record and why it failed
        the same check; the last one's record stands. A step the policy lets wait is queued
        for a batch (`cascade` then says where to go on from)."""
        job = work.job
        c = cascade or _Cascade(reasons, draft, reasons, list(self.policy.refine_models))
        answer: CloudAnswer[P] | NoAnswer = NoAnswer("no refine model")
        while c.step < len(c.models):
            model = c.models[c.step]
            prompt = job.refine_prompt(c.current, c.why)
            if c.answer is not None:
                answer, c.answer = c.answer, None
            elif not c.retried and self._waits(work, "refine"):
                context = {
                    "kind": "refine",
                    "draft": _draft_json(draft),
                    "verdict": _verdict_json(verdict),
                    "agreement": agreement,
                    "cascade": c.to_json(),
                }
                queued = self._enqueue(work, "refine", prompt, model, context)
                if isinstance(queued, Outcome):
                    return queued
                answer = queued
            else:
                answer = self._cloud_answer(job, work.log, "refine", prompt, model)
            c.retried = False
            c.step += 1
            if not isinstance(answer, CloudAnswer):
                c.problems.append(f"{model}: {answer.problem}")
                c.steps.append({"model": model, "answered": False})
                continue
            checked = job.check(Draft(answer.payload, job.text_of(answer.payload), model=model))
            c.steps.append({"model": model, "answered": True, "passed": checked.accepted})
            if checked.accepted or c.step == len(c.models):
                break
            c.current, c.why = (
                Draft(answer.payload, job.text_of(answer.payload), model=model),
                [f"{model}'s record fell short: " + "; ".join(checked.reasons)],
            )
            c.problems.append(c.why[0])
        if isinstance(answer, CloudAnswer):
            reason = "; ".join(c.reasons)
            if len(c.steps) > 1:
                reason += "; cascade: " + "; ".join(c.problems) + f"; refined by {answer.model}"
            details = {"cascade": c.steps, "refined_by": answer.model}
            return self._record(
                work, Route.cloud_refine, reason, answer, verdict, agreement, details=details
            )
        return self._cloud_failed(work, "; ".join(c.problems), draft, verdict)

    # -- batches ----------------------------------------------------------------------

    def _waits(self, work: _Work[P], purpose: Purpose) -> bool:
        """Whether this cloud step may wait for a Message Batch (by the policy)."""
        job = work.job
        return (
            self.batching
            and job.can_defer
            and job.video_id is not None
            and self.cloud.down is None
            and self.policy.waits(job.priority, purpose)
        )

    def _enqueue(
        self,
        work: _Work[P],
        purpose: Purpose,
        prompt: str,
        model: str | None,
        context: dict[str, Any],
    ) -> Outcome[P] | NoAnswer:
        """Queue a cloud step for a batch: its cost reserved at the batch price, the item on
        record (custom_id, request, where the job goes on) with the job's calls so far, the
        video left for a later run to finish. NoAnswer when the budget cannot cover it."""
        from creatorkb.batches import new_custom_id, queue_write

        job = work.job
        assert job.video_id is not None
        request = ModelRequest(
            job.system, prompt, job.purpose(purpose), job.schema, model, job.max_output_tokens
        )
        try:
            reservation = self.cloud.reserve(request, batch=True)
        except BudgetExhausted as error:
            return NoAnswer(f"over budget: {error}")
        except CloudUnavailable as error:
            return NoAnswer(str(error))
        custom_id = new_custom_id(job.video_id, purpose)
        model_name = request.model or self.cloud.model or ""
        calls = [*work.earlier, *work.log.calls]
        item = queue_write(
            custom_id=custom_id,
            video_id=job.video_id,
            purpose=purpose,
            model=model_name,
            reservation_id=reservation.reservation_id,
            request=self.cloud.params(request),
            context={
                **context,
                "purpose": job.purpose(purpose),
                "calls": [call.to_json() for call in calls],
            },
            flow_run_id=self.flow_run_id,
        )
        reason = f"waiting on a Message Batch ({purpose} by {model_name}, item {custom_id})"
        outcome: Outcome[P] = Outcome(
            route=Route.deferred,
            reason=reason,
            decision_id="",
            payload=None,
            tier=None,
            model=model_name,
            confidence=None,
            components=None,
            cloud_usd=Decimal(0),
            waiting=custom_id,
        )
        self.ledger.write(
            *self._call_writes(job, work.log, None),
            item,
            *work.closing,
            *job.result_writes(outcome, datetime.now(UTC)),
        )
        return outcome

    def _cloud_failed(
        self, work: _Work[P], problem: str, draft: Draft[P] | None, verdict: Verdict | None
    ) -> Outcome[P]:
        """The cloud could not answer: keep a local answer (flagged) or defer, per policy."""
        job = work.job
        if self.policy.when_cloud_fails == "deferred" and job.can_defer:
            return self._give_up(work, f"cloud unavailable ({problem})")
        if draft is None:
            if not job.local_fallback:
                return self._give_up(work, f"cloud unavailable ({problem}); local not tried")
            try:
                draft = job.draft(self.local, work.log, self.draft_model, job.purpose("draft"))
            except LocalUnavailable as error:
                reason = f"cloud unavailable ({problem}) and local unavailable ({error})"
                return self._give_up(work, reason)
            verdict = job.check(draft)
        if draft.payload is None:
            reason = f"cloud unavailable ({problem}) and the local draft is unusable"
            return self._give_up(work, reason, verdict)
        reason = f"cloud unavailable ({problem}); local draft kept, flagged"
        return self._record(work, Route.fallback_local, reason, draft, verdict=verdict)

    def _consensus(self, work: _Work[P], models: list[str]) -> Outcome[P]:
        """Several local models answer at once; a synthesis is built from their answers;
        the cloud is asked when they agree too little or only one answered usably."""
        job = work.job
        with ThreadPoolExecutor(len(models)) as pool:
            tried = list(pool.map(lambda model: self._try_draft(work, model), models))
        usable = [d for d in tried if isinstance(d, Draft) and d.payload is not None]
        unused = "; ".join(
            f"{model}: {d.problem if isinstance(d, NoAnswer) else 'no usable answer'}"
            for model, d in zip(models, tried, strict=True)
            if not (isinstance(d, Draft) and d.payload is not None)
        )
        if not usable:
            reason = f"no consensus model produced a usable answer ({unused or 'none'})"
            return self._cloud_instead(work, reason)
        payloads = [d.payload for d in usable if d.payload is not None]
        score = mean_agreement(payloads, job.agreement)
        agreement = {"agreement": round(score, 4), "answers": len(usable), "models": models}
        if len(usable) == 1:
            only = usable[0]
            reasons = [f"only 1 of {len(models)} consensus models answered usably ({unused})"]
            return self._escalate(work, only, job.check(only), reasons, agreement)
        synthesis = self._synthesize(work, payloads)
        if synthesis is None:
            return self._cloud_instead(work, "the consensus could not be synthesised")
        threshold = self.policy.consensus_threshold
        draft = Draft(synthesis, job.text_of(synthesis))
        if score >= threshold:
            reason = f"{len(usable)} models agree ({score:.2f})"
            reason += f"; not answered: {unused}" if unused else ""
            return self._record(
                work, Route.consensus, reason, draft, agreement=agreement, tier="consensus"
            )
        reasons = [f"the consensus models agree too little ({score:.2f} < {threshold:.2f})"]
        return self._escalate(work, draft, job.check(draft), reasons, agreement)

    def _try_draft(self, work: _Work[P], model: str) -> Draft[P] | NoAnswer:
        try:
            return work.job.draft(self.local, work.log, model, work.job.purpose("consensus"))
        except LocalUnavailable as error:
            return NoAnswer(str(error))

    def _synthesize(self, work: _Work[P], payloads: list[P]) -> P | None:
        """One answer from several: by the cloud or the local draft model, per policy."""
        job = work.job
        prompt = job.synthesis_prompt(payloads)
        if self.policy.synthesizer == "cloud":
            answer = self._ask_cloud(work, "synthesis", prompt)
            if isinstance(answer, CloudAnswer):
                return answer.payload
        # A synthesis is bounded by the answers it merges, not by the job's own input.
        request = ModelRequest(
            job.system, prompt, job.purpose("synthesis"), job.schema, self.draft_model
        )
        try:
            return job.parse(work.log.ask(self.local, request))
        except LocalUnavailable:
            return None

    # -- the cloud ------------------------------------------------------------------

    def _ask_cloud(
        self, work: _Work[P], purpose: Purpose, prompt: str
    ) -> CloudAnswer[P] | NoAnswer:
        return self._cloud_answer(work.job, work.log, purpose, prompt)

    def _cloud_answer(
        self, job: Job[P], log: CallLog, purpose: Purpose, prompt: str, model: str | None = None
    ) -> CloudAnswer[P] | NoAnswer:
        """A cloud payload (from `model`, else the configured one), paid from a budget
        reservation; or why there is none."""
        try:
            limit = None if purpose == "synthesis" else job.max_output_tokens
            request = ModelRequest(
                job.system, prompt, job.purpose(purpose), job.schema, model, limit
            )
            answer = log.ask(self.cloud, request)
        except BudgetExhausted as error:
            return NoAnswer(f"over budget: {error}")
        except CloudUnavailable as error:
            return NoAnswer(str(error))
        payload = job.parse(answer)
        if payload is None:
            return NoAnswer("the cloud answer is not valid for the schema")
        return CloudAnswer(payload, answer.call.model, answer.call.call_id)

    # -- recording ------------------------------------------------------------------

    def _call_writes(self, job: Job[P], log: CallLog, decision_id: str | None) -> list[Write]:
        return call_writes(
            log.calls,
            self.costs,
            flow_run_id=self.flow_run_id,
            video_id=job.video_id,
            decision_id=decision_id,
        )

    def _job_costs(
        self,
        job: Job[P],
        route: Route,
        result: Draft[P] | CloudAnswer[P] | None,
        payload: P | None,
        log: CallLog,
        earlier: list[ModelCall] | None = None,
    ) -> JobCosts:
        """The job's cloud dollars and energy, and the one direct call on the reference model
        that an all-cloud setup would have made instead (none for a job left undone)."""
        spent = [call_costs(call, self.costs) for call in [*earlier, *log.calls]]
        cloud = sum((c.cost_usd for c in spent), Decimal(0))
        energy = sum((c.energy_usd for c in spent), Decimal(0))
        earlier = earlier or []
        reference = self.costs.reference_model
        if payload is None:
            return JobCosts(Decimal(0), cloud, energy)
        final = None
        if isinstance(result, CloudAnswer):
            final = next(c for c in [*earlier, *log.calls] if c.call_id == result.call_id)
        if final is not None and route in (Route.cloud_direct, Route.fallback_cloud):
            return JobCosts(all_cloud_usd(reference, direct_call=final.usage), cloud, energy)
        schema = json.dumps(job.schema) if job.schema else ""
        output = final.usage.output_tokens if final else estimate_tokens(job.text_of(payload))
        counterfactual = all_cloud_usd(
            reference,
            system=job.system + schema,
            prompt=job.direct_prompt(),
            output_tokens=output,
        )
        return JobCosts(counterfactual, cloud, energy)

    def _give_up(self, work: _Work[P], reason: str, verdict: Verdict | None = None) -> Outcome[P]:
        """Nothing usable now: defer a job that can wait, else say no model answered."""
        if work.job.can_defer:
            return self._record(work, Route.deferred, reason, None, verdict)
        self.ledger.write(*self._call_writes(work.job, work.log, None))
        raise NoModelAnswered(f"no model could answer: {reason}")

    def _record(
        self,
        work: _Work[P],
        route: Route,
        reason: str,
        result: Draft[P] | CloudAnswer[P] | None,
        verdict: Verdict | None = None,
        agreement: dict[str, Any] | None = None,
        tier: Tier = "local",
        also: list[Write] | None = None,
        decision_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Outcome[P]:
        """Write everything this job produced, in one transaction (`also`: more rows of it;
        `details`: more of the decision's components)."""
        job, now = work.job, datetime.now(UTC)
        decision_id = decision_id or uuid.uuid4().hex
        components = {
            **((verdict.components or {}) if verdict else {}),
            **(agreement or {}),
            **(details or {}),
        }
        score = agreement["agreement"] if agreement else verdict.score if verdict else None
        if isinstance(result, CloudAnswer):
            payload, tier, model = result.payload, "cloud", result.model
        elif result is not None:
            payload = result.payload
            model = "+".join(agreement["models"]) if tier == "consensus" and agreement else None
            model = model or result.model or self.draft_model
        else:
            payload, model = None, None
        job_costs = self._job_costs(job, route, result, payload, work.log, work.earlier)
        outcome = Outcome(
            route=route,
            reason=reason,
            decision_id=decision_id,
            payload=payload,
            tier=tier if payload is not None else None,
            model=model,
            confidence=float(score) if score is not None else None,
            components=components or None,
            cloud_usd=job_costs.cloud_usd,
        )
        self.ledger.write(
            *self._call_writes(job, work.log, decision_id),
            decision_write(
                decision_id=decision_id,
                route=route,
                reason=reason,
                policy=self.policy,
                flow_run_id=self.flow_run_id,
                video_id=job.video_id,
                priority=job.priority if job.video_id else None,
                confidence=outcome.confidence,
                components=outcome.components,
                costs=job_costs,
            ),
            *job.result_writes(outcome, now),
            *(also or []),
            *self._tie_earlier(work, decision_id),
            *work.closing,
        )
        return outcome

    @staticmethod
    def _tie_earlier(work: _Work[P], decision_id: str) -> list[Write]:
        """Calls recorded before the job's decision (it waited for a batch) tied to it."""
        if not work.earlier:
            return []
        rows = [{"call_id": call.call_id, "decision_id": decision_id} for call in work.earlier]
        return [Write.update_existing("llm_calls", ("call_id",), rows)]
