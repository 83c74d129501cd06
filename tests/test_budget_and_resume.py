"""The weekly budget under concurrency, and a killed run resumed without paying twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from creatorkb.budget import Budget
from creatorkb.calls import ModelRequest
from creatorkb.cloud_model import CloudModel
from creatorkb.insight import INSIGHT_SCHEMA, SYSTEM_PROMPT, draft_prompt, record_tokens
from creatorkb.ledger import Ledger
from creatorkb.report import IsoWeek, weekly_report
from creatorkb.settings import AnthropicEnvSettings, CostOptions
from flows.analyze import analyze_videos
from tests.analysts import by_title, fabricated
from tests.conftest import KB, seed_transcribed
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.test_analysis import CRITICAL, MEDIUM, PRIORITIES, TALK

pytestmark = pytest.mark.usefixtures("prefect_api")
NEXT_WEEK = datetime.now(UTC) + timedelta(days=7)  # the report of this week, once it ends


def test_the_budget_holds_under_twenty_concurrent_requests(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    anthropic.latency_s = 2.0  # every call in flight at once while the others reserve
    monkeypatch.setenv("KB_ANTHROPIC_CONCURRENCY", "20")
    ledger_path = kb_env / "data" / "kb.duckdb"
    videos = [(f"vid_budg{i:03d}", CRITICAL, "same title", TALK) for i in range(20)]
    seed_transcribed(ledger_path, videos, PRIORITIES)
    # The most one call can cost, as kb estimates it: the budget fits five of them.
    ceiling = CloudModel(AnthropicEnvSettings()).max_cost(
        ModelRequest(
            SYSTEM_PROMPT,
            draft_prompt("same title", TALK),
            "direct",
            INSIGHT_SCHEMA,
            max_output_tokens=record_tokens(TALK),
        )
    )
    budget = ceiling * Decimal("5.5")
    monkeypatch.setenv("KB_POLICY_WEEKLY_BUDGET_USD", str(budget))

    summary = analyze_videos()

    ledger = Ledger(ledger_path)
    [spent] = ledger.rows(
        "SELECT sum(cost_usd) AS usd, count(*) AS paid FROM llm_calls "
        "WHERE provider = 'anthropic' AND status = 'ok'"
    )
    assert spent["usd"] <= budget
    assert 1 <= spent["paid"] <= 5  # the budget fits five of the twenty
    assert len(anthropic.calls) == spent["paid"]
    assert summary.routes["fallback_local"] == 20 - spent["paid"]
    over = ledger.rows(
        "SELECT count(*) AS n FROM routing_decisions WHERE reason LIKE '%over budget%'"
    )
    assert over == [{"n": 20 - spent["paid"]}]
    assert anthropic.max_concurrency >= 2  # the calls really were concurrent
    open_left = ledger.rows("SELECT count(*) AS n FROM budget_reservations WHERE status = 'open'")
    assert open_left == [{"n": 0}]


def test_a_killed_run_resumes_without_paying_twice(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    anthropic.latency_s = 0.4
    ollama.responder = by_title({"hype": fabricated})  # every draft needs a cloud refine
    monkeypatch.setenv("KB_ANTHROPIC_CONCURRENCY", "2")
    ledger_path = kb_env / "data" / "kb.duckdb"
    titles = {f"vid_kill{i:03d}": f"hype number {i}" for i in range(16)}
    seed_transcribed(
        ledger_path,
        [(video, MEDIUM, title, TALK) for video, title in titles.items()],
        PRIORITIES,
    )

    run = subprocess.Popen([KB, "analyze"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(anthropic.replies) < 6:
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)  # mid-run: some videos finished, some in flight
    run.wait()
    ledger = Ledger(ledger_path)
    finished = {r["video_id"] for r in ledger.rows("SELECT video_id FROM analyses")}
    assert 0 < len(finished) < len(titles)
    calls_before = len(anthropic.calls)

    # The killed process's claims lapse with it: the next run takes every unfinished video.
    assert analyze_videos().videos == len(titles) - len(finished)

    done = ledger.rows("SELECT video_id, count(*) AS n FROM analyses GROUP BY 1")
    assert {row["video_id"] for row in done} == set(titles)
    asked_again = [c.user for c in anthropic.calls[calls_before:]]
    assert asked_again  # the unfinished videos were refined in the second run
    for video in finished:
        assert not any(f"Video title: {titles[video]}\n" in user for user in asked_again)
    # Every finished video was paid for exactly once, and the ledger holds each payment.
    paid = ledger.rows(
        "SELECT video_id, count(*) AS n FROM llm_calls WHERE provider = 'anthropic' "
        "AND status = 'ok' GROUP BY 1"
    )
    assert all(row["n"] == 1 for row in paid if row["video_id"] in finished)
    statuses = ledger.rows("SELECT DISTINCT status FROM videos")
    assert statuses == [{"status": "analyzed"}]


def test_a_reservation_is_as_tight_as_the_job_can_need(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reserving the full 4,096 output tokens per call refused every refine at this budget
    # ($0.045 each); a record of this transcript needs far fewer.
    anthropic.latency_s = 1.0  # all three in flight at once
    ollama.responder = by_title({"hype": fabricated})
    monkeypatch.setenv("KB_POLICY_WEEKLY_BUDGET_USD", "0.04")
    monkeypatch.setenv("KB_ANTHROPIC_CONCURRENCY", "3")
    seed_transcribed(
        kb_env / "data" / "kb.duckdb",
        [(f"vid_tight{i}", MEDIUM, "hype", TALK) for i in range(3)],
        PRIORITIES,
    )

    assert analyze_videos().routes == {"cloud_refine": 3}

    # Still a bound: no call cost more than it reserved.
    rows = Ledger(kb_env / "data" / "kb.duckdb").rows(
        "SELECT r.amount_usd, c.cost_usd FROM budget_reservations r "
        "JOIN llm_calls c USING (call_id) WHERE r.status = 'settled'"
    )
    assert len(rows) == 3 and all(row["cost_usd"] <= row["amount_usd"] for row in rows)
    assert max(row["amount_usd"] for row in rows) < Decimal("0.0134")  # 3 fit in $0.04


def test_a_call_whose_answer_never_came_back_is_still_counted(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed while Anthropic works on the answer (and may bill it): the call is on record
    # before it is sent, and its reservation stays the bound of what was possibly billed.
    anthropic.latency_s = 8.0  # longer than kb takes to send it and be killed
    ledger_path = kb_env / "data" / "kb.duckdb"
    seed_transcribed(ledger_path, [("vid_lost01", CRITICAL, "a talk", TALK)], PRIORITIES)
    run = subprocess.Popen([KB, "analyze"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not anthropic.requests_to("/v1/messages"):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()

    ledger = Ledger(ledger_path)
    [held] = ledger.rows(
        "SELECT status, sent_at IS NOT NULL AS sent, model, purpose, amount_usd "
        "FROM budget_reservations"
    )
    assert held["status"] == "open" and held["sent"] and held["purpose"] == "direct"
    assert held["model"] == "claude-sonnet-5"
    budget = Budget(ledger, Decimal(1))
    assert budget.status().reserved_usd == held["amount_usd"]  # its process is gone: counted
    report = weekly_report(ledger, IsoWeek.last_complete(NEXT_WEEK, "UTC"), CostOptions(), 1)
    assert (report.possibly_billed_calls, report.possibly_billed_usd) == (1, held["amount_usd"])
    assert "| Possibly billed | up to $" in report.to_markdown()

    anthropic.latency_s = 0.0
    assert analyze_videos().routes == {"cloud_direct": 1}  # the next run does the video
    assert budget.status().reserved_usd == held["amount_usd"]  # and still counts the first

    # The owner reads what it really cost in Anthropic's console and settles it.
    [reservation] = ledger.rows("SELECT reservation_id FROM budget_reservations WHERE "
                                "status = 'open'")  # fmt: skip
    rid = reservation["reservation_id"]
    listed = subprocess.run([KB, "ledger", "unanswered"], capture_output=True, text=True)
    assert rid in listed.stdout and "direct" in listed.stdout
    too_much = subprocess.run(
        [KB, "ledger", "settle", rid, "--usd", "5"], capture_output=True, text=True
    )
    assert too_much.returncode == 1 and "is not a cost this call can have had" in too_much.stdout
    unknown = subprocess.run(
        [KB, "ledger", "settle", "nope", "--not-billed"], capture_output=True, text=True
    )
    assert unknown.returncode == 1 and "no possibly billed call has reservation 'nope'" in (
        unknown.stdout
    )
    spent = budget.status().spent_usd
    settled = subprocess.run(
        [KB, "ledger", "settle", rid, "--usd", "0.0052"], capture_output=True, text=True
    )
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert budget.status().reserved_usd == 0
    assert budget.status().spent_usd == spent + Decimal("0.0052")  # the real figure, once
