"""The weekly report as one self-contained HTML page with its charts inline as SVG."""

from __future__ import annotations

from html import escape

from creatorkb.report import LOCAL_SHARE_TARGET, Section, WeeklyReport, usd
from creatorkb.svg_chart import Chart, Level, Series

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
            *(f"<figure>{chart.svg()}</figure>" for chart in charts),
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


def cost_per_day_chart(report: WeeklyReport) -> Chart:
    cloud = [float(day.cloud_usd) for day in report.days]
    energy = [float(day.energy_usd) for day in report.days]
    all_cloud = [float(day.all_cloud_usd) for day in report.days]
    spent = any(cloud) or any(energy) or any(all_cloud)
    return Chart(
        "Cost per day",
        [f"{day.day:%a %d}" for day in report.days],
        "US$",
        [
            Series("cloud (billed)", cloud, CLOUD_COLOUR, "bar"),
            Series("local (energy)", energy, LOCAL_COLOUR, "bar"),
            Series("all-cloud", all_cloud, ALL_CLOUD_COLOUR),
        ],
        # Costs are never negative: an empty week keeps the axis at zero, not around it.
        y_range=None if spent else (0.0, 1.0),
        note=None if spent else "no calls this week",
    )


def local_share_chart(report: WeeklyReport) -> Chart:
    shares = [
        None if point.local_share_calls is None else point.local_share_calls * 100
        for point in report.history
    ]
    weeks = [point.week for point in report.history]
    return Chart(
        "Local share of calls by week",
        weeks,
        "% of answered calls",
        [Series("local share", shares, LOCAL_COLOUR)],
        [Level(f"target {LOCAL_SHARE_TARGET:.0%}", LOCAL_SHARE_TARGET * 100, TARGET_COLOUR)],
        y_range=(0.0, 100.0),
        label_every=_label_every(weeks),
    )


def savings_chart(report: WeeklyReport) -> Chart:
    weeks = [point.week for point in report.history]
    return Chart(
        "Cumulative savings against the GPU's price",
        weeks,
        "US$",
        [
            Series(
                "saved",
                [float(point.cumulative_savings_usd) for point in report.history],
                LOCAL_COLOUR,
            )
        ],
        [
            Level(
                f"GPU {usd(report.roi.gpu_price_usd)}",
                float(report.roi.gpu_price_usd),
                CLOUD_COLOUR,
            )
        ],
        label_every=_label_every(weeks),
    )


def _label_every(weeks: list[str]) -> int:
    """Label at most MOST_WEEK_TICKS weeks, evenly spaced, always the latest."""
    return max(1, -(-len(weeks) // MOST_WEEK_TICKS))
