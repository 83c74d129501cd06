"""Cloud calls paid from the weekly budget: reserve, call, then settle or release."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from creatorkb.budget import Budget, BudgetExhausted
from creatorkb.calls import CloudUnavailable, ModelAnswer, ModelCall, Purpose
from creatorkb.cloud_model import CloudModel
from creatorkb.ledger import Write


@dataclass
class CloudReply:
    """A budgeted cloud call: the answer (or why there is none), and what the ledger needs."""

    answer: ModelAnswer | None
    problem: str | None = None
    calls: list[ModelCall] = field(default_factory=list)
    closings: list[Write] = field(default_factory=list)  # reservations to settle or release


class BudgetedCloud:
    """The cloud model behind the budget; stops asking for the run once the key is refused."""

    def __init__(self, cloud: CloudModel | None, budget: Budget, flow_run_id: str | None) -> None:
        self.cloud = cloud
        self.budget = budget
        self.flow_run_id = flow_run_id

    @property
    def down(self) -> str | None:
        """Why the cloud is not asked this run, if it is not."""
        return self.cloud.down if self.cloud else "no Anthropic API key is configured"

    @property
    def slots(self) -> int:
        return self.cloud.options.concurrency if self.cloud else 0

    @property
    def model(self) -> str | None:
        return self.cloud.model if self.cloud else None

    def ask(
        self, system: str, prompt: str, purpose: Purpose, schema: dict[str, Any] | None = None
    ) -> CloudReply:
        if self.cloud is None or self.cloud.down:
            return CloudReply(None, self.down)
        try:
            reservation = self.budget.reserve(
                self.cloud.max_cost(system, prompt, schema), self.flow_run_id
            )
        except BudgetExhausted as error:
            return CloudReply(None, f"over budget: {error}")
        try:
            answer = self.cloud.generate(system, prompt, purpose, schema)
        except CloudUnavailable as error:
            calls = [error.call] if error.call else []
            return CloudReply(None, str(error), calls, [Budget.close(reservation, None)])
        closing = Budget.close(reservation, answer.call.call_id)
        return CloudReply(answer, None, [answer.call], [closing])
