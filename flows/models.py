"""The model backends of a run, configured from blocks (or the environment) and checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prefect import get_run_logger

from blocks import load_options
from creatorkb.batches import BatchApi, Batches
from creatorkb.budget import Budget
from creatorkb.cloud_model import CloudModel, deprecation_notice
from creatorkb.engine import RoutingEngine
from creatorkb.errors import LocalUnavailable
from creatorkb.ledger import Ledger
from creatorkb.local_model import LocalModel
from creatorkb.pricing import check_priced
from creatorkb.routing import RoutingPolicy
from creatorkb.settings import AnthropicOptions, CostOptions, OllamaOptions
from creatorkb.slots import HostSlots, ProcessSlots
from creatorkb.spending import BudgetedCloud
from flows import run_states
from flows.slots import PrefectSlots


@dataclass(frozen=True)
class Configuration:
    """The settings a run's model work follows (blocks, else the environment)."""

    policy: RoutingPolicy
    costs: CostOptions
    ollama: OllamaOptions
    anthropic: AnthropicOptions


def configuration() -> Configuration:
    """The settings, checked: an impossible value or an unpriced model fails the run at once,
    before any work (and whether or not there is work to do)."""
    config = Configuration(
        policy=load_options(RoutingPolicy),
        costs=load_options(CostOptions),
        ollama=load_options(OllamaOptions),
        anthropic=load_options(AnthropicOptions),
    )
    for model in (config.costs.reference_model, config.anthropic.model):
        check_priced(model)
    for model in config.policy.refine_models:
        check_priced(model, "KB_POLICY_REFINE_MODELS")
    return config


@dataclass
class Backends:
    policy: RoutingPolicy
    costs: CostOptions
    ollama: OllamaOptions
    local: LocalModel
    cloud: BudgetedCloud
    warnings: list[str]  # what cannot be done this run, and how to fix it


def connect(config: Configuration, ledger: Ledger, flow_run_id: str | None) -> Backends:
    """Both backends; one that is down or lacks its model is routed around, and said so."""
    logger = get_run_logger()
    warnings = []
    local = LocalModel(config.ollama, local_slots(config.ollama))
    try:
        local.check_model(config.ollama.draft_model)
    except LocalUnavailable as error:
        warnings.append(f"{error}; local work goes to the cloud this run")
    notice = deprecation_notice(config.anthropic.model)
    if notice:
        warnings.append(notice)
    budget = Budget(
        ledger, config.policy.weekly_budget_usd, config.costs.timezone, run_states.liveness()
    )
    cloud_model = CloudModel(config.anthropic) if config.anthropic.api_key else None
    cloud = BudgetedCloud(cloud_model, budget, flow_run_id)
    if cloud.down:
        warnings.append(f"{cloud.down}: cloud work is {config.policy.when_cloud_fails}")
    for warning in warnings:
        logger.warning(warning)
    logger.info(
        "Routing policy %s; local %s (%d slots on %d hosts%s); cloud %s (%d slots)",
        config.policy.version,
        config.ollama.draft_model,
        local.parallel,
        len(local.hosts),
        ", shared through the Prefect server" if config.ollama.slots_shared else "",
        cloud.model or "off",
        cloud.slots,
    )
    return Backends(config.policy, config.costs, config.ollama, local, cloud, warnings)


def local_slots(options: OllamaOptions) -> HostSlots:
    """The Ollama hosts' slots: shared with every process on the same Prefect server when
    scaled out (KB_OLLAMA_HOSTS, or KB_OLLAMA_SHARED_SLOTS), else this process's own count."""
    if options.slots_shared:
        return PrefectSlots(options.host_slots)
    return ProcessSlots(options.host_slots)


def engine(config: Configuration, ledger: Ledger, flow_run_id: str | None) -> RoutingEngine:
    """The routing engine of a run, on both backends."""
    backends = connect(config, ledger, flow_run_id)
    return RoutingEngine(
        ledger=ledger,
        policy=backends.policy,
        costs=backends.costs,
        local=backends.local,
        cloud=backends.cloud,
        draft_model=backends.ollama.draft_model,
        consensus_models=backends.ollama.models,
        flow_run_id=flow_run_id,
        warnings=backends.warnings,
        batching=backends.cloud.cloud is not None,
    )


def batches(config: Configuration, engine: RoutingEngine) -> Batches | None:
    """The run's Message Batches (sending and collecting), when the cloud can be asked."""
    cloud = engine.cloud.cloud
    if not isinstance(cloud, CloudModel) or cloud.down:
        return None
    return Batches(
        engine.ledger,
        BatchApi(cloud),
        config.costs,
        max_wait=timedelta(hours=config.policy.batch_max_wait_hours),
        cache_ttl=config.anthropic.cache_ttl,
        flow_run_id=engine.flow_run_id,
        liveness=run_states.liveness(),
    )
