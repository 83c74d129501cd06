"""The DuckDB ledger: migrations, idempotent batches, waiting for and spooling past a holder."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from creatorkb import ledger as ledger_module
from creatorkb.errors import LedgerLocked, SchemaTooNew
from creatorkb.ledger import Ledger, Migration, Write, known_migrations
from tests.conftest import run_kb

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# Columns DESIGN.md promises to the owner's scripts and notebooks.
DESIGN_COLUMNS = {
    "creators": {"channel_id", "name", "priority", "last_scanned_at"},
    "videos": {"video_id", "channel_id", "title", "published_at", "status"},
    "transcripts": {"video_id", "language", "is_generated", "text"},
    "analyses": {"video_id", "final_tier", "model", "confidence", "result"},
    "llm_calls": {
        "call_id", "ts", "flow_run_id", "video_id", "purpose", "provider", "model",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "latency_ms", "cost_usd", "cloud_equivalent_usd", "energy_kwh", "status",
    },
    "routing_decisions": {
        "decision_id", "ts", "video_id", "priority", "route", "reason", "confidence",
        "threshold",
    },
}  # fmt: skip


def creator_row(channel_id: str, name: str) -> dict[str, object]:
    return {
        "channel_id": channel_id,
        "name": name,
        "handle": None,
        "priority": "high",
        "scan_interval_days": None,
        "last_scanned_at": None,
        "feed_etag": None,
        "feed_last_modified": None,
        "added_at": NOW,
    }


def columns(path: Path) -> dict[str, set[str]]:
    rows = Ledger(path).rows("SELECT table_name, column_name FROM information_schema.columns")
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


@contextmanager
def held(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process (an analyst's notebook, say) holding the ledger file open."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "while True:\n"
            "    try:\n"
            f"        c = duckdb.connect({str(path)!r})\n"
            "        break\n"
            "    except duckdb.IOException:\n"
            "        time.sleep(0.05)\n"
            "print('held', flush=True)\n"
            f"time.sleep({seconds})\n"
            "c.close()\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    try:
        yield holder
    finally:
        holder.wait(timeout=seconds + 30)


def test_migrations_build_every_design_table_from_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "kb.duckdb"
    ledger = Ledger(path)
    assert ledger.schema_version() == 0

    assert ledger.migrate() == known_migrations()[-1].version

    found = columns(path)
    for table, wanted in DESIGN_COLUMNS.items():
        assert wanted <= found[table], table
    applied = ledger.rows("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(m.version, m.name) for m in known_migrations()] == [
        (row["version"], row["name"]) for row in applied
    ]
    ledger.migrate()  # applying again changes nothing
    assert len(ledger.rows("SELECT * FROM schema_migrations")) == len(applied)


def test_migration_from_the_previous_version_keeps_the_data(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    previous = known_migrations()[-2].version
    assert ledger.migrate(up_to=previous) == previous
    ledger.write(Write.insert_new("creators", ("channel_id",), [creator_row("UC" + "k" * 22, "K")]))
    before = columns(ledger.path)

    assert ledger.migrate() == known_migrations()[-1].version

    assert ledger.rows("SELECT channel_id, name FROM creators") == [
        {"channel_id": "UC" + "k" * 22, "name": "K"}
    ]
    after = columns(ledger.path)
    assert after != before
    for table, wanted in DESIGN_COLUMNS.items():
        assert wanted <= after[table], table


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    with duckdb.connect(str(ledger.path)) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', now())")

    with pytest.raises(SchemaTooNew, match=r"schema version 99.*knows versions up to \d+"):
        ledger.migrate()
    assert ledger.schema_version() == 99


def test_a_failing_migration_rolls_back_entirely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    current = ledger.schema_version()
    broken = Migration(
        current + 1, "broken", "CREATE TABLE half_done (x INTEGER); SELECT * FROM missing_table;"
    )
    shipped = known_migrations()
    monkeypatch.setattr(ledger_module, "known_migrations", lambda: [*shipped, broken])

    with pytest.raises(duckdb.CatalogException):
        ledger.migrate()

    assert ledger.schema_version() == current
    assert "half_done" not in columns(ledger.path)


def test_writes_are_idempotent_and_money_is_exact(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    call = {
        "call_id": "c1",
        "ts": NOW,
        "flow_run_id": None,
        "video_id": "v1",
        "decision_id": None,
        "purpose": "refine",
        "provider": "anthropic",
        "model": "claude-sonnet-5",
        "input_tokens": 10_000,
        "output_tokens": 4_000,
        "cache_read_tokens": 7,
        "cache_write_tokens": 0,
        "latency_ms": 812.5,
        "cost_usd": Decimal("0.060000140000"),
        "cloud_equivalent_usd": Decimal("0.060000140000"),
        "energy_kwh": 0.0,
        "energy_usd": Decimal("0"),
        "status": "ok",
        "error_type": None,
    }
    batch = Write.insert_new("llm_calls", ("call_id",), [call, call])
    ledger.write(batch)
    ledger.write(batch)

    rows = ledger.rows("SELECT call_id, cost_usd FROM llm_calls")
    assert rows == [{"call_id": "c1", "cost_usd": Decimal("0.060000140000")}]

    ledger.write(
        Write.upsert(
            "creators", ("channel_id",), [creator_row("UC" + "u" * 22, "first")], ("name",)
        )
    )
    ledger.write(
        Write.upsert(
            "creators", ("channel_id",), [creator_row("UC" + "u" * 22, "renamed")], ("name",)
        )
    )
    assert ledger.rows("SELECT name FROM creators") == [{"name": "renamed"}]


def test_a_writer_waits_for_a_brief_holder(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb", wait_seconds=15)
    ledger.migrate()
    with held(ledger.path, seconds=2) as holder:
        assert holder.poll() is None
        ledger.write(
            Write.insert_new("creators", ("channel_id",), [creator_row("UC" + "w" * 22, "W")])
        )
        assert holder.poll() is not None  # written only once the holder let go
    assert ledger.rows("SELECT name FROM creators") == [{"name": "W"}]


def test_held_past_the_bound_names_the_holder_and_keeps_the_batch(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb", wait_seconds=0.5)
    ledger.migrate()
    rows = [creator_row("UC" + "h" * 22, "kept")]
    with held(ledger.path, seconds=4) as holder:
        with pytest.raises(LedgerLocked) as raised:
            ledger.write(Write.insert_new("creators", ("channel_id",), rows))
        message = str(raised.value)
        assert str(ledger.path) in message
        assert f"PID {holder.pid}" in message
        assert "1 pending write batch(es) were kept" in message
        assert len(ledger.pending_batches()) == 1

    # The next open writes the kept batch first, exactly once.
    ledger.migrate()
    ledger.migrate()
    assert ledger.pending_batches() == []
    assert ledger.rows("SELECT name FROM creators") == [{"name": "kept"}]


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()

    def add(index: int) -> None:
        for n in range(10):
            row = creator_row(f"UC{index:02d}{n:02d}" + "t" * 18, f"{index}-{n}")
            Ledger(ledger.path).write(Write.insert_new("creators", ("channel_id",), [row]))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.rows("SELECT count(*) AS n FROM creators") == [{"n": 80}]


def test_a_snapshot_waits_for_a_writer_and_then_holds_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb", wait_seconds=15)
    ledger.migrate()
    ledger.write(Write.insert_new("creators", ("channel_id",), [creator_row("UC" + "s" * 22, "S")]))

    with held(ledger.path, seconds=2) as holder:
        copy = ledger.snapshot(tmp_path / "analyst" / "snapshot.duckdb")
        assert holder.poll() is not None  # it waited for the writer instead of failing

    with duckdb.connect(str(copy), read_only=True) as analyst:
        # The analyst keeps the copy open; the pipeline still writes the ledger at once.
        ledger.write(
            Write.insert_new("creators", ("channel_id",), [creator_row("UC" + "t" * 22, "T")])
        )
        assert analyst.execute("SELECT name FROM creators").fetchall() == [("S",)]
    assert len(ledger.rows("SELECT * FROM creators")) == 2


OLD_KB_WRITER = """
import duckdb, sys
db = duckdb.connect(sys.argv[1])
db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
           " applied_at TIMESTAMPTZ NOT NULL)")
