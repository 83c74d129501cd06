"""The weekly cost report: ISO weeks, ROI arithmetic, every headline figure by hand, HTML."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from creatorkb.calls import ModelCall, Provider, Purpose, Usage
from creatorkb.ledger import Ledger, Write
from creatorkb.pricing import call_row, price
from creatorkb.report import CostLine, InvalidWeek, IsoWeek, WeeklyReport, weekly_report
from creatorkb.report_html import cost_per_day_chart, render_html
from creatorkb.roi import amortised_per_week, break_even_month, roi_table
from creatorkb.settings import CostOptions

BERLIN = "Europe/Berlin"
SEED_MODEL = "claude-sonnet-4-5"  # $3 / $15 per million tokens: the owner's $0.09 call
SEED_USAGE = Usage(input_tokens=10_000, output_tokens=4_000)
# Savings are measured against the seed model; the GPU draws 350 W at $0.12/kWh, so an
# hour of Ollama work is 0.35 kWh = $0.042 and six minutes $0.0042.
# The machine idles at 100 W and is on 10 hours a week: an idle hour costs $0.012.
COSTS = CostOptions(
    reference_model=SEED_MODEL,
    timezone=BERLIN,
    projection_weeks=3,
    gpu_idle_watts=Decimal(100),
    gpu_hours_per_week=Decimal(10),
)
HOUR_NS = 3_600_000_000_000
SIX_MINUTES_NS = HOUR_NS // 10
BUDGET = Decimal(10)
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
WEEK = IsoWeek.parse("2026-W47", timezone=BERLIN)  # Mon 16 to Sun 22 November 2026
TRICKY_TITLE = "Tools & <tricks> | part 1"


def berlin(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo(BERLIN))


# -- ISO weeks ---------------------------------------------------------------------------


def test_a_week_runs_from_monday_to_monday_in_its_timezone_across_a_dst_change() -> None:
    week = IsoWeek.parse("2026-W43", timezone=BERLIN)  # clocks go back on Sunday 25 October

    assert week.label == "2026-W43"
    assert week.start_utc == datetime(2026, 10, 18, 22, 0, tzinfo=UTC)  # 00:00 CEST
    assert week.end_utc == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # 00:00 CET
    assert week.days[0] == date(2026, 10, 19) and week.days[-1] == date(2026, 10, 25)


@pytest.mark.parametrize(
    ("now", "timezone", "expected"),
    [
        (datetime(2026, 10, 25, 23, 30, tzinfo=UTC), BERLIN, "2026-W43"),  # Mon 00:30 CET
        (datetime(2026, 10, 25, 22, 30, tzinfo=UTC), BERLIN, "2026-W42"),  # Sun 23:30 CET
        (datetime(2026, 10, 25, 23, 30, tzinfo=UTC), "UTC", "2026-W42"),  # still Sunday
        (datetime(2027, 1, 4, 0, 0, tzinfo=ZoneInfo(BERLIN)), BERLIN, "2026-W53"),
    ],
)
def test_the_last_complete_week_depends_on_the_timezone(
    now: datetime, timezone: str, expected: str
) -> None:
    week = IsoWeek.last_complete(now, timezone)
    assert (week.label, week.timezone) == (expected, timezone)
    assert week.end_utc <= now


@pytest.mark.parametrize("text", ["2026-47", "2026-W7", "W47", "last week", ""])
def test_a_week_not_written_like_2026_w47_is_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidWeek, match=f"week '{text}' is not an ISO week; write it like"):
        IsoWeek.parse(text)


@pytest.mark.parametrize("text", ["2025-W53", "2026-W00", "2026-W54"])
def test_a_week_its_year_does_not_have_is_refused(text: str) -> None:
    with pytest.raises(InvalidWeek, match=f"week '{text}' does not exist"):
        IsoWeek.parse(text)


# -- ROI ---------------------------------------------------------------------------------


def test_the_owners_seed_figures_break_even_in_month_41() -> None:
    # All cloud $62/month; hybrid: 20% of it in the cloud plus the seed's ~$20/month of
    # electricity ("24/7 at $0.12/kWh", taken as the seed states it).
    monthly_savings = Decimal(62) - Decimal(62) * Decimal("0.2") - Decimal(20)
    assert monthly_savings == Decimal("29.60")

    table = roi_table(Decimal(1200), monthly_savings, date(2026, 1, 1), months=48)

    by_hand = {  # month number: (month, cumulative savings, position, paid off)
        1: ("2026-01", "29.60", "-1170.40", False),
        2: ("2026-02", "59.20", "-1140.80", False),
        3: ("2026-03", "88.80", "-1111.20", False),
        40: ("2029-04", "1184.00", "-16.00", False),
        41: ("2029-05", "1213.60", "13.60", True),
    }
    for number, (month, cumulative, position, paid_off) in by_hand.items():
        row = table[number - 1]
        assert (row.month, row.savings_usd, row.cumulative_savings_usd, row.position_usd) == (
            month,
            Decimal("29.60"),
            Decimal(cumulative),
            Decimal(position),
        )
        assert row.paid_off is paid_off
    assert [row.paid_off for row in table].index(True) + 1 == 41  # 1200 / 29.60 = 40.54
    assert all(row.paid_off for row in table[40:])
    assert break_even_month(Decimal(1200), monthly_savings, date(2026, 1, 1)) == "2029-05"


def test_break_even_counts_what_was_already_saved_and_never_comes_without_savings() -> None:
    start = date(2026, 1, 15)
    assert break_even_month(Decimal(1200), Decimal("29.60"), start, Decimal(1184)) == "2026-01"
    assert break_even_month(Decimal(1200), Decimal("29.60"), start, Decimal(1150)) == "2026-02"
    assert roi_table(Decimal(1200), Decimal("29.60"), start, 1, Decimal(1184))[0].paid_off
    assert break_even_month(Decimal(1200), Decimal(0), start) is None
    assert break_even_month(Decimal(1200), Decimal("-3"), start, Decimal(500)) is None


def test_the_gpu_is_written_off_per_week_over_its_amortisation() -> None:
    # $1,200 over 36 months is $33.33 a month; a month is 52/12 weeks.
    assert round(amortised_per_week(Decimal(1200), 36), 6) == Decimal("7.692308")
    assert amortised_per_week(Decimal(1200), 12) * 52 == Decimal(1200)


# -- a synthetic ledger ------------------------------------------------------------------


def creator(channel_id: str, name: str, priority: str) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "name": name,
        "handle": None,
        "priority": priority,
        "scan_interval_days": None,
        "last_scanned_at": None,
        "feed_etag": None,
        "feed_last_modified": None,
        "added_at": NOW,
    }


def video(video_id: str, channel_id: str, title: str) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "channel_id": channel_id,
        "title": title,
        "description": "",
        "published_at": NOW,
        "status": "analyzed",
        "status_reason": None,
        "source": "feed",
        "fetch_attempts": 1,
        "next_fetch_at": None,
        "discovered_at": NOW,
        "updated_at": NOW,
    }


def call(
    call_id: str,
    ts: datetime,
    provider: Provider,
    purpose: Purpose,
    video_id: str | None,
    usage: Usage,
    latency_ms: float,
    busy_ns: int = 0,
    error_type: str | None = None,
) -> dict[str, Any]:
    """The llm_calls row kb itself would record (pricing.call_row)."""
    model = "llama3.2" if provider == "ollama" else SEED_MODEL
    recorded = ModelCall(
        provider, model, purpose, usage, latency_ms, error_type, busy_ns, call_id=call_id, ts=ts
    )
    return call_row(recorded, COSTS, flow_run_id="run", video_id=video_id, decision_id=None)


def decision(
    decision_id: str,
    ts: datetime,
    video_id: str | None,
    route: str,
    job: tuple[str, str, str] = ("0", "0", "0"),
) -> dict[str, Any]:
    """A routing decision; `job`: its all-cloud counterfactual, cloud dollars and energy."""
    all_cloud, cloud, energy = (Decimal(figure) for figure in job)
    return {
        "all_cloud_usd": all_cloud,
        "cloud_usd": cloud,
        "energy_usd": energy,
        "decision_id": decision_id,
        "ts": ts,
        "flow_run_id": "run",
        "video_id": video_id,
        "priority": "medium",
        "route": route,
        "reason": "test",
        "confidence": 0.5,
        "threshold": 0.7,
        "components": {},
        "policy_version": "default@test",
    }


def shadow(video_id: str, ts: datetime, good_enough: bool) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "decision_id": f"d-{video_id}",
        "call_id": f"shadow-{video_id}",
        "agreement": 0.9 if good_enough else 0.2,
        "local_good_enough": good_enough,
        "ts": ts,
    }


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A migrated ledger holding nothing."""
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    return ledger


