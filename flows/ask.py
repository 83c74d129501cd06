"""Ask the knowledge base: passages retrieved by hybrid search, answered with citations."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from prefect import flow, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import Field

from blocks import load_options
from creatorkb import asking
from creatorkb.answers import Answer
from creatorkb.embeddings import Embedder
from creatorkb.engine import RoutingEngine
from creatorkb.errors import SettingsError
from creatorkb.ledger import Ledger, open_ledger
from creatorkb.recording import call_writes
from creatorkb.search import MAX_QUERY_CHARS, Filters, Hit, find
from creatorkb.settings import CostOptions, KBSettings, KnowledgeOptions, OllamaOptions
from flows import models

CANDIDATES = 20  # hits retrieved; the relevant ones (at most asking.MAX_PASSAGES) are used


@task(name="retrieve-passages", cache_policy=NONE, retries=0)  # its errors are the input's
def retrieve(ledger: Ledger, question: str, filters: Filters, flow_run_id: str) -> list[Hit]:
    """The hybrid search's best passages for the question; the query's embedding recorded."""
    knowledge = load_options(KnowledgeOptions)
    embedder = Embedder(load_options(OllamaOptions), knowledge)
    found = find(ledger, question, filters, knowledge, embedder, limit=CANDIDATES)
    costs = load_options(CostOptions)
    ledger.write(
        *call_writes(found.calls, costs, flow_run_id=flow_run_id, video_id=None, decision_id=None)
    )
    return found.result.hits


@task(name="answer-question", cache_policy=NONE)
def answer_question(
    engine: RoutingEngine, question: str, hits: list[Hit], prefer_local: bool, force_cloud: bool
) -> Answer:
    """Local first (or cloud, per policy), checked against the passages, escalated if short."""
    knowledge = load_options(KnowledgeOptions)
    return asking.ask(
        engine,
        question,
        hits,
        min_similarity=knowledge.ask_min_similarity,
        prefer_local=prefer_local,
        force_cloud=force_cloud,
    )


@flow(name="ask", persist_result=True, result_serializer="json")
def ask(
    question: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)],
    creator: Annotated[str | None, Field(max_length=200)] = None,
    since: date | None = None,
    prefer_local: bool = False,
    force_cloud: bool = False,
) -> Answer:
    """Answer a question from what the creators taught, citing the moments it rests on.

    Args:
        question: What you want to know, in a sentence.
        creator: Only this creator's videos (name, @handle or channel id).
        since: Only videos published on or after this date.
        prefer_local: Start locally whatever the policy says.
        force_cloud: Send it to Claude (with the passages).
    """
    if prefer_local and force_cloud:
        raise SettingsError("give at most one of prefer_local and force_cloud")
    settings = KBSettings()
    ledger = open_ledger(settings.ledger, settings.ledger_wait_seconds)
    config = models.configuration()
    run_id = runtime.flow_run.id
    hits = retrieve(ledger, question, Filters(creator=creator, since=since), run_id)
    engine = models.engine(config, ledger, run_id)
    answer = answer_question(engine, question, hits, prefer_local, force_cloud)
    create_markdown_artifact(answer.to_markdown(), key="ask-answer")
    return answer
