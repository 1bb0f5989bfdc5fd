"""Ranking metrics, named correctly: HR@K is "at least one hit", recall@K is the share of hits.

Taught in 01_eda. (The original workshop's code called recall@10 "hit_ratio": a share of held-out items
found, which is recall, not the hit rate.) The list metrics take ``recs`` (n_users, >=K internal item ids,
best first) and the held-out items as a CSR matrix ``test`` whose rows align with ``users``. ``coverage`` is *catalogue* coverage (share of items
recommended to someone), not the coverage of an explainer (:func:`xrec_helpers.metrics.explanation.fidelity`).

"Rank among the items outside the original history" is defined once, here (:func:`rank_among_unseen`,
:func:`top_unseen`): the removal protocols (``counterfactual.py``, ``necessity.py``), the explorer and the
notebooks use it. The sampled-negatives ranks of 04_shap_sequential are in ``sampled.py``.
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
    """HR@K: share of users (with >= 1 held-out item) whose top-K holds at least one of them.

    Taught in 07_neighbourhood_mf and 08_als_item_style; part of :func:`ranking_report`.

    Parameters
    ----------
    recs : numpy.ndarray
        Recommended internal item ids, one row per user, best first.
    test : scipy.sparse.csr_matrix
        Held-out items; rows align with ``users``.
    k : int
        The cut-off.
    users : numpy.ndarray, optional
        The rows of ``test`` to evaluate (default: all); users without held-out items are skipped.

    Returns
    -------
    float
        NaN when no user has a held-out item.
    """
    users = _evaluable(test, users)
    hits, n_test = _hits(recs, test, users, k)
    ok = n_test > 0
    return float((hits[ok].sum(1) > 0).mean()) if ok.any() else float("nan")


def recall(recs: np.ndarray, test: sp.csr_matrix, k: int = 10, users: np.ndarray | None = None) -> float:
    """Recall@K: held-out items found in the top-K / number of held-out items, averaged over users.

    Used by :func:`ranking_report` (``recall@k``).

    Parameters
    ----------
    recs : numpy.ndarray
        Recommended internal item ids, one row per user, best first.
    test : scipy.sparse.csr_matrix
        Held-out items; rows align with ``users``.
    k : int
        The cut-off.
    users : numpy.ndarray, optional
        The rows of ``test`` to evaluate (default: all); users without held-out items are skipped.

    Returns
    -------
    float
        NaN when no user has a held-out item.
    """
    users = _evaluable(test, users)
    hits, n_test = _hits(recs, test, users, k)
    ok = n_test > 0
    return float((hits[ok].sum(1) / n_test[ok]).mean()) if ok.any() else float("nan")


def ndcg(recs: np.ndarray, test: sp.csr_matrix, k: int = 10, users: np.ndarray | None = None) -> float:
    """NDCG@K with binary gains; the ideal DCG places min(|test|, K) hits first.

    Taught in 07_neighbourhood_mf; part of :func:`ranking_report`.

    Parameters
    ----------
    recs : numpy.ndarray
        Recommended internal item ids, one row per user, best first.
    test : scipy.sparse.csr_matrix
        Held-out items; rows align with ``users``.
    k : int
        The cut-off.
    users : numpy.ndarray, optional
        The rows of ``test`` to evaluate (default: all); users without held-out items are skipped.

    Returns
    -------
    float
        NaN when no user has a held-out item.
    """
    users = _evaluable(test, users)
    hits, n_test = _hits(recs, test, users, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    idcg = np.cumsum(discounts)[np.clip(n_test, 1, k) - 1]
    ok = n_test > 0
    return float((dcg[ok] / idcg[ok]).mean()) if ok.any() else float("nan")


def mrr(recs: np.ndarray, test: sp.csr_matrix, k: int | None = None, users: np.ndarray | None = None) -> float:
    """Mean reciprocal rank of the first held-out item in the list (0 when none is in it).

    Used by :func:`ranking_report` (``MRR``).

    Parameters
    ----------
    recs : numpy.ndarray
        Recommended internal item ids, one row per user, best first.
    test : scipy.sparse.csr_matrix
        Held-out items; rows align with ``users``.
    k : int
        The cut-off (default: the whole list).
    users : numpy.ndarray, optional
        The rows of ``test`` to evaluate (default: all); users without held-out items are skipped.

    Returns
    -------
    float
        NaN when no user has a held-out item.
    """
    users = _evaluable(test, users)
    k = np.asarray(recs).shape[1] if k is None else k
    hits, n_test = _hits(recs, test, users, k)
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    ok = n_test > 0
    return float((1.0 / first[ok]).mean()) if ok.any() else float("nan")


def coverage(recs: np.ndarray, n_items: int) -> float:
    """Catalogue coverage: share of all items that appear in at least one user's list.

    Used by :func:`ranking_report` (``coverage@10``). Not the coverage of an explainer: that is
    :func:`xrec_helpers.metrics.explanation.fidelity`.

    Parameters
    ----------
    recs : numpy.ndarray
        Recommended internal item ids, one row per user.
    n_items : int
        Catalogue size.

    Returns
    -------
    float
    """
    return float(len(np.unique(np.asarray(recs))) / n_items)


def ranking_report(recs: np.ndarray, test: sp.csr_matrix, n_items: int, ks: tuple[int, ...] = (10,),
                   users: np.ndarray | None = None) -> pd.Series:
    """HR, recall and NDCG at each K, MRR and catalogue coverage, as one labelled Series.

    Taught in 01_eda.

    Parameters
    ----------
    recs, test, users
        As in :func:`hit_rate`.
    n_items : int
        Catalogue size (for coverage).
    ks : tuple of int
        Cut-offs.

    Returns
    -------
    pandas.Series
        ``HR@k``, ``recall@k``, ``NDCG@k`` per k, ``MRR`` and ``coverage@max(ks)``.
    """
    out = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(recs, test, k, users)
        out[f"recall@{k}"] = recall(recs, test, k, users)
        out[f"NDCG@{k}"] = ndcg(recs, test, k, users)
    out["MRR"] = mrr(recs, test, max(ks), users)
    out[f"coverage@{max(ks)}"] = coverage(np.asarray(recs)[:, :max(ks)], n_items)
    return pd.Series(out)


def rank_among_unseen(scores: np.ndarray, item: int | np.ndarray, history: np.ndarray) -> np.ndarray:
    """Rank (1 = top) of ``item`` among the items outside the user's *original* ``history``, per score row.

    The one definition every removal protocol, the explorer and the notebooks use. Removed history items
    never re-enter the ranking (they are excluded as seen), and the explained item itself counts as unseen.
    Ties are resolved in the item's favour: only candidates scoring *strictly* higher rank above it.

    Taught in 01_eda (the removal check) and used in 05_lxr, 08_als_item_style and 11_comparing_explainers.

    Parameters
    ----------
    scores : numpy.ndarray
        Scores of every item, shape ``(n_items,)`` or ``(batch, n_items)`` (e.g. one row per edited history).
    item : int or numpy.ndarray
        The item whose rank is wanted: one id for all rows, or one id per row.
    history : numpy.ndarray
        The user's original history (internal item ids), excluded from the candidates.

    Returns
    -------
    numpy.ndarray
        Integer ranks, shape ``(batch,)`` (one NumPy integer for a 1-D ``scores``).

    Examples
    --------
    >>> int(rank_among_unseen(np.array([9.0, 1.0, 3.0, 2.0]), 3, history=np.array([0])))
    2
    """
    s = np.asarray(scores, dtype=np.float64)
    one = s.ndim == 1
    s = np.atleast_2d(s)
    candidates = np.ones(s.shape[1], dtype=bool)
    candidates[np.asarray(history, dtype=np.int64)] = False
    item = np.broadcast_to(np.asarray(item, dtype=np.int64), (s.shape[0],))
    target = s[np.arange(s.shape[0]), item]
    ranks = 1 + (s[:, candidates] > target[:, None]).sum(1)
    return ranks[0] if one else ranks


def top_unseen(scores: np.ndarray, history: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best items outside ``history``, best first (ties: lower id first); the ordering that
    :func:`rank_among_unseen` counts in.

    Parameters
    ----------
    scores : numpy.ndarray
        Scores of every item, shape ``(n_items,)``.
    history : numpy.ndarray
        The user's original history (excluded).
    k : int
        How many to return (at most the number of unseen items).

    Returns
    -------
    numpy.ndarray
        Internal item ids, shape ``(min(k, n_unseen),)``.
    """
    masked = np.asarray(scores, dtype=np.float64).copy()
    masked[np.asarray(history, dtype=np.int64)] = -np.inf
    n_unseen = len(masked) - len(np.unique(history))
    return np.argsort(-masked, kind="stable")[: min(k, n_unseen)]
