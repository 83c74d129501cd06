-- What analysing costs: every model call, every routing decision, every result.
-- Money is DECIMAL(20, 12): exact to a millionth of a microdollar.

CREATE TABLE analyses (
    video_id        VARCHAR PRIMARY KEY,
    decision_id     VARCHAR,
    final_tier      VARCHAR NOT NULL CHECK (final_tier IN ('local', 'cloud', 'consensus')),
    model           VARCHAR NOT NULL,
    confidence      DOUBLE,
    result          JSON NOT NULL,
    flagged         BOOLEAN NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE llm_calls (
    call_id               VARCHAR PRIMARY KEY,
    ts                    TIMESTAMPTZ NOT NULL,
    flow_run_id           VARCHAR,
    video_id              VARCHAR,
    decision_id           VARCHAR,
    purpose               VARCHAR NOT NULL
                          CHECK (purpose IN ('draft', 'refine', 'direct', 'consensus',
                                             'synthesis', 'shadow', 'prompt')),
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
    error_type            VARCHAR
);

CREATE TABLE routing_decisions (
    decision_id     VARCHAR PRIMARY KEY,
    ts              TIMESTAMPTZ NOT NULL,
    flow_run_id     VARCHAR,
    video_id        VARCHAR,
    priority        VARCHAR,
    route           VARCHAR NOT NULL
                    CHECK (route IN ('local_accept', 'cloud_refine', 'cloud_direct',
                                     'fallback_cloud', 'fallback_local', 'consensus',
                                     'deferred')),
    reason          VARCHAR NOT NULL,
    confidence      DOUBLE,
    threshold       DOUBLE,
    components      JSON,
    policy_version  VARCHAR NOT NULL
);
