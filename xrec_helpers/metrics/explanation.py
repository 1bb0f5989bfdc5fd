"""Explanation metrics from the workshop, kept for contrast with counterfactual fidelity.

Taught in 01_eda (model fidelity), 03_fm_lime (surrogate R²) and 07_neighbourhood_mf (MEP, MER).
These measure whether an explanation *exists* or *looks* plausible, not whether it is true; the
counterfactual metrics (``counterfactual.py``) measure the latter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explanation


def model_fidelity(explanations: Sequence[Explanation]) -> float:
    """Share of recommendations that received a non-empty explanation (workshop's "model fidelity")."""
    if len(explanations) == 0:
        raise ValueError("No explanations given.")
    return float(np.mean([len(e.items) > 0 for e in explanations]))


def _explainable(E: np.ndarray | sp.spmatrix, recs: np.ndarray, users: np.ndarray) -> np.ndarray:
    E = sp.csr_matrix(E)
    recs = np.asarray(recs)
    return np.asarray(E[users[:, None], recs].todense()) > 0


def mep(E: np.ndarray | sp.spmatrix, recs: np.ndarray, users: np.ndarray | None = None) -> float:
    """Mean explainability precision: share of each user's recommendations with E[u, i] > 0, averaged."""
    users = np.arange(len(recs)) if users is None else np.asarray(users)
    return float(_explainable(E, recs, users).mean(1).mean())


def mer(E: np.ndarray | sp.spmatrix, recs: np.ndarray, users: np.ndarray | None = None) -> float:
    """Mean explainability recall: explainable items recommended / all explainable items, per user."""
    users = np.arange(len(recs)) if users is None else np.asarray(users)
    hits = _explainable(E, recs, users).sum(1)
    totals = np.asarray((sp.csr_matrix(E)[users] > 0).sum(1)).ravel()
    ok = totals > 0
    return float((hits[ok] / totals[ok]).mean()) if ok.any() else float("nan")


def surrogate_r2(y: np.ndarray, y_hat: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) R² = 1 - RSS/TSS of a surrogate's fit to the model's outputs."""
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    mean = np.average(y, weights=w)
    tss = np.sum(w * (y - mean) ** 2)
    return float(1 - np.sum(w * (y - y_hat) ** 2) / tss) if tss > 0 else float("nan")
