"""The user-refit verification (06_accent): damped Newton on the user block, its controls, verdicts and errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch

from tests.test_rcf import planted
from xrec_helpers.explainers.base import derive, top_pairs
from xrec_helpers.explainers.influence import FastInfluence, influence_explainers
from xrec_helpers.metrics.refit import RefitVerification, newton_refit, refit_objective, verify_by_refit
from xrec_helpers.models.ncf import NCF


@functools.lru_cache(maxsize=1)
def tiny_ncf() -> NCF:
    """30 users x 20 items, ~12 explicit ratings each, a small NCF trained to a plateau."""
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 20
    taste, kind = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    rows = [(u, i, float(np.clip(np.rint(3 + taste[u] @ kind[i]), 1, 5)))
            for u in range(n_users) for i in rng.permutation(n_items)[:12]]
    r = np.array(rows)
    train = sp.csr_matrix((r[:, 2], (r[:, 0].astype(int), r[:, 1].astype(int))), shape=(n_users, n_items))
    return NCF(factors=4, hidden=(4, 2), lr=1e-2, batch_size=64, epochs=60, random_state=0).fit(train)


def set_theta(model: NCF, user: int, theta: torch.Tensor) -> None:
    """Write a user's parameters into the model (the GMF then MLP embeddings, as ``user_parameters`` reads them)."""
    d = model.factors
    with torch.no_grad():
        model._stack.params["P_gmf"][0, user] = theta[:d].float()
        model._stack.params["P_mlp"][0, user] = theta[d:].float()


def objective(model: NCF, user: int, without=()) -> callable:
    """The NCF user-block objective written from the ratings directly (an independent check of the library's)."""
    train = model.train_
    cols = train.indices[train.indptr[user]:train.indptr[user + 1]]
    ratings = train.data[train.indptr[user]:train.indptr[user + 1]]
    keep = ~np.isin(cols, list(without))
    f = model.user_score_function()
    items, r = torch.as_tensor(cols[keep]), torch.as_tensor(ratings[keep], dtype=torch.float64)
    return lambda t: ((f(t, items) - r) ** 2).sum() / train.nnz + model.weight_decay / 2 * (t ** 2).sum()


def explanations(model, users=range(12)):
    ex = influence_explainers(model, (3,), influence=FastInfluence(model, k=3))
    return [e.explain(u, i) for u, i in top_pairs(model, np.asarray(list(users))) for e in ex.values()]


def test_ncf_without_drops_rows_and_the_default_is_unchanged():
    model = tiny_ncf()
    losses, removes = model.user_training_losses(2)
    fewer, kept = model.user_training_losses(2, without=removes[:2])
    theta = model.user_parameters(2)
    np.testing.assert_array_equal(kept, removes[2:])
    torch.testing.assert_close(fewer(theta), losses(theta)[2:])
    with pytest.raises(ValueError, match="not in user 2's training ratings"):
        model.user_training_losses(2, without=[int(np.setdiff1d(np.arange(model.n_items), removes)[0])])


def test_refit_with_nothing_removed_leaves_a_converged_theta_unchanged():
    model = tiny_ncf()
    user = 5
    J = objective(model, user)
    star, _, _, done = newton_refit(J, model.user_parameters(user), 50)
    assert done
    set_theta(model, user, star)
    again, gnorm, taken, done = newton_refit(J, model.user_parameters(user), 50)
    # float32 storage moves theta by ~1e-8; the refit must not wander from there
    assert done and taken <= 3
    torch.testing.assert_close(again, model.user_parameters(user), atol=1e-6, rtol=0)
    expl = [e for e in explanations(model, [user]) if e.counterfactual.found]
    assert expl, "the tiny model should give user 5 a set"
    frame = verify_by_refit(model, expl, steps=30)
    np.testing.assert_allclose(frame["control_gap"], frame["original_gap"], atol=1e-6)


def test_ncf_refit_matches_lbfgs_on_the_same_objective():
    model = tiny_ncf()
    found = [e for e in explanations(model, range(12, 23)) if e.counterfactual.found]
    frame = verify_by_refit(model, found, steps=50)
    # NCF's ReLUs make the objective piecewise smooth: a minimum on a kink is not pinned to 1e-6 by either
    # method, so the exact comparison uses the refits that ended at a smooth minimum (gradient ~ 0)
    smooth = (frame["grad_norm"] < 1e-10).to_numpy()
    assert smooth.sum() >= 4 and frame["converged"].mean() > 0.9
    expl, frame = [e for e, ok in zip(found, smooth) if ok][:6], frame[smooth].iloc[:6]
    f = model.user_score_function()
    for e, row in zip(expl, frame.itertuples()):
        J = objective(model, e.user, e.counterfactual_set)

        def fun(x, J=J):
            t = torch.as_tensor(x, dtype=torch.float64).requires_grad_(True)
            v = J(t)
            return float(v.detach()), torch.autograd.grad(v, t)[0].numpy()

        res = scipy.optimize.minimize(fun, model.user_parameters(e.user).numpy(), jac=True, method="L-BFGS-B",
                                      options={"gtol": 1e-14, "ftol": 1e-16, "maxiter": 5000})
        s = f(torch.as_tensor(res.x), torch.as_tensor([e.item, e.replacement])).detach().numpy()
        assert abs((s[0] - s[1]) - row.actual_gap) < 1e-6, (s[0] - s[1], row.actual_gap)


