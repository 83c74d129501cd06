"""DuckDB's full-text search (fts) extension: loading it, and the BM25 index over passages.

The extension ships on PyPI (duckdb-extension-fts, built for one duckdb version) and is
loaded from that package's file: DuckDB's own extension host is not reachable everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import duckdb_extension_fts

from creatorkb.errors import KBError
from creatorkb.extensions import packaged_extension

KNOWLEDGE_SCHEMA = 5  # the migration that created the knowledge tables
VECTOR_PAGES_SCHEMA = 9  # ... and the one that gave the vector pages their whole vectors
FTS_SCHEMA = "fts_main_knowledge_passages"
# Digits are kept (model versions: "SD 1.5", "Flux 2"); accents are folded.
FTS_PRAGMA = (
    "PRAGMA create_fts_index('knowledge_passages', 'passage_id', 'text', stemmer = 'porter', "
    "stopwords = 'english', ignore = '(\\.|[^a-z0-9])+', strip_accents = 1, lower = 1, "
    "overwrite = 1)"
)


# The rebuild tokenises every passage: unbounded, DuckDB holds it all in memory (6.7 GB at
# 1.2 million passages); under this limit it spills to the file's temporary directory and
# finishes (docs/performance.md "Memory" measures both). At 64 MB the postings of 205,000
# passages no longer fit.
REBUILD_MEMORY_LIMIT = "128MB"


@contextmanager
def rebuild_memory(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB's memory bounded for the `with` block (a step of the rebuild, inside its
    transaction), then lifted again before that transaction commits: a commit that cannot
    get memory under the bound leaves DuckDB unable to roll back, and the file unusable
    until it is opened again. The bound is set from a connection of its own, so that it is
    lifted even when a failed statement has aborted the caller's transaction, and lifted by
    setting the limit it replaced: `RESET memory_limit` (duckdb 1.5) shows the default again
    but leaves the buffer pool at the bound, and every later query of the process under it."""
    settings = connection.cursor()
    [(limit,)] = settings.execute("SELECT current_setting('memory_limit')").fetchall()
    settings.execute(f"SET memory_limit = '{REBUILD_MEMORY_LIMIT}'")
    try:
        yield
    finally:
        settings.execute(f"SET memory_limit = '{limit}'")
        settings.close()


def rebuild_full_text_index(connection: duckdb.DuckDBPyConnection) -> None:
    """The BM25 index over every passage, and its postings in term order (callers bound its
    memory with `rebuild_memory`). The postings are written to a new table that then
    replaces the old: deleting the old rows and inserting new ones in one transaction does
    not fit the bound once the index exists (205,000 passages)."""
    load_fts(connection)
    connection.execute(FTS_PRAGMA)
    new = create_like(connection, "search_postings")
    connection.execute(
        f"INSERT INTO {new} SELECT t.termid, d.name, d.len, count(*) "
        f"FROM {FTS_SCHEMA}.terms t JOIN {FTS_SCHEMA}.docs d USING (docid) "
        "GROUP BY ALL ORDER BY t.termid, d.name"
    )
    replace_with(connection, "search_postings", new)


def create_like(connection: duckdb.DuckDBPyConnection, table: str) -> str:
    """An empty table `<table>_new` with `table`'s columns and constraints (one left by a
    rebuild that stopped is dropped first); its name."""
    new = f"{table}_new"
    [(definition,)] = connection.execute(
        "SELECT sql FROM duckdb_tables() WHERE table_name = ? "
        "AND database_name = current_database() AND schema_name = 'main'",
        [table],
    ).fetchall()
    connection.execute(f"DROP TABLE IF EXISTS {new}")
    connection.execute(definition.replace(f"CREATE TABLE {table}(", f"CREATE TABLE {new}(", 1))
    return new


def replace_with(connection: duckdb.DuckDBPyConnection, table: str, new: str) -> None:
    """`new` becomes `table` (in the caller's transaction: readers see one or the other)."""
    connection.execute(f"DROP TABLE {table}")
    connection.execute(f"ALTER TABLE {new} RENAME TO {table}")


def fts_extension() -> Path:
    """The extension file for the installed duckdb."""
    return packaged_extension(duckdb_extension_fts, "fts")


def load_fts(connection: duckdb.DuckDBPyConnection) -> None:
    """Make BM25 search available on this connection (cheap after the first time)."""
    escaped = str(fts_extension()).replace("'", "''")
    connection.execute(f"LOAD '{escaped}'")


def require_knowledge_schema(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Fail, saying how to fix it, when the ledger predates the knowledge tables."""
    [(found,)] = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()
    version = 0
    if found:
        [(latest,)] = connection.execute("SELECT max(version) FROM schema_migrations").fetchall()
        version = latest or 0
    if version < KNOWLEDGE_SCHEMA:
        raise KBError(
            f"ledger {path} is at schema version {version}, before the knowledge tables; run "
            "`kb init` to migrate it, then `kb analyze` to index what is analysed"
        )
