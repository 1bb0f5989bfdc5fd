"""Splits and transforms: properties that must hold for any input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xrec_helpers.data.splits import binarize, k_core, leave_n_out, random_split, reindex, user_split


@st.composite
def ratings_frames(draw):
    n = draw(st.integers(5, 120))
    users = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates().reset_index(drop=True)
    frame["rating"] = np.float32(draw(st.integers(1, 5)))
    frame["timestamp"] = np.arange(len(frame))[::-1] * 7 % 101
    return frame


def _pairs(frame):
    return set(zip(frame["user"], frame["item"]))


@given(ratings_frames(), st.integers(1, 3), st.sampled_from(["random", "temporal"]))
@settings(max_examples=60, deadline=None)
def test_leave_n_out_partitions_and_keeps_training(frame, n, how):
    train, test = leave_n_out(frame, n, how=how, seed=1)
    assert _pairs(train) | _pairs(test) == _pairs(frame)
    assert not (_pairs(train) & _pairs(test))
    assert set(train["user"]) == set(frame["user"])  # every user keeps >= 1 training item
    assert (test.groupby("user").size() <= n).all()
    if how == "temporal" and len(test):
        last_train = train.groupby("user")["timestamp"].max()
        first_test = test.groupby("user")["timestamp"].min()
        assert (first_test >= last_train[first_test.index]).all()


def test_leave_fraction_out():
    frame = pd.DataFrame({"user": np.repeat([0, 1], 20), "item": np.tile(np.arange(20), 2),
                          "rating": 4.0, "timestamp": np.arange(40)})
    train, test = leave_n_out(frame, frac=0.1, seed=0)
    assert test.groupby("user").size().tolist() == [2, 2] and len(train) == 36
    with pytest.raises(ValueError, match="frac"):
        leave_n_out(frame, frac=1.5)


@given(ratings_frames(), st.integers(1, 4), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_k_core_is_a_fixed_point(frame, ku, ki):
    core = k_core(frame, ku, ki)
    if len(core):
        assert core.groupby("user").size().min() >= ku
        assert core.groupby("item").size().min() >= ki
    assert _pairs(core) <= _pairs(frame)
    assert len(k_core(core, ku, ki)) == len(core)


def test_binarize_and_reindex():
    frame = pd.DataFrame({"user": [3, 3, 7], "item": [5, 9, 9], "rating": [5.0, 2.0, 4.0], "timestamp": [1, 2, 3]})
    pos = binarize(frame, 4)
    assert pos["rating"].tolist() == [1.0, 1.0] and pos["item"].tolist() == [5, 9]
    new, old_users, old_items = reindex(pos)
    assert new["user"].tolist() == [0, 1] and old_users.tolist() == [3, 7] and old_items.tolist() == [5, 9]


def test_user_split_is_disjoint_and_complete():
    frame = pd.DataFrame({"user": np.arange(100), "item": 0, "rating": 1.0, "timestamp": 0})
    tr, va, te = user_split(frame, test_frac=0.2, val_frac=0.1, seed=42)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert len(np.intersect1d(tr, te)) == 0 and len(np.intersect1d(va, te)) == 0
    assert set(tr) | set(va) | set(te) == set(range(100))


def test_random_split_is_seeded():
    frame = pd.DataFrame({"user": np.arange(1000) % 10, "item": np.arange(1000), "rating": 1.0, "timestamp": 0})
    a, b = random_split(frame, seed=3), random_split(frame, seed=3)
    pd.testing.assert_frame_equal(a[1], b[1])
    assert 120 < len(a[1]) < 280
