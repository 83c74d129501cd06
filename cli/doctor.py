"""`kb doctor`: one line per thing the pipeline needs, saying whether it is there."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from cli.prefect_api import PrefectApi
from creatorkb.budget import Budget
from creatorkb.cloud_model import check_access, deprecation_notice
from creatorkb.errors import (
    CloudUnavailable,
    FeedUnavailable,
    KBError,
    LocalModelMissing,
    LocalUnavailable,
    SettingsError,
)
from creatorkb.feed import read_feed
from creatorkb.ledger import Ledger, known_migrations
from creatorkb.liveness import Liveness
from creatorkb.local_model import LocalModel
from creatorkb.network import ca_bundle, http_client
from creatorkb.pricing import check_priced
from creatorkb.roster import load_roster
from creatorkb.routing import RoutingPolicy
from creatorkb.settings import (
    AnthropicOptions,
    CostOptions,
    KBSettings,
    OllamaOptions,
    YouTubeOptions,
)

# YouTube's own channel: always there, so a failure means the path to YouTube is broken.
PROBE_CHANNEL = "UCBR8-60-B28hp2BmDPdntcQ"


@dataclass(frozen=True)
class Check:
    """One finding."""

    subject: str
    level: Literal["ok", "warn", "fail"]
    detail: str


@dataclass(frozen=True)
class Configuration:
    """Everything the checks look at."""

    settings: KBSettings
    youtube: YouTubeOptions
    ollama: OllamaOptions
    anthropic: AnthropicOptions
    policy: RoutingPolicy
    costs: CostOptions
    liveness: Liveness  # who still holds a budget reservation


def run_checks(console: Console, config: Configuration, prefect: Check) -> int:
    """Print every check; return 1 if any failed."""
    checks = [
        check_ledger(config.settings),
        check_roster(config.settings),
        *check_youtube(config.settings, config.youtube),
        *check_ollama(config.ollama),
        *check_anthropic(config.anthropic, config.costs),
        check_budget(config.settings, config.policy, config.costs, config.liveness),
        prefect,
    ]
    table = Table("", "check", "detail")
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        table.add_row(marks[check.level], check.subject, check.detail)
    console.print(table)
    return 1 if any(check.level == "fail" for check in checks) else 0


def check_ledger(settings: KBSettings) -> Check:
    if not settings.ledger_exists:
        return Check("ledger", "warn", f"{settings.ledger} does not exist yet; run `kb init`")
    ledger = Ledger(settings.ledger, wait_seconds=min(settings.ledger_wait_seconds, 5))
    try:
        version = ledger.schema_version()
    except KBError as error:
        return Check("ledger", "fail", str(error))
    latest = known_migrations()[-1].version
    pending = len(ledger.pending_batches())
    detail = f"{ledger.path}, schema version {version} (this kb: {latest})"
    if pending:
        detail += f"; {pending} spooled batch(es) wait to be written by the next run"
    if version > latest:
        return Check("ledger", "fail", detail + "; upgrade creatorkb")
    if version < latest:
        return Check("ledger", "warn", detail + "; the next run migrates it")
    return Check("ledger", "warn" if pending else "ok", detail)


def check_roster(settings: KBSettings) -> Check:
    try:
        creators = load_roster(settings.creators)
    except KBError as error:
        return Check("roster", "fail", str(error))
    unresolved = sum(creator.channel_id is None for creator in creators)
    counts = ", ".join(
        f"{priority}: {sum(c.priority == priority for c in creators)}"
        for priority in ("critical", "high", "medium", "low")
    )
    detail = f"{settings.creators}: {len(creators)} creators ({counts})"
    if unresolved:
        detail += f"; {unresolved} handle(s) resolved at the next scan"
    return Check("roster", "ok" if creators else "warn", detail)


def check_youtube(settings: KBSettings, options: YouTubeOptions) -> list[Check]:
    proxy = options.proxy_url.get_secret_value() if options.proxy_url else None
    shown_proxy = _without_credentials(proxy or os.environ.get("HTTPS_PROXY", "")) or "none"
    network = Check(
        "network",
        "ok",
        f"proxy {shown_proxy}; CA bundle {ca_bundle() or 'system default'}; "
        f"NO_PROXY {os.environ.get('NO_PROXY', '') or 'unset'}",
    )
    channel = _first_channel(settings) or PROBE_CHANNEL
    started = time.monotonic()
    try:
        with http_client(proxy, timeout=10) as client:
            read = read_feed(client, channel)
    except FeedUnavailable as error:
        return [network, Check("youtube feeds", "fail", str(error))]
    elapsed_ms = (time.monotonic() - started) * 1000
    feed = Check(
        "youtube feeds",
        "ok",
        f"feed of {channel} read in {elapsed_ms:.0f} ms ({len(read.entries)} entries)",
    )
    return [network, feed]


def check_ollama(options: OllamaOptions) -> list[Check]:
    local = LocalModel(options)
    checks = []
    for host in local.hosts:  # each host of KB_OLLAMA_HOSTS (or OLLAMA_HOST)
        try:
            checks.append(Check("ollama", "ok", f"{host.url}, version {host.version()}"))
        except LocalUnavailable as error:
            elsewhere = "its share goes to the other hosts" if len(local.hosts) > 1 else ""
            checks.append(
                Check(
                    "ollama", "warn", f"{error}; {elsewhere or 'local work will go to the cloud'}"
                )
            )
    try:
        installed = local.installed_models()
    except LocalUnavailable:
        return checks
    try:
        local.check_model(options.draft_model)
        checks.append(Check("draft model", "ok", f"{options.draft_model} is installed"))
    except LocalModelMissing as error:
        checks.append(Check("draft model", "fail", str(error)))
    missing = [m for m in options.models if m not in installed and f"{m}:latest" not in installed]
    if missing:
        checks.append(
            Check(
                "consensus models",
                "warn",
                f"not installed: {', '.join(missing)} (listed in KB_OLLAMA_MODELS; `ollama pull` "
                "them or change the list)",
            )
        )
    return checks


def check_anthropic(options: AnthropicOptions, costs: CostOptions) -> list[Check]:
    checks = []
    for role, model in (("cloud model", options.model), ("reference model", costs.reference_model)):
        try:
            check_priced(model)
        except SettingsError as error:
            checks.append(Check(role, "fail", str(error)))
            continue
        notice = deprecation_notice(model)
        checks.append(Check(role, "warn" if notice else "ok", notice or f"{model} (priced)"))
    if options.api_key is None:
        checks.append(Check("anthropic", "warn", "no API key: cloud work falls back or waits"))
        return checks
    try:
        name = check_access(options)
    except CloudUnavailable as error:
        checks.append(Check("anthropic", "fail", str(error)))
        return checks
    checks.append(Check("anthropic", "ok", f"key accepted; {options.model} ({name}) is served"))
    return checks


def check_budget(
    settings: KBSettings, policy: RoutingPolicy, costs: CostOptions, liveness: Liveness
) -> Check:
    if not settings.ledger_exists:
        return Check("budget", "warn", f"${policy.weekly_budget_usd} a week; nothing spent yet")
    budget = Budget(Ledger(settings.ledger, 5), policy.weekly_budget_usd, costs.timezone, liveness)
    try:
        status = budget.status()
    except KBError as error:
        return Check("budget", "fail", str(error))
    detail = (
        f"${status.left_usd:.2f} left of ${status.budget_usd} this week "
        f"(spent ${status.spent_usd:.4f}, reserved ${status.reserved_usd:.4f})"
    )
    return Check("budget", "ok" if status.left_usd > 0 else "warn", detail)


def prefect_check(api: PrefectApi | None, problem: str | None) -> Check:
    """Which Prefect API flow commands would use; FAIL when the configured one is down."""
    if api is None:
        return Check("prefect", "fail", problem or "the Prefect API is not answering")
    detail = api.describe().removeprefix("Prefect: ")
    return Check("prefect", "ok", detail)


def _first_channel(settings: KBSettings) -> str | None:
    try:
        creators = load_roster(settings.creators)
    except KBError:
        return None
    return next((creator.channel_id for creator in creators if creator.channel_id), None)


def _without_credentials(url: str) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
