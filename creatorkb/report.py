"""The weekly cost report: what an ISO week cost, what it saved, how local it was, and ROI.

Every figure is aggregated by DuckDB from the ledger; money stays Decimal, shares are floats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, computed_field

from creatorkb import roi
from creatorkb.budget import SENT_OPEN_SQL, possibly_billed, week_start
from creatorkb.calibration import Precision, calibrate, wilson
from creatorkb.errors import InvalidWeek
from creatorkb.ledger import LedgerReader, Write
from creatorkb.liveness import LOCAL, Liveness
from creatorkb.pricing import MONEY
from creatorkb.routing import Route, RoutingPolicy
from creatorkb.settings import CostOptions

LOCAL_SHARE_TARGET = 0.8  # the owner's plan: 80% of the work done locally
COSTLIEST_VIDEOS = 5
STARTED_LOCALLY = (Route.local_accept, Route.cloud_refine, Route.fallback_local)

_WEEK_LABEL = re.compile(r"(\d{4})-W(\d{2})")


@dataclass(frozen=True)
class IsoWeek:
    """An ISO week, Monday 00:00 to the next Monday 00:00 in `timezone`."""

    year: int
    week: int
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            date.fromisocalendar(self.year, self.week, 1)
        except ValueError:
            raise InvalidWeek(
                f"week {self.label!r} does not exist: ISO weeks run from W01 to W52 (W53 in "
                "some years)"
            ) from None

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> IsoWeek:
        """The week written as `2026-W47`."""
        match = _WEEK_LABEL.fullmatch(text.strip())
        if match is None:
            raise InvalidWeek(f"week {text!r} is not an ISO week; write it like 2026-W47")
        return cls(int(match[1]), int(match[2]), timezone)

    @classmethod
    def last_complete(cls, now: datetime, timezone: str) -> IsoWeek:
        """The latest week that ended at or before `now` (an aware instant) in `timezone`."""
        if now.tzinfo is None:
            raise ValueError(f"now={now.isoformat()} has no timezone; pass an aware datetime")
        year, week, _ = (
            now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=7)
        ).isocalendar()
        return cls(year, week, timezone)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def days(self) -> list[date]:
        """Monday to Sunday."""
        monday = date.fromisocalendar(self.year, self.week, 1)
        return [monday + timedelta(days=offset) for offset in range(7)]

    @property
    def start_utc(self) -> datetime:
        return self._midnight_utc(self.days[0])

    @property
    def end_utc(self) -> datetime:
        return self._midnight_utc(self.days[-1] + timedelta(days=1))

    def fraction_elapsed(self, now: datetime) -> float:
        """How much of the week had passed at `now`: 0 before it, 1 after it."""
        passed = (now - self.start_utc) / (self.end_utc - self.start_utc)
        return min(max(passed, 0.0), 1.0)

    def _midnight_utc(self, monday: date) -> datetime:
        # Noon is unambiguous on every day, even where DST switches at midnight.
        return week_start(
            datetime.combine(monday, time(12), ZoneInfo(self.timezone)), self.timezone
        )


class CostLine(BaseModel):
    """Calls and money of one model, purpose or creator priority in the week."""

    name: str
    calls: int
    cloud_usd: Decimal
    energy_usd: Decimal
    cloud_equivalent_usd: Decimal


class CostlyVideo(BaseModel):
    video_id: str
    title: str | None
    creator: str | None
    cloud_usd: Decimal
    calls: int


class ProviderLatency(BaseModel):
    """Wall-clock latency of a provider's answered calls."""

    provider: str
    calls: int
    p50_ms: float
    p95_ms: float


class TierLine(BaseModel):
    """Cloud calls of one model at one service tier (`standard`, or `batch` at half price)."""

    model: str
    tier: str
    calls: int
    cloud_usd: Decimal

    @property
    def standard_usd(self) -> Decimal:
        """What these calls would have cost at standard prices (batch is half price)."""
        return self.cloud_usd * 2 if self.tier == "batch" else self.cloud_usd


class CascadeStep(BaseModel):
    """One refine model of the cascade in the week: how often it refined, and how often its
    record passed the confidence check (so the next model was not needed)."""

    model: str
    refines: int
    passed: int


class DayCosts(BaseModel):
    day: date
    cloud_usd: Decimal
    energy_usd: Decimal
    all_cloud_usd: Decimal  # what the day's work would have cost all in the cloud
    local_share_calls: float | None


