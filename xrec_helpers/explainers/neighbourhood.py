"""User-style explanation: "7 of your 10 nearest neighbours rated it 4 or 5", and its rating histogram.

Taught in 07_neighbourhood_mf (the explanation EMF is built to make true more often).

Fitting this to the Explainer contract: an ``Explanation`` ranks the user's *history* items, so that
removing them can be measured. We rank each history item j by the share of the neighbours who liked
the recommended item that also liked j ("your neighbours who liked it share your taste for j"); 0
when no neighbour liked the item. The neighbour evidence itself sits in ``extra``: ``neighbours``
(nearest first), ``neighbour_ratings`` (their rating of the item, 0 = not rated), ``histogram``
({rating: count}), ``n_liked`` and ``k``; ``text`` says it in words with the title.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape


class NeighbourhoodExplainer(Explainer):
    """How the user's nearest neighbours rated the recommended item.

    Taught in 07_neighbourhood_mf.

    Args:
        train: user x item matrix of *ratings* (the one the model was fitted on).
        neighbours: (n_users, k) neighbour ids, nearest first (``EMF.neighbours_[:, :10]``).
        titles: display titles by internal item id.
        like_threshold: a rating at or above it counts as "liked" (4 means "rated it 4 or 5").
    """

    name = "Neighbours"

    def __init__(self, train: sp.csr_matrix, neighbours: np.ndarray, titles: Sequence[str] | None = None,
                 like_threshold: float = 4.0):
        super().__init__(train, titles)
        self.neighbours = np.asarray(neighbours, dtype=np.int64)
        if self.neighbours.ndim != 2 or self.neighbours.shape[0] != self.n_users:
            raise ValueError(f"neighbours must have shape (n_users={self.n_users}, k), got {self.neighbours.shape}.")
        if self.train.data.size and self.train.data.max() <= 1.0:
            raise ValueError("NeighbourhoodExplainer needs ratings, not a 0/1 matrix: use Dataset.csr(ratings, binary=False).")
        self.like_threshold = like_threshold
        self.liked = (self.train >= like_threshold).astype(np.float64).tocsr()

    def explain(self, user: int, item: int) -> Explanation:
        hist = self.check_pair(user, item)
        nb = self.neighbours[user]
        ratings = np.asarray(self.train[nb, item].todense()).ravel()
        liked_by = nb[ratings >= self.like_threshold]
        if len(liked_by):
            # share of the item's likers (among the neighbours) who also liked each history item
            scores = np.asarray(self.liked[liked_by][:, hist].sum(0)).ravel() / len(liked_by)
        else:
            scores = np.zeros(len(hist))
        values, counts = np.unique(ratings[ratings > 0], return_counts=True)
        histogram = {int(v) if float(v).is_integer() else float(v): int(c) for v, c in zip(values, counts)}
        title = str(self.titles[item]) if self.titles is not None else f"item {item}"
        low = int(self.like_threshold) if float(self.like_threshold).is_integer() else self.like_threshold
        text = f"{len(liked_by)} of your {len(nb)} nearest neighbours rated *{markdown_escape(title)}* {low} or higher."
        return self._make(user, item, hist, scores, text=text, extra={
            "neighbours": nb, "neighbour_ratings": ratings, "histogram": histogram,
            "n_liked": int(len(liked_by)), "n_rated": int((ratings > 0).sum()), "k": int(len(nb)),
            "like_threshold": self.like_threshold})


def plot_neighbour_ratings(explanation: Explanation, ax=None):
    """Bar chart of how the user's neighbours rated the recommended item (1-5 and "not rated"), titled.

    Taught in 07_neighbourhood_mf. Bars at or above the like threshold are green.
    """
    import matplotlib.pyplot as plt  # plotting stays out of the import path of the explainer itself

    if "neighbour_ratings" not in explanation.extra:
        raise ValueError("This explanation has no neighbour ratings: make it with NeighbourhoodExplainer.")
    ratings = np.asarray(explanation.extra["neighbour_ratings"])
    labels = ["not rated", "1", "2", "3", "4", "5"]
    counts = [int((ratings == 0).sum())] + [int(np.isclose(ratings, r).sum()) for r in range(1, 6)]
    liked = explanation.extra["n_liked"]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    threshold = explanation.extra.get("like_threshold", 4.0)
    colours = ["#bbbbbb"] + ["#2a9d4b" if r >= threshold else "#4c72b0" for r in range(1, 6)]
    ax.bar(labels, counts, color=colours)
    for x, c in enumerate(counts):
        ax.text(x, c, str(c), ha="center", va="bottom", fontsize=9)
    ax.set_xlabel("rating given by a neighbour")
    ax.set_ylabel("neighbours")
    ax.set_title(f"{explanation._title(explanation.item)[:50]}: {liked} of {explanation.extra['k']} "
                 "neighbours liked it", fontsize=10)
    return ax
