"""Hybrid search over the knowledge base: BM25 full text and cosine similarity, fused.

- Full text: BM25 over `knowledge_passages` from DuckDB's fts extension (its tokenizer,
  stemmer, dictionary and statistics), the same formula as the extension's `match_bm25`
  (k1 = 1.2, b = 0.75; tests check that both rank alike), read from `search_postings`: the
  index's term occurrences kept in term order, so a query reads only its own terms' rows.
- Semantic: the query's embedding against the passages', in numpy over
  `search_vector_pages` (read once per process and index build): first a coarse pass over
  all of them (their first 64 dimensions, int8), then cosine over all 256 dimensions (float16
  copies, within 0.001 of float32) for the best few hundred.
- Fused by reciprocal rank fusion: score = sum over rankings of 1 / (60 + rank).

docs/performance.md has the measurements behind each choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import duckdb
from pydantic import BaseModel

from creatorkb.calls import ModelCall
from creatorkb.confidence import normalize
from creatorkb.embeddings import COARSE_DIMENSIONS, EMBEDDING_DIMENSIONS, Embedder, coarse
from creatorkb.errors import BadQuery, EmbeddingUnavailable, EmptyKnowledgeBase, KBError
from creatorkb.fts import FTS_SCHEMA, VECTOR_PAGES_SCHEMA, load_fts, require_knowledge_schema
from creatorkb.knowledge import require_analyses, resolve_creator
from creatorkb.lake import SEARCH_NOT_ON_LAKE
from creatorkb.ledger import Ledger
from creatorkb.mentions import Names, known_names, videos_naming
from creatorkb.segments import clock, watch_link
from creatorkb.settings import KnowledgeOptions

T = TypeVar("T", int, str)
MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009)
CANDIDATES = 50  # passages each ranking contributes to the fusion
COARSE_CANDIDATES = 200  # embeddings the coarse pass hands to the exact one

_BM25_SQL = f"""
WITH tokens AS (
    SELECT DISTINCT stem(unnest({FTS_SCHEMA}.tokenize(?)), 'porter') AS term
),
query_terms AS (
    SELECT termid, df FROM {FTS_SCHEMA}.dict JOIN tokens USING (term)
)
SELECT p.passage_id,
       sum(log((s.num_docs - q.df + 0.5) / (q.df + 0.5) + 1)
           * (p.tf * (1.2 + 1)) / (p.tf + 1.2 * (1 - 0.75 + 0.75 * (p.len / s.avgdl))))
           AS score
