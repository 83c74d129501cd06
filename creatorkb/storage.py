"""Ledgers written by a newer DuckDB than kb runs on, and their one-time conversion.

kb before December 2026 ran on DuckDB 2.0, whose files DuckDB 1.5 (pinned now, for the
extensions PyPI ships) cannot read. `kb ledger convert` copies such a file into the storage
format of this DuckDB with DuckDB 2.0 itself (run once by uv in a throwaway environment),
checks every table's row count, and keeps the original beside it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from creatorkb.errors import LedgerError

NEWER_STORAGE = re.compile(r"database file with version number (\d+)")
WRITER = "duckdb==2.0.1"  # the DuckDB that wrote the old files
READABLE_STORAGE = "v1.5.0"  # a storage version this DuckDB reads

_COPY = """
import json, sys, duckdb
source, target, storage = sys.argv[1:4]
quote = lambda path: "'" + path.replace("'", "''") + "'"
db = duckdb.connect()
db.execute(f"ATTACH {quote(source)} AS old (READ_ONLY)")
db.execute(f"ATTACH {quote(target)} AS new (STORAGE_VERSION '{storage}')")
db.execute("COPY FROM DATABASE old TO new")
tables = db.execute(
    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'old'"
).fetchall()
counts = {
    f"{schema}.{table}": db.execute(f'SELECT count(*) FROM old."{schema}"."{table}"').fetchone()[0]
    for schema, table in tables
}
print(json.dumps(counts))
"""


def written_by_newer_duckdb(error: duckdb.Error) -> bool:
    return NEWER_STORAGE.search(str(error)) is not None


def newer_storage_error(path: Path) -> LedgerError:
    return LedgerError(
        f"ledger {path} was written by a newer DuckDB (2.0, used by kb before December 2026) "
        f"than this kb's DuckDB {duckdb.__version__}; convert it once with `kb ledger convert` "
        "(the original is kept beside it)"
    )


def convert(path: Path, uv: Path | None = None) -> dict[str, int]:
    """Convert the ledger at `path` in place (the original kept as `<name>.duckdb2`);
    returns the row count of every table, checked against the original's."""
    uv = uv or Path(sys.executable).parent / "uv"
    if not uv.exists():
        raise LedgerError(f"converting needs uv ({uv} is missing); run `python3 dev.py kb ...`")
    converted = path.with_name(path.name + ".converting")
    converted.unlink(missing_ok=True)
    copy = ["python", "-c", _COPY, str(path), str(converted), READABLE_STORAGE]
    done = subprocess.run(
        [str(uv), "run", "--no-project", "--quiet", "--with", WRITER, *copy],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        converted.unlink(missing_ok=True)
        raise LedgerError(f"could not convert ledger {path}: {done.stderr.strip()[-500:]}")
    expected: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    with duckdb.connect(str(converted), read_only=True) as copy:
        found = {
            name: copy.execute(
                'SELECT count(*) FROM "{}"."{}"'.format(*name.split(".", 1))
            ).fetchone()[0]  # type: ignore[index]
            for name in expected
        }
    if found != expected:
        converted.unlink(missing_ok=True)
        raise LedgerError(f"converted ledger {path} lost rows ({found} != {expected}); unchanged")
    path.rename(path.with_name(path.name + ".duckdb2"))
    converted.rename(path)
    return found
