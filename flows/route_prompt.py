"""Route one prompt: the generation the owner's agents ask for, local first or cloud."""

from __future__ import annotations

from prefect import flow, runtime, task
from prefect.cache_policies import NONE

from creatorkb.ledger import open_ledger
from creatorkb.prompting import DEFAULT_SYSTEM, PromptResult, PromptRouter
from creatorkb.roster import Priority
from creatorkb.routing import Level
from creatorkb.settings import KBSettings
from flows import models


@task(name="answer-prompt", cache_policy=NONE)
def answer_prompt(
    router: PromptRouter,
    prompt: str,
    priority: Priority,
    system: str,
    prefer_local: bool,
    force_cloud: bool,
) -> PromptResult:
    """Local first or cloud, per policy; the decision and every call recorded."""
    return router.answer(
        prompt, priority, system=system, prefer_local=prefer_local, force_cloud=force_cloud
    )


@flow(name="route-prompt")
def route_prompt(
    prompt: str,
    level: Level | None = None,
    priority: Priority | None = None,
    prefer_local: bool = False,
    force_cloud: bool = False,
    system: str = DEFAULT_SYSTEM,
) -> PromptResult:
    """One routed generation. Give an agent `level` (L1 -> cloud, L2/L3 -> local first) or
    a creator `priority`; `prefer_local` starts locally anyway, `force_cloud` goes to Claude."""
    settings = KBSettings()
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    router = models.prompt_router(ledger, runtime.flow_run.id)
    chosen = priority or (level or Level.L2).priority
    return answer_prompt(router, prompt, chosen, system, prefer_local, force_cloud)
