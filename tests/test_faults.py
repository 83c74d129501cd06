"""The fault suite: each fault, and nothing lost and nothing paid twice.

Every test ends with `assert_consistent`: each video is analysed at most once, every paid
cloud call is in the ledger exactly once and belongs to one video's decision, and no budget
reservation is left open.
"""

from __future__ import annotations

import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from creatorkb.calls import ModelRequest
from creatorkb.cloud_model import CloudModel
from creatorkb.errors import LocalUnavailable
from creatorkb.insight import INSIGHT_SCHEMA, SYSTEM_PROMPT, draft_prompt, record_tokens
from creatorkb.ledger import Ledger
from creatorkb.local_model import LocalModel
from creatorkb.settings import AnthropicEnvSettings, OllamaOptions
from flows.analyze import analyze_videos
from tests.analysts import by_title, fabricated
from tests.conftest import KB, seed_transcribed
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.servers.youtube import FakeYouTube
from tests.test_analysis import CRITICAL, MEDIUM, PRIORITIES, TALK

pytestmark = pytest.mark.usefixtures("prefect_api")


def seed_many(kb_env: Path, count: int) -> None:
    seed_transcribed(
        kb_env / "data" / "kb.duckdb",
        [(f"vid_f{i:04d}", MEDIUM, f"portrait {i}", TALK) for i in range(count)],
        PRIORITIES,
    )


def assert_consistent(kb_env: Path, anthropic: FakeAnthropic) -> Ledger:
    ledger = Ledger(kb_env / "data" / "kb.duckdb")
    twice = ledger.rows("SELECT video_id FROM analyses GROUP BY 1 HAVING count(*) > 1")
    assert twice == []
    [paid] = ledger.rows(
        "SELECT count(*) AS n, coalesce(sum(cost_usd), 0) AS usd FROM llm_calls "
        "WHERE provider = 'anthropic' AND status = 'ok'"
    )
    # Every answer Anthropic delivered is recorded, once. (A request the client gave up on
    # may still be billed; its usage is unknown, so it is recorded as a failed call at $0.)
    answered = [r for r in anthropic.requests_to("/v1/messages") if r.status == 200]
    assert paid["n"] == len(answered)
    orphans = ledger.rows(
        "SELECT call_id FROM llm_calls WHERE purpose IN ('draft', 'refine', 'direct') "
        "AND decision_id IS NULL AND video_id IS NOT NULL"
    )
    assert orphans == []
    # Reservations stay open only as the bound of a call sent and never answered (possibly
    # billed), tied to its recorded call.
    held = ledger.rows(
        "SELECT c.error_type FROM budget_reservations r LEFT JOIN llm_calls c USING (call_id) "
        "WHERE r.status = 'open'"
    )
    assert all(row["error_type"] == "APITimeoutError" for row in held), held
    return ledger


