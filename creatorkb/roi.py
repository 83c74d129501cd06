"""Return on the local GPU: amortisation, net savings and the month it pays for itself.

Pure Decimal arithmetic. A month is 52/12 weeks; months are labelled `YYYY-MM`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WEEKS_PER_YEAR = 52
MONTHS_PER_YEAR = 12


def monthly(weekly_usd: Decimal) -> Decimal:
    """A weekly amount extrapolated to a month (x 52/12)."""
    return weekly_usd * WEEKS_PER_YEAR / MONTHS_PER_YEAR


def amortised_per_week(gpu_price_usd: Decimal, amortisation_months: int) -> Decimal:
    """The GPU's price written off evenly over `amortisation_months`, per week."""
    return gpu_price_usd * MONTHS_PER_YEAR / (amortisation_months * WEEKS_PER_YEAR)


def month_label(first: date, offset: int = 0) -> str:
    """`YYYY-MM` of the month `offset` months after the month of `first`."""
    index = first.year * MONTHS_PER_YEAR + first.month - 1 + offset
    return f"{index // MONTHS_PER_YEAR:04d}-{index % MONTHS_PER_YEAR + 1:02d}"


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // MONTHS_PER_YEAR, day.month % MONTHS_PER_YEAR + 1, 1)


@dataclass(frozen=True)
class RoiMonth:
    """One month of the pay-off table; `position` is cumulative savings minus the GPU price."""

    month: str
    savings_usd: Decimal
    cumulative_savings_usd: Decimal
    position_usd: Decimal
    paid_off: bool


def roi_table(
    gpu_price_usd: Decimal,
    monthly_savings_usd: Decimal,
    start_month: date,
    months: int,
    already_saved_usd: Decimal = Decimal(0),
) -> list[RoiMonth]:
    """Month by month from `start_month`: savings add up until they cover the GPU."""
    rows = []
    for offset in range(months):
        cumulative = already_saved_usd + monthly_savings_usd * (offset + 1)
        position = cumulative - gpu_price_usd
        rows.append(
            RoiMonth(
                month_label(start_month, offset),
                monthly_savings_usd,
                cumulative,
                position,
                paid_off=position >= 0,
            )
        )
    return rows


def break_even_month(
    gpu_price_usd: Decimal,
    monthly_savings_usd: Decimal,
    start_month: date,
    already_saved_usd: Decimal = Decimal(0),
) -> str | None:
    """The first paid-off month of `roi_table` with these figures; None ("never at this
    rate") when monthly savings are not positive."""
    if monthly_savings_usd <= 0:
        return None
    months = math.ceil((gpu_price_usd - already_saved_usd) / monthly_savings_usd)
    return month_label(start_month, max(months, 1) - 1)
