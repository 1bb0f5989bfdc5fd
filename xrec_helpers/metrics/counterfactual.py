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
history appended after its items in a seeded random order: an unexplained item is no evidence. Each
method's explanations draw that order from the same seed, so methods evaluated together get the numbers
they get alone.

:class:`PerturbationProtocol` is the protocol (``evaluate(model, explanations) -> ProtocolResult``, any mix
of methods); :func:`perturbation_curves` is its shorthand for one method's explanations, returning the
curves, AUCs and fixed-length metrics together (:class:`PerturbationResult`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.ranking import rank_among_unseen
from xrec_helpers.models.base import SCORE_HISTORIES


def perturbation_metrics(ks: Sequence[int] = (5, 10, 20)) -> tuple[Metric, ...]:
    """The AUC metrics of the perturbation protocol for cut-offs ``ks``, each with its direction.

    Reported by :class:`PerturbationProtocol` (the column names of 11_comparing_explainers' table).

    Parameters
    ----------
    ks : sequence of int
        Cut-offs of POS@K and NEG@K.

    Returns
    -------
    tuple of Metric
        ``POS@K`` (lower is better) for each K, ``NEG@K`` (higher), ``DEL`` (lower), ``INS`` (higher),
        ``CDCG`` (lower): means over the removal curve of one explanation.
    """
    out = [Metric(f"POS@{k}", False, f"AUC of 'still in the top-{k}' while the most-blamed history items "
                                     "are removed") for k in ks]
    out += [Metric(f"NEG@{k}", True, f"AUC of 'still in the top-{k}' while the least-blamed history items "
                                    "are removed") for k in ks]
    out += [Metric("DEL", False, "AUC of the item's score while the most-blamed history items are removed"),
            Metric("INS", True, "AUC of the item's score when only the most-blamed history items are kept"),
            Metric("CDCG", False, "AUC of 1/log2(rank + 1) while the most-blamed history items are removed")]
    return tuple(out)


@dataclass
class PerturbationResult:
    """Curves, AUCs and fixed-length metrics of one explainer on one recommender.

    What :func:`perturbation_curves` returns (05_lxr).

    Attributes
    ----------
    curves : pandas.DataFrame
        Mean over explanations at each removal fraction (index 0.0 ... 1.0).
    auc : pandas.Series
        Mean of each curve over all points (the LXR convention).
    interior_auc : pandas.Series
        Mean over the interior points only (endpoints are identical for all methods).
    per_user : pandas.DataFrame
        One row per explanation with its AUCs (for paired tests between explainers).
    fixed : pandas.DataFrame
        Fixed-length metrics, one row per K_e.
    method : str
        The explainer's name.
    pos_ranks : numpy.ndarray
        ``(n_explanations, steps + 1)`` rank of the item after each POS removal step.
    fixed_ranks : numpy.ndarray
        ``(n_explanations, len(fixed))`` rank after removing the top K_e items.
    removed : numpy.ndarray
        ``(n_explanations, steps + 1)`` number of history items removed at each step.
    metrics : tuple of Metric
        The AUC metrics, with their directions.
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
    metrics: tuple[Metric, ...] = ()

    def __post_init__(self) -> None:
        if not self.metrics:  # built elsewhere without them: the perturbation metrics at the result's cut-offs
            ks = [int(c.split("@")[1]) for c in self.auc.index if str(c).startswith("POS@")]
            self.metrics = perturbation_metrics(ks)

    def metric(self, name: str) -> Metric:
        """The :class:`Metric` called ``name`` (``"POS@20"``; a fixed-length or interior column reads as its AUC's).

        Parameters
        ----------
        name : str
            A column of this result (e.g. ``"POS@20"``).

        Returns
        -------
        Metric
            Its :class:`Metric`.
        """
        base = name.split(" ")[0]
        for m in self.metrics:
            if m.name == base:
                return m
        raise KeyError(f"The perturbation protocol reports {[m.name for m in self.metrics]}, not {name!r}.")

    def lower_is_better(self, metric: str) -> bool:
        """True when a smaller value of ``metric`` means a more faithful explanation.

        Parameters
        ----------
        metric : str
            A column of this result.

        Returns
        -------
        bool
            The metric's direction.
        """
        return not self.metric(metric).higher_is_better


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

    Shared by every protocol that edits histories (perturbation curves, PN/PS).

    Parameters
    ----------
    train : scipy.sparse.csr_matrix
        The histories the model reads (its ``train_``).
    expl : Explanation
        The explanation whose user and item are checked.

    Returns
    -------
    numpy.ndarray
        The user's history (internal item ids).

    Raises
    ------
    ValueError
        For an empty history, or an explained item already in it.
    """
    history = train.indices[train.indptr[expl.user]:train.indptr[expl.user + 1]]
    if len(history) == 0:
        raise ValueError(f"User {expl.user} has an empty history.")
    if expl.item in set(history.tolist()):
        raise ValueError(f"Item {expl.item} is in user {expl.user}'s history; explain unseen items only.")
    return history


class PerturbationProtocol(Protocol):
    """The history perturbation protocol: remove the blamed history items step by step and re-score.

    Taught in 11_comparing_explainers, which runs every explainer through it; :func:`perturbation_curves`
    (01_eda, 05_lxr) is its shorthand for one method. See the module docstring for the definitions.
    Hyperparameters are keyword-only.

    Parameters
    ----------
    steps : int
        Number of removal chunks (10 gives 11 points: 0 %, 10 %, ..., 100 %).
    ks : sequence of int
        Cut-offs for POS@K and NEG@K.
    fixed : sequence of int
        K_e values for the fixed-length variants.
    random_state : int
        Seed of the order in which unexplained history items follow the listed ones.
    batch_rows : int
        Edited histories scored per model call.
    """

    name = "perturbation"
    requires = frozenset({SCORE_HISTORIES})
    kinds = frozenset({"history"})
    metrics = perturbation_metrics()

    def __init__(self, *, steps: int = 10, ks: Sequence[int] = (5, 10, 20), fixed: Sequence[int] = (1, 2, 3, 4, 5),
                 random_state: int = 0, batch_rows: int = 4096):
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1.")
        if any(int(k) < 1 for k in ks) or any(int(k) < 1 for k in fixed):
            raise ValueError(f"ks={tuple(ks)} and fixed={tuple(fixed)} must be >= 1.")
        self.steps, self.ks, self.fixed = int(steps), tuple(int(k) for k in ks), tuple(int(k) for k in fixed)
        self.random_state, self.batch_rows = random_state, int(batch_rows)
        self.metrics = perturbation_metrics(self.ks)

    def run(self, model: Any, explanations: Sequence[Explanation]) -> PerturbationResult:
        """Curves, AUCs, fixed-length metrics and ranks of one method's ``explanations``.

        Parameters
        ----------
        model : Recommender
            A fitted model with ``score_histories`` (its ``train_`` rows are the histories).
        explanations : sequence of Explanation
            History explanations, one per (user, item); the item must be outside the user's history.

        Returns
        -------
        PerturbationResult

        Raises
        ------
        TypeError
            When the model cannot re-score an edited history.
        ValueError
            Without explanations, or for an explanation of a seen item or listing items outside the history.
        """
        explanations = self.check(model, explanations)
        steps, ks, fixed = self.steps, self.ks, self.fixed
        rng = np.random.default_rng(self.random_state)
        train = model.train_
        n_items = model.n_items
        n_points = steps + 1
        rows_per = 3 * n_points + 2 * len(fixed) + 1
        jobs = []  # (explanation, original history, ranking, counts)
        for expl in explanations:
            history = explained_history(train, expl)
            jobs.append((expl, history, _ranking(expl, history, rng), _cumulative_counts(len(history), steps)))

        per_user_rows, curve_sum, fixed_rows = [], None, []
        pos_ranks, fixed_ranks = [], []
        chunk = max(1, self.batch_rows // rows_per)
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
            S = model.score_histories(X)
            for b, (expl, history, _, _) in enumerate(block):
                s = S[b * rows_per:(b + 1) * rows_per].astype(np.float64)
                y = expl.item
                sy = s[:, y]
                rank = rank_among_unseen(s, y, history)
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
            metrics=self.metrics,
        )

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Test any mix of methods' explanations: one row per explanation with its AUCs.

        Each method's explanations are run as by :meth:`run` (same seed for every method), so a method's
        numbers do not depend on which other methods are evaluated with it.

        Parameters
        ----------
        model : Recommender
            A fitted model with ``score_histories``.
        explanations : sequence of Explanation
            History explanations of any methods.

        Returns
        -------
        ProtocolResult
            ``per_explanation``: ``method``, ``user``, ``item``, one column per metric (its AUC) and the
            interior AUCs (``"POS@20 (interior)"``), grouped by method in order of first appearance;
            ``curves`` indexed by (method, fraction removed); ``details``: the settings and the fixed-length
            table (``details["fixed"]``, indexed by (method, K_e)).
        """
        explanations = self.check(model, explanations)
        by_method: dict[str, list[Explanation]] = {}
        for e in explanations:
            by_method.setdefault(e.method, []).append(e)
        runs = {m: self.run(model, ex) for m, ex in by_method.items()}
        per = pd.concat([r.per_user.assign(method=m) for m, r in runs.items()], ignore_index=True)
        per = per[["method"] + [c for c in per.columns if c != "method"]]
        curves = pd.concat({m: r.curves for m, r in runs.items()}, names=["method"])
        fixed = pd.concat({m: r.fixed for m, r in runs.items()}, names=["method"]) if self.fixed else pd.DataFrame()
        return ProtocolResult(self.name, self.metrics, per, curves,
                              {"steps": self.steps, "ks": self.ks, "random_state": self.random_state, "fixed": fixed})


def perturbation_curves(
    recommender: Any,
    explanations: Sequence[Explanation],
    steps: int = 10,
    ks: Sequence[int] = (5, 10, 20),
    fixed: Sequence[int] = (1, 2, 3, 4, 5),
    random_state: int = 0,
    batch_rows: int = 4096,
) -> PerturbationResult:
    """Run the perturbation protocol on one method's explanations (shorthand for :class:`PerturbationProtocol`).

    Taught in 05_lxr (and used in 01_eda, 02, 04, 08, 10, 12 and 13). Same numbers as
    ``PerturbationProtocol(steps=..., ks=..., fixed=..., random_state=...).run(recommender, explanations)``.

    Parameters
    ----------
    recommender : Recommender
        A fitted model with ``score_histories``; its ``train_`` rows are the histories.
    explanations : sequence of Explanation
        One per (user, item); the item must be outside the user's history.
    steps : int
        Number of removal chunks (10 gives 11 points).
    ks : sequence of int
        Cut-offs for POS@K and NEG@K.
    fixed : sequence of int
        K_e values for the fixed-length variants.
    random_state : int
        Seed of the order of unexplained history items.
    batch_rows : int
        Edited histories scored per model call.

    Returns
    -------
    PerturbationResult

    Raises
    ------
    TypeError
        When the model cannot re-score an edited history (ID-embedding models are checked by retraining).
    ValueError
        Without explanations, or for an explanation of a seen item.
    """
    protocol = PerturbationProtocol(steps=steps, ks=ks, fixed=fixed, random_state=random_state, batch_rows=batch_rows)
    return protocol.run(recommender, explanations)


def compare(results: dict[str, PerturbationResult] | Sequence[PerturbationResult], interior: bool = False) -> pd.DataFrame:
    """One row per explainer, one column per AUC (arrows in the header say which way is better).

    Taught in 05_lxr.

    Parameters
    ----------
    results : dict of str to PerturbationResult, or sequence of PerturbationResult
        Named results (a sequence is keyed by each result's method).
    interior : bool
        Use the interior AUCs (endpoints dropped).

    Returns
    -------
    pandas.DataFrame
        Columns such as ``"POS@20 ↓"`` and ``"NEG@20 ↑"``.
    """
    if not isinstance(results, dict):
        results = {r.method: r for r in results}
    first = next(iter(results.values()))
    table = pd.DataFrame({name: (r.interior_auc if interior else r.auc) for name, r in results.items()}).T
    table.columns = [arrow_name(first.metric(c)) for c in table.columns]
    return table


def arrow_name(metric: Metric) -> str:
    """A metric's column name with its direction: ``"POS@20 ↓"`` (lower is better), ``"NEG@20 ↑"``.

    The column names of :func:`compare` and of the runner's table (11_comparing_explainers).

    Parameters
    ----------
    metric : Metric

    Returns
    -------
    str
    """
    return f"{metric.name} {'↑' if metric.higher_is_better else '↓'}"


def removal_outcomes(recommender: Any, explanations: Sequence[Explanation], k: int = 20,
                     k_e: int | None = None, fraction: float | None = None, steps: int = 10,
                     random_state: int = 0) -> pd.DataFrame:
    """Per explanation: is the item still in the top-``k`` after removing the most-blamed history items?

    Taught in 11_comparing_explainers (the binary outcome for McNemar's test). Remove either the top
    ``k_e`` items (the fixed-length variant) or the top ``fraction`` of the history, counted as the
    perturbation curve counts it. The protocol itself computes the ranks, with its conventions (seeded
    order of unexplained items, rank among items outside the original history), so the mean of
    ``in_top_k`` equals ``result.fixed.loc[k_e, f"POS@{k}"]`` or ``result.curves.loc[fraction, f"POS@{k}"]``.

    Parameters
    ----------
    recommender : Recommender
        A fitted model with ``score_histories``.
    explanations : sequence of Explanation
        History explanations of one method.
    k : int
        The top-K cut-off.
    k_e : int, optional
        Remove this many top items (give exactly one of ``k_e`` and ``fraction``).
    fraction : float, optional
        Remove this share of the history (a multiple of 1/``steps``).
    steps : int
        Removal chunks of the curve ``fraction`` refers to.
    random_state : int
        As in :func:`perturbation_curves`.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``user``, ``item``, ``removed``, ``rank``, ``in_top_k``.

    Raises
    ------
    ValueError
        For both or neither of ``k_e`` and ``fraction``, ``k`` or ``k_e`` below 1, or a fraction off the curve.
    """
    if (k_e is None) == (fraction is None):
        raise ValueError("Give exactly one of k_e (number of items) or fraction (share of the history).")
    if k < 1 or (k_e is not None and k_e < 1):
        raise ValueError(f"k={k} and k_e={k_e} must both be >= 1.")
    if fraction is not None:
        t = fraction * steps
        if not 0 <= fraction <= 1 or abs(t - round(t)) > 1e-9:
            raise ValueError(f"fraction={fraction} must be one of the curve's points 0, 1/{steps}, ..., 1.")
    result = perturbation_curves(recommender, explanations, steps=steps, ks=(k,),
                                 fixed=(k_e,) if k_e is not None else (), random_state=random_state)
    if k_e is not None:
        ranks = result.fixed_ranks[:, 0]
        removed = np.minimum(k_e, result.removed[:, -1])
    else:
        ranks = result.pos_ranks[:, round(fraction * steps)]
        removed = result.removed[:, round(fraction * steps)]
    return pd.DataFrame({"method": [e.method for e in explanations], "user": [e.user for e in explanations],
                         "item": [e.item for e in explanations], "removed": removed.astype(int),
                         "rank": ranks.astype(int), "in_top_k": ranks <= k})
