"""ALS wrapper and item-style explanations: closed form, additivity, batched == implicit, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xrec_helpers.explainers.als_explain import ALSExplainer, batched_explain
from xrec_helpers.models.als import ALS
from xrec_helpers.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def fitted(ml100k):
    small = ml100k.subset_users(150, seed=1)
    X = small.csr(small.ratings)
    return small, ALS(factors=16, iterations=5, alpha=10.0).fit(X)


def test_fold_in_matches_implicit_recalculate_user(fitted):
    _, model = fitted
    users = np.arange(10)
    ours = model.fold_in(model.train_[users])
    theirs = model.model_.recalculate_user(users, model.train_[users])
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_fold_in_solves_the_normal_equations(fitted):
    _, model = fitted
    A, b = model.normal_equations(model.train_[:3])
    p = model.fold_in(model.train_[:3])
    np.testing.assert_allclose(np.einsum("bij,bj->bi", A, p), b, atol=1e-8)
    # A by hand for user 0: YᵀY + λI + (alpha - 1) Σ_hist y yᵀ
    Y = model.item_factors_.astype(np.float64)
    hist = model.train_[0].indices
    A0 = Y.T @ Y + model.regularization * np.eye(model.factors) + (model.alpha - 1) * Y[hist].T @ Y[hist]
    np.testing.assert_allclose(A[0], A0, rtol=1e-5, atol=1e-5)


def test_contributions_sum_to_explain_total_and_fold_in_score(fitted):
    small, model = fitted
    ex = ALSExplainer(model, titles=small.titles())
    recs = model.recommend(np.arange(20), 1)[:, 0]
    scores = model.score(np.arange(20))
    for u, i in zip(range(20), recs):
        e = ex.explain(u, int(i))
        assert len(e.items) == len(ex.history(u))
        total = e.base_value + e.values.sum()  # additive: the folded-in score
        assert abs(e.base_value) < 1e-6  # an empty history folds in to 0: the history accounts for the score
        assert abs(total - scores[u, i]) < 1e-4
    # the stored (stale) factors give a different score: the point of re-folding
    gap = np.abs(model.stored_scores(np.arange(20)) - scores).max()
    assert gap > 1e-4


def test_batched_matches_per_call(fitted):
    _, model = fitted
    ex = ALSExplainer(model)
    pairs = [(u, int(model.recommend(u, 2)[0, k])) for u in range(15) for k in range(2)]  # repeated users
    one = [ex.explain(u, i) for u, i in pairs]
    many = ex.explain_many(pairs)
    for a, b in zip(one, many):
        assert set(a.items) == set(b.items)
        da = dict(zip(a.items, a.scores))
        assert max(abs(da[k] - s) for k, s in zip(b.items, b.scores)) < 1e-6
        assert abs((a.base_value + a.values.sum()) - (b.base_value + b.values.sum())) < 1e-6
    totals, C = batched_explain(model, [p[0] for p in pairs], [p[1] for p in pairs])
    np.testing.assert_allclose(np.asarray(C.sum(1)).ravel(), totals)


def test_edited_history_changes_the_score(fitted):
    _, model = fitted
    X = model.train_[[0]].toarray()
    i = int(model.recommend(0, 1)[0, 0])
    ex = ALSExplainer(model).explain(0, i)
    edited = X.copy()
    edited[0, ex.top(5)] = 0
    assert model.score_histories(edited)[0, i] < model.score_histories(X)[0, i]


def test_bad_input(fitted):
    _, model = fitted
    ex = ALSExplainer(model)
    hist = ex.history(0)
    with pytest.raises(IndexError, match="Unknown item"):
        ex.explain(0, model.n_items + 5)
    with pytest.raises(IndexError, match="Unknown user"):
        ex.explain(model.n_users, 0)
    with pytest.raises(ValueError, match="already in user"):
        ex.explain(0, int(hist[0]))
    free = int(np.setdiff1d(np.arange(model.n_items), hist)[0])
    with pytest.raises(ValueError, match="larger than user 0's history"):
        ALSExplainer(model, n=len(hist) + 1).explain(0, free)
    top3 = ALSExplainer(model, n=3).explain(0, free)
    full = ex.explain(0, free)
    assert list(top3.keys) == list(full.keys[:3]) and top3.note
    assert top3.base_value + top3.values.sum() == pytest.approx(full.base_value + full.values.sum(), abs=1e-9)
    with pytest.raises(TypeError, match="n"):
        ex.explain(0, free, n=3)
    with pytest.raises(TypeError, match="item_decomposition"):
        ALSExplainer(PopularityRecommender().fit(model.train_))
    empty = sp.lil_matrix(model.train_.copy())
    empty.rows[3], empty.data[3] = [], []
    m2 = ALS(factors=8, iterations=2).fit(sp.csr_matrix(empty))
    with pytest.raises(ValueError, match="empty history"):
        ALSExplainer(m2).explain(3, 0)
    with pytest.raises(ValueError, match="columns"):
        model.score_histories(np.zeros((1, model.n_items + 1)))
    with pytest.raises(ValueError, match="alpha"):
        ALS(alpha=0).fit(model.train_)
