"""One plotting style for the course, ``save_fig``, and the standard explanation plots.

Taught in 01_eda. Explanations are drawn as signed horizontal bars (green supports the
recommendation, red speaks against it), never as pies: contributions can be negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "widget", "ipympl", "qt", "tk", "macosx")):
    matplotlib.use("Agg")  # headless test runs: never try to open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xrec_helpers._paths import figures_dir  # noqa: E402

POSITIVE, NEGATIVE, NEUTRAL = "#2a9d4b", "#c0392b", "#4c72b0"


def set_style() -> None:
    """The course style (no removed matplotlib style names: rcParams only)."""
    plt.rcParams.update({
        "figure.figsize": (7, 4), "figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.3, "axes.titleweight": "bold", "font.size": 10,
    })


set_style()


def save_fig(fig, name: str) -> str:
    """Save ``fig`` as ``figures/<name>.png`` and return the path."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, bbox_inches="tight", dpi=110)
    return str(path)


def plot_explanation(explanation, n: int = 10, ax=None):
    """Signed horizontal bars of an explanation's top ``n`` history items, with titles."""
    frame = explanation.to_frame().head(n).iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(frame) + 1.2))
    colours = [POSITIVE if s >= 0 else NEGATIVE for s in frame["score"]]
    ax.barh(frame["title"].str.slice(0, 45), frame["score"], color=colours)
    ax.axvline(0, color="black", lw=0.8)
    target = explanation._title(explanation.item)
    ax.set_title(f"{explanation.method}: why {target[:50]}?")
    ax.set_xlabel("score (green supports, red opposes)")
    return ax


def plot_curves(results: dict, metric: str = "POS@20", ax=None):
    """Perturbation curves of several explainers for one metric."""
    if ax is None:
        _, ax = plt.subplots()
    for name, result in results.items():
        ax.plot(result.curves.index, result.curves[metric], marker="o", ms=3, label=name)
    better = "lower" if next(iter(results.values())).lower_is_better(metric) else "higher"
    ax.set_xlabel("fraction of history removed (most explanatory first)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} ({better} is better)")
    ax.legend(fontsize=8)
    return ax


def bar_with_labels(ax, labels: Sequence[str], values: Sequence[float], colour: str = NEUTRAL, fmt: str = "{:.2f}"):
    """Horizontal bars with the value printed at the end of each bar."""
    y = np.arange(len(labels))
    ax.barh(y, values, color=colour)
    ax.set_yticks(y, labels)
    for yi, v in zip(y, values):
        ax.text(v, yi, " " + fmt.format(v), va="center", fontsize=8)
    return ax


def plot_level_attribution(attribution, ax=None, n: int = 12):
    """Signed bars of an event-, feature- or cell-level attribution (both signs, labels as given).

    Taught in 04_shap_sequential. The ``n`` largest |values| are drawn, largest at the top; the title
    states the level, the estimator and f(x) - f(baseline), which the values sum to.
    """
    frame = attribution.to_frame().head(n).iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.33 * len(frame) + 1.4))
    colours = [POSITIVE if v >= 0 else NEGATIVE for v in frame["value"]]
    ax.barh([str(p)[:60] for p in frame["player"]], frame["value"], color=colours)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_title(f"{attribution.level.capitalize()}-level Shapley values ({attribution.method})\n"
                 f"sum = f(x) − f(baseline) = {attribution.total:+.3f}", fontsize=10)
    ax.set_xlabel("contribution to the score (green raises it, red lowers it)")
    return ax


def plot_cell_grid(attribution, ax=None):
    """Heatmap of a cell-level attribution: rows are event groups, columns feature groups, both signs.

    Taught in 04_shap_sequential. Red raises the score, blue lowers it; blank cells are not players.
    """
    grid = attribution.grid()
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * grid.shape[1] + 5.5, 0.5 * grid.shape[0] + 1.5))
    values = grid.to_numpy(dtype=float)
    lim = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=20, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, f"{v:+.2f}", ha="center", va="center", fontsize=8)
    ax.grid(False)
    ax.set_title(f"Cell-level Shapley values ({attribution.method}); red raises, blue lowers the score", fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.7)
    return ax
