"""Cloud calls paid from the weekly budget: reserve, call, and tie the call to its reservation.

The recorder settles a call's reservation (or releases it, for a failed call) in the same
transaction that records the call, so the budget never counts a call twice or loses one.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

from creatorkb.budget import Budget, Reservation
from creatorkb.calls import ModelAnswer, ModelRequest
from creatorkb.errors import CloudUnavailable, ModelCallFailed


class PaidModel(Protocol):
    """A model that bills (CloudModel, or a scripted one in tests)."""

    model: str
    down: str | None
    concurrency: int

    def max_cost(self, request: ModelRequest, *, batch: bool = False) -> Decimal: ...

    def message_params(self, request: ModelRequest) -> dict[str, Any]: ...

    def generate(self, request: ModelRequest) -> ModelAnswer: ...


class BudgetedCloud:
    """The cloud model behind the budget (a ModelBackend); stops asking for the run once
    the key is refused."""

    provider = "anthropic"

    def __init__(self, cloud: PaidModel | None, budget: Budget, flow_run_id: str | None) -> None:
        self.cloud = cloud
        self.budget = budget
        self.flow_run_id = flow_run_id

    @property
    def down(self) -> str | None:
        """Why the cloud is not asked this run, if it is not."""
        return self.cloud.down if self.cloud else "no Anthropic API key is configured"

    @property
    def slots(self) -> int:
        return self.cloud.concurrency if self.cloud else 0

    @property
    def model(self) -> str | None:
        return self.cloud.model if self.cloud else None

    def reserve(self, request: ModelRequest, *, batch: bool = False) -> Reservation:
        """The budget reservation of a request about to be sent (as a batch item: at the
        batch price); raises CloudUnavailable, or BudgetExhausted."""
        if self.cloud is None or self.cloud.down:
            raise CloudUnavailable(self.down or "the cloud is not asked this run")
        model = request.model or self.cloud.model
        return self.budget.reserve(
            self.cloud.max_cost(request, batch=batch), self.flow_run_id, model, request.purpose
        )

    def params(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API parameters of a request, as a batch item carries them."""
        assert self.cloud is not None
        return self.cloud.message_params(request)

    def generate(self, request: ModelRequest) -> ModelAnswer:
        """A cloud answer paid from a reservation; raises CloudUnavailable (BudgetExhausted
        when the week's budget cannot cover the call)."""
        if self.cloud is None or self.cloud.down:
            raise CloudUnavailable(self.down or "the cloud is not asked this run")
        reservation = self.reserve(request)
        try:
            answer = self.cloud.generate(request)
        except ModelCallFailed as failure:
            if failure.call is not None:
                failure.call = replace(failure.call, reservation_id=reservation.reservation_id)
            else:
                self.budget.release(reservation)
            raise
        call = replace(answer.call, reservation_id=reservation.reservation_id)
        return replace(answer, call=call)
