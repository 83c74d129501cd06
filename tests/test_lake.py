"""The ledger as a DuckLake with a PostgreSQL catalog (KB_LEDGER=ducklake:postgres:...):
the same schema and invariants as the file, with writers in several processes at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from creatorkb import lake
from creatorkb.ledger import LakeLedger, Ledger, Write, known_migrations, open_ledger
from tests.conftest import REPO, run_kb, seed_transcribed

pytestmark = pytest.mark.xdist_group("scale")  # one PostgreSQL for the session


def columns(ledger: Ledger) -> dict[str, list[str]]:
    rows = ledger.rows(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'main' "
        "AND table_name <> 'kb_commit_lock' ORDER BY table_name, ordinal_position"
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], []).append(row["column_name"])
    return found


def test_the_lake_has_the_file_ledgers_schema(lake_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(lake_url)
    assert isinstance(ledger, LakeLedger)
    assert ledger.schema_version() == known_migrations()[-1].version
    assert ledger.migrate() == known_migrations()[-1].version  # again: nothing to do
    assert columns(ledger) == columns(open_ledger(tmp_path / "kb.duckdb"))
    # Idempotent writes by key, as on the file.
    row = {"channel_id": "UC1", "name": "a", "priority": "high", "added_at": "2026-01-05"}
    ledger.write(Write.insert_new("creators", ("channel_id",), [row]))
    ledger.write(Write.insert_new("creators", ("channel_id",), [{**row, "name": "b"}]))
    ledger.write(Write.upsert("creators", ("channel_id",), [{**row, "name": "c"}], ("name",)))
    assert ledger.rows("SELECT name FROM creators") == [{"name": "c"}]
    # What analysts and notebooks read: a copy in memory, or a snapshot file.
    assert ledger.copy_in_memory().rows("SELECT name FROM creators") == [{"name": "c"}]
    snapshot = Ledger(ledger.snapshot(tmp_path / "snapshot.duckdb"))
    assert snapshot.rows("SELECT name FROM creators") == [{"name": "c"}]


def test_the_migrations_translate_for_ducklake() -> None:
    sql = lake.lake_sql(
        "CREATE TABLE t (a VARCHAR PRIMARY KEY, b VARCHAR NOT NULL CHECK (b IN ('x', 'y')),\n"
        " c FLOAT[64], d INTEGER CHECK (regexp_full_match(b, '(a)')),\n PRIMARY KEY (a, b)\n);"
        "\nCREATE INDEX t_b ON t (b);"
    )
    assert sql == "CREATE TABLE t (a VARCHAR, b VARCHAR NOT NULL,\n c FLOAT[], d INTEGER\n);\n"


def writers(mode: str, url: str, count: int, n: int) -> list[list[str]]:
    """`count` processes writing the lake at once (each stands for another machine)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.lake_writer", mode, url, f"w{k}", str(n)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(count)
    ]
    for process in processes:  # all attached: start them at once
        assert process.stdout.readline() == "ready\n"  # type: ignore[union-attr]
    for process in processes:
        process.stdin.write("go\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
    # Each prints what it did, then (claims) stays alive, holding them, until all are done.
    lines = [process.stdout.readline() for process in processes]  # type: ignore[union-attr]
    assert all(lines), "a writer ended without its result: its traceback is in stderr"
    results = [json.loads(line) for line in lines]
    for process in processes:
        process.communicate(timeout=240)
        assert process.returncode == 0
    return results


def test_concurrent_writers_lose_nothing_and_double_nothing(lake_url: str) -> None:
    ledger = open_ledger(lake_url)
    writers("rows", lake_url, 3, 8)
    keys = Counter(row["channel_id"] for row in ledger.rows("SELECT channel_id FROM creators"))
    assert set(keys.values()) == {1}  # the shared keys written by all three: once each
    assert len(keys) == 8 + 3 * 8


def test_segments_stored_by_concurrent_writers_are_recorded_once(lake_url: str) -> None:
    """Two processes re-time the same videos (and their own) at once, as two `kb fetch
    --segments` runs on two machines: a conflicting commit is retried, never a failed run,
    and every video ends with one writer's snippets, each once."""
    ledger = open_ledger(lake_url)
    n = 8
    results = writers("segments", lake_url, 2, n)
    assert sorted(len(result) for result in results) == [2 * n, 2 * n]
    rows = ledger.rows("SELECT video_id, seq, text FROM transcript_segments")
    keys = Counter((row["video_id"], row["seq"]) for row in rows)
    assert set(keys.values()) == {1}
    by_video: dict[str, set[str]] = {}
    for row in rows:
        by_video.setdefault(row["video_id"], set()).add(row["text"].split()[0])
    assert len(by_video) == n + 2 * n  # the shared videos once, and each writer's own
    assert all(len(writers_of) == 1 for writers_of in by_video.values())  # never a mix
    for video_id, [writer] in by_video.items():
        i = int(video_id[-4:])
        seqs = sorted(seq for (video, seq) in keys if video == video_id)
        assert seqs == list(range(3 + i % 3)), (video_id, writer)


def test_the_budget_holds_across_writers_on_the_lake(lake_url: str) -> None:
    """Three processes reserve $0.10 at a time from a $1 budget: exactly ten reservations."""
    ledger = open_ledger(lake_url)
    results = writers("budget", lake_url, 3, 6)
    granted = [r for result in results for r in result if r != "exhausted"]
    assert len(granted) == 10 == len(set(granted))
    [row] = ledger.rows("SELECT count(*) AS n, sum(amount_usd) AS usd FROM budget_reservations")
    assert (row["n"], float(row["usd"])) == (10, 1.0)


def test_two_machines_never_claim_the_same_video(lake_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(lake_url)
    videos = [(f"vid{i:08d}", "UCchan", f"t{i}", "text") for i in range(18)]
    seed_transcribed(lake_url, videos, {"UCchan": "medium"})  # type: ignore[arg-type]
    claimed = [v for result in writers("claims", lake_url, 3, 3) for v in result]
    assert sorted(claimed) == sorted(v[0] for v in videos)  # each video once, none lost
    [row] = ledger.rows(
        "SELECT count(*) AS n, count(DISTINCT video_id) AS videos FROM analysis_claims"
    )
    assert row == {"n": 18, "videos": 18}


def test_an_analyst_reads_the_lake_while_a_writer_holds_a_transaction(lake_url: str) -> None:
    ledger = open_ledger(lake_url)
    with ledger.transaction() as connection:
        connection.execute(
            "INSERT INTO creators (channel_id, name, priority, added_at) "
            "VALUES ('UCw', 'w', 'low', now())"
        )
        analyst = lake.open_lake(lake_url, None, read_only=True)  # as a notebook attaches it
        assert analyst.execute("SELECT count(*) FROM creators").fetchall() == [(0,)]
        with pytest.raises(duckdb.Error):
            analyst.execute("DELETE FROM creators")
    assert analyst.execute("SELECT count(*) FROM creators").fetchall() == [(1,)]
    analyst.close()


def test_kb_ledger_migrate_to_copies_a_file_ledger_row_for_row(lake_url: str, kb_env: Path) -> None:
    path = kb_env / "data" / "kb.duckdb"
    videos = [(f"vid{i:08d}", "UCchan", f"t{i}", f"words {i}") for i in range(5)]
    seed_transcribed(path, videos, {"UCchan": "medium"})
    done = run_kb("ledger", "migrate-to", lake_url)
    assert "every row checked" in done.stdout
    lake_ledger = Ledger(lake_url)
    assert lake_ledger.rows("SELECT count(*) AS n FROM transcripts") == [{"n": 5}]
    file_rows = Ledger(path).rows("SELECT * FROM videos ORDER BY video_id")
    assert lake_ledger.rows("SELECT * FROM videos ORDER BY video_id") == file_rows
    again = run_kb("ledger", "migrate-to", lake_url, expect=1)
    assert "already has rows" in again.stdout


def test_kb_init_creates_the_lake_and_search_says_it_is_not_kept_there(
    lake_url: str, kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from creatorkb.search_index import KnowledgeIndexer
    from creatorkb.settings import CostOptions

    monkeypatch.setenv("KB_LEDGER", lake_url)
    assert "schema version" in run_kb("init").stdout
    assert "s3cret" not in lake.redacted(lake_url + " password=s3cret")
    ledger = Ledger(lake_url)
    assert ledger.schema_version() == known_migrations()[-1].version
    report = KnowledgeIndexer(ledger, None, CostOptions(), None).run()  # type: ignore[arg-type]
    assert report.skipped and "not kept" in report.describe()
    done = run_kb("search", "flux", expect=1)
    assert "not kept on a DuckLake ledger" in done.stdout
