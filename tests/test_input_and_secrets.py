"""Bad input gets a clear error or correct handling; the API key never leaks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import httpx
import pytest

from creatorkb.errors import SettingsError
from creatorkb.ledger import Ledger
from flows.analyze import analyze_videos
from tests.conftest import ledger_of, run_kb, seed_transcribed
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.servers.youtube import FakeYouTube
from tests.test_analysis import CRITICAL, MEDIUM, PRIORITIES, TALK

pytestmark = pytest.mark.usefixtures("prefect_api")
CANARY = "sk-ant-api03-CANARY-do-not-log-7f3a9c1e5b"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "KB_POLICY_WEEKLY_BUDGET_USD",
            "-5",
            "KB_POLICY_WEEKLY_BUDGET_USD='-5': Input should be greater than or equal to 0",
        ),
        (
            "KB_POLICY_ACCEPT_THRESHOLD",
            "1.5",
            "KB_POLICY_ACCEPT_THRESHOLD='1.5': Input should be less than or equal to 1",
        ),
        ("KB_COST_TIMEZONE", "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        (
            "KB_ANTHROPIC_MODEL",
            "claude-imaginary",
            "no price is known for model 'claude-imaginary'",
        ),
        (
            "KB_POLICY_REFINE_MODELS",
            '["claude-haiku-5-5", "claude-imaginary"]',
            "KB_POLICY_REFINE_MODELS: no price is known for model 'claude-imaginary'",
        ),
    ],
)
def test_impossible_settings_are_refused_by_name(
    kb_env: Path, variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        analyze_videos()
    assert message in str(raised.value)


def test_a_draft_model_ollama_lacks_is_an_unavailable_tier_not_a_crash(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behaviour changed (issue 11.6): the run does the work that needs no local model.
    monkeypatch.setenv("KB_OLLAMA_DRAFT_MODEL", "llama9")
    seed_transcribed(
        kb_env / "data" / "kb.duckdb",
        [("vid_crit0001", CRITICAL, "a", TALK), ("vid_med00001", MEDIUM, "b", TALK)],
        PRIORITIES,
    )

    summary = analyze_videos()

    assert summary.routes == {"cloud_direct": 1, "fallback_cloud": 1}
    [warning] = summary.warnings
    assert "has no model 'llama9'; it has: llama3.2:latest" in warning
    assert "KB_OLLAMA_DRAFT_MODEL" in warning and "Not possible this run" in summary.to_markdown()
    reasons = {
        row["video_id"]: row["reason"]
        for row in ledger_of(kb_env).rows("SELECT video_id, reason FROM routing_decisions")
    }
    assert "has no model 'llama9'" in reasons["vid_med00001"]


def test_empty_huge_and_non_english_transcripts(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_OLLAMA_MAX_NUM_CTX", "8192")
    monkeypatch.setenv("KB_OLLAMA_MAX_OUTPUT_TOKENS", "1024")
    huge = " ".join(f"Sentence {i} explains how ComfyUI nodes connect." for i in range(4_500))
    assert len(huge) > 200_000
    german = (
        "Heute bauen wir einen Porträt-Workflow in ComfyUI. Zuerst laden wir das Flux-Modell. "
        "Dann fügen wir eine LoRA für den Stil hinzu. Zum Schluss skalieren wir das Bild hoch."
    )
    seed_transcribed(
        kb_env / "data" / "kb.duckdb",
        [
            ("vid_empty01", MEDIUM, "silent", "   "),
            ("vid_huge001", MEDIUM, "marathon", huge),
            ("vid_huge002", CRITICAL, "marathon", huge),
            ("vid_german1", MEDIUM, "auf deutsch", german),
        ],
        PRIORITIES,
    )

    analyze_videos()

    ledger = Ledger(kb_env / "data" / "kb.duckdb")
    videos = {r["video_id"]: r for r in ledger.rows("SELECT * FROM videos")}
    assert (videos["vid_empty01"]["status"], videos["vid_empty01"]["status_reason"]) == (
        "failed",
        "the transcript is empty",
    )
    routes = {r["video_id"]: r for r in ledger.rows("SELECT * FROM routing_decisions")}
    assert routes["vid_huge001"]["route"] == "local_accept"  # read in parts, none cut
    assert json.loads(routes["vid_huge001"]["components"])["coverage"] == 1.0
    assert routes["vid_huge002"]["route"] == "cloud_direct"  # the cloud reads it whole
    [cloud] = [c for c in anthropic.calls if "marathon" in c.user]
    assert huge in cloud.user
    assert routes["vid_german1"]["route"] == "local_accept"  # German quotes are grounded
    assert json.loads(routes["vid_german1"]["components"])["grounding"] == 1.0


def test_the_api_key_is_in_no_ledger_log_artifact_or_parameter(
    kb_env: Path, youtube: FakeYouTube, ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeAnthropic(api_key=CANARY, min_cache_tokens=256) as anthropic:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
        channel = "UCsecretsssssssssssssss1"
        youtube.add_channel(channel, "Secretive")
        youtube.add_video(channel, title="one", transcript_text=TALK)
        run_kb("init")
        run_kb("creators", "add", channel, "--name", "Secretive", "--priority", "critical")
        run = run_kb("run")
        doctor = run_kb("doctor")
        assert anthropic.calls  # the key was used, so it had every chance to leak

    assert CANARY not in run.stdout + run.stderr + doctor.stdout + doctor.stderr
    ledger_path = kb_env / "data" / "kb.duckdb"
    assert CANARY.encode() not in ledger_path.read_bytes()
    with duckdb.connect(str(ledger_path), read_only=True) as connection:
        tables = [row[0] for row in connection.execute("SHOW TABLES").fetchall()]
        for table in tables:
            dump = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            assert CANARY not in repr(dump), table
    runs = everything("flow_runs")
    assert runs and all(CANARY not in json.dumps(run["parameters"]) for run in runs)
    logs = everything("logs")
    assert logs and all(CANARY not in log["message"] for log in logs)
    artifacts = everything("artifacts")
    assert artifacts and all(CANARY not in json.dumps(artifact["data"]) for artifact in artifacts)


def everything(kind: str) -> list[dict]:
    """Every object of a kind on the test's Prefect server, read page by page from its API."""
    found: list[dict] = []
    while page := httpx.post(
        f"{os.environ['PREFECT_API_URL']}/{kind}/filter",
        json={"limit": 200, "offset": len(found)},
        timeout=30,
    ).json():
        found += page
    return found
