"""The DuckDB ledger: migrations, short transactions, idempotent batched writes.

DuckDB lets one process hold a file at a time, so every connection here is short:
open (waiting with backoff while another process holds the file), do one thing,
close. While a process is busy with the ledger its DuckDB instance stays open between
transactions (they then cost ~1 ms, not ~17 ms), and is let go whenever the process is
idle for a quarter second or has held it for two seconds, so other processes get in.

A batch that cannot be written because the file stays held is kept in a spool directory
beside the ledger and written first by the next successful open.
"""

from __future__ import annotations

import atexit
import json
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from creatorkb import lake, storage
from creatorkb.errors import LedgerError, LedgerLocked, SchemaTooNew
from creatorkb.lake import is_lake, merge_sql

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.+?)(?:\. See also|$)")

# One lock per ledger file: threads of one process take turns, like processes do.
_file_locks: dict[Path, threading.RLock] = {}
_file_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Migration:
    """One schema change, applied once and never edited after it shipped."""

    version: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    """The migrations shipped with this version of kb, in order."""
    found = []
    for entry in resources.files("creatorkb.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    return found


@dataclass(frozen=True)
class Write:
    """Rows for one table, written idempotently by primary key.

    When a row's key already exists, the columns in `update` are overwritten and the
    others kept. With `insert_missing=False` rows whose key does not exist are skipped,
    so a write may carry only the columns it changes.
    """

    table: str
    key: tuple[str, ...]
    rows: list[dict[str, Any]]
    update: tuple[str, ...] = field(default=())
    insert_missing: bool = True

    def __post_init__(self) -> None:
        if not self.rows:
            return
        columns = set(self.rows[0])
        if any(set(row) != columns for row in self.rows):
            raise ValueError(f"rows for {self.table} do not all have the same columns")
        missing = (set(self.key) | set(self.update)) - columns
        if missing:
            raise ValueError(f"rows for {self.table} lack columns {sorted(missing)}")
        if not self.insert_missing and not self.update:
            raise ValueError(f"an update of {self.table} must name the columns it updates")

    @classmethod
    def insert_new(cls, table: str, key: tuple[str, ...], rows: list[dict[str, Any]]) -> Write:
        """Insert rows whose key is new; existing rows win."""
        return cls(table, key, rows)

    @classmethod
    def upsert(
        cls, table: str, key: tuple[str, ...], rows: list[dict[str, Any]], update: tuple[str, ...]
    ) -> Write:
        """Insert new rows; for existing keys overwrite the `update` columns."""
        return cls(table, key, rows, update)

    @classmethod
    def update_existing(cls, table: str, key: tuple[str, ...], rows: list[dict[str, Any]]) -> Write:
        """Overwrite every non-key column given, for rows that exist."""
        columns = tuple(name for name in rows[0] if name not in key) if rows else ()
        return cls(table, key, rows, columns, insert_missing=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": list(self.key),
            "update": list(self.update),
            "insert_missing": self.insert_missing,
            "rows": [{name: _as_text(value) for name, value in row.items()} for row in self.rows],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Write:
        return cls(
            data["table"],
            tuple(data["key"]),
            list(data["rows"]),
            tuple(data["update"]),
            bool(data["insert_missing"]),
        )


_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


def _as_text(value: Any) -> str | None:
    """One text form per value, used both on the wire to DuckDB and in the spool."""
    match value:
        case None:
            return None
        case bool():
            return "true" if value else "false"
        case datetime():
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        case date() | Decimal() | int() | float() | str():
            return str(value) if not isinstance(value, float) else repr(value)
        case Enum():
            return _as_text(value.value)
        case Path():
            return str(value)
        case dict() | list() | tuple():
            return _JSON.encode(value)
        case _:
            raise TypeError(f"cannot store {type(value).__name__} in the ledger: {value!r}")


# Values DuckDB reads exactly as they are; every other kind is written in its text form.
_NATIVE = {str, int, float, bool, datetime, type(None)}
_EXACT_NUMBERS = {Decimal, int, type(None)}


def _column(values: list[Any]) -> list[Any]:
    """One column of a batch: passed through when DuckDB reads its values natively, else
    turned into their text form (Decimal stays exact, dicts become JSON)."""
    kinds = set(map(type, values))
    if kinds <= _NATIVE:
        return values
    if kinds <= _EXACT_NUMBERS:  # money: the common case, kept fast
        return [None if value is None else str(value) for value in values]
    return [_as_text(value) for value in values]


SMALL_BATCH = 64  # rows written as a VALUES list; larger batches go through a DataFrame
IDLE_RELEASE_S = 0.25  # let go of a file this long after its last use,
MAX_HOLD_S = 5.0  # and at least this often, then stay away for
COOL_DOWN_S = 0.3  # this long: other processes (a notebook's snapshot) get their turn.


@dataclass
class _Anchor:
    connection: duckdb.DuckDBPyConnection
    opened: float
    last_used: float
    users: int = 0


class _Keeper:
    """Keeps each ledger file's DuckDB instance open while this process uses it, so that a
    short transaction costs about a millisecond instead of the ~17 ms of opening the file,
    and lets go when the file is idle or has been held long, so others get their turn."""

    def __init__(self) -> None:
        self._anchors: dict[Path, _Anchor] = {}
        self._cool_until: dict[Path, float] = {}
        self._mutex = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._exiting = threading.Event()
        atexit.register(self._at_exit)

    @contextmanager
    def using(
        self, path: Path, open_file: Callable[[], duckdb.DuckDBPyConnection]
    ) -> Iterator[None]:
        """Keep `path` open (opening it, waiting for other holders, if it is not) while the
        caller works with it."""
        anchor = self._enter(path, open_file)
        try:
            yield
        finally:
            if anchor is not None:
                with self._mutex:
                    anchor.users -= 1
                    anchor.last_used = time.monotonic()

    def _enter(
        self, path: Path, open_file: Callable[[], duckdb.DuckDBPyConnection]
    ) -> _Anchor | None:
        now = time.monotonic()
        with self._mutex:
            anchor = self._anchors.get(path)
            if anchor is None and now < self._cool_until.get(path, 0.0):
                return None
            if anchor is not None:
                anchor.users += 1
                return anchor
        connection = open_file()
        with self._mutex:
            anchor = _Anchor(connection, now, now, users=1)
            self._anchors[path] = anchor
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap, name="ledger-keeper", daemon=True
                )
                self._reaper.start()
        return anchor

    def holds(self, path: Path) -> bool:
        with self._mutex:
            return path in self._anchors

    def release(self, path: Path) -> None:
        with self._mutex:
            anchor = self._anchors.pop(path, None)
        if anchor is not None:
            anchor.connection.close()

    def release_all(self) -> None:
        for path in list(self._anchors):
            self.release(path)

    def _at_exit(self) -> None:
        # The reaper may be closing a file (DuckDB checkpoints then): let it finish first, or
        # the process can abort while DuckDB's threads are torn down under it.
        self._exiting.set()
        if self._reaper is not None:
            self._reaper.join(timeout=30)
        self.release_all()

    def _reap(self) -> None:
        while not self._exiting.wait(0.1):
            now = time.monotonic()
            with self._mutex:
                expired = [
                    path
                    for path, anchor in self._anchors.items()
                    if anchor.users == 0
                    and (
                        now - anchor.last_used > IDLE_RELEASE_S or now - anchor.opened > MAX_HOLD_S
                    )
                ]
                closing = [self._anchors.pop(path).connection for path in expired]
                for path in expired:
                    self._cool_until[path] = now + COOL_DOWN_S
            for connection in closing:
                connection.close()


_keeper = _Keeper()


class Ledger:
    """One DuckDB ledger file, opened briefly for each read or write. A `ducklake:` location
    gives a LakeLedger instead (creatorkb/lake.py): the same schema and invariants on a
    DuckLake with a PostgreSQL catalog, for writers on many machines."""

    keeps_search_index = True  # the fts extension's BM25 index lives in the file

    def __new__(cls, path: Path | str, *args: Any, **kwargs: Any) -> Ledger:
        if cls is Ledger and is_lake(path):
            return super().__new__(LakeLedger)
        return super().__new__(cls)

    def __init__(self, path: Path | str, wait_seconds: float = 30.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.wait_seconds = wait_seconds
        self.spool_dir = self.path.with_name(self.path.name + ".pending")
        self._column_types: dict[str, dict[str, str]] = {}
        self._merges = False  # writes by MERGE (a lake) rather than INSERT ... ON CONFLICT
        with _file_locks_guard:
            self._lock = _file_locks.setdefault(self.path, threading.RLock())

    # -- connections -------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held only for the `with` block, after waiting out other holders."""
        with self._lock, _keeper.using(self.path, self._open_waiting):
            connection = self._open_waiting()
            try:
                connection.execute("SET TimeZone = 'UTC'")
                yield connection
            finally:
                connection.close()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection held only for the `with` block, for commands that only
        read: several may read at once, and none migrates or writes the file."""
        if not self.path.exists():
            raise LedgerError(f"ledger {self.path} does not exist; run `kb init` or set KB_LEDGER")
        with self._lock:
            if _keeper.holds(self.path):  # this process has it open read-write already
                with self.connect() as connection:
                    yield connection
                return
            connection = self._waiting(lambda: duckdb.connect(str(self.path), read_only=True))
            try:
                connection.execute("SET TimeZone = 'UTC'")
                yield connection
            finally:
                connection.close()

    def _open_waiting(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self._waiting(lambda: duckdb.connect(str(self.path)))

    def _waiting(self, action: Callable[[], T]) -> T:
        """Run `action`, retrying with backoff while another process holds the file."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                return action()
            except duckdb.IOException as error:
                holder = _LOCK_HOLDER.search(str(error))
                if holder is None:
                    if storage.written_by_newer_duckdb(error):
                        raise storage.newer_storage_error(self.path) from error
                    raise LedgerError(f"cannot open ledger {self.path}: {error}") from error
                waited = time.monotonic() - started
                if waited >= self.wait_seconds:
                    raise LedgerLocked(self.path, holder[1], waited) from error
                time.sleep(min(delay, max(self.wait_seconds - waited, 0.0)))
                delay = min(delay * 2, COOL_DOWN_S)  # short enough to catch a holder's pause

    def let_go(self) -> None:
        """Close this process's kept instance of the file, so that the next use opens it
        afresh: what DuckDB cached of it (transcripts read, pages written) is freed before a
        step that needs memory of its own."""
        with self._lock:
            _keeper.release(self.path)

    def copy_in_memory(self) -> LedgerCopy:
        """The whole ledger copied into memory through a brief read-only attach: an analyst
        queries the copy, nothing is written to disk, and the pipeline waits only briefly."""
        if not self.path.exists():
            raise LedgerError(f"ledger {self.path} does not exist; run `kb init` or set KB_LEDGER")
        memory = duckdb.connect()

        def copy() -> None:
            memory.execute(f"ATTACH {_sql_text(self.path)} AS ledger (READ_ONLY)")
            try:
                memory.execute("COPY FROM DATABASE ledger TO memory")
            finally:
                memory.execute("DETACH ledger")

        with self._lock:
            _keeper.release(self.path)  # this process's own instance must not hold it either
            self._waiting(copy)
        return LedgerCopy(memory)

    def snapshot(self, destination: Path | str) -> Path:
        """Copy the whole ledger to `destination` (replacing it) through a brief read-only
        attach: an analyst queries the copy, and neither side waits on the other for long."""
        if not self.path.exists():
            raise LedgerError(f"ledger {self.path} does not exist; run `kb init` or set KB_LEDGER")
        target = Path(destination).expanduser().resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)

        def copy() -> None:
            with duckdb.connect() as connection:
                connection.execute(f"ATTACH {_sql_text(self.path)} AS ledger (READ_ONLY)")
                connection.execute(f"ATTACH {_sql_text(partial)} AS snapshot")
                connection.execute("COPY FROM DATABASE ledger TO snapshot")

        with self._lock:
            _keeper.release(self.path)  # this process's own instance must not hold it either
            self._waiting(copy)
        partial.replace(target)
        return target

    # -- schema ------------------------------------------------------------------

    def migrate(self, up_to: int | None = None) -> int:
        """Bring the schema up to date (or to `up_to`), then write any spooled batches.

        Returns the schema version the file is at.
        """
        migrations = known_migrations()
        latest = migrations[-1].version
        target = latest if up_to is None else up_to
        with self.connect() as connection:
            self._prepare_schema(connection)
            current = _schema_version(connection)
            if current > latest:
                raise SchemaTooNew(self.path, current, latest)
            for migration in migrations:
                if not current < migration.version <= target:
                    continue
                with _transaction(connection):
                    connection.execute(self._migration_sql(migration.sql))
                    connection.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        [migration.version, migration.name, datetime.now(UTC)],
                    )
            self._replay_spool(connection)
            return _schema_version(connection)

    def _prepare_schema(self, connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL)"
        )

    def _migration_sql(self, sql: str) -> str:
        return sql

    def schema_version(self) -> int:
        """The version recorded in the file (0 for a new file)."""
        with self.connect() as connection:
            return _schema_version(connection)

    # -- writes ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: committed if the block ends, else rolled back.

        Spooled batches are written first, so the transaction sees them.
        """
        with self.connect() as connection:
            self._replay_spool(connection)
            with _transaction(connection):
                yield connection

    def atomic(self, step: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `step` (reads and writes) as one transaction and return what it returns; on a
        lake, again from the start when a concurrent commit conflicts with it."""
        with self.transaction() as connection:
            return step(connection)

    def write(self, *writes: Write) -> None:
        """Write the batch in one transaction; if the file stays held, spool it and raise."""
        batch = [write for write in writes if write.rows]
        if not batch:
            return
        try:
            with self.transaction() as connection:
                self.apply(connection, *batch)
        except LedgerLocked as locked:
            self._spool(batch)
            raise LedgerLocked(
                locked.path, locked.holder, locked.waited_s, len(self.pending_batches())
            ) from locked

    def pending_batches(self) -> list[Path]:
        """Spooled batches waiting to be written, oldest first."""
        if not self.spool_dir.is_dir():
            return []
        return sorted(self.spool_dir.glob("*.json"))

    def _spool(self, batch: Sequence[Write]) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        partial = self.spool_dir / (name + ".tmp")
        partial.write_text(json.dumps([write.to_json() for write in batch]), encoding="utf-8")
        partial.rename(self.spool_dir / name)

    def _replay_spool(self, connection: duckdb.DuckDBPyConnection) -> int:
        spooled = self.pending_batches()
        for path in spooled:
            try:
                batch = [Write.from_json(item) for item in json.loads(path.read_text("utf-8"))]
            except (ValueError, KeyError) as error:
                raise LedgerError(
                    f"pending ledger batch {path} is unreadable ({error}); move it aside "
                    "to continue"
                ) from error
            with _transaction(connection):
                self.apply(connection, *batch)
            path.unlink()
        return len(spooled)

    def apply(self, connection: duckdb.DuckDBPyConnection, *writes: Write) -> None:
        """Apply writes on a connection from `transaction()`."""
        for write in writes:
            if write.rows:
                self._write(connection, write)

    def _write(self, connection: duckdb.DuckDBPyConnection, write: Write) -> None:
        types = self._types_of(connection, write.table)
        columns = list(write.rows[0])
        unknown = [name for name in columns if name not in types]
        if unknown:
            raise LedgerError(f"table {write.table} has no column(s) {unknown}")
        # The last row for a key wins, as if the rows had been written one by one.
        latest = list({tuple(row[name] for name in write.key): row for row in write.rows}.values())
        data = [_column([row[name] for row in latest]) for name in columns]
        names = ", ".join(f'"{name}"' for name in columns)
        if len(latest) <= SMALL_BATCH:  # planning a VALUES list is cheaper than a frame scan
            row_marks = "(" + ", ".join("?" * len(columns)) + ")"
            source = f"(VALUES {', '.join([row_marks] * len(latest))}) AS kb_batch({names})"
            params = [column[index] for index in range(len(latest)) for column in data]
        else:
            import pandas as pd  # imported here: commands that never write start faster

            frame = pd.DataFrame(dict(zip(columns, data, strict=True)), dtype=object)
            source, params = "kb_batch", []
            connection.register("kb_batch", frame)
        if write.insert_missing and self._merges:
            sql = merge_sql(write, types, source)
        elif write.insert_missing:
            selected = ", ".join(f'CAST("{name}" AS {types[name]})' for name in columns)
            conflict = ", ".join(f'"{name}"' for name in write.key)
            action = (
                "DO UPDATE SET "
                + ", ".join(f'"{name}" = excluded."{name}"' for name in write.update)
                if write.update
                else "DO NOTHING"
            )
            sql = (
                f'INSERT INTO "{write.table}" ({names}) SELECT {selected} FROM {source} '
                f"ON CONFLICT ({conflict}) {action}"
            )
        else:
            assignments = ", ".join(
                f'"{name}" = CAST(kb_batch."{name}" AS {types[name]})' for name in write.update
            )
            matches = " AND ".join(
                f'"{write.table}"."{name}" = CAST(kb_batch."{name}" AS {types[name]})'
                for name in write.key
            )
            sql = f'UPDATE "{write.table}" SET {assignments} FROM {source} WHERE {matches}'
        try:
            connection.execute(sql, params)
        finally:
            if source == "kb_batch":
                connection.unregister("kb_batch")

    def _types_of(self, connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
        if table not in self._column_types:
            found = connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? AND table_catalog = current_database() "
                "ORDER BY ordinal_position",
                [table],
            ).fetchall()
            if not found:
                raise LedgerError(f"the ledger has no table {table}; run `kb init`")
            self._column_types[table] = dict(found)
        return self._column_types[table]

    # -- reads -------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query and return its rows as dicts."""
        with self.connect() as connection:
            return _dict_rows(connection.execute(sql, list(params)))

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run one query and return a DataFrame."""
        with self.connect() as connection:
            return connection.execute(sql, list(params)).df()


class LakeLedger(Ledger):
    """The ledger on a DuckLake (creatorkb/lake.py): a PostgreSQL catalog and data files under
    `data_path` (KB_LEDGER_DATA_PATH; needed when the lake is created, then read from its
    catalog). Every process keeps one attached instance; each use is a cursor of it."""

    keeps_search_index = False

    def __init__(
        self, path: Path | str, wait_seconds: float = 30.0, data_path: str | None = None
    ) -> None:
        from creatorkb.settings import KBSettings

        self.url = str(path)
        self.path = Path(lake.redacted(self.url))  # what messages name
        self.wait_seconds = wait_seconds
        self.data_path = data_path or KBSettings().ledger_data_path
        self.spool_dir = Path(tempfile.gettempdir()) / "kb-lake-never-spools"
        self._column_types = {}
        self._merges = True
        with _file_locks_guard:
            self._lock = _file_locks.setdefault(Path(self.url), threading.RLock())

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock, lake.INSTANCES.cursor(self.url, self.data_path) as cursor:
            yield cursor

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with lake.INSTANCES.cursor(self.url, self.data_path) as cursor:
            yield cursor

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction that conflicts with every concurrent writer (it updates the commit
        lock row): committed if the block ends, else rolled back. A conflict at commit raises;
        `atomic` and `write` retry it."""
        with self.connect() as connection, _transaction(connection):
            connection.execute(f"UPDATE {lake.COMMIT_LOCK} SET commits = commits + 1")
            yield connection

    def atomic(self, step: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        def attempt() -> T:
            with self.transaction() as connection:
                return step(connection)

        return lake.retrying(attempt)

    def write(self, *writes: Write) -> None:
        """Write the batch in one transaction, again if a concurrent commit conflicts."""
        batch = [write for write in writes if write.rows]
        if batch:
            self.atomic(lambda connection: self.apply(connection, *batch))

    def pending_batches(self) -> list[Path]:
        return []  # nothing is ever spooled: a lake is never held by another process

    def _replay_spool(self, connection: duckdb.DuckDBPyConnection) -> int:
        return 0

    def migrate(self, up_to: int | None = None) -> int:
        return lake.retrying(lambda: Ledger.migrate(self, up_to))

    def _prepare_schema(self, connection: duckdb.DuckDBPyConnection) -> None:
        with _transaction(connection):
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER NOT NULL, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL)"
            )
            connection.execute(f"CREATE TABLE IF NOT EXISTS {lake.COMMIT_LOCK} (commits BIGINT)")
            [(rows,)] = connection.execute(f"SELECT count(*) FROM {lake.COMMIT_LOCK}").fetchall()
            if not rows:
                connection.execute(f"INSERT INTO {lake.COMMIT_LOCK} VALUES (0)")

    def _migration_sql(self, sql: str) -> str:
        # Each migration conflicts with a concurrent one: the second process retries, then
        # finds it applied.
        return f"UPDATE {lake.COMMIT_LOCK} SET commits = commits + 1; " + lake.lake_sql(sql)

    def copy_in_memory(self) -> LedgerCopy:
        memory = lake.open_lake(self.url, self.data_path, read_only=True)
        memory.execute("USE memory")
        memory.execute(f"COPY FROM DATABASE {lake.LAKE} TO memory")
        memory.execute(f"DETACH {lake.LAKE}")
        return LedgerCopy(memory)

    def snapshot(self, destination: Path | str) -> Path:
        target = Path(destination).expanduser().resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        source = lake.open_lake(self.url, self.data_path, read_only=True)
        try:
            source.execute(f"ATTACH {_sql_text(partial)} AS snapshot")
            source.execute(f"COPY FROM DATABASE {lake.LAKE} TO snapshot")
        finally:
            source.close()
        partial.replace(target)
        return target


class LedgerCopy:
    """A ledger copied into memory (`Ledger.copy_in_memory`), read like the ledger itself."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection  # in memory: an analyst may query it directly

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query and return its rows as dicts."""
        with self.connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            return _dict_rows(cursor.execute(sql, list(params)))

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run one query and return a DataFrame."""
        with self.connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            return cursor.execute(sql, list(params)).df()


LedgerReader = Ledger | LedgerCopy  # what report and knowledge queries read from


def _dict_rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _schema_version(connection: duckdb.DuckDBPyConnection) -> int:
    [(exists,)] = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()
    if not exists:
        return 0
    [(version,)] = connection.execute("SELECT max(version) FROM schema_migrations").fetchall()
    return int(version) if version is not None else 0


def open_ledger(path: Path | str, wait_seconds: float = 30.0) -> Ledger:
    """The ledger at `path`, migrated to the current schema with spooled batches written."""
    ledger = Ledger(path, wait_seconds)
    ledger.migrate()
    return ledger
