"""The search index: each analysed video's record and transcript as passages, their
embeddings, and DuckDB's full-text (BM25) index over them.

DuckDB's FTS index is static: it is rebuilt whole (`PRAGMA create_fts_index(...,
overwrite=1)`) after the passages change, once per indexing run, so an analyse run pays for
one rebuild however many videos it finished (docs/performance.md measures it). Passages are
rebuilt per video whenever its analysis or its segments change; embeddings are keyed by the
text they embed, so a passage whose text did not change is never embedded again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from creatorkb.calls import ModelCall
from creatorkb.embeddings import COARSE_DIMENSIONS, Embedder
from creatorkb.errors import EmbeddingUnavailable, LedgerLocked
from creatorkb.fts import create_like, rebuild_full_text_index, rebuild_memory, replace_with
from creatorkb.insight import Insight
from creatorkb.lake import SEARCH_NOT_ON_LAKE
from creatorkb.ledger import Ledger, Write
from creatorkb.pricing import call_row
from creatorkb.segments import Segment, TimedText, windows
from creatorkb.settings import CostOptions

VIDEOS_PER_BATCH = 50
PAGE = 4096  # vectors per row of search_vector_pages (at most)
PAGES_PER_COMMIT = 4  # about 10 MB of pages: what DuckDB holds in memory until a commit


def key_of(text: str) -> int:
    """A text's sha256, first 8 bytes, as a signed BIGINT: integer keys keep the joins of a
    search cheap over 100,000 passages, and 2^64 leaves no room for collisions."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Passage:
    """One searchable piece of a video: part of its record or of its transcript."""

    video_id: str
    kind: str
    seq: int
    text: str
    label: str | None = None
    start_s: float | None = None
    located: str | None = None

    @property
    def passage_id(self) -> int:
        return key_of(f"{self.video_id}:{self.kind}:{self.seq}")

    @property
    def text_key(self) -> int:
        """The key of the passage's embedding."""
        return key_of(self.text)

    def row(self) -> dict[str, Any]:
        return {
            "passage_id": self.passage_id,
            "video_id": self.video_id,
            "kind": self.kind,
            "seq": self.seq,
            "label": self.label,
            "text": self.text,
            "start_s": self.start_s,
            "located": self.located,
            "text_key": self.text_key,
        }


def record_passages(video_id: str, insight: Insight, segments: Sequence[Segment]) -> list[Passage]:
    """The passages of one analysed video: summary, key points, techniques and their steps,
    tools with their quotes, evidence quotes and the transcript, each placed in the video."""
    timed = TimedText(segments)
    found: list[Passage] = []

    def add(kind: str, text: str, *, label: str | None = None, paraphrase: bool, at: str = ""):
        text = text.strip()
        if not text:
            return
        where = timed.place(at or text, paraphrase=paraphrase)
        seq = sum(passage.kind == kind for passage in found)
        found.append(
            Passage(
                video_id,
                kind,
                seq,
                text,
                label,
                where.start_s if where else None,
                where.match if where else None,
            )
        )

    add("summary", insight.summary, paraphrase=True)
    for point in insight.key_points:
        add("key_point", point, paraphrase=True)
    for technique in insight.techniques:
        add("technique", technique.name, label=technique.name, paraphrase=False)
        for step in technique.steps:
            add("step", step, label=technique.name, paraphrase=True)
    for tool in insight.tools:
        add("tool", f"{tool.name}: {tool.quote}", label=tool.name, paraphrase=False, at=tool.quote)
    for quote in insight.evidence_quotes:
        add("quote", quote, paraphrase=False)
    for window in windows(segments):
        found.append(
            Passage(video_id, "segment", window.seq, window.text, None, window.start_s, "exact")
        )
    return found


