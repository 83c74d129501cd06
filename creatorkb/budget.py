"""The weekly cloud budget, held under concurrency by reserving cost before each call.

A reservation is an upper estimate of a call's cost, written to the ledger in the same
transaction that checks it fits: spent this week + open reservations + this one <= budget.
After the call it is settled (the real cost is in `llm_calls` from then on) or released.

A reservation is written with `sent_at`: the call is on record before it is sent. If its
answer never comes back (the process is killed, or the client times out, after Anthropic
may have billed), the reservation stays open as the bound of what was possibly billed, and
the budget counts it for the rest of its week. Reservations from before kb recorded
`sent_at` stop counting when their process is gone or they expire, as they always did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from creatorkb.errors import BudgetError, BudgetExhausted
from creatorkb.ledger import Ledger, Write
from creatorkb.liveness import LOCAL, Liveness, this_process

RESERVATION_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    amount_usd: Decimal


@dataclass(frozen=True)
class BudgetStatus:
    week_start: datetime
    budget_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal

    @property
    def left_usd(self) -> Decimal:
        return self.budget_usd - self.spent_usd - self.reserved_usd


def week_start(now: datetime, timezone: str) -> datetime:
    """Monday 00:00 of `now`'s ISO week in `timezone`, as a UTC instant."""
    local = now.astimezone(ZoneInfo(timezone))
    monday = (local - timedelta(days=local.weekday())).date()
    return datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(timezone)).astimezone(
        UTC
    )


