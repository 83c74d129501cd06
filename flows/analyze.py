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

from creatorkb.analysis import (
    AnalysisSummary,
    Analyzer,
    Outcome,
    TierQueue,
    VideoJob,
    claim_videos,
)
from creatorkb.ledger import open_ledger
from creatorkb.settings import KBSettings
from flows import models
from flows.indexing import index_knowledge, learned_in_run
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
    # The knowledge base: what this run finished becomes searchable, and the summary
    # artifact lists what each video taught (creatorkb/search_index.py, digest.py).
    index_knowledge(ledger, runtime.flow_run.id, return_state=True)
    learned = learned_in_run(ledger, [o.video_id for o in outcomes if o.status == "analyzed"])
    create_markdown_artifact(f"{summary.to_markdown()}\n\n{learned}", key="analysis-summary")
    return summary


def _analyze_all(analyzer: Analyzer, jobs: list[VideoJob]) -> tuple[list[Outcome], dict[str, str]]:
    """One task per video, handed out so that every local and cloud slot stays busy (and no
    more are in flight, so that memory stays flat however many videos there are)."""
    progress = RunProgress("Analysing videos", len(jobs))
    work = TierQueue(jobs, analyzer)
    finished: queue.Queue[PrefectFuture[Outcome]] = queue.Queue()
    in_flight: dict[PrefectFuture[Outcome], VideoJob] = {}
    outcomes: list[Outcome] = []
    errors: dict[str, str] = {}

    def collect_one() -> None:
        future = finished.get()
        future.wait()  # the callback can fire before the run's final state is stored
        job = in_flight.pop(future)
        work.release(job)
        result = future.state.result(raise_on_failure=False)
        if isinstance(result, Outcome):
            outcomes.append(result)
        else:
            errors[job.video_id] = f"{type(result).__name__}: {result}"
        progress.advance()

    while work:
        job = work.take()
        if job is None:
            collect_one()
            continue
        future = analyze_video.submit(analyzer, job)
        in_flight[future] = job
        future.add_done_callback(finished.put)
    while in_flight:
        collect_one()
    return outcomes, errors