@dataclass
class IndexReport:
    """What one indexing run did, and whether semantic ranking is available."""

    videos: int = 0
    passages: int = 0
    embedded: int = 0
    calls: int = 0
    rebuilt: bool = False
    rebuild_seconds: float = 0.0
    semantic_off: str | None = None
    indexed: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing was indexed at all

    def describe(self) -> str:
        if self.skipped:
            return f"not kept: {self.skipped}"
        semantic = (
            f"semantic ranking off: {self.semantic_off}" if self.semantic_off else "semantic on"
        )
        rebuild = (
            f"full-text index rebuilt in {self.rebuild_seconds:.2f}s"
            if self.rebuilt
            else "full-text index current"
        )
        return (
            f"indexed {self.videos} videos ({self.passages} passages), embedded "
            f"{self.embedded} texts in {self.calls} calls; {rebuild}; {semantic}"
        )


@dataclass(frozen=True)
class _Video:
    video_id: str
    analysis_created_at: datetime
    insight: Insight
    segments: list[Segment]


class KnowledgeIndexer:
    """Brings the passages, embeddings and full-text index up to date with the analyses."""

    def __init__(
        self,
        ledger: Ledger,
        embedder: Embedder | None,
        costs: CostOptions,
        flow_run_id: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.embedder = embedder
        self.costs = costs
        self.flow_run_id = flow_run_id

    def run(self) -> IndexReport:
        if not self.ledger.keeps_search_index:
            return IndexReport(skipped=SEARCH_NOT_ON_LAKE)
        report = IndexReport()
        stale = self._stale_videos()
        if not stale and not self._full_text_stale() and not self._unembedded():
            return report  # current: not even Ollama is asked
        embedder = self._usable_embedder(report)
        for first in range(0, len(stale), VIDEOS_PER_BATCH):
            videos = self._read(stale[first : first + VIDEOS_PER_BATCH])
            passages = {
                video.video_id: record_passages(video.video_id, video.insight, video.segments)
                for video in videos
            }
            all_passages = [passage for found in passages.values() for passage in found]
            embedder = self._embed_and_store(
                embedder, report, all_passages, replace_videos=videos, passages=passages
            )
            report.videos += len(videos)
            report.passages += len(all_passages)
            report.indexed += [video.video_id for video in videos]
        if embedder is not None:
            self._embed_backlog(embedder, report)
        if report.videos or report.embedded or self._full_text_stale():
            report.rebuilt = True
            report.rebuild_seconds = self.rebuild_full_text()
        if report.rebuilt or report.embedded:
            self._record_state(report)
        return report

    # -- reading -----------------------------------------------------------------

    def _usable_embedder(self, report: IndexReport) -> Embedder | None:
        if self.embedder is None:
            report.semantic_off = "no embedding model is configured"
            return None
        try:
            self.embedder.check()
        except EmbeddingUnavailable as error:
            report.semantic_off = str(error)
            return None
        return self.embedder

    def _stale_videos(self) -> list[str]:
        """Analysed videos never indexed, or whose analysis or segments changed since."""
        rows = self.ledger.rows(
            """
            SELECT a.video_id
            FROM analyses a
            LEFT JOIN (SELECT video_id, count(*) AS n FROM transcript_segments GROUP BY ALL) s
                USING (video_id)
            LEFT JOIN indexed_videos i USING (video_id)
            WHERE i.video_id IS NULL OR i.analysis_created_at <> a.created_at
               OR i.segments <> coalesce(s.n, 0)
            ORDER BY a.created_at, a.video_id
            """
        )
        return [row["video_id"] for row in rows]

    def _read(self, video_ids: list[str]) -> list[_Video]:
        with self.ledger.connect() as connection:
            analyses = connection.execute(
                "SELECT video_id, created_at, result FROM analyses "
                "WHERE list_contains(?, video_id) ORDER BY created_at, video_id",
                [video_ids],
            ).fetchall()
            segments: dict[str, list[Segment]] = defaultdict(list)
            for video_id, start_s, duration_s, text in connection.execute(
                "SELECT video_id, start_s, duration_s, text FROM transcript_segments "
                "WHERE list_contains(?, video_id) ORDER BY video_id, seq",
                [video_ids],
            ).fetchall():
                segments[video_id].append(Segment(start_s, duration_s, text))
        return [
            _Video(
                video_id,
                created_at,
                Insight.model_validate(json.loads(result)),
                segments.get(video_id, []),
            )
            for video_id, created_at, result in analyses
        ]

    def _missing_embeddings(self, keys: Iterable[int], model: str) -> set[int]:
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        rows = self.ledger.rows(
            "SELECT text_key FROM passage_embeddings WHERE model = ? "
            "AND text_key IN (SELECT unnest(CAST(? AS BIGINT[])))",
            [model, wanted],
        )
        return set(wanted) - {row["text_key"] for row in rows}

    # -- writing -----------------------------------------------------------------

    def _embed_and_store(
        self,
        embedder: Embedder | None,
        report: IndexReport,
        to_embed: list[Passage],
        *,
        replace_videos: Sequence[_Video] = (),
        passages: dict[str, list[Passage]] | None = None,
    ) -> Embedder | None:
        """Embed the passages' texts that have no embedding yet (one request per video),
        then write the calls, embeddings and passages in one transaction. Returns the
        embedder, or None once it failed (the rest of the run indexes full text only)."""
        vectors: dict[int, list[float]] = {}
        calls: list[tuple[ModelCall, str]] = []
        if embedder is not None:
            missing = self._missing_embeddings((p.text_key for p in to_embed), embedder.model)
            by_video: dict[str, dict[int, str]] = defaultdict(dict)
            for passage in to_embed:
                if passage.text_key in missing:
                    by_video[passage.video_id][passage.text_key] = passage.text
            for video_id, texts in by_video.items():
                try:
                    embedded = embedder.documents(list(texts.values()))
                except EmbeddingUnavailable as error:
                    calls += [(call, video_id) for call in error.calls]
                    report.semantic_off = str(error)
                    embedder = None
                    break
                calls += [(call, video_id) for call in embedded.calls]
                vectors.update(zip(texts, embedded.vectors, strict=True))
        report.embedded += len(vectors)
        report.calls += len(calls)
        model = self.embedder.model if self.embedder else ""
        self._store(calls, vectors, model, replace_videos, passages)
        return embedder

    def _store(
        self,
        calls: list[tuple[ModelCall, str]],
        vectors: dict[int, list[float]],
        model: str,
        videos: Sequence[_Video],
        passages: dict[str, list[Passage]] | None,
    ) -> None:
        import numpy as np
        import pandas as pd  # the flows' processes have it loaded already

        now = datetime.now(UTC)
        call_rows = [
            call_row(
                call, self.costs, flow_run_id=self.flow_run_id, video_id=video_id, decision_id=None
            )
            for call, video_id in calls
        ]
        call_write = Write.insert_new("llm_calls", ("call_id",), call_rows)
        try:
            with self.ledger.transaction() as connection:
                self.ledger.apply(connection, call_write)
                if vectors:
                    full = np.asarray(list(vectors.values()), dtype=np.float32)
                    heads = full[:, :COARSE_DIMENSIONS]
                    heads = heads / np.maximum(np.linalg.norm(heads, axis=1, keepdims=True), 1e-12)
                    frame = pd.DataFrame(
                        {"text_key": list(vectors), "coarse": list(heads), "embedding": list(full)}
                    )
                    connection.register("kb_vectors", frame)
                    connection.execute(
                        "INSERT INTO passage_embeddings SELECT CAST(text_key AS BIGINT), ?, "
                        "CAST(coarse AS FLOAT[64]), CAST(embedding AS FLOAT[256]), ? "
                        "FROM kb_vectors ON CONFLICT DO NOTHING",
                        [model, now],
                    )
                    connection.unregister("kb_vectors")
                if videos and passages is not None:
                    self._replace_passages(connection, videos, passages, now)
        except LedgerLocked:
            # The calls happened and are kept (spooled for the next writer); the passages
            # and vectors are derived and are simply built again by the next run.
            self.ledger.write(call_write)
            raise

    def _replace_passages(
        self,
        connection: duckdb.DuckDBPyConnection,
        videos: Sequence[_Video],
        passages: dict[str, list[Passage]],
        now: datetime,
    ) -> None:
        import pandas as pd

        ids = [video.video_id for video in videos]
        connection.execute("DELETE FROM knowledge_passages WHERE list_contains(?, video_id)", [ids])
        rows = [passage.row() for video in videos for passage in passages[video.video_id]]
        if rows:
            frame = pd.DataFrame(rows)
            connection.register("kb_passages", frame)
            connection.execute(
                "INSERT INTO knowledge_passages SELECT CAST(passage_id AS BIGINT), video_id, kind, "
                "CAST(seq AS INTEGER), label, text, CAST(start_s AS DOUBLE), located, "
                "CAST(text_key AS BIGINT) FROM kb_passages"
            )
            connection.unregister("kb_passages")
        state = [
            {
                "video_id": video.video_id,
                "analysis_created_at": video.analysis_created_at,
                "segments": len(video.segments),
                "passages": len(passages[video.video_id]),
                "indexed_at": now,
            }
            for video in videos
        ]
        self.ledger.apply(
            connection,
            Write.upsert(
                "indexed_videos",
                ("video_id",),
                state,
                update=("analysis_created_at", "segments", "passages", "indexed_at"),
            ),
        )

    def _unembedded(self) -> bool:
        """Whether some passage lacks an embedding from the configured model."""
        if self.embedder is None:
            return False
        [row] = self.ledger.rows(
            "SELECT EXISTS (SELECT 1 FROM knowledge_passages p WHERE NOT EXISTS (SELECT 1 "
            "FROM passage_embeddings e WHERE e.text_key = p.text_key AND e.model = ?)) AS any",
            [self.embedder.model],
        )
        return bool(row["any"])

    def _embed_backlog(self, embedder: Embedder, report: IndexReport) -> None:
        """Passages indexed while Ollama could not embed (or under another model) get their
        embeddings now."""
        rows = self.ledger.rows(
            "SELECT p.video_id, p.kind, p.seq, p.text FROM knowledge_passages p "
            "WHERE NOT EXISTS (SELECT 1 FROM passage_embeddings e "
            "WHERE e.text_key = p.text_key AND e.model = ?) ORDER BY p.video_id",
            [embedder.model],
        )
        pending = [Passage(r["video_id"], r["kind"], r["seq"], r["text"]) for r in rows]
        for first in range(0, len(pending), 2000):
            if self._embed_and_store(embedder, report, pending[first : first + 2000]) is None:
                return

    def _full_text_stale(self) -> bool:
        """Passages indexed since the last rebuild, or embeddings without vector pages (the
        pages' format changed in migration 9)."""
        [row] = self.ledger.rows(
            "SELECT (SELECT max(built_at) FROM search_index_builds WHERE rebuilt) AS built, "
            "(SELECT max(indexed_at) FROM indexed_videos) AS indexed, "
            "EXISTS (SELECT 1 FROM passage_embeddings) "
            "AND NOT EXISTS (SELECT 1 FROM search_vector_pages) AS pages_missing"
        )
        if row["indexed"] is None:
            return False
        return row["built"] is None or row["built"] < row["indexed"] or row["pages_missing"]

    def rebuild_full_text(self) -> float:
        """Rebuild the BM25 index and the vector pages; seconds. Search sees the old index or
        the new one, never a mix: the new pages are written beside the old ones, a few per
        transaction, and take their place in the one transaction that rebuilds the BM25
        index. (All in one transaction, DuckDB held every page in memory until the commit,
        then more to write them: +340 MB at 205,000 passages.)"""
        started = time.perf_counter()
        model = self.embedder.model if self.embedder else None
        with self.ledger.transaction() as connection:
            # Embeddings no passage uses any more (a re-analysed video's old texts).
            connection.execute(
                "DELETE FROM passage_embeddings e WHERE NOT EXISTS "
                "(SELECT 1 FROM knowledge_passages p WHERE p.text_key = e.text_key)"
            )
        pages = self._write_vector_pages(model) if model else None
        self.ledger.let_go()  # the BM25 rebuild's bound, on top of an emptied buffer pool
        with self.ledger.transaction() as connection, rebuild_memory(connection):
            rebuild_full_text_index(connection)
            if pages:
                replace_with(connection, "search_vector_pages", pages)
            else:
                connection.execute("DELETE FROM search_vector_pages")
        return time.perf_counter() - started

    def _write_vector_pages(self, model: str) -> str:
        """The model's vectors as pages for search (coarse int8 and whole float16) in a new
        table like search_vector_pages, whose name is returned. The embeddings are read PAGE
        rows at a time (by rowid range, which DuckDB scans directly; all at once they would
        be a Python object per embedding, 1.1 GB more at 1.2 million passages), in one
        transaction (rowids move when DuckDB compacts deleted rows); the pages are committed
        PAGES_PER_COMMIT at a time."""
        with self.ledger.transaction() as connection:
            new = create_like(connection, "search_vector_pages")
        with self.ledger.transaction() as embeddings:
            [(last,)] = embeddings.execute("SELECT max(rowid) FROM passage_embeddings").fetchall()
            firsts = range(0, (last if last is not None else -1) + 1, PAGE)
            page = 0
            for chunk in range(0, len(firsts), PAGES_PER_COMMIT):
                with self.ledger.transaction() as connection, rebuild_memory(connection):
                    for first in firsts[chunk : chunk + PAGES_PER_COMMIT]:
                        if found := _vector_page(embeddings, model, first):
                            connection.execute(
                                f"INSERT INTO {new} VALUES (?, ?, ?, ?, ?)",
                                [model, page, *found],
                            )
                            page += 1
        return new

    def _record_state(self, report: IndexReport) -> None:
        """What search needs to know about the index, counted once here, not per query."""
        model = self.embedder.model if self.embedder else None
        with self.ledger.transaction() as connection:
            connection.execute(
                "INSERT INTO search_index_builds SELECT ?, (SELECT count(*) FROM "
                "knowledge_passages), ?, ?, ?, (SELECT count(*) FROM knowledge_passages p "
                "WHERE EXISTS (SELECT 1 FROM passage_embeddings e "
                "WHERE e.text_key = p.text_key AND e.model = ?))",
                [datetime.now(UTC), report.rebuilt, report.rebuild_seconds, model, model],
            )


def _vector_page(
    connection: duckdb.DuckDBPyConnection, model: str, first: int
) -> tuple[bytes, bytes, bytes] | None:
    """One page of the model's vectors, from the PAGE rowids at `first`: their text keys
    (int64), coarse heads (int8, x 127) and whole vectors (float16, unit length)."""
    import numpy as np

    found = connection.execute(
        "SELECT text_key, coarse, embedding FROM passage_embeddings "
        "WHERE model = ? AND rowid >= ? AND rowid < ?",
        [model, first, first + PAGE],
    ).fetchnumpy()
    if not len(found["text_key"]):
        return None
    heads = np.stack(found["coarse"])
    whole = np.stack(found["embedding"])
    whole /= np.maximum(np.linalg.norm(whole, axis=1, keepdims=True), 1e-12)
    return (
        np.asarray(found["text_key"], dtype="<i8").tobytes(),
        np.clip(np.rint(heads * 127), -127, 127).astype(np.int8).tobytes(),
        whole.astype("<f2").tobytes(),
    )
