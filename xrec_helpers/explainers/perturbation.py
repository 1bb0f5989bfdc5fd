"""Perturbation-based post-hoc explainers: LIME, KernelSHAP over item clusters, FIA and ACCENT.

Taught in 05_lxr (as LXR's baselines) and 06_accent. All of them treat the recommender as a black
box that scores edited histories (``score_histories``), batched so that one call scores many
perturbations. Written from the papers (LIME: Ribeiro et al. 2016 with LXR's sampler; KernelSHAP:
Lundberg & Lee 2017 via the ``shap`` package; FIA: Cheng et al. 2019; ACCENT: Tran et al. 2021);
no code from the LXR repositories.

On a history-conditioned model, removing an item from the history is re-scored *exactly*, so FIA's
influence approximation of "retrain without this interaction" becomes an exact leave-one-out of the
history, and ACCENT's gap influences are exact too (as the LXR paper notes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models.base import HistoryRecommender


class _RecommenderExplainer(Explainer):
    """An explainer that queries a history-conditioned recommender."""

    def __init__(self, train: sp.csr_matrix, recommender: HistoryRecommender,
                 titles: Sequence[str] | np.ndarray | None = None):
        super().__init__(train, titles)
        if not hasattr(recommender, "score_histories"):
            raise TypeError(f"{type(recommender).__name__} cannot score edited histories; these explainers need a "
                            "HistoryRecommender (score_histories).")
        if recommender.n_items != self.n_items:
            raise ValueError(f"The recommender has {recommender.n_items} items, the histories {self.n_items}.")
        self.recommender = recommender

    def _row(self, history: np.ndarray) -> np.ndarray:
        x = np.zeros(self.n_items, dtype=np.float32)
        x[history] = 1.0
        return x


class FIAExplainer(_RecommenderExplainer):
    """Leave-one-out influence: score(x)_y - score(x without h)_y for every history item h.

    Exact on a history-conditioned model (FIA approximates this with influence functions when the
    user is an embedding that would need retraining). One batched call of |history| + 1 rows.
    Taught in 05_lxr.
    """

    name = "FIA"

    def influences(self, user: int, items: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(history, scores of ``items`` on the full history, drops: (|history|, len(items)) = full - removed)."""
        hist = self.history(user)
        X = np.tile(self._row(hist), (len(hist) + 1, 1))
        X[np.arange(len(hist)), hist] = 0.0  # row j: history without its j-th item; last row: full
        S = self.recommender.score_histories(X)[:, np.asarray(items)].astype(np.float64)
        return hist, S[-1], S[-1][None, :] - S[:-1]

    def explain(self, user: int, item: int) -> Explanation:
        self.check_pair(user, item)
        hist, _, drops = self.influences(user, [item])
        return self._make(user, item, hist, drops[:, 0])


class ACCENTExplainer(FIAExplainer):
    """ACCENT (Tran, Ghazimatin & Saha Roy, SIGIR 2021): the smallest history set whose removal lets a
    top-k item replace the recommendation.

    For every candidate replacement r in the user's top-``k`` (after y), the influence of removing h
    on the score gap s_y - s_r is I_r(h) = (s_y - s_r)(x) - (s_y - s_r)(x - h). Items are added in
    decreasing I_r order until the summed influence exceeds the gap (stopping when the next influence
    is <= 0: the gap cannot close); the replacement with the smallest such set wins. The history is
    then ranked by its influence on *that* gap (when no replacement succeeds, the one whose gap was
    closed furthest). Influences are additive estimates; the real effect of removing the set is
    checked by the perturbation metrics (and, for ID models, by retraining: 06_accent).
    Taught in 05_lxr and 06_accent.
    """

    name = "ACCENT"

    def __init__(self, train: sp.csr_matrix, recommender: HistoryRecommender,
                 titles: Sequence[str] | np.ndarray | None = None, k: int = 5):
        super().__init__(train, recommender, titles)
        if not 2 <= k <= self.n_items:
            raise ValueError(f"k={k}: the replacement candidates are the top-k after the item, so k must be >= 2 "
                             f"and at most the catalogue size {self.n_items}.")
        self.k = k

    def explain(self, user: int, item: int) -> Explanation:
        hist = self.check_pair(user, item)
        full = self.recommender.score_histories(self._row(hist)[None, :])[0].astype(np.float64)
        full[hist] = -np.inf
        full[item] = -np.inf
        candidates = np.argsort(-full, kind="stable")[: self.k - 1]
        hist, base, drops = self.influences(user, [item, *candidates.tolist()])
        best = None  # (set size, remaining gap, candidate index, set)
        for c in range(len(candidates)):
            gap = base[0] - base[c + 1]
            influence = drops[:, 0] - drops[:, c + 1]  # how much removing h shrinks the gap
            order = np.argsort(-influence, kind="stable")
            chosen = []
            for j in order:
                if gap < 0 or influence[j] <= 0:
                    break
                gap -= influence[j]
                chosen.append(hist[j])
            key = (len(chosen) if gap < 0 else np.inf, gap, c, chosen)
            if best is None or key[:2] < best[:2]:
                best = key
        size, gap, c, chosen = best
        influence = drops[:, 0] - drops[:, c + 1]
        success = bool(np.isfinite(size))
        return self._make(user, item, hist, influence,
                          counterfactual_set=np.asarray(chosen, dtype=np.int64) if success else None,
                          replacement=int(candidates[c]) if success else None,
                          predicted_gap=float(gap),
                          extra={"candidates": candidates, "found": success})


