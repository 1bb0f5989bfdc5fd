"""The ACCENT paper's ML-100K preparation: liked/disliked users, temporal 80/20 per polarity.

Taught in 06_accent. ``splits`` has the pieces (``leave_n_out(how="temporal", frac=...)``,
``reindex``); what it lacks is the paper's recipe, which holds out the latest fifth of a user's
positives *and*, separately, of their negatives, after keeping users with enough of both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xrec_helpers.data.splits import leave_n_out, reindex


@dataclass
class AccentSplit:
    """Result of :func:`accent_split`.

    Attributes:
        train, test: explicit-rating frames with contiguous internal ``user``/``item`` ids.
        users: original internal user id of each new user id.
        items: original internal item id of each new item id.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    users: np.ndarray
    items: np.ndarray


def accent_split(ratings: pd.DataFrame, *, threshold: float = 3.0, min_pos: int = 10, min_neg: int = 10,
                 test_frac: float = 0.2, seed: int = 0) -> AccentSplit:
    """ACCENT's split: positive = rating >= ``threshold``; keep users with >= ``min_pos`` positives
    and >= ``min_neg`` negatives; per user and polarity, the latest ``floor(n * test_frac)`` go to
    test. Training keeps the explicit 1-5 ratings (NCF regresses them). Items are re-indexed over
    the training ratings so every item has at least one rating. Taught in 06_accent.
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