@pytest.fixture(scope="module")
def week_ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calls, decisions and shadow reviews in 2026-W47 (Berlin) and around it."""
    ledger = Ledger(tmp_path_factory.mktemp("week") / "kb.duckdb")
    ledger.migrate()
    small = Usage(input_tokens=1_000)  # $0.003 at the seed model
    refine = Usage(input_tokens=2_000, output_tokens=1_000, cache_read_tokens=10_000)
    calls = [
        # In the week: 5 local calls, 3 answered cloud calls, 1 failed cloud call.
        call("L3", datetime(2026, 11, 15, 23, 30, tzinfo=UTC), "ollama", "prompt", None, small,
             1_000, SIX_MINUTES_NS),  # Monday 00:30 in Berlin
        call("L1", berlin(11, 16, 10), "ollama", "draft", "med-2", SEED_USAGE, 20_000, HOUR_NS),
        call("L2", berlin(11, 17, 9), "ollama", "draft", "med-3", Usage(2_000, 1_000), 4_000,
             SIX_MINUTES_NS),
        call("C1", berlin(11, 17, 10), "anthropic", "refine", "med-3", refine, 3_000),
        call("C2", berlin(11, 18, 9), "anthropic", "direct", "crit-1", SEED_USAGE, 9_000),
        call("C3", berlin(11, 18, 10), "anthropic", "direct", "crit-1", Usage(), 30_000,
             error_type="OverloadedError"),
        call("L5", berlin(11, 19, 9), "ollama", "draft", "low-4", small, 1_000, SIX_MINUTES_NS),
        call("C4", berlin(11, 20, 9), "anthropic", "shadow", "med-2", SEED_USAGE, 8_000),
        call("L4", berlin(11, 22, 23, 30), "ollama", "prompt", None, small, 1_000,
             SIX_MINUTES_NS),  # Sunday 23:30 in Berlin
        # Before the week: they count only in the history.
        call("O3", berlin(10, 1, 12), "ollama", "prompt", None, SEED_USAGE, 20_000, HOUR_NS),
        call("O1", berlin(11, 15, 23, 30), "ollama", "draft", "med-2", SEED_USAGE, 20_000,
             HOUR_NS),  # Sunday 23:30 in Berlin
        # After the week (Monday 00:30 in Berlin): not counted anywhere.
        call("O2", berlin(11, 23, 0, 30), "anthropic", "direct", "crit-1", SEED_USAGE, 9_000),
    ]  # fmt: skip
    # Each job: what one direct seed-model call would have cost, what its calls cost.
    decisions = [
        decision("D0", berlin(10, 1, 12), None, "local_accept", ("0.09", "0", "0.042")),  # O3
        decision("D00", berlin(11, 15, 23, 31), "med-2", "deferred"),  # O1; nothing done
        # D1: L1 and its shadow C4; D2: L2 refined by C1 (direct would be 2k in, 1k out).
        decision("D1", berlin(11, 16, 11), "med-2", "local_accept", ("0.09", "0.09", "0.042")),
        decision("D2", berlin(11, 17, 11), "med-3", "cloud_refine", ("0.021", "0.024", "0.0042")),
        decision("D3", berlin(11, 18, 11), "crit-1", "cloud_direct", ("0.09", "0.09", "0")),
        decision("D4", berlin(11, 19, 11), None, "local_accept", ("0.003", "0", "0.0042")),  # L3
        decision("D5", berlin(11, 19, 12), "low-4", "fallback_local", ("0.003", "0", "0.0042")),
        decision("D6", berlin(11, 23, 1), "med-3", "cloud_refine", ("0.09", "0.09", "0")),
        decision("D7", berlin(11, 22, 23, 31), None, "local_accept"),  # before migration 7
    ]  # fmt: skip
    decisions[-1].update(all_cloud_usd=None, cloud_usd=None, energy_usd=None)
    reviews = [
        shadow("med-2", berlin(11, 20, 10), good_enough=True),
        shadow("med-3", berlin(11, 21, 10), good_enough=False),
        shadow("low-4", berlin(11, 12, 10), good_enough=False),  # the week before
    ]
    ledger.write(
        Write.insert_new(
            "creators",
            ("channel_id",),
            [
                creator("UC-crit", "Critical Carla", "critical"),
                creator("UC-med", "Medium Mo", "medium"),
                creator("UC-low", "Low Lee", "low"),
            ],
        ),
        Write.insert_new(
            "videos",
            ("video_id",),
            [
                video("crit-1", "UC-crit", TRICKY_TITLE),
                video("med-2", "UC-med", "Second"),
                video("med-3", "UC-med", "Third"),
                video("low-4", "UC-low", "Fourth"),
            ],
        ),
        Write.insert_new("llm_calls", ("call_id",), calls),
        Write.insert_new("routing_decisions", ("decision_id",), decisions),
        Write.insert_new("shadow_reviews", ("video_id",), reviews),
    )
    return ledger.path


@pytest.fixture
def week_ledger(week_ledger_file: Path, tmp_path: Path) -> Ledger:
    """A copy of the week's ledger, for a test to change."""
    return Ledger(Ledger(week_ledger_file).snapshot(tmp_path / "kb.duckdb"))


