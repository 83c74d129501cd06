"""Consensus: several local models answer one prompt or video; a synthesis and an agreement."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, runtime, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from creatorkb.analysis import VideoJob, analyze_video, claim_videos
from creatorkb.engine import RoutingEngine
from creatorkb.errors import KBError
from creatorkb.ledger import open_ledger
from creatorkb.prompting import DEFAULT_SYSTEM, prompt_consensus
from creatorkb.routing import Start
from creatorkb.settings import KBSettings
from flows import models as backends
from flows import run_states


class ConsensusResult(BaseModel):
    """Where the consensus ended, how much the models agreed, and the answer."""

    route: str
    agreement: float | None
    answer: str
    decision_id: str | None
    cost_usd: str
    reason: str = ""


@task(name="consensus-on-video", task_run_name="consensus-{job.video_id}", cache_policy=NONE)
def consensus_on_video(
    engine: RoutingEngine, job: VideoJob, models: list[str] | None
) -> ConsensusResult:
    """The video analysed by every consensus model, then synthesised."""
    outcome = analyze_video(engine, job, Start.consensus, models)
    stored = engine.ledger.rows(
        "SELECT result ->> 'summary' AS summary FROM analyses WHERE video_id = ?", [job.video_id]
    )
    return ConsensusResult(
        route=str(outcome.route),
        agreement=outcome.confidence,
        answer=stored[0]["summary"] if stored else outcome.reason,
        decision_id=outcome.decision_id,
        cost_usd=str(outcome.cloud_usd),
        reason=outcome.reason,
    )


@task(name="consensus-on-prompt", cache_policy=NONE)
def consensus_on_prompt(
    engine: RoutingEngine, prompt: str, models: list[str] | None, system: str
) -> ConsensusResult:
    """The prompt answered by every consensus model, then synthesised."""
    result = prompt_consensus(engine, prompt, models, system=system)
    return ConsensusResult(
        route=str(result.route),
        agreement=result.agreement,
        answer=result.text,
        decision_id=result.decision_id,
        cost_usd=str(result.cost_usd),
    )


@flow(name="consensus")
def consensus(
    prompt: Annotated[str | None, Field(max_length=100_000)] = None,
    video_id: str | None = None,
    models: list[str] | None = None,
    system: str = DEFAULT_SYSTEM,
) -> ConsensusResult:
    """Ask several local models (default: the Ollama block's list) about one `prompt` or one
    transcribed `video_id`; the agreement is recorded and low agreement goes to the cloud.

    Args:
        prompt: A prompt for the models.
        video_id: Or a transcribed video's id, to analyse it.
        models: Local models to ask (default: the ollama-server block's list).
        system: System prompt for a prompt.
    """
    if (prompt is None) == (video_id is None):
        raise KBError("give exactly one of prompt or video_id")
    settings = KBSettings()
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    run_id = runtime.flow_run.id
    engine = backends.engine(backends.configuration(), ledger, run_id)
    if prompt is not None:
        return consensus_on_prompt(engine, prompt, models, system)
    jobs = claim_videos(
        ledger,
        limit=1,
        flow_run_id=run_id,
        video_ids=[video_id],
        force=True,
        liveness=run_states.liveness(),
    )
    if not jobs:
        raise KBError(
            f"video {video_id} has no transcript yet, or another run is analysing it; "
            "run `kb fetch` first"
        )
    return consensus_on_video(engine, jobs[0], models)
