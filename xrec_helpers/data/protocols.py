"""The paper data protocols, as functions: the ACCENT split (06_accent) and the LXR split (05_lxr, 11).

Taught in 05_lxr and 06_accent. :mod:`xrec_helpers.data.splits` has the pieces (``binarize``, ``k_core``,
``reindex``, ``user_split``, ``leave_n_out``); these functions are the two papers' recipes built from them,
so notebooks, solutions and benchmarks call one definition instead of copying it.

* :func:`accent_split`: ML-100K as ACCENT prepares it: users with enough liked *and* disliked movies, the
  latest fifth of each polarity held out, explicit ratings kept.
* :func:`lxr_split`: as LXR prepares it: 4-5 stars as positives, 2-core, a user-level train / validation /
  test split, and one hidden positive per validation and test user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.splits import binarize, k_core, leave_n_out, reindex, user_split


@dataclass
class AccentSplit:
    """Result of :func:`accent_split` (06_accent).

    Attributes
    ----------
    train, test : pandas.DataFrame
        Explicit-rating frames with contiguous internal ``user``/``item`` ids.
    users : numpy.ndarray
        Original internal user id of each new user id.
    items : numpy.ndarray
        Original internal item id of each new item id.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    users: np.ndarray
    items: np.ndarray


def accent_split(ratings: pd.DataFrame, *, threshold: float = 3.0, min_pos: int = 10, min_neg: int = 10,
                 test_frac: float = 0.2, seed: int = 0) -> AccentSplit:
    """ACCENT's split (Tran et al. 2021): liked/disliked users, temporal 80/20 per polarity.

    Positive = rating >= ``threshold``; keep users with >= ``min_pos`` positives and >= ``min_neg`` negatives;
    per user and polarity, the latest ``floor(n * test_frac)`` go to test. Training keeps the explicit 1-5
    ratings (NCF regresses them). Items are re-indexed over the training ratings so every item has at least
    one rating. Taught in 06_accent.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Explicit ratings with ``user``, ``item``, ``rating``, ``timestamp``.
    threshold : float
        Smallest positive rating.
    min_pos, min_neg : int
        Minimum positives and negatives a kept user has.
    test_frac : float
        Share of each user's positives (and, separately, negatives) held out, latest first.
    seed : int
        Tie-breaking seed of the temporal split.

    Returns
    -------
    AccentSplit

    Raises
    ------
    ValueError
        With no ratings, or when no user passes the filter.
    """
    if ratings.empty:
        raise ValueError("No ratings to split.")
    positive = ratings["rating"] >= threshold
    n_pos = positive.groupby(ratings["user"]).sum()
    n_neg = (~positive).groupby(ratings["user"]).sum()
    keep_users = n_pos.index[(n_pos >= min_pos) & (n_neg >= min_neg)]
    if len(keep_users) == 0:
        raise ValueError(f"No user has >= {min_pos} ratings >= {threshold} and >= {min_neg} below it; "
                         "lower min_pos/min_neg.")
    kept = ratings[ratings["user"].isin(keep_users)]
    parts = [leave_n_out(kept[mask], frac=test_frac, how="temporal", seed=seed)
             for mask in (kept["rating"] >= threshold, kept["rating"] < threshold)]
    train = pd.concat([parts[0][0], parts[1][0]])
    test = pd.concat([parts[0][1], parts[1][1]])
    train, users, items = reindex(train.sort_values(["user", "timestamp", "item"]))
    # Held-out items never seen in training cannot be scored by an ID model: drop them.
    test = test[test["item"].isin(items)]
    test = test.assign(user=np.searchsorted(users, test["user"].to_numpy()),
                       item=np.searchsorted(items, test["item"].to_numpy()))
    return AccentSplit(train.reset_index(drop=True), test.reset_index(drop=True), users, items)


