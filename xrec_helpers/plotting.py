"""One plotting style for the course, ``save_fig``, and the standard explanation plots.

Taught in 01_eda. Explanations are drawn as signed horizontal bars (green supports the
recommendation, red speaks against it), never as pies: contributions can be negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "widget", "ipympl", "qt", "tk", "macosx")):
    matplotlib.use("Agg")  # headless test runs: never try to open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402

from xrec_helpers._paths import figures_dir  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from xrec_helpers.explainers.base import Explanation
    from xrec_helpers.explainers.event_shap import LevelAttribution

POSITIVE, NEGATIVE, NEUTRAL = "#2a9d4b", "#c0392b", "#4c72b0"


def set_style() -> None:
    """The course style (no removed matplotlib style names: rcParams only)."""
    plt.rcParams.update({
        "figure.figsize": (7, 4), "figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.3, "axes.titleweight": "bold", "font.size": 10,
    })


set_style()


def save_fig(fig: Figure, name: str) -> str:
    """Save ``fig`` as ``figures/<name>.png`` and return the path.

    Parameters
    ----------
    fig : Figure
        The figure.
    name : str
        File name without extension.

    Returns
    -------
    str
        The path written.
    """
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, bbox_inches="tight", dpi=110)
    return str(path)


def _both_signs(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of at most ``n`` entries: the strongest supporting AND the strongest opposing ones.

    Half the bars go to each sign; a sign with fewer entries than its half leaves the rest to the other.
    Taking the head of a list sorted by signed score would cut off the most negative entries, the strongest
    evidence *against* the recommendation.
    """
    order = np.argsort(-scores, kind="stable")
    positive = order[scores[order] >= 0]
    negative = order[scores[order] < 0][::-1]  # most negative first
    n_neg = min(len(negative), n // 2)
    n_pos = min(len(positive), n - n_neg)
    n_neg = min(len(negative), n - n_pos)
    keep = np.concatenate([positive[:n_pos], negative[:n_neg]])
    return keep[np.argsort(-scores[keep], kind="stable")]


def _clip(text: str, n: int) -> str:
    """``text`` cut to at most ``n`` characters, ending in "…" when cut (a cut title must look cut)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def plot_explanation(explanation: Explanation, n: int = 10, ax: Axes | None = None, xlabel: str | None = None) -> Axes:
    """Signed horizontal bars of an explanation of any kind, labelled: its strongest supporting and opposing entries.

    Taught in 13_your_own_data; ``Explanation.plot`` calls it. The same plot draws history items, features,
    events and reviews, each key under its label (``Explanation.label``).
    At most ``n`` bars: the top ``n // 2`` by value and the bottom ``n // 2`` (a sign with fewer entries leaves
    its share to the other), so the strongest evidence against the recommendation is never cut off. For an
    additive method (``Explanation.base_value``: f(x) = base + sum of values) the title adds the base value,
    the sum of the bars shown and the total.

    Parameters
    ----------
    explanation : Explanation
        Any kind.
    n : int
        Most bars drawn.
    ax : matplotlib.axes.Axes, optional
        Where to draw (a new figure by default).
    xlabel : str, optional
        What the score is (e.g. "score drop when the item is removed"); by default the method's score.

    Returns
    -------
    matplotlib.axes.Axes
    """
    frame = explanation.to_frame()
    scores = frame["score"].to_numpy(dtype=np.float64)
    shown = frame.iloc[_both_signs(scores, n)].iloc[::-1]  # barh draws bottom-up: largest value on top
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(shown) + 1.4))
    colours = [POSITIVE if s > 0 else NEGATIVE if s < 0 else NEUTRAL for s in shown["score"]]
    ax.barh(np.arange(len(shown)), shown["score"], color=colours)
    ax.set_yticks(np.arange(len(shown)), [_clip(t, 45) for t in shown["title"].astype(str)])
    ax.axvline(0, color="black", lw=0.8)
    target = explanation.title(explanation.item)
    title = f"{explanation.method}: why {_clip(target, 50)}?"
    if len(shown) < len(frame):
        strongest = "the strongest for and against" if (shown["score"] < 0).any() else "the strongest (none against)"
        title += f"\n{len(shown)} of {len(frame)} entries: {strongest}"
    base = explanation.base_value
    if base is not None:
        title += (f"\nbase {float(base):+.3f} + shown {shown['score'].sum():+.3f}"
                  + (f" + not shown {scores.sum() - shown['score'].sum():+.3f}" if len(shown) < len(frame) else "")
                  + f" = total {float(base) + scores.sum():+.3f}")
    ax.set_title(title, fontsize=10)
    signs = "green supports, red opposes" if (scores < 0).any() else "green supports; none opposes"
    ax.set_xlabel(xlabel or f"{explanation.method} score ({signs})")
    return ax


def plot_curves(results: dict, metric: str = "POS@20", ax: Axes | None = None) -> Axes:
    """Perturbation curves of several explainers for one metric.

    Parameters
    ----------
    results : dict
        Explainer name -> :class:`~xrec_helpers.metrics.counterfactual.PerturbationResult`.
    metric : str
        The metric drawn against the number of removed items.
    ax : Axes | None
        Axes to draw on (default: a new figure).

    Returns
    -------
    Axes
        The axes drawn on.
    """
    if ax is None:
        _, ax = plt.subplots()
    for name, result in results.items():
        ax.plot(result.curves.index, result.curves[metric], marker="o", ms=3, label=name)
    better = "lower" if next(iter(results.values())).lower_is_better(metric) else "higher"
    # NEG and INS read the explanation's ranking from the other end (least explanatory removed/kept first)
    if metric.startswith("INS"):
        ax.set_xlabel("fraction of history kept (most explanatory kept first)")
    else:
        order = "least explanatory first" if metric.startswith("NEG") else "most explanatory first"
        ax.set_xlabel(f"fraction of history removed ({order})")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} ({better} is better)")
    ax.legend(fontsize=8)
    return ax


def bar_with_labels(ax: Axes, labels: Sequence[str], values: Sequence[float], colour: str = NEUTRAL,
                    fmt: str = "{:.2f}") -> Axes:
    """Horizontal bars with the value printed at the end of each bar.

    Parameters
    ----------
    ax : Axes
        Axes to draw on.
    labels : Sequence[str]
        One label per bar.
    values : Sequence[float]
        One value per bar.
    colour : str
        Bar colour.
    fmt : str
        Format of the printed values.

    Returns
    -------
    Axes
        ``ax``.
    """
    y = np.arange(len(labels))
    ax.barh(y, values, color=colour)
    ax.set_yticks(y, labels)
    for yi, v in zip(y, values):
        ax.text(v, yi, " " + fmt.format(v), va="center", fontsize=8)
    return ax


def plot_level_attribution(attribution: LevelAttribution, ax: Axes | None = None, n: int = 12) -> Axes:
    """Signed bars of an event-, feature- or cell-level attribution (both signs, labels as given).

    Used by ``LevelAttribution.plot``. The ``n`` largest |values| are drawn, largest at the top, each with
    its value printed; when more players exist, one grey bar "k others" holds the sum of the rest, so
    the drawn bars add up to the title's total, f(x) - f(baseline). Green raises the score, red lowers it.

    Parameters
    ----------
    attribution : LevelAttribution
        Values of one TimeSHAP level.
    ax : Axes | None
        Axes to draw on (default: a new figure).
    n : int
        At most ``n`` bars, plus one for the rest.

    Returns
    -------
    Axes
        The axes drawn on.
    """
    full = attribution.to_frame()
    frame = full.head(n)
    rest = full.iloc[n:]
    labels = [str(p) for p in frame["player"]]
    values = frame["value"].to_numpy(dtype=float)
    colours = [POSITIVE if v >= 0 else NEGATIVE for v in values]
    if len(rest):  # the players left out, as one bar, so the drawn bars still sum to the total
        labels.append(f"{len(rest)} other players (sum)")
        values = np.append(values, float(rest["value"].sum()))
        colours.append("#9e9e9e")
    labels, values, colours = labels[::-1], values[::-1], colours[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.33 * len(values) + 1.4))
    y = np.arange(len(values))
    ax.barh(y, values, color=colours)
    ax.set_yticks(y, labels, fontsize=9)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:+.3f} ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    span = max(float(np.abs(values).max()), 1e-12)
    low, high = float(min(values.min(), 0.0)), float(max(values.max(), 0.0))
    ax.set_xlim(low - 0.35 * span if low < 0 else -0.05 * span, high + 0.35 * span if high > 0 else 0.05 * span)
    ax.axvline(0, color="black", lw=0.8)
    shown = f"all {len(full)} players" if not len(rest) else f"top {len(frame)} of {len(full)} players + the rest"
    ax.set_title(f"{attribution.level.capitalize()}-level Shapley values ({attribution.method}), {shown}\n"
                 f"bars sum to f(x) − f(baseline) = {attribution.total:+.3f}", fontsize=10)
    ax.set_xlabel("contribution to the score (green raises it, red lowers it"
                  + (", grey: the players not drawn)" if len(rest) else ")"))
    ax.set_ylabel(f"player ({attribution.level})")
    return ax


# One colour convention for every signed figure of 04: green raises the score, red lowers it, white is 0.
SIGNED_CMAP = LinearSegmentedColormap.from_list("lowers_raises", [NEGATIVE, "#ffffff", POSITIVE])


def _annotate(ax, values: np.ndarray, colour_values: np.ndarray, fmt: str = "{:+.2f}", fontsize: int = 8) -> None:
    """Write each finite value in its cell, white on dark colours and black on light ones."""
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            dark = abs(colour_values[r, c]) > 0.55
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")


def plot_cell_grid(attribution: LevelAttribution, ax: Axes | None = None) -> Axes:
    """Heatmap of a cell-level attribution: rows are event groups, columns feature groups, both signs.

    Taught in 04_shap_sequential. Green raises the score, red lowers it (as in the bar charts). Two kinds
    of blank cell: a cell inside a grouped player drawn elsewhere in its row, and a cell that does not
    exist (the older (pruned) events are one player over all their features, drawn in their own last
    column, which has no cell for the recent events).

    Parameters
    ----------
    attribution : LevelAttribution
        A cell-level attribution.
    ax : Axes | None
        Axes to draw on (default: a new figure).

    Returns
    -------
    Axes
        The axes drawn on.
    """
    grid = attribution.grid()
    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 * grid.shape[1] + 6.0, 0.55 * grid.shape[0] + 2.0))
    values = grid.to_numpy(dtype=float)
    lim = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(values), cmap=SIGNED_CMAP, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=20, ha="right", fontsize=9)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=9)
    _annotate(ax, values, values / lim)
    ax.grid(False)
    ax.set_xlabel("feature of the event (column group)")
    ax.set_ylabel("event (−k = k-th most recent) or group of events")
    ax.set_title(f"Cell-level Shapley values ({attribution.method}); green raises, red lowers the score\n"
                 "blank: part of a grouped player drawn elsewhere in its row (e.g. the older events: one player, last "
                 "column),\nor no such cell (the last column exists only for the older events; recent events are split "
                 "by feature)", fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.7, label="Shapley value (change of the score)")
    return ax


def plot_column_heatmap(frame: pd.DataFrame, ax: Axes | None = None, title: str = "", xlabel: str = "",
                        ylabel: str = "") -> Axes:
    """Signed heatmap of a table in which every column has its own colour scale, values written in.

    Taught in 04_shap_sequential (event values under five baselines). Columns whose totals differ a
    lot (one baseline's values are ten times another's) stay readable: the colour is the value
    divided by its column's largest |value|, so -1 .. +1 in every column; the numbers are the values.
    Green raises the score, red lowers it (as in :func:`plot_level_attribution`).

    Parameters
    ----------
    frame : pd.DataFrame
        The table (rows x columns) of signed values.
    ax : Axes | None
        Axes to draw on (default: a new figure).
    title, xlabel, ylabel : str
        Axis texts.

    Returns
    -------
    Axes
        The axes drawn on.
    """
    values = frame.to_numpy(dtype=float)
    scale = np.nanmax(np.abs(values), axis=0)
    scale[~np.isfinite(scale) | (scale == 0)] = 1.0
    rel = values / scale
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * frame.shape[1] + 5.0, 0.32 * frame.shape[0] + 1.8))
    im = ax.imshow(rel, cmap=SIGNED_CMAP, vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), [str(c) for c in frame.columns], fontsize=9)
    ax.set_yticks(range(frame.shape[0]), [str(i) for i in frame.index], fontsize=9)
    _annotate(ax, values, rel, fontsize=7)
    ax.grid(False)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.6, label="value ÷ largest |value| in its column\n(green raises, red lowers)")
    return ax