def test_verdict_after_steps_equals_verdict_after_five_times_as_many():
    model = tiny_ncf()
    expl = explanations(model, range(6))
    short = verify_by_refit(model, expl, steps=20)
    long = verify_by_refit(model, expl, steps=100)
    assert (short["size"] > 0).sum() >= 3
    assert (short["success"] == long["success"]).all()
    assert (short["corrected_success"] == long["corrected_success"]).all()
    np.testing.assert_allclose(short["actual_gap"], long["actual_gap"], atol=1e-5)
    assert short.attrs["distinct_sets"] <= (short["size"] > 0).sum()  # deduplicated across methods


def test_fia_one_step_agrees_with_the_refit_to_first_order():
    """At a minimum of the user block, FIA on the same objective predicts a single removal's effect."""
    model = tiny_ncf()
    users = (5, 9, 20)
    for user in users:
        star, _, _, _ = newton_refit(objective(model, user), model.user_parameters(user), 50)
        set_theta(model, user, star)
    fia = FastInfluence(model, k=3, normalization="global", damping=0.0)
    f = model.user_score_function()
    predicted, actual = [], []
    for user in users:
        info = fia.user(user)
        theta0 = model.user_parameters(user)
        base = newton_refit(objective(model, user), theta0, 50)[0]
        for col, z in enumerate(info.history[:4]):
            moved = newton_refit(objective(model, user, [int(z)]), theta0, 50)[0]
            with torch.no_grad():
                T = torch.as_tensor(info.topk)
                actual.extend((f(base, T) - f(moved, T)).numpy())
            predicted.extend(info.influence[:, col])
    predicted, actual = np.array(predicted), np.array(actual)
    assert np.abs(actual).max() > 1e-4  # removals really move the scores
    # one of ~12 ratings is not a small removal on this tiny data (r ~ 0.92 measured): first order only
    assert np.corrcoef(predicted, actual)[0, 1] > 0.85
    assert np.abs(predicted - actual).max() < 0.7 * np.abs(actual).max()
    assert np.all(np.sign(predicted[np.abs(actual) > 0.03]) == np.sign(actual[np.abs(actual) > 0.03]))


def test_protocol_rows_metrics_and_label():
    model = tiny_ncf()
    expl = explanations(model, range(6))
    result = RefitVerification(steps=10, verdict="corrected").evaluate(model, expl)
    frame = result.per_explanation
    assert {"item", "corrected_gap", "grad_norm", "converged", "refit CF", "refit CF size"} <= set(frame.columns)
    np.testing.assert_array_equal(frame["refit CF"], frame["corrected_success"].astype(float))
    assert "re-fit to convergence with every other parameter frozen" in RefitVerification(steps=7).label()
    assert "7" in RefitVerification(steps=7).label()
    assert result.details["normalization"] == "global" and result.details["ridge"] == model.weight_decay
    assert refit_objective(model) == {"normalization": "global", "ridge": 1e-3, "anchor": "zero"}


