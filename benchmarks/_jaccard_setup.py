"""Shared set-up of the perturbation benchmarks: History-MF on ML-100K and Jaccard explanations of top-1 picks."""

from __future__ import annotations

import numpy as np

from xrec_helpers.data import load_movielens
from xrec_helpers.data.splits import leave_n_out
from xrec_helpers.explainers import JaccardExplainer
from xrec_helpers.models import HistoryMF


def history_mf_with_jaccard(user_step: int):
    """(data, X, model, users, explanations) for every ``user_step``-th user's top-1 recommendation."""
    data = load_movielens("ml-100k")
    train, _ = leave_n_out(data.ratings, frac=0.1, seed=0)
    X = data.csr(train)
    model = HistoryMF(epochs=20, random_state=0).fit(X)
    users = np.arange(0, data.n_users, user_step)
    items = model.recommend(users, 1)[:, 0]
    return data, X, model, users, JaccardExplainer(X).explain_many(zip(users, items))
