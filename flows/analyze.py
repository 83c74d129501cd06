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
    TierQueue,
    VideoJob,
    VideoResult,
    analyze_video,
    claim_videos,
)
from creatorkb.batches import Batches, BatchRun, has_open_items, waiting_videos
from creatorkb.engine import RoutingEngine
from creatorkb.ledger import open_ledger
from creatorkb.settings import KBSettings
from flows import models, run_states
from flows.indexing import index_knowledge, learned_in_run
from flows.progress import RunProgress


@task(name="collect-batches", cache_policy=NONE)
def collect_batches(batches: Batches) -> BatchRun:
    """Read the Message Batches that ended: each answer recorded, its reservation settled."""
    return batches.collect()


@task(name="submit-batches", cache_policy=NONE)
def submit_batches(batches: Batches, run: BatchRun) -> BatchRun:
    """Send the work queued for a batch this run (after matching a killed run's sends)."""
    return batches.submit(run)


@task(name="analyze-video", task_run_name="analyze-{job.video_id}", cache_policy=NONE)
def analyze_one(engine: RoutingEngine, job: VideoJob) -> VideoResult:
    """Route -> local draft -> confidence check -> cloud refine -> record, for one video."""
    return analyze_video(engine, job)


@flow(name="analyze-videos", task_runner=ThreadPoolTaskRunner(max_workers=64))
def analyze_videos(
    limit: Annotated[int, Field(ge=1, le=100_000)] = 100,
    video_ids: list[str] | None = None,
    force: bool = False,
) -> AnalysisSummary:
    """Analyse transcribed videos (or `video_ids`; with `force`, even analysed ones again).

    Args:
        limit: Most videos to analyse this run.
        video_ids: Analyse only these videos (ids as on YouTube); empty: any due.
        force: Analyse (and pay for) videos that were analysed before.
    """
    settings = KBSettings()
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    config = models.configuration()
    jobs = claim_videos(
        ledger,
        limit=limit,
        flow_run_id=runtime.flow_run.id,
        video_ids=video_ids,
        force=force,
        liveness=run_states.liveness(),
    )
    if not jobs and not has_open_items(ledger):
        # Nothing to analyse and no batch to collect: no model client is started, and the
        # search index is only brought up to date (a no-op when it is current).
        index_knowledge(ledger, runtime.flow_run.id, return_state=True)
        return _summarise(AnalysisSummary.of([], {}))
    engine = models.engine(config, ledger, runtime.flow_run.id)
    batches = models.batches(config, engine)
    run = collect_batches(batches) if batches else BatchRun()
    if batches and len(jobs) < limit:  # the videos whose batch answers just came in
        jobs += claim_videos(
            ledger,
            limit=limit - len(jobs),
            flow_run_id=runtime.flow_run.id,
            video_ids=video_ids,
            force=force,
        )
    results, errors = _analyze_all(engine, jobs)
    run = submit_batches(batches, run) if batches else run
    summary = AnalysisSummary.of(results, errors, engine.warnings, run, waiting_videos(ledger))
    # What this run finished becomes searchable, and the summary artifact lists what each
    # video taught (creatorkb/search_index.py, digest.py).
    index_knowledge(ledger, runtime.flow_run.id, return_state=True)
    analysed = [result.video_id for result in results if result.status == "analyzed"]
    return _summarise(summary, learned_in_run(ledger, analysed))


def _summarise(summary: AnalysisSummary, learned: str = "") -> AnalysisSummary:
    create_markdown_artifact(f"{summary.to_markdown()}\n\n{learned}", key="analysis-summary")
    return summary


def _analyze_all(
    engine: RoutingEngine, jobs: list[VideoJob]
) -> tuple[list[VideoResult], dict[str, str]]:
    """One task per video, handed out so that every local and cloud slot stays busy (and no
    more are in flight, so that memory stays flat however many videos there are)."""
    progress = RunProgress("Analysing videos", len(jobs))
    work = TierQueue(jobs, engine)
    finished: queue.Queue[PrefectFuture[VideoResult]] = queue.Queue()
    in_flight: dict[PrefectFuture[VideoResult], VideoJob] = {}
    outcomes: list[VideoResult] = []
    errors: dict[str, str] = {}

    def collect_one() -> None:
        future = finished.get()
        future.wait()  # the callback can fire before the run's final state is stored
        job = in_flight.pop(future)
        work.release(job)
        result = future.state.result(raise_on_failure=False)
        if isinstance(result, VideoResult):
            outcomes.append(result)
        else:
            errors[job.video_id] = f"{type(result).__name__}: {result}"
        progress.advance()

    while work:
        job = work.take()
        if job is None:
            collect_one()
            continue
        future = analyze_one.submit(engine, job)
        in_flight[future] = job
        future.add_done_callback(finished.put)
    while in_flight:
        collect_one()
    return outcomes, errors
