"""Embeddings from the local Ollama (`/api/embed` through the official client).

Vectors are asked for at EMBEDDING_DIMENSIONS (Ollama's `dimensions` option: it cuts the
model's vector and normalises it again, the way Matryoshka-trained models such as
nomic-embed-text are meant to be shortened). Search first ranks every passage by the first
COARSE_DIMENSIONS, renormalised (the smallest size nomic-embed-text was trained to keep
useful), then ranks the best of those exactly: docs/performance.md has the measurements.
Every request is one `llm_calls` row (purpose `embed`), whose energy comes from Ollama's
reported duration like any local call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import ollama

from creatorkb.calls import ModelCall, Usage
from creatorkb.errors import EmbeddingUnavailable
from creatorkb.gpu_time import charged_ns
from creatorkb.settings import KnowledgeOptions, OllamaOptions

EMBEDDING_DIMENSIONS = 256  # the ledger's passage_embeddings.embedding is FLOAT[256]
COARSE_DIMENSIONS = 64  # ... and its coarse first pass FLOAT[64]
BATCH = 64  # inputs per request


@dataclass(frozen=True)
class Embedded:
    """Vectors for some texts, and the calls that made them."""

    vectors: list[list[float]]
    calls: list[ModelCall]


def coarse(vector: Sequence[float]) -> list[float]:
    """The first COARSE_DIMENSIONS of a vector, normalised to unit length again."""
    head = list(vector[:COARSE_DIMENSIONS])
    norm = math.sqrt(sum(value * value for value in head)) or 1.0
    return [value / norm for value in head]


class Embedder:
    """The configured embedding model on the configured Ollama."""

    def __init__(self, ollama_options: OllamaOptions, options: KnowledgeOptions) -> None:
        self.host = ollama_options.host_list[0]  # the first host embeds
        self.model = options.embed_model
        self.options = options
        self.keep_alive = ollama_options.keep_alive
        self._client = ollama.Client(host=self.host, timeout=60)

    def check(self) -> None:
        """Raise EmbeddingUnavailable, saying why and what to do, unless the model is there
        and long enough."""
        try:
            shown = self._client.show(self.model)
        except ollama.ResponseError as error:
            raise self._missing(error.error) from error
        except (ConnectionError, httpx.HTTPError) as error:
            raise self._unreachable(error) from error
        info = shown.modelinfo or {}
        length = next((int(v) for k, v in info.items() if k.endswith(".embedding_length")), 0)
        if "embedding" not in (shown.capabilities or []) or length < EMBEDDING_DIMENSIONS:
            raise EmbeddingUnavailable(
                f"Ollama model {self.model!r} is not an embedding model with at least "
                f"{EMBEDDING_DIMENSIONS} dimensions; set KB_KNOWLEDGE_EMBED_MODEL to one "
                "(nomic-embed-text, mxbai-embed-large)"
            )

    def queries(self, texts: Sequence[str]) -> Embedded:
        return self._embed([self.options.query_prefix + text for text in texts])

    def documents(self, texts: Sequence[str]) -> Embedded:
        return self._embed([self.options.document_prefix + text for text in texts])

    def _embed(self, texts: Sequence[str]) -> Embedded:
        """Vectors of `texts`; on failure EmbeddingUnavailable carrying the calls made,
        the failed one included, so that the ledger records them."""
        vectors: list[list[float]] = []
        calls: list[ModelCall] = []
        for first in range(0, len(texts), BATCH):
            batch = list(texts[first : first + BATCH])
            started = time.perf_counter()
            try:
                response = self._client.embed(
                    model=self.model,
                    input=batch,
                    truncate=True,
                    keep_alive=self.keep_alive,
                    dimensions=EMBEDDING_DIMENSIONS,
                )
            except (ollama.ResponseError, ConnectionError, httpx.HTTPError) as error:
                latency = (time.perf_counter() - started) * 1000
                failed = ModelCall(
                    "ollama", self.model, "embed", Usage(), latency, type(error).__name__
                )
                if isinstance(error, ollama.ResponseError):
                    problem = (
                        self._missing(error.error)
                        if error.status_code == 404
                        else EmbeddingUnavailable(
                            f"Ollama at {self.host} failed to embed: {error.error}"
                        )
                    )
                else:
                    problem = self._unreachable(error)
                problem.calls = [*calls, failed]
                raise problem from error
            latency = (time.perf_counter() - started) * 1000
            calls.append(
                ModelCall(
                    "ollama",
                    self.model,
                    "embed",
                    Usage(input_tokens=response.prompt_eval_count or 0),
                    latency,
                    busy_ns=charged_ns(self.host, response.total_duration or 0),
                    detail={
                        "host": self.host,
                        "busy_ms": round((response.total_duration or 0) / 1e6, 1),
                        "inputs": len(batch),
                        "load_ms": round((response.load_duration or 0) / 1e6, 1),
                    },
                )
            )
            vectors += [list(vector) for vector in response.embeddings]
        short = [len(vector) for vector in vectors if len(vector) != EMBEDDING_DIMENSIONS]
        if short:
            problem = EmbeddingUnavailable(
                f"Ollama model {self.model!r} gives {short[0]}-dimension vectors; kb needs "
                f"{EMBEDDING_DIMENSIONS}: set KB_KNOWLEDGE_EMBED_MODEL to a longer one"
            )
            problem.calls = calls
            raise problem
        return Embedded(vectors, calls)

    def _missing(self, detail: str) -> EmbeddingUnavailable:
        return EmbeddingUnavailable(
            f"Ollama at {self.host} has no embedding model {self.model!r} ({detail}); run "
            f"`ollama pull {self.model}` or set KB_KNOWLEDGE_EMBED_MODEL"
        )

    def _unreachable(self, error: Exception) -> EmbeddingUnavailable:
        return EmbeddingUnavailable(
            f"Ollama at {self.host} is unreachable ({type(error).__name__}); start it or set "
            "OLLAMA_HOST"
        )
