"""Claims and reservations held by a worker on another machine: they lapse when the Prefect
flow run holding them is in a terminal state (or when they expire), not by a PID check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Running

from creatorkb.analysis import claim_videos
from creatorkb.budget import SENT_OPEN_SQL, Budget, possibly_billed
from creatorkb.ledger import Ledger, Write, open_ledger
from creatorkb.liveness import Liveness
from flows.run_states import PrefectRunStates, liveness
from tests.conftest import ledger_of, run_kb, seed_transcribed

ELSEWHERE = "gpu-box-2:4242"  # a worker process on another machine


@flow(name="liveness-holder")
def holder_flow() -> None:
    """Never run here: its flow runs stand for a run on another machine."""


def running_flow_run() -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(holder_flow)
        client.set_flow_run_state(run.id, Running(), force=True)
    return str(run.id)


def crash(run_id: str) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(run_id), Crashed(), force=True)


def test_a_claim_from_another_machine_lapses_when_its_flow_run_ends(
    prefect_api: str, kb_env: Path
) -> None:
    path = kb_env / "data" / "kb.duckdb"
    seed_transcribed(path, [("vidremote001", "UCchan", "t", "text")], {"UCchan": "medium"})
    ledger = ledger_of(kb_env)
    run_id = running_flow_run()
    now = datetime.now(UTC)
    claim = {
        "video_id": "vidremote001",
        "flow_run_id": run_id,
        "holder": ELSEWHERE,
        "claimed_at": now,
        "expires_at": now + timedelta(hours=2),
    }
    ledger.write(Write.insert_new("analysis_claims", ("video_id",), [claim]))

    assert claim_videos(ledger, limit=5, flow_run_id="mine", liveness=liveness()) == []
    crash(run_id)  # the worker's machine died; the server marked its run crashed
    # Without the server's word, a holder on another machine cannot be judged: kept.
    assert claim_videos(ledger, limit=5, flow_run_id="mine", liveness=Liveness()) == []
    [job] = claim_videos(ledger, limit=5, flow_run_id="mine", liveness=liveness())
    assert job.video_id == "vidremote001"
    [row] = ledger.rows("SELECT holder, flow_run_id FROM analysis_claims")
    assert row["flow_run_id"] == "mine" and row["holder"] != ELSEWHERE


def sent_and_unsent(ledger: Ledger, run_id: str) -> None:
    """Two open $0.25 reservations of a run on another machine: a call it sent (no answer
    yet) and one it has not sent; neither expired."""
    now = datetime.now(UTC)
    start = Budget(ledger, Decimal(1)).status(now).week_start
    rows = [
        {
            "reservation_id": f"r-{kind}",
            "created_at": now,
            "week_start": start,
            "amount_usd": Decimal("0.25"),
            "status": "open",
            "expires_at": now + timedelta(hours=1),
            "flow_run_id": run_id,
            "holder": ELSEWHERE,
            "call_id": None,
            "sent_at": now if kind == "sent" else None,
            "model": "claude-sonnet-5",
            "purpose": "direct",
        }
        for kind in ("sent", "unsent")
    ]
    ledger.write(Write.insert_new("budget_reservations", ("reservation_id",), rows))


def test_a_reservation_from_another_machine_lapses_when_its_flow_run_ends(
    prefect_api: str, kb_env: Path
) -> None:
    ledger = ledger_of(kb_env)
    ledger.migrate()
    run_id = running_flow_run()
    now = datetime.now(UTC)
    budget = Budget(ledger, Decimal(1), liveness=liveness())
    start = budget.status(now).week_start
    sent_and_unsent(ledger, run_id)
    bounds = [start, start + timedelta(days=7)]

    assert budget.status().reserved_usd == Decimal("0.50")
    assert possibly_billed(ledger.rows(SENT_OPEN_SQL, bounds), liveness=liveness()).calls == 0
    crash(run_id)
    # The unsent one is free again; the sent one stays counted: possibly billed.
    assert budget.status().reserved_usd == Decimal("0.25")
    lost = possibly_billed(ledger.rows(SENT_OPEN_SQL, bounds), liveness=liveness())
    assert (lost.calls, lost.exposure_usd) == (1, Decimal("0.25"))


def test_run_states_ignore_ids_that_are_not_flow_runs(prefect_api: str) -> None:
    assert PrefectRunStates().finished({"not-a-uuid", str(uuid.uuid4())}) == set()


@pytest.mark.xdist_group("scale")  # one PostgreSQL for the session
def test_kb_ledger_unanswered_and_the_report_judge_a_remote_holder_by_its_flow_run(
    prefect_api: str, kb_env: Path, lake_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a lake, a call sent by a run on another machine is possibly billed once the server
    says that run crashed, not only when its reservation expires an hour later."""
    monkeypatch.setenv("KB_LEDGER", lake_url)
    ledger = open_ledger(lake_url)
    run_id = running_flow_run()
    sent_and_unsent(ledger, run_id)
    week = f"{datetime.now(UTC):%G-W%V}"
    nothing = "no cloud call is waiting on an answer that never came"

    assert nothing in run_kb("ledger", "unanswered").stdout  # its run still waits on it
    assert "Possibly billed" not in run_kb("report", "--week", week).stdout
    assert "reserved $0.5000" in run_kb("doctor", expect=1).stdout  # both still held
    crash(run_id)

    listed = run_kb("ledger", "unanswered").stdout
    assert "r-sent" in listed and "r-unsent" not in listed  # an unsent call cost nothing
    assert "up to $0.2500 (1 calls sent" in run_kb("report", "--week", week).stdout
    assert "reserved $0.2500" in run_kb("doctor", expect=1).stdout  # the unsent one is free
    run_kb("ledger", "settle", "r-sent", "--not-billed")
    assert nothing in run_kb("ledger", "unanswered").stdout
    [row] = ledger.rows("SELECT status FROM budget_reservations WHERE reservation_id = 'r-sent'")
    assert row["status"] == "released"
