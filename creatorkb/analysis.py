"""Tiered analysis of one video: route, draft locally, check, refine in the cloud, record.

Everything one video's analysis produced (its calls, the decision, the result, the video's
new status, the budget settlement) is written in one transaction right after the last model
call, so a run killed midway never loses a paid call for a finished video and the next run
does not pay for that video again.
"""

from __future__ import annotations

import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ValidationError

from creatorkb.agreement import agreement, mean_agreement
from creatorkb.calls import LocalUnavailable, ModelAnswer, ModelCall, Purpose
from creatorkb.chunking import estimate_tokens, split_text
from creatorkb.confidence import Confidence, assess
from creatorkb.insight import (
    INSIGHT_SCHEMA,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    Insight,
    draft_prompt,
    reduce_prompt,
    refine_prompt,
    synthesis_prompt,
)
from creatorkb.ledger import Ledger, Write
from creatorkb.liveness import is_gone, this_process
from creatorkb.local_model import LocalModel
from creatorkb.pricing import call_costs, call_row
from creatorkb.roster import Priority
from creatorkb.routing import Route, RoutingPolicy, Start, decision_write
from creatorkb.settings import CostOptions
from creatorkb.spending import BudgetedCloud

CLAIM_LIFETIME = timedelta(hours=2)
MAX_SPLITS = 2  # a part cut despite the sizing is halved, at most this many times


@dataclass(frozen=True)
class VideoJob:
    """A transcribed video waiting for analysis."""

    video_id: str
    channel_id: str
    priority: Priority
    title: str
    transcript: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one video."""

    video_id: str
    route: Route | None
    status: str  # analyzed | deferred | failed
    decision_id: str | None = None
    flagged: bool = False
    cloud_usd: Decimal = Decimal(0)
    reason: str = ""
    confidence: float | None = None  # the decision's (for consensus: the models' agreement)


@dataclass(frozen=True)
class Draft:
    """A local draft: the merged record (if any part parsed) and how much was read whole."""

    insight: Insight | None
    text: str | None
    coverage: float
    problems: list[str]


@dataclass(frozen=True)
class CloudResult:
    insight: Insight
    answer: ModelAnswer


@dataclass
class _Work:
    """What one video's analysis has produced so far."""

    job: VideoJob
    calls: list[ModelCall] = field(default_factory=list)
    closings: list[Write] = field(default_factory=list)  # budget reservations to close


@dataclass
class _Reading:
    """How a local draft's reads went: how many saw their whole prompt, what went wrong."""

    work: _Work
    model: str
    purpose: Purpose
    reads: int = 0
    whole: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.whole / self.reads if self.reads else 0.0


def _groups(records: list[Insight], room: int) -> list[list[Insight]]:
    """Consecutive groups whose merge prompt fits `room` tokens (estimated); every group but
    a lone last one has at least two records, so each round of merging shrinks the list."""
    groups: list[list[Insight]] = []
    current: list[Insight] = []
    used = 0
    for record in records:
        size = estimate_tokens(record.model_dump_json()) + 1
        if len(current) >= 2 and used + size > room:
            groups.append(current)
            current, used = [], 0
        current.append(record)
        used += size
    if current:
        groups.append(current)
    return groups


def parse_insight(text: str) -> Insight | None:
    """The record in a model's answer, or None if it is not valid for the schema."""
    try:
        return Insight.model_validate_json(text)
    except ValidationError:
        return None


