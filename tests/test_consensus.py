"""Consensus: several local models, a synthesis, an agreement score, escalation on dissent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flows.analyze import analyze_videos
from flows.consensus import consensus
from tests.analysts import fabricated, grounded
from tests.conftest import ledger_of, run_kb
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import FakeOllama
from tests.test_analysis import CRITICAL, MEDIUM, seed

pytestmark = pytest.mark.usefixtures("prefect_api")
MODELS = ["llama3.2", "qwen2.5:7b", "mistral"]


def dissenting(model: str):
    """A responder where `model` fabricates and the others read carefully."""

    def respond(request: Any) -> dict[str, Any]:
        if request.model == model and "records of the same video" not in request.user:
            return fabricated(request.user)
        return grounded(request.user)

    return respond


def test_agreeing_models_give_a_consensus_record(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    seed(kb_env, ("vid_cons001", MEDIUM, "portrait"))

    result = consensus(video_id="vid_cons001")

    assert (result.route, result.agreement) == ("consensus", 1.0)
    assert "portrait workflow in ComfyUI" in result.answer
    calls = ledger_of(kb_env).rows("SELECT model, purpose FROM llm_calls ORDER BY purpose, model")
    assert [(c["purpose"], c["model"]) for c in calls] == [
        ("consensus", "llama3.2"),
        ("consensus", "mistral"),
        ("consensus", "qwen2.5:7b"),
        ("synthesis", "llama3.2"),
    ]
    [decision] = ledger_of(kb_env).rows("SELECT * FROM routing_decisions")
    assert decision["route"] == "consensus" and decision["confidence"] == 1.0
    assert json.loads(decision["components"]) == {
        "agreement": 1.0,
        "answers": 3,
        "models": MODELS,
    }
    [analysis] = ledger_of(kb_env).rows("SELECT final_tier, model FROM analyses")
    assert analysis == {"final_tier": "consensus", "model": "llama3.2+qwen2.5:7b+mistral"}
    assert anthropic.calls == []


def test_dissent_escalates_to_the_cloud(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_POLICY_CONSENSUS_THRESHOLD", "0.8")
    ollama.responder = dissenting("mistral")
    seed(kb_env, ("vid_cons002", MEDIUM, "portrait"))

    result = consensus(video_id="vid_cons002")

    assert result.route == "cloud_refine"
    assert result.agreement is not None and result.agreement < 0.8
    [refine] = anthropic.calls
    assert "agree too little" in refine.user
    purposes = [c["purpose"] for c in ledger_of(kb_env).rows("SELECT purpose FROM llm_calls")]
    assert sorted(purposes) == ["consensus", "consensus", "consensus", "refine", "synthesis"]


def test_the_policy_can_send_critical_creators_to_consensus_with_a_cloud_synthesiser(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_POLICY_START_BY_PRIORITY", json.dumps({"critical": "consensus"}))
    monkeypatch.setenv("KB_POLICY_SYNTHESIZER", "cloud")
    seed(kb_env, ("vid_cons003", CRITICAL, "portrait"))

    assert analyze_videos().routes == {"consensus": 1}

    [synthesis] = anthropic.calls
    assert "3 different models each recorded this video" in synthesis.user
    cloud = ledger_of(kb_env).rows("SELECT purpose FROM llm_calls WHERE provider = 'anthropic'")
    assert cloud == [{"purpose": "synthesis"}]


def test_a_prompt_answered_by_several_models(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    ollama.responder = lambda request: (
        "Use a LoRA for style."
        if "models answered it" not in request.user
        else "Use a LoRA to control the style."
    )

    result = consensus(prompt="How do I control style in Flux?")

    assert (result.route, result.agreement) == ("consensus", 1.0)
    assert result.answer == "Use a LoRA to control the style."
    assert anthropic.calls == []

    answers = iter(["Blender is best.", "Use a LoRA for style.", "Try ControlNet edges."])
    ollama.responder = lambda request: (
        next(answers) if "models answered it" not in request.user else "merged"
    )
    anthropic.responder = lambda request: "Claude's careful answer."
    disputed = consensus(prompt="What is the best tool?", models=MODELS)
    assert (disputed.route, disputed.answer) == ("cloud_refine", "Claude's careful answer.")
    assert disputed.agreement is not None and disputed.agreement < 0.5


def test_a_model_ollama_lacks_loses_no_answered_call(
    kb_env: Path, ollama: FakeOllama, anthropic: FakeAnthropic
) -> None:
    seed(kb_env, ("vid_cons009", MEDIUM, "portrait"))

    done = run_kb(
        "consensus", "--video", "vid_cons009", "--model", "llama3.2", "--model", "nosuchmodel"
    )

    assert "Traceback" not in done.stdout + done.stderr
    assert "has no model 'nosuchmodel'" in done.stdout and "KB_OLLAMA_MODELS" in done.stdout
    recorded = ledger_of(kb_env).rows(
        "SELECT model, purpose FROM llm_calls WHERE provider = 'ollama' AND status = 'ok'"
    )
    # Every request Ollama answered is in the ledger, once.
    assert len(recorded) == len(ollama.replies) > 0
    assert {row["model"] for row in recorded} == {"llama3.2"}
