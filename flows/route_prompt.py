"""Route one prompt: the generation the owner's agents ask for, local first or cloud."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from creatorkb import prompting
from creatorkb.answers import Answer
from creatorkb.engine import RoutingEngine
from creatorkb.ledger import open_ledger
from creatorkb.prompting import DEFAULT_SYSTEM
from creatorkb.roster import Priority
from creatorkb.routing import Level
from creatorkb.settings import KBSettings
from flows import models


@task(name="answer-prompt", cache_policy=NONE)
def answer_prompt(
    engine: RoutingEngine,
    prompt: str,
    priority: Priority,
    system: str,
    prefer_local: bool,
    force_cloud: bool,
) -> Answer:
    """Local first or cloud, per policy; the decision and every call recorded."""
    return prompting.answer_prompt(
        engine, prompt, priority, system=system, prefer_local=prefer_local, force_cloud=force_cloud
    )


@flow(name="route-prompt", persist_result=True, result_serializer="json")
def route_prompt(
    prompt: Annotated[str, Field(min_length=1, max_length=100_000)],
    level: Level | None = None,
    priority: Priority | None = None,
    prefer_local: bool = False,
    force_cloud: bool = False,
    system: str = DEFAULT_SYSTEM,
) -> Answer:
    """One routed generation. Give an agent `level` (L1 -> cloud, L2/L3 -> local first) or
    a creator `priority`; `prefer_local` starts locally anyway, `force_cloud` goes to Claude.

    Args:
        prompt: The prompt.
        level: Agent level: L1 to the cloud, L2/L3 local first.
        priority: Or a creator priority, routed like a video.
        prefer_local: Start locally whatever the level.
        force_cloud: Send it to Claude.
        system: The system prompt.
    """
    settings = KBSettings()
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    engine = models.engine(models.configuration(), ledger, runtime.flow_run.id)
    chosen = priority or (level or Level.L2).priority
    answer = answer_prompt(engine, prompt, chosen, system, prefer_local, force_cloud)
    create_markdown_artifact(answer.to_markdown(), key="prompt-answer")
    return answer
