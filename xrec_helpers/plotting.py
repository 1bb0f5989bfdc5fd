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


def plot_explanation(explanation, n: int = 10, ax=None, xlabel: str | None = None):
    """Signed horizontal bars of an explanation, with titles: its strongest supporting and opposing entries.

    Taught in 01_eda. At most ``n`` bars: the top ``n // 2`` by value and the bottom ``n // 2`` (a sign with
    fewer entries leaves its share to the other), so the strongest evidence against the recommendation is never
    cut off. For an additive method (``extra["base_value"]``: f(x) = base + sum of values) the title adds the base
    value, the sum of the bars shown and the total. ``xlabel`` names what the score is (e.g. "score drop when the
    item is removed"); by default the method's score.
    """
    frame = explanation.to_frame()
    scores = frame["score"].to_numpy(dtype=np.float64)
    shown = frame.iloc[_both_signs(scores, n)].iloc[::-1]  # barh draws bottom-up: largest value on top
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(shown) + 1.4))
    colours = [POSITIVE if s > 0 else NEGATIVE if s < 0 else NEUTRAL for s in shown["score"]]
    ax.barh(np.arange(len(shown)), shown["score"], color=colours)
    ax.set_yticks(np.arange(len(shown)), shown["title"].astype(str).str.slice(0, 45))
    ax.axvline(0, color="black", lw=0.8)
    target = explanation._title(explanation.item)
    title = f"{explanation.method}: why {target[:50]}?"
    if len(shown) < len(frame):
        title += f"\n{len(shown)} of {len(frame)} entries: strongest for and against"
    base = explanation.extra.get("base_value") if isinstance(explanation.extra, dict) else None
    if base is not None:
        title += (f"\nbase {float(base):+.3f} + shown {shown['score'].sum():+.3f}"
                  + (f" + not shown {scores.sum() - shown['score'].sum():+.3f}" if len(shown) < len(frame) else "")
                  + f" = total {float(base) + scores.sum():+.3f}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel or f"{explanation.method} score (green supports, red opposes)")
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
