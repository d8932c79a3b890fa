"""The usage chart as a PNG: credits per hour or day, stacked by model, with the budget's pace.

Rendered with matplotlib's Agg backend through its object API (a :class:`~matplotlib.figure.Figure`
on its own :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, never ``pyplot``, whose global
state is not for threads). :func:`render` is synchronous and CPU-bound: the caller runs it in a worker
thread with a time limit (``cogs.usage_report``), never on the event loop. Its input is small and
bounded (at most 31 buckets times the two models), so one render takes a fraction of a second.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

import matplotlib

matplotlib.use("Agg")  # explicitly: no display, whatever the environment says

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ulazai.requests import KlingModel

#: 1000 x 500 pixels.
SIZE_INCHES: Final = (10.0, 5.0)
DPI: Final = 100
COLOURS: Final[dict[str, str]] = {KlingModel.V3_0.value: "#5865F2", KlingModel.V2_6.value: "#57F287"}
OTHER_COLOURS: Final = ("#FEE75C", "#EB459E", "#ED4245")


def label_of(model: str) -> str:
    try:
        return KlingModel(model).label
    except ValueError:
        return model


def render(
    buckets: Sequence[datetime],
    per_model: Mapping[str, Sequence[int]],
    *,
    title: str,
    hourly: bool,
    budget_pace: float | None = None,
    budget_label: str | None = None,
) -> bytes:
    """The chart as PNG bytes. ``per_model[model][i]`` is the credits of bucket ``buckets[i]``."""
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(buckets)))
    bottom = [0] * len(buckets)
    spare = iter(OTHER_COLOURS)
    for model, values in per_model.items():
        colour = COLOURS.get(model) or next(spare, "#99AAB5")
        axes.bar(positions, values, bottom=bottom, label=label_of(model), color=colour, width=0.8)
        bottom = [below + value for below, value in zip(bottom, values, strict=True)]
    if budget_pace is not None:
        axes.axhline(
            budget_pace, color="#ED4245", linestyle="--", linewidth=1.5, label=budget_label or "Budget"
        )
    step = max(1, len(buckets) // 12)  # at most a dozen labels, so they never overlap
    axes.set_xticks(positions[::step])
    axes.set_xticklabels(
        [moment.strftime("%H:00" if hourly else "%b %d") for moment in buckets[::step]], rotation=0
    )
    axes.set_xlim(-0.6, max(len(buckets), 1) - 0.4)
    axes.set_title(title)
    axes.set_xlabel("Hour (UTC)" if hourly else "Day (UTC)")
    axes.set_ylabel("Credits")
    if not any(bottom) and budget_pace is None:
        axes.set_ylim(0, 1)
        axes.text(0.5, 0.5, "No credits spent", transform=axes.transAxes, ha="center", va="center")
    if per_model or budget_pace is not None:
        axes.legend(loc="best")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
