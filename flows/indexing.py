"""The search index step shared by the flows that change what is known (analyse, segments)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from blocks import load_options
from creatorkb.digest import LEARNED_LISTED, learned_markdown
from creatorkb.embeddings import Embedder
from creatorkb.knowledge import read_records
from creatorkb.ledger import Ledger
from creatorkb.search_index import IndexReport, KnowledgeIndexer
from creatorkb.settings import CostOptions, KnowledgeOptions, OllamaOptions


@task(name="index-knowledge", cache_policy=NONE)
def index_knowledge(ledger: Ledger, flow_run_id: str | None) -> IndexReport:
    """Passages, embeddings and the full-text index brought up to date with the analyses."""
    embedder = Embedder(load_options(OllamaOptions), load_options(KnowledgeOptions))
    report = KnowledgeIndexer(ledger, embedder, load_options(CostOptions), flow_run_id).run()
    logger = get_run_logger()
    logger.info("Search index: %s", report.describe())
    if report.semantic_off:
        logger.warning("Semantic search is off until this is fixed: %s", report.semantic_off)
    return report


@task(name="list-learned", cache_policy=NONE)
def learned_in_run(ledger: Ledger, video_ids: list[str]) -> str:
    """Markdown listing the videos a run analysed (the first LEARNED_LISTED of them: a long
    run's artifact stays readable, and its records are not all read at once), with their
    summaries and links."""
    listed = video_ids[:LEARNED_LISTED]
    with ledger.connect() as connection:
        records = read_records(connection, video_ids=listed) if listed else []
    return learned_markdown(records, len(video_ids))