def test_ollama_dying_mid_run(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_OLLAMA_PARALLEL", "1")
    seed_many(kb_env, 6)
    ollama.die_after(2)

    summary = analyze_videos()

    assert summary.analyzed == 6
    assert summary.routes == {"local_accept": 2, "fallback_cloud": 4}
    ledger = assert_consistent(kb_env, anthropic)
    assert len(anthropic.calls) == 4  # only the videos the dead server could not draft
    failed = ledger.rows("SELECT error_type FROM llm_calls WHERE status = 'error'")
    assert len(failed) <= 1  # at most the request in flight when it died


def test_ollama_answering_500s_and_malformed_json(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_OLLAMA_PARALLEL", "1")
    seed_many(kb_env, 4)
    ollama.fail_next(1, status=500)
    ollama.malformed_next(1)

    summary = analyze_videos()

    assert summary.analyzed == 4
    # The 500 is retried (issue 11.4: a blip is not an outage); the broken JSON is refined.
    assert summary.routes == {"cloud_refine": 1, "local_accept": 3}
    ledger = assert_consistent(kb_env, anthropic)
    attempts = ledger.rows(
        "SELECT detail ->> 'attempts' AS n FROM llm_calls WHERE purpose = 'draft'"
    )
    assert sorted(row["n"] for row in attempts) == ["1", "1", "1", "2"]
    invalid = ledger.rows("SELECT reason FROM routing_decisions WHERE route = 'cloud_refine'")
    assert "not valid" in invalid[0]["reason"]


def test_anthropic_429_storm_and_timeouts_fall_back_without_paying(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_ANTHROPIC_MAX_RETRIES", "2")
    monkeypatch.setenv("KB_ANTHROPIC_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("KB_ANTHROPIC_CONCURRENCY", "1")
    ledger_path = kb_env / "data" / "kb.duckdb"

    # A storm of 429s: each video's request and both SDK retries are refused.
    seed_transcribed(
        ledger_path, [(f"vid_s{i}", CRITICAL, "t", TALK) for i in range(2)], PRIORITIES
    )
    anthropic.fail_next([429] * 6, retry_after=0.05)
    assert analyze_videos().routes == {"fallback_local": 2}
    assert anthropic.status_counts[429] == 6

    # Anthropic hangs: the request and its retries time out.
    seed_transcribed(ledger_path, [("vid_t0", CRITICAL, "t", TALK)], PRIORITIES)
    anthropic.stall_next(3, 3.0)
    assert analyze_videos().routes == {"fallback_local": 1}
    while any(r.status == 0 for r in anthropic.requests):  # let the hung answers finish
        time.sleep(0.1)
    assert anthropic.status_counts[499] == 3  # each one came after the client had hung up

    # Calm again.
    seed_transcribed(ledger_path, [("vid_c0", CRITICAL, "t", TALK)], PRIORITIES)
    assert analyze_videos().routes == {"cloud_direct": 1}

    ledger = assert_consistent(kb_env, anthropic)
    errors = ledger.rows("SELECT video_id, error_type FROM llm_calls WHERE status = 'error'")
    assert sorted((e["video_id"], e["error_type"]) for e in errors) == [
        ("vid_s0", "RateLimitError"),
        ("vid_s1", "RateLimitError"),
        ("vid_t0", "APITimeoutError"),
    ]
    # The request that timed out may have been billed: its reservation is kept as the bound.
    held = ledger.rows(
        "SELECT c.video_id FROM budget_reservations r JOIN llm_calls c USING (call_id) "
        "WHERE r.status = 'open'"
    )
    assert held == [{"video_id": "vid_t0"}]


def test_two_pipeline_runs_at_once_record_everything_once(
    kb_env: Path, youtube: FakeYouTube, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})  # every video needs a cloud refine
    anthropic.latency_s = 0.2
    channel = "UCtwiceeeeeeeeeeeeeeeeee"
    youtube.add_channel(channel, "Twice")
    for number in range(12):
        youtube.add_video(channel, title=f"hype {number}", transcript_text=TALK)
    (kb_env / "creators.yaml").write_text(f"creators:\n  - channel_id: {channel}\n    name: T\n")

    runs = [subprocess.Popen([KB, "run"], stdout=subprocess.DEVNULL) for _ in range(2)]
    assert [run.wait(timeout=240) for run in runs] == [0, 0]

    ledger = assert_consistent(kb_env, anthropic)
    counts = ledger.rows(
        "SELECT (SELECT count(*) FROM videos) AS videos, "
        "(SELECT count(*) FROM transcripts) AS transcripts, "
        "(SELECT count(*) FROM analyses) AS analyses"
    )
    assert counts == [{"videos": 12, "transcripts": 12, "analyses": 12}]
    per_video = ledger.rows(
        "SELECT video_id, count(*) AS n FROM llm_calls WHERE provider = 'anthropic' GROUP BY 1"
    )
    assert len(per_video) == 12 and {row["n"] for row in per_video} == {1}
    decided = ledger.rows("SELECT video_id, count(*) AS n FROM routing_decisions GROUP BY 1")
    assert {row["n"] for row in decided} == {1}


def test_fifty_concurrent_cloud_requests_stay_within_one_reservation_of_the_budget(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    anthropic.latency_s = 0.3
    monkeypatch.setenv("KB_ANTHROPIC_CONCURRENCY", "50")
    seed_transcribed(
        kb_env / "data" / "kb.duckdb",
        [(f"vid_b{i:04d}", CRITICAL, "same", TALK) for i in range(50)],
        PRIORITIES,
    )
    reservation = CloudModel(AnthropicEnvSettings()).max_cost(
        ModelRequest(
            SYSTEM_PROMPT,
            draft_prompt("same", TALK),
            "direct",
            INSIGHT_SCHEMA,
            max_output_tokens=record_tokens(TALK),
        )
    )
    budget = reservation * Decimal("12.5")
    monkeypatch.setenv("KB_POLICY_WEEKLY_BUDGET_USD", str(budget))

    summary = analyze_videos(limit=50)

    ledger = assert_consistent(kb_env, anthropic)
    [spent] = ledger.rows("SELECT sum(cost_usd) AS usd FROM llm_calls WHERE provider = 'anthropic'")
    assert spent["usd"] <= budget + reservation
    assert summary.analyzed == 50
    assert 1 <= summary.routes.get("cloud_direct", 0) < 50
    assert anthropic.max_concurrency >= 2


def test_a_blip_of_ollama_is_retried_not_sent_to_the_cloud(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_OLLAMA_RETRY_DELAY_SECONDS", "0.05")
    seed_many(kb_env, 1)
    ollama.fail_next(1, 500)  # one "llama runner process has terminated"

    assert analyze_videos().routes == {"local_accept": 1}
    assert anthropic.calls == []
    ledger = assert_consistent(kb_env, anthropic)
    [call] = ledger.rows("SELECT detail ->> 'attempts' AS attempts FROM llm_calls")
    assert call["attempts"] == "2"


def test_ollama_found_down_is_tried_again_after_a_while(ollama: FakeOllama) -> None:
    local = LocalModel(
        OllamaOptions(host=ollama.url, retries=0, reprobe_seconds=0.5, max_output_tokens=256)
    )
    request = ModelRequest("system", "say hi", "prompt", model="llama3.2")
    ollama.down()
    with pytest.raises(LocalUnavailable, match="unreachable"):
        local.generate(request)
    assert local.down is not None
    ollama.up()
    with pytest.raises(LocalUnavailable, match="unreachable"):  # not asked while written off
        local.generate(request)
    time.sleep(0.6)
    assert local.down is None  # half open: the next request probes it
    assert local.generate(request).text
