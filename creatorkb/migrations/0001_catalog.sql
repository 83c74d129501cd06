-- The catalog: creators, their videos and transcripts, and the history of feed scans.

CREATE TABLE creators (
    channel_id          VARCHAR PRIMARY KEY,
    name                VARCHAR NOT NULL,
    handle              VARCHAR,
    priority            VARCHAR NOT NULL
                        CHECK (priority IN ('critical', 'high', 'medium', 'low')),
    scan_interval_days  DOUBLE,
    last_scanned_at     TIMESTAMPTZ,
    feed_etag           VARCHAR,
    feed_last_modified  VARCHAR,
    added_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE videos (
    video_id        VARCHAR PRIMARY KEY,
    channel_id      VARCHAR NOT NULL,
    title           VARCHAR,
    description     VARCHAR,
    published_at    TIMESTAMPTZ,
    status          VARCHAR NOT NULL
                    CHECK (status IN ('discovered', 'transcribed', 'no_transcript',
                                      'blocked', 'analyzed', 'failed')),
    status_reason   VARCHAR,
    source          VARCHAR NOT NULL CHECK (source IN ('feed', 'data_api')),
    fetch_attempts  INTEGER NOT NULL,
    next_fetch_at   TIMESTAMPTZ,
    discovered_at   TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE transcripts (
    video_id       VARCHAR PRIMARY KEY,
    language       VARCHAR NOT NULL,  -- language code, e.g. 'en'
    language_name  VARCHAR NOT NULL,  -- as YouTube names it, e.g. 'English (auto-generated)'
    is_generated   BOOLEAN NOT NULL,
    text           VARCHAR NOT NULL,
    fetched_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE scan_events (
    event_id      VARCHAR PRIMARY KEY,
    ts            TIMESTAMPTZ NOT NULL,
    flow_run_id   VARCHAR,
    channel_id    VARCHAR NOT NULL,
    outcome       VARCHAR NOT NULL CHECK (outcome IN ('ok', 'not_modified', 'failed')),
    http_status   INTEGER,
    entries       INTEGER NOT NULL,
    new_videos    INTEGER NOT NULL,
    possible_gap  BOOLEAN NOT NULL,
    gap_filled    INTEGER NOT NULL,
    response_bytes BIGINT NOT NULL,
    detail        VARCHAR
);
