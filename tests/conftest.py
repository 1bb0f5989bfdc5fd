"""Shared fixtures. ML-100K is loaded once per worker from the cache (``make test`` fetches it first)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def ml100k():
    from xrec_helpers.data import load_movielens

    return load_movielens("ml-100k")


@pytest.fixture(scope="session")
def planted():
    """Synthetic data with planted cause -> effect pairs; the effect is held out for a third of its holders
    (the rest keep it in training, so a model can learn the rule)."""
    from xrec_helpers.data.synthetic import synthetic

    data = synthetic(n_users=400, n_items=80, seed=0)
    ratings = data.ratings
    held = np.zeros(len(ratings), dtype=bool)
    for cause, effect in data.planted_pairs:
        holders = set(ratings.loc[ratings["item"] == cause, "user"])
        chosen = {u for u in holders if u % 3 == 0}
        held |= (ratings["item"] == effect).to_numpy() & ratings["user"].isin(chosen).to_numpy()
    return data, ratings[~held], ratings[held]
