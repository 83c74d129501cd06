"""Roster parsing and validation, channel references, scan intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from creatorkb.catalog import CreatorState, due_for_scan
from creatorkb.channels import parse_channel_ref
from creatorkb.errors import RosterError
from creatorkb.roster import (
    Creator,
    Priority,
    dump_roster,
    load_roster,
    merge,
    parse_import,
    parse_roster,
)

ALICE = "UCaliceaaaaaaaaaaaaaaaaa"
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ALICE, (ALICE, None)),
        ("@some.creator", (None, "/@some.creator")),
        (f"https://www.youtube.com/channel/{ALICE}", (ALICE, None)),
        (f"youtube.com/channel/{ALICE}/videos", (ALICE, None)),
        ("https://m.youtube.com/@maker_1", (None, "/@maker_1")),
        ("https://www.youtube.com/c/OldName", (None, "/c/OldName")),
        ("https://www.youtube.com/user/legacy", (None, "/user/legacy")),
    ],
)
def test_channel_references_are_recognised(text: str, expected: tuple) -> None:
    ref = parse_channel_ref(text)
    assert (ref.channel_id, ref.page_path) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("UCshort", "'UCshort' is not a YouTube channel id"),
        ("UC" + "a" * 21 + "!", "is not a YouTube channel id"),
        ("@ab", "'@ab' is not a YouTube handle"),
        ("https://vimeo.com/channel/x", "not a channel id, @handle or youtube.com channel URL"),
        ("https://www.youtube.com/watch?v=abc", "a YouTube URL but not a channel's"),
    ],
)
def test_bad_channel_references_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RosterError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_channel_ref(text)


def test_roster_round_trips_in_the_design_format(tmp_path: Path) -> None:
    text = f"""
creators:
  - channel_id: {ALICE}   # a comment
    name: Alice
    priority: critical
  - handle: "@bobmakes"
    name: Bob
    scan_interval_days: 2
"""
    creators = parse_roster(text, "creators.yaml")
    assert creators == [
        Creator(channel_id=ALICE, name="Alice", priority=Priority.critical),
        Creator(handle="@bobmakes", name="Bob", scan_interval_days=2),
    ]
    path = tmp_path / "creators.yaml"
    path.write_text(dump_roster(creators))
    assert load_roster(path) == creators


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("creators:\n  - name: [x\n", "roster.yaml:2:11: not valid YAML"),
        (
            f"creators:\n  - channel_id: {ALICE}\n    name: A\n"
            "  - channel_id: UCbad\n    name: B\n",
            "roster.yaml:4: creators[1]: channel_id: 'UCbad' is not a YouTube channel id",
        ),
        (
            f"creators:\n  - channel_id: {ALICE}\n    name: A\n    priority: urgent\n",
            "roster.yaml:2: creators[0]: priority: Input should be 'critical', 'high'",
        ),
        ("creators:\n  - name: Nobody\n", "roster.yaml:2: creators[0]: entry: give channel_id"),
        (
            f"creators:\n  - channel_id: {ALICE}\n    name: A\n    prio: high\n",
            "roster.yaml:2: creators[0]: prio: Extra inputs are not permitted",
        ),
        (
            f"creators:\n  - channel_id: {ALICE}\n    name: A\n"
            f"  - channel_id: {ALICE}\n    name: again\n",
            f"roster.yaml:4: {ALICE} is listed twice",
        ),
        (
            f"creators:\n  - channel_id: {ALICE}\n    name: A\n    scan_interval_days: -1\n",
            "scan_interval_days: Input should be greater than 0",
        ),
        ("- just a list\n", "expected a mapping with a 'creators:' list"),
    ],
)
def test_roster_errors_name_the_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(RosterError) as raised:
        parse_roster(text, "roster.yaml")
    assert message in str(raised.value)


def test_missing_roster_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="kb init"):
        load_roster(tmp_path / "nope.yaml")


def test_csv_import_and_merge() -> None:
    incoming = parse_import(f"channel,name,priority\n{ALICE},Alice,high\n@bobmakes,,\n", "list.csv")
    assert incoming == [
        Creator(channel_id=ALICE, name="Alice", priority=Priority.high),
        Creator(handle="@bobmakes", name="@bobmakes"),
    ]
    existing = [Creator(channel_id=ALICE, name="Alice", priority=Priority.low)]
    roster, added, updated = merge(existing, incoming)
    assert (added, updated) == (1, 1)
    assert roster[0].priority == Priority.high
    with pytest.raises(RosterError, match=r"list\.csv:3: .*'@b' is not a YouTube handle"):
        parse_import(f"channel\n{ALICE}\n@b\n", "list.csv")
    with pytest.raises(RosterError, match="'channel' column"):
        parse_import("id,name\nx,y\n", "list.csv")


def test_priority_sets_the_scan_interval_and_the_order() -> None:
    creators = [
        Creator(channel_id="UC" + "l" * 22, name="low", priority=Priority.low),
        Creator(channel_id="UC" + "c" * 22, name="critical", priority=Priority.critical),
        Creator(channel_id="UC" + "m" * 22, name="medium", scan_interval_days=1),
        Creator(channel_id="UC" + "h" * 22, name="high", priority=Priority.high),
    ]
    assert [c.scan_interval for c in creators] == [
        timedelta(days=14),
        timedelta(days=3),
        timedelta(days=1),
        timedelta(days=5),
    ]

    def state(creator: Creator, days_ago: float) -> CreatorState:
        return CreatorState(
            creator.channel_id or "", None, NOW - timedelta(days=days_ago), None, None
        )

    states = {
        c.channel_id: state(c, days)
        for c, days in zip(creators, [13, 3, 1.5, 4], strict=True)
        if c.channel_id
    }
    assert [c.name for c in due_for_scan(creators, states, NOW)] == ["critical", "medium"]
    assert [c.name for c in due_for_scan(creators, {}, NOW)] == [
        "critical",
        "high",
        "medium",
        "low",
    ]
