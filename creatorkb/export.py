"""Export the knowledge base: an Obsidian vault of notes, or JSON lines.

kb owns only the files it wrote: their names and hashes are kept in a manifest in the
export directory. A re-export rewrites a note of its own only when its content changed (an
unchanged note keeps its bytes and its modification time), removes notes of its own that no
longer exist, and refuses, before writing anything, when one of its notes would replace a
file it did not write. Every file is written beside its place and renamed into it, so no
file is ever left half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from creatorkb.errors import ExportFailed
from creatorkb.knowledge import Placed, VideoRecord
from creatorkb.mentions import Names

MANIFEST = ".creatorkb-export.json"
JSONL_NAME = "knowledge.jsonl"
Format = Literal["obsidian", "jsonl"]
# Characters Obsidian does not allow in note names, or that break [[links]].
_UNSAFE = re.compile(r'[\\/:*?"<>|#^\[\]\x00-\x1f]+')
_NAME_LIMIT = 120


@dataclass(frozen=True)
class ExportReport:
    directory: Path
    written: int  # new files
    updated: int  # files of kb's whose content changed
    unchanged: int
    removed: int  # files of kb's that are no longer exported

    def describe(self) -> str:
        return (
            f"{self.directory}: {self.written} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed"
        )


def note_name(text: str) -> str:
    """A note's file name (without .md): what Obsidian accepts and links resolve."""
    name = " ".join(_UNSAFE.sub(" ", text).split()).strip(". ")
    return name[:_NAME_LIMIT].rstrip(". ") or "untitled"


