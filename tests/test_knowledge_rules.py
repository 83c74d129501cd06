"""The knowledge base's rules, in milliseconds: quote location, passages, names, fusion,
BM25, query checks, export bookkeeping and the migration that rebuilt llm_calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from creatorkb.confidence import grounding
from creatorkb.errors import BadQuery, ExportFailed
from creatorkb.export import MANIFEST, note_name, write_files
from creatorkb.fts import REBUILD_MEMORY_LIMIT, load_fts, rebuild_full_text_index, rebuild_memory
from creatorkb.insight import Insight, ToolMention
from creatorkb.ledger import Ledger, Write
from creatorkb.mentions import Names
from creatorkb.search import MAX_QUERY_CHARS, check_query, full_text_ranking, fuse
from creatorkb.search_index import record_passages
from creatorkb.segments import Segment, TimedText, clock, watch_link, windows
from creatorkb.settings import KnowledgeOptions

SNIPPETS = [
    Segment(0.0, 1.54, "Hey, this is just a test"),
    Segment(1.54, 4.16, "this is not the original transcript"),
    Segment(5.0, 0.5, "♪"),
    Segment(5.7, 3.239, "just something shorter, I made up for testing"),
]


def insight(quotes: list[str], tools: dict[str, str] | None = None) -> Insight:
    return Insight(
        summary="A test.",
        key_points=["It is just a test of a transcript."],
        techniques=[],
        tools=[ToolMention(name=n, quote=q) for n, q in (tools or {}).items()],
        topics=["testing"],
        relevance=0.5,
        evidence_quotes=quotes,
        confidence=0.9,
    )


def test_a_quote_is_located_where_its_first_word_was_said() -> None:
    timed = TimedText(SNIPPETS)
    assert timed.locate("Hey, this is just a test") == 0.0
    # Across snippet boundaries, with case, punctuation and spacing ignored.
    assert timed.locate("NOT the original   transcript... just something shorter") == 1.54
    assert timed.locate("shorter, i made up") == 5.7
    assert timed.locate("a test this is not") == 0.0
    # Whole words only, and never a quote the video did not say.
    assert timed.locate("est this") is None
    assert timed.locate("a sentence nobody said") is None
    assert timed.locate("!!!") is None


def test_location_agrees_with_the_grounding_check() -> None:
    transcript = " ".join(s.text for s in SNIPPETS)
    candidates = [
        "just a test this",
        "Original Transcript",
        "transcript, just",
        "made up for testing",
        "made-up for testing",
        "testing!",
        "ust a test",
        "the original story",
        "♪ just something",
    ]
    timed = TimedText(SNIPPETS)
    for quote in candidates:
        # Length is a gate of its own (min_quote_words); the normalisation is what is shared.
        found = grounding(insight([quote]), transcript, min_quote_words=1)[0] == 1.0
        assert (timed.locate(quote) is not None) == found, quote


def test_paraphrases_are_placed_near_the_words_they_share() -> None:
    timed = TimedText(SNIPPETS)
    near = timed.place("The original transcript was something shorter", paraphrase=True)
    assert near is not None and (near.start_s, near.match) == (1.54, "near")
    assert timed.place("Cooking pasta in salted water", paraphrase=True) is None
    exact = timed.place("I made up for testing", paraphrase=True)
    assert exact is not None and (exact.start_s, exact.match) == (5.7, "exact")


def test_links_and_clock() -> None:
    assert watch_link("abc123def45") == "https://www.youtube.com/watch?v=abc123def45"
    assert watch_link("abc123def45", 1.54) == "https://www.youtube.com/watch?v=abc123def45&t=1s"
    assert watch_link("abc123def45", 3725.9).endswith("&t=3725s")
    assert (clock(5.7), clock(65), clock(3725.9)) == ("0:05", "1:05", "1:02:05")


def test_transcript_windows_never_cut_a_snippet() -> None:
    snippets = [Segment(i * 4.0, 4.0, " ".join([f"w{i}"] * 12)) for i in range(20)]
    found = windows(snippets, words=60)
    assert [w.start_s for w in found] == [0.0, 20.0, 40.0, 60.0]
    assert all(len(w.text.split()) == 60 for w in found)
    assert " ".join(w.text for w in found) == " ".join(s.text for s in snippets)


def test_passages_carry_where_they_were_said() -> None:
    record = insight(
        ["not the original transcript", "never said at all"],
        {"test": "Hey, this is just a test"},
    )
    found = record_passages("vid", record, SNIPPETS)
    passages = {(p.kind, p.seq): p for p in found}
    assert passages["quote", 0].start_s == 1.54
    assert passages["quote", 1].start_s is None and passages["quote", 1].located is None
    tool = passages["tool", 0]
    assert (tool.text, tool.label, tool.start_s) == ("test: Hey, this is just a test", "test", 0.0)
    assert passages["segment", 0].start_s == 0.0
    assert len({p.passage_id for p in found}) == len(found)  # one key each
    assert {p.kind for p in passages.values()} == {
        "summary",
        "key_point",
        "quote",
        "tool",
        "segment",
    }


def test_names_ignore_case_spacing_punctuation_and_follow_aliases() -> None:
    names = Names(KnowledgeOptions().aliases)
    assert names.key("Comfy UI") == names.key("comfyui") == names.key("Comfy-UI!")
    assert names.key("SDXL") == names.key("sd xl") == names.key("Stable Diffusion XL")
    assert names.key("SD") == names.key("stable diffusion") != names.key("SDXL")
    assert names.listed(names.key("sdxl"), ["SDXL", "sdxl"]) == "Stable Diffusion XL"
    assert names.listed("comfyui", ["Comfy UI", "ComfyUI", "ComfyUI"]) == "ComfyUI"
    assert names.listed("comfyui", ["Comfy UI", "ComfyUI"]) == "Comfy UI"  # tie: said first
    custom = Names({"A1111": "AUTOMATIC1111"})
    assert custom.key("a-1111") == custom.key("automatic 1111")


def test_reciprocal_rank_fusion() -> None:
    fused = dict(fuse(["a", "b", "c"], ["c", "a", "d"]))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [item for item, _ in fuse(["a", "b", "c"], ["c", "a", "d"])] == ["a", "c", "b", "d"]
    assert fuse([], []) == []


def test_query_checks() -> None:
    assert check_query("  upscale   the  image ") == "upscale the image"
    for bad, message in [
        ("", "query is empty"),
        (" \t\n", "query is empty"),
        ("?!", "has no words"),
        ("x" * (MAX_QUERY_CHARS + 1), "characters long"),
    ]:
        with pytest.raises(BadQuery, match=message):
            check_query(bad)


def test_bm25_from_the_index_tables_ranks_like_match_bm25() -> None:
    texts = [
        "upscale the portrait twice with a latent upscaler",
        "portrait lighting with one key light",
        "upscaling images keeps detail sharp when you upscale slowly",
        "a recipe for bread",
        "portrait portrait portrait of a cat",
    ]
    with duckdb.connect() as connection:
        load_fts(connection)
        connection.execute(
            "CREATE TABLE knowledge_passages (passage_id BIGINT PRIMARY KEY, video_id VARCHAR,"
            " text VARCHAR)"
        )
        connection.execute(
            "CREATE TABLE search_postings (termid BIGINT, passage_id BIGINT, len BIGINT, "
            "tf INTEGER)"
        )
        connection.executemany(
            "INSERT INTO knowledge_passages VALUES (?, 'v', ?)",
            [[100 - i, text] for i, text in enumerate(texts)],
        )
        setting = "SELECT current_setting('memory_limit')"
        [(limit,)] = connection.execute(setting).fetchall()
        with rebuild_memory(connection):
            [(bound,)] = connection.execute(setting).fetchall()
            rebuild_full_text_index(connection)
        with duckdb.connect() as other:  # the bound as DuckDB shows it ("122.0 MiB")
            other.execute(f"SET memory_limit = '{REBUILD_MEMORY_LIMIT}'")
            assert other.execute(setting).fetchall() == [(bound,)] != [(limit,)]
        # The rebuild's own memory bound is lifted after it (to the limit before, as DuckDB
        # rounds it: "18.8 GiB" is set back as 18.7 GiB).
        [(after,)] = connection.execute(setting).fetchall()
        (size, unit), (size_before, unit_before) = after.split(), limit.split()
        assert unit == unit_before and abs(float(size) - float(size_before)) < 0.15
        for query in ("upscale portrait", "portrait", "keeps sharp detail 1.5", "bread cat"):
            ours = full_text_ranking(connection, query, None)
            theirs = connection.execute(
                "SELECT passage_id FROM (SELECT passage_id, "
                "fts_main_knowledge_passages.match_bm25(passage_id, ?) AS score "
                "FROM knowledge_passages) WHERE score IS NOT NULL "
                "ORDER BY score DESC, passage_id",
                [query],
            ).fetchall()
            assert ours == [row[0] for row in theirs], query
            assert ours  # every query above matches something
        assert full_text_ranking(connection, "upscale", ["w"]) == []
        assert full_text_ranking(connection, "upscale", ["v"]) == [100, 98]


def test_the_rebuilds_memory_bound_is_lifted_even_when_a_statement_of_it_failed() -> None:
    """After the rebuild, the process gets its memory back: a result larger than the bound
    is read whole. (`RESET memory_limit` shows the default again but keeps the buffer pool
    at the bound: search then failed reading its vector pages.) A failed statement aborts
    the rebuild's transaction; the bound must not outlive that either."""
    larger_than_the_bound = "SELECT repeat('x', 1000000) || range FROM range(200)"  # 200 MB
    with duckdb.connect() as connection:
        connection.execute("CREATE TABLE numbers (n INTEGER)")
        with rebuild_memory(connection), pytest.raises(duckdb.OutOfMemoryException):
            connection.execute(larger_than_the_bound).fetchall()
        assert len(connection.execute(larger_than_the_bound).fetchall()) == 200
        connection.execute("BEGIN TRANSACTION")
        with pytest.raises(duckdb.ConversionException), rebuild_memory(connection):
            connection.execute(
                "INSERT INTO numbers SELECT CAST('x' || range AS INTEGER) FROM range(3)"
            )
        connection.execute("ROLLBACK")
        assert len(connection.execute(larger_than_the_bound).fetchall()) == 200


