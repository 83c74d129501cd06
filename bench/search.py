"""Search benchmark: index build rate, and hybrid search latency over 100,000 passages.

    .venv/bin/python bench/search.py [--videos 2500] [--queries 200]

2,500 synthetic analysed videos of 40 passages each (17 from the record, 23 transcript
windows of ~60 words) are indexed by the real indexer (passages, embeddings, the BM25
rebuild), with vectors made in-process (a model's own time depends on its GPU, not on kb;
see the call timings in llm_calls for that). Then hybrid searches (BM25 + cosine, fused)
run on one read-only connection, as `kb search` runs them. Goal: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from creatorkb.calls import ModelCall, Usage
from creatorkb.embeddings import EMBEDDING_DIMENSIONS, Embedded, Embedder
from creatorkb.fts import load_fts
from creatorkb.ledger import Ledger, Write
from creatorkb.mentions import Names
from creatorkb.search import Filters, full_text_ranking, prepare, search, semantic_ranking
from creatorkb.search_index import KnowledgeIndexer
from creatorkb.segments import Segment, segment_rows
from creatorkb.settings import CostOptions, KnowledgeOptions, OllamaOptions

START = datetime(2026, 9, 7, tzinfo=UTC)
MODEL = "nomic-embed-text"
WORDS_PER_SNIPPET = 12


class InProcessEmbedder(Embedder):
    """Deterministic unit vectors, no HTTP: measures kb's side of indexing."""

    def __init__(self) -> None:
        super().__init__(OllamaOptions(), KnowledgeOptions(embed_model=MODEL))
        self.rng = np.random.default_rng(7)

    def check(self) -> None:
        return None

    def _embed(self, texts):  # type: ignore[no-untyped-def]
        vectors = self.rng.standard_normal((len(texts), EMBEDDING_DIMENSIONS))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        call = ModelCall("ollama", MODEL, "embed", Usage(input_tokens=len(texts) * 40), 1.0)
        return Embedded(vectors.tolist(), [call])


def vocabulary(rng: random.Random, size: int = 20_000) -> tuple[list[str], list[float]]:
    words = {
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))) for _ in range(size)
    }
    ordered = sorted(words)
    rng.shuffle(ordered)
    weights = [1 / rank for rank in range(1, len(ordered) + 1)]  # Zipf, like speech
    return ordered, weights


