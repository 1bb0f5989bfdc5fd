"""Ranking metrics, named correctly: HR@K is "at least one hit", recall@K is the share of hits.

Taught in 01_eda. (The original workshop called recall@10 "hit_ratio"; ``workshop-seeds.md`` A.5.3.)
All functions take ``recs`` (n_users, >=K internal item ids, best first) and the held-out items as
a CSR matrix ``test`` whose rows align with ``users``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def _hits(recs: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hit matrix (n, k) of 0/1, number of held-out items per user)."""
    recs = np.asarray(recs)[:, :k]
    if recs.shape[1] < k:
        raise ValueError(f"Need at least {k} recommendations per user, got {recs.shape[1]}.")
    rows = test[users]
    hits = np.asarray(rows[np.arange(len(users))[:, None], recs].todense()) > 0
    return hits.astype(np.float64), np.diff(rows.indptr)


def _evaluable(test: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
    users = np.arange(test.shape[0]) if users is None else np.asarray(users)
    return users


def hit_rate(recs: np.ndarray, test: sp.csr_matrix, k: int = 10, users: np.ndarray | None = None) -> float:
    """HR@K: share of users (with >= 1 held-out item) whose top-K holds at least one of them."""
    users = _evaluable(test, users)
    hits, n_test = _hits(recs, test, users, k)
    ok = n_test > 0
    return float((hits[ok].sum(1) > 0).mean()) if ok.any() else float("nan")


def recall(recs: np.ndarray, test: sp.csr_matrix, k: int = 10, users: np.ndarray | None = None) -> float:
    """Recall@K: held-out items found in the top-K / number of held-out items, averaged over users."""
    users = _evaluable(test, users)
    hits, n_test = _hits(recs, test, users, k)
    ok = n_test > 0
    return float((hits[ok].sum(1) / n_test[ok]).mean()) if ok.any() else float("nan")


def ndcg(recs: np.ndarray, test: sp.csr_matrix, k: int = 10, users: np.ndarray | None = None) -> float:
    """NDCG@K with binary gains; the ideal DCG places min(|test|, K) hits first."""
    users = _evaluable(test, users)
    hits, n_test = _hits(recs, test, users, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    idcg = np.cumsum(discounts)[np.clip(n_test, 1, k) - 1]
    ok = n_test > 0
    return float((dcg[ok] / idcg[ok]).mean()) if ok.any() else float("nan")


def mrr(recs: np.ndarray, test: sp.csr_matrix, k: int | None = None, users: np.ndarray | None = None) -> float:
    """Mean reciprocal rank of the first held-out item in the list (0 when none is in it)."""
    users = _evaluable(test, users)
    k = np.asarray(recs).shape[1] if k is None else k
    hits, n_test = _hits(recs, test, users, k)
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    ok = n_test > 0
    return float((1.0 / first[ok]).mean()) if ok.any() else float("nan")


def coverage(recs: np.ndarray, n_items: int) -> float:
    """Catalogue coverage: share of all items that appear in at least one user's list."""
    return float(len(np.unique(np.asarray(recs))) / n_items)


def ranking_report(recs: np.ndarray, test: sp.csr_matrix, n_items: int, ks: tuple[int, ...] = (10,),
                   users: np.ndarray | None = None) -> pd.Series:
    """HR, recall and NDCG at each K, MRR and coverage, as one labelled Series."""
    out = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(recs, test, k, users)
        out[f"recall@{k}"] = recall(recs, test, k, users)
        out[f"NDCG@{k}"] = ndcg(recs, test, k, users)
    out["MRR"] = mrr(recs, test, max(ks), users)
    out[f"coverage@{max(ks)}"] = coverage(np.asarray(recs)[:, :max(ks)], n_items)
    return pd.Series(out)
