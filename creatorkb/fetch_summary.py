"""What a run that asked YouTube for transcripts did, as a table: shared by `kb fetch` and
`kb fetch --segments` (catalog.FetchSummary, segments.SegmentsSummary)."""

from __future__ import annotations

from collections.abc import Iterable


def failure_counts(failures: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Failures counted by status and the first part of their reason, sorted."""
    counts: dict[str, int] = {}
    for status, reason in failures:
        key = f"{status}: {reason.split(':', 1)[0]}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def fetch_markdown(
    title: str,
    stored_label: str,
    *,
    attempted: int,
    stored: int,
    not_attempted: int,
    failures_by_reason: dict[str, int],
    breaker_opened: bool,
) -> str:
    """The run's summary: counts, failures by reason, and whether the breaker opened."""
    lines = [
        f"# {title}",
        "",
        f"| attempted | {stored_label} | failed | not attempted |",
        "|---:|---:|---:|---:|",
        f"| {attempted} | {stored} | {attempted - stored} | {not_attempted} |",
    ]
    if failures_by_reason:
        lines += ["", "| status: reason | videos |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in failures_by_reason.items()]
    if breaker_opened:
        lines += [
            "",
            "**Circuit breaker opened**: YouTube blocked consecutive requests, so this run "
            "stopped asking. The remaining videos are tried on a later run.",
        ]
    return "\n".join(lines)
