"""The ledger as a DuckLake: its catalog in PostgreSQL, its data files on storage every
machine reaches (`KB_LEDGER=ducklake:postgres:host=... dbname=kb`, `KB_LEDGER_DATA_PATH`).

The same schema, migrations and invariants as the file ledger, on what DuckLake offers:

- DuckLake has no PRIMARY KEY, UNIQUE or CHECK constraints, no indexes and no fixed-size
  arrays: the migrations are translated (`lake_sql`), and a key stays unique because every
  write goes through `Write` (a MERGE on its key) inside a serialised commit.
- Writers on many machines commit optimistically. Every write transaction also updates the
  one row of `kb_commit_lock`, so two transactions that overlap always conflict at commit,
  and the loser is retried whole (`LakeLedger.atomic`): a read-check-write step such as the
  budget check and its reservation, or claiming videos, stays one atomic step, and no
  commit is lost or applied twice.
- Analysts attach the lake read-only (`ATTACH 'ducklake:...' (READ_ONLY)`) at any time:
  readers see a snapshot and never block a writer.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import duckdb

from creatorkb.errors import LedgerError
from creatorkb.extensions import packaged_extension

if TYPE_CHECKING:
    from creatorkb.ledger import Write

T = TypeVar("T")
PREFIX = "ducklake:"
LAKE = "lake"  # the name the lake is attached under
COMMIT_LOCK = "kb_commit_lock"
RETRIES = 50  # conflicting commits retried before giving up
SEARCH_NOT_ON_LAKE = (
    "the search index (BM25 and vectors) is not kept on a DuckLake ledger yet: DuckLake has no "
    "room for the fts extension's index; search a file copy (docs/scaling.md)"
)
_ARRAY = re.compile(r"\b(FLOAT|DOUBLE|INTEGER|BIGINT|VARCHAR)\[\d+\]", re.IGNORECASE)
_INDEX = re.compile(r"CREATE\s+(UNIQUE\s+)?INDEX\b[^;]*;", re.IGNORECASE)
_TABLE_KEY = re.compile(r",\s*PRIMARY\s+KEY\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"\s+PRIMARY\s+KEY\b", re.IGNORECASE)
_CHECK = re.compile(r"\s+CHECK\s*\(", re.IGNORECASE)


def is_lake(location: object) -> bool:
    """Whether a KB_LEDGER value names a DuckLake rather than a DuckDB file."""
    return str(location).startswith(PREFIX)


def lake_sql(sql: str) -> str:
    """A migration written for DuckDB, as DuckLake takes it: without key, unique and check
    constraints and indexes, with variable-length arrays."""
    sql = _INDEX.sub("", sql)
    sql = _TABLE_KEY.sub("", sql)
    sql = _COLUMN_KEY.sub("", sql)
    sql = _ARRAY.sub(lambda match: f"{match[1]}[]", sql)
    while (found := _CHECK.search(sql)) is not None:
        depth, end = 1, found.end()
        while depth:
            if end >= len(sql):
                raise LedgerError("a migration has an unbalanced CHECK (...)")
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        sql = sql[: found.start()] + sql[end:]
    return sql


def merge_sql(write: Write, types: dict[str, str], source: str) -> str:
    """The statement applying `write` from `source` (its rows as text), keyed by its key."""
    columns = list(write.rows[0])
    names = ", ".join(f'"{name}"' for name in columns)
    selected = ", ".join(f'CAST("{name}" AS {types[name]}) AS "{name}"' for name in columns)
    on = " AND ".join(f'"{write.table}"."{name}" = kb_new."{name}"' for name in write.key)
    sql = f'MERGE INTO "{write.table}" USING (SELECT {selected} FROM {source}) AS kb_new ON {on}'
    if write.update:
        sets = ", ".join(f'"{name}" = kb_new."{name}"' for name in write.update)
        sql += f" WHEN MATCHED THEN UPDATE SET {sets}"
    if write.insert_missing:
        values = ", ".join(f'kb_new."{name}"' for name in columns)
        sql += f" WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    return sql


def is_conflict(error: BaseException) -> bool:
    """A commit that lost to a concurrent one (retry it)."""
    return isinstance(error, duckdb.TransactionException) and "conflict" in str(error).lower()


def extension_directory() -> Path:
    """A DuckDB extension directory holding the postgres extension under the name DuckDB
    loads it by (`postgres_scanner`); the file comes from the duckdb-extension-postgres
    package, copied once."""
    import duckdb_extension_postgres

    version = duckdb.__version__
    source = packaged_extension(duckdb_extension_postgres, "postgres")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kb"
    directory = cache / "duckdb-extensions"
    target = directory / f"v{version}" / _platform() / "postgres_scanner.duckdb_extension"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as partial:
            shutil.copyfileobj(source.open("rb"), partial)
        Path(partial.name).replace(target)
    return directory


def _platform() -> str:
    [(platform,)] = duckdb.execute("PRAGMA platform").fetchall()
    return str(platform)


def ducklake_extension() -> Path:
    import duckdb_extension_ducklake

    return packaged_extension(duckdb_extension_ducklake, "ducklake")


def _text(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def attach_sql(
    url: str, data_path: str | None, *, read_only: bool = False, alias: str = LAKE
) -> str:
    """The ATTACH statement of the lake (what an analyst runs too, with read_only)."""
    options = [
        *(["READ_ONLY"] if read_only else []),
        *([f"DATA_PATH {_text(data_path)}"] if data_path else []),
    ]
    suffix = f" ({', '.join(options)})" if options else ""
    return f"ATTACH {_text(url)} AS {alias}{suffix}"


def open_lake(
    url: str, data_path: str | None, *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB instance with the lake attached as `lake` (and used by default)."""
    instance = duckdb.connect(
        config={
            "extension_directory": str(extension_directory()),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    try:
        instance.execute(f"LOAD {_text(ducklake_extension())}")
        instance.execute("LOAD postgres_scanner")
        instance.execute(attach_sql(url, data_path, read_only=read_only))
        instance.execute(f"USE {LAKE}")
    except duckdb.Error as error:
        instance.close()
        raise LedgerError(
            f"cannot attach the ledger lake {redacted(url)}: {redacted(str(error))}"
        ) from error
    return instance


def redacted(url: str) -> str:
    """The lake's URL without a password."""
    return re.sub(r"password=\S+", "password=***", url)


class LakeInstances:
    """One DuckDB instance per lake per process, shared by its threads (each a cursor)."""

    def __init__(self) -> None:
        self._instances: dict[str, duckdb.DuckDBPyConnection] = {}
        self._lock = threading.Lock()

    @contextmanager
    def cursor(self, url: str, data_path: str | None) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            instance = self._instances.get(url)
            if instance is None:
                instance = self._instances[url] = open_lake(url, data_path)
        cursor = instance.cursor()
        try:
            cursor.execute(f"USE {LAKE}")
            cursor.execute("SET TimeZone = 'UTC'")
            yield cursor
        finally:
            cursor.close()


INSTANCES = LakeInstances()


def retrying(action: Callable[[], T], retries: int = RETRIES) -> T:
    """Run `action` (one whole transaction), again after a conflicting commit."""
    delay = 0.005
    for attempt in range(retries + 1):
        try:
            return action()
        except duckdb.Error as error:
            if not is_conflict(error) or attempt == retries:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    raise AssertionError("unreachable")


def differing_rows(connection: duckdb.DuckDBPyConnection, a: str, b: str, table: str) -> int:
    """Rows of `table` in one database and not the other (counting duplicates), both ways."""
    [(count,)] = connection.execute(
        f'SELECT (SELECT count(*) FROM (SELECT * FROM {a}."{table}" EXCEPT ALL '
        f'SELECT * FROM {b}."{table}")) + (SELECT count(*) FROM (SELECT * FROM {b}."{table}" '
        f'EXCEPT ALL SELECT * FROM {a}."{table}"))'
    ).fetchall()
    return int(count)


def migrate_to(source: Path, url: str, data_path: str | None) -> dict[str, int]:
    """Copy the file ledger at `source` into the (new, empty) lake at `url`, in one
    transaction, then check every table row for row; returns each table's row count."""
    from creatorkb.ledger import Ledger, open_ledger

    file_version = open_ledger(source).schema_version()  # migrated to this kb's schema
    target = Ledger(url, data_path=data_path) if is_lake(url) else None
    if target is None:
        raise LedgerError(f"{redacted(url)} is not a DuckLake URL (ducklake:postgres:...)")
    if target.migrate() != file_version:
        raise LedgerError("the lake and the file are at different schema versions")
    instance = open_lake(url, data_path or target.data_path)
    try:
        instance.execute(f"ATTACH {_text(source)} AS source (READ_ONLY)")
        tables = [
            name
            for (name,) in instance.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = "
                "'source' AND table_schema = 'main' AND table_type = 'BASE TABLE' "
                "AND table_name <> 'schema_migrations' ORDER BY table_name"
            ).fetchall()
        ]
        filled = [
            t
            for t in tables
            if instance.execute(f'SELECT count(*) FROM {LAKE}."{t}"').fetchall()[0][0]
        ]
        if filled:
            raise LedgerError(
                f"the lake {redacted(url)} already has rows in {', '.join(filled)}: "
                "migrate-to copies into a new, empty lake only"
            )
        instance.execute("BEGIN TRANSACTION")
        try:
            instance.execute(f"UPDATE {LAKE}.{COMMIT_LOCK} SET commits = commits + 1")
            for table in tables:
                instance.execute(
                    f'INSERT INTO {LAKE}."{table}" BY NAME SELECT * FROM source."{table}"'
                )
            instance.execute("COMMIT")
        except BaseException:
            instance.execute("ROLLBACK")
            raise
        counts = {}
        for table in tables:
            [(rows,)] = instance.execute(f'SELECT count(*) FROM source."{table}"').fetchall()
            [(copied,)] = instance.execute(f'SELECT count(*) FROM {LAKE}."{table}"').fetchall()
            differing = differing_rows(instance, "source", LAKE, table)
            if rows != copied or differing:
                raise LedgerError(
                    f"table {table}: {rows} rows in the file, {copied} in the lake, "
                    f"{differing} differ; the lake is incomplete: drop its database and retry"
                )
            counts[table] = int(rows)
        return counts
    finally:
        instance.close()
