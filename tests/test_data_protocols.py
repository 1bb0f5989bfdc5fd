"""The LXR data protocol (data.protocols.lxr_split; 05_lxr, 11). The ACCENT split is tested in test_accent.py."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.protocols import lxr_split
from xrec_helpers.data.splits import binarize, k_core, reindex, user_split


def test_lxr_split_is_the_recipe_05_used(ml100k):
    data = ml100k.subset_users(200, seed=0)
    split = lxr_split(data.ratings, seed=0)
    # the recipe, step by step, as 05_lxr wrote it before it became a function
    ratings, user_ids, item_ids = reindex(k_core(binarize(data.ratings, 4.0), 2, 2))
    n_users, n_items = ratings["user"].max() + 1, ratings["item"].max() + 1
    train_users, val_users, test_users = user_split(ratings, test_frac=0.2, val_frac=0.1, seed=42)
    full = to_csr(ratings, n_users, n_items).tolil()
    rng = np.random.default_rng(0)
    hidden = {}
    for u in np.concatenate([val_users, test_users]):
        hidden[u] = rng.choice(full.rows[u])
        full[u, hidden[u]] = 0
    X = sp.csr_matrix(full, dtype=np.float32)
    X.eliminate_zeros()
    assert (split.n_users, split.n_items) == (n_users, n_items)
    np.testing.assert_array_equal(split.item_ids, item_ids)
    for a, b in ((split.train_users, train_users), (split.val_users, val_users), (split.test_users, test_users)):
        np.testing.assert_array_equal(a, b)
    assert (split.X != X).nnz == 0 and split.X.dtype == np.float32
    assert [split.heldout_item[u] for u in hidden] == list(hidden.values())
    assert (split.heldout_item[train_users] == -1).all() and split.heldout.nnz == len(hidden)
    # training rows only, and no hidden positive is left in any history
    assert set(np.flatnonzero(np.diff(split.X_train.indptr))) <= set(train_users.tolist())
    assert split.X.multiply(split.heldout).nnz == 0


def test_lxr_split_without_hiding_and_errors(ml100k):
    data = ml100k.subset_users(120, seed=1)
    split = lxr_split(data.ratings, hide_one=False)
    assert split.heldout.nnz == 0 and split.X.nnz == len(split.ratings)
    with pytest.raises(ValueError, match="positive"):
        lxr_split(data.ratings.assign(rating=1.0))

