"""Blocks for the routing policy and the cost model."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from creatorkb.configuration import BLOCK_NAME, BLOCK_SLUGS
from creatorkb.routing import RoutingPolicy
from creatorkb.settings import CostOptions


class RoutingPolicyBlock(Block, RoutingPolicy):
    """Routing rules, thresholds and the weekly budget. Saved as `routing-policy/default`."""

    _block_type_name: ClassVar[str] = "Routing policy"
    _block_type_slug: ClassVar[str] = BLOCK_SLUGS[RoutingPolicy]
    _description: ClassVar[str] = (
        "Where each priority starts (local, cloud or consensus), the confidence threshold, "
        "shadow sampling, the weekly cloud budget and what to do when the cloud is down. "
        "Every decision records the policy's version, which changes with any rule."
        f" kb reads the block saved under the name `{BLOCK_NAME}`."
    )


class CostModel(Block, CostOptions):
    """Reference model, GPU price and power, electricity: the basis of savings and ROI."""

    _block_type_name: ClassVar[str] = "Cost model"
    _block_type_slug: ClassVar[str] = BLOCK_SLUGS[CostOptions]
    _description: ClassVar[str] = (
        "The cloud model savings are measured against, the GPU's price, amortisation months "
        "and power draw, the electricity price and the reporting timezone."
        f" kb reads the block saved under the name `{BLOCK_NAME}`."
    )
