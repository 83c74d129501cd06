"""Video analysis as a job kind of the routing engine: which videos, their prompts and check,
and the rows a finished video leaves (its record, its new status, its claim released).

Everything one video's analysis produced is written in one transaction right after its last
model call, so a run killed midway never loses a paid call for a finished video and the next
run does not pay for that video again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
from pydantic import BaseModel

from creatorkb.agreement import agreement
from creatorkb.batches import OPEN, BatchRun, WaitingVideo, load_item
from creatorkb.calls import CallLog, LocalBackend, ModelAnswer, Purpose
from creatorkb.confidence import Confidence, assess
from creatorkb.engine import Draft, Job, Outcome, RoutingEngine, Verdict
from creatorkb.insight import (
    INSIGHT_SCHEMA,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    Insight,
    draft_prompt,
    parse_insight,
    record_tokens,
    refine_prompt,
    synthesis_prompt,
)
from creatorkb.ledger import Ledger, Write
from creatorkb.liveness import LOCAL, Liveness, this_process
from creatorkb.reading import LocalReader
from creatorkb.roster import Priority
from creatorkb.routing import Route, RoutingPolicy, Start
from creatorkb.status import VideoStatus

CLAIM_LIFETIME = timedelta(hours=2)


@dataclass(frozen=True)
class VideoJob:
    """A transcribed video claimed for analysis (its transcript is loaded when it is run)."""

    video_id: str
    channel_id: str
    priority: Priority
    title: str
    status: VideoStatus = VideoStatus.transcribed
    batch_item: str | None = None  # the batch item (custom_id) whose answer it goes on with


@dataclass(frozen=True)
class VideoResult:
    """What happened to one video."""

    video_id: str
    route: Route | None
    status: VideoStatus
    decision_id: str | None = None
    flagged: bool = False
    cloud_usd: Decimal = Decimal(0)
    reason: str = ""
    confidence: float | None = None  # the decision's (for consensus: the models' agreement)
    waiting: str | None = None  # the batch item it waits on (no decision yet)


class VideoAnalysis(Job[Insight]):
    """One video's transcript turned into its insight record."""

    system = SYSTEM_PROMPT
    schema = INSIGHT_SCHEMA

    def __init__(self, video: VideoJob, transcript: str, policy: RoutingPolicy) -> None:
        self.video = video
        self.transcript = transcript
        self.policy = policy
        self.priority = video.priority
        self.start_key = video.channel_id
        self.video_id = video.video_id
        self.shadow_key = video.video_id
        self.max_output_tokens = record_tokens(transcript)

    def direct_prompt(self) -> str:
        return draft_prompt(self.video.title, self.transcript)

    def draft(
        self, local: LocalBackend, log: CallLog, model: str, purpose: Purpose
    ) -> Draft[Insight]:
        return LocalReader(local, log, model, purpose).read(self.video.title, self.transcript)

    def check(self, draft: Draft[Insight]) -> Verdict:
        return _verdict(self.assess(draft.payload, draft.coverage, draft.problems))

    def assess(
        self, insight: Insight | None, coverage: float = 1.0, problems: list[str] | None = None
    ) -> Confidence:
        """The record's composite confidence against the transcript."""
        return assess(
            insight,
            self.transcript,
            coverage=coverage,
            coverage_problems=problems or [],
            threshold=self.policy.accept_threshold,
            min_grounding=self.policy.min_grounding,
            min_quote_words=self.policy.min_quote_words,
        )

    def refine_prompt(self, draft: Draft[Insight], reasons: list[str]) -> str:
        return refine_prompt(self.video.title, self.transcript, draft.text, reasons)

    def parse(self, answer: ModelAnswer) -> Insight | None:
        return parse_insight(answer.text)

    def text_of(self, payload: Insight) -> str:
        return payload.model_dump_json()

    def restore(self, text: str | None) -> Insight | None:
        return parse_insight(text) if text else None

    def agreement(self, first: Insight, second: Insight) -> float:
        return agreement(first, second)

    def synthesis_prompt(self, payloads: list[Insight]) -> str:
        return synthesis_prompt(self.video.title, payloads)

    def result_writes(self, outcome: Outcome[Insight], now: datetime) -> list[Write]:
        writes = []
        if outcome.payload is not None:
            writes.append(self._analysis_write(outcome, now))
        status = VideoStatus.transcribed if outcome.deferred else VideoStatus.analyzed
        reason = outcome.reason if outcome.deferred else None
        return writes + video_writes(self.video, status, reason, now)

    def _analysis_write(self, outcome: Outcome[Insight], now: datetime) -> Write:
        insight = outcome.payload
        assert insight is not None
        # A cloud or consensus record gets the same evidence check a local draft has.
        local = outcome.tier == "local"
        confidence = outcome.confidence if local else self.assess(insight).score
        row = {
            "video_id": self.video.video_id,
            "decision_id": outcome.decision_id,
            "final_tier": outcome.tier,
            "model": outcome.model,
            "confidence": confidence,
            "result": insight.model_dump(mode="json"),
            "flagged": outcome.flagged,
            "prompt_version": PROMPT_VERSION,
            "created_at": now,
        }
        update = tuple(name for name in row if name != "video_id")
        return Write.upsert("analyses", ("video_id",), [row], update)


