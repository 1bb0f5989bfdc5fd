"""NCF's analytic score Jacobian and loss Hessian (06_accent): equal to torch.func's, and FIA / the refit unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import hessian, jacrev

from tests.test_refit import objective, tiny_ncf
from xrec_helpers.explainers.influence import FastInfluence
from xrec_helpers.metrics.refit import _derivatives, newton_refit, refit_objective, verify_by_refit

USERS = (0, 3, 5, 11, 17, 29)


class Autograd:
    """The model without its optional analytic hooks, so FIA and the refit take the torch.func path."""

    _hidden = ("user_score_jacobian", "user_training_loss_derivatives")

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        if name in self._hidden:
            raise AttributeError(name)
        return getattr(self._model, name)


def thetas(model, user):
    """The trained theta and two random ones (other ReLU on/off patterns)."""
    theta = model.user_parameters(user)
    g = torch.Generator().manual_seed(user)
    return [theta] + [theta + 0.5 * torch.randn(len(theta), generator=g, dtype=torch.float64) for _ in range(2)]


@pytest.mark.parametrize("user", USERS)
def test_jacobian_equals_autograd(user):
    model = tiny_ncf()
    f, jac = model.user_score_function(), model.user_score_jacobian()
    items = torch.arange(model.n_items)
    for theta in thetas(model, user):
        torch.testing.assert_close(jac(theta, items), jacrev(f)(theta, items), rtol=0, atol=1e-10)


@pytest.mark.parametrize("user", USERS)
def test_hessian_is_exactly_two_jtj(user):
    model = tiny_ncf()
    losses, _ = model.user_training_losses(user)
    derivatives = model.user_training_loss_derivatives(user)
    n, lam = len(model.train_[user].indices) + 7, model.influence_l2 + model.influence_damping
    eye = torch.eye(2 * model.factors, dtype=torch.float64)
    for theta in thetas(model, user):
        G, S = derivatives(theta)
        torch.testing.assert_close(G, jacrev(losses)(theta), rtol=1e-10, atol=1e-12)
        H = S / n + lam * eye  # as FIA forms it
        ref = hessian(lambda t: losses(t).sum() / n + 0.5 * lam * (t ** 2).sum())(theta)
        assert float((H - ref).norm() / ref.norm()) < 1e-8


def test_fia_equals_the_autograd_path():
    model = tiny_ncf()
    for normalization in ("local", "global"):
        fast = FastInfluence(model, k=5, normalization=normalization)
        slow = FastInfluence(Autograd(model), k=5, normalization=normalization)
        for user in USERS:
            a, b = fast.user(user), slow.user(user)
            np.testing.assert_array_equal(a.topk, b.topk)
            np.testing.assert_array_equal(a.history, b.history)
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-8, atol=0)
            np.testing.assert_allclose(a.influence, b.influence, rtol=1e-8, atol=1e-8 * np.abs(b.influence).max())


@pytest.mark.parametrize("user", USERS[:4])
def test_newton_refit_equals_the_autograd_path(user):
    model = tiny_ncf()
    settings = refit_objective(model)
    theta0 = model.user_parameters(user)
    removed = tuple(int(i) for i in model.train_[user].indices[:2])
    J = objective(model, user, removed)
    D = _derivatives(model, user, removed, float(model.train_.nnz), settings["ridge"], torch.zeros_like(theta0))
    fast = newton_refit(J, theta0, 20, D)
    slow = newton_refit(J, theta0, 20)
    torch.testing.assert_close(fast[0], slow[0], rtol=1e-8, atol=1e-10)
    assert fast[2:] == slow[2:]
    assert fast[1] == pytest.approx(slow[1], rel=1e-6, abs=1e-12)


def test_verify_by_refit_equals_the_autograd_path():
    from tests.test_refit import explanations

    model = tiny_ncf()
    expl = explanations(model, range(6))
    fast, slow = verify_by_refit(model, expl), verify_by_refit(Autograd(model), expl)
    cols = ["original_gap", "actual_gap", "control_gap", "corrected_gap"]
    np.testing.assert_allclose(fast[cols].to_numpy(float), slow[cols].to_numpy(float), rtol=1e-8, atol=1e-10)
    assert (fast[["success", "newton_steps", "converged"]] == slow[["success", "newton_steps", "converged"]]).all().all()
