"""KernelSHAP (``shap.KernelExplainer``) on the factorisation machine's feature slots.

Taught in 03_fm_lime. The players are the pair's *active* slots (user, item, age group, gender,
occupation and the genres the movie has); a coalition keeps its slots and switches the others off
(value 0), which is the same "feature absent" reference as the FM's exact closed-form Shapley
values (``FactorizationMachine.shapley``). So KernelSHAP here estimates a quantity we know exactly,
and its sampling error can be measured rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.fm import FIELDS, FactorizationMachine


def kernel_shap_fm(model: FactorizationMachine, user: int, item: int, nsamples: int | str = "auto",
                   seed: int = 0) -> np.ndarray:
    """KernelSHAP over the pair's active slots, reference "feature absent"; a vector over ``FIELDS``.

    Inactive slots (genres the movie lacks) get 0, so the result is directly comparable to
    ``model.shapley``. Unknown ids raise IndexError from the FM's encoder. Taught in 03_fm_lime.
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


class KernelSHAPFMExplainer(Explainer):
    """:func:`kernel_shap_fm` on the explainer contract (checks the pair first). Taught in 03_fm_lime.

    Like LIME-RS it explains with *features*, not history items: ``items`` is empty and the per-slot
    values are in ``extra["features"]`` (readable labels, largest |value| first) and ``extra["phi"]``;
    ``extra["base_value"]`` is the all-slots-off prediction, so ``explain(...).to_shap()`` feeds shap's plots.
    """

    name = "KernelSHAP"

    def __init__(self, model: FactorizationMachine, titles: Sequence[str] | None = None, nsamples: int | str = 128,
                 seed: int = 0):
        super().__init__(model._fitted(), titles)
        self.model, self.nsamples, self.seed = model, nsamples, seed

    def attributions(self, user: int, item: int) -> np.ndarray:
        """Per-slot KernelSHAP values over ``FIELDS`` for a valid (user, unseen item) pair."""
        self.check_pair(user, item)
        return kernel_shap_fm(self.model, int(user), int(item), nsamples=self.nsamples, seed=self.seed)

    def explain(self, user: int, item: int) -> Explanation:
        import pandas as pd

        phi = self.attributions(user, item)
        labels = self.model.features_.slot_labels(int(user), int(item), self.titles)
        frame = pd.DataFrame({"feature": labels, "value": phi})
        frame = frame[phi != 0].reindex(frame["value"].abs().sort_values(ascending=False).index).dropna()
        # The "feature absent" reference: every slot switched off. KernelSHAP's values add up from it to the
        # prediction (f(x) = base + sum phi), which is what shap's waterfall plot draws (``to_shap``).
        index, value = self.model.features_.encode(np.array([user]), np.array([item]))
        base = float(self.model.predict_encoded(index, np.zeros_like(value))[0])
        expl = Explanation(user=int(user), item=int(item), method=self.name, items=np.array([], int),
                           scores=np.array([]), titles=self.titles,
                           extra={"features": frame.reset_index(drop=True), "phi": phi, "base_value": base},
                           text="")
        top = frame.head(2)
        expl.text = (f"KernelSHAP: {expl._md_title(item)} is predicted {phi.sum():+.2f} above the empty-feature "
                     "baseline, most from " + " and ".join(f"{markdown_escape(f)} ({v:+.2f})" for f, v in zip(top["feature"], top["value"], strict=False))
                     + ".")
        return expl
