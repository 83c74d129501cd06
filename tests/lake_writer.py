"""A writer process on the lake ledger, for tests/test_lake.py (each stands for a machine).

python -m tests.lake_writer budget|claims|rows URL WRITER N
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal

from creatorkb.analysis import claim_videos
from creatorkb.budget import Budget
from creatorkb.errors import BudgetExhausted
from creatorkb.ledger import Ledger, Write


def main(mode: str, url: str, writer: str, n: int) -> None:
    ledger = Ledger(url)
    result: list[str] = []
    if mode == "budget":  # reserve $0.10 at a time from a $1 budget
        budget = Budget(ledger, Decimal(1))
        for _ in range(n):
            try:
                result.append(budget.reserve(Decimal("0.10"), f"run-{writer}").reservation_id)
            except BudgetExhausted:
                result.append("exhausted")
    elif mode == "claims":  # claim a few videos at a time, as a run on another machine does
        for _ in range(n):
            jobs = claim_videos(ledger, limit=3, flow_run_id=f"run-{writer}")
            result.extend(job.video_id for job in jobs)
    else:  # rows: every writer inserts the same keys and its own
        now = datetime.now(UTC)
        for i in range(n):
            rows = [
                {
                    "channel_id": key,
                    "name": writer,
                    "priority": "low",
                    "added_at": now,
                }
                for key in (f"UCshared{i:04d}", f"UC{writer}{i:04d}")
            ]
            ledger.write(Write.insert_new("creators", ("channel_id",), rows))
    print(json.dumps(result), flush=True)
    if mode == "claims":  # a live holder: its claims stand until it is told to end
        sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
