"""What a job's model calls become in the ledger: call rows and their budget settlements."""

from __future__ import annotations

from collections.abc import Sequence

from creatorkb.budget import Budget
from creatorkb.calls import ModelCall
from creatorkb.ledger import Write
from creatorkb.pricing import call_row
from creatorkb.settings import CostOptions

# Failures after the request reached Anthropic, which may have billed it: the client gave up
# waiting. (Errors Anthropic answered with, 4xx and 5xx, are not billed.)
SENT_UNANSWERED = frozenset({"APITimeoutError"})


def call_writes(
    calls: Sequence[ModelCall],
    costs: CostOptions,
    *,
    flow_run_id: str | None,
    video_id: str | None,
    decision_id: str | None,
) -> list[Write]:
    """The `llm_calls` rows of these calls, and each paid call's reservation closed: settled
    by an answered call, released by a failed one (it cost nothing)."""
    rows = [
        call_row(call, costs, flow_run_id=flow_run_id, video_id=video_id, decision_id=decision_id)
        for call in calls
    ]
    closings = [
        Budget.close(
            call.reservation_id,
            call.call_id if call.ok or call.error_type in SENT_UNANSWERED else None,
            unanswered=call.error_type in SENT_UNANSWERED,
        )
        for call in calls
        if call.reservation_id
    ]
    return [Write.insert_new("llm_calls", ("call_id",), rows), *closings]