def _front_matter(fields: Mapping[str, Any]) -> str:
    dumped = yaml.safe_dump(dict(fields), sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{dumped}---\n"


def _link(name: str, shown: str | None = None) -> str:
    return f"[[{name}|{shown}]]" if shown and shown != name else f"[[{name}]]"


def _at(placed: Placed) -> str:
    return f"([{placed.at}]({placed.link}))" if placed.start_s is not None else "(unlocated)"


def _line(text: str) -> str:
    return " ".join(text.split())


class _Vault:
    """Note names for every video, tool and creator, unique across the vault: links use
    names alone, so the vault may sit in any folder of a larger one."""

    def __init__(self, records: Sequence[VideoRecord], names: Names) -> None:
        self.names = names
        self.video = {
            record.video_id: note_name(f"{record.title or record.video_id} ({record.video_id})")
            for record in records
        }
        spellings: dict[str, list[str]] = defaultdict(list)
        for record in records:
            for tool in record.tools:
                spellings[names.key(tool.name)].append(tool.name.strip())
        self.tool_listed = {key: names.listed(key, found) for key, found in spellings.items()}
        creators = {r.channel_id: r.creator or r.channel_id for r in records}
        taken = {name.casefold() for name in self.video.values()}
        self.creator = {
            channel_id: _unique(name, f"{name} ({channel_id})", taken)
            for channel_id, name in sorted(creators.items())
        }
        self.tool = {
            key: _unique(listed, f"{listed} (tool)", taken)
            for key, listed in sorted(self.tool_listed.items())
        }

    def tool_note(self, name: str) -> str:
        return self.tool[self.names.key(name)]


def _unique(name: str, fallback: str, taken: set[str]) -> str:
    """`name` as a note name, or `fallback` (numbered if need be) when it is taken."""
    chosen = note_name(name)
    number = 1
    while chosen.casefold() in taken:
        chosen = note_name(fallback if number == 1 else f"{fallback} {number}")
        number += 1
    taken.add(chosen.casefold())
    return chosen


def obsidian_notes(records: Sequence[VideoRecord], names: Names) -> dict[str, str]:
    """Relative path -> content of every note: one per video, tool and creator."""
    vault = _Vault(records, names)
    notes: dict[str, str] = {}
    for record in records:
        notes[f"Videos/{vault.video[record.video_id]}.md"] = _video_note(record, vault)
    by_tool: dict[str, list[tuple[VideoRecord, Placed]]] = defaultdict(list)
    for record in records:
        for tool in record.tools:
            by_tool[names.key(tool.name)].append((record, tool.quote))
    for key, mentions in sorted(by_tool.items()):
        notes[f"Tools/{vault.tool[key]}.md"] = _tool_note(vault.tool_listed[key], mentions, vault)
    by_creator: dict[str, list[VideoRecord]] = defaultdict(list)
    for record in records:
        by_creator[record.channel_id].append(record)
    for channel_id, videos in sorted(by_creator.items()):
        notes[f"Creators/{vault.creator[channel_id]}.md"] = _creator_note(videos, vault)
    return notes


def _video_note(record: VideoRecord, vault: _Vault) -> str:
    fields = {
        "video_id": record.video_id,
        "title": record.title,
        "creator": record.creator or record.channel_id,
        "channel_id": record.channel_id,
        "published": record.published_at.date().isoformat() if record.published_at else None,
        "link": record.link,
        "topics": record.topics,
        "tools": [vault.tool_listed[vault.names.key(tool.name)] for tool in record.tools],
        "route": record.route,
        "confidence": round(record.confidence, 4) if record.confidence is not None else None,
        "relevance": record.relevance,
        "kb_export": "creatorkb",  # written by `kb export`; a re-export replaces this note
    }
    creator = vault.creator[record.channel_id]
    lines = [
        f"# {_line(record.title or record.video_id)}",
        "",
        f"{_link(creator)} · [Watch on YouTube]({record.link})",
        "",
        "## Summary",
        "",
        _line(record.summary),
        "",
        "## Key points",
        "",
        *(f"- {_line(point.text)} {_at(point)}" for point in record.key_points),
    ]
    if record.techniques:
        lines += ["", "## Techniques"]
        for technique in record.techniques:
            lines += ["", f"### {_line(technique.name)}", ""]
            lines += [
                f"{number}. {_line(step.text)} {_at(step)}"
                for number, step in enumerate(technique.steps, start=1)
            ]
    if record.tools:
        lines += ["", "## Tools", ""]
        lines += [
            f'- {_link(vault.tool_note(tool.name), tool.name.strip())}: "{_line(tool.quote.text)}" '
            f"{_at(tool.quote)}"
            for tool in record.tools
        ]
    if record.evidence_quotes:
        lines += ["", "## Quotes", ""]
        lines += [f'- "{_line(quote.text)}" {_at(quote)}' for quote in record.evidence_quotes]
    return _front_matter(fields) + "\n" + "\n".join(lines) + "\n"


def _tool_note(listed: str, mentions: list[tuple[VideoRecord, Placed]], vault: _Vault) -> str:
    videos = list(dict.fromkeys(record.video_id for record, _ in mentions))
    creators = {record.channel_id for record, _ in mentions}
    dates = sorted(
        record.published_at.date().isoformat() for record, _ in mentions if record.published_at
    )
    fields = {
        "tool": listed,
        "videos": len(videos),
        "creators": len(creators),
        "first_mention": dates[0] if dates else None,
        "last_mention": dates[-1] if dates else None,
        "kb_export": "creatorkb",
    }
    lines = [
        f"# {_line(listed)}",
        "",
        f"Named in {len(videos)} videos by {len(creators)} creators.",
        "",
    ]
    lines += [
        f"- {_link(vault.video[record.video_id])} ({_link(vault.creator[record.channel_id])}): "
        f'"{_line(quote.text)}" {_at(quote)}'
        for record, quote in mentions
    ]
    return _front_matter(fields) + "\n" + "\n".join(lines) + "\n"


def _creator_note(videos: list[VideoRecord], vault: _Vault) -> str:
    first = videos[0]
    name = first.creator or first.channel_id
    fields = {
        "creator": name,
        "channel_id": first.channel_id,
        "channel": f"https://www.youtube.com/channel/{first.channel_id}",
        "videos": len(videos),
        "kb_export": "creatorkb",
    }
    lines = [f"# {_line(name)}", "", "## Videos", ""]
    for record in videos:
        day = record.published_at.date().isoformat() if record.published_at else "undated"
        lines.append(f"- {_link(vault.video[record.video_id])} ({day}): {_line(record.summary)}")
    tools: dict[str, int] = defaultdict(int)
    for record in videos:
        for key in {vault.names.key(tool.name) for tool in record.tools}:
            tools[key] += 1
    if tools:
        lines += ["", "## Tools", ""]
        lines += [
            f"- {_link(vault.tool[key])} ({count} videos)"
            for key, count in sorted(tools.items(), key=lambda item: (-item[1], item[0]))
        ]
    return _front_matter(fields) + "\n" + "\n".join(lines) + "\n"


def jsonl_files(records: Sequence[VideoRecord]) -> dict[str, str]:
    """One record per line, with its timestamp links."""
    lines = [json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True) for record in records]
    return {JSONL_NAME: "".join(line + "\n" for line in lines)}


