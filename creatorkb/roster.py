"""The creators roster file (YAML): who to follow, how important they are."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from creatorkb.channels import parse_channel_ref, resolve_channel, validate_channel_id
from creatorkb.errors import RosterError


class Priority(StrEnum):
    """How much a creator matters; sets scan interval and routing."""

    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"

    @property
    def rank(self) -> int:
        """0 for the most important."""
        return list(Priority).index(self)

    @classmethod
    def rank_sql(cls, column: str) -> str:
        """SQL for the rank of the priority in `column` (an unknown one ranks last)."""
        ranks = " ".join(f"WHEN '{priority.value}' THEN {priority.rank}" for priority in cls)
        return f"CASE {column} {ranks} ELSE {len(cls) - 1} END"


DEFAULT_SCAN_INTERVAL_DAYS: dict[Priority, float] = {
    Priority.critical: 3,
    Priority.high: 5,
    Priority.medium: 7,
    Priority.low: 14,
}


class Creator(BaseModel):
    """One roster entry. Either `channel_id` or `handle` (a @handle or channel URL)."""

    model_config = ConfigDict(extra="forbid")

    channel_id: str | None = None
    handle: str | None = None
    name: str = Field(min_length=1)
    priority: Priority = Priority.medium
    scan_interval_days: float | None = Field(
        None, gt=0, description="Overrides the priority's scan interval."
    )

    @field_validator("channel_id")
    @classmethod
    def _valid_channel_id(cls, value: str | None) -> str | None:
        try:
            return validate_channel_id(value) if value is not None else None
        except RosterError as error:
            raise ValueError(str(error)) from None

    @field_validator("handle")
    @classmethod
    def _valid_handle(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                parse_channel_ref(value)
        except RosterError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _has_a_channel(self) -> Creator:
        if self.channel_id is None and self.handle is not None:
            # A /channel/UC... URL names the id itself: nothing to resolve.
            self.channel_id = parse_channel_ref(self.handle).channel_id
        if self.channel_id is None and self.handle is None:
            raise ValueError("give channel_id (UC...) or handle (@name or channel URL)")
        return self

    @property
    def scan_interval(self) -> timedelta:
        days = self.scan_interval_days or DEFAULT_SCAN_INTERVAL_DAYS[self.priority]
        return timedelta(days=days)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.channel_id or self.handle})"

    def is_due(self, last_scanned_at: datetime | None, now: datetime) -> bool:
        """True when never scanned or the scan interval has passed."""
        return last_scanned_at is None or now - last_scanned_at >= self.scan_interval


def with_channel_id(
    creator: Creator, client: httpx.Client, known: Mapping[str, str] | None = None
) -> Creator:
    """The creator with its channel id, read from the page of its @handle or URL unless
    `known` (handles resolved earlier) has it; named after the channel if it had no name of
    its own. Raises ChannelNotResolved when the page names no channel."""
    if creator.channel_id is not None or creator.handle is None:
        return creator
    cached = (known or {}).get(creator.handle)
    if cached:
        return creator.model_copy(update={"channel_id": cached})
    channel = resolve_channel(parse_channel_ref(creator.handle), client)
    update: dict[str, object] = {"channel_id": channel.channel_id}
    if creator.name == creator.handle and channel.title:
        update["name"] = channel.title
    return creator.model_copy(update=update)


def load_roster(path: Path) -> list[Creator]:
    """Read and validate the roster; errors name the file and line."""
    if not path.exists():
        raise RosterError(
            f"roster file {path} does not exist; create it with `kb init` or "
            "`kb creators add`, or point KB_CREATORS at yours"
        )
    return parse_roster(path.read_text(encoding="utf-8"), str(path))


def parse_roster(text: str, source: str) -> list[Creator]:
    """Validate roster YAML; `source` names it in errors."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        raise RosterError(f"{source}:{_yaml_problem(error)}") from error
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("creators", []), list):
        raise RosterError(f"{source}: expected a mapping with a 'creators:' list at the top")
    items = data.get("creators") or []
    lines = _item_lines(document)
    creators: list[Creator] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"{source}:{lines[index]}" if index < len(lines) else source
        if not isinstance(item, dict):
            raise RosterError(f"{where}: creators[{index}] must be a mapping, got {item!r}")
        try:
            creator = Creator.model_validate(item)
        except (ValidationError, RosterError) as error:
            raise RosterError(f"{where}: creators[{index}]: {_explain(error)}") from error
        key = creator.channel_id or creator.handle or ""
        if key in seen:
            raise RosterError(f"{where}: {key} is listed twice (also creators[{seen[key]}])")
        seen[key] = index
        creators.append(creator)
    return creators


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    """'line:column: what' for a YAML error, pointing where the broken construct began."""
    start = error.context_mark or error.problem_mark
    where = f"{start.line + 1}:{start.column + 1}" if start else "?"
    detail = error.problem or "unreadable"
    if error.context:
        detail = f"{error.context}: {detail}"
    if error.problem_mark and start is not error.problem_mark:
        detail += f" (at line {error.problem_mark.line + 1})"
    return f"{where}: not valid YAML: {detail}"


