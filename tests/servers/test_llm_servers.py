"""The simulated Ollama and Anthropic servers, driven through the real client libraries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import ollama
import pydantic
import pytest

from tests.servers.anthropic import FakeAnthropic, MessagesRequest
from tests.servers.base import minimal_instance
from tests.servers.ollama import DEFAULT_NUM_CTX, ChatRequest, FakeOllama
from tests.servers.tokens import count_tokens, split_tokens, truncate_back, truncate_front

CLAUDE = "claude-haiku-4-5"


class Source(pydantic.BaseModel):
    video_id: str
    start_s: int = pydantic.Field(gt=0)


class Insight(pydantic.BaseModel):
    claim: str
    confidence: float = pydantic.Field(ge=0.5, le=1)
    kind: str = pydantic.Field(json_schema_extra={"enum": ["fact", "opinion"]})
    evidence: list[str] = pydantic.Field(min_length=1)
    source: Source | None


SCHEMA = Insight.model_json_schema()


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake_claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(min_cache_tokens=100) as fake:
        yield fake


def claude_client(fake: FakeAnthropic, **kwargs: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key=fake.api_key, **kwargs)  # type: ignore[arg-type]


def ask(client: anthropic.Anthropic, **kwargs: object) -> anthropic.types.Message:
    params: dict[str, object] = {
        "model": CLAUDE,
        "max_tokens": 512,
        "messages": [{"role": "user", "content": "Summarise the video."}],
    }
    return client.messages.create(**{**params, **kwargs})  # type: ignore[call-overload]


def cache_usage(usage: anthropic.types.Usage) -> tuple[int | None, int | None, int]:
    """(cache_creation_input_tokens, cache_read_input_tokens, input_tokens)."""
    return usage.cache_creation_input_tokens, usage.cache_read_input_tokens, usage.input_tokens


def user_turn(text: str, *, cached: bool = False) -> dict[str, object]:
    """A user message with one text block, optionally marked as a cache breakpoint."""
    block: dict[str, object] = {"type": "text", "text": text}
    if cached:
        block["cache_control"] = {"type": "ephemeral"}
    return {"role": "user", "content": [block]}


def test_tokenizer_and_schema_instances() -> None:
    text = "  Hello, world! It's 9am."
    assert count_tokens(text) == 9
    assert "".join(split_tokens(text)) == text
    assert truncate_front(text, 3) == "s 9am."
    assert truncate_back(text, 2) == "  Hello,"
    assert Insight.model_validate(minimal_instance(SCHEMA))


# Ollama


def test_ollama_structured_chat_returns_valid_json_and_ns_metrics(fake_ollama: FakeOllama) -> None:
    client = ollama.Client(host=fake_ollama.url)
    messages = [
        {"role": "system", "content": "Extract one insight."},
        {"role": "user", "content": "The creator says compound interest is magic."},
    ]
    response = client.chat(
        model="llama3.2", messages=messages, format=SCHEMA, options={"num_ctx": 2048}, stream=False
    )

    Insight.model_validate_json(response.message.content or "")
    assert response.model == "llama3.2"
    assert response.done and response.done_reason == "stop"
    assert response.message.role == "assistant"
    assert response.prompt_eval_count == sum(count_tokens(m["content"]) for m in messages)
    assert response.eval_count == count_tokens(response.message.content or "")
    assert response.load_duration == 1_500_000_000  # a cold load of the model
    parts = [response.load_duration, response.prompt_eval_duration, response.eval_duration]
    assert all(d and d > 0 for d in parts)
    assert (response.total_duration or 0) > sum(d or 0 for d in parts)
    assert response.created_at and response.created_at.endswith("Z")
    assert fake_ollama.chats[-1].format == SCHEMA and fake_ollama.chats[-1].num_ctx == 2048
    warm = client.chat(model="llama3.2", messages=messages, options={"num_ctx": 2048})
    assert warm.load_duration and warm.load_duration < 10_000_000


def test_ollama_streaming_chat_yields_pieces_then_metrics(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda chat: f"You said: {chat.user}"
    client = ollama.Client(host=fake_ollama.url)

    parts = list(
        client.chat(model="qwen2.5:7b", messages=[{"role": "user", "content": "hi"}], stream=True)
    )

    assert "".join(p.message.content or "" for p in parts) == "You said: hi"
    assert [p.done for p in parts] == [False] * 4 + [True]
    final = parts[-1]
    assert (final.done_reason, final.prompt_eval_count, final.eval_count) == ("stop", 1, 4)
    assert fake_ollama.chats[-1].stream and fake_ollama.chats[-1].num_ctx == DEFAULT_NUM_CTX


def test_ollama_list_show_ps_and_version(fake_ollama: FakeOllama) -> None:
    client = ollama.Client(host=fake_ollama.url)

    names = [m.model for m in client.list().models]
    shown = client.show("mistral")
    client.chat(
        model="qwen2.5:7b", messages=[{"role": "user", "content": "x"}], options={"num_ctx": 8192}
    )
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "x"}], keep_alive=0)

    assert names == ["llama3.2:latest", "qwen2.5:7b", "mistral:latest"]
    assert shown.modelinfo and shown.modelinfo["llama.context_length"] == 32768
    assert shown.capabilities and "completion" in shown.capabilities
    assert [(m.model, m.context_length) for m in client.ps().models] == [("qwen2.5:7b", 8192)]
    assert httpx.get(f"{fake_ollama.url}/api/version").json() == {"version": "0.12.6"}
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("phi4")
    assert (missing.value.status_code, missing.value.error) == (404, "model 'phi4' not found")


def test_ollama_silently_truncates_prompts_longer_than_num_ctx(fake_ollama: FakeOllama) -> None:
    seen: list[ChatRequest] = []
    fake_ollama.responder = lambda chat: seen.append(chat) or {"ok": True}
    client = ollama.Client(host=fake_ollama.url)
    transcript = " ".join(f"w{i}" for i in range(3000))
    messages = [
        {"role": "system", "content": "Summarise the transcript."},
        {"role": "user", "content": transcript},
    ]

    response = client.chat(model="llama3.2", messages=messages, options={"num_ctx": 512})
    clamped = client.chat(model="llama3.2", messages=messages, options={"num_ctx": 100_000})

    system_tokens = count_tokens(messages[0]["content"])
    assert response.prompt_eval_count == 512
    assert seen[0].truncated and seen[0].system == messages[0]["content"]
    assert seen[0].user == truncate_front(transcript, 512 - system_tokens)
    assert seen[0].user.endswith("w2999") and not seen[0].user.startswith("w0 ")
    assert clamped.prompt_eval_count == 3000 + system_tokens and not seen[1].truncated
    assert seen[1].num_ctx == 8192  # llama3.2's trained context caps num_ctx


def test_ollama_num_predict_cuts_generation(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda chat: "one two three four five"
    client = ollama.Client(host=fake_ollama.url)

    response = client.chat(
        model="mistral", messages=[{"role": "user", "content": "count"}], options={"num_predict": 2}
    )

    assert response.message.content == "one two"
    assert response.done_reason == "length" and response.eval_count == 2


def test_ollama_request_errors(fake_ollama: FakeOllama) -> None:
    client = ollama.Client(host=fake_ollama.url)
    user = [{"role": "user", "content": "x"}]

    with pytest.raises(ollama.ResponseError) as unknown:
        client.chat(model="gemma3", messages=user)
    with pytest.raises(ollama.ResponseError) as thinking:
        client.chat(model="llama3.2", messages=user, think=True)
    fake_ollama.fail_next(1, status=500)
    with pytest.raises(ollama.ResponseError) as crashed:
        client.chat(model="llama3.2", messages=user)
    recovered = client.chat(model="llama3.2", messages=user)

    assert (unknown.value.status_code, unknown.value.error) == (404, "model 'gemma3' not found")
    assert thinking.value.status_code == 400
    assert thinking.value.error == '"llama3.2" does not support thinking'
    assert crashed.value.status_code == 500 and "llama runner" in crashed.value.error
    assert recovered.done
    assert fake_ollama.chat_counts == {"gemma3": 1, "llama3.2": 3}


def test_ollama_malformed_next_breaks_the_json(fake_ollama: FakeOllama) -> None:
    client = ollama.Client(host=fake_ollama.url)
    fake_ollama.malformed_next(1)
    user = [{"role": "user", "content": "x"}]

    broken = client.chat(model="llama3.2", messages=user, format=SCHEMA)
    fine = client.chat(model="llama3.2", messages=user, format=SCHEMA)

    with pytest.raises(pydantic.ValidationError):
        Insight.model_validate_json(broken.message.content or "")
    Insight.model_validate_json(fine.message.content or "")


def test_ollama_down_refuses_connections_then_up_serves_on_same_port(
    fake_ollama: FakeOllama,
) -> None:
    client = ollama.Client(host=fake_ollama.url)
    port = fake_ollama.port
    client.list()  # leaves a pooled keep-alive connection behind

    fake_ollama.down()
    with pytest.raises(ConnectionError):
        client.list()
    fake_ollama.up()

    assert fake_ollama.port == port and client.list().models


def test_ollama_die_after_n_chats(fake_ollama: FakeOllama) -> None:
    client = ollama.Client(host=fake_ollama.url)
    fake_ollama.die_after(2)
    user = [{"role": "user", "content": "x"}]

    client.chat(model="llama3.2", messages=user)
    client.chat(model="llama3.2", messages=user)
    with pytest.raises(ConnectionError):
        client.chat(model="llama3.2", messages=user)

    assert not fake_ollama.is_up and fake_ollama.chat_counts["llama3.2"] == 2


def test_ollama_parallel_slots_queue_extra_requests() -> None:
    with FakeOllama(parallel=2, latency_s=0.2) as fake:
        client = ollama.Client(host=fake.url)
        started = time.monotonic()
        user = [{"role": "user", "content": "x"}]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: client.chat(model="mistral", messages=user), range(4)))

        assert fake.max_concurrency == 2
        assert time.monotonic() - started >= 0.4


# Anthropic


def test_claude_forced_tool_returns_the_responders_input(fake_claude: FakeAnthropic) -> None:
    seen: list[MessagesRequest] = []
    answer = {
        "claim": "Index funds win",
        "confidence": 0.9,
        "kind": "fact",
        "evidence": ["t=42"],
        "source": None,
    }
    fake_claude.responder = lambda call: seen.append(call) or answer
    tool = {"name": "record_insight", "description": "Record one insight.", "input_schema": SCHEMA}

    message = ask(
        claude_client(fake_claude),
        system="You extract insights.",
        tools=[tool],
        tool_choice={"type": "tool", "name": "record_insight"},
    )

    block = message.content[0]
    assert block.type == "tool_use" and block.name == "record_insight"
    assert block.id.startswith("toolu_")
    assert Insight.model_validate(block.input).claim == "Index funds win"
    assert message.stop_reason == "tool_use" and message.model == CLAUDE
    assert message.id.startswith("msg_") and message.usage.service_tier == "standard"
    assert message.usage.output_tokens == count_tokens(json.dumps(block.input))
    assert seen[0].tool_name == "record_insight" and seen[0].schema == SCHEMA
    assert seen[0].system == "You extract insights."
    assert seen[0].user == "Summarise the video." and seen[0].headers["anthropic-version"]


def test_claude_output_config_json_schema_returns_json_text(fake_claude: FakeAnthropic) -> None:
    message = ask(
        claude_client(fake_claude),
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}},
    )

    block = message.content[0]
    assert block.type == "text" and message.stop_reason == "end_turn"
    Insight.model_validate_json(block.text)
    assert fake_claude.calls[-1].tool_name is None and fake_claude.calls[-1].schema == SCHEMA


def test_claude_prompt_caching_creates_then_reads_the_system_prefix(
    fake_claude: FakeAnthropic,
) -> None:
    client = claude_client(fake_claude)
    guide = "Rules for extracting insights. " * 40  # 200 tokens
    system = [{"type": "text", "text": guide, "cache_control": {"type": "ephemeral"}}]

    first = ask(client, system=system).usage
    second = ask(client, system=system).usage
    long_lived = ask(
        client,
        system=[{**system[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}, system[0]],
    )

    assert cache_usage(first) == (200, 0, 4)  # input_tokens: only the uncached user turn
    assert first.cache_creation and first.cache_creation.ephemeral_5m_input_tokens == 200
    assert cache_usage(second) == (0, 200, 4)
    # The first block is read whatever its TTL; the second one is written in its 5m bucket.
    assert cache_usage(long_lived.usage) == (200, 200, 4)
    by_ttl = long_lived.usage.cache_creation
    assert by_ttl and by_ttl.ephemeral_5m_input_tokens == 200
    assert by_ttl.ephemeral_1h_input_tokens == 0


def test_claude_prompt_caching_follows_a_growing_conversation(fake_claude: FakeAnthropic) -> None:
    client = claude_client(fake_claude)
    transcript = "word " * 150
    turn1 = [user_turn(transcript, cached=True)]
    turn2 = [
        user_turn(transcript),
        {"role": "assistant", "content": "Noted."},
        user_turn("Now list the claims.", cached=True),
    ]

    first = ask(client, messages=turn1).usage
    second = ask(client, messages=turn2).usage
    short = ask(client, messages=[user_turn("hi", cached=True)])
    fake_claude.clock = lambda: time.monotonic() + 301
    expired = ask(client, messages=turn1).usage

    new_turns = count_tokens("Noted.") + count_tokens("Now list the claims.")
    assert cache_usage(first) == (150, 0, 0)
    assert cache_usage(second) == (new_turns, 150, 0)  # the old breakpoint found by lookback
    assert cache_usage(short.usage) == (0, 0, 1)  # below min_cache_tokens: nothing cached
    assert cache_usage(expired) == (150, 0, 0)


def test_claude_count_tokens_counts_tools_system_and_messages(fake_claude: FakeAnthropic) -> None:
    tool = {"name": "t", "description": "d", "input_schema": {"type": "object"}}
    counted = claude_client(fake_claude).messages.count_tokens(
        model=CLAUDE,
        system="Be brief.",
        tools=[tool],
        messages=[{"role": "user", "content": "Hello there!"}],
    )

    assert counted.input_tokens == 3 + 3 + count_tokens(
        '{"name": "t", "description": "d", "input_schema": {"type": "object"}}'
    )


def test_claude_429_is_retried_after_retry_after(fake_claude: FakeAnthropic) -> None:
    fake_claude.fail_next([429], retry_after=0.2)

    message = ask(claude_client(fake_claude))

    first, second = fake_claude.requests_to("/v1/messages")
    assert message.content and (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.2
    assert second.headers["x-stainless-retry-count"] == "1"


def test_claude_529_is_retried_unless_told_not_to(fake_claude: FakeAnthropic) -> None:
    fake_claude.fail_next([529])
    assert ask(claude_client(fake_claude)).content
    fake_claude.fail_next([529], should_retry=False)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        ask(claude_client(fake_claude))

    assert fake_claude.status_counts == {529: 2, 200: 1}
    assert overloaded.value.type == "overloaded_error" and overloaded.value.request_id


def test_claude_bad_key_raises_authentication_error_without_retry(
    fake_claude: FakeAnthropic,
) -> None:
    with pytest.raises(anthropic.AuthenticationError) as denied:
        ask(anthropic.Anthropic(base_url=fake_claude.url, api_key="sk-ant-wrong"))

    assert denied.value.status_code == 401 and denied.value.api_message == "invalid x-api-key"
    assert denied.value.request_id and denied.value.request_id.startswith("req_")
    assert len(fake_claude.requests) == 1


def test_claude_invalid_requests_are_rejected(fake_claude: FakeAnthropic) -> None:
    no_version = httpx.post(
        f"{fake_claude.url}/v1/messages",
        headers={"x-api-key": fake_claude.api_key},
        json={"model": CLAUDE},
    )
    with pytest.raises(anthropic.BadRequestError) as zero:
        ask(claude_client(fake_claude), max_tokens=0)

    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert zero.value.type == "invalid_request_error"
    assert "max_tokens" in str(zero.value.api_message)


def test_claude_stall_beyond_client_timeout_raises_timeout(fake_claude: FakeAnthropic) -> None:
    fake_claude.stall_next(1, 2.0)

    with pytest.raises(anthropic.APITimeoutError):
        ask(claude_client(fake_claude, timeout=0.3, max_retries=0))

    assert len(fake_claude.requests) == 1


def test_claude_max_tokens_cuts_the_answer(fake_claude: FakeAnthropic) -> None:
    fake_claude.responder = lambda call: "one two three four"

    message = ask(claude_client(fake_claude), max_tokens=3)

    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3
    assert message.content[0].type == "text" and message.content[0].text == "one two three"


def test_claude_parallel_slots_cap_concurrency() -> None:
    with FakeAnthropic(parallel=2, latency_s=0.2) as fake:
        client = claude_client(fake)
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda _: ask(client), range(5)))

        assert fake.max_concurrency == 2 and fake.status_counts == {200: 5}


# Message Batches


def batch_request(custom_id: str, text: str = "Summarise the video.") -> dict[str, object]:
    params = {"model": CLAUDE, "max_tokens": 256, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "params": params}


def test_claude_batches_create_retrieve_results_with_the_real_shapes(
    fake_claude: FakeAnthropic,
) -> None:
    client = claude_client(fake_claude)
    fake_claude.hold_batches = True
    batch = client.messages.batches.create(
        requests=[batch_request("item-1"), batch_request("item-2")]  # type: ignore[list-item]
    )
    assert batch.type == "message_batch" and batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 2 and batch.ended_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600

    fake_claude.item_fates["item-2"] = "expired"
    fake_claude.end_batches()
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.results_url == f"{fake_claude.url}/v1/messages/batches/{batch.id}/results"
    assert (ended.request_counts.succeeded, ended.request_counts.expired) == (1, 1)
    results = {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}
    assert results["item-2"].type == "expired"
    succeeded = results["item-1"]
    assert succeeded.type == "succeeded"
    assert succeeded.message.usage.service_tier == "batch"
    [billed] = fake_claude.billed_batch_usages  # what the fake billed: the one answer
    assert billed["output_tokens"] == succeeded.message.usage.output_tokens
    assert fake_claude.calls == [] and len(fake_claude.batch_calls) == 1


def test_claude_batches_list_pages_newest_first(fake_claude: FakeAnthropic) -> None:
    client = claude_client(fake_claude)
    ids = []
    for n in range(5):
        ids.append(client.messages.batches.create(requests=[batch_request(f"i{n}")]).id)  # type: ignore[list-item]
        time.sleep(0.01)
    newest_first = ids[::-1]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more and (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-paged
    after = client.messages.batches.list(limit=2, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:4] and after.has_more
    before = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3] and before.has_more
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=1001)


def test_claude_batches_cancel_404_errored_items_and_bad_requests(
    fake_claude: FakeAnthropic,
) -> None:
    client = claude_client(fake_claude)
    fake_claude.hold_batches = True
    held = client.messages.batches.create(requests=[batch_request("a")])  # type: ignore[list-item]
    assert client.messages.batches.cancel(held.id).processing_status == "canceling"
    canceled = client.messages.batches.retrieve(held.id)
    assert canceled.processing_status == "ended" and canceled.request_counts.canceled == 1
    assert canceled.cancel_initiated_at is not None
    fake_claude.forgotten.add(held.id)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(held.id)

    fake_claude.hold_batches = False
    fake_claude.refused_models = {CLAUDE}
    refused = client.messages.batches.create(requests=[batch_request("b")])  # type: ignore[list-item]
    [line] = client.messages.batches.results(refused.id)
    assert line.result.type == "errored"
    assert line.result.error.error.type == "not_found_error"
    with pytest.raises(anthropic.BadRequestError, match="duplicate custom_id"):
        client.messages.batches.create(requests=[batch_request("c"), batch_request("c")])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        client.messages.batches.create(requests=[batch_request("not ok!")])  # type: ignore[list-item]
