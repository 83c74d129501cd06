"""Ledger benchmark: batched inserts of call rows, and the weekly report over a big ledger.

    .venv/bin/python bench/ledger.py [--rows 100000] [--report-rows 1000000]

Targets: 100,000 rows/s inserted; the weekly report over 1,000,000 calls in under 2 s.
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


def bench_report(directory: Path, count: int) -> float:
    ledger = Ledger(directory / "report.duckdb")
    ledger.migrate()
    batch = 200_000
    for offset in range(0, count, batch):
        ledger.write(
            Write.insert_new(
                "llm_calls", ("call_id",), call_rows(min(batch, count - offset), days=56)
            )
        )
    week = IsoWeek.parse("2026-W48")
    started = time.perf_counter()
    report = weekly_report(ledger, week, CostOptions(), Decimal("100"))
    elapsed = time.perf_counter() - started
    print(
        f"report: {report.week} over {count:,} calls in {elapsed:.2f} s "
        f"({report.calls:,} calls in the week, savings ${report.savings_usd:,.2f})"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--report-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        rate = bench_inserts(Path(directory), args.rows)
        seconds = bench_report(Path(directory), args.report_rows)
    print(
        f"targets: inserts >= 100,000 rows/s: {'met' if rate >= 100_000 else 'MISSED'}; "
        f"report < 2 s: {'met' if seconds < 2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
