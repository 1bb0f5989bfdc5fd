"""LXR, Mult-VAE, the surrogates (LIME, cluster SHAP) and exact leave-one-out (LOO, LOO counterfactual).

Small synthetic data with planted cause -> effect pairs: the planted cause is the history item that
really drives the recommendation, so faithful explainers must find it.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.explainers.baselines import RandomExplainer
from xrec_helpers.explainers.influence import LOOCounterfactualExplainer, LOOExplainer
from xrec_helpers.explainers.lxr import LXRExplainer, frozen
from xrec_helpers.explainers.surrogates import ClusterSHAPExplainer, LIMEExplainer
from xrec_helpers.metrics.counterfactual import perturbation_curves
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.vae import MultVAE


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    data = synthetic(n_users=300, n_items=60, seed=1)
    X = data.csr()
    mf = HistoryMF(factors=16, epochs=15, random_state=0).fit(X)
    users = np.arange(60)
    items = mf.recommend(users, k=1)[:, 0]
    return data, X, mf, list(zip(users.tolist(), items.tolist()))


@pytest.fixture(scope="module")
def vae(setup):
    _, X, _, _ = setup
    return MultVAE(hidden=32, latent=8, epochs=8, random_state=0).fit(X)


def test_vae_scores_are_a_distribution_and_match_torch_scores(setup, vae):
    _, X, _, _ = setup
    S = vae.score([0, 1, 2])
    assert S.shape == (3, X.shape[1])
    np.testing.assert_allclose(S.sum(1), 1.0, rtol=1e-4)
    t = vae.torch_scores(torch.as_tensor(X[[0, 1, 2]].toarray()))
    np.testing.assert_allclose(t.detach().numpy(), S, rtol=1e-5, atol=1e-7)
    assert all(not p.requires_grad for p in vae.net_.parameters())


def test_vae_is_deterministic_and_learns(setup):
    _, X, _, _ = setup
    a = MultVAE(hidden=16, latent=4, epochs=3, random_state=5).fit(X).score([0])
    b = MultVAE(hidden=16, latent=4, epochs=3, random_state=5).fit(X).score([0])
    np.testing.assert_array_equal(a, b)
    model = MultVAE(hidden=16, latent=4, epochs=6, random_state=0).fit(X)
    assert model.loss_history_[-1] < model.loss_history_[0]
    with pytest.raises(ValueError, match="columns"):
        model.score_histories(np.zeros((1, X.shape[1] + 1)))


def test_loo_is_exact_leave_one_out(setup):
    _, X, mf, pairs = setup
    user, item = pairs[0]
    e = LOOExplainer(mf).explain(user, item)
    h = int(e.items[0])
    hist = X[user].toarray()
    without = hist.copy()
    without[0, h] = 0
    expected = mf.score_histories(hist)[0, item] - mf.score_histories(without)[0, item]
    assert e.scores[0] == pytest.approx(expected, rel=1e-5)
    assert np.all(np.diff(e.scores) <= 0)
    assert e.method == "LOO" and e.model_calls == len(e.items) + 1


def test_loo_counterfactual_set_closes_the_predicted_gap(setup, ml100k):
    # Real histories: on the planted data the sigmoid-saturated gaps are rarely closable.
    X = ml100k.subset_users(150, seed=0).csr()
    mf = HistoryMF(factors=16, epochs=10, random_state=0).fit(X)
    acc = LOOCounterfactualExplainer(mf, k=5)
    found = 0
    for user in range(20):
        item = int(mf.recommend([user], k=1)[0, 0])
        e = acc.explain(user, item)
        assert set(e.items.tolist()) == set(X[user].indices.tolist())
        assert e.counterfactual.k == 5 and e.method == "LOO counterfactual"
        if e.counterfactual.found:
            found += 1
            assert e.predicted_gap < 0 and e.replacement not in (item, *X[user].indices)
            # The set is a prefix of the ranking: ACCENT adds items in decreasing gap influence.
            np.testing.assert_array_equal(e.items[:len(e.counterfactual_set)], e.counterfactual_set)
        else:
            assert e.counterfactual.size == 0 and e.replacement is None and e.predicted_gap >= 0
    assert found > 0
    with pytest.raises(ValueError, match="k=1"):
        LOOCounterfactualExplainer(mf, k=1)


def test_lime_neighbourhood_follows_lxr_sampler(setup):
    _, X, mf, pairs = setup
    user, item = pairs[0]
    lime = LIMEExplainer(mf, n_samples=20, d_min=5, d_max=10)
    N, flips, hist = lime.neighbourhood(user, item)
    assert N.shape == (21, X.shape[1]) and flips[0] == 0
    np.testing.assert_array_equal(N[0], X[user].toarray()[0])
    changed = (N[1:] != N[0]).sum(1)
    assert np.all(changed <= flips[1:]) and np.all((flips[1:] >= 5) & (flips[1:] <= 10))
    e1, e2 = lime.explain(user, item), lime.explain(user, item)
    assert e1.fit_r2 is not None and e1.model_calls == 21
    np.testing.assert_array_equal(e1.scores, e2.scores)  # seeded per (user, item)


def test_shap_values_are_shapley_of_cluster_removal(setup):
    _, X, mf, pairs = setup
    user, item = pairs[1]
    shap_ex = ClusterSHAPExplainer(mf, n_clusters=4)
    e = shap_ex.explain(user, item)
    values = shap_ex.cluster_values(e)
    full = mf.score_histories(X[user].toarray())[0, item]
    empty = mf.score_histories(np.zeros((1, X.shape[1])))[0, item]
    # Efficiency: Shapley values sum to f(all clusters present) - f(empty history).
    assert values.sum() == pytest.approx(full - empty, abs=1e-4)
    for h, s in zip(e.items, e.scores):
        assert s == pytest.approx(values[shap_ex.cluster_of[h]])
    with pytest.raises(ValueError, match="background"):
        ClusterSHAPExplainer(mf, background="all")


@pytest.fixture(scope="module")
def lxr(setup):
    _, X, mf, _ = setup
    users = np.arange(60, 300)
    return LXRExplainer(mf, hidden=16, lambda_pos=11.6, lambda_neg=2.0, lr=3e-2, batch_size=64,
                        epochs=12, random_state=0).fit(users)


def test_lxr_trains_and_beats_random(setup, lxr):
    _, X, mf, pairs = setup
    assert lxr.history_[-1]["loss"] < lxr.history_[0]["loss"]
    ours = perturbation_curves(mf, lxr.explain_many(pairs)).auc
    rand = perturbation_curves(mf, RandomExplainer(X, random_state=0).explain_many(pairs)).auc
    assert ours["POS@20"] < rand["POS@20"] and ours["DEL"] < rand["DEL"]


def test_lxr_batched_equals_single_and_masks_in_range(setup, lxr):
    _, X, _, pairs = setup
    many = lxr.explain_many(pairs[:5])
    for (u, i), e in zip(pairs[:5], many):
        single = lxr.explain(u, i)
        np.testing.assert_array_equal(single.items, e.items)
        assert set(e.items.tolist()) == set(X[u].indices.tolist())
        assert np.all((e.scores > 0) & (e.scores < 1))
        logits = lxr.masks([u], [i], logits=True)[0, e.items]
        assert np.all(np.diff(logits) <= 0)  # ordered by the logits (probabilities saturate at 1.0)
    M = lxr.masks([u for u, _ in pairs[:3]], [i for _, i in pairs[:3]])
    assert M.shape == (3, X.shape[1])


def test_lxr_does_not_change_the_recommender(setup):
    _, X, mf, pairs = setup
    before = mf.score([0, 1])
    LXRExplainer(mf, hidden=8, epochs=1).fit(np.arange(60, 120))
    np.testing.assert_array_equal(before, mf.score([0, 1]))
    assert mf.in_factors_.requires_grad  # frozen only while training, restored afterwards
    with frozen(mf):
        assert not mf.in_factors_.requires_grad


def test_lxr_validation_keeps_best_epoch(setup):
    _, X, mf, _ = setup
    calls = []

    def validate(explainer):  # a scripted "validation score": best at epoch 2
        calls.append(len(calls))
        return [5.0, 4.0, 1.0, 3.0][len(calls) - 1]

    e = LXRExplainer(mf, hidden=8, epochs=3, random_state=0).fit(np.arange(60, 120), validate=validate)
    assert e.best_epoch_ == 2 and len(calls) == 4


def test_lxr_loss_terms_signs(setup):
    _, X, mf, pairs = setup
    e = LXRExplainer(mf, hidden=8, lambda_pos=2.0, lambda_neg=3.0, alpha=0.5)
    x = torch.as_tensor(X[[0, 1]].toarray())
    y = torch.as_tensor([pairs[0][1], pairs[1][1]])
    ones = torch.ones_like(x)
    with torch.no_grad():
        terms = e.loss_terms(x, y, ones)  # mask = 1: keep everything, remove nothing... removal keeps nothing
    with torch.no_grad():
        p_full = mf.torch_scores(x)[torch.arange(2), y]
        p_empty = mf.torch_scores(torch.zeros_like(x))[torch.arange(2), y]
    assert float(terms["pred"]) == pytest.approx(float(-torch.log(p_full.detach() + 1e-9).mean()), rel=1e-5)
    assert float(terms["inv"]) == pytest.approx(float(torch.log(p_empty.detach() + 1e-9).mean()), rel=1e-5)
    assert float(terms["mask"]) == pytest.approx(1.0)
    expected = 2.0 * terms["pred"] + 3.0 * terms["inv"] + 0.5 * terms["mask"]
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-6)


def test_lxr_works_on_the_vae(setup, vae):
    _, X, _, _ = setup
    e = LXRExplainer(vae, hidden=8, lambda_pos=3.19, lambda_neg=1.42, epochs=2).fit(np.arange(60, 200))
    item = int(vae.recommend([0], k=1)[0, 0])
    assert len(e.explain(0, item).items) == X[0].nnz


def test_clear_errors(setup, lxr):
    _, X, mf, pairs = setup
    user, item = pairs[0]
    seen = int(X[user].indices[0])
    for explainer in (lxr, LOOExplainer(mf), LIMEExplainer(mf)):
        with pytest.raises(ValueError, match="already in user"):
            explainer.explain(user, seen)
        with pytest.raises(IndexError, match="Unknown user"):
            explainer.explain(10_000, item)
        with pytest.raises(IndexError, match="Unknown item"):
            explainer.explain(user, 10_000)
    with pytest.raises(RuntimeError, match="not trained"):
        LXRExplainer(mf).explain(user, item)
    with pytest.raises(TypeError, match="torch_scores"):
        LXRExplainer(object())
    with pytest.raises(TypeError, match="score_histories"):
        LOOExplainer(object())
    with pytest.raises(ValueError, match="lambda"):
        LXRExplainer(mf, lambda_pos=0, lambda_neg=0)
    empty = sp.csr_matrix(sp.diags((np.arange(X.shape[0]) != 0).astype(np.float32)) @ X)
    empty.eliminate_zeros()
    with pytest.raises(ValueError, match="empty history"):
        LOOExplainer(copy.deepcopy(mf).use_histories(empty)).explain(0, item)
    with pytest.raises(ValueError, match="one item per user"):
        LXRExplainer(mf).fit([1, 2], [3])