FROM search_postings p JOIN query_terms q USING (termid), {FTS_SCHEMA}.stats s
{{restrict}}
GROUP BY p.passage_id
ORDER BY score DESC, p.passage_id
LIMIT {CANDIDATES}
"""


def check_query(text: str) -> str:
    """The query, stripped; BadQuery for an empty or an overlong one."""
    query = " ".join(text.split())
    if not query:
        raise BadQuery("the search query is empty; give some words, e.g. kb search 'upscaling'")
    if len(query) > MAX_QUERY_CHARS:
        raise BadQuery(
            f"the search query is {len(query):,} characters long; kb searches with at most "
            f"{MAX_QUERY_CHARS}: give the few words that matter"
        )
    if not normalize(query):
        raise BadQuery(f"the search query {query!r} has no words to search for; give some")
    return query


@dataclass(frozen=True)
class Filters:
    """What a search is limited to; None is no limit."""

    creator: str | None = None
    topic: str | None = None
    tool: str | None = None
    since: date | None = None


@dataclass(frozen=True)
class Scope:
    """Filters resolved against the ledger: the videos a search may return (None: all),
    and the state of the index it will rank with."""

    video_ids: list[str] | None
    notes: list[str]
    embedded_passages: int
    passages: int
    semantic_off: str | None = None  # why semantic ranking cannot be used, if it cannot
    build: tuple[str, object] = ("", None)  # the database file and its index build's time


def prepare(
    connection: duckdb.DuckDBPyConnection, filters: Filters, names: Names, model: str
) -> Scope:
    """Check the knowledge base can be searched and resolve the filters, failing with one
    clear message for an empty knowledge base or an unknown creator, topic or tool."""
    analysed = require_analyses(connection)
    # The state of the index in one query: a search is a few milliseconds of work.
    [(indexed, version, path, *build)] = connection.execute(
        "SELECT (SELECT count(*) FROM indexed_videos), (SELECT max(version) FROM "
        "schema_migrations), (SELECT path FROM duckdb_databases() WHERE database_name = "
        "current_database()), b.passages, b.model, b.embedded, b.built_at, EXISTS (SELECT 1 "
        "FROM search_vector_pages v WHERE v.model = b.model) FROM (SELECT 1) LEFT JOIN "
        "(SELECT * FROM search_index_builds ORDER BY built_at DESC LIMIT 1) b ON true"
    ).fetchall()
    passages, built_model, embedded, built_at, paged = build
    if built_model != model:  # the setting changed since: the next run embeds anew
        embedded = 0
    semantic_off = None
    if not embedded:
        semantic_off = (
            f"no passage has an embedding from {model} yet (Ollama could not embed when they "
            "were indexed); the next `kb analyze` adds them"
        )
    elif version < VECTOR_PAGES_SCHEMA:
        semantic_off = (
            f"the ledger is at schema version {version}, before the current vector pages; "
            "`kb init` migrates it and the next `kb analyze` writes them"
        )
    elif not paged:
        semantic_off = (
            "the vector pages were dropped when the ledger was migrated; the next "
            "`kb analyze` writes them"
        )
    if not passages:
        raise EmptyKnowledgeBase(
            f"{analysed} videos are analysed but none is indexed for search yet; run "
            "`kb analyze` (it indexes what is missing)"
        )
    notes = []
    if indexed < analysed:
        notes.append(
            f"{analysed - indexed} analysed videos are not indexed yet; the next "
            "`kb analyze` indexes them"
        )
    chosen: set[str] | None = None

    def narrow(ids: Sequence[str]) -> None:
        nonlocal chosen
        chosen = set(ids) if chosen is None else chosen & set(ids)

    if filters.creator:
        channels = resolve_creator(connection, filters.creator)
        rows = connection.execute(
            "SELECT video_id FROM analyses JOIN videos USING (video_id) "
            "WHERE list_contains(?, channel_id)",
            [channels],
        ).fetchall()
        narrow([row[0] for row in rows])
    for kind, wanted in (("topic", filters.topic), ("tool", filters.tool)):
        if not wanted:
            continue
        found = videos_naming(connection, kind, wanted, names)
        if found is None:
            known = known_names(connection, kind, names)[:10]
            command = "kb tools" if kind == "tool" else "kb topics"
            raise BadQuery(
                f"no {kind} {wanted!r} in the knowledge base; `{command}` lists them"
                + (f" (e.g. {', '.join(known)})" if known else "")
            )
        narrow(found[1])
    if filters.since:
        rows = connection.execute(
            "SELECT video_id FROM analyses JOIN videos USING (video_id) "
            "WHERE coalesce(published_at, created_at) >= ?",
            [filters.since],
        ).fetchall()
        narrow([row[0] for row in rows])
    video_ids = sorted(chosen) if chosen is not None else None
    return Scope(video_ids, notes, embedded or 0, passages, semantic_off, (str(path), built_at))


class Hit(BaseModel):
    """One passage that matched, with its video and the moment it was said."""

    video_id: str
    title: str | None
    creator: str | None
    channel_id: str
    published_at: datetime | None
    kind: str
    label: str | None
    text: str
    start_s: float | None
    located: str | None
    link: str
    score: float
    full_text_rank: int | None
    semantic_rank: int | None
    similarity: float | None = None  # cosine to the query's embedding, when ranked by it

    @property
    def at(self) -> str:
        if self.start_s is None:
            return "unlocated"
        return ("~" if self.located == "near" else "") + clock(self.start_s)


class SearchResult(BaseModel):
    query: str
    hits: list[Hit]
    semantic: bool
    semantic_off: str | None
    notes: list[str]


def full_text_ranking(
    connection: duckdb.DuckDBPyConnection, query: str, video_ids: list[str] | None
) -> list[int]:
    """Passage ids by BM25, best first."""
    restrict, params = "", [query]
    if video_ids is not None:
        restrict = (
            "WHERE p.passage_id IN (SELECT passage_id FROM knowledge_passages "
            "WHERE list_contains(?, video_id))"
        )
        params.append(video_ids)
    rows = connection.execute(_BM25_SQL.format(restrict=restrict), params).fetchall()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class VectorPages:
    """One model's vectors from search_vector_pages, in the same order: their text keys,
    the coarse heads (float32 for numpy's matrix product) and the whole vectors (float16,
    unit length)."""

    keys: Any
    coarse: Any
    whole: Any


# The pages as read last, per database file, model and index build: a process that searches
# more than once (a notebook, an agent) reads and converts them once per build.
_PAGES: dict[tuple[str, object, str], VectorPages] = {}


def vector_pages(
    connection: duckdb.DuckDBPyConnection, model: str, build: tuple[str, object]
) -> VectorPages | None:
    import numpy as np

    version = (*build, model)
    if version in _PAGES:
        return _PAGES[version]
    pages = connection.execute(
        "SELECT keys, vectors, embeddings FROM search_vector_pages WHERE model = ? ORDER BY page",
        [model],
    ).fetchall()
    if not pages:
        return None
    found = VectorPages(
        keys=np.concatenate([np.frombuffer(keys, dtype="<i8") for keys, _, _ in pages]),
        coarse=np.concatenate([np.frombuffer(heads, dtype=np.int8) for _, heads, _ in pages])
        .reshape(-1, COARSE_DIMENSIONS)
        .astype(np.float32),
        whole=np.concatenate([np.frombuffer(whole, dtype="<f2") for _, _, whole in pages]).reshape(
            -1, EMBEDDING_DIMENSIONS
        ),
    )
    _PAGES.clear()  # one build at a time: the memory of one model's vectors
    _PAGES[version] = found
    return found


def shortlist(pages: VectorPages, vector: Sequence[float], allowed: Sequence[int] | None) -> Any:
    """Positions in `pages` of the COARSE_CANDIDATES vectors nearest `vector` by their
    coarse (64-dimension, int8) form: the first pass."""
    import numpy as np

    scores = pages.coarse @ np.asarray(coarse(vector), dtype=np.float32)
    if allowed is not None:
        scores[~np.isin(pages.keys, np.asarray(allowed, dtype=np.int64))] = -np.inf
    count = min(COARSE_CANDIDATES, len(pages.keys))
    best = np.argpartition(-scores, count - 1)[:count]
    return best[np.isfinite(scores[best])]


def semantic_ranking(
    connection: duckdb.DuckDBPyConnection, vector: Sequence[float], model: str, scope: Scope
) -> list[tuple[int, float]]:
    """Passage ids with their cosine similarity to the query's embedding, best first: the
    coarse pass over every vector, then cosine over all 256 dimensions for its shortlist."""
    import numpy as np

    video_ids = scope.video_ids
    pages = vector_pages(connection, model, scope.build)
    if pages is None:
        return []
    allowed = None
    if video_ids is not None:
        allowed = [
            row[0]
            for row in connection.execute(
                "SELECT DISTINCT text_key FROM knowledge_passages WHERE list_contains(?, video_id)",
                [video_ids],
            ).fetchall()
        ]
    best = shortlist(pages, vector, allowed)
    if not len(best):
        return []
    query = np.asarray(vector, dtype=np.float32)
    query /= max(float(np.linalg.norm(query)), 1e-12)
    cosines = pages.whole[best].astype(np.float32) @ query
    kept = np.argsort(-cosines, kind="stable")[:CANDIDATES]
    similarity = {
        int(key): float(value)
        for key, value in zip(pages.keys[best[kept]], cosines[kept], strict=True)
    }
    # Several passages may share a text (and so an embedding): each is ranked by it.
    passages = connection.execute(
        "SELECT passage_id, text_key, video_id FROM knowledge_passages "
        "WHERE text_key = ANY(CAST(? AS BIGINT[]))",
        [list(similarity)],
    ).fetchall()
    allowed_videos = set(video_ids) if video_ids is not None else None
    found = [
        (passage_id, similarity[key])
        for passage_id, key, video_id in passages
        if allowed_videos is None or video_id in allowed_videos
    ]
    found.sort(key=lambda pair: (-pair[1], pair[0]))
    return found[:CANDIDATES]


def fuse(*rankings: Sequence[T]) -> list[tuple[T, float]]:
    """Reciprocal rank fusion of rankings (best first): ids with their fused score."""
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def search(
    connection: duckdb.DuckDBPyConnection,
    query: str,
    scope: Scope,
    *,
    limit: int,
    vector: Sequence[float] | None,
    model: str,
) -> list[Hit]:
    """The best `limit` passages for `query` in `scope` (hybrid when `vector` is given)."""
    if scope.video_ids == []:
        return []
    full_text = full_text_ranking(connection, query, scope.video_ids)
    semantic = [] if vector is None else semantic_ranking(connection, vector, model, scope)
    similarity = dict(semantic)
    fused = fuse(full_text, [item for item, _ in semantic])
    text_rank = {item: rank for rank, item in enumerate(full_text, start=1)}
    meaning_rank = {item: rank for rank, (item, _) in enumerate(semantic, start=1)}
    details = _passages(connection, [item for item, _ in fused[: limit * 3]])
    hits: list[Hit] = []
    seen: set[tuple[str, str]] = set()
    for item, score in fused:
        passage = details.get(item)
        if passage is None:  # indexed for full text, then rebuilt away: skip it
            continue
        same = (passage["video_id"], normalize(passage["text"]))
        if same in seen:  # a tool's quote that is also an evidence quote, say
            continue
        seen.add(same)
        hits.append(
            Hit(
                **passage,
                link=watch_link(passage["video_id"], passage["start_s"]),
                score=score,
                full_text_rank=text_rank.get(item),
                semantic_rank=meaning_rank.get(item),
                similarity=similarity.get(item),
            )
        )
        if len(hits) == limit:
            break
    return hits


def _passages(connection: duckdb.DuckDBPyConnection, ids: list[int]) -> dict[int, dict]:
    """The hits' passages with their videos (index lookups: a few rows of 100,000)."""
    if not ids:
        return {}
    cursor = connection.execute(
        "SELECT passage_id, video_id, kind, label, text, start_s, located "
        "FROM knowledge_passages WHERE passage_id = ANY(CAST(? AS BIGINT[]))",
        [ids],
    )
    names = [column[0] for column in cursor.description]
    passages = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    videos = {
        row[0]: {"title": row[1], "channel_id": row[2], "published_at": row[3], "creator": row[4]}
        for row in connection.execute(
            "SELECT v.video_id, v.title, v.channel_id, v.published_at, c.name FROM videos v "
            "LEFT JOIN creators c ON c.channel_id = v.channel_id "
            "WHERE v.video_id = ANY(CAST(? AS VARCHAR[]))",
            [sorted({passage["video_id"] for passage in passages})],
        ).fetchall()
    }
    return {
        p.pop("passage_id"): {**p, **videos[p["video_id"]]}
        for p in passages
        if p["video_id"] in videos
    }


