-- Answers to routed prompts and to questions asked of the knowledge base, so that whoever
-- started the run (a person, an agent through the Prefect API, a notebook) can read them back.
-- `citations` is a JSON list of {n, video_id, title, start_s, link, quote}; empty for prompts.

CREATE TABLE answers (
    answer_id    VARCHAR PRIMARY KEY,
    ts           TIMESTAMPTZ NOT NULL,
    kind         VARCHAR NOT NULL CHECK (kind IN ('prompt', 'ask')),
    question     VARCHAR NOT NULL,
    decision_id  VARCHAR,          -- the routing decision; null when no model was asked
    flow_run_id  VARCHAR,
    text         VARCHAR NOT NULL,
    citations    JSON NOT NULL
);
CREATE INDEX answers_ts ON answers (ts);