def seed(ledger: Ledger, videos: int, rng: random.Random) -> list[str]:
    words, weights = vocabulary(rng)

    def sentence(n: int) -> str:
        return " ".join(rng.choices(words, weights, k=n)).capitalize() + "."

    now = datetime.now(UTC)
    channels = [f"UCbench{index:017d}" for index in range(50)]
    creators = [
        {"channel_id": c, "name": f"Creator {i}", "priority": "medium", "added_at": now}
        for i, c in enumerate(channels)
    ]
    ledger.write(Write.insert_new("creators", ("channel_id",), creators))
    for first in range(0, videos, 250):
        rows, segments, analyses = [], [], []
        for index in range(first, min(first + 250, videos)):
            video_id = f"vid{index:08d}"
            said = [sentence(WORDS_PER_SNIPPET) for _ in range(117)]  # ~1,400 words
            timed = [Segment(i * 4.8, 4.8, text) for i, text in enumerate(said)]
            rows.append(
                {
                    "video_id": video_id,
                    "channel_id": channels[index % len(channels)],
                    "title": sentence(5),
                    "published_at": START + timedelta(hours=index),
                    "status": "analyzed",
                    "source": "feed",
                    "fetch_attempts": 1,
                    "discovered_at": now,
                    "updated_at": now,
                }
            )
            segments += segment_rows(video_id, timed)
            quotes = [" ".join(text.split()[2:9]) for text in rng.sample(said, 7)]
            record = {
                "summary": " ".join(sentence(14) for _ in range(3)),
                "key_points": [sentence(14) for _ in range(5)],
                "techniques": [{"name": sentence(3), "steps": [sentence(10) for _ in range(3)]}],
                "tools": [{"name": rng.choice(words[:300]), "quote": q} for q in quotes[:3]],
                "topics": rng.sample(words[:100], 2),
                "relevance": rng.random(),
                "evidence_quotes": quotes[3:],
                "confidence": 0.9,
            }
            analyses.append(
                {
                    "video_id": video_id,
                    "decision_id": None,
                    "final_tier": "local",
                    "model": "llama3.2",
                    "confidence": 0.9,
                    "result": record,
                    "flagged": False,
                    "prompt_version": "insight-v1",
                    "created_at": now,
                }
            )
        ledger.write(
            Write.insert_new("videos", ("video_id",), rows),
            Write.insert_new("transcript_segments", ("video_id", "seq"), segments),
            Write.insert_new("analyses", ("video_id",), analyses),
        )
    return words[:3000]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=2_500)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--keep", type=Path, help="Build the ledger here, or reuse it if it is there already."
    )
    args = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as scratch:
        path = args.keep or Path(scratch) / "bench.duckdb"
        reuse = path.exists()
        ledger = Ledger(path, wait_seconds=60)
        ledger.migrate()
        if reuse:
            words, _ = vocabulary(rng)
            common = words[:3000]
            KnowledgeIndexer(ledger, InProcessEmbedder(), CostOptions()).run()  # if migrated
        else:
            common = seed(ledger, args.videos, rng)
            started = time.perf_counter()
            report = KnowledgeIndexer(ledger, InProcessEmbedder(), CostOptions()).run()
            seconds = time.perf_counter() - started
            print(
                f"index build: {report.videos:,} videos, {report.passages:,} passages in "
                f"{seconds:.1f} s = {report.passages / seconds:,.0f} passages/s "
                f"(of which the BM25 rebuild {report.rebuild_seconds:.1f} s)"
            )
            indexer = KnowledgeIndexer(ledger, InProcessEmbedder(), CostOptions())
            rebuild = indexer.rebuild_full_text()
            print(
                f"rebuild alone (BM25 index, postings, coarse vector pages) over "
                f"{report.passages:,} passages: {rebuild:.1f} s"
            )

        opened = time.perf_counter()
        with ledger.reading() as connection:
            load_fts(connection)
            print(f"read-only open + fts load: {(time.perf_counter() - opened) * 1000:.0f} ms")
            query = " ".join(rng.sample(common, 2))
            first = time.perf_counter()
            scope = prepare(connection, Filters(), Names({}), MODEL)
            vector = InProcessEmbedder().queries([query]).vectors[0]
            search(connection, query, scope, limit=10, vector=vector, model=MODEL)
            print(
                "first hybrid search in a process (as `kb search` runs one), reading the "
                f"coarse vectors: {(time.perf_counter() - first) * 1000:.0f} ms"
            )
            names = Names(KnowledgeOptions().aliases)
            embedder = InProcessEmbedder()
            totals, texts, meanings, scopes = [], [], [], []
            for number in range(args.queries + 10):
                query = " ".join(rng.sample(common, rng.randint(2, 3)))
                vector = embedder.queries([query]).vectors[0]
                t0 = time.perf_counter()
                scope = prepare(connection, Filters(), names, MODEL)
                t1 = time.perf_counter()
                hits = search(connection, query, scope, limit=10, vector=vector, model=MODEL)
                t2 = time.perf_counter()
                full_text_ranking(connection, query, None)
                t3 = time.perf_counter()
                meant = semantic_ranking(connection, vector, MODEL, scope)
                t4 = time.perf_counter()
                assert len(meant) == 50, len(meant)
                if number >= 10:  # the first few warm DuckDB's caches
                    totals.append(t2 - t0)
                    scopes.append(t1 - t0)
                    texts.append(t3 - t2)
                    meanings.append(t4 - t3)
                assert hits, query
            for name, samples in (
                ("hybrid search (prepare + both rankings + fusion + hits)", totals),
                ("  of which prepare (state of the index, filters)", scopes),
                ("  BM25 ranking alone", texts),
                ("  semantic ranking alone (64-d pass, then 256-d cosine)", meanings),
            ):
                p50, p95 = percentiles(samples)
                print(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({len(samples)} queries)")
            with_filter = []
            for _ in range(50):
                query = " ".join(rng.sample(common, 2))
                vector = embedder.queries([query]).vectors[0]
                t0 = time.perf_counter()
                scope = prepare(connection, Filters(creator="Creator 7"), names, MODEL)
                search(connection, query, scope, limit=10, vector=vector, model=MODEL)
                with_filter.append(time.perf_counter() - t0)
            p50, p95 = percentiles(with_filter)
            print(f"hybrid search with --creator: p50 {p50:.1f} ms, p95 {p95:.1f} ms (50 queries)")


if __name__ == "__main__":
    main()
