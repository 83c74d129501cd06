"""Prices from genai-prices, energy from Ollama's durations, counterfactuals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from creatorkb.calls import ModelCall, ModelRequest, Usage
from creatorkb.errors import SettingsError
from creatorkb.gpu_time import BusyClock
from creatorkb.local_model import LocalModel
from creatorkb.pricing import call_costs, call_row, price
from creatorkb.settings import CostOptions, OllamaOptions
from tests.servers.ollama import FakeOllama

MTOK = Decimal(1_000_000)


def test_the_owners_seed_figure() -> None:
    # Sonnet 4.5 at $3 / $15 per million: 10k input + 4k output tokens is $0.09.
    assert price(Usage(input_tokens=10_000, output_tokens=4_000), "claude-sonnet-4-5") == Decimal(
        "0.09"
    )


@pytest.mark.parametrize(
    # $ per million: input, output, cache read, cache write 5m, cache write 1h (list prices)
    ("model", "rates"),
    [
        ("claude-sonnet-5", ("2", "10", "0.2", "2.5", "4")),
        ("claude-sonnet-5-5", ("2", "10", "0.1", "2.5", "4")),  # read is not 0.1x input here
        ("claude-haiku-4-5", ("1", "5", "0.1", "1.25", "2")),
    ],
)
def test_every_token_bucket_has_its_own_price(model: str, rates: tuple[str, ...]) -> None:
    usage = Usage(
        input_tokens=1_234,
        output_tokens=567,
        cache_read_tokens=8_900,
        cache_write_5m_tokens=2_048,
        cache_write_1h_tokens=1_024,
    )
    uncached, out, read, write_5m, write_1h = (Decimal(r) / MTOK for r in rates)
    by_hand = 1_234 * uncached + 567 * out + 8_900 * read + 2_048 * write_5m + 1_024 * write_1h
    assert price(usage, model) == by_hand
    assert price(usage, model, batch=True) == by_hand / 2


def test_unknown_models_are_named() -> None:
    with pytest.raises(SettingsError, match="no price is known for model 'claude-imaginary'"):
        price(Usage(input_tokens=1), "claude-imaginary")


def test_local_calls_cost_energy_and_count_against_the_reference() -> None:
    costs = CostOptions(gpu_watts=Decimal(350), usd_per_kwh=Decimal("0.12"))
    hour_ns = 3_600_000_000_000
    call = ModelCall(
        "ollama",
        "llama3.2",
        "draft",
        Usage(input_tokens=10_000, output_tokens=4_000),
        9.0,
        busy_ns=hour_ns,
    )
    money = call_costs(call, costs)
    assert money.cost_usd == 0
    assert money.energy_kwh == Decimal("0.35")
    assert money.energy_usd == Decimal("0.042")
    assert money.cloud_equivalent_usd == Decimal("0.06")  # claude-sonnet-5: $2 / $10


def test_a_failed_call_is_recorded_at_no_cost() -> None:
    call = ModelCall("anthropic", "claude-sonnet-5", "refine", Usage(), 30.0, "OverloadedError")
    row = call_row(call, CostOptions(), flow_run_id="run", video_id="v", decision_id=None)
    assert (row["status"], row["error_type"], row["cost_usd"]) == ("error", "OverloadedError", 0)


# -- energy as the GPU spends it (issue 11.2) ---------------------------------------------


def test_overlapping_requests_charge_the_union_of_their_busy_time() -> None:
    clock = BusyClock()
    assert clock.charge(0, 10) == 10
    assert clock.charge(5, 15) == 5  # 5..10 was charged already
    assert clock.charge(0, 15) == 0
    assert clock.charge(20, 30) == 10
    assert clock.charge(12, 25) == 5  # only 15..20 is new
    assert clock.charge(30, 30) == 0


def test_requests_served_in_parallel_are_charged_once_through_the_real_client() -> None:
    # Four requests at once on a server answering them in parallel: each reports its own
    # total_duration, and they overlap; the energy is for the time the GPU was busy at all.
    with FakeOllama(cold_load_s=0.0, parallel=4, latency_s=0.5) as ollama:
        local = LocalModel(OllamaOptions(host=ollama.url, parallel=4, max_output_tokens=256))
        request = ModelRequest("system", "say hi", "prompt", model="llama3.2")
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: local.generate(request), range(4)))
    own = [answer.call.detail["busy_ms"] * 1e6 for answer in answers]
    charged = sum(answer.call.busy_ns for answer in answers)
    assert all(ms > 0 for ms in own)
    assert charged < 0.5 * sum(own)  # not four times the same moment
    assert charged >= max(own) * 0.99
    assert {answer.call.detail["host"] for answer in answers} == {ollama.url}
