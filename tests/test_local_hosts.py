"""Several Ollama hosts (KB_OLLAMA_HOSTS): the least busy host that has the model answers, a
host that goes down is skipped and probed again later, no host gets more than its slots."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from creatorkb.calls import ModelRequest
from creatorkb.errors import LocalModelMissing
from creatorkb.local_model import LocalModel
from creatorkb.settings import OllamaEnvSettings, OllamaOptions
from creatorkb.slots import ProcessSlots, slot_name
from tests.conftest import run_kb
from tests.servers.ollama import FakeOllama

REQUEST = ModelRequest("system", "say hi", "prompt", model="llama3.2")


@pytest.fixture
def two_hosts() -> Iterator[tuple[FakeOllama, FakeOllama]]:
    with (
        FakeOllama(cold_load_s=0.0, latency_s=0.2) as first,
        FakeOllama(cold_load_s=0.0, latency_s=0.2) as second,
    ):
        yield first, second


def options(*hosts: FakeOllama, parallel: int = 2, **more: object) -> OllamaOptions:
    settings: dict[str, object] = {"retries": 1, "retry_delay_seconds": 0.05, **more}
    return OllamaOptions(
        hosts=[host.url for host in hosts],
        parallel=parallel,
        max_output_tokens=256,
        **settings,  # type: ignore[arg-type]
    )


def test_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://gpu0:11434")
    assert OllamaEnvSettings().host_list == ["http://gpu0:11434"]  # one host: the default
    monkeypatch.setenv("KB_OLLAMA_HOSTS", "http://gpu1:11434, http://gpu2:11434")
    assert OllamaEnvSettings().host_list == ["http://gpu1:11434", "http://gpu2:11434"]
    assert slot_name("http://gpu1:11434") == "ollama:gpu1:11434"
    # Scaled out (several hosts listed), the slots are held on the Prefect server; one machine
    # keeps its per-process count unless told otherwise.
    assert OllamaEnvSettings().slots_shared
    monkeypatch.delenv("KB_OLLAMA_HOSTS")
    assert not OllamaEnvSettings().slots_shared
    monkeypatch.setenv("KB_OLLAMA_SHARED_SLOTS", "true")
    assert OllamaEnvSettings().slots_shared


def test_each_host_entry_may_carry_its_own_slot_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_OLLAMA_PARALLEL", "2")
    monkeypatch.setenv("KB_OLLAMA_HOSTS", "http://gpu1:11434=4, http://gpu2:11434")
    settings = OllamaEnvSettings()
    assert settings.host_slots == {"http://gpu1:11434": 4, "http://gpu2:11434": 2}
    assert settings.host_list == ["http://gpu1:11434", "http://gpu2:11434"]
    monkeypatch.delenv("KB_OLLAMA_HOSTS")
    monkeypatch.setenv("OLLAMA_HOST", "http://gpu0:11434")
    assert OllamaEnvSettings().host_slots == {"http://gpu0:11434": 2}  # one host: the default


@pytest.mark.parametrize(
    "entries",
    [
        "http://gpu1:11434=four",
        "http://gpu1:11434=0",
        "http://gpu1:11434=65",
        "=4",
        "http://gpu1:11434=4,http://gpu1:11434=2",
    ],
)
def test_a_malformed_host_entry_is_refused_naming_it_and_the_fix(
    entries: str, kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_OLLAMA_HOSTS", entries)
    done = run_kb("doctor", expect=1)
    message = " ".join(done.stdout.split())  # as one line, however the terminal wrapped it
    assert message.startswith("error: invalid setting: KB_OLLAMA_HOSTS=")
    if entries.count("=") == 1:
        assert f"host entry {entries!r} is not URL or URL=SLOTS" in message
        assert "write it like http://gpu1:11434=4" in message
        assert "leave =SLOTS off to use KB_OLLAMA_PARALLEL" in message
    else:
        assert "http://gpu1:11434 is listed twice with different slot counts" in message


def test_a_host_gets_no_more_requests_than_its_own_slots(
    two_hosts: tuple[FakeOllama, FakeOllama],
) -> None:
    first, second = two_hosts
    local = LocalModel(
        OllamaOptions(hosts=[f"{first.url}=3", second.url], parallel=1, max_output_tokens=256)
    )
    assert local.parallel == 4
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: local.generate(REQUEST), range(12)))
    hosts = [answer.call.detail["host"] for answer in answers]
    assert first.max_concurrency == 3 and second.max_concurrency == 1  # each its own slots
    assert hosts.count(first.url) > hosts.count(second.url)  # the bigger host did more


def test_shared_slots_are_limits_of_each_hosts_own_size(
    prefect_api: str, two_hosts: tuple[FakeOllama, FakeOllama]
) -> None:
    from prefect.client.orchestration import get_client

    from flows.models import local_slots

    first, second = two_hosts
    options = OllamaOptions(hosts=[f"{first.url}=3", second.url], parallel=2, max_output_tokens=256)
    local = LocalModel(options, local_slots(options))  # KB_OLLAMA_HOSTS set: on the server
    with get_client(sync_client=True) as client:
        sizes = {
            host.url: client.read_global_concurrency_limit_by_name(slot_name(host.url)).limit
            for host in local.hosts
        }
    assert sizes == {first.url: 3, second.url: 2}
    # Calls long against a slot's round trips to the server, so that every slot fills; each
    # call in a copy of this context: it holds the session server's address.
    first.latency_s = second.latency_s = 1.0
    contexts = [contextvars.copy_context() for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda context: context.run(local.generate, REQUEST), contexts))
    assert first.max_concurrency == 3 and second.max_concurrency == 2


@pytest.mark.parametrize("shared", [False, True], ids=["process slots", "prefect slots"])
def test_a_waiting_call_takes_whichever_host_frees_a_slot_first(
    shared: bool, request: pytest.FixtureRequest
) -> None:
    """Every host full: the calls that wait go to the host whose slot frees first, not each
    to the host it first picked (two runs on two hosts: slots stood idle while a process
    waited on the other host, docs/performance.md "Scale-out")."""
    with (
        FakeOllama(cold_load_s=0.0, latency_s=5.0) as slow,  # busy for all five calls
        FakeOllama(cold_load_s=0.0, latency_s=0.1) as fast,
    ):
        settings = options(slow, fast, parallel=1)
        if shared:
            from flows.models import local_slots

            request.getfixturevalue("prefect_api")
            local = LocalModel(settings, local_slots(settings))
        else:
            local = LocalModel(settings)
        contexts = [contextvars.copy_context() for _ in range(6)]  # the Prefect server's URL
        with ThreadPoolExecutor(6) as pool:
            first = pool.submit(contexts[0].run, local.generate, REQUEST)
            while slow.max_concurrency == 0:  # the first call holds the slow host's one slot
                time.sleep(0.01)
            rest = [pool.submit(context.run, local.generate, REQUEST) for context in contexts[1:]]
            hosts = [future.result().call.detail["host"] for future in rest]
        assert first.result().call.detail["host"] == slow.url
        assert hosts == [fast.url] * 5, hosts


def test_calls_spread_over_the_least_busy_hosts_within_their_slots(
    two_hosts: tuple[FakeOllama, FakeOllama],
) -> None:
    first, second = two_hosts
    local = LocalModel(options(first, second, parallel=2))
    assert local.parallel == 4
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: local.generate(REQUEST), range(8)))
    elapsed = time.monotonic() - started
    hosts = [answer.call.detail["host"] for answer in answers]
    assert hosts.count(first.url) == hosts.count(second.url) == 4
    assert first.max_concurrency == second.max_concurrency == 2  # never over its slots
    assert elapsed < 0.2 * 8 / 2  # both hosts worked at once


def test_a_host_that_goes_down_is_skipped_then_probed_again(
    two_hosts: tuple[FakeOllama, FakeOllama],
) -> None:
    first, second = two_hosts
    local = LocalModel(options(first, second, reprobe_seconds=0.5, retries=0))
    first.down()
    answered = [local.generate(REQUEST).call.detail["host"] for _ in range(4)]
    # The first call may find it down; from then on it is not asked.
    assert answered[1:] == [second.url] * 3
    assert local.down is None  # the other host answers
    first.up()
    time.sleep(0.6)  # past reprobe_seconds: asked again
    with ThreadPoolExecutor(4) as pool:
        hosts = {
            a.call.detail["host"] for a in pool.map(lambda _: local.generate(REQUEST), range(4))
        }
    assert hosts == {first.url, second.url}


def test_a_host_without_the_model_is_not_asked(two_hosts: tuple[FakeOllama, FakeOllama]) -> None:
    first, second = two_hosts
    first.models = {"llama3.2": 8192}
    second.models = {"mistral": 32768}  # each GPU serves a model of its own
    local = LocalModel(options(first, second))
    hosts = {local.generate(REQUEST).call.detail["host"] for _ in range(3)}
    assert hosts == {first.url}
    mistral = ModelRequest("system", "say hi", "prompt", model="mistral")
    assert local.generate(mistral).call.detail["host"] == second.url
    with pytest.raises(LocalModelMissing):
        local.generate(ModelRequest("system", "hi", "prompt", model="gemma3"))


def test_process_slots_say_none_is_free_without_waiting() -> None:
    slots = ProcessSlots(1)
    with slots.hold("h", wait=True) as held:
        assert held
        assert slots.busy(["h"]) == {"h": 1}
        with slots.hold("h", wait=False) as second:
            assert not second
    assert slots.busy(["h"]) == {"h": 0}
