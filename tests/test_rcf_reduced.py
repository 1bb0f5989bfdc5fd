"""RCF's influence functions differentiate only what depends on theta and take the input effect in closed form
(06_accent): same numbers as the full path."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch
from torch.func import hessian, jacrev

from tests.test_rcf import planted
from xrec_helpers.explainers.base import top_pairs
from xrec_helpers.explainers.influence import FastInfluence, influence_explainers
from xrec_helpers.metrics.refit import _objective, newton_refit, verify_by_refit
from xrec_helpers.models import rcf as rcf_module

USERS = (0, 1, 5)


@contextlib.contextmanager
def full_path(model):
    """The model's INFLUENCE functions through the whole forward pass (the reference), restored afterwards."""
    model.user_training_losses = model._user_training_losses_full
    model.user_score_function = model._user_score_function_full
    model.user_score_without_function = model._user_score_without_function_full
    try:
        yield model
    finally:
        del model.user_training_losses, model.user_score_function, model.user_score_without_function


def removal_sets(model, user):
    pos = model.positives(user)
    return [(), (int(pos[0]),), tuple(int(i) for i in pos[1:3])]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("user", USERS)
def test_losses_scores_gradients_and_hessians_equal_the_full_path(user):
    model, _, _, _ = planted()
    theta = model.user_parameters(user)
    moved = theta + 0.1 * torch.randn(len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(user))
    items = torch.arange(model.n_items)
    for without in removal_sets(model, user):
        fast, removes = model.user_training_losses(user, without)
        full, removes_full = model._user_training_losses_full(user, without)
        np.testing.assert_array_equal(removes, removes_full)
        f, f_full = model.user_score_function(user, without), model._user_score_function_full(user, without)
        for t in (theta, moved):
            torch.testing.assert_close(fast(t), full(t), rtol=0, atol=1e-10)
            torch.testing.assert_close(f(t, items), f_full(t, items), rtol=0, atol=1e-10)
            torch.testing.assert_close(f(t, items[:3]), f_full(t, items[:3]), rtol=0, atol=1e-10)  # new items
            assert rel(jacrev(fast)(t), jacrev(full)(t)) < 1e-8
            assert rel(jacrev(f)(t, items), jacrev(f_full)(t, items)) < 1e-8
            assert rel(hessian(lambda x, g=fast: g(x).sum())(t), hessian(lambda x, g=full: g(x).sum())(t)) < 1e-8


def test_every_pair_removed_and_errors_are_unchanged():
    model, train, _, _ = planted()
    pos = model.positives(0)
    losses, removes = model.user_training_losses(0, without=pos)
    assert len(removes) == 0 and losses(model.user_parameters(0)).shape == (0,)
    negative = int(train[0].indices[train[0].data < 3][0])
    with pytest.raises(ValueError, match="not positive training items"):
        model.user_training_losses(0, without=[negative])
    with pytest.raises(ValueError, match="not positive training items"):
        model.user_score_function(0, without=[negative])


