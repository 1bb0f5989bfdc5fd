"""Baseline explainers: random, popularity, item-item Jaccard and cosine.

Taught in 01_eda; the yardsticks every later explainer must beat on the counterfactual metrics.
Similarities are computed on the training matrix only (no test information). All four are model-free
(``requires`` is empty): they read only the histories they are built on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation


class RandomExplainer(Explainer):
    """Ranks history items in a random order (seeded per (user, item)): the floor.

    Taught in 01_eda.

    Parameters
    ----------
    train : scipy.sparse matrix
        User x item matrix of histories.
    titles : sequence of str, optional
        Display titles by internal item id.
    random_state : int
        Seed; with the (user, item) pair it fixes the order, so a pair is always explained alike.
    """

    name = "Random"

    def __init__(self, train: sp.csr_matrix, *, titles: Sequence[str] | None = None, random_state: int = 0):
        super().__init__(train, titles=titles)
        self.random_state = random_state

    def explain(self, user: int, item: int) -> Explanation:
        hist = self.check_pair(user, item)
        rng = np.random.default_rng([self.random_state, int(user), int(item)])
        return self._make(user, item, hist, rng.random(len(hist)))


class PopularityExplainer(Explainer):
    """Ranks history items by training popularity: "because you watched a blockbuster".

    Taught in 01_eda.

    Parameters
    ----------
    train : scipy.sparse matrix
        User x item matrix of histories; popularity is each item's share of the most popular item's users.
    titles : sequence of str, optional
        Display titles by internal item id.
    """

    name = "Popularity"

    def __init__(self, train: sp.csr_matrix, *, titles: Sequence[str] | None = None):
        super().__init__(train, titles=titles)
        counts = np.asarray((self.train > 0).sum(axis=0)).ravel().astype(np.float64)
        self.popularity = counts / max(counts.max(), 1.0)

    def explain(self, user: int, item: int) -> Explanation:
        hist = self.check_pair(user, item)
        return self._make(user, item, hist, self.popularity[hist])


class _SimilarityExplainer(Explainer):
    """Ranks history items by an item-item similarity to the recommended item."""

    def __init__(self, train: sp.csr_matrix, *, titles: Sequence[str] | None = None):
        super().__init__(train, titles=titles)
        binary = (self.train > 0).astype(np.float64).tocsc()
        co = (binary.T @ binary).toarray()  # item x item co-occurrence counts
        self.similarity = self._from_cooccurrence(co, np.diag(co).copy())
        np.fill_diagonal(self.similarity, 0.0)

    @staticmethod
    def _from_cooccurrence(co: np.ndarray, counts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def explain(self, user: int, item: int) -> Explanation:
        hist = self.check_pair(user, item)
        return self._make(user, item, hist, self.similarity[item, hist])


class JaccardExplainer(_SimilarityExplainer):
    """Ranks history items ``h`` by |U_h ∩ U_y| / |U_h ∪ U_y| over training users (``y``: the recommended item).

    Taught in 01_eda.

    Parameters
    ----------
    train : scipy.sparse matrix
        User x item matrix of histories (the similarities are computed from it once).
    titles : sequence of str, optional
        Display titles by internal item id.
    """

    name = "Jaccard"

    @staticmethod
    def _from_cooccurrence(co: np.ndarray, counts: np.ndarray) -> np.ndarray:
        union = counts[:, None] + counts[None, :] - co
        return np.divide(co, union, out=np.zeros_like(co), where=union > 0)


class CosineExplainer(_SimilarityExplainer):
    """Ranks history items by the cosine of their training user column with the recommended item's.

    Taught in 01_eda (exercise) and 02_association_rules.

    Parameters
    ----------
    train : scipy.sparse matrix
        User x item matrix of histories.
    titles : sequence of str, optional
        Display titles by internal item id.
    """

    name = "Cosine"

    @staticmethod
    def _from_cooccurrence(co: np.ndarray, counts: np.ndarray) -> np.ndarray:
        norm = np.sqrt(counts)
        denom = norm[:, None] * norm[None, :]
        return np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