def _verdict(confidence: Confidence) -> Verdict:
    return Verdict(
        confidence.accepted, confidence.reasons, confidence.score, confidence.components()
    )


def analyze_video(
    engine: RoutingEngine,
    video: VideoJob,
    start: Start | None = None,
    models: list[str] | None = None,
) -> VideoResult:
    """Route, draft, check, refine and record one video (`start` overrides the policy,
    `models` the consensus models)."""
    transcript = load_transcript(engine.ledger, video.video_id)
    if not transcript.strip():
        return record_failure(engine.ledger, video, "the transcript is empty")
    job = VideoAnalysis(video, transcript, engine.policy)
    if video.batch_item is not None:
        outcome = engine.resume(job, load_item(engine.ledger, video.batch_item))
    else:
        outcome = engine.run(job, start, models)
    return VideoResult(
        video.video_id,
        outcome.route,
        VideoStatus.transcribed if outcome.deferred else VideoStatus.analyzed,
        outcome.decision_id,
        outcome.flagged,
        outcome.cloud_usd,
        outcome.reason,
        outcome.confidence,
        outcome.waiting,
    )


def load_transcript(ledger: Ledger, video_id: str) -> str:
    rows = ledger.rows("SELECT text FROM transcripts WHERE video_id = ?", [video_id])
    return rows[0]["text"] if rows else ""


def record_failure(ledger: Ledger, video: VideoJob, reason: str) -> VideoResult:
    ledger.write(*video_writes(video, VideoStatus.failed, reason, datetime.now(UTC)))
    return VideoResult(video.video_id, None, VideoStatus.failed, reason=reason)


def video_writes(
    video: VideoJob, status: VideoStatus, reason: str | None, now: datetime
) -> list[Write]:
    """The video's new status, and its claim released (done, or free for the next run)."""
    return [
        Write.update_existing(
            "videos",
            ("video_id",),
            [
                {
                    "video_id": video.video_id,
                    "status": video.status.becomes(status),
                    "status_reason": reason,
                    "updated_at": now,
                }
            ],
        ),
        Write.update_existing(
            "analysis_claims", ("video_id",), [{"video_id": video.video_id, "expires_at": now}]
        ),
    ]


def claim_videos(
    ledger: Ledger,
    *,
    limit: int,
    flow_run_id: str | None,
    video_ids: list[str] | None = None,
    force: bool = False,
    liveness: Liveness = LOCAL,
) -> list[VideoJob]:
    """Transcribed videos for this run, claimed so that a concurrent run skips them.

    A claim lapses when it expires or when its holder is gone (`liveness`: its process on
    this host, or its flow run finished, on any machine), so a crashed run's videos are
    picked up by the next run at once. With `force`, the listed videos are analysed (and
    paid for) again even if already analysed.
    """
    now = datetime.now(UTC)
    statuses = (
        [VideoStatus.transcribed, VideoStatus.analyzed] if force else [VideoStatus.transcribed]
    )

    def claim_in(connection: duckdb.DuckDBPyConnection) -> list[VideoJob]:
        holders = connection.execute(
            "SELECT DISTINCT holder, flow_run_id FROM analysis_claims WHERE expires_at > ?",
            [now],
        ).fetchall()
        gone = liveness.lapsed((holder, run) for holder, run in holders) if holders else set()
        lapsed = [f"{holder}|{run or ''}" for holder, run in gone]
        rows = connection.execute(
            f"""
            SELECT v.video_id, v.channel_id, coalesce(c.priority, 'medium') AS priority,
                   coalesce(v.title, '') AS title, v.status
            FROM videos v
            JOIN transcripts t USING (video_id)
            LEFT JOIN creators c USING (channel_id)
            LEFT JOIN analysis_claims a USING (video_id)
            WHERE list_contains(?, v.status)
              AND (? IS NULL OR list_contains(?, v.video_id))
              AND (a.expires_at IS NULL OR a.expires_at <= ?
                   OR list_contains(?, a.holder || '|' || coalesce(a.flow_run_id, '')))
              AND v.video_id NOT IN (
                  SELECT video_id FROM batch_items WHERE list_contains(?, status))
            ORDER BY {Priority.rank_sql("coalesce(c.priority, 'medium')")},
                     v.published_at DESC NULLS LAST, v.video_id
            LIMIT ?
            """,
            [[str(s) for s in statuses], video_ids, video_ids, now, lapsed, list(OPEN), limit],
        ).fetchall()
        jobs = [VideoJob(r[0], r[1], Priority(r[2]), r[3], VideoStatus(r[4])) for r in rows]
        # Videos whose batch answer (or failure) is in: each goes on from where it waited.
        rows = connection.execute(
            """
            SELECT v.video_id, v.channel_id, coalesce(c.priority, 'medium') AS priority,
                   coalesce(v.title, '') AS title, v.status, b.custom_id
            FROM batch_items b
            JOIN videos v USING (video_id)
            LEFT JOIN creators c USING (channel_id)
            LEFT JOIN analysis_claims a USING (video_id)
            WHERE b.status IN ('answered', 'failed')
              AND (a.expires_at IS NULL OR a.expires_at <= ?
                   OR list_contains(?, a.holder || '|' || coalesce(a.flow_run_id, '')))
            ORDER BY b.answered_at, b.custom_id
            LIMIT ?
            """,
            [now, lapsed, limit],
        ).fetchall()
        jobs = [
            VideoJob(r[0], r[1], Priority(r[2]), r[3], VideoStatus(r[4]), r[5]) for r in rows
        ] + jobs[: max(0, limit - len(rows))]
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

    # One transaction (on a lake, retried whole when a concurrent claim conflicts with it).
    return ledger.atomic(claim_in)


