"""Message Batches: cloud work that can wait, sent at half price and collected by a later run.

An item is on record before anything is sent, and each step of its life is one short
transaction, so a run killed at any moment never pays twice and never loses a paid answer:

    queued ──(send started: recorded first)──> sending ──(batch id recorded)──> submitted
       ^                                          │                              │
       └── the batches Anthropic lists since ─────┘                              │
           hold none of its custom_id                                            v
    done <──(its video finished)── answered | failed <──(its result line read)───┘

- queued: the engine wrote the item (custom_id, request, what the job needs to go on) with
  the job's calls so far and its budget reservation (the bound at the batch price).
- sending: a run is about to create a batch with it. Killed here, a later run cannot tell
  whether Anthropic got the batch: it lists the batches created since and reads the results
  of those it does not know, matching custom ids; only once every such batch has ended
  without the item does it send the item again.
- submitted: the batch id is on record; later runs retrieve it, cancel it past the policy's
  `batch_max_wait_hours`, and read its results file when it has ended.
- answered: the result line was read: the call is in `llm_calls` at the batch price and its
  reservation settled, in one transaction. failed: it errored, expired or was canceled (not
  billed: its reservation released), or kb could not read it (lost: the reservation stays
  open as possibly billed). Either way the engine goes on with the video (engine.resume).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from creatorkb.budget import Budget
from creatorkb.calls import ModelCall
from creatorkb.errors import BatchError, BatchNotFound
from creatorkb.ledger import Ledger, Write
from creatorkb.liveness import LOCAL, Liveness, this_process
from creatorkb.recording import call_writes
from creatorkb.settings import CostOptions

if TYPE_CHECKING:
    import duckdb

    from creatorkb.cloud_model import CloudModel

logger = logging.getLogger(__name__)

OPEN = ("queued", "sending", "submitted", "answered", "failed")  # not yet finished with
IN_FLIGHT = ("queued", "sending", "submitted")  # sent or about to be; no result yet
MAX_RESULT_READS = 3  # reads of a results file that leave an item unread before it is lost
CLOCK_SKEW = timedelta(minutes=10)  # between this machine and Anthropic, when matching
MAX_ITEMS_PER_BATCH = 10_000
_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"([^"]+)"')


def new_custom_id(video_id: str, purpose: str) -> str:
    """A batch item's id: unique, at most 64 characters of [a-zA-Z0-9_-] as the API asks."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", video_id)[:24]
    return f"kb-{purpose[:6]}-{safe}-{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class BatchInfo:
    """A Message Batch as Anthropic describes it."""

    batch_id: str
    processing_status: str  # in_progress, canceling, ended
    created_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class ItemResult:
    """One line of a batch's results file."""

    custom_id: str
    type: str  # succeeded, errored, canceled, expired
    message: Any = None  # the SDK's Message, for a succeeded item
    error: str | None = None


@dataclass(frozen=True)
class Results:
    """A batch's results file: the lines read, and what could not be read (by custom id
    where the line still shows one)."""

    items: list[ItemResult]
    unreadable: list[str] = field(default_factory=list)


