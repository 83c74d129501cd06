"""Analyse videos: local draft, confidence check, cloud refine, every cent in the ledger."""

from __future__ import annotations

import queue
from typing import Annotated

from prefect import flow, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from creatorkb.analysis import AnalysisSummary, Analyzer, Outcome, VideoJob, claim_videos
from creatorkb.ledger import open_ledger
from creatorkb.settings import KBSettings
from flows import models
from flows.progress import RunProgress


@task(name="analyze-video", cache_policy=NONE)
def analyze_video(analyzer: Analyzer, job: VideoJob) -> Outcome:
    """Route -> local draft -> confidence check -> cloud refine -> record, for one video."""
    return analyzer.analyze(job)


@flow(name="analyze-videos", task_runner=ThreadPoolTaskRunner(max_workers=64))
def analyze_videos(
    limit: Annotated[int, Field(ge=1, le=100_000)] = 100,
    video_ids: list[str] | None = None,
    force: bool = False,
) -> AnalysisSummary:
    """Analyse transcribed videos (or `video_ids`; with `force`, even analysed ones again)."""
    settings = KBSettings()
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    analyzer = models.analyzer(ledger, runtime.flow_run.id)
    jobs = claim_videos(
        ledger, limit=limit, flow_run_id=runtime.flow_run.id, video_ids=video_ids, force=force
    )
    outcomes, errors = _analyze_all(analyzer, jobs)
    summary = AnalysisSummary.of(outcomes, errors)
    create_markdown_artifact(summary.to_markdown(), key="analysis-summary")
    return summary


def _analyze_all(analyzer: Analyzer, jobs: list[VideoJob]) -> tuple[list[Outcome], dict[str, str]]:
    """One task per video, with enough in flight to keep every local and cloud slot busy
    (and no more, so that memory stays flat however many videos there are)."""
    progress = RunProgress("Analysing videos", len(jobs))
    window = max(2 * (analyzer.local_slots + analyzer.cloud_slots), 2)
    finished: queue.Queue[PrefectFuture[Outcome]] = queue.Queue()
    names: dict[PrefectFuture[Outcome], str] = {}
    outcomes: list[Outcome] = []
    errors: dict[str, str] = {}

    def collect_one() -> None:
        future = finished.get()
        future.wait()  # the callback can fire before the run's final state is stored
        result = future.state.result(raise_on_failure=False)
        if isinstance(result, Outcome):
            outcomes.append(result)
        else:
            errors[names[future]] = f"{type(result).__name__}: {result}"
        del names[future]
        progress.advance()

    for job in jobs:
        while len(names) >= window:
            collect_one()
        future = analyze_video.submit(analyzer, job)
        names[future] = job.video_id
        future.add_done_callback(finished.put)
    while names:
        collect_one()
    return outcomes, errors