def _item_lines(document: yaml.Node | None) -> list[int]:
    """1-based line of each item under `creators:`, for error messages."""
    if not isinstance(document, yaml.MappingNode):
        return []
    for key, value in document.value:
        if key.value == "creators" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _explain(error: ValidationError | RosterError) -> str:
    if isinstance(error, RosterError):
        return str(error)
    parts = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "entry"
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def dump_roster(creators: list[Creator]) -> str:
    """The roster as YAML, in the DESIGN.md format."""
    entries: list[dict[str, Any]] = []
    for creator in creators:
        entries.append(creator.model_dump(mode="json", exclude_none=True, exclude_defaults=False))
    return yaml.safe_dump({"creators": entries}, sort_keys=False, allow_unicode=True)


def save_roster(path: Path, creators: list[Creator]) -> None:
    """Write the roster atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(dump_roster(creators), encoding="utf-8")
    partial.replace(path)


def merge(existing: list[Creator], incoming: list[Creator]) -> tuple[list[Creator], int, int]:
    """Add new creators and update known ones; returns (roster, added, updated)."""
    merged = list(existing)
    position = {c.channel_id or c.handle: i for i, c in enumerate(merged)}
    added = updated = 0
    for creator in incoming:
        key = creator.channel_id or creator.handle
        if key in position:
            if merged[position[key]] != creator:
                merged[position[key]] = creator
                updated += 1
        else:
            position[key] = len(merged)
            merged.append(creator)
            added += 1
    return merged, added, updated


@dataclass(frozen=True)
class CreatorEdit:
    """What `kb creators add` was asked to set; None leaves a field as it is."""

    name: str | None = None
    priority: Priority | None = None
    scan_interval_days: float | None = None

    def changes(self) -> dict[str, Any]:
        return {field: value for field, value in asdict(self).items() if value is not None}


def find_creator(roster: list[Creator], channel_id: str | None, handle: str | None) -> int | None:
    """Position of the roster entry with this channel id or handle, if there is one."""
    for index, creator in enumerate(roster):
        if channel_id and creator.channel_id == channel_id:
            return index
        if handle and creator.handle and creator.handle.casefold() == handle.casefold():
            return index
    return None


def add_or_update(
    roster: list[Creator], position: int | None, new: Creator | None, edit: CreatorEdit
) -> tuple[list[Creator], Creator, list[str]]:
    """The roster with the entry at `position` edited (only the fields `edit` gives), or
    with `new` appended; returns the entry and what changed ("priority: medium -> high")."""
    roster = list(roster)
    if position is None:
        assert new is not None
        roster.append(new)
        return roster, new, []
    before = roster[position]
    after = Creator.model_validate({**before.model_dump(), **edit.changes()})
    roster[position] = after
    changed = [
        f"{field}: {getattr(before, field)} -> {getattr(after, field)}"
        for field in edit.changes()
        if getattr(before, field) != getattr(after, field)
    ]
    return roster, after, changed


def parse_import(text: str, source: str) -> list[Creator]:
    """Creators from a roster YAML, or a CSV with columns channel[,name[,priority]]."""
    if source.endswith((".yaml", ".yml")) or text.lstrip().startswith("creators"):
        return parse_roster(text, source)
    creators = []
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "channel" not in reader.fieldnames:
        raise RosterError(
            f"{source}: expected a roster YAML or a CSV whose header has a 'channel' column "
            "(plus optional 'name' and 'priority')"
        )
    for line_index, row in enumerate(reader, start=2):
        reference = (row.get("channel") or "").strip()
        try:
            ref = parse_channel_ref(reference)
            creators.append(
                Creator(
                    channel_id=ref.channel_id,
                    handle=None if ref.channel_id else reference,
                    name=(row.get("name") or "").strip() or reference,
                    priority=(row.get("priority") or "medium").strip() or "medium",
                )
            )
        except (ValidationError, RosterError) as error:
            raise RosterError(f"{source}:{line_index}: {_explain(error)}") from error
    return creators