def test_note_names_are_safe_for_obsidian() -> None:
    assert note_name('What [is] #1: "SDXL" / Flux?') == "What is 1 SDXL Flux"
    assert note_name("...") == "untitled"
    assert len(note_name("x" * 500)) == 120


def test_reexport_touches_only_its_own_files(tmp_path: Path) -> None:
    first = write_files(tmp_path, {"Videos/a.md": "A\n", "Tools/t.md": "T\n"})
    assert (first.written, first.updated, first.unchanged) == (2, 0, 0)
    (tmp_path / "mine.md").write_text("mine")
    again = write_files(tmp_path, {"Videos/a.md": "A2\n", "Tools/u.md": "U\n"})
    assert (again.written, again.updated, again.removed) == (1, 1, 1)
    assert not (tmp_path / "Tools" / "t.md").exists()
    assert (tmp_path / "mine.md").read_text() == "mine"
    assert set(json.loads((tmp_path / MANIFEST).read_text())["files"]) == {
        "Videos/a.md",
        "Tools/u.md",
    }
    with pytest.raises(ExportFailed, match=r"mine\.md exists and was not written by kb export"):
        write_files(tmp_path, {"Videos/a.md": "A3\n", "mine.md": "ours now"})
    assert (tmp_path / "Videos" / "a.md").read_text() == "A2\n"  # refused before writing
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".creatorkb-export-")] == []


