-- Message Batches: cloud work that may wait is sent as an Anthropic Message Batch (half price).
--
-- Every item is on record before it is sent: its `custom_id`, the request, and what the job
-- needs to go on once the answer is back (`context`). An item moves
--   queued --(submit started)--> sending --(batch id recorded)--> submitted
--     --(its result read)--> answered | failed --(its video finished)--> done
-- A run killed while `sending` left an item whose batch may exist at Anthropic without kb
-- knowing its id: a later run lists the batches created since and matches their results to
-- the item's custom_id before it sends the item again.
CREATE TABLE message_batches (
    batch_id           VARCHAR PRIMARY KEY,
    submitted_at       TIMESTAMPTZ NOT NULL,
    flow_run_id        VARCHAR,
    items              INTEGER NOT NULL,
    processing_status  VARCHAR NOT NULL,  -- as Anthropic last said: in_progress, canceling, ended
    checked_at         TIMESTAMPTZ,
    ended_at           TIMESTAMPTZ,
    cancel_requested_at TIMESTAMPTZ,
    result_reads       INTEGER NOT NULL DEFAULT 0,  -- reads of its results file that left items unread
    problem            VARCHAR,  -- the last thing that went wrong with it, in words
    collected_at       TIMESTAMPTZ  -- every item's result read (or given up on)
);

CREATE TABLE batch_items (
    custom_id          VARCHAR PRIMARY KEY,
    video_id           VARCHAR NOT NULL,
    purpose            VARCHAR NOT NULL,
    model              VARCHAR NOT NULL,
    status             VARCHAR NOT NULL
                       CHECK (status IN ('queued', 'sending', 'submitted', 'answered',
                                         'failed', 'done')),
    batch_id           VARCHAR,
    reservation_id     VARCHAR,
    flow_run_id        VARCHAR,
    holder             VARCHAR,  -- host:pid of the process that queued or is sending it
    queued_at          TIMESTAMPTZ NOT NULL,
    send_started_at    TIMESTAMPTZ,
    submitted_at       TIMESTAMPTZ,
    answered_at        TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    request            JSON NOT NULL,  -- the Messages request's params, as sent
    context            JSON NOT NULL,  -- what the job needs to go on with the answer
    result_type        VARCHAR,  -- succeeded, errored, canceled, expired (or kb's: lost)
    result_text        VARCHAR,  -- the answer of a succeeded item
    call_id            VARCHAR,  -- its llm_calls row
    call               JSON,  -- that call as the job's costs need it
    problem            VARCHAR
);

-- Which price a cloud call was billed at: 'standard', or 'batch' (half price).
ALTER TABLE llm_calls ADD COLUMN service_tier VARCHAR;
UPDATE llm_calls SET service_tier = 'standard' WHERE provider = 'anthropic';
