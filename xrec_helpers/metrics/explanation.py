"""Explanation metrics that read the explanations alone: fidelity (coverage), size, overlap, MEP/MER, surrogate R².

Taught in 02_association_rules (fidelity of rules), 04_shap_sequential and 07_neighbourhood_mf (MEP, MER);
03_fm_lime reads the surrogate R² from ``Explanation.fit_r2`` and 10_knowledge_graph_paths its own path coverage;
size and top-n overlap are columns and tables of the runner in 11_comparing_explainers. These measure whether an
explanation *exists*, how large it is or whether two methods agree, not whether it is true: the protocols
(``counterfactual.py``, ``necessity.py``) measure the latter by re-scoring the model.

"Model fidelity" (the workshop's name) and "coverage of an explainer" (10's name) are one quantity, the
share of recommendations that received a non-empty explanation: :func:`fidelity`. MEP is the same share
computed from an explainability matrix instead of from explanations. (Catalogue coverage, the share of
items recommended to someone, is a ranking metric: :func:`xrec_helpers.metrics.ranking.coverage`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explanation


def _explains_something(e: Explanation, of: str) -> bool:
    if of == "keys":
        return len(e.keys) > 0
    if of == "paths":
        return e.paths is not None and len(e.paths) > 0
    if of == "counterfactual":
        return e.counterfactual is not None and e.counterfactual.found and e.counterfactual.size > 0
    raise ValueError(f"of={of!r} must be 'keys', 'paths' or 'counterfactual'.")


def fidelity(explanations: Sequence[Explanation], of: str = "keys") -> float:
    """Share of recommendations that received a non-empty explanation ("model fidelity", "coverage").

    Taught in 02_association_rules (the fidelity of rules; its vectorised ``rule_fidelity`` gives the same number);
    10_knowledge_graph_paths calls it the coverage of an explainer (``of="paths"``: at least one path).

    Parameters
    ----------
    explanations : sequence of Explanation
        One per recommendation asked about.
    of : {"keys", "paths", "counterfactual"}
        What must be non-empty: the attributed keys, the ``paths`` payload, or a found counterfactual set.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Without explanations, or for an unknown ``of``.
    """
    if len(explanations) == 0:
        raise ValueError("No explanations given.")
    return float(np.mean([_explains_something(e, of) for e in explanations]))


#: The workshop's name for :func:`fidelity` (01_eda).
model_fidelity = fidelity


def explanation_size(explanations: Sequence[Explanation], histories: Sequence[int] | None = None) -> dict[str, float]:
    """How big the explanations are: keys listed, share of the history, counterfactual sets.

    The size columns of the runner's table (:meth:`xrec_helpers.metrics.runner.Comparison.table`, in
    11_comparing_explainers).

    Parameters
    ----------
    explanations : sequence of Explanation
        One method's explanations.
    histories : sequence of int, optional
        The history length of each explained user (adds ``listed / history``).

    Returns
    -------
    dict
        ``items listed`` (mean number of keys), ``listed / history`` (mean share, with ``histories``),
        ``non-empty %`` (100 × :func:`fidelity`), ``CF found %`` (explanations whose method found a
        counterfactual set: 100 × ``fidelity(..., of="counterfactual")``) and ``CF set size`` (mean over those;
        NaN when none has one).

    Raises
    ------
    ValueError
        Without explanations, or with ``histories`` not one positive length per explanation.
    """
    if len(explanations) == 0:
        raise ValueError("No explanations to measure.")
    listed = np.array([len(e.keys) for e in explanations], dtype=float)
    cf = [e.counterfactual.size for e in explanations if _explains_something(e, "counterfactual")]
    out = {"items listed": float(listed.mean()), "non-empty %": 100.0 * fidelity(explanations)}
    if histories is not None:
        h = np.asarray(histories, dtype=float)
        if h.shape != listed.shape or (h <= 0).any():
            raise ValueError("histories must give one positive history length per explanation.")
        out["listed / history"] = float((listed / h).mean())
    out["CF found %"] = 100.0 * len(cf) / len(explanations)
    out["CF set size"] = float(np.mean(cf)) if cf else float("nan")
    return out


def top_overlap(explanations: Mapping[str, Sequence[Explanation]], n: int = 5) -> pd.DataFrame:
    """Mean share of the top-``n`` keys two methods agree on, over the (user, item) pairs both explained.

    Behind :meth:`xrec_helpers.metrics.runner.Comparison.overlap` (11_comparing_explainers): explainers that score
    equally well can still blame different films.

    Parameters
    ----------
    explanations : mapping of str to sequence of Explanation
        Each method's explanations.
    n : int
        How many top keys to compare.

    Returns
    -------
    pandas.DataFrame
        Entry (a, b) = mean over shared pairs of |top_n(a) ∩ top_n(b)| / n (an explanation that lists fewer
        than ``n`` keys counts only what it lists); the diagonal is each method's own listed share.

    Raises
    ------
    ValueError
        For ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1.")
    tops = {name: {(e.user, e.item): set(e.keys[:n].tolist()) for e in ex} for name, ex in explanations.items()}
    names = list(tops)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            shared = tops[a].keys() & tops[b].keys()
            if shared:
                out.loc[a, b] = float(np.mean([len(tops[a][p] & tops[b][p]) / n for p in shared]))
    return out


