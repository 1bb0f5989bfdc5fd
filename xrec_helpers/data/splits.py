"""Splits and transforms: binarise, iterative k-core, leave-n-out, user-level and random splits.

Taught in 01_eda (leave-n-out) and 11_comparing_explainers (binarise, k-core, user-level split); the paper
protocols of 05_lxr and 06_accent call these through :mod:`xrec_helpers.data.protocols`.
Every function takes and returns ratings frames with internal ``user``/``item`` columns and
leaves ids unchanged (use :func:`reindex` when a method needs contiguous ids after filtering).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def binarize(ratings: pd.DataFrame, threshold: float = 4.0) -> pd.DataFrame:
    """Keep ratings ``>= threshold`` as positives (``rating`` set to 1); drop the rest.

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).
    threshold : float
        Lowest rating that counts as a positive.

    Returns
    -------
    pd.DataFrame
        The positive rows, ``rating`` set to 1.
    """
    kept = ratings[ratings["rating"] >= threshold].copy()
    kept["rating"] = np.float32(1.0)
    return kept.reset_index(drop=True)


def k_core(ratings: pd.DataFrame, k_user: int = 2, k_item: int = 2) -> pd.DataFrame:
    """Iteratively drop users with < ``k_user`` and items with < ``k_item`` interactions until stable.

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).
    k_user : int
        Fewest interactions a user keeps.
    k_item : int
        Fewest interactions an item keeps.

    Returns
    -------
    pd.DataFrame
        The rows that survive; ids unchanged.
    """
    current = ratings
    while True:
        user_counts = current["user"].map(current["user"].value_counts())
        item_counts = current["item"].map(current["item"].value_counts())
        keep = (user_counts >= k_user) & (item_counts >= k_item)
        if keep.all():
            return current.reset_index(drop=True)
        current = current[keep]


def reindex(ratings: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Contiguous ids after filtering: returns (ratings, old user id per new id, old item id per new id).

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).

    Returns
    -------
    tuple[pd.DataFrame, np.ndarray, np.ndarray]
        The re-indexed ratings, the old user id of each new one, the old item id of each new one.
    """
    users = np.sort(ratings["user"].unique())
    items = np.sort(ratings["item"].unique())
    out = ratings.assign(user=np.searchsorted(users, ratings["user"].to_numpy()),
                         item=np.searchsorted(items, ratings["item"].to_numpy()))
    return out.reset_index(drop=True), users, items


def leave_n_out(
    ratings: pd.DataFrame,
    n: int = 1,
    *,
    frac: float | None = None,
    how: str = "random",
    min_train: int = 1,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user hold-out: ``n`` interactions (or a fraction ``frac``) of each user go to test.

    ``frac`` (when given) overrides ``n``. ``how="temporal"`` holds out each user's latest interactions, ``"random"`` a random sample.
    A user keeps at least ``min_train`` training interactions; users too small to split stay in train.

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).
    n : int
        Interactions held out per user.
    frac : float | None
        Share held out per user instead of ``n``.
    how : str
        ``"random"`` or ``"temporal"`` (the latest interactions).
    min_train : int
        Fewest training interactions a user keeps.
    seed : int
        Seed of the random hold-out.

    Returns
    -------
    tuple[pd.DataFrame, pd.DataFrame]
        (train, test) rating frames.
    """
    if how not in ("random", "temporal"):
        raise ValueError(f"how must be 'random' or 'temporal', not {how!r}")
    rng = np.random.default_rng(seed)
    frame = ratings.reset_index(drop=True)
    if how == "temporal":
        order = np.lexsort((rng.random(len(frame)), frame["timestamp"].to_numpy(), frame["user"].to_numpy()))
    else:
        order = np.lexsort((rng.random(len(frame)), frame["user"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    sizes = frame.groupby("user", sort=False)["item"].transform("size").to_numpy()
    position_from_end = frame.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    if frac is not None:
        if not 0 < frac < 1:
            raise ValueError(f"frac must be in (0, 1), not {frac}")
        n_test = np.floor(sizes * frac).astype(int)
    else:
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        n_test = np.full(len(frame), n)
    n_test = np.minimum(n_test, np.maximum(sizes - min_train, 0))
    is_test = position_from_end < n_test
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def user_split(
    ratings: pd.DataFrame, *, test_frac: float = 0.2, val_frac: float = 0.1, seed: int = 42
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User-level split (as LXR uses): disjoint sorted arrays of train, validation and test users.

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).
    test_frac : float
        Share of users in the test set.
    val_frac : float
        Share of users in the validation set.
    seed : int
        Seed of the user permutation.

    Returns
    -------
    tuple[np.ndarray, np.ndarray, np.ndarray]
        Sorted train, validation and test user ids.
    """
    users = np.sort(ratings["user"].unique())
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(users)
    n_test = int(round(len(users) * test_frac))
    n_val = int(round(len(users) * val_frac))
    test, val, train = np.split(shuffled, [n_test, n_test + n_val])
    return np.sort(train), np.sort(val), np.sort(test)


def random_split(ratings: pd.DataFrame, *, test_frac: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Global random split of rating rows (as the workshop's FM demo, but seeded).

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).
    test_frac : float
        Share of rows in the test set.
    seed : int
        Seed of the row permutation.

    Returns
    -------
    tuple[pd.DataFrame, pd.DataFrame]
        (train, test) rating frames.
    """
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(ratings)) < test_frac
    return ratings[~is_test].reset_index(drop=True), ratings[is_test].reset_index(drop=True)
