"""The pipeline: scan creators, then fetch transcripts. The scheduled main job."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import BaseModel, Field

from creatorkb.catalog import FetchSummary, ScanSummary
from flows.fetch import fetch_transcripts
from flows.scan import scan_creators


class PipelineSummary(BaseModel):
    """What each stage of one pipeline run did."""

    scan: ScanSummary
    fetch: FetchSummary


@flow(name="pipeline")
def pipeline(
    force_scan: bool = False,
    fetch_limit: Annotated[int, Field(ge=1, le=10_000)] = 200,
) -> PipelineSummary:
    """Scan the creators that are due, then fetch the transcripts of new videos."""
    scan = scan_creators(force=force_scan)
    fetch = fetch_transcripts(limit=fetch_limit)
    return PipelineSummary(scan=scan, fetch=fetch)