@dataclass
class LXRSplit:
    """Result of :func:`lxr_split` (05_lxr).

    Attributes
    ----------
    ratings : pandas.DataFrame
        The positives after the 2-core filter, with contiguous internal ``user``/``item`` ids.
    user_ids, item_ids : numpy.ndarray
        Original internal id of each new user / item id (``Dataset.titles(item_ids)`` gives titles).
    train_users, val_users, test_users : numpy.ndarray
        Disjoint sorted user ids.
    X : scipy.sparse.csr_matrix
        Every user's history (float32 0/1), without the hidden positives.
    X_train : scipy.sparse.csr_matrix
        ``X`` with only the training users' rows (models and similarity baselines learn from it).
    heldout : scipy.sparse.csr_matrix
        The hidden positive of each validation and test user (one 1 per such row; empty without hiding).
    """

    ratings: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_users: np.ndarray
    val_users: np.ndarray
    test_users: np.ndarray
    X: sp.csr_matrix
    X_train: sp.csr_matrix
    heldout: sp.csr_matrix

    @property
    def n_users(self) -> int:
        """Number of users."""
        return self.X.shape[0]

    @property
    def n_items(self) -> int:
        """Number of items."""
        return self.X.shape[1]

    @property
    def heldout_item(self) -> np.ndarray:
        """The hidden positive of each user (-1 for training users and without hiding), shape ``(n_users,)``."""
        out = np.full(self.n_users, -1)
        rows = np.repeat(np.arange(self.n_users), np.diff(self.heldout.indptr))
        out[rows] = self.heldout.indices
        return out


def lxr_split(ratings: pd.DataFrame, *, threshold: float = 4.0, core: int = 2, test_frac: float = 0.2,
              val_frac: float = 0.1, split_seed: int = 42, hide_one: bool = True, seed: int = 0) -> LXRSplit:
    """LXR's data protocol (Barkan et al. 2024; Gurevitch et al. 2025), with a separate validation split.

    Ratings >= ``threshold`` become positives; an iterative ``core``-core filter and re-indexing follow; users
    (not interactions) are split into train / validation / test. With ``hide_one``, one random positive of
    every validation and test user is hidden (it measures the recommenders; the rest of the history is what
    gets explained). Taught in 05_lxr (and used by 11_comparing_explainers).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Ratings with ``user``, ``item``, ``rating`` (e.g. ``load_movielens().ratings``).
    threshold : float
        Smallest rating kept as a positive.
    core : int
        Minimum positives per user and per item (iterated).
    test_frac, val_frac : float
        Shares of users in test and validation.
    split_seed : int
        Seed of the user split (42, as LXR).
    hide_one : bool
        Hide one positive per validation and test user.
    seed : int
        Seed of the choice of hidden positives.

    Returns
    -------
    LXRSplit

    Raises
    ------
    ValueError
        When no rating is a positive.

    Examples
    --------
    >>> split = lxr_split(load_movielens().ratings)  # doctest: +SKIP
    >>> mf = HistoryMF().fit(split.X_train).use_histories(split.X)  # doctest: +SKIP
    """
    positives = binarize(ratings, threshold)
    if positives.empty:
        raise ValueError(f"No rating is >= {threshold}: nothing to keep as a positive.")
    kept, user_ids, item_ids = reindex(k_core(positives, core, core))
    n_users, n_items = int(kept["user"].max()) + 1, int(kept["item"].max()) + 1
    train_users, val_users, test_users = user_split(kept, test_frac=test_frac, val_frac=val_frac, seed=split_seed)
    if hide_one:
        full = to_csr(kept, n_users, n_items).tolil()
        heldout = sp.lil_matrix(full.shape, dtype=np.float32)
        rng = np.random.default_rng(seed)
        for u in np.concatenate([val_users, test_users]):
            item = rng.choice(full.rows[u])
            full[u, item], heldout[u, item] = 0, 1
        X = sp.csr_matrix(full, dtype=np.float32)
        X.eliminate_zeros()
        heldout = heldout.tocsr()
    else:
        X = to_csr(kept, n_users, n_items)
        heldout = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    only_train = sp.diags(np.isin(np.arange(n_users), train_users).astype(np.float32))
    X_train = sp.csr_matrix(only_train @ X)
    X_train.eliminate_zeros()
    return LXRSplit(kept, user_ids, item_ids, train_users, val_users, test_users, X, X_train, heldout)
