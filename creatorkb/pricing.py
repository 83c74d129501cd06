"""Money: what a call was billed, what it would have cost in the cloud, what its energy cost.

Cloud prices come from the genai-prices table (exact decimals, every token bucket priced
separately); batch calls are half price. Local calls cost $0 on the bill; their real cost
is energy: Ollama's reported duration times the GPU's watts, at the configured $/kWh.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from creatorkb.calls import ModelCall, Usage
from creatorkb.chunking import estimate_tokens
from creatorkb.errors import SettingsError
from creatorkb.settings import CostOptions

MONEY = Decimal("0.000000000001")  # the ledger's DECIMAL(20, 12)
_WATT_NS_PER_KWH = Decimal(1000 * 3_600_000_000_000)


def price(usage: Usage, model: str, *, batch: bool = False) -> Decimal:
    """What Anthropic bills for this usage on `model`, to the ledger's precision."""
    priced = PriceUsage(
        input_tokens=usage.prompt_tokens,  # genai-prices counts cached input within input
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_5m_tokens=usage.cache_write_5m_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens,
    )
    try:
        total = calc_price(priced, model, provider_id="anthropic").total_price
    except LookupError as error:
        raise SettingsError(
            f"no price is known for model {model!r}; use a model genai-prices lists for "
            "Anthropic (for example claude-sonnet-5)"
        ) from error
    return (total / 2 if batch else total).quantize(MONEY)


def check_priced(model: str, setting: str | None = None) -> None:
    """Fail early, naming the model (and the `setting` that names it), if no price is known
    for it."""
    try:
        price(Usage(input_tokens=1), model)
    except SettingsError as error:
        if setting is None:
            raise
        raise SettingsError(f"{setting}: {error}") from None


@dataclass(frozen=True)
class CallCosts:
    cost_usd: Decimal
    cloud_equivalent_usd: Decimal
    energy_kwh: Decimal
    energy_usd: Decimal


def call_costs(call: ModelCall, costs: CostOptions) -> CallCosts:
    """Bill, counterfactual and energy of one call."""
    reference = price(call.usage, costs.reference_model) if call.ok else Decimal(0)
    if call.provider == "anthropic":
        billed = price(call.usage, call.model, batch=call.batch) if call.ok else Decimal(0)
        return CallCosts(billed, reference, Decimal(0), Decimal(0))
    # One division each, so the figures do not depend on the order of rounding.
    watt_ns = Decimal(call.busy_ns) * costs.gpu_watts
    kwh = watt_ns / _WATT_NS_PER_KWH
    energy_usd = (watt_ns * costs.usd_per_kwh / _WATT_NS_PER_KWH).quantize(MONEY)
    return CallCosts(Decimal(0), reference, kwh, energy_usd)


def call_row(
    call: ModelCall,
    costs: CostOptions,
    *,
    flow_run_id: str | None,
    video_id: str | None,
    decision_id: str | None,
) -> dict[str, Any]:
    """The `llm_calls` row for a call: the one place a call becomes money in the ledger."""
    money = call_costs(call, costs)
    return {
        "call_id": call.call_id,
        "ts": call.ts,
        "flow_run_id": flow_run_id,
        "video_id": video_id,
        "decision_id": decision_id,
        "purpose": call.purpose,
        "provider": call.provider,
        "model": call.model,
        "input_tokens": call.usage.input_tokens,
        "output_tokens": call.usage.output_tokens,
        "cache_read_tokens": call.usage.cache_read_tokens,
        "cache_write_tokens": call.usage.cache_write_tokens,
        "cache_write_1h_tokens": call.usage.cache_write_1h_tokens,
        "latency_ms": call.latency_ms,
        "cost_usd": money.cost_usd,
        "cloud_equivalent_usd": money.cloud_equivalent_usd,
        "energy_kwh": float(money.energy_kwh),
        "energy_usd": money.energy_usd,
        "status": "ok" if call.ok else "error",
        "error_type": call.error_type,
        "detail": call.detail,
        "service_tier": service_tier(call),
    }


def service_tier(call: ModelCall) -> str | None:
    """The price a cloud call was billed at: `batch` (half price) or `standard`."""
    if call.provider != "anthropic":
        return None
    return "batch" if call.batch else "standard"


def all_cloud_usd(
    model: str,
    *,
    direct_call: Usage | None = None,
    system: str = "",
    prompt: str = "",
    output_tokens: int = 0,
) -> Decimal:
    """What one direct call on `model` would have cost for a job: the counterfactual that
    savings are measured against (one figure per job, not per call).

    From the job's own direct call when it made one (its cache writes priced as the reads a
    steady all-cloud setup pays); else from kb's token estimate of the direct prompt, with the
    system prompt (and schema) read from the cache, and `output_tokens` of the final answer.
    """
    if direct_call is not None:
        usage = Usage(
            input_tokens=direct_call.input_tokens,
            output_tokens=direct_call.output_tokens,
            cache_read_tokens=direct_call.cache_read_tokens + direct_call.cache_write_tokens,
        )
    else:
        usage = Usage(
            input_tokens=estimate_tokens(prompt),
            output_tokens=output_tokens,
            cache_read_tokens=estimate_tokens(system),
        )
    return price(usage, model)