def claim_videos(
    ledger: Ledger,
    *,
    limit: int,
    flow_run_id: str | None,
    video_ids: list[str] | None = None,
    force: bool = False,
) -> list[VideoJob]:
    """Transcribed videos for this run, claimed so that a concurrent run skips them.

    A claim lapses when it expires or when the process holding it is gone (killed), so a
    crashed run's videos are picked up by the next run at once. With `force`, the listed
    videos are analysed (and paid for) again even if already analysed.
    """
    now = datetime.now(UTC)
    statuses = ["transcribed", "analyzed"] if force else ["transcribed"]
    with ledger.transaction() as connection:
        rows = connection.execute(
            """
            SELECT v.video_id, v.channel_id, coalesce(c.priority, 'medium') AS priority,
                   coalesce(v.title, '') AS title, t.text AS transcript,
                   a.holder, a.expires_at > ? AS claimed
            FROM videos v
            JOIN transcripts t USING (video_id)
            LEFT JOIN creators c USING (channel_id)
            LEFT JOIN analysis_claims a USING (video_id)
            WHERE list_contains(?, v.status)
              AND (? IS NULL OR list_contains(?, v.video_id))
            ORDER BY CASE coalesce(c.priority, 'medium') WHEN 'critical' THEN 0
                     WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
                     v.published_at DESC NULLS LAST, v.video_id
            """,
            [now, statuses, video_ids, video_ids],
        ).fetchall()
        free = [row for row in rows if not row[6] or is_gone(row[5])][:limit]
        jobs = [VideoJob(r[0], r[1], Priority(r[2]), r[3], r[4]) for r in free]
        claims = [
            {
                "video_id": job.video_id,
                "flow_run_id": flow_run_id,
                "holder": this_process(),
                "claimed_at": now,
                "expires_at": now + CLAIM_LIFETIME,
            }
            for job in jobs
        ]
        ledger.apply(
            connection,
            Write.upsert(
                "analysis_claims",
                ("video_id",),
                claims,
                update=("flow_run_id", "holder", "claimed_at", "expires_at"),
            ),
        )
    return jobs


