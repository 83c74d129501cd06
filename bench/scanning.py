"""Scanning benchmark: 500 creators' channel feeds from a loopback YouTube, read through an
HTTPS proxy with a private CA as users do: concurrent against sequential, and the bytes a
re-scan saves with conditional requests.

    .venv/bin/python bench/scanning.py [--creators 500] [--latency 0.1] [--concurrency 32]

Target: the concurrent scan at least 8x faster than the sequential one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the loopback fakes in tests/servers

import yaml  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tests.servers.youtube import FakeYouTube  # noqa: E402

SETTLE_S = 15.0


def channel_id(index: int) -> str:
    return f"UC{index:022d}"


def publish(youtube: FakeYouTube, creators: int) -> list[dict[str, str]]:
    roster = []
    for index in range(creators):
        channel = channel_id(index)
        youtube.add_channel(channel, f"Creator {index}")
        for number in range(3):
            youtube.add_video(channel, title=f"video {number}")
        roster.append({"channel_id": channel, "name": f"Creator {index}"})
    return roster


def scan(concurrency: int) -> tuple[float, int]:
    """The scan flow's own run time (as Prefect records it), and the videos it found.

    Between runs the temporary Prefect server still digests the last run's task states and
    logs; waiting for it first keeps one run's backlog out of the next one's figure."""
    from flows.scan import scan_creators

    time.sleep(SETTLE_S)
    os.environ["KB_YOUTUBE_FEED_CONCURRENCY"] = str(concurrency)
    state = scan_creators(force=True, return_state=True)
    summary = state.result()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    return (run.end_time - run.start_time).total_seconds(), summary.new_videos


def feed_bytes(youtube: FakeYouTube, since: int) -> tuple[int, int]:
    feeds = [r for r in youtube.requests[since:] if r.path == "/feeds/videos.xml"]
    return len(feeds), sum(r.response_bytes for r in feeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creators", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per feed request")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, FakeYouTube() as youtube:
        youtube.feed_latency_s = args.latency
        roster = Path(directory) / "creators.yaml"
        roster.write_text(yaml.safe_dump({"creators": publish(youtube, args.creators)}))
        os.environ.update(youtube.proxy_env())
        os.environ.update(
            {
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "KB_CREATORS": str(roster),
                "KB_YOUTUBE_FEED_RETRY_DELAY_SECONDS": "0.05",
            }
        )
        with prefect_test_harness():
            os.environ["KB_LEDGER"] = str(Path(directory) / "sequential.duckdb")
            sequential, found = scan(1)
            os.environ["KB_LEDGER"] = str(Path(directory) / "concurrent.duckdb")
            first = len(youtube.requests)
            concurrent, _ = scan(args.concurrency)
            feeds, full_bytes = feed_bytes(youtube, first)
            again = len(youtube.requests)
            rescan, _ = scan(args.concurrency)
            refeeds, rescan_bytes = feed_bytes(youtube, again)
    print(f"{args.creators} creators, {found} videos, {args.latency} s per feed, via proxy + CA")
    print(f"sequential scan (1 feed at a time): {sequential:.1f} s")
    print(
        f"concurrent scan ({args.concurrency} at a time): {concurrent:.1f} s "
        f"= {sequential / concurrent:.1f}x faster"
    )
    print(
        f"first scan: {feeds} feeds, {full_bytes:,} bytes; re-scan: {refeeds} conditional "
        f"requests, {rescan_bytes:,} bytes ({100 * (1 - rescan_bytes / full_bytes):.0f}% "
        f"saved), {rescan:.1f} s"
    )
    print(f"target >= 8x: {'met' if sequential / concurrent >= 8 else 'MISSED'}")


if __name__ == "__main__":
    main()
