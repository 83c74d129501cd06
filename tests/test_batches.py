"""Message Batches through the real path: the SDK against the loopback Anthropic's Batches
endpoints, real flows on the session's Prefect server, a real DuckDB ledger."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from creatorkb import batches as batches_module
from creatorkb.budget import unanswered
from creatorkb.errors import SettingsError
from creatorkb.ledger import Write
from creatorkb.report import IsoWeek, weekly_report
from creatorkb.settings import CostOptions
from flows.analyze import analyze_videos
from tests.analysts import by_title, careful, fabricated
from tests.conftest import ledger_of, run_kb
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.test_analysis import CRITICAL, MEDIUM, MTOK, SONNET_5, by_hand, seed

pytestmark = pytest.mark.usefixtures("prefect_api")

# claude-haiku-5-5 list prices (genai-prices, under 200k input tokens), $ per million tokens.
HAIKU_5_5 = {"in": "0.1", "out": "0.5", "read": "0.01", "write_5m": "0.125"}


@pytest.fixture(autouse=True)
def batching(kb_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default policy: refines and shadows of medium and low priority wait for a batch."""
    monkeypatch.delenv("KB_POLICY_BATCH_PURPOSES")


def rows(kb_env: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return ledger_of(kb_env).rows(sql, params or [])


def by_hand_at(usage: dict[str, Any], prices: dict[str, str]) -> Decimal:
    rate = {name: Decimal(value) / MTOK for name, value in prices.items()}
    split = usage["cache_creation"]
    assert split["ephemeral_1h_input_tokens"] == 0
    return (
        usage["input_tokens"] * rate["in"]
        + usage["output_tokens"] * rate["out"]
        + usage["cache_read_input_tokens"] * rate["read"]
        + split["ephemeral_5m_input_tokens"] * rate["write_5m"]
    )


def decision_of(kb_env: Path, video_id: str) -> dict[str, Any]:
    [decision] = rows(kb_env, "SELECT * FROM routing_decisions WHERE video_id = ?", [video_id])
    return decision


def test_work_that_can_wait_is_sent_as_a_batch_and_finished_by_a_later_run(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    anthropic.hold_batches = True
    seed(
        kb_env,
        *[(f"vid_hype{i:03d}", MEDIUM, f"hype {i}") for i in range(3)],
        ("vid_portrait", MEDIUM, "portrait"),
        ("vid_critical", CRITICAL, "critical talk"),
    )

    first = analyze_videos()

    # The critical video went to the cloud at once, the passing draft stayed local; the three
    # refines wait in one batch, each item on record with its custom_id and reservation.
    assert first.routes == {"cloud_direct": 1, "local_accept": 1}
    assert first.analyzed == 2 and first.deferred == 0
    [batch_id] = first.batches_sent
    assert sorted(w.video_id for w in first.waiting) == [f"vid_hype{i:03d}" for i in range(3)]
    assert {(w.batch_id, w.status, w.purpose, w.model) for w in first.waiting} == {
        (batch_id, "submitted", "refine", "claude-haiku-5-5")
    }
    [created] = anthropic.requests_to("/v1/messages/batches")
    sent = {item["custom_id"] for item in created.json["requests"]}
    assert sent == {w.custom_id for w in first.waiting}
    assert len(anthropic.calls) == 1 and anthropic.batch_calls == []  # nothing answered yet
    waiting = rows(kb_env, "SELECT status, status_reason FROM videos WHERE video_id LIKE 'vid_h%'")
    assert {r["status"] for r in waiting} == {"transcribed"}
    assert all("waiting on a Message Batch" in r["status_reason"] for r in waiting)
    assert not rows(kb_env, "SELECT * FROM routing_decisions WHERE video_id LIKE 'vid_h%'")
    held = rows(kb_env, "SELECT status FROM budget_reservations WHERE purpose = 'refine'")
    assert [r["status"] for r in held] == ["open"] * 3
    assert unanswered(ledger_of(kb_env)) == []  # waiting, not lost
    assert "Waiting on a Message Batch: 3 video(s)" in first.to_markdown()
    assert batch_id in first.to_markdown()
    status = run_kb("status").stdout
    assert "3 video(s) waiting on a Message Batch" in status and batch_id in status

    # A run while the batch is in progress leaves the videos waiting: no second draft.
    drafts = len(ollama.chats)
    second = analyze_videos()
    assert second.videos == 0 and len(second.waiting) == 3 and len(ollama.chats) == drafts

    anthropic.end_batches()
    third = analyze_videos()

    assert third.routes == {"cloud_refine": 3} and third.batch_answers == 3
    assert third.waiting == [] and len(anthropic.batch_replies) == 3
    assert len(anthropic.calls) == 1  # nothing was asked again directly
    for i in range(3):
        decision = decision_of(kb_env, f"vid_hype{i:03d}")
        assert decision["route"] == "cloud_refine"
        assert "grounding 0.00 is below 0.50" in decision["reason"]
        calls = rows(
            kb_env,
            "SELECT purpose, service_tier, decision_id FROM llm_calls WHERE video_id = ? "
            "ORDER BY ts",
            [f"vid_hype{i:03d}"],
        )
        assert [(c["purpose"], c["service_tier"]) for c in calls] == [
            ("draft", None),
            ("refine", "batch"),
        ]
        assert {c["decision_id"] for c in calls} == {decision["decision_id"]}
    analyses = rows(kb_env, "SELECT final_tier, model FROM analyses WHERE video_id LIKE 'vid_h%'")
    assert {(a["final_tier"], a["model"]) for a in analyses} == {("cloud", "claude-haiku-5-5")}
    assert {r["status"] for r in rows(kb_env, "SELECT status FROM videos")} == {"analyzed"}
    settled = rows(kb_env, "SELECT DISTINCT status FROM budget_reservations")
    assert settled == [{"status": "settled"}]
    # The ledger reconciles exactly with what the server billed: batch items at half the
    # list price (cache writes and reads included), the direct call at the list price.
    batch_usages = anthropic.billed_batch_usages
    assert sum(u["cache_read_input_tokens"] for u in batch_usages) > 0
    [billed] = rows(
        kb_env,
        "SELECT sum(cost_usd) AS usd FROM llm_calls WHERE service_tier = 'batch'",
    )
    assert billed["usd"] == sum(by_hand_at(u, HAIKU_5_5) for u in batch_usages) / 2
    [direct] = rows(kb_env, "SELECT cost_usd FROM llm_calls WHERE service_tier = 'standard'")
    assert direct["cost_usd"] == by_hand(anthropic.replies[0]["usage"])
    assert {u["service_tier"] for u in batch_usages} == {"batch"}
    # The weekly report: cloud dollars by model and service tier, what batching saved.
    week = IsoWeek.last_complete(datetime.now(UTC) + timedelta(days=7), "UTC")
    report = weekly_report(ledger_of(kb_env), week, CostOptions(), Decimal(10))
    assert sorted((t.model, t.tier, t.calls, t.cloud_usd) for t in report.cloud_by_tier) == [
        ("claude-haiku-5-5", "batch", 3, billed["usd"]),
        ("claude-sonnet-5", "standard", 1, direct["cost_usd"]),
    ]
    assert report.batch_savings_usd == billed["usd"]  # half price: the other half saved
    markdown = report.to_markdown()
    assert "## Cloud by model and service tier" in markdown
    assert "Saved by batching" in markdown


@pytest.mark.parametrize("crash", ["before the create call", "after the create call"])
def test_a_run_killed_while_sending_never_pays_twice_and_loses_nothing(
    kb_env: Path,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    crash: str,
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    seed(kb_env, ("vid_hype001", MEDIUM, "hype 1"), ("vid_hype002", MEDIUM, "hype 2"))

    def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"killed {crash}")

    with monkeypatch.context() as crashing:
        if crash == "before the create call":
            crashing.setattr(batches_module.BatchApi, "create", killed)
        else:  # Anthropic has the batch; kb dies before writing its id down
            crashing.setattr(batches_module, "record_submitted", killed)
        with pytest.raises(RuntimeError, match="killed"):
            analyze_videos()
    items = rows(kb_env, "SELECT status, batch_id FROM batch_items")
    assert items == [{"status": "sending", "batch_id": None}] * 2  # on record before the send
    assert len(anthropic.batches) == (0 if crash == "before the create call" else 1)

    summary = analyze_videos()
    if crash == "after the create call":
        # Found in the batches Anthropic lists, matched by custom_id, collected at once.
        assert any("died before recording it" in p for p in summary.batch_problems)
        assert summary.routes == {"cloud_refine": 2} and summary.batches_sent == []
    else:  # never reached Anthropic: sent now, finished by the next run
        assert summary.routes == {} and len(summary.batches_sent) == 1
        assert analyze_videos().routes == {"cloud_refine": 2}

    assert len(anthropic.batches) == 1  # one batch, whatever the moment of the kill
    assert len(anthropic.batch_replies) == 2  # each item answered (and billed) once
    paid = rows(
        kb_env,
        "SELECT video_id, count(*) AS n FROM llm_calls WHERE purpose = 'refine' "
        "AND service_tier = 'batch' GROUP BY 1",
    )
    assert sorted((r["video_id"], r["n"]) for r in paid) == [("vid_hype001", 1), ("vid_hype002", 1)]
    assert {r["status"] for r in rows(kb_env, "SELECT status FROM videos")} == {"analyzed"}
    assert {r["status"] for r in rows(kb_env, "SELECT status FROM batch_items")} == {"done"}


def test_a_run_killed_while_collecting_records_each_answer_once(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    seed(kb_env, *[(f"vid_hype{i:03d}", MEDIUM, f"hype {i}") for i in range(3)])
    analyze_videos()  # sent; the fake ends the batch at once
    original = batches_module.Batches._result_writes
    seen: list[str] = []

    def dies_on_the_second(self: Any, item: Any, result: Any, run: Any) -> Any:
        seen.append(item.custom_id)
        if len(seen) == 2:
            raise RuntimeError("killed while collecting")
        return original(self, item, result, run)

    with monkeypatch.context() as crashing:
        crashing.setattr(batches_module.Batches, "_result_writes", dies_on_the_second)
        with pytest.raises(RuntimeError, match="killed while collecting"):
            analyze_videos()
    # A batch's answers are written together or not at all: nothing half-recorded.
    assert rows(kb_env, "SELECT * FROM llm_calls WHERE service_tier = 'batch'") == []

    summary = analyze_videos()  # the results file is read again

    assert summary.routes == {"cloud_refine": 3} and summary.batch_answers == 3
    assert len(anthropic.batch_replies) == 3 and len(anthropic.batches) == 1
    paid = rows(kb_env, "SELECT count(*) AS n FROM llm_calls WHERE service_tier = 'batch'")
    assert paid == [{"n": 3}]


def test_the_cascade_goes_on_in_batched_work(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})

    def haiku_careless(request: Any) -> dict[str, Any]:
        return fabricated(request.user) if request.model == "claude-haiku-5-5" else careful(request)

    anthropic.responder = haiku_careless
    seed(kb_env, ("vid_hype001", MEDIUM, "hype"))

    assert [w.model for w in analyze_videos().waiting] == ["claude-haiku-5-5"]
    second = analyze_videos()  # haiku's record falls short: sonnet refines it, batched too
    assert [w.model for w in second.waiting] == ["claude-sonnet-5"] and second.routes == {}
    third = analyze_videos()

    assert third.routes == {"cloud_refine": 1}
    decision = decision_of(kb_env, "vid_hype001")
    assert "cascade: claude-haiku-5-5's record fell short" in decision["reason"]
    assert decision["reason"].endswith("refined by claude-sonnet-5")
    components = json.loads(decision["components"])
    assert [step["model"] for step in components["cascade"]] == [
        "claude-haiku-5-5",
        "claude-sonnet-5",
    ]
    haiku, sonnet = anthropic.batch_calls
    assert "claude-haiku-5-5's record fell short" in sonnet.user  # told why
    assert "MagicTool 9000" in haiku.user  # the draft went along
    calls = rows(
        kb_env,
        "SELECT model, service_tier, decision_id FROM llm_calls WHERE provider = 'anthropic' "
        "ORDER BY ts",
    )
    assert [(c["model"], c["service_tier"]) for c in calls] == [
        ("claude-haiku-5-5", "batch"),
        ("claude-sonnet-5", "batch"),
    ]
    assert {c["decision_id"] for c in calls} == {decision["decision_id"]}
    [cost] = rows(kb_env, "SELECT sum(cost_usd) AS usd FROM llm_calls")
    usages = anthropic.billed_batch_usages
    assert cost["usd"] == (by_hand_at(usages[0], HAIKU_5_5) + by_hand(usages[1])) / 2
    assert decision["cloud_usd"] == cost["usd"]  # the job's cost counts every step
    [analysis] = rows(kb_env, "SELECT model FROM analyses")
    assert analysis["model"] == "claude-sonnet-5"


def test_the_budget_holds_with_batches_in_flight(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    anthropic.hold_batches = True
    seed(kb_env, *[(f"vid_hype{i:03d}", MEDIUM, "hype") for i in range(4)])
    analyze_videos()
    [held] = rows(
        kb_env,
        "SELECT sum(amount_usd) AS usd, count(*) AS n FROM budget_reservations "
        "WHERE status = 'open'",
    )
    assert held["n"] == 4
    # The week's budget is what the batch in flight holds: nothing more fits.
    budget = held["usd"] + Decimal("0.000001")
    monkeypatch.setenv("KB_POLICY_WEEKLY_BUDGET_USD", str(budget))
    seed(kb_env, ("vid_crit001", CRITICAL, "critical"), ("vid_hype100", MEDIUM, "hype"))

    summary = analyze_videos()

    assert summary.routes == {"fallback_local": 2}
    for video in ("vid_crit001", "vid_hype100"):
        assert "over budget" in decision_of(kb_env, video)["reason"]
    assert len(anthropic.calls) == 0 and len(anthropic.batches) == 1

    anthropic.end_batches()
    assert analyze_videos().routes == {"cloud_refine": 4}
    [spent] = rows(
        kb_env, "SELECT sum(cost_usd) AS usd FROM llm_calls WHERE provider = 'anthropic'"
    )
    assert 0 < spent["usd"] <= budget
    assert rows(kb_env, "SELECT count(*) AS n FROM budget_reservations WHERE status = 'open'") == [
        {"n": 0}
    ]


def test_a_shadow_review_waits_for_a_batch(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_POLICY_SHADOW_RATE", "1")
    seed(kb_env, ("vid_portrait", MEDIUM, "portrait"))

    first = analyze_videos()
    assert [(w.purpose, w.model) for w in first.waiting] == [("shadow", "claude-sonnet-5")]
    second = analyze_videos()

    assert second.routes == {"local_accept": 1}
    [review] = rows(kb_env, "SELECT local_good_enough, call_id FROM shadow_reviews")
    assert review["local_good_enough"]
    [call] = rows(
        kb_env, "SELECT purpose, service_tier, call_id FROM llm_calls WHERE provider = 'anthropic'"
    )
    assert (call["purpose"], call["service_tier"]) == ("shadow", "batch")
    assert call["call_id"] == review["call_id"]


# -- bad input and faults ----------------------------------------------------------------


def test_a_batch_anthropic_cannot_find_any_more_is_said_and_the_video_finished(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    anthropic.hold_batches = True
    seed(kb_env, ("vid_hype001", MEDIUM, "hype"))
    [batch_id] = analyze_videos().batches_sent
    anthropic.forgotten.add(batch_id)

    summary = analyze_videos()

    assert any(f"{batch_id} is not found at Anthropic (404)" in p for p in summary.batch_problems)
    # Retried once directly (when_batch_fails: retry_direct), at the standard price.
    assert summary.routes == {"cloud_refine": 1} and len(anthropic.calls) == 1
    calls = rows(kb_env, "SELECT service_tier FROM llm_calls WHERE provider = 'anthropic'")
    assert calls == [{"service_tier": "standard"}]
    # Anthropic may have billed the lost item: it stays listed as possibly billed.
    [lost] = unanswered(ledger_of(kb_env))
    assert lost["purpose"] == "refine"
    [item] = rows(kb_env, "SELECT status, result_type, problem FROM batch_items")
    assert (item["status"], item["result_type"]) == ("done", "lost")
    assert "404" in item["problem"]


def test_a_batch_in_progress_past_the_limit_is_canceled_and_follows_the_policy(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_POLICY_BATCH_MAX_WAIT_HOURS", "0.0002")  # 0.72 s
    monkeypatch.setenv("KB_POLICY_WHEN_BATCH_FAILS", "cloud_fails")
    ollama.responder = by_title({"hype": fabricated})
    anthropic.hold_batches = True
    seed(kb_env, ("vid_hype001", MEDIUM, "hype"))
    [batch_id] = analyze_videos().batches_sent
    time.sleep(1.0)

    canceling = analyze_videos()
    assert any(
        f"batch {batch_id} was still in progress" in p and "batch_max_wait_hours" in p
        for p in canceling.batch_problems
    )
    assert anthropic.requests_to(f"/v1/messages/batches/{batch_id}/cancel")
    assert len(canceling.waiting) == 1  # canceling: not ended yet

    summary = analyze_videos()

    # Canceled (not billed: its reservation released); the unavailable-cloud rule keeps the
    # local draft, flagged.
    assert summary.routes == {"fallback_local": 1} and summary.flagged == 1
    assert "canceled" in decision_of(kb_env, "vid_hype001")["reason"]
    assert anthropic.batch_replies == [] and anthropic.calls == []
    reservations = rows(kb_env, "SELECT status FROM budget_reservations")
    assert reservations == [{"status": "released"}]


def test_a_results_file_with_an_item_kb_never_sent_and_a_malformed_line(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    anthropic.hold_batches = True
    seed(kb_env, ("vid_hype001", MEDIUM, "hype 1"), ("vid_hype002", MEDIUM, "hype 2"))
    [batch_id] = analyze_videos().batches_sent
    anthropic.end_batches()
    anthropic.foreign_results = ["intruder-0001"]
    anthropic.malformed_result_lines(1)

    summary = analyze_videos()

    problems = "\n".join(summary.batch_problems)
    assert f"batch {batch_id}'s results hold an item kb never sent ('intruder-0001')" in problems
    assert f"batch {batch_id}'s results have a malformed line (kb-refine-vid_hype00" in problems
    assert "read again by the next run" in problems
    assert summary.routes == {"cloud_refine": 1} and len(summary.waiting) == 1
    assert not rows(
        kb_env, "SELECT * FROM llm_calls WHERE detail ->> 'custom_id' = 'intruder-0001'"
    )

    finished = analyze_videos()  # the file is read again; the line is whole this time

    assert finished.routes == {"cloud_refine": 1} and finished.waiting == []
    assert len(anthropic.batch_replies) == 2 and anthropic.calls == []  # nothing paid twice
    paid = rows(kb_env, "SELECT count(*) AS n FROM llm_calls WHERE service_tier = 'batch'")
    assert paid == [{"n": 2}]
    assert {r["status"] for r in rows(kb_env, "SELECT status FROM videos")} == {"analyzed"}


def test_a_refine_model_the_api_refuses_in_a_batch_is_skipped_with_its_error(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    anthropic.refused_models = {"claude-haiku-5-5"}
    seed(kb_env, ("vid_hype001", MEDIUM, "hype"))
    analyze_videos()

    second = analyze_videos()  # errored in the batch, refused again directly: sonnet next
    assert any("not_found_error: model: claude-haiku-5-5" in p for p in second.batch_problems)
    assert [w.model for w in second.waiting] == ["claude-sonnet-5"]
    third = analyze_videos()

    assert third.routes == {"cloud_refine": 1}
    decision = decision_of(kb_env, "vid_hype001")
    assert "claude-haiku-5-5: Anthropic failed: NotFoundError" in decision["reason"]
    paid = rows(
        kb_env,
        "SELECT model, service_tier, status FROM llm_calls WHERE provider = 'anthropic' "
        "ORDER BY ts",
    )
    assert [(p["model"], p["service_tier"], p["status"]) for p in paid] == [
        ("claude-haiku-5-5", "standard", "error"),  # the direct retry, refused, $0
        ("claude-sonnet-5", "batch", "ok"),
    ]


def test_an_unpriced_refine_model_is_refused_before_anything_is_queued(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_POLICY_REFINE_MODELS", '["claude-imaginary-9", "claude-sonnet-5"]')
    ollama.responder = by_title({"hype": fabricated})
    seed(kb_env, ("vid_hype001", MEDIUM, "hype"))

    with pytest.raises(SettingsError, match=r"KB_POLICY_REFINE_MODELS.*'claude-imaginary-9'"):
        analyze_videos()

    assert rows(kb_env, "SELECT * FROM batch_items") == []
    assert anthropic.requests == [] and ollama.chats == []


def test_sonnet_prices_typed_here_match_the_table() -> None:
    """The by-hand prices of these tests are genai-prices' (a change there shows here)."""
    from creatorkb.calls import Usage
    from creatorkb.pricing import price

    for model, prices in (("claude-haiku-5-5", HAIKU_5_5), ("claude-sonnet-5", SONNET_5)):
        usage = Usage(input_tokens=100_000, output_tokens=100_000)  # under haiku's 200k tier
        listed = (Decimal(prices["in"]) + Decimal(prices["out"])) / 10
        assert price(usage, model) == listed
        assert price(usage, model, batch=True) == listed / 2


def test_items_a_crashed_run_on_another_machine_was_sending_are_taken_over(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_liveness import ELSEWHERE, crash, running_flow_run

    ollama.responder = by_title({"hype": fabricated})
    seed(kb_env, ("vid_hype001", MEDIUM, "hype 1"))

    def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed before the create call")

    with monkeypatch.context() as crashing:
        crashing.setattr(batches_module.BatchApi, "create", killed)
        with pytest.raises(RuntimeError, match="killed"):
            analyze_videos()
    # The item was being sent by a worker on another machine, in a run still running.
    run_id = running_flow_run()
    ledger_of(kb_env).write(
        Write.update_existing(
            "batch_items",
            ("custom_id",),
            [
                {"custom_id": row["custom_id"], "holder": ELSEWHERE, "flow_run_id": run_id}
                for row in rows(kb_env, "SELECT custom_id FROM batch_items")
            ],
        )
    )
    assert analyze_videos().batches_sent == []  # its holder may still send it: left alone
    assert rows(kb_env, "SELECT status, holder FROM batch_items") == [
        {"status": "sending", "holder": ELSEWHERE}
    ]

    crash(run_id)  # that machine died; the server marked its run crashed
    summary = analyze_videos()
    assert len(summary.batches_sent) == 1 and len(anthropic.batches) == 1
    [item] = rows(kb_env, "SELECT status, holder, flow_run_id FROM batch_items")
    assert item["status"] == "submitted" and item["holder"] != ELSEWHERE
    assert item["flow_run_id"] != run_id  # the run that sent it now holds it
    assert analyze_videos().routes == {"cloud_refine": 1}
    assert len(anthropic.batch_replies) == 1  # answered (and billed) once
