"""Sampled ranking metrics (1 positive against n random negatives) next to full ranking.

Taught in 04_shap_sequential. A sampled HR@10 (such as the 0.58 on ML-1M that
the earlier GRU4Rec + TimeSHAP project reported) is
*sampled*: the held-out item competed with 99 random unseen items, not with the whole catalogue. Random negatives are
mostly unpopular items that any sensible model ranks low, so sampled numbers are much higher than
full-ranking ones and can even order models differently (Krichene & Rendle, KDD 2020).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def target_ranks(scores: np.ndarray, targets: np.ndarray, seen: sp.csr_matrix | None = None) -> np.ndarray:
    """0-based full-ranking rank of each user's target among the items outside ``seen`` (ties count against).

    Taught in 04_shap_sequential. The held-out-target convention of sampled evaluation (0-based, ties against
    the target); removal protocols use :func:`xrec_helpers.metrics.ranking.rank_among_unseen` (1-based, ties
    in the item's favour).

    Parameters
    ----------
    scores : numpy.ndarray
        Scores, one row per user.
    targets : numpy.ndarray
        Each user's held-out item.
    seen : scipy.sparse matrix, optional
        Items excluded from each user's ranking (the input history).

    Returns
    -------
    numpy.ndarray
        Integer ranks (0 = first).

    Raises
    ------
    ValueError
        For a row count that differs from the targets, or a target marked as seen.
    """
    scores = np.asarray(scores, dtype=np.float64).copy()
    targets = np.asarray(targets, dtype=np.int64)
    if scores.shape[0] != len(targets):
        raise ValueError(f"{scores.shape[0]} score rows for {len(targets)} targets.")
    if seen is not None:
        seen = sp.csr_matrix(seen)
        if seen[np.arange(len(targets)), targets].sum() > 0:
            raise ValueError("A target is marked as seen: the held-out item must not be in the user's input.")
        rows = np.repeat(np.arange(len(targets)), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
    st = scores[np.arange(len(targets)), targets]
    return (scores >= st[:, None]).sum(1) - 1  # the target itself is counted once, hence - 1


def sampled_ranks(scores: np.ndarray, targets: np.ndarray, seen: sp.csr_matrix | None = None,
                  n_negatives: int = 99, random_state: int = 0) -> np.ndarray:
    """0-based rank of each target among ``n_negatives`` uniformly drawn unseen items (without replacement).

    Taught in 04_shap_sequential. Negatives exclude the target and the user's ``seen`` items.

    Parameters
    ----------
    scores, targets, seen
        As in :func:`target_ranks`.
    n_negatives : int
        Negatives drawn per user.
    random_state : int
        Seed of the draws.

    Returns
    -------
    numpy.ndarray
        Integer ranks (0 = above every negative).

    Raises
    ------
    ValueError
        When a user has fewer unseen items than ``n_negatives``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    n_users, n_items = scores.shape
    rng = np.random.default_rng(random_state)
    seen = sp.csr_matrix((n_users, n_items)) if seen is None else sp.csr_matrix(seen)
    ranks = np.empty(n_users, dtype=np.int64)
    for u in range(n_users):
        allowed = np.ones(n_items, dtype=bool)
        allowed[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = False
        allowed[targets[u]] = False
        pool = np.flatnonzero(allowed)
        if len(pool) < n_negatives:
            raise ValueError(f"User {u} has only {len(pool)} unseen items; lower n_negatives={n_negatives}.")
        negs = rng.choice(pool, size=n_negatives, replace=False)
        ranks[u] = (scores[u, negs] >= scores[u, targets[u]]).sum()
    return ranks


def hr_ndcg_from_ranks(ranks: np.ndarray, k: int = 10) -> dict[str, float]:
    """HR@K and NDCG@K (one relevant item) from 0-based ranks.

    Taught in 04_shap_sequential.

    Parameters
    ----------
    ranks : numpy.ndarray
        0-based ranks (:func:`target_ranks` or :func:`sampled_ranks`).
    k : int
        The cut-off.

    Returns
    -------
    dict
        ``HR@k`` and ``NDCG@k``.
    """
    ranks = np.asarray(ranks)
    hit = ranks < k
    return {f"HR@{k}": float(hit.mean()), f"NDCG@{k}": float(np.where(hit, 1 / np.log2(ranks + 2), 0).mean())}
