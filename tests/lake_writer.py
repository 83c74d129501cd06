"""A writer process on the lake ledger, for tests/test_lake.py (each stands for a machine).

python -m tests.lake_writer budget|claims|rows|segments URL WRITER N

Each attaches the lake, prints "ready" and waits for a line on stdin, so that all of them
start writing at the same moment (a process that starts late would otherwise find the
others done, and nothing would be concurrent).
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
from creatorkb.segments import Segment, store_segments


def main(mode: str, url: str, writer: str, n: int) -> None:
    ledger = Ledger(url)
    ledger.rows("SELECT 1")  # attached: what remains is writing
    print("ready", flush=True)
    sys.stdin.readline()
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
    elif mode == "segments":  # re-time the same videos and its own, as `kb fetch --segments`
        for i in range(n):
            timed = {
                video_id: [Segment(float(seq), 1.0, f"{writer} {seq}") for seq in range(3 + i % 3)]
                for video_id in (f"vidshared{i:04d}", f"vid{writer}{i:04d}")
            }
            store_segments(ledger, timed)
            result.extend(timed)
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
