"""The `kb` command as a user runs it: a subprocess behind a proxy with a private CA."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from blocks import BLOCK_NAME
from blocks.models import AnthropicCredentials
from creatorkb.ledger import Ledger
from tests.analysts import by_title, fabricated
from tests.conftest import KB, run_kb
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.servers.youtube import FakeYouTube
from tests.test_ledger import held

pytestmark = pytest.mark.usefixtures("prefect_api")

ALICE = "UCaliceaaaaaaaaaaaaaaaaa"
BOB = "UCbobbbbbbbbbbbbbbbbbbbb"
CAROL = "UCcarolccccccccccccccccc"


def publish(youtube: FakeYouTube) -> dict[str, list[str]]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    youtube.add_channel(ALICE, "Alice Builds", handle="@alicebuilds")
    youtube.add_channel(BOB, "Bob")
    youtube.add_channel(CAROL, "Carol", handle="@carol")
    return {
        ALICE: [
            youtube.add_video(ALICE, published=start, transcript_text="alice talks about comfyui"),
            youtube.add_video(ALICE, published=start + timedelta(days=1), transcript="ip_blocked"),
        ],
        BOB: [youtube.add_video(BOB, published=start, transcript="transcripts_disabled")],
        CAROL: [youtube.add_video(CAROL, published=start, transcript_text="carol on flux")],
    }


def test_kb_fills_the_ledger_through_a_proxy(kb_env: Path, youtube: FakeYouTube) -> None:
    videos = publish(youtube)
    (kb_env / "import.csv").write_text(f"channel,name,priority\n@carol,Carol,low\n{BOB},,\n")

    assert "created" in run_kb("init").stdout
    added = run_kb("creators", "add", "@alicebuilds", "--priority", "high").stdout
    assert "Alice Builds" in added and ALICE in added
    assert "2 added, 0 updated" in run_kb("creators", "import", "import.csv").stdout
    roster = (kb_env / "creators.yaml").read_text()
    assert f"channel_id: {ALICE}" in roster and "handle: '@carol'" in roster
    listing = run_kb("creators", "list").stdout
    assert "Alice Builds" in listing and "never" in listing

    scanned = run_kb("scan").stdout
    assert "new videos" in scanned
    fetched = run_kb("fetch").stdout
    assert "transcripts stored" in fetched
    assert "blocked: IpBlocked" in fetched and "no_transcript: TranscriptsDisabled" in fetched

    ledger = Ledger(kb_env / "data" / "kb.duckdb")
    rows = {r["video_id"]: r["status"] for r in ledger.rows("SELECT * FROM videos")}
    assert rows == {
        videos[ALICE][0]: "transcribed",
        videos[ALICE][1]: "blocked",
        videos[BOB][0]: "no_transcript",
        videos[CAROL][0]: "transcribed",
    }
    texts = {r["video_id"]: r["text"] for r in ledger.rows("SELECT * FROM transcripts")}
    assert texts == {
        videos[ALICE][0]: "alice talks about comfyui",
        videos[CAROL][0]: "carol on flux",
    }
    priorities = ledger.rows("SELECT channel_id, priority FROM creators ORDER BY channel_id")
    assert priorities == [
        {"channel_id": ALICE, "priority": "high"},
        {"channel_id": BOB, "priority": "medium"},
        {"channel_id": CAROL, "priority": "low"},
    ]
    assert youtube.proxy_connects and set(youtube.proxy_connects) == {"www.youtube.com:443"}

    doctor = run_kb("doctor").stdout
    assert "schema version" in doctor and "3 creators" in doctor
    assert "feed of" in doctor and "FAIL" not in doctor


def test_bad_channel_and_malformed_roster_get_clear_errors(
    kb_env: Path, youtube: FakeYouTube
) -> None:
    short = run_kb("creators", "add", "UCshort", expect=1).stdout
    assert "'UCshort' is not a YouTube channel id" in short
    unknown = run_kb("creators", "add", "@nobodyhere", expect=1).stdout
    assert "no channel at https://www.youtube.com/@nobodyhere" in unknown

    (kb_env / "creators.yaml").write_text(
        "creators:\n  - channel_id: UCaliceaaaaaaaaaaaaaaaaa\n    name: [unclosed\n"
    )
    broken = run_kb("creators", "list", expect=1).stdout
    assert "creators.yaml:3:11: not valid YAML" in broken
    assert "creators.yaml:3" in run_kb("doctor", expect=1).stdout


def test_scan_keeps_what_it_gathered_when_the_ledger_stays_held(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    videos = publish(youtube)
    run_kb("init")
    run_kb("creators", "add", ALICE, "--name", "Alice")
    run_kb("creators", "add", BOB, "--name", "Bob")
    youtube.feeds_open.clear()
    monkeypatch.setenv("KB_LEDGER_WAIT_SECONDS", "1")
    ledger_path = kb_env / "data" / "kb.duckdb"

    scan = subprocess.Popen(
        [KB, "scan"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert youtube.feed_requested.wait(timeout=120)
    # The feeds are being read; an analyst opens the ledger and keeps it for a while.
    with held(ledger_path, seconds=8) as holder:
        youtube.feeds_open.set()
        output, _ = scan.communicate(timeout=120)
        assert scan.returncode == 1, output
        assert f"ledger {ledger_path} is held by another process" in output
        assert f"PID {holder.pid}" in output
        assert "were kept and will be written by the next run" in output

    run_kb("scan")
    ledger = Ledger(ledger_path)
    stored = sorted(r["video_id"] for r in ledger.rows("SELECT video_id FROM videos"))
    assert stored == sorted(videos[ALICE] + videos[BOB])
    assert ledger.pending_batches() == []
    events = ledger.rows("SELECT channel_id, outcome FROM scan_events ORDER BY channel_id")
    assert events == [
        {"channel_id": ALICE, "outcome": "ok"},
        {"channel_id": BOB, "outcome": "ok"},
    ]


def test_kb_run_analyses_a_mixed_roster_as_the_policy_says(
    kb_env: Path, youtube: FakeYouTube, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = by_title({"hype": fabricated})
    start = datetime(2026, 11, 1, tzinfo=UTC)
    youtube.add_channel(ALICE, "Alice")
    youtube.add_channel(BOB, "Bob")
    youtube.add_channel(CAROL, "Carol")
    talk = "We wire ComfyUI to Flux today. Then we add a LoRA for style. Finally we upscale."
    critical = youtube.add_video(ALICE, title="deep dive", published=start, transcript_text=talk)
    medium = youtube.add_video(BOB, title="calm tutorial", published=start, transcript_text=talk)
    low = youtube.add_video(CAROL, title="hype reel", published=start, transcript_text=talk)
    run_kb("init")
    run_kb("creators", "add", ALICE, "--name", "Alice", "--priority", "critical")
    run_kb("creators", "add", BOB, "--name", "Bob", "--priority", "medium")
    run_kb("creators", "add", CAROL, "--name", "Carol", "--priority", "low")

    output = run_kb("run").stdout

    assert "cloud_direct" in output and "local_accept" in output and "cloud_refine" in output
    ledger = Ledger(kb_env / "data" / "kb.duckdb")
    routes = {r["video_id"]: r["route"] for r in ledger.rows("SELECT * FROM routing_decisions")}
    assert routes == {critical: "cloud_direct", medium: "local_accept", low: "cloud_refine"}
    assert ledger.rows("SELECT DISTINCT status FROM videos") == [{"status": "analyzed"}]
    [money] = ledger.rows(
        "SELECT sum(cost_usd) AS billed, count(*) AS calls FROM llm_calls "
        "WHERE provider = 'anthropic'"
    )
    assert money["calls"] == 2 and money["billed"] > 0

    doctor = run_kb("doctor").stdout
    assert "version 0.12.6" in doctor and "llama3.2 is installed" in doctor
    assert "key accepted" in doctor
    assert "left of $10 this week" in doctor

    answer = run_kb("prompt", "Say hi", "--level", "L3").stdout
    assert "local_accept via ollama llama3.2" in answer
    agreed = run_kb("consensus", "--video", medium).stdout
    assert "consensus, agreement 1.00" in agreed and "We wire ComfyUI to Flux today" in agreed

    week = f"{datetime.now(UTC):%G-W%V}"
    report = run_kb("report", "--week", week).stdout
    assert week in report and "Savings" in report
    assert (kb_env / "reports" / f"{week}.html").is_file()
    assert ledger.rows("SELECT week FROM weekly_reports") == [{"week": week}]
    assert "is not an ISO week" in run_kb("report", "--week", "2026-47", expect=1).stdout


def test_doctor_reports_a_bad_key_and_a_missing_model(
    kb_env: Path,
    youtube: FakeYouTube,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-this-one")
    monkeypatch.setenv("KB_OLLAMA_DRAFT_MODEL", "llama9")
    monkeypatch.setenv("KB_ANTHROPIC_MODEL", "claude-sonnet-4-5")
    run_kb("init")

    doctor = run_kb("doctor", expect=1).stdout

    assert "Anthropic rejected the API key (401)" in doctor
    assert "has no model 'llama9'; it has: llama3.2:latest, mistral:latest, qwen2.5:7b" in doctor
    assert "deprecated and reaches end of life on November 30th, 2026" in doctor

    monkeypatch.setenv("ANTHROPIC_API_KEY", anthropic.api_key)
    retired = run_kb("doctor", expect=1).stdout
    assert "Anthropic does not serve model 'claude-sonnet-4-5' (404" in retired


def test_doctor_reads_the_saved_blocks_without_importing_prefect(
    kb_env: Path,
    youtube: FakeYouTube,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment's key is wrong; the saved credentials block (which wins) is right.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-this-one")
    youtube.add_channel(ALICE, "Alice")
    run_kb("init")
    run_kb("creators", "add", ALICE, "--name", "Alice")
    block = AnthropicCredentials(api_key=anthropic.api_key, base_url=anthropic.url)
    block.save(BLOCK_NAME, overwrite=True)
    try:
        doctor = subprocess.run(
            [sys.executable, "-X", "importtime", KB, "doctor"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "200"},
        )
    finally:
        AnthropicCredentials.delete(BLOCK_NAME)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "key accepted" in doctor.stdout
    imported = {line.split("|")[-1].strip() for line in doctor.stderr.splitlines()}
    assert "prefect" not in imported  # read over HTTP: Prefect's import alone takes ~1.5 s


def test_creators_add_changes_only_what_it_is_given(kb_env: Path, youtube: FakeYouTube) -> None:
    youtube.add_channel(ALICE, "Node Garden")
    youtube.add_channel(BOB, "Bob Renders")
    run_kb("init")

    added = run_kb("creators", "add", ALICE, "--priority", "critical").stdout
    assert "added Node Garden (" in added  # a new creator's name comes from YouTube
    renamed = run_kb("creators", "add", ALICE, "--name", "The Node Garden").stdout
    assert "name: Node Garden -> The Node Garden" in renamed
    assert "priority" not in renamed  # not demoted to the default
    promoted = run_kb("creators", "add", ALICE, "--priority", "high").stdout
    assert "priority: critical -> high" in promoted
    assert "nothing changed" in run_kb("creators", "add", ALICE, "--priority", "high").stdout
    by_url = run_kb("creators", "add", f"https://www.youtube.com/channel/{BOB}").stdout
    assert "added Bob Renders (" in by_url

    roster = {
        c["channel_id"]: c
        for c in yaml.safe_load((kb_env / "creators.yaml").read_text())["creators"]
    }
    assert roster[ALICE]["name"] == "The Node Garden" and roster[ALICE]["priority"] == "high"
    assert roster[BOB]["name"] == "Bob Renders" and roster[BOB]["priority"] == "medium"