class Analyzer:
    """Analyses videos by the routing policy; safe to use from many threads at once."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: RoutingPolicy,
        costs: CostOptions,
        local: LocalModel,
        draft_model: str,
        cloud: BudgetedCloud,
        consensus_models: list[str] | None = None,
        flow_run_id: str | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.ledger = ledger
        self.warnings = warnings or []  # what this run cannot do, and how to fix it
        self.policy = policy
        self.costs = costs
        self.local = local
        self.draft_model = draft_model
        self.cloud = cloud
        self.consensus_models = consensus_models or [draft_model]
        self.flow_run_id = flow_run_id

    @property
    def local_slots(self) -> int:
        return self.local.options.parallel

    @property
    def cloud_slots(self) -> int:
        return self.cloud.slots

    # -- the route through one video --------------------------------------------

    def analyze(self, job: VideoJob, start: Start | None = None) -> Outcome:
        """Route, draft, check, refine and record one video (`start` overrides the policy)."""
        work = _Work(job)
        if not job.transcript.strip():
            return self._record_failure(work, "the transcript is empty")
        start = start or self.policy.start(job.channel_id, job.priority)
        if start is Start.cloud:
            return self._cloud_first(work)
        if start is Start.consensus:
            return self._consensus(work)
        draft = self._draft(work)
        if isinstance(draft, str):
            return self._cloud_instead(work, draft)
        confidence = self.check(job, draft)
        if confidence.accepted:
            return self._accept_local(work, draft, confidence)
        return self._refine(work, draft, confidence)

    def check(self, job: VideoJob, draft: Draft) -> Confidence:
        """The draft's composite confidence against the transcript."""
        return assess(
            draft.insight,
            job.transcript,
            coverage=draft.coverage,
            coverage_problems=draft.problems,
            threshold=self.policy.accept_threshold,
            min_grounding=self.policy.min_grounding,
        )

    def _cloud_first(self, work: _Work) -> Outcome:
        answer = self._ask_cloud(work, "direct", draft_prompt(work.job.title, work.job.transcript))
        if isinstance(answer, CloudResult):
            reason = f"priority {work.job.priority} starts in the cloud"
            return self._record(work, Route.cloud_direct, reason, answer)
        return self._cloud_failed(work, answer, draft=None, confidence=None)

    def _cloud_instead(self, work: _Work, local_problem: str) -> Outcome:
        answer = self._ask_cloud(work, "direct", draft_prompt(work.job.title, work.job.transcript))
        if isinstance(answer, CloudResult):
            reason = f"local model unavailable ({local_problem})"
            return self._record(work, Route.fallback_cloud, reason, answer)
        reason = f"local model unavailable ({local_problem}) and cloud unavailable ({answer})"
        return self._record(work, Route.deferred, reason)

    def _accept_local(self, work: _Work, draft: Draft, confidence: Confidence) -> Outcome:
        assert draft.insight is not None
        reason = f"local draft passed the check ({confidence.score:.2f})"
        outcome = self._record(work, Route.local_accept, reason, draft.insight, confidence)
        if self.policy.shadows(work.job.video_id):
            self._shadow(work.job, draft.insight, outcome.decision_id)
        return outcome

    def _refine(self, work: _Work, draft: Draft, confidence: Confidence) -> Outcome:
        prompt = refine_prompt(work.job.title, work.job.transcript, draft.text, confidence.reasons)
        answer = self._ask_cloud(work, "refine", prompt)
        if isinstance(answer, CloudResult):
            reason = "; ".join(confidence.reasons)
            return self._record(work, Route.cloud_refine, reason, answer, confidence)
        return self._cloud_failed(work, answer, draft, confidence)

    def _cloud_failed(
        self, work: _Work, problem: str, draft: Draft | None, confidence: Confidence | None
    ) -> Outcome:
        """The cloud could not answer: keep a local answer (flagged) or defer, per policy."""
        if self.policy.when_cloud_fails == "deferred":
            return self._record(work, Route.deferred, f"cloud unavailable ({problem})")
        if draft is None:
            local = self._draft(work)
            if isinstance(local, str):
                reason = f"cloud unavailable ({problem}) and local unavailable ({local})"
                return self._record(work, Route.deferred, reason)
            draft, confidence = local, self.check(work.job, local)
        if draft.insight is None:
            reason = f"cloud unavailable ({problem}) and the local draft is unusable"
            return self._record(work, Route.deferred, reason, None, confidence)
        reason = f"cloud unavailable ({problem}); local draft kept, flagged"
        return self._record(work, Route.fallback_local, reason, draft.insight, confidence)

    def _consensus(self, work: _Work) -> Outcome:
        """Several local models draft at once; a synthesis is built from their records; the
        cloud is asked when they agree too little."""
        with ThreadPoolExecutor(len(self.consensus_models)) as pool:
            drafts = list(
                pool.map(lambda model: self._draft(work, model, "consensus"), self.consensus_models)
            )
        records = [d.insight for d in drafts if isinstance(d, Draft) and d.insight is not None]
        unused = "; ".join(
            f"{model}: {draft}"
            for model, draft in zip(self.consensus_models, drafts, strict=True)
            if isinstance(draft, str)
        )
        if not records:
            return self._cloud_instead(
                work, f"no consensus model produced a usable record ({unused or 'none valid'})"
            )
        score = mean_agreement(records, agreement)
        synthesis = self._synthesize(work, records)
        if synthesis is None:
            return self._cloud_instead(work, "the consensus could not be synthesised")
        components = {
            "agreement": round(score, 4),
            "answers": len(records),
            "models": self.consensus_models,
        }
        if score >= self.policy.consensus_threshold:
            reason = f"{len(records)} models agree ({score:.2f})"
            reason += f"; not answered: {unused}" if unused else ""
            return self._record(work, Route.consensus, reason, synthesis, agreement=components)
        reasons = [
            f"the consensus models agree too little ({score:.2f} < "
            f"{self.policy.consensus_threshold:.2f})"
        ]
        draft = Draft(synthesis, synthesis.model_dump_json(), 1.0, reasons)
        answer = self._ask_cloud(
            work, "refine", refine_prompt(work.job.title, work.job.transcript, draft.text, reasons)
        )
        if isinstance(answer, CloudResult):
            return self._record(work, Route.cloud_refine, reasons[0], answer, agreement=components)
        return self._cloud_failed(work, answer, draft, self.check(work.job, draft))

    def _synthesize(self, work: _Work, records: list[Insight]) -> Insight | None:
        """One record from several: by the cloud or the local draft model, per policy."""
        if len(records) == 1:
            return records[0]
        prompt = synthesis_prompt(work.job.title, records)
        if self.policy.synthesizer == "cloud":
            answer = self._ask_cloud(work, "synthesis", prompt)
            if isinstance(answer, CloudResult):
                return answer.insight
        try:
            local = self.local.generate(
                self.draft_model, SYSTEM_PROMPT, prompt, "synthesis", INSIGHT_SCHEMA
            )
        except LocalUnavailable as error:
            work.calls += [error.call] if error.call else []
            return None
        work.calls.append(local.call)
        return parse_insight(local.text)

    # -- local drafting -------------------------------------------------------------

    def _draft(
        self, work: _Work, model: str | None = None, purpose: Purpose = "draft"
    ) -> Draft | str:
        """A local model's draft: the transcript read in parts if it exceeds the context (map),
        the parts' records merged (reduce); or why the local model could not draft.

        Coverage is the share of these reads that saw their whole prompt."""
        reading = _Reading(work, model or self.draft_model, purpose)
        try:
            room = self.local.prompt_budget(reading.model, SYSTEM_PROMPT)
            room -= estimate_tokens(draft_prompt(work.job.title, "", 99, 99))
            parts = split_text(work.job.transcript, room)
            records: list[Insight] = []
            for number, part in enumerate(parts, start=1):
                records += self._read_part(reading, part, number, len(parts), splits=0)
            merged = self._merge(reading, records) if records else None
        except LocalUnavailable as error:
            work.calls += [error.call] if error.call else []
            return str(error)
        text = merged.model_dump_json() if merged else None
        return Draft(merged, text, reading.coverage, reading.problems)

    def _generate(self, reading: _Reading, prompt: str) -> ModelAnswer:
        answer = self.local.generate(
            reading.model, SYSTEM_PROMPT, prompt, reading.purpose, INSIGHT_SCHEMA
        )
        reading.work.calls.append(answer.call)
        return answer

    def _judge(self, reading: _Reading, answer: ModelAnswer, what: str) -> Insight | None:
        """Count a read (whole or cut) and parse its record."""
        reading.reads += 1
        if answer.prompt_cut:
            reading.problems.append(f"{what} was cut by the local context window")
        else:
            reading.whole += 1
        insight = parse_insight(answer.text)
        if insight is None:
            cut = " (cut at the output token limit)" if answer.answer_cut else ""
            reading.problems.append(f"{what}: the answer is not valid for the schema{cut}")
        return insight

    def _read_part(
        self, reading: _Reading, part: str, number: int, total: int, splits: int
    ) -> list[Insight]:
        """The record(s) of one part; a part the model still cut is read again in halves."""
        answer = self._generate(reading, draft_prompt(reading.work.job.title, part, number, total))
        if answer.prompt_cut and splits < MAX_SPLITS and len(part) > 1:
            records: list[Insight] = []
            for half in split_text(part, max(estimate_tokens(part) // 2, 1)):
                records += self._read_part(reading, half, number, total, splits + 1)
            return records
        insight = self._judge(reading, answer, f"part {number} of {total}")
        return [insight] if insight else []

    def _merge(self, reading: _Reading, records: list[Insight]) -> Insight | None:
        """Merge records in rounds of groups that fit the context, until one is left."""
        room = self.local.prompt_budget(reading.model, SYSTEM_PROMPT)
        room -= estimate_tokens(reduce_prompt(reading.work.job.title, []))
        while len(records) > 1:
            merged: list[Insight] = []
            for group in _groups(records, room):
                result = group[0] if len(group) == 1 else self._merge_group(reading, group, 0)
                if result is None:
                    return None
                merged.append(result)
            records = merged
        return records[0]

    def _merge_group(self, reading: _Reading, group: list[Insight], splits: int) -> Insight | None:
        """One merged record; a group the model cut is merged again in two halves."""
        answer = self._generate(reading, reduce_prompt(reading.work.job.title, group))
        if answer.prompt_cut and len(group) > 2 and splits < MAX_SPLITS:
            middle = len(group) // 2
            halves = [
                self._merge_group(reading, g, splits + 1) for g in (group[:middle], group[middle:])
            ]
            if None in halves:
                return None
            return self._merge_group(reading, [h for h in halves if h], splits + 1)
        return self._judge(reading, answer, "merging the parts' records")

    # -- the cloud ------------------------------------------------------------------

    def _ask_cloud(self, work: _Work, purpose: Purpose, prompt: str) -> CloudResult | str:
        """A cloud record, paid from a budget reservation; or why there is none."""
        reply = self.cloud.ask(SYSTEM_PROMPT, prompt, purpose, INSIGHT_SCHEMA)
        work.calls += reply.calls
        work.closings += reply.closings
        if reply.answer is None:
            return reply.problem or "the cloud did not answer"
        insight = parse_insight(reply.answer.text)
        if insight is None:
            return "the cloud answer is not valid for the schema"
        return CloudResult(insight, reply.answer)

    def _shadow(self, job: VideoJob, local: Insight, decision_id: str | None) -> None:
        """Answer an accepted video in the cloud too, to measure how good local answers are."""
        work = _Work(job)
        answer = self._ask_cloud(work, "shadow", draft_prompt(job.title, job.transcript))
        writes = self._call_writes(work, decision_id)
        if isinstance(answer, CloudResult):
            score = agreement(local, answer.insight)
            review = {
                "video_id": job.video_id,
                "decision_id": decision_id,
                "call_id": answer.answer.call.call_id,
                "agreement": score,
                "local_good_enough": score >= self.policy.shadow_agreement,
                "ts": datetime.now(UTC),
            }
            writes.append(
                Write.upsert(
                    "shadow_reviews",
                    ("video_id",),
                    [review],
                    update=tuple(name for name in review if name != "video_id"),
                )
            )
        self.ledger.write(*writes)

    # -- recording ------------------------------------------------------------------

    def _call_writes(self, work: _Work, decision_id: str | None) -> list[Write]:
        rows = [
            call_row(
                call,
                self.costs,
                flow_run_id=self.flow_run_id,
                video_id=work.job.video_id,
                decision_id=decision_id,
            )
            for call in work.calls
        ]
        return [Write.insert_new("llm_calls", ("call_id",), rows), *work.closings]

    def _record(
        self,
        work: _Work,
        route: Route,
        reason: str,
        result: Insight | CloudResult | None = None,
        confidence: Confidence | None = None,
        *,
        agreement: dict[str, object] | None = None,
    ) -> Outcome:
        """Write everything this video produced, in one transaction.

        A consensus decision's confidence is the models' agreement (in `components` too)."""
        job, now = work.job, datetime.now(UTC)
        decision_id = uuid.uuid4().hex
        writes = self._call_writes(work, decision_id)
        components = {**(confidence.components() if confidence else {}), **(agreement or {})}
        score = agreement["agreement"] if agreement else confidence.score if confidence else None
        writes.append(
            decision_write(
                decision_id=decision_id,
                route=route,
                reason=reason,
                policy=self.policy,
                flow_run_id=self.flow_run_id,
                video_id=job.video_id,
                priority=job.priority,
                confidence=float(score) if score is not None else None,
                components=components or None,
            )
        )
        if result is not None:
            writes.append(self._analysis_write(job, decision_id, route, result, confidence, now))
        deferred = route is Route.deferred
        status = "transcribed" if deferred else "analyzed"
        writes += _video_writes(job, status, reason if deferred else None, now)
        self.ledger.write(*writes)
        return Outcome(
            job.video_id,
            route,
            "deferred" if deferred else "analyzed",
            decision_id,
            route is Route.fallback_local,
            sum((call_costs(call, self.costs).cost_usd for call in work.calls), Decimal(0)),
            reason,
            float(score) if score is not None else None,
        )

    def _analysis_write(
        self,
        job: VideoJob,
        decision_id: str,
        route: Route,
        result: Insight | CloudResult,
        confidence: Confidence | None,
        now: datetime,
    ) -> Write:
        if isinstance(result, CloudResult):
            insight, tier, model = result.insight, "cloud", result.answer.call.model
        elif route is Route.consensus:
            insight, tier, model = result, "consensus", "+".join(self.consensus_models)
        else:
            insight, tier, model = result, "local", self.draft_model
        if tier != "local":
            # A cloud or consensus record gets the same evidence check a local draft has.
            confidence = assess(
                insight,
                job.transcript,
                coverage=1.0,
                coverage_problems=[],
                threshold=self.policy.accept_threshold,
                min_grounding=self.policy.min_grounding,
            )
        row = {
            "video_id": job.video_id,
            "decision_id": decision_id,
            "final_tier": tier,
            "model": model,
            "confidence": confidence.score if confidence else None,
            "result": insight.model_dump(mode="json"),
            "flagged": route is Route.fallback_local,
            "prompt_version": PROMPT_VERSION,
            "created_at": now,
        }
        update = tuple(name for name in row if name != "video_id")
        return Write.upsert("analyses", ("video_id",), [row], update)

    def _record_failure(self, work: _Work, reason: str) -> Outcome:
        self.ledger.write(
            *self._call_writes(work, None),
            *_video_writes(work.job, "failed", reason, datetime.now(UTC)),
        )
        return Outcome(work.job.video_id, None, "failed", reason=reason)


def _video_writes(job: VideoJob, status: str, reason: str | None, now: datetime) -> list[Write]:
    """The video's new status, and its claim released (done, or free for the next run)."""
    return [
        Write.update_existing(
            "videos",
            ("video_id",),
            [
                {
                    "video_id": job.video_id,
                    "status": status,
                    "status_reason": reason,
                    "updated_at": now,
                }
            ],
        ),
        Write.update_existing(
            "analysis_claims", ("video_id",), [{"video_id": job.video_id, "expires_at": now}]
        ),
    ]


class TierQueue:
    """Hands out videos so that the local and the cloud slots all stay busy: each tier has
    its own line of videos and a bounded number in flight (twice its slots; local videos may
    also be waiting for a cloud refinement, so they get the cloud's slots on top)."""

    def __init__(self, jobs: list[VideoJob], analyzer: Analyzer) -> None:
        self._policy = analyzer.policy
        self._lines: dict[bool, deque[VideoJob]] = {True: deque(), False: deque()}
        for job in jobs:
            self._lines[self._in_cloud(job)].append(job)
        cloud = max(analyzer.cloud_slots, 1)
        self._limits = {True: 2 * cloud, False: 4 * analyzer.local_slots + cloud}
        self._busy = {True: 0, False: 0}

    def _in_cloud(self, job: VideoJob) -> bool:
        return self._policy.start(job.channel_id, job.priority) is Start.cloud

    def __bool__(self) -> bool:
        return any(self._lines.values())

    def take(self) -> VideoJob | None:
        """The next video for the least busy tier with room, or None when both are full."""
        ready = [tier for tier, line in self._lines.items() if line]
        ready = [tier for tier in ready if self._busy[tier] < self._limits[tier]]
        if not ready:
            return None
        tier = min(ready, key=lambda t: self._busy[t] / self._limits[t])
        self._busy[tier] += 1
        return self._lines[tier].popleft()

    def release(self, job: VideoJob) -> None:
        """A video handed out earlier is finished."""
        self._busy[self._in_cloud(job)] -= 1


class AnalysisSummary(BaseModel):
    """What one analysis run did."""

    videos: int
    analyzed: int
    deferred: int
    failed: int
    routes: dict[str, int]
    flagged: int
    cloud_usd: Decimal
    errors: dict[str, str]
    warnings: list[str] = []

    @classmethod
    def of(
        cls, outcomes: list[Outcome], errors: dict[str, str], warnings: list[str] | None = None
    ) -> AnalysisSummary:
        routes: dict[str, int] = {}
        for outcome in outcomes:
            if outcome.route is not None:
                routes[outcome.route.value] = routes.get(outcome.route.value, 0) + 1
        return cls(
            videos=len(outcomes) + len(errors),
            analyzed=sum(outcome.status == "analyzed" for outcome in outcomes),
            deferred=sum(outcome.status == "deferred" for outcome in outcomes),
            failed=sum(outcome.status == "failed" for outcome in outcomes) + len(errors),
            routes=dict(sorted(routes.items())),
            flagged=sum(outcome.flagged for outcome in outcomes),
            cloud_usd=sum((outcome.cloud_usd for outcome in outcomes), Decimal(0)),
            errors=errors,
            warnings=warnings or [],
        )

    def to_markdown(self) -> str:
        lines = [
            "# Analysis summary",
            "",
            "| videos | analysed | deferred | failed | flagged | cloud $ |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {self.videos} | {self.analyzed} | {self.deferred} | {self.failed} "
            f"| {self.flagged} | {self.cloud_usd:.4f} |",
        ]
        if self.routes:
            lines += ["", "| route | videos |", "|---|---:|"]
            lines += [f"| {route} | {count} |" for route, count in self.routes.items()]
        if self.warnings:
            lines += ["", "**Not possible this run:**", *(f"- {w}" for w in self.warnings)]
        if self.errors:
            lines += ["", "| video | error |", "|---|---|"]
            lines += [f"| {video} | {error} |" for video, error in self.errors.items()]
        return "\n".join(lines)
