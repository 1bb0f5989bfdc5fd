"""EMF: the explainability matrix, the L2 gradient of the regulariser, exact ALS, the neighbour explainer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xrec_helpers.explainers.neighbourhood import NeighbourhoodExplainer, neighbour_histogram, plot_neighbour_ratings
from xrec_helpers.models.emf import (
    EMF,
    _solve_side,
    emf_loss_and_gradients,
    emf_objective,
    explainability_matrix,
    nearest_neighbours,
)


@pytest.fixture(scope="module")
def small(ml100k):
    data = ml100k.subset_users(80, seed=3)
    return data, data.csr(data.ratings, binary=False)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    r, w, rated = rng.uniform(1, 5, 4), rng.uniform(0, 3, 4), np.array([1.0, 1.0, 0.0, 1.0])
    args = dict(beta=0.1, lam=0.7, rated=rated)
    _, gp, gq = emf_loss_and_gradients(p, q, r, w, **args)
    eps = 1e-6
    for which, grad in (("p", gp), ("q", gq)):
        num = np.zeros_like(grad)
        for idx in np.ndindex(grad.shape):
            plus, minus, qp, qm = p.copy(), p.copy(), q.copy(), q.copy()
            if which == "p":
                plus[idx] += eps
                minus[idx] -= eps
            else:
                qp[idx] += eps
                qm[idx] -= eps
            lp = emf_loss_and_gradients(plus, qp, r, w, **args)[0]
            lm = emf_loss_and_gradients(minus, qm, r, w, **args)[0]
            num[idx] = (lp - lm)[idx[0]] / (2 * eps)
        np.testing.assert_allclose(grad, num, atol=1e-5)


def test_regulariser_gradient_is_l2_not_sign():
    p, q = np.array([[2.0, 0.0]]), np.array([[0.0, 0.0]])
    _, gp, _ = emf_loss_and_gradients(p, q, np.array([0.0]), np.array([1.0]), beta=0.0, lam=1.0)
    np.testing.assert_allclose(gp, [[2.0, 0.0]])  # λ W (p - q), a sign gradient would give 1


def test_explainability_matrix_is_mean_neighbour_rating():
    R = sp.csr_matrix(np.array([[5, 0, 3], [4, 0, 0], [0, 2, 5], [5, 1, 0]], dtype=float))
    nb = np.array([[1, 3], [0, 3], [0, 1], [0, 1]])
    W = explainability_matrix(R, nb, theta=1.5).toarray()
    E = np.array([(R[nb[u]].toarray()).mean(0) for u in range(4)])
    np.testing.assert_allclose(W, np.where(E >= 1.5, E, 0))
    with pytest.raises(ValueError, match="rows"):
        explainability_matrix(R, nb[:3])


def test_neighbours_are_most_similar(small):
    _, R = small
    nb = nearest_neighbours(R, 5)
    D = R.toarray()
    Dn = D / np.linalg.norm(D, axis=1, keepdims=True)
    sim = Dn @ Dn.T
    np.fill_diagonal(sim, -np.inf)
    for u in range(R.shape[0]):
        assert u not in nb[u]
        assert sim[u, nb[u]].min() >= np.sort(sim[u])[-5] - 1e-12
    np.testing.assert_array_equal(nearest_neighbours(R, 10)[:, :5], nb)  # nearest first, prefix-stable
    with pytest.raises(ValueError, match="neighbours must be between"):
        nearest_neighbours(R, R.shape[0])


def test_als_step_zeroes_the_summed_l2_gradient(small):
    """The ALS user update is where Σ of the per-pair gradients (+ γ p) vanishes: ALS solves the formula."""
    _, R = small
    rng = np.random.default_rng(1)
    W = explainability_matrix(R, nearest_neighbours(R, 10), 1.0)
    Q = rng.normal(0, 0.5, (R.shape[1], 4))
    beta, lam, ridge = 0.1, 0.3, 2.0
    P = _solve_side(R, W, Q, beta, lam, ridge)
    pairs = (R + W).tocoo()  # every rated or explainable pair, once
    r = np.asarray(R[pairs.row, pairs.col]).ravel()
    w = np.asarray(W[pairs.row, pairs.col]).ravel()
    _, gp, _ = emf_loss_and_gradients(P[pairs.row], Q[pairs.col], r, w, beta, lam, rated=(r > 0))
    total = np.zeros_like(P)
    np.add.at(total, pairs.row, gp)
    np.testing.assert_allclose(total + ridge * P, 0, atol=1e-8)


def test_fit_never_raises_the_objective_and_lambda_zero_ignores_w(small):
    _, R = small
    m = EMF(factors=8, iterations=6, lam=0.2, k_neighbours=10).fit(R)
    hist = np.array(m.objective_history_)
    assert (np.diff(hist) <= 1e-6 * hist[:-1]).all()
    assert np.isclose(hist[-1], emf_objective(R, m.explainability_, m.user_factors_, m.item_factors_, 0.1, 0.2, 10.0))
    coo = R.tocoo()
    rmse = np.sqrt(np.mean((m.predict(coo.row, coo.col) - coo.data) ** 2))
    assert rmse < np.std(coo.data) + 0.2  # learns the ratings (no global mean: p·q carries the scale)
    a = EMF(factors=8, iterations=3, k_neighbours=10, theta=0.5).fit(R)
    b = EMF(factors=8, iterations=3, k_neighbours=10, theta=3.0).fit(R)
    np.testing.assert_allclose(a.item_factors_, b.item_factors_)  # λ = 0: a plain MF, W plays no part
    rated = EMF(factors=8, iterations=3, lam=0.2, k_neighbours=10, pairs="rated").fit(R)
    assert rated.penalised_.nnz < m.penalised_.nnz and (rated.penalised_.multiply(R > 0) != rated.penalised_).nnz == 0


def test_bad_input(small):
    data, R = small
    with pytest.raises(ValueError, match="explicit ratings"):
        EMF(k_neighbours=5).fit(data.csr(data.ratings))
    with pytest.raises(ValueError, match="pairs"):
        EMF(pairs="all").fit(R)
    with pytest.raises(ValueError, match=">= 0"):
        EMF(lam=-1).fit(R)
    m = EMF(factors=4, iterations=1, k_neighbours=5).fit(R)
    with pytest.raises(IndexError, match="Unknown item"):
        m.predict(np.array([0]), np.array([R.shape[1]]))
    with pytest.raises(IndexError, match="Unknown user"):
        m.recommend(R.shape[0], 10)


def test_neighbour_explanation_counts_match_the_ratings(small):
    data, R = small
    nb = nearest_neighbours(R, 10)
    ex = NeighbourhoodExplainer(R, neighbours=nb, titles=data.titles())
    frame = data.ratings
    for user in range(5):
        seen = set(frame.loc[frame.user == user, "item"])
        item = next(i for i in frame.item.value_counts().index if i not in seen)
        e = ex.explain(user, int(item))
        rows = frame[(frame.item == item) & frame.user.isin(nb[user])]
        n_liked = int(e.table["liked"].sum())
        assert n_liked == int((rows.rating >= 4).sum()) and list(e.table["neighbour"]) == list(nb[user])
        assert sum(neighbour_histogram(e).values()) == len(rows)
        assert e.text.startswith(f"{n_liked} of your 10 nearest neighbours")
        assert set(e.items) == seen and (np.diff(e.scores) <= 0).all() and (e.scores <= 1).all()
        # a history item's score: share of the item's likers among the neighbours who also liked it
        likers = rows.loc[rows.rating >= 4, "user"]
        if len(likers):
            j = int(e.items[0])
            also = frame[(frame.item == j) & frame.user.isin(likers) & (frame.rating >= 4)]
            assert e.scores[0] == pytest.approx(len(also) / len(likers))
    ax = plot_neighbour_ratings(e)
    assert sum(p.get_height() for p in ax.patches) == 10


def test_neighbour_explainer_bad_input(small):
    data, R = small
    nb = nearest_neighbours(R, 10)
    ex = NeighbourhoodExplainer(R, neighbours=nb)
    assert (NeighbourhoodExplainer(R, k=10).neighbours == nb).all()  # the default neighbours: the same k nearest
    seen = int(R[0].indices[0])
    with pytest.raises(ValueError, match="already in user 0's history"):
        ex.explain(0, seen)
    with pytest.raises(IndexError, match="Unknown item"):
        ex.explain(0, R.shape[1])
    with pytest.raises(IndexError, match="Unknown user"):
        ex.explain(R.shape[0], 0)
    with pytest.raises(ValueError, match="shape"):
        NeighbourhoodExplainer(R, neighbours=nb[:5])
    with pytest.raises(ValueError, match="ratings, not a 0/1"):
        NeighbourhoodExplainer(data.csr(data.ratings), neighbours=nb)


def test_pseudo_rating_variant_solves_its_own_objective(small):
    """The variant's ALS half-step is the exact minimiser (a perturbed P only raises J), J never rises
    over sweeps, and at a large λ the scores on explainable pairs move towards the pseudo-rating c."""
    _, R = small
    W = explainability_matrix(R, nearest_neighbours(R, 10), 1.0)
    rng = np.random.default_rng(2)
    Q = rng.normal(0, 0.5, (R.shape[1], 4))
    form = dict(regulariser="pseudo_rating", target=5.0)
    P = _solve_side(R, W, Q, 0.1, 0.5, 2.0, **form)
    best = emf_objective(R, W, P, Q, 0.1, 0.5, 2.0, **form)
    for _ in range(5):
        worse = emf_objective(R, W, P + rng.normal(0, 1e-3, P.shape), Q, 0.1, 0.5, 2.0, **form)
        assert worse >= best - 1e-9
    m = EMF(factors=8, iterations=6, lam=1.0, k_neighbours=10, regulariser="pseudo_rating").fit(R)
    hist = np.array(m.objective_history_)
    assert (np.diff(hist) <= 1e-6 * hist[:-1]).all()
    plain = EMF(factors=8, iterations=6, k_neighbours=10).fit(R)
    Wc = m.explainability_.tocoo()
    gap = lambda model: np.abs(5.0 - model.predict(Wc.row, Wc.col)).mean()  # noqa: E731
    assert gap(m) < gap(plain)
    with pytest.raises(ValueError, match="regulariser"):
        EMF(regulariser="cosine").fit(R)