class LIMEExplainer(_RecommenderExplainer):
    """LIME over the multi-hot history with LXR's perturbation sampler, fitted by ``lime``'s LimeBase.

    Each of ``n_samples`` neighbours flips d ~ U{d_min..d_max} entries: min(U{0..d}, |history|)
    history items are removed and the rest are random non-history items added. The target is the
    recommender's score of y; proximity is 1 - d_j / sum(d). LimeBase selects |history| features by
    "highest_weights" (weighted ridge, alpha 0.01) and fits a ridge (alpha 1) on them; a history item's
    score is its coefficient (0 when not selected). Seeded per (user, item). Taught in 05_lxr.
    """

    name = "LIME"

    def __init__(self, train: sp.csr_matrix, recommender: HistoryRecommender,
                 titles: Sequence[str] | np.ndarray | None = None, n_samples: int = 150, d_min: int = 50,
                 d_max: int = 100, random_state: int = 0):
        super().__init__(train, recommender, titles)
        if n_samples < 2 or not 1 <= d_min <= d_max:
            raise ValueError("n_samples must be >= 2 and 1 <= d_min <= d_max.")
        self.n_samples, self.d_min, self.d_max, self.random_state = n_samples, d_min, d_max, random_state

    def neighbourhood(self, user: int, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(histories (n_samples + 1, n_items) with the original first, flips per row, history)."""
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
        return self.explain_many([(user, item)])[0]

    def explain_many(self, pairs: Iterable[tuple[int, int]], batch_users: int = 16) -> list[Explanation]:
        from lime.lime_base import LimeBase
        from sklearn.linear_model import Ridge

        pairs = [(int(u), int(i)) for u, i in pairs]
        out = []
        for s in range(0, len(pairs), batch_users):
            block = [(u, i, *self.neighbourhood(u, i)) for u, i in pairs[s:s + batch_users]]
            # One recommender call for the whole block's neighbourhoods.
            S = self.recommender.score_histories(np.concatenate([b[2] for b in block]))
            offset = 0
            for u, i, X, flips, hist in block:
                labels = S[offset:offset + len(X), [i]].astype(np.float64)
                offset += len(X)
                lime = LimeBase(kernel_fn=lambda d: 1.0 - d / d.sum(), random_state=self.random_state)
                _, weights, r2, _ = lime.explain_instance_with_data(
                    X, labels, flips, 0, num_features=len(hist), feature_selection="highest_weights",
                    model_regressor=Ridge(alpha=1.0))
                coef = dict((int(f), float(w)) for f, w in weights)
                out.append(self._make(u, i, hist, [coef.get(int(h), 0.0) for h in hist], extra={"r2": float(r2)}))
        return out


class ClusterSHAPExplainer(_RecommenderExplainer):
    """KernelSHAP (``shap`` package) over k-means item clusters of the user's history.

    Items are clustered by k-means on their training user columns; a coalition keeps the user's
    history items in the "present" clusters and removes the rest. Each history item gets its
    cluster's SHAP value, so items of one cluster tie. ``background`` is "empty" (absent clusters are
    removed: 2^c coalitions per user, exact Shapley values) or an int n: ``shap.sample`` of n training
    users' cluster indicators, as LXR (~10^5 model calls per user for n = 50). Taught in 05_lxr.
    """

    name = "SHAP"

    def __init__(self, train: sp.csr_matrix, recommender: HistoryRecommender,
                 titles: Sequence[str] | np.ndarray | None = None, n_clusters: int = 10,
                 background: str | int = "empty", cluster_matrix: sp.csr_matrix | None = None,
                 nsamples: int | str = "auto", random_state: int = 3):
        from sklearn.cluster import KMeans

        super().__init__(train, recommender, titles)
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

    def explain(self, user: int, item: int) -> Explanation:
        import shap

        hist = self.check_pair(user, item)
        base = self._row(hist)
        membership = (self.cluster_of[None, :] == np.arange(self.n_clusters)[:, None]).astype(np.float32)

        def model(Z: np.ndarray) -> np.ndarray:
            keep = (np.asarray(Z) > 0.5).astype(np.float32) @ membership  # (n, n_items): 1 if item's cluster present
            return self.recommender.score_histories(keep * base[None, :])[:, item].astype(np.float64)

        present = np.zeros((1, self.n_clusters))
        present[0, np.unique(self.cluster_of[hist])] = 1.0
        explainer = shap.KernelExplainer(model, self._background)
        values = np.asarray(explainer.shap_values(present, nsamples=self.nsamples, silent=True)).reshape(-1)
        return self._make(user, item, hist, values[self.cluster_of[hist]],
                          extra={"cluster_values": values, "model_calls": getattr(explainer, "nsamplesRun", None)})
