"""KernelSHAP (``shap.KernelExplainer``) on the factorisation machine's feature slots.

Taught in 03_fm_lime. The players are the pair's *active* slots (user, item, age group, gender,
occupation and the genres the movie has); a coalition keeps its slots and switches the others off
(value 0), which is the same "feature absent" reference as the FM's exact closed-form Shapley
values (``FactorizationMachine.shapley``). So KernelSHAP here estimates a quantity we know exactly,
and its sampling error can be measured rather than guessed.

Both FM explainers (this one and :class:`~xrec_helpers.explainers.lime_rs.LimeRSExplainer`) return a
``kind="features"`` :class:`~xrec_helpers.explainers.base.Explanation` whose keys are the readable labels
of the pair's active slots (``FMFeatures.slot_labels``); :func:`slot_vector` lays such an explanation
out over the 24 slots of ``FIELDS``, the layout of ``FactorizationMachine.shapley``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.base import FEATURE_INPUTS
from xrec_helpers.models.fm import FIELDS


def kernel_shap_fm(model: Any, user: int, item: int, nsamples: int | str = "auto", seed: int = 0) -> np.ndarray:
    """KernelSHAP over the pair's active slots, reference "feature absent"; a vector over ``FIELDS``.

    Taught in 03_fm_lime. Inactive slots (genres the movie lacks) get 0, so the result is directly
    comparable to ``model.shapley``. NumPy's global generator is seeded for the estimate and restored after.

    Parameters
    ----------
    model : FactorizationMachine
        A fitted model with feature inputs (``features_``, ``predict_encoded``).
    user, item : int
        Internal ids of the pair.
    nsamples : int or "auto"
        Coalitions KernelSHAP scores (at least 2); ``2 ** n_active`` enumerates them all.
    seed : int
        Seed of the coalition sampler.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(FIELDS),)``.

    Raises
    ------
    ValueError
        When ``nsamples`` < 2.
    IndexError
        For unknown ids (from the FM's encoder).
    """
    import shap  # heavy import, only when asked

    if isinstance(nsamples, int) and nsamples < 2:
        raise ValueError(f"nsamples={nsamples} is too small: KernelSHAP needs at least 2 coalitions (try 128).")
    index, value = model._check_fitted().encode(np.array([user]), np.array([item]))
    active = np.flatnonzero(value[0] != 0)

    def f(masks: np.ndarray) -> np.ndarray:
        masks = np.atleast_2d(masks)
        vals = np.zeros((len(masks), len(FIELDS)), dtype=np.float32)
        vals[:, active] = value[0, active] * masks
        return model.predict_encoded(np.repeat(index, len(masks), axis=0), vals)

    # KernelExplainer draws its coalitions from NumPy's global generator: seed it for a reproducible estimate,
    # then give the caller's generator back exactly as it was (a library must not reseed its user's RNG).
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        explainer = shap.KernelExplainer(f, np.zeros((1, len(active))))
        phi = explainer.shap_values(np.ones((1, len(active))), nsamples=nsamples, silent=True)
    finally:
        np.random.set_state(state)
    out = np.zeros(len(FIELDS))
    out[active] = np.asarray(phi).reshape(-1)
    return out


def slot_vector(explanation: Explanation, features: Any) -> np.ndarray:
    """A ``kind="features"`` explanation of an FM laid out over the 24 slots of ``FIELDS`` (0 for slots it omits).

    Taught in 03_fm_lime, where LIME-RS and KernelSHAP are graded against ``FactorizationMachine.shapley``,
    which uses this layout.

    Parameters
    ----------
    explanation : Explanation
        From :class:`KernelSHAPFMExplainer` or :class:`~xrec_helpers.explainers.lime_rs.LimeRSExplainer`.
    features : FMFeatures
        The model's features (``model.features_``), whose ``slot_labels`` name the keys.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(FIELDS),)``.

    Raises
    ------
    ValueError
        When a key is not a slot label of the explained pair.
    """
    labels = features.slot_labels(explanation.user, explanation.item, explanation.titles)
    where = {label: j for j, label in enumerate(labels)}
    out = np.zeros(len(FIELDS))
    for key, value in zip(explanation.keys.tolist(), explanation.values, strict=True):
        if key not in where:
            raise ValueError(f"{key!r} is not a slot of the pair ({explanation.user}, {explanation.item}).")
        out[where[key]] = value
    return out


class KernelSHAPFMExplainer(Explainer):
    """:func:`kernel_shap_fm` on the explainer contract. Taught in 03_fm_lime.

    ``explain(user, item)`` returns a ``kind="features"`` explanation: keys are the readable labels of the
    pair's active slots (titles, never ids), values their KernelSHAP values, and ``base_value`` the
    all-slots-off prediction, so ``base_value + values.sum()`` is the FM's prediction and
    ``explain(...).to_shap()`` feeds shap's waterfall plot.

    Parameters
    ----------
    model : FactorizationMachine
        A fitted model with feature inputs (capability ``FEATURE_INPUTS``).
    titles : sequence of str, optional
        Display titles by internal item id.
    nsamples : int or "auto"
        Coalitions per explanation.
    seed : int
        Seed of the coalition sampler.

    Raises
    ------
    TypeError
        When the model lacks feature inputs.
    """

    name = "KernelSHAP"
    kind = "features"
    requires = frozenset({FEATURE_INPUTS})

    def __init__(self, model: Any, *, titles: Sequence[str] | None = None, nsamples: int | str = 128,
                 seed: int = 0):
        self._attach(model, titles)
        self.nsamples, self.seed = nsamples, seed

    def explain(self, user: int, item: int) -> Explanation:
        """KernelSHAP values of the pair's active slots (see the class docstring).

        Parameters
        ----------
        user : int
            Internal user id.
        item : int
            Internal item id.

        Returns
        -------
        Explanation
            A ``kind="features"`` explanation.
        """
        self.check_pair(user, item)
        phi = kernel_shap_fm(self.model, int(user), int(item), nsamples=self.nsamples, seed=self.seed)
        labels = self.model.features_.slot_labels(int(user), int(item), self.titles)
        index, value = self.model.features_.encode(np.array([user]), np.array([item]))
        active = np.flatnonzero(value[0] != 0)
        # The "feature absent" reference: every slot switched off. The values add up from it to the
        # prediction (f(x) = base + sum phi), which is what shap's waterfall plot draws (``to_shap``).
        base = float(self.model.predict_encoded(index, np.zeros_like(value))[0])
        keys, values = [labels[j] for j in active], phi[active]
        strongest = np.argsort(-np.abs(values), kind="stable")[:2]
        target = f"*{markdown_escape(self.title(int(item)))}*"
        text = (f"KernelSHAP: {target} is predicted {values.sum():+.2f} above the empty-feature baseline, most from "
                + " and ".join(f"{markdown_escape(keys[j])} ({values[j]:+.2f})" for j in strongest) + ".")
        calls = int(self.nsamples) if isinstance(self.nsamples, (int, np.integer)) else None
        return self._make(user, item, keys, values, base_value=base, model_calls=calls, text=text)

    def title(self, item: int) -> str:
        """Display title of an internal item id.

        Parameters
        ----------
        item : int
            Internal item id.

        Returns
        -------
        str
            The title.
        """
        return str(self.titles[item]) if self.titles is not None else f"item {item}"