def _explainable(E: np.ndarray | sp.spmatrix, recs: np.ndarray, users: np.ndarray) -> np.ndarray:
    E = sp.csr_matrix(E)
    recs = np.asarray(recs)
    return np.asarray(E[users[:, None], recs].todense()) > 0


def mep(E: np.ndarray | sp.spmatrix, recs: np.ndarray, users: np.ndarray | None = None) -> float:
    """Mean explainability precision: share of each user's recommendations with ``E[u, i] > 0``, averaged.

    Taught in 07_neighbourhood_mf. With one row of ``recs`` per user and an explainability matrix that marks
    what an explainer can explain, this is :func:`fidelity` computed without building the explanations.

    Parameters
    ----------
    E : numpy.ndarray or scipy.sparse matrix
        User x item explainability (> 0: explainable).
    recs : numpy.ndarray
        Recommended internal item ids, one row per user.
    users : numpy.ndarray, optional
        The user of each row of ``recs`` (default: 0, 1, ...).

    Returns
    -------
    float
    """
    users = np.arange(len(recs)) if users is None else np.asarray(users)
    return float(_explainable(E, recs, users).mean(1).mean())


def mer(E: np.ndarray | sp.spmatrix, recs: np.ndarray, users: np.ndarray | None = None) -> float:
    """Mean explainability recall: explainable items recommended / all explainable items, per user.

    Taught in 07_neighbourhood_mf.

    Parameters
    ----------
    E, recs, users
        As in :func:`mep`.

    Returns
    -------
    float
        NaN when no user has an explainable item.
    """
    users = np.arange(len(recs)) if users is None else np.asarray(users)
    hits = _explainable(E, recs, users).sum(1)
    totals = np.asarray((sp.csr_matrix(E)[users] > 0).sum(1)).ravel()
    ok = totals > 0
    return float((hits[ok] / totals[ok]).mean()) if ok.any() else float("nan")


def surrogate_r2(y: np.ndarray, y_hat: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) R² = 1 - RSS/TSS of a surrogate's fit to the model's outputs.

    Not used by a notebook (03_fm_lime reads ``Explanation.fit_r2``).

    Parameters
    ----------
    y : numpy.ndarray
        The model's outputs on the perturbed inputs.
    y_hat : numpy.ndarray
        The surrogate's predictions of them.
    weights : numpy.ndarray, optional
        Per-sample weights (LIME's proximity kernel).

    Returns
    -------
    float
        NaN when ``y`` is constant.
    """
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    mean = np.average(y, weights=w)
    tss = np.sum(w * (y - mean) ** 2)
    return float(1 - np.sum(w * (y - y_hat) ** 2) / tss) if tss > 0 else float("nan")