class BatchApi:
    """Anthropic's Message Batches API through the official SDK (the client of CloudModel)."""

    def __init__(self, cloud: CloudModel) -> None:
        self.cloud = cloud
        self._batches = cloud.client.messages.batches

    def create(self, items: list[tuple[str, dict[str, Any]]]) -> BatchInfo:
        requests: Any = [{"custom_id": cid, "params": params} for cid, params in items]
        return _info(self._batches.create(requests=requests))

    def retrieve(self, batch_id: str) -> BatchInfo:
        import anthropic

        try:
            return _info(self._batches.retrieve(batch_id))
        except anthropic.NotFoundError as error:
            raise BatchNotFound(batch_id) from error

    def cancel(self, batch_id: str) -> BatchInfo:
        import anthropic

        try:
            return _info(self._batches.cancel(batch_id))
        except anthropic.NotFoundError as error:
            raise BatchNotFound(batch_id) from error

    def recent(self, since: datetime) -> Iterator[BatchInfo]:
        """Batches created at or after `since`, newest first (the list pages backwards)."""
        for batch in self._batches.list(limit=100):
            if batch.created_at < since:
                return
            yield _info(batch)

    def results(self, batch_id: str) -> Results:
        """The results file of an ended batch, line by line: a line that is not JSON, or not
        a result, is reported (with its custom id when it shows one), not fatal."""
        import anthropic
        from anthropic.types.messages import MessageBatchIndividualResponse
        from pydantic import ValidationError

        try:
            decoder = self._batches.results(batch_id)
        except anthropic.NotFoundError as error:
            raise BatchNotFound(batch_id) from error
        except anthropic.AnthropicError as error:
            raise BatchError(f"the results of batch {batch_id} cannot be read: {error}") from error
        items, unreadable = [], []
        try:
            for raw in decoder.http_response.iter_lines():
                if not raw.strip():
                    continue
                try:
                    line = MessageBatchIndividualResponse.model_validate(json.loads(raw))
                except (ValueError, ValidationError):
                    found = _CUSTOM_ID.search(raw)
                    unreadable.append(found[1] if found else raw[:80])
                    continue
                result = line.result
                error = None
                if result.type == "errored":
                    inner = result.error.error
                    error = f"{inner.type}: {inner.message}"
                message = result.message if result.type == "succeeded" else None
                items.append(ItemResult(line.custom_id, result.type, message, error))
        finally:
            decoder.close()
        return Results(items, unreadable)


def _info(batch: Any) -> BatchInfo:
    return BatchInfo(batch.id, batch.processing_status, batch.created_at, batch.ended_at)


@dataclass(frozen=True)
class BatchItem:
    """A batch item as the ledger holds it."""

    custom_id: str
    video_id: str
    purpose: str
    model: str
    status: str
    batch_id: str | None
    reservation_id: str | None
    request: dict[str, Any]
    context: dict[str, Any]
    result_type: str | None = None
    result_text: str | None = None
    call: ModelCall | None = None
    problem: str | None = None

    @property
    def answered(self) -> bool:
        return self.status == "answered"

    def done_write(self, now: datetime) -> Write:
        """The item finished with: its video's outcome is recorded in the same transaction."""
        return Write.update_existing(
            "batch_items",
            ("custom_id",),
            [{"custom_id": self.custom_id, "status": "done", "finished_at": now}],
        )


def queue_write(
    *,
    custom_id: str,
    video_id: str,
    purpose: str,
    model: str,
    reservation_id: str,
    request: dict[str, Any],
    context: dict[str, Any],
    flow_run_id: str | None,
) -> Write:
    """An item on record, before it is sent (written with the job's calls so far)."""
    row = {
        "custom_id": custom_id,
        "video_id": video_id,
        "purpose": purpose,
        "model": model,
        "status": "queued",
        "batch_id": None,
        "reservation_id": reservation_id,
        "flow_run_id": flow_run_id,
        "holder": this_process(),
        "queued_at": datetime.now(UTC),
        "request": request,
        "context": context,
    }
    return Write.insert_new("batch_items", ("custom_id",), [row])


_ITEM_COLUMNS = (
    "custom_id, video_id, purpose, model, status, batch_id, reservation_id, request, context, "
    "result_type, result_text, call, problem"
)


