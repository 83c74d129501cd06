"""The routing policy: data that decides where each piece of work goes, versioned by content."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from creatorkb.ledger import Write
from creatorkb.roster import Priority


class Route(StrEnum):
    """Where a piece of work ended up, as recorded in `routing_decisions.route`."""

    local_accept = "local_accept"  # the local draft passed the confidence check
    cloud_refine = "cloud_refine"  # the draft fell short; the cloud corrected it
    cloud_direct = "cloud_direct"  # the policy sent it straight to the cloud
    fallback_cloud = "fallback_cloud"  # the local model was unavailable; the cloud answered
    fallback_local = "fallback_local"  # the cloud was unavailable or over budget; local kept
    consensus = "consensus"  # several local models answered; a synthesis was built
    deferred = "deferred"  # nothing usable now; the next run tries again


class Start(StrEnum):
    """Where the policy starts a video."""

    local = "local"  # draft locally, escalate when confidence is low
    cloud = "cloud"  # straight to the cloud
    consensus = "consensus"  # several local models, then a synthesis


BatchPurpose = Literal["refine", "shadow"]  # the cloud work of a video that may wait


class Level(StrEnum):
    """The owner's agent levels: L1 strategic, L2 routine, L3 simple."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"

    @property
    def priority(self) -> Priority:
        return {Level.L1: Priority.critical, Level.L2: Priority.medium, Level.L3: Priority.low}[
            self
        ]


class RoutingPolicy(BaseModel):
    """Routing rules. Every decision records `version`, which changes with any rule."""

    name: str = Field("default", min_length=1)
    start_by_priority: dict[Priority, Start] = Field(
        default_factory=dict,
        description="Where videos of each creator priority start (default: critical and "
        "high in the cloud, medium and low locally).",
        validate_default=True,
    )
    start_by_creator: dict[str, Start] = Field(
        default_factory=dict, description="Per-creator override, by channel id."
    )
    accept_threshold: float = Field(
        0.70, ge=0, le=1, description="Composite confidence at which a local draft is kept."
    )
    min_grounding: float = Field(
        0.5, ge=0, le=1, description="Share of quotes and tools that must be in the transcript."
    )
    min_quote_words: int = Field(
        4, ge=1, le=50, description="Words a quote needs to count as evidence (a passage)."
    )
    shadow_rate: float = Field(
        0.05, ge=0, le=1, description="Share of local accepts also answered in the cloud."
    )
    shadow_agreement: float = Field(
        0.6, ge=0, le=1, description="Agreement with the cloud at which a local answer was good."
    )
    min_weekly_shadows: int = Field(
        20,
        ge=0,
        description="Shadow reviews to take each week at least (while the budget allows), so "
        "local-accept precision is measured on enough samples.",
    )
    target_precision: float = Field(
        0.9, gt=0, le=1, description="Local-accept precision `kb calibrate` finds a threshold for."
    )
    weekly_budget_usd: Decimal = Field(
        Decimal("10"), ge=0, description="Cloud spending allowed per ISO week."
    )
    consensus_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Agreement of the consensus models below which the cloud is asked.",
    )
    synthesizer: Literal["local", "cloud"] = Field(
        "local", description="Who builds the consensus answer from the models' answers."
    )
    refine_models: list[str] = Field(
        default_factory=lambda: ["claude-haiku-5-5", "claude-sonnet-5"],
        min_length=1,
        description="Cloud models that refine a draft, cheapest first: when one's record "
        "fails the same confidence check, the next refines it, told why.",
    )
    when_cloud_fails: Literal["fallback_local", "deferred"] = Field(
        "fallback_local",
        description="Keep the local answer (flagged) or defer the video to the next run.",
    )
    batch_purposes: dict[Priority, list[BatchPurpose]] = Field(
        default_factory=lambda: {
            Priority.medium: ["refine", "shadow"],
            Priority.low: ["refine", "shadow"],
        },
        description="Cloud work that may wait for a Message Batch (half price), by creator "
        "priority: `refine` and `shadow` calls of videos. A priority left out never waits.",
    )
    batch_max_wait_hours: float = Field(
        24,
        gt=0,
        le=24,
        description="Longest a batch may stay in progress; after that kb cancels it and its "
        "unfinished items follow `when_batch_fails`.",
    )
    when_batch_fails: Literal["retry_direct", "cloud_fails"] = Field(
        "retry_direct",
        description="An item that errored, expired or was canceled: asked once again "
        "directly (standard price), or treated like the cloud being down (when_cloud_fails).",
    )

    @field_validator("start_by_priority")
    @classmethod
    def _every_priority(cls, value: dict[Priority, Start]) -> dict[Priority, Start]:
        """Priorities left out keep their default start."""
        defaults = {
            Priority.critical: Start.cloud,
            Priority.high: Start.cloud,
            Priority.medium: Start.local,
            Priority.low: Start.local,
        }
        return {**defaults, **value}

    @property
    def version(self) -> str:
        """`name@hash`: the hash changes with any rule, so decisions name the rules used."""
        rules = self.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()
        return f"{self.name}@{digest[:10]}"

    def start(self, channel_id: str, priority: Priority) -> Start:
        """Where a video of this creator starts."""
        return self.start_by_creator.get(channel_id, self.start_by_priority[priority])

    def waits(self, priority: Priority, purpose: str) -> bool:
        """Whether cloud work of this purpose, for a video of this priority, may wait for a
        Message Batch."""
        return purpose in self.batch_purposes.get(priority, [])

    def shadows(self, video_id: str) -> bool:
        """Whether this video's local accept is shadowed (a stable sample, the same on rerun)."""
        digest = hashlib.sha256(f"{video_id}:{self.version}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.shadow_rate


class RoutingPolicyEnvSettings(RoutingPolicy, BaseSettings):
    """The policy from KB_POLICY_* variables (maps as JSON, e.g. KB_POLICY_START_BY_CREATOR)."""

    model_config = SettingsConfigDict(env_prefix="KB_POLICY_", extra="ignore")


@dataclass(frozen=True)
class JobCosts:
    """What a job cost (its calls' cloud dollars and energy), and what one direct call on
    the reference model would have cost instead."""

    all_cloud_usd: Decimal
    cloud_usd: Decimal
    energy_usd: Decimal


def decision_write(
    *,
    decision_id: str,
    route: Route,
    reason: str,
    policy: RoutingPolicy,
    flow_run_id: str | None,
    video_id: str | None = None,
    priority: Priority | None = None,
    confidence: float | None = None,
    components: dict[str, Any] | None = None,
    costs: JobCosts | None = None,
) -> Write:
    """The `routing_decisions` row of one decision, with what its job cost."""
    return Write.insert_new(
        "routing_decisions",
        ("decision_id",),
        [
            {
                "decision_id": decision_id,
                "ts": datetime.now(UTC),
                "flow_run_id": flow_run_id,
                "video_id": video_id,
                "priority": priority,
                "route": route,
                "reason": reason,
                "confidence": confidence,
                "threshold": policy.accept_threshold,
                "components": components,
                "policy_version": policy.version,
                "all_cloud_usd": costs.all_cloud_usd if costs else None,
                "cloud_usd": costs.cloud_usd if costs else None,
                "energy_usd": costs.energy_usd if costs else None,
            }
        ],
    )
