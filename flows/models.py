"""The model backends of a run, configured from blocks (or the environment) and checked."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import get_run_logger

from blocks import load_options
from creatorkb.analysis import Analyzer
from creatorkb.budget import Budget
from creatorkb.calls import LocalUnavailable
from creatorkb.cloud_model import CloudModel, deprecation_notice
from creatorkb.ledger import Ledger
from creatorkb.local_model import LocalModel
from creatorkb.pricing import check_priced
from creatorkb.prompting import PromptRouter
from creatorkb.routing import RoutingPolicy
from creatorkb.settings import AnthropicOptions, CostOptions, OllamaOptions
from creatorkb.spending import BudgetedCloud


@dataclass
class Backends:
    policy: RoutingPolicy
    costs: CostOptions
    ollama: OllamaOptions
    local: LocalModel
    cloud: BudgetedCloud


def connect(ledger: Ledger, flow_run_id: str | None) -> Backends:
    """Both backends, checked: a misconfiguration (unknown model, no price) fails the run at
    once; a backend that is merely down is routed around."""
    logger = get_run_logger()
    ollama, anthropic = load_options(OllamaOptions), load_options(AnthropicOptions)
    policy, costs = load_options(RoutingPolicy), load_options(CostOptions)
    check_priced(costs.reference_model)
    check_priced(anthropic.model)
    local = LocalModel(ollama)
    try:
        local.check_model(ollama.draft_model)
    except LocalUnavailable as error:
        logger.warning("%s; local work goes to the cloud this run", error)
    notice = deprecation_notice(anthropic.model)
    if notice:
        logger.warning(notice)
    budget = Budget(ledger, policy.weekly_budget_usd, costs.timezone)
    cloud = BudgetedCloud(CloudModel(anthropic) if anthropic.api_key else None, budget, flow_run_id)
    if cloud.down:
        logger.warning("%s: cloud work is %s", cloud.down, policy.when_cloud_fails)
    logger.info(
        "Routing policy %s; local %s (%d slots); cloud %s (%d slots)",
        policy.version,
        ollama.draft_model,
        ollama.parallel,
        cloud.model or "off",
        cloud.slots,
    )
    return Backends(policy, costs, ollama, local, cloud)


def analyzer(ledger: Ledger, flow_run_id: str | None) -> Analyzer:
    backends = connect(ledger, flow_run_id)
    return Analyzer(
        ledger=ledger,
        policy=backends.policy,
        costs=backends.costs,
        local=backends.local,
        draft_model=backends.ollama.draft_model,
        cloud=backends.cloud,
        consensus_models=backends.ollama.models,
        flow_run_id=flow_run_id,
    )


def prompt_router(ledger: Ledger, flow_run_id: str | None) -> PromptRouter:
    backends = connect(ledger, flow_run_id)
    return PromptRouter(
        ledger=ledger,
        policy=backends.policy,
        costs=backends.costs,
        local=backends.local,
        local_model=backends.ollama.draft_model,
        cloud=backends.cloud,
        consensus_models=backends.ollama.models,
        flow_run_id=flow_run_id,
    )
