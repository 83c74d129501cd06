-- The knowledge base: timed transcript snippets, searchable passages, their embeddings.

-- llm_calls.purpose gains 'ask' and 'embed'. DuckDB cannot drop a CHECK constraint, so the
-- table is rebuilt: same columns in the same order (cache_write_1h_tokens and detail were
-- added by 0003), every row copied, then swapped in under the old name.
CREATE TABLE llm_calls_0005 (
    call_id               VARCHAR PRIMARY KEY,
    ts                    TIMESTAMPTZ NOT NULL,
    flow_run_id           VARCHAR,
    video_id              VARCHAR,
    decision_id           VARCHAR,
    purpose               VARCHAR NOT NULL
                          CHECK (purpose IN ('draft', 'refine', 'direct', 'consensus',
                                             'synthesis', 'shadow', 'prompt', 'ask', 'embed')),
    provider              VARCHAR NOT NULL CHECK (provider IN ('ollama', 'anthropic')),
    model                 VARCHAR NOT NULL,
    input_tokens          BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    cache_read_tokens     BIGINT NOT NULL,
    cache_write_tokens    BIGINT NOT NULL,
    latency_ms            DOUBLE NOT NULL,
    cost_usd              DECIMAL(20, 12) NOT NULL,
    cloud_equivalent_usd  DECIMAL(20, 12) NOT NULL,
    energy_kwh            DOUBLE NOT NULL,
    energy_usd            DECIMAL(20, 12) NOT NULL,
    status                VARCHAR NOT NULL CHECK (status IN ('ok', 'error')),
    error_type            VARCHAR,
    cache_write_1h_tokens BIGINT DEFAULT 0,
    detail                JSON
);
INSERT INTO llm_calls_0005 (
    call_id, ts, flow_run_id, video_id, decision_id, purpose, provider, model, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, latency_ms, cost_usd,
    cloud_equivalent_usd, energy_kwh, energy_usd, status, error_type, cache_write_1h_tokens,
    detail
)
SELECT
    call_id, ts, flow_run_id, video_id, decision_id, purpose, provider, model, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, latency_ms, cost_usd,
    cloud_equivalent_usd, energy_kwh, energy_usd, status, error_type, cache_write_1h_tokens,
    detail
FROM llm_calls;
DROP TABLE llm_calls;
ALTER TABLE llm_calls_0005 RENAME TO llm_calls;

-- Every snippet of a transcript with its timing, as YouTube gave it (empty ones dropped).
CREATE TABLE transcript_segments (
    video_id    VARCHAR NOT NULL,
    seq         INTEGER NOT NULL,  -- 0, 1, 2, ... in spoken order
    start_s     DOUBLE NOT NULL,
    duration_s  DOUBLE NOT NULL,
    text        VARCHAR NOT NULL,
    PRIMARY KEY (video_id, seq)
);

-- What search looks through: the parts of each analysed video's record and windows of its
-- transcript, each with where in the video it was said. Rebuilt per video by the indexer.
CREATE TABLE knowledge_passages (
    passage_id  BIGINT PRIMARY KEY,   -- sha256 of '<video_id>:<kind>:<seq>', first 8 bytes
    video_id    VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL
                CHECK (kind IN ('summary', 'key_point', 'technique', 'step', 'tool', 'quote',
                                'segment')),
    seq         INTEGER NOT NULL,
    label       VARCHAR,              -- the tool or technique a tool/step passage belongs to
    text        VARCHAR NOT NULL,
    start_s     DOUBLE,               -- where it was said; null when it could not be located
    located     VARCHAR CHECK (located IN ('exact', 'near')),
    text_key    BIGINT NOT NULL       -- the text's sha256, first 8 bytes: its embedding's key
);
-- A search maps its best embeddings back to passages through this (an index lookup, not a
-- scan of every passage).
CREATE INDEX knowledge_passages_text_key ON knowledge_passages (text_key);

-- Embeddings from Ollama, by the text they embed, so an unchanged passage is never embedded
-- twice. `embedding` is the model's vector cut to 256 dimensions (Ollama's `dimensions`);
-- `coarse` its first 64, renormalised: a cheap first pass before the exact ranking.
CREATE TABLE passage_embeddings (
    text_key    BIGINT NOT NULL,
    model       VARCHAR NOT NULL,
    coarse      FLOAT[64] NOT NULL,
    embedding   FLOAT[256] NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (text_key, model)
);
CREATE INDEX passage_embeddings_text_key ON passage_embeddings (text_key);

-- Which analysis and which segments a video's passages were built from: when either changes
-- the video is indexed again.
CREATE TABLE indexed_videos (
    video_id             VARCHAR PRIMARY KEY,
    analysis_created_at  TIMESTAMPTZ NOT NULL,
    segments             INTEGER NOT NULL,
    passages             INTEGER NOT NULL,
    indexed_at           TIMESTAMPTZ NOT NULL
);

-- BM25 postings: the fts index's term occurrences counted per passage, stored in term order,
-- so that a query reads only its own terms' rows (the extension's table is in passage order).
CREATE TABLE search_postings (
    termid      BIGINT NOT NULL,   -- fts_main_knowledge_passages.dict
    passage_id  BIGINT NOT NULL,
    len         BIGINT NOT NULL,   -- the passage's length in terms
    tf          INTEGER NOT NULL   -- how often the term occurs in it
);

-- The coarse vectors of the embedding model, 1,024 to a row, for the first pass of a semantic
-- search (numpy over 7 MB instead of DuckDB over 100,000 arrays): `vectors` int8 (x 127,
-- row-major, 64 per vector), `keys` their text keys (int64 little-endian), in the same order.
CREATE TABLE search_vector_pages (
    model       VARCHAR NOT NULL,
    page        INTEGER NOT NULL,
    keys        BLOB NOT NULL,
    vectors     BLOB NOT NULL,
    PRIMARY KEY (model, page)
);

-- The state of the index after each indexing run that changed it: search reads the latest
-- row instead of counting 100,000 passages on every query.
CREATE TABLE search_index_builds (
    built_at    TIMESTAMPTZ PRIMARY KEY,
    passages    BIGINT NOT NULL,   -- in knowledge_passages
    rebuilt     BOOLEAN NOT NULL,  -- the full-text (BM25) index was rebuilt
    seconds     DOUBLE NOT NULL,   -- how long that rebuild took
    model       VARCHAR,           -- the embedding model
    embedded    BIGINT NOT NULL    -- passages with an embedding from that model
);