def test_migration_5_keeps_every_call_and_allows_ask_and_embed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate(up_to=4)
    row = {
        "call_id": "c1",
        "ts": datetime(2026, 11, 30, tzinfo=UTC),
        "flow_run_id": "run",
        "video_id": "vid",
        "decision_id": "d",
        "purpose": "refine",
        "provider": "anthropic",
        "model": "claude-sonnet-5",
        "input_tokens": 10,
        "output_tokens": 4,
        "cache_read_tokens": 1,
        "cache_write_tokens": 2,
        "cache_write_1h_tokens": 1,
        "latency_ms": 12.5,
        "cost_usd": "0.000123456789",
        "cloud_equivalent_usd": "0.0002",
        "energy_kwh": 0.0,
        "energy_usd": "0",
        "status": "ok",
        "error_type": None,
        "detail": {"stop_reason": "tool_use"},
    }
    ledger.write(Write.insert_new("llm_calls", ("call_id",), [row]))
    before = ledger.rows("SELECT * FROM llm_calls")
    with pytest.raises(duckdb.ConstraintException):
        ledger.write(
            Write.insert_new(
                "llm_calls", ("call_id",), [{**row, "call_id": "e"} | {"purpose": "embed"}]
            )
        )
    assert ledger.migrate(up_to=5) == 5
    assert ledger.rows("SELECT * FROM llm_calls") == before
    for purpose in ("ask", "embed"):
        ledger.write(
            Write.insert_new(
                "llm_calls", ("call_id",), [{**row, "call_id": purpose, "purpose": purpose}]
            )
        )
    with pytest.raises(duckdb.ConstraintException):
        ledger.write(
            Write.insert_new(
                "llm_calls", ("call_id",), [{**row, "call_id": "x", "purpose": "chat"}]
            )
        )
    assert {r["purpose"] for r in ledger.rows("SELECT purpose FROM llm_calls")} == {
        "refine",
        "ask",
        "embed",
    }