def _item(row: dict[str, Any]) -> BatchItem:
    def parsed(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    call = parsed(row["call"])
    return BatchItem(
        custom_id=row["custom_id"],
        video_id=row["video_id"],
        purpose=row["purpose"],
        model=row["model"],
        status=row["status"],
        batch_id=row["batch_id"],
        reservation_id=row["reservation_id"],
        request=parsed(row["request"]),
        context=parsed(row["context"]),
        result_type=row["result_type"],
        result_text=row["result_text"],
        call=ModelCall.from_json(call) if call else None,
        problem=row["problem"],
    )


def load_item(ledger: Ledger, custom_id: str) -> BatchItem:
    [row] = ledger.rows(f"SELECT {_ITEM_COLUMNS} FROM batch_items WHERE custom_id = ?", [custom_id])
    return _item(row)


def has_open_items(ledger: Ledger) -> bool:
    """Whether any batch item is not yet finished with (a run then needs the cloud)."""
    [row] = ledger.rows(
        "SELECT count(*) AS n FROM batch_items WHERE list_contains(?, status)", [list(OPEN)]
    )
    return bool(row["n"])


@dataclass(frozen=True)
class WaitingVideo:
    """A video waiting on a Message Batch."""

    video_id: str
    custom_id: str
    purpose: str
    model: str
    status: str  # the item's: queued, sending, submitted, answered, failed
    batch_id: str | None
    age_hours: float  # since the item was queued


def waiting_videos(ledger: Ledger, now: datetime | None = None) -> list[WaitingVideo]:
    """Every video waiting on a batch, the longest waiting first."""
    now = now or datetime.now(UTC)
    rows = ledger.rows(
        "SELECT video_id, custom_id, purpose, model, status, batch_id, queued_at "
        "FROM batch_items WHERE list_contains(?, status) ORDER BY queued_at, custom_id",
        [list(OPEN)],
    )
    return [
        WaitingVideo(
            r["video_id"],
            r["custom_id"],
            r["purpose"],
            r["model"],
            r["status"],
            r["batch_id"],
            round((now - r["queued_at"]).total_seconds() / 3600, 2),
        )
        for r in rows
    ]


@dataclass
class BatchRun:
    """What one run did with batches: sent, collected, and what went wrong (in words)."""

    submitted: int = 0  # items sent this run
    batches_sent: list[str] = field(default_factory=list)
    answered: int = 0  # items whose answer was recorded this run
    failed: int = 0  # items that errored, expired, were canceled or lost
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        logger.warning(text)
        self.problems.append(text)


class Batches:
    """Sending and collecting a ledger's batch items through the Message Batches API."""

    def __init__(
        self,
        ledger: Ledger,
        api: BatchApi,
        costs: CostOptions,
        *,
        max_wait: timedelta,
        cache_ttl: str = "5m",
        flow_run_id: str | None = None,
        liveness: Liveness = LOCAL,
    ) -> None:
        self.ledger = ledger
        self.api = api
        self.costs = costs
        self.max_wait = max_wait
        self.cache_ttl = cache_ttl
        self.flow_run_id = flow_run_id
        self.liveness = liveness  # whose items may be taken over (their holder is gone)

    def _taken_over(self, rows: list[tuple[str, str | None, str | None]]) -> list[str]:
        """Of (custom_id, holder, flow_run_id) rows, the items this process may handle: its
        own, and those of a holder that is gone (its process on this host, or its flow run
        finished, on any machine)."""
        me = this_process()
        gone = self.liveness.lapsed((holder, run) for _, holder, run in rows if holder != me)
        return [cid for cid, holder, run in rows if holder == me or (holder, run) in gone]

    # -- sending ----------------------------------------------------------------------

    def submit(self, run: BatchRun | None = None) -> BatchRun:
        """Send the queued items of this process (and of processes that are gone) as
        batches; first find out what became of items a killed run was sending."""
        run = run or BatchRun()
        self._reconcile(run)
        items = self._start_sending()
        for start in range(0, len(items), MAX_ITEMS_PER_BATCH):
            chunk = items[start : start + MAX_ITEMS_PER_BATCH]
            self._send(chunk, run)
        return run

    def _reconcile(self, run: BatchRun) -> None:
        import anthropic

        try:
            self._reconcile_sending(run)
        except (anthropic.APIError, BatchError) as error:
            run.problem(
                f"could not look for the batches of a killed run at Anthropic ({error}); its "
                "items wait for the next run"
            )

    def _start_sending(self) -> list[BatchItem]:
        """Mark queued items as being sent, before they are: the record a later run reads.
        One read-check-write step (on a lake, retried whole when a concurrent commit
        conflicts with it)."""
        now, me = datetime.now(UTC), this_process()

        def mark(connection: duckdb.DuckDBPyConnection) -> list[str]:
            rows = connection.execute(
                "SELECT custom_id, holder, flow_run_id FROM batch_items WHERE status = 'queued' "
                "ORDER BY queued_at, custom_id"
            ).fetchall()
            mine = self._taken_over(rows)
            if mine:
                self.ledger.apply(
                    connection,
                    Write.update_existing(
                        "batch_items",
                        ("custom_id",),
                        [
                            {
                                "custom_id": cid,
                                "status": "sending",
                                "send_started_at": now,
                                "holder": me,
                                "flow_run_id": self.flow_run_id,
                            }
                            for cid in mine
                        ],
                    ),
                )
            return mine

        return [load_item(self.ledger, cid) for cid in self.ledger.atomic(mark)]

    def _send(self, items: list[BatchItem], run: BatchRun) -> None:
        import anthropic

        try:
            batch = self.api.create([(item.custom_id, item.request) for item in items])
        except anthropic.APIStatusError as error:
            # Anthropic answered, and refused: nothing was created. The items go back to the
            # queue, for the next run.
            self._requeue(items, f"Anthropic refused the batch: {type(error).__name__}: {error}")
            run.problem(
                f"a batch of {len(items)} item(s) was refused ({type(error).__name__}: "
                f"{error}); they stay queued for the next run"
            )
            return
        except anthropic.APIError as error:
            # No answer (timeout, connection cut): the batch may exist. The items stay
            # `sending`; the next run looks for them in the batches Anthropic lists.
            run.problem(
                f"sending a batch of {len(items)} item(s) got no answer ({type(error).__name__}); "
                "the next run looks for it at Anthropic before sending them again"
            )
            return
        record_submitted(self.ledger, batch, [item.custom_id for item in items], self.flow_run_id)
        run.submitted += len(items)
        run.batches_sent.append(batch.batch_id)

    def _requeue(self, items: list[BatchItem], problem: str) -> None:
        self.ledger.write(
            Write.update_existing(
                "batch_items",
                ("custom_id",),
                [
                    {"custom_id": item.custom_id, "status": "queued", "problem": problem}
                    for item in items
                ],
            )
        )

    def _reconcile_sending(self, run: BatchRun) -> None:
        """Items a run was sending when it died (or whose send got no answer): matched to
        batches Anthropic lists that kb has no record of, by their results' custom ids; items
        found in none go back to the queue once every such batch has ended."""
        rows = {
            r["custom_id"]: r
            for r in self.ledger.rows(
                "SELECT custom_id, holder, flow_run_id, send_started_at FROM batch_items "
                "WHERE status = 'sending'"
            )
        }
        taken = self._taken_over([(c, r["holder"], r["flow_run_id"]) for c, r in rows.items()])
        stuck = {cid: rows[cid] for cid in taken}
        if not stuck:
            return
        since = min(r["send_started_at"] for r in stuck.values()) - CLOCK_SKEW
        known = {r["batch_id"] for r in self.ledger.rows("SELECT batch_id FROM message_batches")}
        unresolved = []
        for batch in self.api.recent(since):
            if batch.batch_id in known:
                continue
            if batch.processing_status != "ended":
                unresolved.append(batch.batch_id)
                continue
            found = {item.custom_id for item in self.api.results(batch.batch_id).items}
            ours = [cid for cid in stuck if cid in found]
            if ours:
                record_submitted(self.ledger, batch, ours, self.flow_run_id, found=True)
                run.problem(
                    f"batch {batch.batch_id} was sent by a run that died before recording it: "
                    f"found at Anthropic with {len(ours)} of kb's items, collected now"
                )
                for cid in ours:
                    del stuck[cid]
        if not stuck:
            return
        if unresolved:
            run.problem(
                f"{len(stuck)} item(s) were being sent when a run died; batch(es) "
                f"{', '.join(unresolved)} at Anthropic may hold them and have not ended: they "
                "are not sent again until those end"
            )
            return
        self.ledger.write(
            Write.update_existing(
                "batch_items",
                ("custom_id",),
                [{"custom_id": cid, "status": "queued"} for cid in stuck],
            )
        )

    # -- collecting -------------------------------------------------------------------

    def collect(self, run: BatchRun | None = None) -> BatchRun:
        """Match what a killed run was sending to the batches Anthropic lists, then check
        every batch not yet collected: cancel one in progress past the policy's
        limit, read the results of those that ended, record each item's answer."""
        import anthropic

        run = run or BatchRun()
        self._reconcile(run)
        rows = self.ledger.rows(
            "SELECT batch_id, submitted_at, cancel_requested_at, result_reads "
            "FROM message_batches WHERE collected_at IS NULL ORDER BY submitted_at"
        )
        for row in rows:
            try:
                self._collect_one(row, run)
            except BatchNotFound as error:
                self._lose(row["batch_id"], str(error), run)
            except BatchError as error:
                run.problem(str(error))
                self._note(row["batch_id"], str(error))
            except anthropic.APIError as error:
                problem = (
                    f"batch {row['batch_id']} could not be checked ({type(error).__name__}: "
                    f"{error}); the next run tries again"
                )
                run.problem(problem)
                self._note(row["batch_id"], problem)
        return run

    def _collect_one(self, row: dict[str, Any], run: BatchRun) -> None:
        batch_id, now = row["batch_id"], datetime.now(UTC)
        info = self.api.retrieve(batch_id)
        age = now - row["submitted_at"]
        late = info.processing_status == "in_progress" and age > self.max_wait
        if late and row["cancel_requested_at"] is None:
            waited, hours = age.total_seconds() / 3600, self.max_wait.total_seconds() / 3600
            problem = (
                f"batch {batch_id} was still in progress after {waited:.2f} h, past the "
                f"policy's batch_max_wait_hours of {hours:g}: canceled; its unfinished items "
                "follow when_batch_fails"
            )
            run.problem(problem)
            info = self.api.cancel(batch_id)
            self._note(batch_id, problem, cancel_requested_at=now)
        if info.processing_status != "ended":
            self._update_batch(batch_id, processing_status=info.processing_status, checked_at=now)
            return
        results = self.api.results(batch_id)
        items = {
            r["custom_id"]: r
            for r in self.ledger.rows(
                "SELECT custom_id, status FROM batch_items WHERE batch_id = ?", [batch_id]
            )
        }
        pending = {cid for cid, r in items.items() if r["status"] == "submitted"}
        writes: list[Write] = []
        for result in results.items:
            if result.custom_id not in items:
                run.problem(
                    f"batch {batch_id}'s results hold an item kb never sent "
                    f"({result.custom_id!r}): ignored, not recorded"
                )
                continue
            if result.custom_id not in pending:
                continue  # recorded by an earlier read
            writes += self._result_writes(load_item(self.ledger, result.custom_id), result, run)
            pending.discard(result.custom_id)
        for unread in results.unreadable:
            run.problem(f"batch {batch_id}'s results have a malformed line ({unread}): skipped")
        reads = row["result_reads"] + (1 if pending else 0)
        batch_row: dict[str, Any] = {
            "batch_id": batch_id,
            "processing_status": info.processing_status,
            "checked_at": now,
            "ended_at": info.ended_at,
            "result_reads": reads,
        }
        if pending and reads >= MAX_RESULT_READS:
            problem = (
                f"no readable result for {len(pending)} item(s) of batch {batch_id} after "
                f"{reads} reads of its results file"
            )
            writes += self._lost_writes(sorted(pending), problem, run)
            pending.clear()
        elif pending:
            problem = (
                f"{len(pending)} item(s) of batch {batch_id} have no readable result yet "
                f"(read {reads} of {MAX_RESULT_READS} times): read again by the next run"
            )
            run.problem(problem)
            batch_row["problem"] = problem
        if not pending:
            batch_row["collected_at"] = now
        writes.append(Write.update_existing("message_batches", ("batch_id",), [batch_row]))
        self.ledger.write(*writes)

    def _result_writes(self, item: BatchItem, result: ItemResult, run: BatchRun) -> list[Write]:
        """A result line into the ledger: the call at the batch price with its reservation
        settled, or the failure with its reservation released (nothing was billed)."""
        from creatorkb.cloud_model import answer_of

        now = datetime.now(UTC)
        if result.type == "succeeded":
            detail = {"batch_id": item.batch_id, "custom_id": item.custom_id}
            answer = answer_of(
                result.message,
                item.model,
                item.context["purpose"],
                0.0,
                self.cache_ttl,
                batch=True,
                detail=detail,
            )
            # The call's id follows from the item's: two runs reading the same results file
            # at once record it once (the ledger keeps the first row of a key).
            call_id = hashlib.sha256(f"batch:{item.custom_id}".encode()).hexdigest()[:32]
            call = replace(answer.call, reservation_id=item.reservation_id, call_id=call_id)
            run.answered += 1
            update = {
                "custom_id": item.custom_id,
                "status": "answered",
                "answered_at": now,
                "result_type": "succeeded",
                "result_text": answer.text,
                "call_id": call.call_id,
                "call": call.to_json(),
            }
            # The item's calls are its job's; the decision is tied to them when it is made.
            calls = call_writes(
                [call],
                self.costs,
                flow_run_id=self.flow_run_id,
                video_id=item.video_id,
                decision_id=None,
            )
            return [*calls, Write.update_existing("batch_items", ("custom_id",), [update])]
        run.failed += 1
        problem = f"batch item {item.custom_id} {result.type}" + (
            f" ({result.error})" if result.error else ""
        )
        run.problem(f"{problem} in batch {item.batch_id} (video {item.video_id})")
        update = {
            "custom_id": item.custom_id,
            "status": "failed",
            "answered_at": now,
            "result_type": result.type,
            "problem": problem,
        }
        writes = [Write.update_existing("batch_items", ("custom_id",), [update])]
        if item.reservation_id:
            writes.append(Budget.close(item.reservation_id, None))
        return writes

    def _lost_writes(self, custom_ids: list[str], problem: str, run: BatchRun) -> list[Write]:
        """Items whose result cannot be read: failed, their reservations left open as
        possibly billed (Anthropic may have answered and billed them)."""
        run.failed += len(custom_ids)
        run.problem(f"{problem}: item(s) {', '.join(custom_ids)} follow when_batch_fails")
        now = datetime.now(UTC)
        held = self.ledger.rows(
            "SELECT reservation_id FROM batch_items WHERE list_contains(?, custom_id) "
            "AND reservation_id IS NOT NULL",
            [custom_ids],
        )
        # Nobody waits on their answers any more: open, and no longer waited for, they are
        # what the budget and the report count as possibly billed.
        lapsed = [{"reservation_id": r["reservation_id"], "expires_at": now} for r in held]
        return [
            *(
                [Write.update_existing("budget_reservations", ("reservation_id",), lapsed)]
                if lapsed
                else []
            ),
            Write.update_existing(
                "batch_items",
                ("custom_id",),
                [
                    {
                        "custom_id": cid,
                        "status": "failed",
                        "answered_at": now,
                        "result_type": "lost",
                        "problem": problem,
                    }
                    for cid in custom_ids
                ],
            ),
        ]

    def _lose(self, batch_id: str, problem: str, run: BatchRun) -> None:
        pending = [
            r["custom_id"]
            for r in self.ledger.rows(
                "SELECT custom_id FROM batch_items WHERE batch_id = ? AND status = 'submitted'",
                [batch_id],
            )
        ]
        now = datetime.now(UTC)
        batch_row = {
            "batch_id": batch_id,
            "problem": problem,
            "collected_at": now,
            "checked_at": now,
        }
        self.ledger.write(
            *(self._lost_writes(pending, problem, run) if pending else []),
            Write.update_existing("message_batches", ("batch_id",), [batch_row]),
        )

    def _note(self, batch_id: str, problem: str, **more: Any) -> None:
        self._update_batch(batch_id, problem=problem, **more)

    def _update_batch(self, batch_id: str, **columns: Any) -> None:
        self.ledger.write(
            Write.update_existing(
                "message_batches", ("batch_id",), [{"batch_id": batch_id, **columns}]
            )
        )


def record_submitted(
    ledger: Ledger,
    batch: BatchInfo,
    custom_ids: list[str],
    flow_run_id: str | None,
    *,
    found: bool = False,
) -> None:
    """The batch id on record for its items (right after the create call answered, or when
    a later run found the batch at Anthropic)."""
    now = datetime.now(UTC)
    submitted_at = batch.created_at if found else now
    ledger.write(
        Write.insert_new(
            "message_batches",
            ("batch_id",),
            [
                {
                    "batch_id": batch.batch_id,
                    "submitted_at": submitted_at,
                    "flow_run_id": flow_run_id,
                    "items": len(custom_ids),
                    "processing_status": batch.processing_status,
                    "checked_at": now,
                }
            ],
        ),
        Write.update_existing(
            "batch_items",
            ("custom_id",),
            [
                {
                    "custom_id": cid,
                    "status": "submitted",
                    "batch_id": batch.batch_id,
                    "submitted_at": submitted_at,
                    "problem": None,
                }
                for cid in custom_ids
            ],
        ),
    )
