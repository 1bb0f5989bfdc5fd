"""Verification by re-fitting the user's own parameters to convergence: a verdict that does not depend on epochs.

Taught in 06_accent. FIA predicts the effect of removing some of a user's ratings under one assumption: only the
user's own parameters theta move, by one Newton step of the user-block objective. Whole-model warm-start
retraining (:mod:`xrec_helpers.metrics.retraining`) verifies the sets, but its verdicts keep changing with the
retrain's length, because the warm start is not a minimum of the full objective. This protocol answers a
narrower question exactly: with every other parameter frozen, re-fit theta to convergence without the set, then
re-score the recommendation and the predicted replacement. It isolates FIA's linearisation error (one Newton
step, an additive search over single removals) from everything FIA assumes away; it does NOT see the item
embeddings and shared weights move, which a retrain does.

The user-block objective, without the removed set ``Z``::

    J(theta) = (1/n) * sum_{rows r of the user not owned by Z} loss_r(theta) + (ridge/2) * ||theta - anchor||^2

is minimised from the trained theta by damped Newton in float64 (exact gradient and Hessian through
:mod:`torch.func`, or the model's closed-form ``user_training_loss_derivatives`` (NCF, RCF); Levenberg-Marquardt damping when the Hessian is not positive definite or a step does not
decrease ``J`` enough). On RCF the removed items also leave the user's neighbour lists, in the losses and in
the re-scored predictions (the models' ``without`` argument of the ``INFLUENCE`` interface).

Default objective, per model:

* ``influence_l2 > 0`` (NCF): the model's own training objective restricted to the user block: ``n`` = all
  training rows (the minibatch mean's expectation), ``ridge`` = ``weight_decay``, anchored at zero.
* ``influence_l2 == 0`` (RCF: no L2 on the user embedding): the user block of RCF's objective has no minimum
  (the BPR margins keep growing along theta; measured in ``results/paper/refit_study.py``), so the default is
  the objective FIA's formula linearises: the user's mean pair loss (``n`` = the user's pairs) plus FIA's
  damping (0.01) as a proximal term around the trained theta.

A no-removal refit per user (the control) measures how far the refit moves theta when nothing is removed (the
trained theta is only approximately a minimum of ``J``); ``corrected_gap = actual - control + original``, as in
retraining. Refits are deduplicated per (user, set) across methods and k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch.func import grad, hessian

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.retraining import check_verdict, verdict_column, verdict_frame
from xrec_helpers.models.base import INFLUENCE, capabilities_of

_NORMALIZATIONS = ("global", "local")
_ANCHORS = ("zero", "start")


def refit_objective(model: Any, normalization: str | None = None, ridge: float | None = None,
                    anchor: str | None = None) -> dict[str, Any]:
    """The user-block objective's settings that :func:`verify_by_refit` uses for ``model`` (see the module; 06_accent).

    Parameters
    ----------
    model : Any
        A fitted model with ``INFLUENCE``.
    normalization : {"global", "local"}, optional
        ``"global"``: the losses are divided by all training rows (the model's objective); ``"local"``: by the
        user's own rows (FIA's RCF objective). Default: by the model (module docstring).
    ridge : float, optional
        The quadratic term's coefficient. Default: ``influence_l2`` when positive, else ``influence_damping``.
    anchor : {"zero", "start"}, optional
        The ridge's centre: zero (an L2 penalty) or the trained theta (a proximal term). Default: zero when the
        model has an L2 term, else the trained theta.

    Returns
    -------
    dict
        ``normalization``, ``ridge``, ``anchor``.

    Raises
    ------
    ValueError
        For an unknown normalization or anchor, or a negative ridge.
    """
    has_l2 = float(model.influence_l2) > 0
    normalization = ("global" if has_l2 else "local") if normalization is None else normalization
    anchor = ("zero" if has_l2 else "start") if anchor is None else anchor
    ridge = (float(model.influence_l2) if has_l2 else float(model.influence_damping)) if ridge is None else float(ridge)
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, not {normalization!r}.")
    if anchor not in _ANCHORS:
        raise ValueError(f"anchor must be one of {_ANCHORS}, not {anchor!r}.")
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, not {ridge}.")
    return {"normalization": normalization, "ridge": ridge, "anchor": anchor}


def newton_refit(objective: Callable[[torch.Tensor], torch.Tensor], theta0: torch.Tensor,
                 steps: int, derivatives: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
                 ) -> tuple[torch.Tensor, float, int, bool]:
    """Minimise ``objective`` from ``theta0`` by damped Newton (Levenberg-Marquardt), at most ``steps`` steps.

    Each step solves ``(H + mu I) delta = -g`` with the exact Hessian; ``mu`` starts at 0 and grows tenfold while
    ``H + mu I`` is not positive definite or the step fails the Armijo test, then shrinks after a success. It
    stops early when the predicted decrease is below float64 resolution or no damping gives a decrease: a
    minimum up to float64 resolution. On a model with ReLU units (NCF's MLP) the objective is only piecewise
    smooth, and its minimum can sit on a kink, where the gradient of either side need not vanish: there the
    stop, not the gradient norm, says the refit has converged. Used by :func:`verify_by_refit` (06_accent).

    Parameters
    ----------
    objective : callable
        ``J(theta) -> scalar`` float64, twice differentiable by :mod:`torch.func`.
    theta0 : torch.Tensor
        The start, float64 ``(p,)``.
    steps : int
        Newton steps at most.
    derivatives : callable, optional
        ``derivatives(theta) -> (gradient, Hessian)`` of ``objective``, when known without autograd (NCF's
        analytic ``user_training_loss_derivatives``, which :func:`verify_by_refit` uses); default
        :func:`torch.func.grad` and :func:`torch.func.hessian` of ``objective``.

    Returns
    -------
    theta : torch.Tensor
        The re-fit parameters.
    grad_norm : float
        ``||grad J||`` at ``theta``.
    taken : int
        Steps taken.
    converged : bool
        Whether it stopped before ``steps`` because no step decreases ``objective`` any more.
    """
    if derivatives is None:
        g_fn, h_fn = grad(objective), hessian(objective)

        def derivatives(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return g_fn(t), h_fn(t)
    theta = theta0.detach().clone()
    eye = torch.eye(len(theta), dtype=theta.dtype)
    mu, taken = 0.0, 0
    for _ in range(steps):
        g, H = derivatives(theta)
        value = float(objective(theta))
        scale = float(H.diagonal().abs().max()) + 1e-300
        done = False
        for _ in range(80):
            chol, info = torch.linalg.cholesky_ex(H + mu * eye)
            if int(info) == 0:
                delta = torch.cholesky_solve(-g.unsqueeze(1), chol).squeeze(1)
                decrease = -float(g @ delta)  # > 0: the model's predicted decrease (times 2, near the minimum)
                if decrease <= 1e-15 * (abs(value) + 1e-300):
                    done = True  # converged to float64 resolution
                    break
                new = float(objective(theta + delta))
                if new <= value - 1e-4 * decrease:
                    theta = theta + delta
                    taken += 1
                    mu = mu / 10 if mu > 1e-12 * scale else 0.0
                    break
            mu = max(10 * mu, 1e-8 * scale)
        else:
            done = True  # no damping gives a decrease: a minimum up to resolution
        if done:
            break
    return theta, float(derivatives(theta)[0].norm()), taken, done


def _objective(losses: Callable, n: float, ridge: float, centre: torch.Tensor) -> Callable:
    def J(theta: torch.Tensor) -> torch.Tensor:
        return losses(theta).sum() / n + 0.5 * ridge * ((theta - centre) ** 2).sum()

    return J


def _derivatives(model: Any, user: int, removed: Sequence[int], n: float, ridge: float,
                 centre: torch.Tensor) -> Callable | None:
    """Gradient and Hessian of :func:`_objective` from the model's analytic hook (NCF), or None (autograd)."""
    hook = getattr(model, "user_training_loss_derivatives", None)
    if hook is None:
        return None
    d = hook(user, without=removed)
    eye = torch.eye(len(centre), dtype=centre.dtype)

    def D(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        G, S = d(theta)
        return G.sum(0) / n + ridge * (theta - centre), S / n + ridge * eye

    return D


def _check_model(model: Any, steps: int) -> None:
    if INFLUENCE not in capabilities_of(model):
        raise TypeError(f"verify_by_refit needs a fitted model with the {INFLUENCE!r} capability (NCF, RCF: "
                        f"user_parameters, user_training_losses, ...); {type(model).__name__} offers "
                        f"{sorted(capabilities_of(model))}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (Newton steps per refit), not {steps!r}.")
    model._fitted()


def verify_by_refit(model: Any, explanations: Sequence[Explanation], *, steps: int = 20,
                    normalization: str | None = None, ridge: float | None = None, anchor: str | None = None,
                    controls: bool = True) -> pd.DataFrame:
    """Verify counterfactual sets by re-fitting the user's own parameters without them (see the module).

    The rows of :class:`RefitVerification` (the protocol 06_accent runs).

    Parameters
    ----------
    model : Any
        The fitted model (capability ``INFLUENCE``: NCF, RCF) the explanations were computed on.
    explanations : Sequence[Explanation]
        Any mix of methods and k; ``counterfactual.k`` is reported when present.
    steps : int
        Damped Newton steps per refit at most (it stops earlier once converged to float64 resolution).
    normalization, ridge, anchor
        The user-block objective (:func:`refit_objective`; default: the model's own, see the module).
    controls : bool
        Also re-fit each user with nothing removed (the drift of the refit), for ``corrected_gap``.

    Returns
    -------
    pd.DataFrame
        One row per explanation, the columns of :func:`~xrec_helpers.metrics.retraining.verify_by_retraining`
        (method, k, user, rec, replacement, size, predicted_gap, original_gap, actual_gap, control_gap,
        corrected_gap, success, corrected_success) plus the convergence columns ``grad_norm`` (``||grad J||`` at
        the re-fit theta), ``newton_steps`` and ``converged`` (stopped before ``steps`` because no step decreases
        ``J``: see :func:`newton_refit` on ReLU kinks). ``attrs``: the objective, steps, distinct sets, the
        controls' largest gradient norm and their converged fraction.

    Raises
    ------
    TypeError
        When the model lacks ``INFLUENCE``.
    ValueError
        For ``steps < 1``, no explanations, an explanation for a user the model does not know, or a set without
        a replacement.
    """
    _check_model(model, steps)
    if not explanations:
        raise ValueError("No explanations to verify.")
    settings = refit_objective(model, normalization, ridge, anchor)
    jobs: dict[tuple, None] = {}
    keys = []
    for e in explanations:
        if not (isinstance(e.user, (int, np.integer)) and 0 <= int(e.user) < model.n_users):
            raise ValueError(f"The {e.method} explanation is for user {e.user!r}, which the model does not know (it "
                             f"has users 0..{model.n_users - 1}): verify explanations computed on this model.")
        if e.counterfactual_set is None or len(e.counterfactual_set) == 0:
            keys.append(None)
            continue
        if e.replacement is None:
            raise ValueError(f"{e.method} explanation for user {e.user} has a set but no replacement.")
        key = (int(e.user), tuple(sorted(int(i) for i in e.counterfactual_set)))
        jobs.setdefault(key, None)
        keys.append(key)
    n_all = float(model.influence_counts(0, np.zeros(1, dtype=np.int64), "global")[0])
    refits: dict[tuple, tuple] = {}  # (user, set) -> (score function, theta, grad norm, steps taken)
    for user in sorted({u for u, _ in jobs}):
        theta0 = model.user_parameters(user)
        losses0, _ = model.user_training_losses(user)
        with torch.no_grad():
            n_user = float(len(losses0(theta0)))
        n = n_all if settings["normalization"] == "global" else n_user
        centre = torch.zeros_like(theta0) if settings["anchor"] == "zero" else theta0.clone()
        sets = [s for u, s in jobs if u == user]
        for removed in ([()] if controls else []) + sets:
            losses, _ = model.user_training_losses(user, without=removed)
            theta, gnorm, taken, done = newton_refit(
                _objective(losses, n, settings["ridge"], centre), theta0, steps,
                _derivatives(model, user, removed, n, settings["ridge"], centre))
            refits[(user, removed)] = (model.user_score_function(user, without=removed), theta, gnorm, taken, done)
        refits[(user, "start")] = (model.user_score_function(user), theta0, np.nan, 0, False)

    def gap(key: tuple, rec: int, rep: int) -> float:
        f, theta = refits[key][:2]
        with torch.no_grad():
            s = f(theta, torch.as_tensor([rec, rep]))
        return float(s[0] - s[1])

    rows = []
    for e, key in zip(explanations, keys):
        k = None if e.counterfactual is None else e.counterfactual.k
        row = {"method": e.method, "k": k, "user": e.user, "rec": e.item, "replacement": e.replacement,
               "size": 0 if key is None else len(key[1]), "predicted_gap": e.predicted_gap}
        if key is None:
            row.update(original_gap=np.nan, actual_gap=np.nan, control_gap=np.nan, corrected_gap=np.nan,
                       success=False, corrected_success=False, grad_norm=np.nan, newton_steps=0, converged=False)
        else:
            orig = gap((key[0], "start"), e.item, e.replacement)
            actual = gap(key, e.item, e.replacement)
            control = gap((key[0], ()), e.item, e.replacement) if controls else np.nan
            corrected = actual - control + orig if controls else np.nan
            row.update(original_gap=orig, actual_gap=actual, control_gap=control, corrected_gap=corrected,
                       success=bool(actual < 0), corrected_success=bool(corrected < 0),
                       grad_norm=refits[key][2], newton_steps=refits[key][3], converged=refits[key][4])
        rows.append(row)
    frame = pd.DataFrame(rows)
    control = [v for (u, s), v in refits.items() if s == ()]
    frame.attrs.update(steps=steps, distinct_sets=len(jobs), **settings,
                       control_grad_norm_max=float(max(v[2] for v in control)) if control else np.nan,
                       controls_converged=float(np.mean([v[4] for v in control])) if control else np.nan)
    return frame


class RefitVerification(Protocol):
    """Verification by re-fitting the user's own parameters to convergence, every other parameter frozen.

    Taught in 06_accent. The counterpart of :class:`~xrec_helpers.metrics.retraining.RetrainingVerification`
    whose verdict does not depend on a retrain length: one row per explanation with the columns of
    :func:`verify_by_refit` (``rec`` renamed ``item``) and two metrics, ``refit CF`` (1 when the predicted
    replacement outscores the recommendation after the refit) and ``refit CF size``. It measures FIA's
    linearisation error only: what a re-fit of theta alone does, not what a retrain of the whole model does.

    Parameters
    ----------
    steps : int
        Damped Newton steps per refit at most.
    normalization, ridge, anchor
        The user-block objective (:func:`refit_objective`; default: the model's own).
    controls : bool
        Also re-fit each user with nothing removed, for the drift columns.
    verdict : {"raw", "corrected"}
        Which success the metric counts: ``"raw"`` (the replacement outscores the recommendation after the
        refit) or ``"corrected"`` (net of the no-removal refit's drift; needs ``controls``).
    """

    name: ClassVar[str] = "user refit verification"
    requires: ClassVar[frozenset[str]] = frozenset({INFLUENCE})
    kinds: ClassVar[frozenset[str]] = frozenset({"history"})
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("refit CF", True, "1 if, after removing the set and re-fitting the user's own parameters to "
               "convergence, the predicted replacement outscores the recommendation (0 otherwise, or without a set)"),
        Metric("refit CF size", False, "size of the set on verified counterfactuals (NaN otherwise)"),
    )

    def __init__(self, *, steps: int = 20, normalization: str | None = None, ridge: float | None = None,
                 anchor: str | None = None, controls: bool = True, verdict: str = "raw"):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1 (Newton steps per refit), not {steps!r}.")
        check_verdict(verdict, controls, "the no-removal refits'")
        if normalization is not None and normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, not {normalization!r}.")
        if anchor is not None and anchor not in _ANCHORS:
            raise ValueError(f"anchor must be one of {_ANCHORS}, not {anchor!r}.")
        self.steps, self.normalization, self.ridge, self.anchor = int(steps), normalization, ridge, anchor
        self.controls, self.verdict = controls, verdict

    @property
    def verdict_column(self) -> str:
        """The per-explanation column the CF metric counts (``success`` or ``corrected_success``)."""
        return verdict_column(self.verdict)

    def label(self) -> str:
        """How to state the protocol next to a CF %: what is re-fit, how, and the verdict."""
        net = ", net of the no-removal refit's drift" if self.verdict == "corrected" else ""
        return (f"the user's own parameters re-fit to convergence with every other parameter frozen "
                f"(up to {self.steps} damped Newton steps){net}")

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Verify every explanation's counterfactual set by re-fitting the user's parameters of ``model``.

        Parameters
        ----------
        model : Recommender
            The explained model, with ``INFLUENCE`` (NCF, RCF).
        explanations : sequence of Explanation
            History explanations with a :class:`~xrec_helpers.explainers.base.Counterfactual` (those without a
            found set count as failures).

        Returns
        -------
        ProtocolResult
            ``per_explanation``: the columns of :func:`verify_by_refit` and the two metrics.
        """
        explanations = self.check(model, explanations)
        frame = verify_by_refit(model, explanations, steps=self.steps, normalization=self.normalization,
                                ridge=self.ridge, anchor=self.anchor, controls=self.controls)
        details = {**frame.attrs, "verdict": self.verdict, "label": self.label()}
        return ProtocolResult(self.name, self.metrics, verdict_frame(frame, self.verdict, self.metrics),
                              details=details)