db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body JSON, usd DECIMAL(20, 12)"
           " CHECK (usd >= 0))")
db.execute("INSERT INTO notes SELECT i, '{}', i / 7 FROM range(1000) t(i)")
"""


def test_a_ledger_written_by_duckdb_2_is_named_then_converted_with_every_row(
    kb_env: Path,
) -> None:
    """kb before December 2026 ran on DuckDB 2.0; its files are converted, never lost."""
    ledger_path = kb_env / "data" / "kb.duckdb"
    ledger_path.parent.mkdir(parents=True)
    writer = ["python", "-c", OLD_KB_WRITER, str(ledger_path)]
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv), "run", "--no-project", "--quiet", "--with", "duckdb==2.0.1", *writer],
        check=True,
        capture_output=True,
    )

    refused = run_kb("init", expect=1).stdout
    assert "was written by a newer DuckDB" in refused and "`kb ledger convert`" in refused

    converted = run_kb("ledger", "convert").stdout
    assert "1,000 rows, every count checked" in converted
    assert (ledger_path.parent / "kb.duckdb.duckdb2").is_file()  # the original, kept
    run_kb("init")  # the converted file opens and migrates
    ledger = Ledger(ledger_path)
    [row] = ledger.rows("SELECT count(*) AS n, max(usd) FILTER (WHERE id = 700) AS usd FROM notes")
    assert (row["n"], row["usd"]) == (1000, Decimal(100))
    with pytest.raises(duckdb.ConstraintException):  # keys and checks came along
        ledger.rows("INSERT INTO notes VALUES (1, NULL, 1)")