@pytest.fixture(scope="module")
def report(week_ledger_file: Path) -> WeeklyReport:
    return weekly_report(Ledger(week_ledger_file), WEEK, COSTS, BUDGET, now=NOW)


CostFigures = tuple[str, int, Decimal, Decimal, Decimal]


def money(*lines: tuple[str, int, str, str, str]) -> list[CostFigures]:
    """Cost lines written by hand: name, calls, cloud, energy, all-cloud equivalent."""
    return [
        (name, calls, Decimal(cloud), Decimal(energy), Decimal(equivalent))
        for name, calls, cloud, energy, equivalent in lines
    ]


def test_the_headline_figures_of_a_week_match_a_count_by_hand(report: WeeklyReport) -> None:
    assert price(SEED_USAGE, SEED_MODEL) == Decimal("0.09")  # the seed call, as counterfactual
    assert price(Usage(2_000, 1_000, 10_000), SEED_MODEL) == Decimal("0.024")  # C1

    assert (report.week, report.starts_at, report.ends_at) == (
        "2026-W47",
        datetime(2026, 11, 15, 23, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 23, 0, tzinfo=UTC),
    )
    assert (report.calls, report.failed_calls) == (9, 1)
    assert report.cloud_usd == Decimal("0.204")  # C1 0.024 + C2 0.09 + C4 0.09
    assert report.energy_usd == Decimal("0.0588")  # one hour (0.042) + 4 x six minutes
    # L1 0.09, L2 0.021, L3 L4 L5 0.003 each, and the three answered cloud calls
    # Per call, repriced: what the report counted as savings before (0.324 - 0.204 - 0.0588
    # = +0.0612), though the shadow and the refine were paid on top of local work.
    assert report.cloud_equivalent_usd == Decimal("0.324")
    # Per job: D1 -0.042, D2 -0.0072, D3 0, D4 -0.0012, D5 -0.0012 (D7 has no figures).
    assert (report.jobs, report.all_cloud_usd) == (5, Decimal("0.207"))
    # 0.49 kWh at 350 W is 1.4 hours answering; 8.6 idle hours at 100 W, $0.12/kWh.
    assert report.busy_hours == pytest.approx(1.4)
    assert report.idle_usd == Decimal("0.1032")
    assert report.savings_usd == Decimal("-0.1548")  # -0.0516 - 0.1032
    assert report.savings_percent == pytest.approx(-0.1548 / 0.207 * 100)
    assert report.local_share_calls == pytest.approx(5 / 8)  # the failed call did no work
    # local 14k + 3k + 3 x 1k; cloud 13k (with 10k cache reads) + 2 x 14k
    assert report.local_share_tokens == pytest.approx(20_000 / 61_000)
    assert report.local_share_met is False
    assert (report.local_starts, report.escalations) == (3, 1)  # D1, D2, D5
    assert report.escalation_rate == pytest.approx(1 / 3)
    assert (report.shadow_samples, report.local_accept_precision) == (2, 0.5)
    assert report.budget_usd == BUDGET
    assert report.budget_used_percent == pytest.approx(2.04)


