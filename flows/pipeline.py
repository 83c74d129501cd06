"""The pipeline: scan creators, fetch transcripts, analyse them. The scheduled main job."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from creatorkb.analysis import AnalysisSummary
from creatorkb.catalog import FetchSummary, ScanSummary
from flows.analyze import analyze_videos
from flows.fetch import fetch_transcripts
from flows.scan import scan_creators


class PipelineSummary(BaseModel):
    """What each stage of one pipeline run did."""

    scan: ScanSummary
    fetch: FetchSummary
    analysis: AnalysisSummary

    def to_markdown(self) -> str:
        """The three stages' summaries under one title (their headings one level down)."""
        stages = [self.scan.to_markdown(), self.fetch.to_markdown(), self.analysis.to_markdown()]
        return "\n\n".join(["# Pipeline run", *(f"#{stage}" for stage in stages)])


@flow(name="pipeline")
def pipeline(
    force_scan: bool = False,
    fetch_limit: Annotated[int, Field(ge=1, le=10_000)] = 200,
    analyze_limit: Annotated[int, Field(ge=1, le=100_000)] = 200,
) -> PipelineSummary:
    """Scan the creators that are due, fetch new transcripts, analyse them.

    Args:
        force_scan: Read every creator's feed, even those not due for a scan.
        fetch_limit: Most transcripts to fetch this run.
        analyze_limit: Most videos to analyse this run.
    """
    scan = scan_creators(force=force_scan)
    fetch = fetch_transcripts(limit=fetch_limit)
    analysis = analyze_videos(limit=analyze_limit)
    summary = PipelineSummary(scan=scan, fetch=fetch, analysis=analysis)
    create_markdown_artifact(summary.to_markdown(), key="pipeline-summary")
    return summary