class Budget:
    """The week's cloud budget, kept in the ledger so every process and thread shares it."""

    def __init__(
        self,
        ledger: Ledger,
        weekly_usd: Decimal,
        timezone: str = "UTC",
        liveness: Liveness = LOCAL,
    ) -> None:
        self.ledger = ledger
        self.weekly_usd = weekly_usd
        self.timezone = timezone
        self.liveness = liveness  # which holders of unsent reservations are gone

    def status(self, now: datetime | None = None) -> BudgetStatus:
        now = now or datetime.now(UTC)
        with self.ledger.connect() as connection:
            return self._status(connection, now)

    def _status(self, connection: duckdb.DuckDBPyConnection, now: datetime) -> BudgetStatus:
        start = week_start(now, self.timezone)
        [(spent,)] = connection.execute(
            "SELECT coalesce(sum(cost_usd), 0) FROM llm_calls "
            "WHERE provider = 'anthropic' AND ts >= ?",
            [start],
        ).fetchall()
        held = connection.execute(
            "SELECT holder, flow_run_id, sent_at IS NOT NULL, sum(amount_usd) "
            "FROM budget_reservations WHERE status = 'open' AND week_start = ? "
            "AND (expires_at > ? OR sent_at IS NOT NULL) GROUP BY ALL",
            [start, now],
        ).fetchall()
        unsent = {(holder, run) for holder, run, sent, _ in held if not sent}
        gone = self.liveness.lapsed(unsent) if unsent else set()
        reserved = sum(
            (amount for holder, run, sent, amount in held if sent or (holder, run) not in gone),
            Decimal(0),
        )
        return BudgetStatus(start, self.weekly_usd, Decimal(spent), reserved)

    def reserve(
        self,
        amount_usd: Decimal,
        flow_run_id: str | None = None,
        model: str | None = None,
        purpose: str | None = None,
    ) -> Reservation:
        """Set `amount_usd` aside for one call about to be sent (and record it as sent), or
        raise BudgetExhausted."""

        def reserve_in(connection: duckdb.DuckDBPyConnection) -> Reservation:
            now = datetime.now(UTC)
            status = self._status(connection, now)
            if amount_usd > status.left_usd:
                raise BudgetExhausted(
                    f"the weekly cloud budget of ${status.budget_usd} is used up: "
                    f"${status.spent_usd:.4f} spent and ${status.reserved_usd:.4f} reserved "
                    f"since {status.week_start:%Y-%m-%d %H:%M} UTC; this call needs up to "
                    f"${amount_usd:.4f}. Raise weekly_budget_usd in the routing policy or "
                    "wait for next week."
                )
            reservation = Reservation(uuid.uuid4().hex, amount_usd)
            self.ledger.apply(
                connection,
                Write.insert_new(
                    "budget_reservations",
                    ("reservation_id",),
                    [
                        {
                            "reservation_id": reservation.reservation_id,
                            "created_at": now,
                            "week_start": status.week_start,
                            "amount_usd": amount_usd,
                            "status": "open",
                            "expires_at": now + RESERVATION_LIFETIME,
                            "flow_run_id": flow_run_id,
                            "holder": this_process(),
                            "call_id": None,
                            "sent_at": now,
                            "model": model,
                            "purpose": purpose,
                        }
                    ],
                ),
            )
            return reservation

        # The check and the reservation: one transaction (on a lake, retried whole when a
        # concurrent commit conflicts with it).
        return self.ledger.atomic(reserve_in)

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call was never sent."""
        self.ledger.write(self.close(reservation.reservation_id, None))

    @staticmethod
    def close(reservation_id: str, call_id: str | None, *, unanswered: bool = False) -> Write:
        """The write that settles a reservation (its call is recorded, answered) or releases
        it (None: the call failed and cost nothing). A call `unanswered` after it was sent
        (the client timed out) keeps its reservation open, tied to the call: possibly billed."""
        status = "open" if unanswered else "settled" if call_id else "released"
        return Write.update_existing(
            "budget_reservations",
            ("reservation_id",),
            [{"reservation_id": reservation_id, "status": status, "call_id": call_id}],
        )


@dataclass(frozen=True)
class PossiblyBilled:
    """Cloud calls sent whose answer never came back, and the most they can have cost."""

    calls: int
    exposure_usd: Decimal


# Reservations of batch items whose answer is still to come: not lost, only waiting (the
# budget counts them all the same).
IN_BATCH_SQL = (
    "reservation_id NOT IN (SELECT reservation_id FROM batch_items WHERE reservation_id IS "
    "NOT NULL AND status IN ('queued', 'sending', 'submitted'))"
)
# Open reservations of calls sent in a week: possibly_billed() keeps those no live process
# still waits on.
SENT_OPEN_SQL = (
    "SELECT holder, flow_run_id, expires_at, call_id, amount_usd FROM budget_reservations "
    f"WHERE status = 'open' AND sent_at >= ? AND sent_at < ? AND {IN_BATCH_SQL}"
)


def possibly_billed(
    rows: list[dict[str, Any]], now: datetime | None = None, liveness: Liveness = LOCAL
) -> PossiblyBilled:
    """Of the SENT_OPEN_SQL rows, the calls whose answer will not come back: the holder is
    gone (its process, or its flow run finished), the reservation expired, or the client gave
    up (the call is recorded)."""
    now = now or datetime.now(UTC)
    waiting = [row for row in rows if row["call_id"] is None and row["expires_at"] > now]
    gone = liveness.lapsed((row["holder"], row.get("flow_run_id")) for row in waiting)
    lost = [
        row["amount_usd"]
        for row in rows
        if row["call_id"] is not None
        or row["expires_at"] <= now
        or (row["holder"], row.get("flow_run_id")) in gone
    ]
    return PossiblyBilled(len(lost), sum(lost, Decimal(0)))


def unanswered(ledger: Ledger, liveness: Liveness = LOCAL) -> list[dict[str, Any]]:
    """Every reservation of a call sent whose answer never came back, oldest first."""
    rows = ledger.rows(
        "SELECT reservation_id, sent_at, model, purpose, amount_usd, holder, flow_run_id, "
        "expires_at, call_id FROM budget_reservations WHERE status = 'open' "
        f"AND sent_at IS NOT NULL AND {IN_BATCH_SQL} ORDER BY sent_at"
    )
    now = datetime.now(UTC)
    return [r for r in rows if possibly_billed([r], now, liveness).calls]


def settle_unanswered(
    ledger: Ledger, reservation_id: str, billed_usd: Decimal | None, liveness: Liveness = LOCAL
) -> None:
    """Close a possibly billed call once its usage is known (Anthropic's console shows it):
    `billed_usd` becomes a call in `llm_calls` that the budget counts instead of the bound;
    None (not billed) releases the reservation."""
    found = {r["reservation_id"]: r for r in unanswered(ledger, liveness)}
    held = found.get(reservation_id)
    if held is None:
        known = ", ".join(found) or "none"
        raise BudgetError(
            f"no possibly billed call has reservation {reservation_id!r}; `kb ledger "
            f"unanswered` lists them (now: {known})"
        )
    if billed_usd is None:
        ledger.write(Budget.close(reservation_id, None))
        return
    if billed_usd < 0 or billed_usd > held["amount_usd"]:
        raise BudgetError(
            f"${billed_usd} is not a cost this call can have had: it was bounded by "
            f"${held['amount_usd']}; give what Anthropic's usage shows for it"
        )
    call_id = uuid.uuid4().hex
    row = {
        "call_id": call_id,
        "ts": held["sent_at"],
        "flow_run_id": None,
        "video_id": None,
        "decision_id": None,
        "purpose": held["purpose"] or "direct",
        "provider": "anthropic",
        "model": held["model"] or "unknown",
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "latency_ms": 0.0,
        "cost_usd": billed_usd,
        "cloud_equivalent_usd": Decimal(0),
        "energy_kwh": 0.0,
        "energy_usd": Decimal(0),
        "status": "ok",
        "error_type": None,
        "detail": {"settled_by_hand": reservation_id},
    }
    ledger.write(
        Write.insert_new("llm_calls", ("call_id",), [row]), Budget.close(reservation_id, call_id)
    )