def export(
    records: Sequence[VideoRecord], directory: Path, fmt: Format, names: Names
) -> ExportReport:
    """Write the export into `directory`, touching only files kb wrote there."""
    files = obsidian_notes(records, names) if fmt == "obsidian" else jsonl_files(records)
    return write_files(directory, files)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _prepare(directory: Path) -> Path:
    """The directory, created if missing; ExportFailed when it cannot be written to."""
    target = directory.expanduser()
    if target.exists() and not target.is_dir():
        raise ExportFailed(
            f"{target} is a file, not a directory; give a directory to export into (it is "
            "created if missing)"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".creatorkb-export-", dir=target))
    except OSError as error:
        raise ExportFailed(
            f"cannot write to {target} ({error.strerror or error}); choose a directory you can "
            "write to, or fix its permissions"
        ) from error
    return probe


def _manifest(directory: Path) -> dict[str, str]:
    path = directory / MANIFEST
    if not path.exists():
        return {}
    try:
        notes = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {str(name): str(digest) for name, digest in notes.items()}
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise ExportFailed(
            f"{path} (the list of files kb exported here) is unreadable ({error}); move it "
            "aside to export afresh"
        ) from error


def write_files(directory: Path, files: Mapping[str, str]) -> ExportReport:
    """Write `files` (relative path -> text) into `directory` as described above."""
    staging = _prepare(directory)
    target = staging.parent
    try:
        owned = _manifest(target)
        strangers = [name for name in files if name not in owned and (target / name).exists()]
        if strangers:
            raise ExportFailed(
                f"{target / strangers[0]} exists and was not written by kb export"
                + (f" ({len(strangers) - 1} more like it)" if len(strangers) > 1 else "")
                + "; move it, or export into another directory. Nothing was written."
            )
        written = updated = unchanged = removed = 0
        for name, text in sorted(files.items()):
            content = text.encode("utf-8")
            path = target / name
            if path.exists() and path.read_bytes() == content:
                unchanged += 1
                continue
            existed = path.exists()
            partial = staging / hashlib.sha256(name.encode()).hexdigest()
            partial.write_bytes(content)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, path)
            if existed:
                updated += 1
            else:
                written += 1
        for name in sorted(set(owned) - set(files)):
            path = target / name
            if path.is_file():
                path.unlink()
                removed += 1
        manifest = {
            "written_by": "creatorkb (kb export)",
            "files": {name: _digest(text.encode("utf-8")) for name, text in sorted(files.items())},
        }
        listing = json.dumps(manifest, indent=1) + "\n"
        path = target / MANIFEST
        if not path.exists() or path.read_text(encoding="utf-8") != listing:
            partial = staging / MANIFEST
            partial.write_text(listing, encoding="utf-8")
            os.replace(partial, path)
    except OSError as error:
        raise ExportFailed(
            f"writing into {target} failed ({error.strerror or error}); every file written is "
            "complete and the next export finishes the rest"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(target.resolve(), written, updated, unchanged, removed)
