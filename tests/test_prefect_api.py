"""Which Prefect server a kb command uses, as a user meets it: a configured server that is
down, and two commands started together on a fresh project with temporary servers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KB, free_port, run_kb
from tests.servers.youtube import FakeYouTube

ALICE = "UCaliceaaaaaaaaaaaaaaaaa"


def test_a_configured_server_that_is_down_is_one_line(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", down)
    run_kb("init")

    doctor = run_kb("doctor", expect=1).stdout
    assert "FAIL" in doctor and f"the Prefect API at {down} is not answering" in doctor

    for command in (
        ["run"],
        ["scan"],
        ["fetch"],
        ["analyze"],
        ["report"],
        ["prompt", "hello"],
        ["consensus", "--prompt", "hello"],
        ["creators", "add", ALICE],  # its name is read from YouTube: settings needed
    ):
        done = run_kb(*command, expect=1)
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert len(lines) == 1, f"kb {' '.join(command)}:\n{done.stdout}{done.stderr}"
        assert f"the Prefect API at {down} is not answering" in lines[0]
        assert "unset PREFECT_API_URL" in lines[0]


def test_two_commands_at_once_on_a_fresh_project_both_succeed(
    kb_env: Path, youtube: FakeYouTube, monkeypatch: pytest.MonkeyPatch
) -> None:
    youtube.add_channel(ALICE, "Alice")
    youtube.add_video(ALICE, transcript_text="alice talks about comfyui")
    # No server configured (not even the suite's): each command starts its own.
    for name in [n for n in os.environ if n.startswith("PREFECT_")]:
        monkeypatch.delenv(name)
    run_kb("init")
    run_kb("creators", "add", ALICE, "--name", "Alice")
    assert not (kb_env / ".prefect").exists()  # a fresh PREFECT_HOME

    commands = [
        subprocess.Popen(
            [KB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=kb_env
        )
        for args in (["scan"], ["fetch"], ["report"])
    ]
    results = [(command, *command.communicate(timeout=300)) for command in commands]

    for command, stdout, stderr in results:
        assert command.returncode == 0, f"{command.args}:\n{stdout}\n{stderr}"
        assert "a temporary server runs this command" in stderr
        assert "Traceback" not in stderr and "telemetry" not in stderr.lower()
    assert (kb_env / ".prefect" / "prefect.db").is_file()  # the project's own database
    # The servers kb started sent nothing but YouTube's requests through the proxy.
    assert set(youtube.proxy_connects) == {"www.youtube.com:443"}


def test_a_temporary_server_that_does_not_start_in_time_is_one_line(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("PREFECT_")]:
        monkeypatch.delenv(name)
    run_kb("init")
    # No time at all to start: what a command meets on a machine too busy to start one.
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "0")
    done = subprocess.run([KB, "report"], capture_output=True, text=True, cwd=kb_env, timeout=120)
    printed = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 1, printed
    assert "Traceback" not in printed
    assert "the temporary Prefect server for this command did not start within 0 s" in printed
    assert "start `kb up` in another shell" in printed