def test_costs_are_broken_down_by_model_purpose_and_creator_priority(
    report: WeeklyReport,
) -> None:
    def lines(found: list[CostLine]) -> list[CostFigures]:
        return [(x.name, x.calls, x.cloud_usd, x.energy_usd, x.cloud_equivalent_usd) for x in found]

    assert lines(report.cost_by_model) == money(
        (SEED_MODEL, 4, "0.204", "0", "0.204"),
        ("llama3.2", 5, "0", "0.0588", "0.12"),
    )
    assert lines(report.cost_by_purpose) == money(
        ("direct", 2, "0.09", "0", "0.09"),
        ("shadow", 1, "0.09", "0", "0.09"),
        ("refine", 1, "0.024", "0", "0.024"),
        ("draft", 3, "0", "0.0504", "0.114"),
        ("prompt", 2, "0", "0.0084", "0.006"),
    )
    assert lines(report.cost_by_priority) == money(
        ("medium", 4, "0.114", "0.0462", "0.225"),
        ("critical", 2, "0.09", "0", "0.09"),
        ("prompts", 2, "0", "0.0084", "0.006"),
        ("low", 1, "0", "0.0042", "0.003"),
    )
    assert [
        (v.video_id, v.title, v.creator, v.cloud_usd, v.calls) for v in report.costliest_videos
    ] == [
        ("crit-1", TRICKY_TITLE, "Critical Carla", Decimal("0.09"), 2),  # O2 is next week
        ("med-2", "Second", "Medium Mo", Decimal("0.09"), 2),
        ("med-3", "Third", "Medium Mo", Decimal("0.024"), 2),
    ]  # low-4 cost nothing in the cloud


