"""The route-prompt flow: one routed generation for the owner's agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from creatorkb.errors import NoModelAnswered
from creatorkb.ledger import Ledger
from creatorkb.roster import Priority
from creatorkb.routing import Level
from flows.route_prompt import route_prompt
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama

pytestmark = pytest.mark.usefixtures("prefect_api")


def answer_with(text: str):
    return lambda request: text


def recorded(kb_env: Path) -> tuple[list[dict], list[dict]]:
    ledger = Ledger(kb_env / "data" / "kb.duckdb")
    decisions = ledger.rows("SELECT route, reason, video_id FROM routing_decisions ORDER BY ts")
    calls = ledger.rows("SELECT provider, purpose, status FROM llm_calls ORDER BY ts")
    return decisions, calls


@pytest.fixture
def models(ollama: FakeOllama, anthropic: FakeAnthropic) -> tuple[FakeOllama, FakeAnthropic]:
    ollama.responder = answer_with("local says hi")
    anthropic.responder = answer_with("claude says hi")
    return ollama, anthropic


def test_levels_route_as_the_owner_planned(kb_env: Path, models: tuple) -> None:
    ollama, anthropic = models

    l1 = route_prompt("Plan the quarter.", level=Level.L1)
    l3 = route_prompt("Summarise this log line.", level=Level.L3)
    high = route_prompt("Review this.", priority=Priority.high)

    assert (l1.text, l1.route, l1.provider) == ("claude says hi", "cloud_direct", "anthropic")
    assert l1.cost_usd > 0
    assert (l3.text, l3.route, l3.provider) == ("local says hi", "local_accept", "ollama")
    assert l3.cost_usd == 0
    assert high.route == "cloud_direct"
    decisions, calls = recorded(kb_env)
    assert [d["route"] for d in decisions] == ["cloud_direct", "local_accept", "cloud_direct"]
    assert {d["video_id"] for d in decisions} == {None}
    assert {c["purpose"] for c in calls} == {"prompt"}
    assert len(ollama.chats) == 1 and len(anthropic.calls) == 2
    # Each answer can be read back: a row of `answers` beside its decision.
    stored = Ledger(kb_env / "data" / "kb.duckdb").rows(
        "SELECT a.kind, a.question, a.text, d.route FROM answers a "
        "JOIN routing_decisions d USING (decision_id) ORDER BY a.ts"
    )
    assert stored == [
        {
            "kind": "prompt",
            "question": "Plan the quarter.",
            "text": "claude says hi",
            "route": "cloud_direct",
        },
        {
            "kind": "prompt",
            "question": "Summarise this log line.",
            "text": "local says hi",
            "route": "local_accept",
        },
        {
            "kind": "prompt",
            "question": "Review this.",
            "text": "claude says hi",
            "route": "cloud_direct",
        },
    ]


def test_prefer_local_and_force_cloud_override_the_level(kb_env: Path, models: tuple) -> None:
    assert route_prompt("Plan.", level=Level.L1, prefer_local=True).route == "local_accept"
    assert route_prompt("Tidy.", level=Level.L3, force_cloud=True).route == "cloud_direct"


def test_local_down_goes_to_the_cloud_and_cloud_down_to_local(
    kb_env: Path, models: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama, anthropic = models
    monkeypatch.setenv("KB_ANTHROPIC_MAX_RETRIES", "0")
    ollama.down()
    assert route_prompt("Hello?", level=Level.L2).route == "fallback_cloud"
    ollama.up()
    anthropic.down()
    result = route_prompt("Strategy?", level=Level.L1)
    assert (result.route, result.text) == ("fallback_local", "local says hi")


def test_a_cut_local_answer_is_escalated(
    kb_env: Path, models: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama, _ = models
    monkeypatch.setenv("KB_OLLAMA_MAX_OUTPUT_TOKENS", "256")
    ollama.responder = answer_with("word " * 400)  # longer than the output limit
    result = route_prompt("Write an essay.", level=Level.L3)
    assert (result.route, result.text) == ("cloud_refine", "claude says hi")


def test_nothing_answering_is_an_error_and_the_attempts_are_recorded(
    kb_env: Path, models: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama, anthropic = models
    monkeypatch.setenv("KB_ANTHROPIC_MAX_RETRIES", "0")
    ollama.down()
    anthropic.down()
    with pytest.raises(NoModelAnswered, match="no model could answer"):
        route_prompt("Anyone?", level=Level.L2)
    decisions, calls = recorded(kb_env)
    assert decisions == []
    assert [(c["provider"], c["status"]) for c in calls] == [("anthropic", "error")]
