"""The weekly report as one self-contained HTML page, its charts drawn by matplotlib as SVG."""

from __future__ import annotations

import io
from html import escape

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from creatorkb.report import LOCAL_SHARE_TARGET, Section, WeeklyReport, usd

CLOUD_COLOUR = "#d9822b"
LOCAL_COLOUR = "#2f9e44"
TARGET_COLOUR = "#868e96"
ALL_CLOUD_COLOUR = "#1c7ed6"  # the counterfactual: the same work all in the cloud
MOST_WEEK_TICKS = 8

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #212529; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { padding: 0.25rem 0.75rem; border-bottom: 1px solid #dee2e6; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; }
.key { display: flex; gap: 2rem; margin: 1rem 0; }
.key div { font-size: 0.9rem; color: #495057; }
.key strong { display: block; font-size: 2rem; color: #212529; }
.note { background: #fff3bf; padding: 0.5rem 0.75rem; }
"""


def render_html(report: WeeklyReport) -> str:
    """One page that opens offline: no external CSS, scripts, fonts or images."""
    headline, *details = report.sections()
    charts = (cost_per_day_chart(report), local_share_chart(report), savings_chart(report))
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{escape(report.title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(report.title)}</h1>",
            f"<p>{escape(report.subtitle)}</p>",
            *(f'<p class="note">{escape(note)}</p>' for note in report.notes()),
            '<div class="key">',
            *(
                f"<div><strong>{escape(value)}</strong>{escape(label)}</div>"
                for label, value in report.key_figures()
            ),
            "</div>",
            _table(headline),
            *(f"<figure>{_svg(chart)}</figure>" for chart in charts),
            *(_table(section) for section in details),
            "</body>",
            "</html>",
        ]
    )


def _table(section: Section) -> str:
    title = f"<h2>{escape(section.title)}</h2>"
    if not section.rows:
        return f"{title}<p>none</p>"
    head = "".join(f"<th>{escape(column)}</th>" for column in section.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row in section.rows
    )
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _svg(figure: Figure) -> str:
    """The figure as an inline <svg> element, text kept as text."""
    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "creatorkb"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _chart(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8, 3.2), layout="constrained")
    axes = figure.subplots()
    axes.set_title(title, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def cost_per_day_chart(report: WeeklyReport) -> Figure:
    figure, axes = _chart("Cost per day")
    labels = [f"{day.day:%a %d}" for day in report.days]
    cloud = [float(day.cloud_usd) for day in report.days]
    energy = [float(day.energy_usd) for day in report.days]
    axes.bar(labels, cloud, color=CLOUD_COLOUR, label="cloud (billed)")
    axes.bar(labels, energy, bottom=cloud, color=LOCAL_COLOUR, label="local (energy)")
    all_cloud = [float(day.all_cloud_usd) for day in report.days]
    axes.plot(labels, all_cloud, color=ALL_CLOUD_COLOUR, marker="o", label="all-cloud")
    highest = max([*all_cloud, *(c + e for c, e in zip(cloud, energy, strict=True))])
    # Costs are never negative: an empty week keeps the axis at zero, not around it.
    axes.set_ylim(0, highest * 1.1 if highest > 0 else 1)
    if highest == 0:
        axes.text(0.5, 0.5, "no calls this week", transform=axes.transAxes, ha="center")
    axes.set_ylabel("US$")
    _legend_above(axes)
    return figure


def local_share_chart(report: WeeklyReport) -> Figure:
    figure, axes = _chart("Local share of calls by week")
    shares = [
        float("nan") if point.local_share_calls is None else point.local_share_calls * 100
        for point in report.history
    ]
    axes.plot(range(len(shares)), shares, marker="o", color=LOCAL_COLOUR, label="local share")
    axes.axhline(
        LOCAL_SHARE_TARGET * 100,
        color=TARGET_COLOUR,
        linestyle="--",
        label=f"target {LOCAL_SHARE_TARGET:.0%}",
    )
    axes.set_ylim(0, 100)
    axes.set_ylabel("% of answered calls")
    _week_ticks(axes, [point.week for point in report.history])
    _legend_above(axes)
    return figure


def savings_chart(report: WeeklyReport) -> Figure:
    figure, axes = _chart("Cumulative savings against the GPU's price")
    cumulative = [float(point.cumulative_savings_usd) for point in report.history]
    axes.plot(range(len(cumulative)), cumulative, marker="o", color=LOCAL_COLOUR, label="saved")
    axes.axhline(
        float(report.roi.gpu_price_usd),
        color=CLOUD_COLOUR,
        linestyle="--",
        label=f"GPU {usd(report.roi.gpu_price_usd)}",
    )
    axes.set_ylabel("US$")
    _week_ticks(axes, [point.week for point in report.history])
    _legend_above(axes)
    return figure


def _legend_above(axes: Axes) -> None:
    axes.legend(frameon=False, ncols=3, loc="lower right", bbox_to_anchor=(1.0, 1.0))


def _week_ticks(axes: Axes, weeks: list[str]) -> None:
    """Label at most MOST_WEEK_TICKS weeks, evenly spaced, always the latest."""
    step = max(1, -(-len(weeks) // MOST_WEEK_TICKS))
    positions = list(range(len(weeks) - 1, -1, -step))[::-1]
    axes.set_xticks(positions, [weeks[position] for position in positions])
