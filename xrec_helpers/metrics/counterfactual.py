"""Counterfactual perturbation metrics: remove what the explanation blames and watch the rank.

Taught in 01_eda (first use) and 05_lxr (in full). Definitions follow the evaluation protocol of
the LXR paper (Gurevitch et al., WWW 2024):

* The explanation's ranking pi of the user's history (most explanatory first) is removed in
  ``steps`` near-equal chunks, giving ``steps + 1`` points (0 %, 10 %, ..., 100 %).
* POS@K: is the explained item y still in the top-K after removing the *most* explanatory items
  (lower is better). NEG@K: the same after removing the *least* explanatory ones (higher is
  better). DEL: y's score after POS removal (lower is better). INS: y's score when *only* the top
  items are kept (higher is better). CDCG: 1/log2(rank + 1) after POS removal (lower is better).
* Ranks are computed among the items outside the **original** history, so removed items never
  re-enter the ranking.
* AUC is the plain mean over the ``steps + 1`` points, both endpoints included. The endpoints
  are the same for every explainer (nothing removed / everything removed), so only *differences*
  between explainers carry information; ``interior`` AUCs drop the endpoints.
* Fixed-length variants remove (or keep) the top K_e = 1..5 items; there DEL and INS are ratios
  to the unperturbed score, as in the SIGIR'25 refined metrics.

An explanation that ranks only part of the history (e.g. association rules) has the rest of the
history appended after its items in a seeded random order: an unexplained item is no evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.models.base import HistoryRecommender

LOWER_IS_BETTER = {"POS": True, "NEG": False, "DEL": True, "INS": False, "CDCG": True}


def _orientation(metric: str) -> bool:
    return LOWER_IS_BETTER[metric.split("@")[0]]


@dataclass
class PerturbationResult:
    """Curves, AUCs and fixed-length metrics of one explainer on one recommender.

    Attributes:
        curves: mean over explanations at each removal fraction (index 0.0 ... 1.0).
        auc: mean of each curve over all points (the LXR convention).
        interior_auc: mean over the interior points only (endpoints are identical for all methods).
        per_user: one row per explanation with its AUCs (for paired tests between explainers).
        fixed: fixed-length metrics, one row per K_e.
        method: the explainer's name.
        pos_ranks: (n_explanations, steps + 1) rank of the item after each POS removal step.
        fixed_ranks: (n_explanations, len(fixed)) rank after removing the top K_e items.
        removed: (n_explanations, steps + 1) number of history items removed at each step.
    """

    curves: pd.DataFrame
    auc: pd.Series
    interior_auc: pd.Series
    per_user: pd.DataFrame
    fixed: pd.DataFrame
    method: str
    pos_ranks: np.ndarray | None = None
    fixed_ranks: np.ndarray | None = None
    removed: np.ndarray | None = None

    def lower_is_better(self, metric: str) -> bool:
        """True when a smaller value of ``metric`` means a more faithful explanation."""
        return _orientation(metric)


def _ranking(expl: Explanation, history: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hist_set = set(history.tolist())
    listed = [int(i) for i in expl.items if int(i) in hist_set]
    if len(listed) != len(expl.items):
        stray = [int(i) for i in expl.items if int(i) not in hist_set][:5]
        raise ValueError(f"{expl.method} explanation for user {expl.user} lists items {stray} that are not "
                         "in the user's training history.")
    rest = np.setdiff1d(history, listed)
    return np.concatenate([np.asarray(listed, dtype=np.int64), rng.permutation(rest)]).astype(np.int64)


def _cumulative_counts(n: int, steps: int) -> np.ndarray:
    sizes = [len(c) for c in np.array_split(np.arange(n), steps)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def explained_history(train: sp.csr_matrix, expl: Explanation) -> np.ndarray:
    """The explained user's history (item ids) from ``train``, checked: non-empty, and without the explained item.

    Shared by every protocol that edits histories (perturbation curves, PN/PS). Taught in 05_lxr.
    """
    history = train.indices[train.indptr[expl.user]:train.indptr[expl.user + 1]]
    if len(history) == 0:
        raise ValueError(f"User {expl.user} has an empty history.")
    if expl.item in set(history.tolist()):
        raise ValueError(f"Item {expl.item} is in user {expl.user}'s history; explain unseen items only.")
    return history


def perturbation_curves(
    recommender: HistoryRecommender,
    explanations: Sequence[Explanation],
    steps: int = 10,
    ks: Sequence[int] = (5, 10, 20),
    fixed: Sequence[int] = (1, 2, 3, 4, 5),
    random_state: int = 0,
    batch_rows: int = 4096,
) -> PerturbationResult:
    """Run the counterfactual perturbation protocol (see the module docstring).

    Args:
        recommender: a fitted history-conditioned model; its ``train_`` rows are the histories.
        explanations: one per (user, item); the item must be outside the user's history.
        steps: number of removal chunks (10 gives 11 points).
        ks: cut-offs for POS@K and NEG@K.
        fixed: K_e values for the fixed-length variants.
    """
    if not isinstance(recommender, HistoryRecommender):
        raise TypeError(f"{type(recommender).__name__} cannot re-score an edited history; the perturbation "
                        "protocol needs a HistoryRecommender (ID-embedding models are checked by retraining).")
    if len(explanations) == 0:
        raise ValueError("No explanations to evaluate.")
    rng = np.random.default_rng(random_state)
    train = recommender.train_
    n_items = recommender.n_items
    n_points = steps + 1
    rows_per = 3 * n_points + 2 * len(fixed) + 1
    jobs = []  # (explanation, original history, ranking, counts)
    for expl in explanations:
        history = explained_history(train, expl)
        jobs.append((expl, history, _ranking(expl, history, rng), _cumulative_counts(len(history), steps)))

    per_user_rows, curve_sum, fixed_rows = [], None, []
    pos_ranks, fixed_ranks = [], []
    chunk = max(1, batch_rows // rows_per)
    for start in range(0, len(jobs), chunk):
        block = jobs[start:start + chunk]
        X = np.zeros((len(block) * rows_per, n_items), dtype=np.float32)
        for b, (_, history, pi, counts) in enumerate(block):
            base = b * rows_per
            for t, c in enumerate(counts):
                X[base + t, history] = 1
                X[base + t, pi[:c]] = 0  # POS: drop the most explanatory
                X[base + n_points + t, history] = 1
                X[base + n_points + t, pi[::-1][:c]] = 0  # NEG: drop the least explanatory
                X[base + 2 * n_points + t, pi[:c]] = 1  # INS: keep only the most explanatory
            for f, ke in enumerate(fixed):
                ke = min(ke, len(pi))
                X[base + 3 * n_points + f, history] = 1
                X[base + 3 * n_points + f, pi[:ke]] = 0
                X[base + 3 * n_points + len(fixed) + f, pi[:ke]] = 1
            X[base + rows_per - 1, history] = 1  # the unperturbed history
        S = recommender.score_histories(X)
        for b, (expl, history, _, _) in enumerate(block):
            s = S[b * rows_per:(b + 1) * rows_per].astype(np.float64)
            y = expl.item
            candidates = np.ones(n_items, dtype=bool)
            candidates[history] = False
            candidates[y] = False
            sy = s[:, y]
            rank = 1 + (s[:, candidates] > sy[:, None]).sum(1)
            pos_rank, neg_rank = rank[:n_points], rank[n_points:2 * n_points]
            pos_ranks.append(pos_rank)
            fixed_ranks.append(rank[3 * n_points:3 * n_points + len(fixed)])
            curve = {f"POS@{k}": (pos_rank <= k).astype(float) for k in ks}
            curve |= {f"NEG@{k}": (neg_rank <= k).astype(float) for k in ks}
            curve |= {"DEL": sy[:n_points], "INS": sy[2 * n_points:3 * n_points],
                      "CDCG": 1.0 / np.log2(pos_rank + 1)}
            frame = pd.DataFrame(curve)
            curve_sum = frame if curve_sum is None else curve_sum + frame
            auc = frame.mean()
            interior = frame.iloc[1:-1].mean() if n_points > 2 else auc
            per_user_rows.append({"user": expl.user, "item": expl.item,
                                  **{f"{m}": v for m, v in auc.items()},
                                  **{f"{m} (interior)": v for m, v in interior.items()}})
            s0 = sy[-1]
            off = 3 * n_points
            for f, ke in enumerate(fixed):
                r = rank[off + f]
                fixed_rows.append({"K_e": ke, **{f"POS@{k}": float(r <= k) for k in ks},
                                   "CDCG": 1.0 / np.log2(r + 1), "DEL": sy[off + f] / s0,
                                   "INS": sy[off + len(fixed) + f] / s0})
    curves = curve_sum / len(jobs)
    curves.index = pd.Index(np.round(np.linspace(0, 1, n_points), 3), name="fraction removed")
    per_user = pd.DataFrame(per_user_rows)
    metric_cols = list(curves.columns)
    return PerturbationResult(
        curves=curves,
        auc=per_user[metric_cols].mean(),
        interior_auc=per_user[[f"{m} (interior)" for m in metric_cols]].mean().rename(lambda c: c.split(" ")[0]),
        per_user=per_user,
        fixed=pd.DataFrame(fixed_rows).groupby("K_e").mean() if fixed_rows else pd.DataFrame(),
        method=explanations[0].method,
        pos_ranks=np.asarray(pos_ranks),
        fixed_ranks=np.asarray(fixed_ranks).reshape(len(jobs), len(fixed)),
        removed=np.asarray([counts for *_, counts in jobs]),
    )


def compare(results: dict[str, PerturbationResult] | Sequence[PerturbationResult], interior: bool = False) -> pd.DataFrame:
    """One row per explainer, one column per AUC (arrows in the header say which way is better)."""
    if not isinstance(results, dict):
        results = {r.method: r for r in results}
    table = pd.DataFrame({name: (r.interior_auc if interior else r.auc) for name, r in results.items()}).T
    table.columns = [f"{c} {'↓' if _orientation(c) else '↑'}" for c in table.columns]
    return table
