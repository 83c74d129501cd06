"""Blocks for the routing policy and the cost model."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from blocks import load_options
from creatorkb.routing import RoutingPolicy, RoutingPolicyEnvSettings
from creatorkb.settings import CostEnvSettings, CostOptions


class RoutingPolicyBlock(Block, RoutingPolicy):
    """Routing rules, thresholds and the weekly budget. Saved as `routing-policy/default`."""

    _block_type_name: ClassVar[str] = "Routing policy"
    _block_type_slug: ClassVar[str] = "routing-policy"
    _description: ClassVar[str] = (
        "Where each priority starts (local, cloud or consensus), the confidence threshold, "
        "shadow sampling, the weekly cloud budget and what to do when the cloud is down. "
        "Every decision records the policy's version, which changes with any rule."
    )


class CostModel(Block, CostOptions):
    """Reference model, GPU price and power, electricity: the basis of savings and ROI."""

    _block_type_name: ClassVar[str] = "Cost model"
    _block_type_slug: ClassVar[str] = "cost-model"
    _description: ClassVar[str] = (
        "The cloud model savings are measured against, the GPU's price, amortisation months "
        "and power draw, the electricity price and the reporting timezone."
    )


def load_policy(use_blocks: bool = True) -> RoutingPolicy:
    return load_options(RoutingPolicyBlock, RoutingPolicy, RoutingPolicyEnvSettings, use_blocks)


def load_costs(use_blocks: bool = True) -> CostOptions:
    return load_options(CostModel, CostOptions, CostEnvSettings, use_blocks)
