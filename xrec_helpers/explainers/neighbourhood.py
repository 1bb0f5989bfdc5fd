"""User-style explanation: "7 of your 10 nearest neighbours rated it 4 or 5", and its rating histogram.

Taught in 07_neighbourhood_mf (the explanation EMF is built to make true more often).

The explanation attributes the user's *history* items (``kind="history"``), so that removing them can be
measured: each history item j is valued by the share of the neighbours who liked the recommended item
that also liked j ("your neighbours who liked it share your taste for j"); 0 when no neighbour liked the
item. The neighbour evidence itself is the explanation's display ``table``: one row per neighbour, nearest
first, with their rating of the item (0 = not rated) and whether it counts as liked; ``text`` says it in
words with the title, and :func:`plot_neighbour_ratings` draws the table as a histogram.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.emf import nearest_neighbours

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Columns of a neighbourhood explanation's ``table`` (index: the neighbour's rank, 1 = nearest).
NEIGHBOUR_COLUMNS = ["neighbour", "rating", "liked"]


class NeighbourhoodExplainer(Explainer):
    """How the user's nearest neighbours rated the recommended item.

    Taught in 07_neighbourhood_mf.

    Parameters
    ----------
    train : scipy.sparse matrix
        User x item matrix of *ratings* (the one the model was fitted on).
    titles : sequence of str, optional
        Display titles by internal item id.
    neighbours : numpy.ndarray, optional
        (n_users, k) neighbour ids, nearest first (``EMF.neighbours_[:, :10]``); by default the ``k``
        most cosine-similar users of ``train`` (:func:`~xrec_helpers.models.emf.nearest_neighbours`).
    k : int
        Neighbours to compute when ``neighbours`` is not given.
    like_threshold : float
        A rating at or above it counts as "liked" (4 means "rated it 4 or 5").

    Raises
    ------
    ValueError
        When ``train`` is a 0/1 matrix or ``neighbours`` has the wrong shape.
    """

    name = "Neighbours"

    def __init__(self, train: sp.csr_matrix, *, titles: Sequence[str] | None = None,
                 neighbours: np.ndarray | None = None, k: int = 10, like_threshold: float = 4.0):
        super().__init__(train, titles)
        if self.train.data.size and self.train.data.max() <= 1.0:
            raise ValueError("NeighbourhoodExplainer needs ratings, not a 0/1 matrix: use Dataset.csr(ratings, binary=False).")
        if neighbours is None:
            neighbours = nearest_neighbours(self.train, k)
        self.neighbours = np.asarray(neighbours, dtype=np.int64)
        if self.neighbours.ndim != 2 or self.neighbours.shape[0] != self.n_users:
            raise ValueError(f"neighbours must have shape (n_users={self.n_users}, k), got {self.neighbours.shape}.")
        self.like_threshold = like_threshold
        self.liked = (self.train >= like_threshold).astype(np.float64).tocsr()

    def explain(self, user: int, item: int) -> Explanation:
        """The history items the neighbours who liked ``item`` also liked; the neighbours in ``table``.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
            ``kind="history"``; ``table`` has one row per neighbour (``NEIGHBOUR_COLUMNS``).
        """
        hist = self.check_pair(user, item)
        nb = self.neighbours[user]
        ratings = np.asarray(self.train[nb, item].todense()).ravel()
        liked = ratings >= self.like_threshold
        liked_by = nb[liked]
        if len(liked_by):
            # share of the item's likers (among the neighbours) who also liked each history item
            scores = np.asarray(self.liked[liked_by][:, hist].sum(0)).ravel() / len(liked_by)
        else:
            scores = np.zeros(len(hist))
        table = pd.DataFrame({"neighbour": nb, "rating": ratings, "liked": liked},
                             index=pd.RangeIndex(1, len(nb) + 1, name="rank"), copy=False)
        title = str(self.titles[item]) if self.titles is not None else f"item {item}"
        low = int(self.like_threshold) if float(self.like_threshold).is_integer() else self.like_threshold
        text = f"{len(liked_by)} of your {len(nb)} nearest neighbours rated *{markdown_escape(title)}* {low} or higher."
        return self._make(user, item, hist, scores, text=text, table=table)


def neighbour_histogram(explanation: Explanation) -> dict[float, int]:
    """{rating: number of neighbours who gave it} for the neighbours who rated the item.

    Taught in 07_neighbourhood_mf.

    Parameters
    ----------
    explanation : Explanation
        Made by :class:`NeighbourhoodExplainer`.

    Returns
    -------
    dict
        Ratings (ints when whole) to counts, in increasing rating order.
    """
    ratings = _neighbour_table(explanation)["rating"].to_numpy()
    values, counts = np.unique(ratings[ratings > 0], return_counts=True)
    return {int(v) if float(v).is_integer() else float(v): int(c) for v, c in zip(values, counts)}


def _neighbour_table(explanation: Explanation) -> pd.DataFrame:
    table = explanation.table
    if table is None or not set(NEIGHBOUR_COLUMNS) <= set(table.columns):
        raise ValueError("This explanation has no neighbour ratings: make it with NeighbourhoodExplainer.")
    return table


def plot_neighbour_ratings(explanation: Explanation, like_threshold: float = 4.0, ax: Axes | None = None) -> Axes:
    """Bar chart of how the user's neighbours rated the recommended item (1-5 and "not rated"), titled.

    Taught in 07_neighbourhood_mf. Bars at or above the like threshold are green.

    Parameters
    ----------
    explanation : Explanation
        Made by :class:`NeighbourhoodExplainer` (its ``table`` lists the neighbours).
    like_threshold : float
        The explainer's ``like_threshold`` (colours the "liked" bars).
    ax : matplotlib.axes.Axes, optional
        Where to draw (a new figure by default).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt  # plotting stays out of the import path of the explainer itself

    table = _neighbour_table(explanation)
    ratings = table["rating"].to_numpy()
    labels = ["not rated", "1", "2", "3", "4", "5"]
    counts = [int((ratings == 0).sum())] + [int(np.isclose(ratings, r).sum()) for r in range(1, 6)]
    liked = int(table["liked"].sum())
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    colours = ["#bbbbbb"] + ["#2a9d4b" if r >= like_threshold else "#4c72b0" for r in range(1, 6)]
    ax.bar(labels, counts, color=colours)
    for x, c in enumerate(counts):
        ax.text(x, c, str(c), ha="center", va="bottom", fontsize=9)
    ax.set_xlabel("rating given by a neighbour")
    ax.set_ylabel("neighbours")
    ax.set_title(f"{explanation.title(explanation.item)[:50]}: {liked} of {len(table)} "
                 "neighbours liked it", fontsize=10)
    return ax