def test_a_long_runs_learned_artifact_lists_the_first_videos_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    from creatorkb.digest import LEARNED_LISTED
    from flows.indexing import learned_in_run

    ledger = Ledger(tmp_path / "kb.duckdb")
    ledger.migrate()
    now = datetime(2026, 11, 30, tzinfo=UTC)
    ids = [f"vid{number:08d}" for number in range(LEARNED_LISTED + 3)]
    ledger.write(
        Write.insert_new(
            "creators",
            ("channel_id",),
            [{"channel_id": "UC" + "c" * 22, "name": "C", "priority": "medium", "added_at": now}],
        ),
        Write.insert_new(
            "videos",
            ("video_id",),
            [
                {
                    "video_id": v,
                    "channel_id": "UC" + "c" * 22,
                    "title": f"T {v}",
                    "status": "analyzed",
                    "source": "feed",
                    "fetch_attempts": 1,
                    "discovered_at": now,
                    "updated_at": now,
                }
                for v in ids
            ],
        ),
        Write.insert_new(
            "analyses",
            ("video_id",),
            [
                {
                    "video_id": v,
                    "decision_id": None,
                    "final_tier": "local",
                    "model": "m",
                    "confidence": 0.9,
                    "result": insight([]).model_dump(),
                    "flagged": False,
                    "prompt_version": "insight-v1",
                    "created_at": now,
                }
                for v in ids
            ],
        ),
    )
    learned = learned_in_run.fn(ledger, ids)
    assert learned.count("### [") == LEARNED_LISTED
    assert "... and 3 more videos: `kb digest`" in learned
    assert f"T {ids[0]}" in learned and f"T {ids[-1]}" not in learned