def test_latency_days_and_history(report: WeeklyReport) -> None:
    # Answered calls only. Ollama: 1000 1000 1000 4000 20000; p95 at rank 3.8.
    assert [(p.provider, p.calls, p.p50_ms, p.p95_ms) for p in report.latency] == [
        ("anthropic", 3, 8_000, pytest.approx(8_900)),
        ("ollama", 5, 1_000, pytest.approx(16_800)),
    ]
    days = [
        (d.day.day, d.cloud_usd, d.energy_usd, d.all_cloud_usd, d.local_share_calls)
        for d in report.days
    ]
    assert days == [
        (16, Decimal("0"), Decimal("0.0462"), Decimal("0.09"), 1.0),
        (17, Decimal("0.024"), Decimal("0.0042"), Decimal("0.021"), 0.5),
        (18, Decimal("0.09"), Decimal("0"), Decimal("0.09"), 0.0),
        (19, Decimal("0"), Decimal("0.0042"), Decimal("0.006"), 1.0),
        (20, Decimal("0.09"), Decimal("0"), Decimal("0"), 0.0),
        (21, Decimal("0"), Decimal("0"), Decimal("0"), None),
        (22, Decimal("0"), Decimal("0.0042"), Decimal("0"), 1.0),
    ]
    # W40: the seed prompt answered locally, 0.09 - 0.042 saved, less 9 idle hours (0.108).
    # W46: one hour of a draft that was deferred: nothing saved, 9 idle hours (0.108).
    assert [
        (w.week, w.local_share_calls, w.savings_usd, w.cumulative_savings_usd)
        for w in report.history
    ] == [
        ("2026-W40", 1.0, Decimal("-0.06"), Decimal("-0.06")),
        ("2026-W46", 1.0, Decimal("-0.108"), Decimal("-0.168")),
        ("2026-W47", 0.625, Decimal("-0.1548"), Decimal("-0.3228")),
    ]


