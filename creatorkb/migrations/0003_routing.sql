-- Tiered analysis: budget reservations, analysis claims, shadow reviews, and call details.

-- Cloud cost is reserved here before a call is sent, and settled from the real usage after.
CREATE TABLE budget_reservations (
    reservation_id  VARCHAR PRIMARY KEY,
    created_at      TIMESTAMPTZ NOT NULL,
    week_start      TIMESTAMPTZ NOT NULL,
    amount_usd      DECIMAL(20, 12) NOT NULL,
    status          VARCHAR NOT NULL CHECK (status IN ('open', 'settled', 'released')),
    expires_at      TIMESTAMPTZ NOT NULL,
    flow_run_id     VARCHAR,
    holder          VARCHAR,  -- host:pid of the process that reserved it
    call_id         VARCHAR
);

-- A run claims the videos it analyses, so that two runs never pay for the same video.
CREATE TABLE analysis_claims (
    video_id     VARCHAR PRIMARY KEY,
    flow_run_id  VARCHAR,
    holder       VARCHAR,  -- host:pid of the claiming process
    claimed_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

-- A sample of local accepts, also answered in the cloud: was the local answer good enough?
CREATE TABLE shadow_reviews (
    video_id           VARCHAR PRIMARY KEY,
    decision_id        VARCHAR NOT NULL,
    call_id            VARCHAR NOT NULL,
    agreement          DOUBLE NOT NULL,
    local_good_enough  BOOLEAN NOT NULL,
    ts                 TIMESTAMPTZ NOT NULL
);

ALTER TABLE llm_calls ADD COLUMN cache_write_1h_tokens BIGINT DEFAULT 0;
ALTER TABLE llm_calls ADD COLUMN detail JSON;