class TierQueue:
    """Hands out videos so that the local and the cloud slots all stay busy: each tier has
    its own line of videos and a bounded number in flight (twice its slots; local videos may
    also be waiting for a cloud refinement, so they get the cloud's slots on top)."""

    def __init__(self, jobs: list[VideoJob], engine: RoutingEngine) -> None:
        self._policy = engine.policy
        self._lines: dict[bool, deque[VideoJob]] = {True: deque(), False: deque()}
        for job in jobs:
            self._lines[self._in_cloud(job)].append(job)
        cloud = max(engine.cloud_slots, 1)
        self._limits = {True: 2 * cloud, False: 4 * engine.local_slots + cloud}
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
    waiting: list[WaitingVideo] = []  # videos waiting on a Message Batch after this run
    batches_sent: list[str] = []  # batch ids sent this run
    batch_answers: int = 0  # batch items whose answer this run recorded
    batch_problems: list[str] = []

    @classmethod
    def of(
        cls,
        results: list[VideoResult],
        errors: dict[str, str],
        warnings: list[str] | None = None,
        batches: BatchRun | None = None,
        waiting: list[WaitingVideo] | None = None,
    ) -> AnalysisSummary:
        routes: dict[str, int] = {}
        for result in results:
            if result.route is not None and result.waiting is None:
                routes[result.route.value] = routes.get(result.route.value, 0) + 1
        return cls(
            videos=len(results) + len(errors),
            analyzed=sum(result.status is VideoStatus.analyzed for result in results),
            deferred=sum(
                result.route is Route.deferred and result.waiting is None for result in results
            ),
            failed=sum(result.status is VideoStatus.failed for result in results) + len(errors),
            routes=dict(sorted(routes.items())),
            flagged=sum(result.flagged for result in results),
            cloud_usd=sum((result.cloud_usd for result in results), Decimal(0)),
            errors=errors,
            warnings=warnings or [],
            waiting=waiting or [],
            batches_sent=batches.batches_sent if batches else [],
            batch_answers=batches.answered if batches else 0,
            batch_problems=batches.problems if batches else [],
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
        if self.batches_sent or self.batch_answers:
            sent = ", ".join(self.batches_sent) or "none"
            lines += ["", f"Message Batches: sent {sent}; answers collected: {self.batch_answers}"]
        if self.waiting:
            lines += [
                "",
                f"**Waiting on a Message Batch: {len(self.waiting)} video(s)**",
                "",
                "| video | batch | item | step | age (h) |",
                "|---|---|---|---|---:|",
            ]
            lines += [
                f"| {w.video_id} | {w.batch_id or 'not sent yet'} ({w.status}) | {w.custom_id} "
                f"| {w.purpose} by {w.model} | {w.age_hours:.2f} |"
                for w in self.waiting
            ]
        if self.batch_problems:
            lines += ["", "**Batches:**", *(f"- {p}" for p in self.batch_problems)]
        if self.warnings:
            lines += ["", "**Not possible this run:**", *(f"- {w}" for w in self.warnings)]
        if self.errors:
            lines += ["", "| video | error |", "|---|---|"]
            lines += [f"| {video} | {error} |" for video, error in self.errors.items()]
        return "\n".join(lines)
