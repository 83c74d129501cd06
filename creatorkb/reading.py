"""A local model reading a whole transcript into one insight record, never cut.

Ollama silently cuts a prompt longer than its context window. So a transcript longer than
the window is read in parts (map) and the parts' records merged in groups that fit (reduce);
a part Ollama still cut is read again in halves. Coverage is the share of these reads that
saw their whole prompt: anything less and the draft is not accepted.
"""

from __future__ import annotations

from creatorkb.calls import CallLog, LocalBackend, ModelAnswer, ModelRequest, Purpose
from creatorkb.chunking import estimate_tokens, split_text
from creatorkb.engine import Draft
from creatorkb.insight import (
    INSIGHT_SCHEMA,
    SYSTEM_PROMPT,
    Insight,
    draft_prompt,
    parse_record,
    record_tokens,
    reduce_prompt,
)

MAX_SPLITS = 2  # a part cut despite the sizing is halved, at most this many times


class LocalReader:
    """One read of one transcript by one local model; raises LocalUnavailable."""

    def __init__(self, local: LocalBackend, log: CallLog, model: str, purpose: Purpose) -> None:
        self.local = local
        self.log = log
        self.model = model
        self.purpose = purpose
        self.reads = 0
        self.whole = 0
        self.problems: list[str] = []

    def read(self, title: str, transcript: str) -> Draft[Insight]:
        room = self.local.prompt_budget(self.model, SYSTEM_PROMPT)
        room -= estimate_tokens(draft_prompt(title, "", 99, 99))
        parts = split_text(transcript, room)
        records: list[Insight] = []
        for number, part in enumerate(parts, start=1):
            records += self._read_part(title, part, number, len(parts), splits=0)
        merged = self._merge(title, records) if records else None
        coverage = self.whole / self.reads if self.reads else 0.0
        text = merged.model_dump_json() if merged else None
        return Draft(merged, text, coverage, self.problems, self.model)

    def _generate(self, prompt: str, source: str) -> ModelAnswer:
        """One read; its output is sized to what a record of `source` can need."""
        request = ModelRequest(
            SYSTEM_PROMPT, prompt, self.purpose, INSIGHT_SCHEMA, self.model, record_tokens(source)
        )
        return self.log.ask(self.local, request)

    def _judge(self, answer: ModelAnswer, what: str) -> Insight | None:
        """Count a read (whole or cut) and parse its record."""
        self.reads += 1
        if answer.prompt_cut:
            self.problems.append(f"{what} was cut by the local context window")
        else:
            self.whole += 1
        if answer.stopped:
            self.problems.append(f"{what}: {answer.stopped}; stopped early")
            return None
        parsed = parse_record(answer.text)
        cut = " (cut at the output token limit)" if answer.answer_cut else ""
        self.problems += [f"{what}: {problem}{cut}" for problem in parsed.problems]
        return parsed.insight

    def _read_part(
        self, title: str, part: str, number: int, total: int, splits: int
    ) -> list[Insight]:
        """The record(s) of one part; a part the model still cut is read again in halves."""
        answer = self._generate(draft_prompt(title, part, number, total), part)
        if answer.prompt_cut and splits < MAX_SPLITS and len(part) > 1:
            records: list[Insight] = []
            for half in split_text(part, max(estimate_tokens(part) // 2, 1)):
                records += self._read_part(title, half, number, total, splits + 1)
            return records
        insight = self._judge(answer, f"part {number} of {total}")
        return [insight] if insight else []

    def _merge(self, title: str, records: list[Insight]) -> Insight | None:
        """Merge records in rounds of groups that fit the context, until one is left."""
        room = self.local.prompt_budget(self.model, SYSTEM_PROMPT)
        room -= estimate_tokens(reduce_prompt(title, []))
        while len(records) > 1:
            merged: list[Insight] = []
            for group in _groups(records, room):
                result = group[0] if len(group) == 1 else self._merge_group(title, group, 0)
                if result is None:
                    return None
                merged.append(result)
            records = merged
        return records[0]

    def _merge_group(self, title: str, group: list[Insight], splits: int) -> Insight | None:
        """One merged record; a group the model cut is merged again in two halves."""
        merging = reduce_prompt(title, group)
        answer = self._generate(merging, merging)
        if answer.prompt_cut and len(group) > 2 and splits < MAX_SPLITS:
            middle = len(group) // 2
            halves = [
                self._merge_group(title, g, splits + 1) for g in (group[:middle], group[middle:])
            ]
            if None in halves:
                return None
            return self._merge_group(title, [h for h in halves if h], splits + 1)
        return self._judge(answer, "merging the parts' records")


def _groups(records: list[Insight], room: int) -> list[list[Insight]]:
    """Consecutive groups whose merge prompt fits `room` tokens (estimated); every group but
    a lone last one has at least two records, so each round of merging shrinks the list."""
    groups: list[list[Insight]] = []
    current: list[Insight] = []
    used = 0
    for record in records:
        size = estimate_tokens(record.model_dump_json()) + 1
        if len(current) >= 2 and used + size > room:
            groups.append(current)
            current, used = [], 0
        current.append(record)
        used += size
    if current:
        groups.append(current)
    return groups