@dataclass(frozen=True)
class Found:
    """A search's result, and the query's embedding requests (the caller records them)."""

    result: SearchResult
    calls: list[ModelCall]


def find(
    ledger: Ledger,
    query: str,
    filters: Filters,
    knowledge: KnowledgeOptions,
    embedder: Embedder,
    *,
    limit: int,
) -> Found:
    """Search the knowledge base as `kb search` does: the filters resolved, the query
    embedded (when passages have embeddings and Ollama can), both rankings fused. Each step
    holds a short read-only connection, so a search never holds up the pipeline."""
    text = check_query(query)
    if not ledger.keeps_search_index:
        raise KBError(SEARCH_NOT_ON_LAKE)
    with ledger.reading() as connection:
        require_knowledge_schema(connection, ledger.path)
        scope = prepare(connection, filters, Names(knowledge.aliases), knowledge.embed_model)
    vector, semantic_off, calls = None, scope.semantic_off, []
    if semantic_off is None:
        try:
            embedded = embedder.queries([text])
        except EmbeddingUnavailable as error:
            semantic_off, calls = str(error), error.calls
        else:
            vector, calls = embedded.vectors[0], embedded.calls
    with ledger.reading() as connection:
        load_fts(connection)
        hits = search(
            connection, text, scope, limit=limit, vector=vector, model=knowledge.embed_model
        )
    notes = list(scope.notes)
    if vector is not None and scope.embedded_passages < scope.passages:
        notes.append(
            f"semantic ranking covers {scope.embedded_passages} of {scope.passages} passages; "
            "the next `kb analyze` embeds the rest"
        )
    result = SearchResult(
        query=text, hits=hits, semantic=vector is not None, semantic_off=semantic_off, notes=notes
    )
    return Found(result, calls)