def test_the_return_on_the_gpu_after_the_week(report: WeeklyReport) -> None:
    roi = report.roi
    assert roi.gpu_price_usd == Decimal(1200)
    assert round(roi.amortised_per_week_usd, 6) == Decimal("7.692308")
    assert round(roi.net_this_week_usd, 6) == Decimal("-7.847108")  # -0.1548 - 7.692308
    assert roi.cumulative_savings_usd == Decimal("-0.3228")
    assert roi.position_usd == Decimal("-1200.3228")
    assert roi.monthly_savings_usd == Decimal("-0.6708")  # -0.1548 x 52 / 12
    assert roi.break_even_month is None and roi.break_even == "never at this rate"


@pytest.mark.parametrize(
    ("gpu_price", "idle_watts", "break_even"),
    [
        # No shadow in D1 and no idle draw: W40 +0.048, W46 0, W47 +0.0384 (0.0864 in all).
        ("0.04", "0", "2026-10"),  # covered already by 2026-W40
        ("0.08", "0", "2026-11"),  # covered by 2026-W47
        ("1", "0", "2027-05"),  # 0.9136 still to save at 0.1664 a month: 6 months from Dec
        ("1", "100", None),  # the idle hours make every week a loss: never
    ],
)
def test_break_even_is_projected_or_the_month_savings_covered_the_gpu(
    week_ledger: Ledger, gpu_price: str, idle_watts: str, break_even: str | None
) -> None:
    with week_ledger.transaction() as connection:
        connection.execute("UPDATE routing_decisions SET cloud_usd = 0 WHERE decision_id = 'D1'")
    update = {"gpu_price_usd": Decimal(gpu_price), "gpu_idle_watts": Decimal(idle_watts)}
    costs = COSTS.model_copy(update=update)
    assert weekly_report(week_ledger, WEEK, costs, BUDGET).roi.break_even_month == break_even


def test_the_week_must_be_in_the_cost_timezone(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="the cost timezone is Europe/Berlin"):
        weekly_report(ledger, IsoWeek.parse("2026-W47"), COSTS, BUDGET)


def test_an_empty_ledger_reports_zeros_and_no_shares(ledger: Ledger) -> None:
    report = weekly_report(ledger, WEEK, COSTS, Decimal(0), now=NOW)

    assert (report.calls, report.failed_calls) == (0, 0)
    assert report.cloud_usd == report.energy_usd == 0
    assert report.savings_usd == -report.idle_usd == Decimal("-0.12")  # 10 idle hours
    assert report.savings_percent is None
    assert report.local_share_calls is None and report.local_share_tokens is None
    assert report.local_share_met is False
    assert report.escalation_rate is None and report.local_accept_precision is None
    assert report.budget_used_percent is None  # no budget to use
    assert report.cost_by_model == report.costliest_videos == report.latency == []
    assert report.history == []
    assert [(d.cloud_usd, d.local_share_calls) for d in report.days] == [(0, None)] * 7
    assert report.roi.cumulative_savings_usd == 0
    assert report.roi.position_usd == -1200
    assert report.roi.break_even_month is None
    markdown = report.to_markdown()
    assert "not projected yet: 0 complete week(s) of data, 3 more needed" in markdown
    assert "No model calls were recorded in 2026-W47. The ledger has no calls yet" in markdown
    page = render_html(report)
    assert page.count("<svg") == 3 and "no calls this week" in page


# -- presenting and recording ------------------------------------------------------------


def test_the_markdown_and_table_show_the_headline(report: WeeklyReport) -> None:
    markdown = report.to_markdown()

    assert markdown.startswith("# Weekly cost report 2026-W47")
    assert (
        "Mon 2026-11-16 to Sun 2026-11-22 (Europe/Berlin), generated 2026-11-24 09:00 CET"
        in markdown
    )
    for row in [
        "| Cloud spend | $0.2040 |",
        "| Savings | -$0.1548 (-74.8%) |",
        "| Local share of calls | 62.5% (target 80%: missed) |",
        "| Escalation rate | 33.3% (1 of 3 local starts refined in the cloud) |",
        "| Local accept precision | 50.0% (95% interval 9%-91%, 2 shadow samples) |",
        "| Budget used | $0.2040 of $10.00 (2.0%) |",
        "| Break-even | never at this rate |",
        "| crit-1 | Tools & <tricks> \\| part 1 | Critical Carla | $0.0900 | 2 |",
        "| ollama | 5 | 1,000 | 16,800 |",
    ]:
        assert row in markdown
    assert report.to_table()[:2] == [
        {"figure": "Calls", "value": "9 (1 failed)"},
        {"figure": "Cloud spend", "value": "$0.2040"},
    ]


