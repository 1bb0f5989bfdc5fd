"""Surrogate explainers over the multi-hot history: LIME and KernelSHAP over item clusters.

Taught in 05_lxr (as LXR's baselines). Both treat a history-conditioned recommender as a black box that
scores edited histories (``SCORE_HISTORIES``), batched so that one call scores many perturbations, and fit
a simple model of its answers: a weighted ridge regression (LIME: Ribeiro et al. 2016, with LXR's sampler)
or Shapley values of item clusters (KernelSHAP: Lundberg & Lee 2017, via the ``shap`` package). Written from
the papers; no code from the LXR repositories. (The feature-model versions are ``lime_rs`` and
``kernel_shap_fm``, 03_fm_lime.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models.base import SCORE_HISTORIES


class _HistorySurrogate(Explainer):
    """An explainer that queries a history-conditioned recommender (``SCORE_HISTORIES``)."""

    requires: ClassVar[frozenset[str]] = frozenset({SCORE_HISTORIES})

    def __init__(self, model: Any, titles: Sequence[str] | np.ndarray | None = None):
        self._attach(model, titles)


class LIMEExplainer(_HistorySurrogate):
    """LIME over the multi-hot history with LXR's perturbation sampler, fitted by ``lime``'s LimeBase.

    Each of ``n_samples`` neighbours flips d ~ U{d_min..d_max} entries: min(U{0..d}, |history|) history items
    are removed and the rest are random non-history items added. The target is the recommender's score of y;
    proximity is 1 - d_j / sum(d). LimeBase selects |history| features by "highest_weights" (weighted ridge,
    alpha 0.01) and fits a ridge (alpha 1) on them; a history item's value is its coefficient (0 when not
    selected), and ``fit_r2`` is the fit's weighted R². Seeded per (user, item). Taught in 05_lxr.

    Parameters
    ----------
    model : HistoryRecommender
        A fitted model with ``SCORE_HISTORIES``.
    titles : sequence of str, optional
        Display titles by internal item id.
    n_samples : int
        Perturbed neighbours per explanation.
    d_min, d_max : int
        Range of the number of flipped entries per neighbour.
    random_state : int
        Seed (combined with the user and item).
    batch_users : int
        Explanations whose neighbourhoods share one model call in ``explain_many``.
    """

    name: ClassVar[str] = "LIME"

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, n_samples: int = 150,
                 d_min: int = 50, d_max: int = 100, random_state: int = 0, batch_users: int = 16):
        super().__init__(model, titles)
        if n_samples < 2 or not 1 <= d_min <= d_max or batch_users < 1:
            raise ValueError("n_samples must be >= 2, 1 <= d_min <= d_max and batch_users >= 1.")
        self.n_samples, self.d_min, self.d_max, self.random_state = n_samples, d_min, d_max, random_state
        self.batch_users = batch_users

    def neighbourhood(self, user: int, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The perturbed histories LIME fits on.

        Parameters
        ----------
        user, item : int
            Internal ids.

        Returns
        -------
        histories : numpy.ndarray
            Shape ``(n_samples + 1, n_items)``, the original first.
        flips : numpy.ndarray
            Entries flipped per row.
        history : numpy.ndarray
            The user's history items.
        """
        hist = self.check_pair(user, item)
        rng = np.random.default_rng([self.random_state, int(user), int(item)])
        base = self._row(hist)
        non_hist = np.flatnonzero(base == 0)
        X = np.tile(base, (self.n_samples + 1, 1))
        flips = np.zeros(self.n_samples + 1)
        for j in range(1, self.n_samples + 1):
            d = int(rng.integers(self.d_min, self.d_max + 1))
            n_remove = min(int(rng.integers(0, d + 1)), len(hist))
            X[j, rng.choice(hist, size=n_remove, replace=False)] = 0.0
            X[j, rng.choice(non_hist, size=d - n_remove, replace=True)] = 1.0  # with replacement, as LXR
            flips[j] = d
        return X, flips, hist

    def explain(self, user: int, item: int) -> Explanation:
        """LIME's coefficients for the user's history items (see the class).

        Parameters
        ----------
        user : int
            Internal user id.
        item : int
            Internal id of the recommended item.

        Returns
        -------
        Explanation
            A ``kind="history"`` explanation.
        """
        return self.explain_many([(user, item)])[0]

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Explain many pairs; ``batch_users`` neighbourhoods share one model call.

        Parameters
        ----------
        pairs : Iterable[tuple[int, int]]
            (user, item) pairs of internal ids.

        Returns
        -------
        list[Explanation]
            One explanation per pair, in order.
        """
        from lime.lime_base import LimeBase
        from sklearn.linear_model import Ridge

        pairs = [(int(u), int(i)) for u, i in pairs]
        out = []
        for s in range(0, len(pairs), self.batch_users):
            block = [(u, i, *self.neighbourhood(u, i)) for u, i in pairs[s:s + self.batch_users]]
            S = self.model.score_histories(np.concatenate([b[2] for b in block]))
            offset = 0
            for u, i, X, flips, hist in block:
                labels = S[offset:offset + len(X), [i]].astype(np.float64)
                offset += len(X)
                lime = LimeBase(kernel_fn=lambda d: 1.0 - d / d.sum(), random_state=self.random_state)
                _, weights, r2, _ = lime.explain_instance_with_data(
                    X, labels, flips, 0, num_features=len(hist), feature_selection="highest_weights",
                    model_regressor=Ridge(alpha=1.0))
                coef = dict((int(f), float(w)) for f, w in weights)
                out.append(self._make(u, i, hist, [coef.get(int(h), 0.0) for h in hist], fit_r2=float(r2),
                                      model_calls=len(X)))
        return out


class ClusterSHAPExplainer(_HistorySurrogate):
    """KernelSHAP (``shap`` package) over k-means item clusters of the user's history.

    Items are clustered by k-means on their training user columns; a coalition keeps the user's history
    items in the "present" clusters and removes the rest. Each history item gets its cluster's SHAP value, so
    items of one cluster tie (:meth:`cluster_values` gives the per-cluster values). ``background`` is "empty"
    (absent clusters are removed: 2^c coalitions per user, exact Shapley values) or an int n: ``shap.sample``
    of n training users' cluster indicators, as LXR (~10^5 model calls per user for n = 50). Taught in 05_lxr.

    Parameters
    ----------
    model : HistoryRecommender
        A fitted model with ``SCORE_HISTORIES``.
    titles : sequence of str, optional
        Display titles by internal item id.
    n_clusters : int
        Number of k-means item clusters.
    background : "empty" or int
        The SHAP background (see above).
    cluster_matrix : scipy.sparse matrix, optional
        The user x item matrix the clusters (and a sampled background) come from; default the model's histories.
    nsamples : int or "auto"
        KernelSHAP's coalition budget.
    random_state : int
        Seed of k-means and of the background sample.
    """

    name: ClassVar[str] = "cluster SHAP"

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, n_clusters: int = 10,
                 background: str | int = "empty", cluster_matrix: sp.spmatrix | None = None,
                 nsamples: int | str = "auto", random_state: int = 3):
        from sklearn.cluster import KMeans

        super().__init__(model, titles)
        if not 2 <= n_clusters <= self.n_items:
            raise ValueError(f"n_clusters={n_clusters} must be between 2 and the catalogue size {self.n_items}.")
        if not (background == "empty" or (isinstance(background, int) and background >= 1)):
            raise ValueError(f"background must be 'empty' or a positive number of users, not {background!r}.")
        source = self.train if cluster_matrix is None else sp.csr_matrix(cluster_matrix)
        columns = (source > 0).astype(np.float32).T.tocsr()  # one row per item
        self.cluster_of = KMeans(n_clusters=n_clusters, n_init=4, random_state=random_state).fit_predict(columns)
        self.n_clusters, self.background, self.nsamples, self.random_state = n_clusters, background, nsamples, random_state
        if background == "empty":
            self._background = np.zeros((1, n_clusters))
        else:
            import shap

            rows = (source > 0).astype(np.float32)
            indicators = (rows @ sp.csr_matrix((np.ones(self.n_items), (np.arange(self.n_items), self.cluster_of)),
                                               shape=(self.n_items, n_clusters))).toarray() > 0
            self._background = shap.sample(indicators.astype(float), background, random_state=random_state)
        self._cluster_values: dict[tuple[int, int], np.ndarray] = {}

    def cluster_values(self, explanation: Explanation) -> np.ndarray:
        """The SHAP value of every cluster for an explained pair (absent clusters too, which a sampled background
        can make non-zero); the explanation's item values are the values of their clusters.

        Parameters
        ----------
        explanation : Explanation
            One of this explainer's explanations.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_clusters,)``.
        """
        key = (explanation.user, explanation.item)
        if key not in self._cluster_values:
            self.explain(*key)
        return self._cluster_values[key].copy()

    def explain(self, user: int, item: int) -> Explanation:
        """Each history item's cluster SHAP value (see the class).

        Parameters
        ----------
        user : int
            Internal user id.
        item : int
            Internal id of the recommended item.

        Returns
        -------
        Explanation
            A ``kind="history"`` explanation.
        """
        import shap

        hist = self.check_pair(user, item)
        base = self._row(hist)
        membership = (self.cluster_of[None, :] == np.arange(self.n_clusters)[:, None]).astype(np.float32)

        def model(Z: np.ndarray) -> np.ndarray:
            keep = (np.asarray(Z) > 0.5).astype(np.float32) @ membership  # (n, n_items): 1 if item's cluster present
            return self.model.score_histories(keep * base[None, :])[:, item].astype(np.float64)

        present = np.zeros((1, self.n_clusters))
        present[0, np.unique(self.cluster_of[hist])] = 1.0
        explainer = shap.KernelExplainer(model, self._background)
        values = np.asarray(explainer.shap_values(present, nsamples=self.nsamples, silent=True)).reshape(-1)
        self._cluster_values[(int(user), int(item))] = values
        return self._make(user, item, hist, values[self.cluster_of[hist]],
                          model_calls=getattr(explainer, "nsamplesRun", None))