def test_clear_errors():
    model = tiny_ncf()
    expl = explanations(model, [0])
    with pytest.raises(TypeError, match="'influence' capability"):
        verify_by_refit(object(), expl)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        verify_by_refit(model, expl, steps=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        RefitVerification(steps=0)
    with pytest.raises(ValueError, match="which the model does not know"):
        verify_by_refit(model, [derive(expl[0], user=model.n_users + 5)])
    with pytest.raises(ValueError, match="No explanations"):
        verify_by_refit(model, [])
    with pytest.raises(ValueError, match="normalization must be"):
        verify_by_refit(model, expl, normalization="batch")
    with pytest.raises(ValueError, match="keep controls=True"):
        RefitVerification(verdict="corrected", controls=False)


def test_rcf_without_drops_pairs_and_neighbours_and_the_refit_runs():
    model, _, _, _ = planted()
    user = 0
    z = int(model.positives(user)[0])
    theta = model.user_parameters(user)
    f = model.user_score_function(user, without=[z])
    items = np.arange(model.n_items)
    np.testing.assert_allclose(f(theta, torch.as_tensor(items)).detach().numpy(),
                               model.score_without(user, [z], items), rtol=1e-4, atol=1e-5)
    losses, removes = model.user_training_losses(user)
    fewer, kept = model.user_training_losses(user, without=[z])
    assert z not in kept and len(kept) == len(removes) - int((removes == z).sum())
    d = model.data_
    pos, neg = d.pos[d.users == user], d.neg[d.users == user]
    s = f(theta, torch.cat([pos[pos != z], neg[pos != z]]))
    m = int((pos != z).sum())
    torch.testing.assert_close(fewer(theta), torch.nn.functional.softplus(-(s[:m] - s[m:])))
    with pytest.raises(ValueError, match="not positive training items"):
        model.user_training_losses(user, without=[int(neg[0])])
    assert refit_objective(model) == {"normalization": "local", "ridge": 0.01, "anchor": "start"}
    expl = [e for e in explanations(model, range(4)) if e.counterfactual.found]
    frame = verify_by_refit(model, expl, steps=20)
    assert len(frame) and frame["converged"].all() and frame["grad_norm"].max() < 1e-8


def test_rcf_refit_without_every_positive_keeps_theta():
    # a set that holds every positive of the user (pure attention can remove them all) leaves no pair to fit:
    # the refit is the proximal term alone, so theta stays where it was, and the scores have no neighbours
    model, _, _, _ = planted()
    user = 0
    every = [int(i) for i in model.positives(user)]
    losses, kept = model.user_training_losses(user, without=every)
    theta = model.user_parameters(user)
    assert len(kept) == 0 and losses(theta).shape == (0,)
    rec = int(model.recommend(user, 2)[0][0])
    rep = int(model.recommend(user, 2)[0][1])
    e = next(e for e in explanations(model, [user]))
    e = derive(e, counterfactual=type(e.counterfactual)(items=np.asarray(every), replacement=rep, predicted_gap=-1.0,
                                                       k=2, found=True))
    assert e.item == rec
    row = verify_by_refit(model, [e], steps=5).iloc[0]
    expected = model.score_without(user, every, [rec, rep])
    assert row["size"] == len(every) and row["converged"] and row["newton_steps"] == 0
    assert row["actual_gap"] == pytest.approx(expected[0] - expected[1], rel=1e-4, abs=1e-5)


def test_mlp_units_on_matches_the_layers_and_explains_coinciding_gradients():
    """``mlp_units_on`` reads the forward pass's own ReLU pattern; with the GMF branch off, two items that switch
    on the same units have the same score gradient with respect to the user's parameters (06_accent, §3)."""
    model = tiny_ncf()
    p = {k: v[0].double() for k, v in model.params_.items()}
    user, items = 3, np.arange(model.n_items)
    # written out from the architecture, independently of the library's helper
    h1 = p["P_mlp"][user] @ p["W1"][:model.factors] + p["Q_mlp"][items] @ p["W1"][model.factors:] + p["b1"]
    expected = torch.cat([h1 > 0, torch.relu(h1) @ p["W2"] + p["b2"] > 0], 1).numpy()
    on = model.mlp_units_on(user, items)
    assert on.shape == (model.n_items, sum(model.hidden)) and on.dtype == bool
    np.testing.assert_array_equal(on, expected)
    assert model.gmf_output_weights.shape == (model.factors,)
    np.testing.assert_allclose(model.gmf_output_weights, p["Wo"][model.hidden[1]:].numpy(), rtol=1e-6)
    # switch the GMF branch off: then equal on/off patterns give equal gradients, and only then
    off = NCF(factors=4, hidden=(4, 2), lr=1e-2, batch_size=64, epochs=60, random_state=0).fit(model.train_)
    with torch.no_grad():
        off._stack.params["Wo"][0, off.hidden[1]:] = 0.0
    on = off.mlp_units_on(user, items)
    grads = torch.func.jacrev(off.user_score_function())(off.user_parameters(user), torch.as_tensor(items))
    same = [(a, b) for a in items for b in items if a < b and (on[a] == on[b]).all()]
    assert same, "the tiny model should map some items to the same ReLU pattern"
    for a, b in same:
        torch.testing.assert_close(grads[a], grads[b], atol=1e-10, rtol=0)
    with pytest.raises(IndexError, match="Unknown item id"):
        model.mlp_units_on(user, [model.n_items])


def test_ncf_catalogue_scores_are_cached_until_a_parameter_moves():
    model = NCF(factors=4, hidden=(4, 2), epochs=2, random_state=0).fit(
        sp.csr_matrix(np.array([[5.0, 3.0, 0.0, 1.0], [0.0, 4.0, 2.0, 0.0], [1.0, 0.0, 5.0, 4.0]])))
    first = model.score([0, 2]).copy()
    np.testing.assert_array_equal(model.score([2, 0]), first[::-1])
    model.continue_training(1)
    trained = model.score([0, 2])
    assert not np.allclose(trained, first)
    with torch.no_grad():  # an edit in place, no training: the cache sees it
        model._stack.params["bo"] += 1.0
    np.testing.assert_allclose(model.score([0, 2]), trained + 1.0, rtol=1e-6, atol=1e-5)