class WeekSavings(BaseModel):
    week: str
    local_share_calls: float | None
    savings_usd: Decimal
    cumulative_savings_usd: Decimal


class RoiSummary(BaseModel):
    """The GPU's return: this week's net after amortisation, and the pay-off position."""

    gpu_price_usd: Decimal
    amortised_per_week_usd: Decimal
    net_this_week_usd: Decimal  # savings (energy already deducted) minus amortisation
    cumulative_savings_usd: Decimal  # since the first recorded call
    position_usd: Decimal  # cumulative savings minus the GPU price
    monthly_savings_usd: Decimal  # this week's savings x 52/12
    break_even_month: str | None  # YYYY-MM reached, or projected; None: see `break_even`
    weeks_of_data: int  # complete weeks with calls, up to this one
    weeks_to_project: int  # complete weeks needed before a projection is made

    @property
    def projected(self) -> bool:
        return self.weeks_of_data >= self.weeks_to_project

    @property
    def break_even(self) -> str:
        if self.break_even_month:
            return self.break_even_month
        if not self.projected:
            more = self.weeks_to_project - self.weeks_of_data
            return (
                f"not projected yet: {self.weeks_of_data} complete week(s) of data, "
                f"{more} more needed"
            )
        return "never at this rate"


@dataclass(frozen=True)
class Section:
    """A titled table of text cells, rendered as markdown or HTML."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


class WeeklyReport(BaseModel):
    """One ISO week of the ledger.

    Savings are counted per job: what one direct call on the reference model would have cost
    for each job of the week (all_cloud_usd), minus what the jobs cost (cloud dollars and the
    GPU's energy while answering), minus the GPU machine's idle draw while on and not
    answering. cloud_equivalent_usd reprices every call's own tokens at the reference model;
    it is not savings (a refined video would count its draft and its refine). Local
    shares count answered calls (a failed call did no work); tokens are all input, cached
    included, plus output. The escalation rate is, of the week's video decisions that began
    with a local draft (local_accept, cloud_refine, fallback_local), the share the cloud
    refined (cloud_refine); routed prompts are left out.
    """

    week: str
    timezone: str
    starts_at: datetime
    ends_at: datetime
    generated_at: datetime
    reference_model: str
    calls: int
    failed_calls: int
    cloud_usd: Decimal
    energy_usd: Decimal
    cloud_equivalent_usd: Decimal  # every call repriced at the reference model: not savings
    jobs: int  # decisions with a counterfactual: videos, prompts and questions
    all_cloud_usd: Decimal  # what the jobs would have cost as direct reference-model calls
    busy_hours: float  # the GPU's time answering (the union of its busy intervals)
    idle_usd: Decimal  # the GPU machine's draw while on and not answering
    possibly_billed_calls: int = 0  # cloud calls sent whose answer never came back
    possibly_billed_usd: Decimal = Decimal(0)  # the most they can have cost (their bound)
    savings_usd: Decimal  # all_cloud_usd - cloud - energy of the jobs - idle
    savings_percent: float | None  # of all_cloud_usd
    local_share_calls: float | None
    local_share_tokens: float | None
    local_starts: int  # video decisions that began with a local draft
    escalations: int  # of those, the ones the cloud refined
    escalation_rate: float | None
    shadow_samples: int
    shadow_good: int  # of those, the local answers good enough
    local_accept_precision: float | None  # share of shadowed local accepts good enough
    precision_interval: tuple[float, float] | None  # its 95% Wilson interval
    calibration: str  # the accept threshold that reaches the target precision (kb calibrate)
    budget_usd: Decimal
    budget_used_percent: float | None  # cloud_usd against budget_usd
    cost_by_model: list[CostLine]
    cost_by_purpose: list[CostLine]
    cost_by_priority: list[CostLine]  # creator priority; calls without a video are "prompts"
    costliest_videos: list[CostlyVideo]
    latency: list[ProviderLatency]
    cascade: list[CascadeStep] = []  # the refine models, in the order they were tried
    cloud_by_tier: list[TierLine] = []  # cloud dollars by model and service tier
    days: list[DayCosts]
    history: list[WeekSavings]  # every week with calls, up to this one
    weeks_with_data: list[str]  # every week with calls, before and after this one
    roi: RoiSummary

    @property
    def batch_savings_usd(self) -> Decimal:
        """What Message Batches saved against standard prices (the half not paid)."""
        return sum((t.standard_usd - t.cloud_usd for t in self.cloud_by_tier), Decimal(0))

    @property
    def partial(self) -> bool:
        """The week had not ended when the report was made."""
        return self.generated_at < self.ends_at

    @computed_field  # type: ignore[prop-decorator]
    @property
    def local_share_met(self) -> bool:
        """Whether the local share of calls reached LOCAL_SHARE_TARGET."""
        return self.local_share_calls is not None and self.local_share_calls >= LOCAL_SHARE_TARGET

    def ledger_row(self) -> dict[str, Any]:
        """The `weekly_reports` row."""
        return {
            "week": self.week,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "generated_at": self.generated_at,
            "cloud_usd": self.cloud_usd,
            "energy_usd": self.energy_usd,
            "cloud_equivalent_usd": self.cloud_equivalent_usd,
            "savings_usd": self.savings_usd,
            "local_share_calls": self.local_share_calls,
            "local_share_tokens": self.local_share_tokens,
            "escalation_rate": self.escalation_rate,
            "break_even_month": self.roi.break_even_month,
            "report": self.model_dump(mode="json"),
        }

    def ledger_write(self) -> Write:
        """The write that records this report, replacing an earlier report of the same week."""
        row = self.ledger_row()
        replaced = tuple(column for column in row if column != "week")
        return Write.upsert("weekly_reports", ("week",), [row], replaced)

    def headline(self) -> Section:
        roi = self.roi
        target = f"target {LOCAL_SHARE_TARGET:.0%}: {'met' if self.local_share_met else 'missed'}"
        return Section(
            "Headline",
            ("figure", "value"),
            [
                ("Calls", f"{self.calls:,} ({self.failed_calls:,} failed)"),
                ("Cloud spend", usd(self.cloud_usd)),
                *(
                    [
                        (
                            "Possibly billed",
                            f"up to {usd(self.possibly_billed_usd)} "
                            f"({self.possibly_billed_calls:,} calls sent whose answer never "
                            "came back; the budget counts them)",
                        )
                    ]
                    if self.possibly_billed_calls
                    else []
                ),
                *(
                    [
                        (
                            "Saved by batching",
                            f"{usd(self.batch_savings_usd)} against standard prices "
                            f"({sum(t.calls for t in self.cloud_by_tier if t.tier == 'batch'):,} "
                            "calls sent as Message Batches at half price)",
                        )
                    ]
                    if self.batch_savings_usd
                    else []
                ),
                ("Local energy", f"{usd(self.energy_usd)} ({self.busy_hours:,.2f} h answering)"),
                ("GPU idle", usd(self.idle_usd)),
                (
                    f"All-cloud ({self.reference_model})",
                    f"{usd(self.all_cloud_usd)} ({self.jobs:,} jobs as direct calls)",
                ),
                ("Savings", f"{usd(self.savings_usd)} ({_percent_number(self.savings_percent)})"),
                ("Net after GPU amortisation", usd(roi.net_this_week_usd)),
                ("Local share of calls", f"{percent(self.local_share_calls)} ({target})"),
                ("Local share of tokens", percent(self.local_share_tokens)),
                (
                    "Escalation rate",
                    f"{percent(self.escalation_rate)} ({self.escalations:,} of "
                    f"{self.local_starts:,} local starts refined in the cloud)",
                ),
                (
                    "Local accept precision",
                    Precision(self.shadow_good, self.shadow_samples).describe(),
                ),
                ("Accept threshold", self.calibration),
                (
                    "Budget used",
                    f"{usd(self.cloud_usd)} of {usd(self.budget_usd)} "
                    f"({_percent_number(self.budget_used_percent)})",
                ),
                ("Break-even", roi.break_even),
            ],
        )

    def sections(self) -> list[Section]:
        """The report's tables, headline first."""
        roi = self.roi
        return [
            self.headline(),
            *(
                _cost_section(title, lines)
                for title, lines in (
                    ("Cost by model", self.cost_by_model),
                    ("Cost by purpose", self.cost_by_purpose),
                    ("Cost by creator priority", self.cost_by_priority),
                )
            ),
            Section(
                "Cloud by model and service tier",
                ("model", "tier", "calls", "cloud", "at standard prices", "saved by batching"),
                [
                    (
                        t.model,
                        t.tier,
                        f"{t.calls:,}",
                        usd(t.cloud_usd),
                        usd(t.standard_usd),
                        usd(t.standard_usd - t.cloud_usd),
                    )
                    for t in self.cloud_by_tier
                ],
            ),
            Section(
                "Costliest videos",
                ("video", "title", "creator", "cloud", "calls"),
                [
                    (v.video_id, v.title or "", v.creator or "", usd(v.cloud_usd), f"{v.calls:,}")
                    for v in self.costliest_videos
                ],
            ),
            Section(
                "Days",
                ("day", "cloud", "local energy", "local share of calls"),
                [
                    (
                        f"{d.day:%a %Y-%m-%d}",
                        usd(d.cloud_usd),
                        usd(d.energy_usd),
                        percent(d.local_share_calls),
                    )
                    for d in self.days
                ],
            ),
            Section(
                "Refine cascade",
                ("model", "refines", "record passed the check"),
                [(c.model, f"{c.refines:,}", f"{c.passed:,}") for c in self.cascade],
            ),
            Section(
                "Latency",
                ("provider", "answered calls", "p50 ms", "p95 ms"),
                [
                    (p.provider, f"{p.calls:,}", f"{p.p50_ms:,.0f}", f"{p.p95_ms:,.0f}")
                    for p in self.latency
                ],
            ),
            Section(
                "Return on the GPU",
                ("figure", "value"),
                [
                    ("GPU price", usd(roi.gpu_price_usd)),
                    ("Amortised per week", usd(roi.amortised_per_week_usd)),
                    ("Savings this week", usd(self.savings_usd)),
                    ("Net this week", usd(roi.net_this_week_usd)),
                    ("Cumulative savings", usd(roi.cumulative_savings_usd)),
                    ("Position (cumulative savings - GPU)", usd(roi.position_usd)),
                    ("Monthly savings at this rate", usd(roi.monthly_savings_usd)),
                    ("Break-even month", roi.break_even),
                ],
            ),
        ]

    def key_figures(self) -> list[tuple[str, str]]:
        """The two numbers an owner looks at first."""
        return [
            ("Savings against all-cloud", _percent_number(self.savings_percent)),
            ("Net after GPU amortisation", usd(self.roi.net_this_week_usd)),
        ]

    def notes(self) -> list[str]:
        """What a reader must know before trusting the figures."""
        notes = []
        if self.partial:
            generated = self.generated_at.astimezone(ZoneInfo(self.timezone))
            notes.append(
                f"Partial week: the figures run to {generated:%a %Y-%m-%d %H:%M %Z}, not to "
                "the end of the week."
            )
        if self.calls == 0:
            others = [week for week in self.weeks_with_data if week != self.week]
            notes.append(
                f"No model calls were recorded in {self.week}."
                + (
                    f" Weeks with data: {', '.join(others)}; e.g. `kb report --week {others[-1]}`."
                    if others
                    else " The ledger has no calls yet: run `kb run` first."
                )
            )
        return notes

    @property
    def title(self) -> str:
        return f"Weekly cost report {self.week}" + (" (partial)" if self.partial else "")

    @property
    def subtitle(self) -> str:
        """The week's days and when the report was made, in the report's timezone."""
        first, last = self.days[0].day, self.days[-1].day
        generated = self.generated_at.astimezone(ZoneInfo(self.timezone))
        return (
            f"{first:%a %Y-%m-%d} to {last:%a %Y-%m-%d} ({self.timezone}), "
            f"generated {generated:%Y-%m-%d %H:%M %Z}"
        )

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", self.subtitle]
        lines += ["", *(f"> {note}" for note in self.notes())] if self.notes() else []
        lines += ["", " · ".join(f"**{label}: {value}**" for label, value in self.key_figures())]
        for section in self.sections():
            lines += ["", f"## {section.title}", ""]
            if not section.rows:
                lines.append("none")
                continue
            lines.append("| " + " | ".join(section.columns) + " |")
            lines.append("|" + "|".join(["---", *["---:"] * (len(section.columns) - 1)]) + "|")
            lines += [
                "| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in section.rows
            ]
        return "\n".join(lines)

    def to_table(self) -> list[dict[str, str]]:
        """The headline figures, one dict per figure (a Prefect table artifact)."""
        section = self.headline()
        return [dict(zip(section.columns, row, strict=True)) for row in section.rows]


def usd(amount: Decimal) -> str:
    """Dollars to the cent, or to a hundredth of a cent below one dollar."""
    places = 2 if abs(amount) >= 1 or amount == 0 else 4
    return f"{'-' if amount < 0 else ''}${abs(amount):,.{places}f}"


def percent(share: float | None) -> str:
    """A share (0-1) as a percentage; n/a when there was nothing to share."""
    return "n/a" if share is None else f"{share:.1%}"


def _percent_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cost_section(title: str, lines: list[CostLine]) -> Section:
    return Section(
        title,
        ("name", "calls", "cloud", "local energy", "all-cloud equivalent"),
        [
            (
                line.name,
                f"{line.calls:,}",
                usd(line.cloud_usd),
                usd(line.energy_usd),
                usd(line.cloud_equivalent_usd),
            )
            for line in lines
        ],
    )


# -- the queries ------------------------------------------------------------------------

_IN_WEEK = "ts >= ? AND ts < ?"
_MONEY = (
    "coalesce(sum(cost_usd), 0) AS cloud_usd, coalesce(sum(energy_usd), 0) AS energy_usd, "
    "coalesce(sum(cloud_equivalent_usd), 0) AS cloud_equivalent_usd"
)
_TOKENS = "input_tokens + cache_read_tokens + cache_write_tokens + output_tokens"
_LOCAL_SHARE_CALLS = (
    "count(*) FILTER (WHERE status = 'ok' AND provider = 'ollama')"
    " / nullif(count(*) FILTER (WHERE status = 'ok'), 0)"
)
_LOCAL_SHARE_TOKENS = (
    f"coalesce(sum({_TOKENS}) FILTER (WHERE status = 'ok' AND provider = 'ollama'), 0)"
    f" / nullif(sum({_TOKENS}) FILTER (WHERE status = 'ok'), 0)"
)

_HEADLINE = f"""
SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'error') AS failed_calls, {_MONEY},
       coalesce(sum(energy_kwh), 0) AS energy_kwh,
       {_LOCAL_SHARE_CALLS} AS local_share_calls, {_LOCAL_SHARE_TOKENS} AS local_share_tokens
FROM llm_calls WHERE {_IN_WEEK}
"""

# Savings are counted per job: a decision carries what its job cost and what one direct call
# on the reference model would have cost instead (decisions from before migration 7 have
# no counterfactual and are left out).
_PRICED_JOBS = "all_cloud_usd IS NOT NULL"
_JOBS = f"""
SELECT count(*) AS jobs, coalesce(sum(all_cloud_usd), 0) AS all_cloud_usd,
       coalesce(sum(all_cloud_usd - cloud_usd - energy_usd), 0) AS job_savings_usd
FROM routing_decisions WHERE {_IN_WEEK} AND {_PRICED_JOBS}
"""

_ESCALATED = f"count(*) FILTER (WHERE route = '{Route.cloud_refine}')"
_ESCALATION = f"""
SELECT count(*) AS local_starts, {_ESCALATED} AS escalations,
       {_ESCALATED} / nullif(count(*), 0) AS escalation_rate
FROM routing_decisions
WHERE {_IN_WEEK} AND video_id IS NOT NULL
  AND route IN ({", ".join(f"'{route}'" for route in STARTED_LOCALLY)})
"""

_SHADOW = f"""
SELECT count(*) AS shadow_samples, count(*) FILTER (WHERE local_good_enough) AS shadow_good,
       avg(local_good_enough::INTEGER) AS local_accept_precision
FROM shadow_reviews WHERE {_IN_WEEK}
"""

_COST_LINES = f"""
WITH week_calls AS (
    SELECT c.model, c.purpose, c.cost_usd, c.energy_usd, c.cloud_equivalent_usd,
           CASE WHEN c.video_id IS NULL THEN 'prompts'
                ELSE coalesce(cr.priority, 'unknown') END AS priority
    FROM llm_calls c
    LEFT JOIN videos v ON v.video_id = c.video_id
    LEFT JOIN creators cr ON cr.channel_id = v.channel_id
    WHERE c.ts >= ? AND c.ts < ?
)
SELECT CASE WHEN grouping(model) = 0 THEN 'model'
            WHEN grouping(purpose) = 0 THEN 'purpose' ELSE 'priority' END AS dimension,
       coalesce(model, purpose, priority) AS name, count(*) AS calls, {_MONEY}
FROM week_calls
GROUP BY GROUPING SETS ((model), (purpose), (priority))
ORDER BY dimension, cloud_usd DESC, cloud_equivalent_usd DESC, name
"""

_COSTLIEST_VIDEOS = f"""
WITH spend AS (
    SELECT video_id, sum(cost_usd) AS cloud_usd, count(*) AS calls
    FROM llm_calls WHERE {_IN_WEEK} AND video_id IS NOT NULL
    GROUP BY video_id HAVING sum(cost_usd) > 0
    ORDER BY cloud_usd DESC, video_id LIMIT {COSTLIEST_VIDEOS}
)
SELECT s.video_id, v.title, cr.name AS creator, s.cloud_usd, s.calls
FROM spend s
LEFT JOIN videos v ON v.video_id = s.video_id
LEFT JOIN creators cr ON cr.channel_id = v.channel_id
ORDER BY s.cloud_usd DESC, s.video_id
"""

_CASCADE = f"""
WITH steps AS (
    SELECT unnest(CAST(components -> 'cascade' AS JSON[])) AS step,
           generate_subscripts(CAST(components -> 'cascade' AS JSON[]), 1) AS position
    FROM routing_decisions
    WHERE {_IN_WEEK} AND (components -> 'cascade') IS NOT NULL
)
SELECT json_extract_string(step, '$.model') AS model, count(*) AS refines,
       count(*) FILTER (WHERE json_extract_string(step, '$.passed') = 'true') AS passed
FROM steps
WHERE json_extract_string(step, '$.answered') = 'true'
GROUP BY 1 ORDER BY min(position), model
"""

# Batch items have no latency of their own (they waited for their batch): left out.
_LATENCY = f"""
SELECT provider, count(*) AS calls, quantile_cont(latency_ms, 0.5) AS p50_ms,
       quantile_cont(latency_ms, 0.95) AS p95_ms
FROM llm_calls WHERE {_IN_WEEK} AND status = 'ok' AND coalesce(service_tier, '') <> 'batch'
GROUP BY provider ORDER BY provider
"""

_TIERS = f"""
SELECT model, coalesce(service_tier, 'standard') AS tier, count(*) AS calls,
       coalesce(sum(cost_usd), 0) AS cloud_usd
FROM llm_calls WHERE {_IN_WEEK} AND provider = 'anthropic' AND status = 'ok'
GROUP BY ALL ORDER BY cloud_usd DESC, model, tier
"""

# Calls summed per quarter hour first (cheap integer arithmetic), so that the costly
# conversion to the report's timezone is done per quarter hour, not per call: every UTC
# offset in use is a whole number of quarter hours.
_QUARTERS = """
SELECT make_timestamptz((epoch_ms(ts) // 900000) * 900000000) AS quarter,
       count(*) FILTER (WHERE status = 'ok') AS answered,
       count(*) FILTER (WHERE status = 'ok' AND provider = 'ollama') AS answered_locally,
       coalesce(sum(cost_usd), 0) AS cloud_usd, coalesce(sum(energy_usd), 0) AS energy_usd,
       coalesce(sum(energy_kwh), 0) AS energy_kwh
FROM llm_calls {where} GROUP BY 1
"""
_JOB_QUARTERS = f"""
SELECT make_timestamptz((epoch_ms(ts) // 900000) * 900000000) AS quarter,
       sum(all_cloud_usd) AS all_cloud_usd,
       sum(all_cloud_usd - cloud_usd - energy_usd) AS job_savings_usd
FROM routing_decisions WHERE {_PRICED_JOBS} {{also}} GROUP BY 1
"""
_SHARE = "sum(answered_locally) / nullif(sum(answered), 0)"

_DAYS = f"""
WITH quarters AS ({_QUARTERS.format(where=f"WHERE {_IN_WEEK}")}),
jobs AS ({_JOB_QUARTERS.format(also=f"AND {_IN_WEEK}")}),
by_day AS (
    SELECT timezone(?, quarter)::DATE AS day, sum(cloud_usd) AS cloud_usd,
           sum(energy_usd) AS energy_usd, {_SHARE} AS local_share_calls
    FROM quarters GROUP BY day
),
job_days AS (
    SELECT timezone(?, quarter)::DATE AS day, sum(all_cloud_usd) AS all_cloud_usd
    FROM jobs GROUP BY day
)
SELECT d.day, coalesce(b.cloud_usd, 0) AS cloud_usd, coalesce(b.energy_usd, 0) AS energy_usd,
       coalesce(j.all_cloud_usd, 0) AS all_cloud_usd, b.local_share_calls
FROM unnest(?::DATE[]) AS d(day) LEFT JOIN by_day b ON b.day = d.day
LEFT JOIN job_days j ON j.day = d.day
ORDER BY d.day
"""

# Every week with calls, once: the history up to the reported week and the weeks with data.
_WEEKS = f"""
WITH quarters AS ({_QUARTERS.format(where="")}),
jobs AS ({_JOB_QUARTERS.format(also="")}),
weekly AS (
    SELECT date_trunc('week', timezone(?, quarter))::DATE AS monday,
           {_SHARE} AS local_share_calls, sum(energy_kwh) AS energy_kwh
    FROM quarters GROUP BY monday
),
job_weeks AS (
    SELECT date_trunc('week', timezone(?, quarter))::DATE AS monday,
           sum(job_savings_usd) AS job_savings_usd
    FROM jobs GROUP BY monday
)
SELECT strftime(w.monday, '%G-W%V') AS week, w.monday < ? AS in_history, w.local_share_calls,
       coalesce(j.job_savings_usd, 0) AS job_savings_usd, w.energy_kwh
FROM weekly w LEFT JOIN job_weeks j USING (monday) ORDER BY w.monday
"""


def weekly_report(
    ledger: LedgerReader,
    week: IsoWeek,
    costs: CostOptions,
    weekly_budget_usd: Decimal,
    now: datetime | None = None,
    policy: RoutingPolicy | None = None,
    liveness: Liveness = LOCAL,
) -> WeeklyReport:
    """The cost report of `week` (in the cost timezone) from the ledger's tables; `liveness`
    judges whether the holder of a call sent and unanswered still waits on it (the flow
    passes the Prefect server's word on flow runs; without it, PID and expiry)."""
    if week.timezone != costs.timezone:
        raise ValueError(
            f"week {week.label} is in {week.timezone} but the cost timezone is "
            f"{costs.timezone}; build it with IsoWeek.parse(..., timezone=costs.timezone)"
        )
    bounds = [week.start_utc, week.end_utc]
    generated_at = now or datetime.now(UTC)
    [headline] = ledger.rows(_HEADLINE, bounds)
    [jobs] = ledger.rows(_JOBS, bounds)
    [escalation] = ledger.rows(_ESCALATION, bounds)
    [shadow] = ledger.rows(_SHADOW, bounds)
    policy = policy or RoutingPolicy(weekly_budget_usd=weekly_budget_usd)
    calibration = calibrate(ledger, policy, end=week.end_utc).describe()
    lines: dict[str, list[CostLine]] = {"model": [], "purpose": [], "priority": []}
    for row in ledger.rows(_COST_LINES, bounds):
        lines[row.pop("dimension")].append(CostLine(**row))
    lost = possibly_billed(ledger.rows(SENT_OPEN_SQL, bounds), liveness=liveness)
    busy = busy_hours(headline.pop("energy_kwh"), costs)
    idle = idle_usd(busy, costs, week.fraction_elapsed(generated_at))
    savings: Decimal = jobs.pop("job_savings_usd") - idle
    weeks = ledger.rows(_WEEKS, [week.timezone, week.timezone, week.days[-1] + timedelta(days=1)])
    history = _history(weeks, week, costs, savings)

    # Complete weeks of data: weeks with calls up to this one, this one only once it ended.
    complete = [p for p in history if p.week != week.label or generated_at >= week.end_utc]
    return WeeklyReport(
        week=week.label,
        timezone=week.timezone,
        starts_at=week.start_utc,
        ends_at=week.end_utc,
        generated_at=generated_at,
        reference_model=costs.reference_model,
        **headline,
        **jobs,
        busy_hours=busy,
        idle_usd=idle,
        possibly_billed_calls=lost.calls,
        possibly_billed_usd=lost.exposure_usd,
        savings_usd=savings,
        savings_percent=(
            float(savings / jobs["all_cloud_usd"] * 100) if jobs["all_cloud_usd"] else None
        ),
        **escalation,
        **shadow,
        precision_interval=wilson(shadow["shadow_good"], shadow["shadow_samples"]),
        calibration=calibration,
        budget_usd=weekly_budget_usd,
        budget_used_percent=(
            float(headline["cloud_usd"] / weekly_budget_usd * 100) if weekly_budget_usd else None
        ),
        cost_by_model=lines["model"],
        cost_by_purpose=lines["purpose"],
        cost_by_priority=lines["priority"],
        costliest_videos=[CostlyVideo(**row) for row in ledger.rows(_COSTLIEST_VIDEOS, bounds)],
        latency=[ProviderLatency(**row) for row in ledger.rows(_LATENCY, bounds)],
        cascade=[
            CascadeStep(model=r["model"], refines=r["refines"], passed=r["passed"])
            for r in ledger.rows(_CASCADE, bounds)
        ],
        cloud_by_tier=[TierLine(**row) for row in ledger.rows(_TIERS, bounds)],
        days=[
            DayCosts(**row)
            for row in ledger.rows(
                _DAYS, [*bounds, *bounds, week.timezone, week.timezone, week.days]
            )
        ],
        history=history,
        weeks_with_data=[row["week"] for row in weeks],
        roi=_roi_summary(week, costs, savings, history, len(complete)),
    )


def busy_hours(energy_kwh: Decimal | float, costs: CostOptions) -> float:
    """Hours the GPU spent answering, from the energy charged at `gpu_watts` (each call is
    charged only for the time no other call already kept the GPU busy)."""
    return float(Decimal(energy_kwh) * 1000 / costs.gpu_watts) if costs.gpu_watts else 0.0


def idle_usd(busy: float, costs: CostOptions, share_of_week: float = 1.0) -> Decimal:
    """The idle draw of a week (or of the part of it that has passed): the machine on for
    `gpu_hours_per_week`, less the hours it spent answering (charged at `gpu_watts`)."""
    hours_on = float(costs.gpu_hours_per_week) * share_of_week
    idle_hours = Decimal(str(max(hours_on - busy, 0.0)))
    return (idle_hours * costs.gpu_idle_watts / 1000 * costs.usd_per_kwh).quantize(MONEY)


def _history(
    weeks: list[dict[str, Any]], week: IsoWeek, costs: CostOptions, savings: Decimal
) -> list[WeekSavings]:
    """Each week's savings (net of its idle draw) and their running total, up to `week`."""
    history, total = [], Decimal(0)
    for row in weeks:
        if not row["in_history"]:
            continue
        if row["week"] == week.label:
            saved = savings
        else:
            saved = row["job_savings_usd"] - idle_usd(busy_hours(row["energy_kwh"], costs), costs)
        total += saved
        history.append(
            WeekSavings(
                week=row["week"],
                local_share_calls=row["local_share_calls"],
                savings_usd=saved,
                cumulative_savings_usd=total,
            )
        )
    return history


def _roi_summary(
    week: IsoWeek,
    costs: CostOptions,
    savings: Decimal,
    history: list[WeekSavings],
    weeks_of_data: int,
) -> RoiSummary:
    """Where the GPU stands after `week`; the break-even month is when cumulative savings
    first covered it or, if they do not yet and there are `costs.projection_weeks` complete
    weeks of data, when this week's rate would cover it, counting whole months from the month
    after the week."""
    gpu = costs.gpu_price_usd
    cumulative = history[-1].cumulative_savings_usd if history else Decimal(0)
    monthly = roi.monthly(savings)
    if history and cumulative >= gpu:
        paid_off = next(point for point in history if point.cumulative_savings_usd >= gpu)
        break_even = roi.month_label(IsoWeek.parse(paid_off.week).days[-1])
    elif weeks_of_data >= costs.projection_weeks:
        break_even = roi.break_even_month(gpu, monthly, roi.next_month(week.days[-1]), cumulative)
    else:
        break_even = None
    amortised = roi.amortised_per_week(gpu, costs.amortisation_months)
    return RoiSummary(
        gpu_price_usd=gpu,
        amortised_per_week_usd=amortised,
        net_this_week_usd=savings - amortised,
        cumulative_savings_usd=cumulative,
        position_usd=cumulative - gpu,
        monthly_savings_usd=monthly,
        break_even_month=break_even,
        weeks_of_data=weeks_of_data,
        weeks_to_project=costs.projection_weeks,
    )
