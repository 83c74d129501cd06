-- The weekly cost report: one row per ISO week, replaced when the week is reported again.
-- `report` holds the whole report (creatorkb/report.py, WeeklyReport) as JSON.

CREATE TABLE weekly_reports (
    week                  VARCHAR PRIMARY KEY
                          CHECK (regexp_full_match(week, '\d{4}-W\d{2}')),  -- e.g. 2026-W47
    starts_at             TIMESTAMPTZ,  -- Monday 00:00 in KB_COST_TIMEZONE
    ends_at               TIMESTAMPTZ,  -- the next Monday 00:00
    generated_at          TIMESTAMPTZ NOT NULL,
    cloud_usd             DECIMAL(20, 12),
    energy_usd            DECIMAL(20, 12),
    cloud_equivalent_usd  DECIMAL(20, 12),
    savings_usd           DECIMAL(20, 12),
    local_share_calls     DOUBLE,
    local_share_tokens    DOUBLE,
    escalation_rate       DOUBLE,
    break_even_month      VARCHAR,      -- YYYY-MM; null: never at this week's rate
    report                JSON NOT NULL
);
