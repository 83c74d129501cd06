"""The knowledge base through the real path: recorded YouTube transcripts with their real
snippet timings, fetched through the CONNECT proxy, analysed by the loopback models, then
read back with `kb show`, `kb search`, `kb tools`, `kb topics`, `kb digest` (a flow run on
the session's Prefect server) and `kb export`, all as a user runs them.

One pipeline run (`kb run`) is shared by the module's tests; the tests that change the
ledger put it back as they found it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from creatorkb import search_index
from creatorkb.embeddings import Embedder
from creatorkb.ledger import Ledger
from creatorkb.search_index import KnowledgeIndexer
from creatorkb.settings import CostOptions, KnowledgeOptions, OllamaOptions
from tests.analysts import by_title, grounded, is_question, transcript_in, uncited
from tests.conftest import KB
from tests.servers.anthropic import FakeAnthropic
from tests.servers.ollama import EMBEDDING_MODELS, FakeOllama, embed_words
from tests.servers.youtube import FakeYouTube

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.xdist_group("knowledge")]

ALICE = "UCalicekbaaaaaaaaaaaaaaa"
BOB = "UCbobkbbbbbbbbbbbbbbbbbb"
MARIMO = str(Path(sys.executable).parent / "marimo")
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "knowledge.py"
PORTRAIT_TALK = (
    "Today we build a portrait workflow in ComfyUI. First load the Flux model and set the "
    "sampler to twenty steps. Then add a LoRA for the painterly style. Finally upscale the "
    "image twice, which keeps the detail sharp. We compare the result with SDXL at the end."
)
LIGHTING_TALK = (
    "Good lighting starts with a key light in Blender. We render the scene and hand it to "
    "SDXL for texture. Open Comfy UI and wire the render into an image to image graph. "
    "Bounce light fills the shadows softly."
)
PROMPTS_TALK = (
    "Stable Diffusion XL understands long prompts. We compare samplers at thirty steps and "
    "keep the sharpest one. Negative prompts remove the noise from the sky."
)
# The recorded timedtext in youtube-transcript-api's test assets, as its snippets are timed.
RECORDED_SNIPPETS = [
    (0.0, 1.54, "Hey, this is just a test"),
    (1.54, 4.16, "this is not the original transcript"),
    (5.7, 3.239, "just something shorter, I made up for testing"),
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def naming(tools: list[str], topics: list[str], relevance: float):
    """A careful record whose tools are these names, each quoted from the sentence naming it."""

    def behave(prompt: str) -> dict[str, Any]:
        sentences = _SENTENCE.split(transcript_in(prompt))
        record = grounded(prompt)
        record["tools"] = [
            {"name": tool, "quote": next(s for s in sentences if tool.lower() in s.lower())}
            for tool in tools
        ]
        return {**record, "topics": topics, "relevance": relevance}

    return behave


def recorded(prompt: str) -> dict[str, Any]:
    """The record of the recorded transcript: one quote runs across two snippets, one was
    never said."""
    return {
        "summary": "A short recording made to test transcripts.",
        "key_points": ["This is just a test and not the original transcript."],
        "techniques": [],
        "tools": [{"name": "test", "quote": "Hey, this is just a test"}],
        "topics": ["testing"],
        "relevance": 0.3,
        "evidence_quotes": [
            "not the original transcript just something shorter",
            "I made up for testing",
            "a sentence nobody ever said",
        ],
        "confidence": 0.9,
    }


@dataclass
class Knowledge:
    """The shared knowledge base: where it lives, the fakes serving it, its video ids."""

    home: Path
    ledger: Ledger
    youtube: FakeYouTube
    ollama: FakeOllama
    anthropic: FakeAnthropic
    videos: dict[str, str]  # title word -> video id
    run_output: str

    @property
    def week(self) -> str:
        return f"{datetime.now(UTC):%G-W%V}"


# The environment of the shared knowledge base's `kb` commands: passed to each of them, never
# put in this process's environment (the fixture lives for the session, beside other tests).
_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def kb(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[Knowledge]:
    """Two creators, four videos (one of them the recorded transcript), one blocked; `kb run`
    scans, fetches and analyses them (Alice's locally, Bob's critical ones in the cloud).
    Session-scoped, so that it is built once even when other modules' tests run between
    this module's on the same worker."""
    home = tmp_path_factory.mktemp("knowledge")
    with (
        FakeYouTube() as youtube,
        FakeOllama(cold_load_s=0.0, embedding_models={"nomic-embed-text": 768}) as ollama,
        FakeAnthropic(min_cache_tokens=256) as anthropic,
    ):
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("KB_", "OLLAMA_", "ANTHROPIC_", "YOUTUBE_"))
        }
        _ENV.clear()
        _ENV.update(
            {
                **inherited,
                "KB_LEDGER": str(home / "data" / "kb.duckdb"),
                "KB_CREATORS": str(home / "creators.yaml"),
                "KB_REPORTS": str(home / "reports"),
                "KB_LEDGER_WAIT_SECONDS": "10",
                "KB_YOUTUBE_PAUSE_SECONDS": "0",
                "KB_POLICY_SHADOW_RATE": "0",
                "KB_POLICY_MIN_WEEKLY_SHADOWS": "0",
                "KB_POLICY_BATCH_PURPOSES": "{}",
                "OLLAMA_HOST": ollama.url,
                "KB_OLLAMA_DRAFT_MODEL": "llama3.2",
                "ANTHROPIC_BASE_URL": anthropic.url,
                "ANTHROPIC_API_KEY": anthropic.api_key,
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                **youtube.proxy_env(),
            }
        )
        rules = {
            "recorded": recorded,
            "portrait": naming(["ComfyUI", "Flux", "LoRA", "SDXL"], ["portraits", "art"], 0.9),
            "lighting": naming(["Blender", "SDXL", "Comfy UI"], ["lighting", "art"], 0.6),
            "prompts": naming(["Stable Diffusion XL"], ["prompting"], 0.7),
        }
        ollama.responder = anthropic.responder = by_title(rules)
        start = datetime(2026, 11, 2, 9, tzinfo=UTC)
        youtube.add_channel(ALICE, "Alice Builds", handle="@alicebuilds")
        youtube.add_channel(BOB, "Bob Renders")
        videos = {
            "recorded": youtube.add_video(ALICE, title="recorded test", published=start),
            "portrait": youtube.add_video(
                ALICE,
                title="portrait workflow",
                published=start + timedelta(days=3),
                transcript_text=PORTRAIT_TALK,
            ),
            "blocked": youtube.add_video(
                ALICE, title="blocked one", published=start, transcript="ip_blocked"
            ),
            "lighting": youtube.add_video(
                BOB,
                title="lighting for renders",
                published=start + timedelta(days=1),
                transcript_text=LIGHTING_TALK,
            ),
            "prompts": youtube.add_video(
                BOB,
                title="prompts that work",
                published=start + timedelta(days=18),
                transcript_text=PROMPTS_TALK,
            ),
        }
        flow_kb("init")
        flow_kb("creators", "add", "@alicebuilds", "--priority", "medium")
        flow_kb("creators", "add", BOB, "--name", "Bob Renders", "--priority", "critical")
        output = flow_kb("run").stdout
        yield Knowledge(
            home,
            Ledger(home / "data" / "kb.duckdb"),
            youtube,
            ollama,
            anthropic,
            videos,
            output,
        )
        _ENV.clear()


