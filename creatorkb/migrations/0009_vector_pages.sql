-- Each page of search_vector_pages also keeps its vectors whole, as float16 (`embeddings`,
-- 256 per vector, unit length, row-major; within 0.001 of float32 in cosine), so the exact
-- pass of a semantic search ranks its shortlist in memory instead of reading 256-float
-- arrays back from DuckDB for every query (docs/performance.md "Search"). The pages are
-- derived data: the old ones are dropped here and the next indexing run writes them again;
-- until then search ranks by full text and says why.
DROP TABLE search_vector_pages;
CREATE TABLE search_vector_pages (
    model       VARCHAR NOT NULL,
    page        INTEGER NOT NULL,
    keys        BLOB NOT NULL,     -- text keys, int64 little-endian
    vectors     BLOB NOT NULL,     -- the coarse heads: int8 (x 127), 64 per vector
    embeddings  BLOB NOT NULL,     -- the whole vectors: float16, 256 per vector
    PRIMARY KEY (model, page)
);
