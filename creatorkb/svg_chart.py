"""Small SVG charts (bars, stacked, and lines on one value axis) for the weekly report.

Written here rather than drawn by matplotlib: importing matplotlib and laying out three
figures was 2 of the 6.5 seconds of `kb report` (docs/performance.md "Commands"), and these
charts need nothing but rectangles, polylines and text. The output is one inline `<svg>`
element: no scripts, fonts or external references, so the report page opens offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 800, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 56, 36  # the plot area's margins
FONT = 'font-family="system-ui, sans-serif"'
AXIS_COLOUR = "#495057"
GRID_COLOUR = "#e9ecef"


@dataclass(frozen=True)
class Series:
    """One named row of values, one per category; None leaves a gap."""

    label: str
    values: Sequence[float | None]
    colour: str
    kind: str = "line"  # "line", or "bar" (bars of one chart are stacked in order)


@dataclass(frozen=True)
class Level:
    """A horizontal reference line across the plot (a target, a price)."""

    label: str
    value: float
    colour: str


@dataclass
class Chart:
    title: str
    categories: list[str]
    y_label: str
    series: list[Series] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    y_range: tuple[float, float] | None = None  # fixed, else from the data (and always 0)
    note: str | None = None  # shown across an empty plot
    label_every: int = 1  # label every n-th category (counted back from the last)

    def bounds(self) -> tuple[float, float]:
        """The value axis: fixed, or the data's extent (stacked bars summed) with 0, padded."""
        if self.y_range is not None:
            return self.y_range
        values = [0.0, *(level.value for level in self.levels)]
        for series in self.series:
            if series.kind == "line":
                values += [v for v in series.values if v is not None and math.isfinite(v)]
        stacks = [
            sum(s.values[i] or 0.0 for s in self.series if s.kind == "bar")
            for i in range(len(self.categories))
        ]
        values += stacks
        low, high = min(values), max(values)
        if high == low:
            return low, low + 1
        pad = (high - low) * 0.1
        return (low - pad if low < 0 else low), high + pad

    def svg(self) -> str:
        low, high = self.bounds()
        plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        slot = plot_w / max(len(self.categories), 1)

        def x(index: int) -> float:
            return LEFT + slot * (index + 0.5)

        def y(value: float) -> float:
            return TOP + plot_h * (1 - (value - low) / (high - low))

        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(self.title)}">',
            f'<text x="{LEFT}" y="20" font-size="15" {FONT}>{escape(self.title)}</text>',
        ]
        for tick in ticks(low, high):
            parts += [
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                f'stroke="{GRID_COLOUR}"/>',
                f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end" '
                f'fill="{AXIS_COLOUR}" {FONT}>{tick_label(tick, low, high)}</text>',
            ]
        parts.append(
            f'<text transform="translate(14 {TOP + plot_h / 2:.0f}) rotate(-90)" font-size="11" '
            f'text-anchor="middle" fill="{AXIS_COLOUR}" {FONT}>{escape(self.y_label)}</text>'
        )
        last = len(self.categories) - 1
        for index, category in enumerate(self.categories):
            if (last - index) % self.label_every == 0:
                parts.append(
                    f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
                    f'text-anchor="middle" fill="{AXIS_COLOUR}" {FONT}>{escape(category)}</text>'
                )
        parts += self._bars(x, y, slot, low)
        for level in self.levels:
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level.value):.1f}" '
                f'y2="{y(level.value):.1f}" stroke="{level.colour}" stroke-dasharray="6 4" '
                'stroke-width="1.5"/>'
            )
        for series in self.series:
            if series.kind == "line":
                parts += _line(series, x, y)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(max(low, 0)):.1f}" '
            f'y2="{y(max(low, 0)):.1f}" stroke="{AXIS_COLOUR}"/>'
        )
        if self.note:
            parts.append(
                f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" font-size="13" '
                f'text-anchor="middle" fill="{AXIS_COLOUR}" {FONT}>{escape(self.note)}</text>'
            )
        parts += self._legend()
        parts.append("</svg>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:  # notebooks (marimo, Jupyter) show the chart itself
        return self.svg()

    def _bars(self, x, y, slot: float, low: float) -> list[str]:  # type: ignore[no-untyped-def]
        parts = []
        base = [max(low, 0.0)] * len(self.categories)
        for series in self.series:
            if series.kind != "bar":
                continue
            for index, value in enumerate(series.values):
                if not value:
                    continue
                top = base[index] + value
                parts.append(
                    f'<rect x="{x(index) - slot * 0.35:.1f}" y="{y(top):.1f}" '
                    f'width="{slot * 0.7:.1f}" height="{y(base[index]) - y(top):.1f}" '
                    f'fill="{series.colour}"><title>{escape(series.label)}: {value:g}</title>'
                    "</rect>"
                )
                base[index] = top
        return parts

    def _legend(self) -> list[str]:
        entries = [(s.label, s.colour, s.kind) for s in self.series]
        entries += [(level.label, level.colour, "level") for level in self.levels]
        parts, at = [], WIDTH - RIGHT
        for label, colour, kind in reversed(entries):
            width = 26 + 6.5 * len(label)
            at -= width
            dashes = ' stroke-dasharray="6 4"' if kind == "level" else ""
            mark = (
                f'<rect x="{at:.0f}" y="34" width="12" height="10" fill="{colour}"/>'
                if kind == "bar"
                else f'<line x1="{at:.0f}" x2="{at + 16:.0f}" y1="39" y2="39" stroke="{colour}" '
                f'stroke-width="2"{dashes}/>'
            )
            parts += [
                mark,
                f'<text x="{at + 20:.0f}" y="43" font-size="11" {FONT}>{escape(label)}</text>',
            ]
        return parts


def _line(series: Series, x, y) -> list[str]:  # type: ignore[no-untyped-def]
    """A polyline per run of values (a None breaks it), a dot on each value."""
    parts, run = [], []
    points = [*series.values, None]
    for index, value in enumerate(points):
        if value is not None and math.isfinite(value):
            run.append(f"{x(index):.1f},{y(value):.1f}")
            continue
        if len(run) > 1:
            parts.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{series.colour}" '
                'stroke-width="2"/>'
            )
        run = []
    for index, value in enumerate(series.values):
        if value is not None and math.isfinite(value):
            parts.append(
                f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="3.5" fill="{series.colour}">'
                f"<title>{escape(series.label)}: {value:g}</title></circle>"
            )
    return parts


def ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    raw = (high - low) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    count = math.floor((high - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def tick_label(value: float, low: float, high: float) -> str:
    step = ticks(low, high)
    spacing = step[1] - step[0] if len(step) > 1 else abs(value) or 1
    decimals = max(0, -math.floor(math.log10(spacing) + 1e-9))
    return f"{value:,.{decimals}f}"