def test_fia_explanations_and_newton_refits_equal_the_full_path():
    model, _, _, _ = planted()
    users = np.array(USERS)

    def run():
        fia = FastInfluence(model, k=3)
        infos = [fia.user(int(u)) for u in users]
        ex = influence_explainers(model, (3,), influence=fia)
        expl = [e.explain(u, i) for u, i in top_pairs(model, users) for e in ex.values()]
        theta0 = model.user_parameters(0)
        losses, _ = model.user_training_losses(0, without=removal_sets(model, 0)[2])
        refit = newton_refit(_objective(losses, 20.0, 0.01, theta0.clone()), theta0, 20)
        return infos, expl, refit, verify_by_refit(model, expl, steps=10)

    infos, expl, refit, frame = run()
    with full_path(model):
        infos_f, expl_f, refit_f, frame_f = run()
    assert "user_training_losses" not in vars(model)  # the reference is gone again
    for a, b in zip(infos, infos_f):
        np.testing.assert_array_equal(a.topk, b.topk)
        np.testing.assert_allclose(a.influence, b.influence, rtol=1e-8, atol=1e-12)
    for a, b in zip(expl, expl_f, strict=True):
        assert (a.method, a.replacement) == (b.method, b.replacement)
        np.testing.assert_array_equal(a.counterfactual_set, b.counterfactual_set)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(refit[0], refit_f[0], rtol=1e-8, atol=1e-10)
    assert refit[2] == refit_f[2]
    for col in ("actual_gap", "control_gap", "original_gap"):
        np.testing.assert_allclose(frame[col], frame_f[col], rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(frame["success"], frame_f["success"])


def emptied_types(model, user: int, items: torch.Tensor) -> int:
    """How many (removal, target, type) triples lose their only neighbour when one positive of ``user`` goes."""
    d = model.data_
    L = int(d.valid[user].sum())
    nb = d.neighbours[user, :L].expand(len(items), L).unsqueeze(0)
    mask = nb != items.reshape(1, -1, 1)
    tmask = rcf_module._type_masks(mask, d.values[:, items.reshape(1, -1, 1), nb])[0]  # (B, T, L)
    return int((tmask & (tmask.sum(-1, keepdim=True) == 1)).sum())


@pytest.mark.parametrize("recompute", [None, 0.0, 1.0])  # as shipped, closed form only, direct sums only
def test_score_without_equals_the_full_path_for_every_removal(recompute, monkeypatch):
    model, _, _, _ = planted()
    if recompute is not None:
        monkeypatch.setattr(rcf_module, "_RECOMPUTE", recompute)
    items = torch.arange(model.n_items)
    emptied = 0
    for user in (*USERS, 7):
        theta = model.user_parameters(user)
        pos = model.positives(user)
        others = np.setdiff1d(np.arange(model.n_items), pos)
        removed = np.r_[pos, others[:1]]  # every positive, and an item that is no neighbour (nothing changes)
        gen = torch.Generator().manual_seed(user)
        thetas = theta + 0.1 * torch.randn(len(removed), len(theta), dtype=torch.float64, generator=gen)
        fast, full = model.user_score_without_function(user), model._user_score_without_function_full(user)
        for its in (items, items[:5], items):  # new items, then back (the cache is rebuilt)
            torch.testing.assert_close(fast(thetas, removed, its), full(thetas, removed, its), rtol=0, atol=1e-10)
        assert fast(thetas[:0], removed[:0], items).shape == (0, model.n_items)
        emptied += emptied_types(model, user, items)
    assert emptied > 0  # some removals take a relation type's only neighbour for some target


def test_fia_with_the_closed_form_input_effect_equals_the_full_path():
    model, _, _, _ = planted()
    fast = [FastInfluence(model, k=4).user(u) for u in (*USERS, 7)]
    model.user_score_without_function = model._user_score_without_function_full
    try:
        full = [FastInfluence(model, k=4).user(u) for u in (*USERS, 7)]
    finally:
        del model.user_score_without_function
    for a, b in zip(fast, full, strict=True):
        np.testing.assert_array_equal(a.topk, b.topk)
        np.testing.assert_array_equal(a.history, b.history)
        np.testing.assert_allclose(a.influence, b.influence, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("user", USERS)
def test_per_pair_gradients_and_hessian_hook_equal_torch_func(user):
    model, _, _, _ = planted()
    theta = model.user_parameters(user)
    moved = theta + 0.1 * torch.randn(len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(user))
    for without in removal_sets(model, user):
        losses, _ = model.user_training_losses(user, without)
        D = model.user_training_loss_derivatives(user, without)
        for t in (theta, moved):
            G, S = D(t)
            torch.testing.assert_close(G, jacrev(losses)(t), rtol=0, atol=1e-12)
            torch.testing.assert_close(S, hessian(lambda x, g=losses: g(x).sum())(t), rtol=0, atol=1e-12)
    G, S = model.user_training_loss_derivatives(user, model.positives(user))(theta)  # every pair removed
    assert G.shape == (0, len(theta)) and not S.any()


def test_score_without_many_equals_score_without_and_checks_its_sets():
    model, train, _, _ = planted()
    for user in (*USERS, 7):
        pos = model.positives(user)
        items = model.recommend(user, 5)[0]
        sets = [(), pos[:1], pos[1:4], pos, np.r_[pos[2:3], pos[0:1]]]
        many = model.score_without_many(user, sets, items)
        one = np.stack([model.score_without(user, s, items) for s in sets])
        np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(model.score_without_many(user, sets[1:2], items[:2]), one[1:2, :2], atol=1e-5)
        assert model.score_without_many(user, [], items).shape == (0, 5)
    negative = int(train[0].indices[train[0].data < 3][0])
    with pytest.raises(ValueError, match="not positive training items"):
        model.score_without_many(0, [[negative]], [1, 2])
    with pytest.raises(TypeError):
        model.score_without_many(0, [[1.5]], [1, 2])


def test_catalogue_scores_are_cached_until_the_parameters_move():
    model = copy.deepcopy(planted()[0])  # planted() is shared by the other tests: train a copy
    before = model.score([0, 1]).copy()
    np.testing.assert_array_equal(model.score([1, 0]), before[::-1])  # served from the cache, same rows
    without_before = model.score_without_many(0, [()], [0, 1, 2])
    model.continue_training(1)
    after = model.score([0, 1])
    assert not np.allclose(after, before)  # training moved them and the cache followed
    np.testing.assert_allclose(after[0], model.score_without(0, [], np.arange(model.n_items)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.score_without_many(0, [()], [0, 1, 2]), without_before)
    with torch.no_grad():  # an edit in place, no training: the caches see it too
        model._stack.params["bo"] += 1.0
    np.testing.assert_allclose(model.score([0, 1]), after + 1.0, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kept", ["all", "some", "none"])
def test_closed_form_derivatives_equal_torch_func_for_any_weights(kept):
    model, _, _, _ = planted()
    gen = torch.Generator().manual_seed(1)
    for user in USERS:
        nb_row, valid = model._neighbour_row(user)
        keep = {"all": torch.ones(len(nb_row), dtype=torch.bool),
                "some": torch.arange(len(nb_row)) % 3 == 0,  # types lose neighbours, some all of them
                "none": torch.zeros(len(nb_row), dtype=torch.bool)}[kept]  # no neighbour at all: mu = theta
        parts = model._theta_free(user, keep, torch.arange(model.n_items))
        theta = model.user_parameters(user) + 0.1 * torch.randn(parts.q.shape[1], dtype=torch.float64, generator=gen)
        c = torch.randn(model.n_items, dtype=torch.float64, generator=gen)
        scores, grads, hess = rcf_module._theta_derivatives(theta, parts)

        def f(t, parts=parts):
            return rcf_module._theta_scores(t, parts)

        torch.testing.assert_close(scores, f(theta), rtol=0, atol=1e-12)
        torch.testing.assert_close(grads, jacrev(f)(theta), rtol=0, atol=1e-12)
        torch.testing.assert_close(hess(c), hessian(lambda t, c=c: (c * f(t)).sum())(theta), rtol=0, atol=1e-11)
