"""Ledger benchmark: batched inserts of call rows, and the weekly report over a big ledger.

    .venv/bin/python bench/ledger.py [--rows 100000] [--report-rows 1000000 10000000]

The big ledgers are generated inside DuckDB (8 weeks of calls, 80% local, one decision per
two calls), then the report of one week is timed twice: its first run (DuckDB reading the
tables since the write) and a second. Targets: 100,000 rows/s inserted; the weekly report under
0.5 s at 1,000,000 calls and under 2 s at 10,000,000.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from creatorkb.ledger import Ledger, Write
from creatorkb.report import IsoWeek, weekly_report
from creatorkb.settings import CostOptions

START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday


def call_rows(count: int, days: int) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        local = i % 5 != 0  # 80% local, the owner's target
        rows.append(
            {
                "call_id": uuid.uuid4().hex,
                "ts": START + timedelta(seconds=(i * 86_400 * days) // count),
                "flow_run_id": None,
                "video_id": f"video{i % 5_000:06d}",
                "decision_id": None,
                "purpose": "draft" if local else "refine",
                "provider": "ollama" if local else "anthropic",
                "model": "llama3.2" if local else "claude-sonnet-5",
                "input_tokens": 10_000,
                "output_tokens": 4_000,
                "cache_read_tokens": 0 if local else 2_000,
                "cache_write_tokens": 0,
                "cache_write_1h_tokens": 0,
                "latency_ms": 900.0 if local else 2_400.0,
                "cost_usd": Decimal(0) if local else Decimal("0.060400000000"),
                "cloud_equivalent_usd": Decimal("0.060000000000"),
                "energy_kwh": 0.0003 if local else 0.0,
                "energy_usd": Decimal("0.000036000000") if local else Decimal(0),
                "status": "ok",
                "error_type": None,
                "detail": {"num_ctx": 16384} if local else {"stop_reason": "tool_use"},
            }
        )
    return rows


def bench_inserts(directory: Path, count: int) -> float:
    ledger = Ledger(directory / "inserts.duckdb")
    ledger.migrate()
    # Warm up (the first big write imports pandas) so the figure is the steady rate.
    ledger.write(Write.insert_new("llm_calls", ("call_id",), call_rows(1_000, days=7)))
    rows = call_rows(count, days=7)
    started = time.perf_counter()
    ledger.write(Write.insert_new("llm_calls", ("call_id",), rows))
    elapsed = time.perf_counter() - started
    print(f"insert: {count:,} call rows in {elapsed:.2f} s = {count / elapsed:,.0f} rows/s")
    return count / elapsed


_GENERATE_CALLS = """
INSERT INTO llm_calls
SELECT 'c' || i, ?::TIMESTAMPTZ + to_microseconds((i::HUGEINT * ?::HUGEINT // ?)::BIGINT), NULL,
       'video' || lpad((i % 50000)::VARCHAR, 6, '0'), 'd' || (i // 2),
       CASE WHEN i % 5 = 0 THEN 'refine' ELSE 'draft' END,
       CASE WHEN i % 5 = 0 THEN 'anthropic' ELSE 'ollama' END,
       CASE WHEN i % 5 = 0 THEN 'claude-sonnet-5' ELSE 'llama3.2' END,
       10000, 4000, CASE WHEN i % 5 = 0 THEN 2000 ELSE 0 END, 0,
       CASE WHEN i % 5 = 0 THEN 2400.0 ELSE 900.0 END,
       CASE WHEN i % 5 = 0 THEN 0.0604 ELSE 0 END, 0.06,
       CASE WHEN i % 5 = 0 THEN 0 ELSE 0.0003 END,
       CASE WHEN i % 5 = 0 THEN 0 ELSE 0.000036 END,
       'ok', NULL, 0, NULL
FROM range(?) t(i)
"""
_GENERATE_DECISIONS = """
INSERT INTO routing_decisions
SELECT 'd' || j, ?::TIMESTAMPTZ + to_microseconds((2 * j::HUGEINT * ?::HUGEINT // ?)::BIGINT), NULL,
       'video' || lpad(((2 * j) % 50000)::VARCHAR, 6, '0'), 'medium',
       CASE WHEN j % 5 = 0 THEN 'cloud_refine' ELSE 'local_accept' END, 'bench', 0.8, 0.7,
       NULL, 'bench', 0.06, CASE WHEN j % 5 = 0 THEN 0.0604 ELSE 0 END, 0.000036
FROM range(?) t(j)
"""
WEEKS = 8


def bench_report(directory: Path, count: int) -> tuple[float, float]:
    """The weekly report over `count` calls: (first, second) seconds."""
    path = directory / f"report-{count}.duckdb"
    ledger = Ledger(path)
    ledger.migrate()
    span_us = WEEKS * 7 * 86_400 * 1_000_000
    started = time.perf_counter()
    with ledger.transaction() as connection:
        connection.execute(_GENERATE_CALLS, [START, span_us, count, count])
        connection.execute(_GENERATE_DECISIONS, [START, span_us, count, count // 2])
    print(f"generated {count:,} calls and {count // 2:,} decisions in "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    week = IsoWeek.parse("2026-W49")
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        report = weekly_report(ledger, week, CostOptions(), Decimal("100"))
        timings.append(time.perf_counter() - started)
    cold, warm = timings
    print(
        f"report: {report.week} over {count:,} calls in {cold:.2f} s, again {warm:.2f} s "
        f"({report.calls:,} calls and {report.jobs:,} jobs in the week, savings "
        f"${report.savings_usd:,.2f})"
    )
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--report-rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        rate = bench_inserts(Path(directory), args.rows)
        print(f"target: inserts >= 100,000 rows/s: {'met' if rate >= 100_000 else 'MISSED'}")
        for count in args.report_rows:
            cold, warm = bench_report(Path(directory), count)
            goal = 0.5 if count <= 1_000_000 else 2.0
            met = "met" if max(cold, warm) < goal else "MISSED"
            print(f"target: report over {count:,} calls < {goal} s: {met}")


if __name__ == "__main__":
    main()