def kb_command(
    *args: str, expect: int = 0, prefect: bool = False, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`kb` as a user runs it, in the shared knowledge base's environment (or `env`). A
    command that only reads runs with no Prefect server configured: it reads the
    environment's settings and must not need Prefect at all. The terminal is wide, so that
    an error naming a long temporary path stays on its one line."""
    environment = dict(_ENV if env is None else env)
    if not prefect:
        environment.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [KB, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environment, "COLUMNS": "1000"},
    )
    assert done.returncode == expect, f"kb {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def read_kb(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return kb_command(*args, expect=expect)


def flow_kb(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """A command that runs a flow: on the session's Prefect server."""
    return kb_command(*args, expect=expect, prefect=True)


def kb_json(*args: str) -> Any:
    return json.loads(read_kb(*args, "--json").stdout)


def kb_jsons(*commands: tuple[str, ...]) -> list[Any]:
    """Several `kb ... --json` commands at once."""
    return [json.loads(out) for out in run_all(*(((*c, "--json"), 0) for c in commands))]


def run_all(*commands: tuple[tuple[str, ...], int]) -> list[str]:
    """Several read-only `kb` commands at once (they may read together): their output."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda command: read_kb(*command[0], expect=command[1]), commands)
        return [result.stdout for result in done]


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_the_pipeline_analysed_every_transcribed_video(kb: Knowledge) -> None:
    rows = {r["video_id"]: r["status"] for r in kb.ledger.rows("SELECT * FROM videos")}
    assert rows[kb.videos["blocked"]] == "blocked"
    assert {rows[kb.videos[w]] for w in ("recorded", "portrait", "lighting", "prompts")} == {
        "analyzed"
    }
    assert "local_accept" in kb.run_output and "cloud_direct" in kb.run_output


def test_fetch_keeps_the_real_snippet_timings(kb: Knowledge) -> None:
    stored = kb.ledger.rows(
        "SELECT start_s, duration_s, text FROM transcript_segments WHERE video_id = ? ORDER BY seq",
        [kb.videos["recorded"]],
    )
    # The recorded response's empty snippet (at 5.0 s) is dropped, as from the transcript.
    assert [(r["start_s"], r["duration_s"], r["text"]) for r in stored] == RECORDED_SNIPPETS
    [text] = kb.ledger.rows(
        "SELECT text FROM transcripts WHERE video_id = ?", [kb.videos["recorded"]]
    )
    assert text["text"] == " ".join(snippet for _, _, snippet in RECORDED_SNIPPETS)


def test_show_reads_the_record_with_timestamp_links(kb: Knowledge) -> None:
    video = kb.videos["recorded"]
    shown, blocked, unknown, as_json = run_all(
        (("show", video), 0),
        (("show", kb.videos["blocked"]), 1),
        (("show", "nosuchvideo"), 1),
        (("show", video, "--json"), 0),
    )
    link = f"https://www.youtube.com/watch?v={video}"
    assert "recorded test" in shown and "Alice Builds" in shown and "published 2026-11-02" in shown
    assert link in shown
    # A quote running across two snippets starts in the first: 1.54 s -> t=1s.
    assert f'"not the original transcript just something shorter"  0:01 {link}&t=1s' in shown
    assert f'"I made up for testing"  0:05 {link}&t=5s' in shown
    assert '"a sentence nobody ever said"  unlocated' in shown
    assert f'test: "Hey, this is just a test"  0:00 {link}&t=0s' in shown
    assert "Route       local_accept" in shown and "grounding 0.80" in shown
    assert re.search(r"Cost        cloud \$0\.000000 · energy \d+\.\d+ kWh", shown)
    assert "is not analysed yet (status blocked)" in one_error_line(blocked)
    assert "no video 'nosuchvideo' in the ledger" in one_error_line(unknown)

    record = json.loads(as_json)
    assert [(q["text"], q["start_s"], q["link"]) for q in record["evidence_quotes"]] == [
        ("not the original transcript just something shorter", 1.54, f"{link}&t=1s"),
        ("I made up for testing", 5.7, f"{link}&t=5s"),
        ("a sentence nobody ever said", None, link),
    ]
    assert record["route"] == "local_accept" and record["components"]["grounding"] == 0.8
    assert record["cost"]["calls"] >= 2  # the draft and the embedding of its passages
    assert record["cost"]["energy_kwh"] > 0


def test_search_ranks_by_full_text_and_by_meaning(kb: Knowledge) -> None:
    result, meaning = kb_jsons(("search", "upscale the portrait"), ("search", "twice"))
    printed = read_kb("search", "upscale the portrait", "--limit", "3").stdout
    assert result["semantic"] is True and result["semantic_off"] is None
    top = result["hits"][0]
    assert top["video_id"] == kb.videos["portrait"] and top["creator"] == "Alice Builds"
    assert top["full_text_rank"] == 1 and top["semantic_rank"] is not None
    assert re.fullmatch(
        rf"https://www\.youtube\.com/watch\?v={top['video_id']}&t=\d+s", top["link"]
    )
    step = next(hit for hit in result["hits"] if hit["text"].startswith("Finally upscale"))
    # The step was located in the timed snippets: the 12-word snippets of the fake's timedtext.
    assert step["start_s"] is not None and step["link"].endswith(f"&t={int(step['start_s'])}s")

    # "twice" is an English stop word, ignored by the full-text index: only meaning finds it.
    assert meaning["hits"], meaning
    assert all(hit["full_text_rank"] is None for hit in meaning["hits"])
    assert all("twice" in hit["text"] for hit in meaning["hits"][:2])

    assert "3 hits for upscale the portrait (full text + semantic)" in printed
    assert "portrait workflow — Alice Builds" in printed and "&t=" in printed

    embeds = kb.ledger.rows(
        "SELECT video_id, input_tokens, energy_kwh, status FROM llm_calls "
        "WHERE purpose = 'embed' AND provider = 'ollama'"
    )
    indexed = {row["video_id"] for row in embeds if row["video_id"]}
    assert indexed == {kb.videos[w] for w in ("recorded", "portrait", "lighting", "prompts")}
    queries = [row for row in embeds if row["video_id"] is None]
    assert len(queries) >= 3  # one call per search above, recorded like any local call
    assert all(row["status"] == "ok" and row["input_tokens"] > 0 for row in embeds)
    assert all(row["energy_kwh"] > 0 for row in embeds)


def test_search_filters_by_creator_tool_topic_and_date(kb: Knowledge) -> None:
    by_creator, by_tool, by_topic, recent = kb_jsons(
        ("search", "light", "--creator", "bob renders"),
        ("search", "samplers steps", "--tool", "sdxl"),
        ("search", "light", "--topic", "LIGHTING"),
        ("search", "samplers steps", "--since", "2026-11-15"),
    )
    assert by_creator["hits"] and {h["creator"] for h in by_creator["hits"]} == {"Bob Renders"}
    # SDXL and Stable Diffusion XL are one tool: the alias list says so.
    assert {h["video_id"] for h in by_tool["hits"]} <= {
        kb.videos[w] for w in ("portrait", "lighting", "prompts")
    }
    assert kb.videos["prompts"] in {h["video_id"] for h in by_tool["hits"]}
    assert {h["video_id"] for h in by_topic["hits"]} == {kb.videos["lighting"]}
    assert {h["video_id"] for h in recent["hits"]} == {kb.videos["prompts"]}


def test_bad_search_input_gets_one_line_and_status_1(kb: Knowledge) -> None:
    outputs = run_all(
        (("search", "   "), 1),
        (("search", "x" * 10_000), 1),
        (("search", "light", "--creator", "nobody"), 1),
        (("search", "light", "--tool", "photoshop"), 1),
        (("search", "light", "--since", "2026-13-01"), 1),
        (("tools", "--since", "last week"), 1),
    )
    empty, long, creator, tool, date, tools_date = map(one_error_line, outputs)
    assert "the search query is empty; give some words" in empty
    assert "is 10,000 characters long; kb searches with at most 500" in long
    assert "no creator 'nobody' in the ledger" in creator and "Alice Builds" in creator
    assert "no tool 'photoshop' in the knowledge base; `kb tools` lists them" in tool
    assert "--since '2026-13-01' is not a date; write it like 2026-11-30" in date
    assert "--since 'last week' is not a date" in tools_date


def test_search_says_why_semantic_ranking_is_off(kb: Knowledge) -> None:
    before = len(kb.ledger.rows("SELECT call_id FROM llm_calls WHERE status = 'error'"))
    pulled = dict(kb.ollama.embedding_models)
    kb.ollama.embedding_models.clear()
    try:
        printed, result_text = run_all(
            (("search", "upscale the portrait"), 0), (("search", "twice", "--json"), 0)
        )
        result = json.loads(result_text)
    finally:
        kb.ollama.embedding_models.update(pulled)
    assert "(full text only)" in printed and "portrait workflow — Alice Builds" in printed
    assert "semantic ranking is off: Ollama at" in printed
    assert 'model "nomic-embed-text" not found, try pulling it first' in printed
    assert "run `ollama pull nomic-embed-text`" in printed
    assert result["semantic"] is False and result["hits"] == []
    failed = kb.ledger.rows(
        "SELECT purpose, error_type FROM llm_calls WHERE status = 'error' ORDER BY ts"
    )
    assert len(failed) == before + 2
    assert failed[-1] == {"purpose": "embed", "error_type": "ResponseError"}


def test_a_ledger_from_before_the_vector_pages_searches_by_full_text_until_analyze(
    kb: Knowledge, tmp_path: Path
) -> None:
    """A ledger written before migration 9 (coarse pages only): search answers from full
    text and says what to run; `kb init` migrates it; the next `kb analyze`, with nothing to
    analyse, writes the pages; then search ranks by meaning again, its cosine within 0.001 of
    DuckDB's own over the stored float32 vectors."""
    older = Ledger(kb.ledger.snapshot(tmp_path / "older.duckdb"))
    with older.transaction() as connection:
        connection.execute("ALTER TABLE search_vector_pages DROP COLUMN embeddings")
        connection.execute("DELETE FROM schema_migrations WHERE version >= 9")
    env = {**_ENV, "KB_LEDGER": str(older.path)}

    def search(query: str) -> Any:
        return json.loads(kb_command("search", query, "--json", env=env).stdout)

    before = search("upscale the portrait")
    assert before["semantic"] is False and before["hits"], before
    assert (
        "schema version 8, before the current vector pages; `kb init` migrates it"
        in (before["semantic_off"])
    )
    kb_command("init", env=env, prefect=True)
    migrated = search("upscale the portrait")
    assert migrated["semantic"] is False and migrated["hits"]
    assert "the next `kb analyze` writes them" in migrated["semantic_off"]

    kb_command("analyze", env=env, prefect=True)
    after = search("twice")
    assert after["semantic"] is True and after["semantic_off"] is None
    assert all("twice" in hit["text"] for hit in after["hits"][:2])
    query_vector = embed_words("twice", EMBEDDING_MODELS["nomic-embed-text"])[:256]
    for hit in after["hits"]:
        row, *_ = older.rows(  # a text may be several passages; one embedding
            "SELECT array_cosine_similarity(e.embedding, CAST(? AS FLOAT[256])) AS cosine "
            "FROM knowledge_passages p JOIN passage_embeddings e USING (text_key) "
            "WHERE p.video_id = ? AND p.text = ?",
            [query_vector, hit["video_id"], hit["text"]],
        )
        cosine = row["cosine"]
        assert abs(hit["similarity"] - cosine) < 1e-3, (hit, cosine)


def test_a_rebuild_commits_its_vector_pages_as_it_goes_and_search_reads_the_old_ones_till_done(
    kb: Knowledge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vector pages are committed a few at a time beside the old ones (in one
    transaction DuckDB held them all in memory until the commit, then more to write them:
    the rebuild of 205,000 passages failed out of memory under its bound), and replace them
    only with the BM25 index: a search while the pages are being written gets the old
    index's answer, whole."""
    copy = Ledger(kb.ledger.snapshot(tmp_path / "rebuilding.duckdb"))
    env = {**_ENV, "KB_LEDGER": str(copy.path)}

    def search() -> Any:
        return json.loads(kb_command("search", "upscale the portrait", "--json", env=env).stdout)

    before = search()
    assert before["semantic"] is True and before["hits"], before
    [counted] = copy.rows("SELECT count(*) AS n FROM passage_embeddings")
    monkeypatch.setattr(search_index, "PAGE", 2)  # several pages from this small base
    monkeypatch.setattr(search_index, "PAGES_PER_COMMIT", 1)
    during: dict[str, Any] = {}
    write_pages = KnowledgeIndexer._write_vector_pages

    def pausing(indexer: KnowledgeIndexer, model: str) -> str:
        new = write_pages(indexer, model)
        [row] = copy.rows(f"SELECT count(*) AS n FROM {new}")
        during["pages"], during["search"] = row["n"], search()  # from another process
        return new

    monkeypatch.setattr(KnowledgeIndexer, "_write_vector_pages", pausing)
    embedder = Embedder(OllamaOptions(host=kb.ollama.url), KnowledgeOptions())
    KnowledgeIndexer(copy, embedder, CostOptions()).rebuild_full_text()

    assert during["pages"] == -(-counted["n"] // 2) > 1  # committed before the swap
    assert during["search"] == before
    assert search() == before  # the new pages, from the same vectors
    [row] = copy.rows(
        "SELECT count(*) AS pages, (SELECT count(*) FROM duckdb_tables() "
        "WHERE table_name = 'search_vector_pages_new') AS left_over FROM search_vector_pages"
    )
    assert row == {"pages": during["pages"], "left_over": 0}


def test_tools_and_topics_are_counted_under_one_name(kb: Knowledge) -> None:
    found, alice = kb_jsons(("tools",), ("tools", "--creator", "@alicebuilds"))
    tools = {tool["name"]: tool for tool in found["tools"]}
    sdxl = tools["Stable Diffusion XL"]
    assert (sdxl["videos"], sdxl["creators"]) == (3, 2)
    assert sdxl["spellings"] == ["SDXL", "Stable Diffusion XL"]
    assert (sdxl["first"], sdxl["last"]) == ("2026-11-03", "2026-11-20")
    # Spelled two ways once each: listed under the spelling said first (Bob's, on Nov 3).
    comfy = tools["Comfy UI"]
    assert (comfy["videos"], comfy["creators"]) == (2, 2)
    assert comfy["spellings"] == ["Comfy UI", "ComfyUI"]
    assert set(comfy["video_ids"]) == {kb.videos["portrait"], kb.videos["lighting"]}
    assert "ComfyUI" not in tools
    assert [t["name"] for t in found["techniques"]] == ["workflow"]

    assert {tool["name"] for tool in alice["tools"]} == {
        "ComfyUI",
        "Flux",
        "LoRA",
        "Stable Diffusion XL",
        "test",
    }
    table, topics = run_all((("tools", "--since", "2026-11-10"), 0), (("topics",), 0))
    assert "Stable Diffusion XL" in table and "Blender" not in table
    assert re.search(r"│ art\s+│ 2\s+│ 2\s+│", topics), topics
    assert "prompting" in topics and "testing" in topics


def test_weekly_digest_runs_through_prefect(kb: Knowledge, prefect_api: str) -> None:
    printed = flow_kb("digest", "--week", kb.week).stdout
    assert f"Knowledge digest {kb.week}" in printed
    assert "Alice Builds" in printed and "Bob Renders" in printed
    assert "portrait workflow" in printed and "prompts that work" in printed
    path = kb.home / "reports" / f"digest-{kb.week}.md"
    digest = path.read_text(encoding="utf-8")
    assert "## Alice Builds" in digest and "## Bob Renders" in digest
    assert "New tools: Comfy UI, Flux, LoRA, Stable Diffusion XL, test" in digest
    link = f"https://www.youtube.com/watch?v={kb.videos['portrait']}&t="
    assert f"({link}" in digest.split("## Bob Renders")[0]  # key points with timestamp links
    artifacts = httpx.post(
        f"{prefect_api}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["knowledge-digest"]}}, "sort": "CREATED_DESC"},
        timeout=30,
    ).json()
    assert any(f"Knowledge digest {kb.week}" in a["data"] for a in artifacts)
    bad = read_kb("digest", "--week", "2026-49", expect=1).stdout
    assert "is not an ISO week; write it like 2026-W47" in one_error_line(bad)


def ask_calls(kb: Knowledge) -> list[dict[str, Any]]:
    return kb.ledger.rows(
        "SELECT c.provider, c.decision_id, d.route, d.video_id FROM llm_calls c "
        "LEFT JOIN routing_decisions d USING (decision_id) WHERE c.purpose = 'ask' ORDER BY c.ts"
    )


def test_ask_answers_locally_from_the_passages_with_their_moments(kb: Knowledge) -> None:
    before = len(ask_calls(kb))
    answer = json.loads(
        flow_kb("ask", "How do I keep the detail sharp when I upscale?", "--json").stdout
    )
    assert answer["route"] == "local_accept" and answer["provider"] == "ollama"
    assert "upscale the image twice" in answer["text"].lower() and "[1]" in answer["text"]
    [citation] = answer["citations"]
    portrait = kb.videos["portrait"]
    assert citation["video_id"] == portrait
    assert citation["link"] == f"https://www.youtube.com/watch?v={portrait}&t=9s"
    [call] = ask_calls(kb)[before:]
    assert call["route"] == "local_accept" and call["video_id"] is None
    [stored] = kb.ledger.rows(
        "SELECT kind, decision_id, text, citations FROM answers WHERE answer_id = ?",
        [answer["answer_id"]],
    )
    assert stored["kind"] == "ask" and stored["decision_id"] == call["decision_id"]
    assert json.loads(stored["citations"])[0]["link"] == citation["link"]

    printed = flow_kb("ask", "How do I keep the detail sharp when I upscale?").stdout
    assert "Sources" in printed and f"[1] portrait workflow at 0:09  {citation['link']}" in printed
    assert "local_accept via ollama llama3.2" in printed


def test_ask_escalates_an_uncited_local_answer_to_the_cloud(kb: Knowledge) -> None:
    answers_well = kb.ollama.responder

    def uncited_questions(request: Any) -> dict[str, Any]:
        return uncited(request.user) if is_question(request.user) else answers_well(request)

    kb.ollama.responder = uncited_questions
    try:
        answer = json.loads(flow_kb("ask", "Where does good lighting start?", "--json").stdout)
    finally:
        kb.ollama.responder = answers_well
    assert answer["route"] == "cloud_refine" and answer["provider"] == "anthropic"
    assert "the answer cites no passage" in answer["reason"]
    assert "MagicTool" not in answer["text"] and answer["citations"]
    assert answer["citations"][0]["video_id"] == kb.videos["lighting"]
    assert [c["provider"] for c in ask_calls(kb)[-2:]] == ["ollama", "anthropic"]


def test_ask_about_nothing_in_the_knowledge_base_pays_no_model(kb: Knowledge) -> None:
    before = len(ask_calls(kb))
    answer = json.loads(flow_kb("ask", "What hydration suits a sourdough?", "--json").stdout)
    assert answer["text"].startswith("The knowledge base has nothing on this")
    assert answer["route"] is None and answer["citations"] == []
    assert len(ask_calls(kb)) == before
    assert read_kb("ask", "  ", expect=1).stdout.startswith("error: the search query is empty")


def test_the_analysis_run_lists_what_it_learned(kb: Knowledge, prefect_api: str) -> None:
    artifacts = httpx.post(
        f"{prefect_api}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["analysis-summary"]}}, "sort": "CREATED_DESC"},
        timeout=30,
    ).json()
    mine = [a["data"] for a in artifacts if kb.videos["portrait"] in a["data"]]
    assert mine, "no analysis-summary artifact lists this module's videos"
    learned = mine[0]
    assert "# Analysis summary" in learned and "## What this run learned" in learned
    for word in ("recorded", "portrait", "lighting", "prompts"):
        assert f"(https://www.youtube.com/watch?v={kb.videos[word]})" in learned
        assert f"`kb show {kb.videos[word]}`" in learned
    assert "Today we build a portrait workflow in ComfyUI." in learned  # its summary


def _vault_files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_export_writes_an_obsidian_vault_and_reexports_in_place(
    kb: Knowledge, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    (vault / "Tools").mkdir(parents=True)
    (vault / "My own notes.md").write_text("mine\n")
    (vault / "Tools" / "Krita.md").write_text("not kb's\n")

    first = read_kb("export", str(vault)).stdout
    assert "exported 4 videos as obsidian" in first
    note = next((vault / "Videos").glob("portrait workflow (*).md")).read_text()
    front = yaml.safe_load(note.split("---\n")[1])
    assert front["video_id"] == kb.videos["portrait"] and front["creator"] == "Alice Builds"
    assert front["published"] == "2026-11-05" and front["route"] == "local_accept"
    assert front["tools"] == ["Comfy UI", "Flux", "LoRA", "Stable Diffusion XL"]
    assert front["topics"] == ["portraits", "art"] and 0 < front["confidence"] <= 1
    assert "[[Alice Builds]]" in note and "[[Stable Diffusion XL|SDXL]]" in note
    assert "[[Comfy UI|ComfyUI]]" in note
    assert f"](https://www.youtube.com/watch?v={kb.videos['portrait']}&t=" in note
    tool = (vault / "Tools" / "Stable Diffusion XL.md").read_text()
    assert "Named in 3 videos by 2 creators." in tool
    assert "[[portrait workflow (" in tool and "[[Bob Renders]]" in tool
    creator = (vault / "Creators" / "Bob Renders.md").read_text()
    assert "[[lighting for renders (" in creator and "[[Blender]]" in creator
    recorded_note = next((vault / "Videos").glob("recorded test (*).md")).read_text()
    assert '"a sentence nobody ever said" (unlocated)' in recorded_note
    assert (vault / "My own notes.md").read_text() == "mine\n"
    assert (vault / "Tools" / "Krita.md").read_text() == "not kb's\n"

    before = _vault_files(vault)
    again = read_kb("export", str(vault)).stdout
    assert "0 new, 0 updated" in again and "0 removed" in again
    assert _vault_files(vault) == before  # same bytes, same modification times

    edited = vault / "Tools" / "Flux.md"
    edited.write_text("scribbled over\n")
    read_kb("export", str(vault))
    assert edited.read_bytes() == before["Tools/Flux.md"][0]
    assert (vault / "My own notes.md").read_text() == "mine\n"

    read_kb("export", str(tmp_path / "lines"), "--format", "jsonl")
    text = (tmp_path / "lines" / "knowledge.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert {line["video_id"] for line in lines} == {
        kb.videos[w] for w in ("recorded", "portrait", "lighting", "prompts")
    }
    quotes = next(line for line in lines if line["video_id"] == kb.videos["recorded"])
    assert quotes["evidence_quotes"][0]["link"].endswith("&t=1s")


def test_export_refuses_bad_targets_and_writes_nothing(kb: Knowledge, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    taken = tmp_path / "taken"
    (taken / "Tools").mkdir(parents=True)
    (taken / "Tools" / "Blender.md").write_text("someone else's Blender note\n")
    _forbid_writing(locked)
    try:
        file_out, locked_out, taken_out, format_out = run_all(
            (("export", str(a_file)), 1),
            (("export", str(locked / "vault")), 1),
            (("export", str(taken)), 1),
            (("export", str(tmp_path / "x"), "--format", "pdf"), 1),
        )
    finally:
        _allow_writing(locked)
    assert "is a file, not a directory" in one_error_line(file_out)
    assert "cannot write to" in one_error_line(locked_out)
    assert "choose a directory you can write to" in locked_out
    assert "Blender.md exists and was not written by kb export" in one_error_line(taken_out)
    assert "Nothing was written" in taken_out
    assert "--format 'pdf' is not a format kb exports" in one_error_line(format_out)
    assert a_file.read_text() == "a file\n" and list(locked.iterdir()) == []
    assert sorted(str(p.relative_to(taken)) for p in taken.rglob("*")) == [
        "Tools",
        "Tools/Blender.md",
    ]
    assert not (tmp_path / "x").exists()


def _forbid_writing(directory: Path) -> None:
    """A directory this process cannot write to: read-only mode, and (root ignores modes)
    the immutable attribute."""
    directory.chmod(0o555)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)


def _allow_writing(directory: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    directory.chmod(0o755)


def test_the_knowledge_notebook_runs_on_the_ledger(kb: Knowledge, tmp_path: Path) -> None:
    notebook = tmp_path / NOTEBOOK.name  # run from a copy: marimo writes a session beside it
    notebook.write_text(NOTEBOOK.read_text(encoding="utf-8"), encoding="utf-8")
    page = tmp_path / "knowledge.html"
    done = subprocess.run(
        [MARIMO, "export", "html", str(notebook), "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_ENV, "KB_NOTEBOOK_QUERY": "upscale"},
    )
    assert done.returncode == 0, done.stdout + done.stderr  # any failing cell fails this
    html = page.read_text(encoding="utf-8")
    assert "Tools over time" in html and "Topics by creator" in html
    assert "Stable Diffusion XL" in html and "Bob Renders" in html
    assert "The costliest videos" in html and "lighting for renders" in html  # cloud-paid
    assert "The most useful videos" in html
    assert "Finally upscale the image twice" in html  # the search box's hit


def test_fetch_segments_backfills_timings_without_analysing_again(kb: Knowledge) -> None:
    video = kb.videos["recorded"]
    paid = kb.ledger.rows("SELECT count(*) AS n FROM llm_calls WHERE purpose <> 'embed'")
    with kb.ledger.transaction() as connection:  # as if fetched before kb kept timings
        connection.execute("DELETE FROM transcript_segments WHERE video_id = ?", [video])
    assert kb_json("show", video)["evidence_quotes"][0]["start_s"] is None

    printed = flow_kb("fetch", "--segments").stdout

    assert re.search(r"│ 1\s+│ 1\s+│ 0\s+│ 0\s+│", printed), printed
    assert kb_json("show", video)["evidence_quotes"][0]["start_s"] == 1.54
    assert (
        kb.ledger.rows("SELECT count(*) AS n FROM llm_calls WHERE purpose <> 'embed'") == paid
    )  # nothing analysed or paid again
    hit = kb_json("search", "original transcript shorter", "--creator", ALICE)["hits"][0]
    assert hit["video_id"] == video and hit["link"].endswith("&t=1s")


def test_an_empty_knowledge_base_says_so(kb_env: Path) -> None:
    kb_command("init", env=os.environ)
    search, tools, export = (
        kb_command(*args, expect=1, env=os.environ).stdout
        for args in (("search", "anything"), ("tools",), ("export", str(kb_env / "v")))
    )
    for output in (search, tools, export):
        assert "the knowledge base is empty: no video is analysed yet; run `kb run`" in (
            one_error_line(output)
        )
    assert not (kb_env / "v").exists()