def test_the_html_page_is_self_contained_with_three_charts(report: WeeklyReport) -> None:
    page = render_html(report)

    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 3
    assert "Tools &amp; &lt;tricks&gt; | part 1" in page and TRICKY_TITLE not in page
    for figure in ["2026-W47", "$0.2040", "62.5%", "33.3%", "never at this rate", "2026-W40"]:
        assert figure in page
    for external in ["<script", "<link", "src=", "@import", "url(http", 'href="http']:
        assert external not in page


def test_a_report_is_recorded_once_per_week_and_reads_back_whole(
    week_ledger: Ledger, report: WeeklyReport
) -> None:
    again = weekly_report(week_ledger, WEEK, COSTS, BUDGET, now=datetime(2026, 11, 30, tzinfo=UTC))
    week_ledger.write(report.ledger_write())
    week_ledger.write(again.ledger_write())

    [row] = week_ledger.rows("SELECT * FROM weekly_reports")
    assert row["generated_at"] == again.generated_at
    assert (row["week"], row["starts_at"], row["ends_at"]) == (
        "2026-W47",
        report.starts_at,
        report.ends_at,
    )
    assert (row["cloud_usd"], row["savings_usd"], row["break_even_month"]) == (
        Decimal("0.204"),
        Decimal("-0.1548"),
        None,
    )
    assert row["local_share_calls"] == pytest.approx(0.625)
    assert WeeklyReport.model_validate_json(row["report"]) == again


def test_an_empty_week_says_which_weeks_have_data(week_ledger_file: Path) -> None:
    empty = IsoWeek.parse("2026-W45", timezone=BERLIN)

    report = weekly_report(Ledger(week_ledger_file), empty, COSTS, BUDGET, now=NOW)

    assert report.calls == 0
    assert report.weeks_with_data == ["2026-W40", "2026-W46", "2026-W47", "2026-W48"]
    assert (
        "No model calls were recorded in 2026-W45. Weeks with data: 2026-W40, 2026-W46, "
        "2026-W47, 2026-W48; e.g. `kb report --week 2026-W48`."
    ) in report.to_markdown()
    chart = cost_per_day_chart(report)
    assert chart.bounds() == (0.0, 1.0)  # no negative axis under an empty week
    assert ">0.0</text>" in chart.svg() and ">no calls this week</text>" in chart.svg()


def test_a_week_not_over_yet_is_marked_partial_and_not_counted_for_projection(
    week_ledger_file: Path,
) -> None:
    midweek = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)

    report = weekly_report(Ledger(week_ledger_file), WEEK, COSTS, BUDGET, now=midweek)

    assert report.partial and report.title == "Weekly cost report 2026-W47 (partial)"
    assert "Partial week: the figures run to Thu 2026-11-19 13:00 CET" in report.to_markdown()
    assert report.roi.weeks_of_data == 2  # W40 and W46; W47 is not over
    assert report.roi.break_even_month is None
    assert "not projected yet: 2 complete week(s) of data, 1 more needed" in report.to_markdown()
    assert not weekly_report(Ledger(week_ledger_file), WEEK, COSTS, BUDGET, now=NOW).partial


def test_net_after_amortisation_stands_beside_the_savings(report: WeeklyReport) -> None:
    markdown = report.to_markdown()
    assert "**Savings against all-cloud: -74.8%** · **Net after GPU amortisation: -$7.85**" in (
        markdown
    )
    [savings, net] = [row[0] for row in report.headline().rows][5:7]
    assert (savings, net) == ("Savings", "Net after GPU amortisation")
    page = render_html(report)
    assert "<strong>-$7.85</strong>Net after GPU amortisation" in page
    # The cost chart carries the all-cloud counterfactual of each day.
    chart = cost_per_day_chart(report)
    assert ">all-cloud</text>" in chart.svg() and chart.svg() in page
    low, high = chart.bounds()
    assert low == 0 and high >= float(max(d.all_cloud_usd for d in report.days))
    assert sum(day.all_cloud_usd for day in report.days) == report.all_cloud_usd
