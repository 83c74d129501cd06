"""Stand-ins for the models' judgement: responders that read the prompt like an analyst would.

Both fakes call a responder with the request; these build insight records from the
transcript inside the prompt's <transcript> tags, grounded (quotes copied from it) or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

TOOLS = ("ComfyUI", "Flux", "Blender", "Stable Diffusion", "LoRA", "ControlNet")
_TRANSCRIPT = re.compile(r"<transcript>\n(.*)\n</transcript>", re.DOTALL)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def transcript_in(prompt: str) -> str:
    found = _TRANSCRIPT.search(prompt)
    return found[1] if found else ""


def grounded(prompt: str, confidence: float = 0.9) -> dict[str, Any]:
    """A careful record: key points and quotes taken from the transcript itself."""
    text = transcript_in(prompt)
    sentences = [s for s in _SENTENCE.split(text) if len(s.split()) >= 3][:6] or [text]
    quotes = [" ".join(s.split()[:8]) for s in sentences[:4] if s.strip()]
    tools = [
        {"name": tool, "quote": next(s for s in sentences if tool in s)}
        for tool in TOOLS
        if any(tool in s for s in sentences)
    ]
    if not text and "one JSON record per line" in prompt:  # the reduce step: merge the parts
        parts = [json.loads(line) for line in prompt.splitlines() if line.startswith("{")]
        tools = {tool["name"]: tool for part in parts for tool in part["tools"]}
        return {
            **parts[0],
            # A careful merge lists each point once.
            "key_points": list(dict.fromkeys(p for part in parts for p in part["key_points"][:1]))[
                :6
            ],
            "evidence_quotes": list(
                dict.fromkeys(q for part in parts for q in part["evidence_quotes"][:1])
            )[:6],
            "tools": list(tools.values()),
            "confidence": confidence,
        }
    return {
        "summary": " ".join(sentences[:2]),
        "key_points": sentences[:4],
        "techniques": [{"name": "workflow", "steps": sentences[:3]}],
        "tools": tools,
        "topics": ["generative art"],
        "relevance": 0.8,
        "evidence_quotes": quotes,
        "confidence": confidence,
    }


def fabricated(prompt: str, confidence: float = 1.0) -> dict[str, Any]:
    """A careless (or manipulated) record: confident, with quotes the video never said."""
    return {
        "summary": "An amazing video about everything.",
        "key_points": ["This is the best video ever made."],
        "techniques": [],
        "tools": [{"name": "MagicTool 9000", "quote": "MagicTool 9000 changes everything"}],
        "topics": ["hype"],
        "relevance": 1.0,
        "evidence_quotes": ["the speaker guarantees perfect results", "trust this record"],
        "confidence": confidence,
    }


Behaviour = Callable[[str], dict[str, Any]]
_PASSAGE = re.compile(r"^\[(\d+)\] .*?\n<passage>(.*?)</passage>", re.DOTALL | re.MULTILINE)


def passages_in(prompt: str) -> dict[int, str]:
    """The numbered passages of a question asked of the knowledge base (creatorkb/asking)."""
    return {int(n): text for n, text in _PASSAGE.findall(prompt)}


def answering(prompt: str, confidence: float = 0.9) -> dict[str, Any]:
    """A careful answer to a question: the first passage's first sentence, cited, with a
    phrase copied from it."""
    passages = passages_in(prompt)
    if not passages:
        return {"answer": "The passages do not say.", "found": False, "citations": []}
    first = min(passages)
    sentence = _SENTENCE.split(passages[first].strip())[0].rstrip(".!?")
    quote = " ".join(sentence.split()[:6])
    return {
        "answer": f"{sentence} [{first}].",
        "found": True,
        "citations": [{"passage": first, "quote": quote}],
        "confidence": confidence,
    }


def uncited(prompt: str) -> dict[str, Any]:
    """A confident answer that cites nothing (a small model that followed a passage's
    instructions, or simply made it up)."""
    return {
        "answer": "MagicTool 9000 does all of it for you.",
        "found": True,
        "citations": [],
        "confidence": 0.95,
    }


def is_question(prompt: str) -> bool:
    return prompt.startswith("Passages:\n")


def by_title(
    rules: dict[str, Behaviour], default: Behaviour = grounded
) -> Callable[[Any], dict[str, Any]]:
    """A responder choosing its behaviour by the first word of the video title."""

    def respond(request: Any) -> dict[str, Any]:
        prompt = request.user
        if is_question(prompt):
            return answering(prompt)
        for word, behaviour in rules.items():
            if f"Video title: {word}" in prompt:
                return behaviour(prompt)
        return default(prompt)

    return respond


def careful(request: Any) -> dict[str, Any]:
    if is_question(request.user):
        return answering(request.user)
    return grounded(request.user)
