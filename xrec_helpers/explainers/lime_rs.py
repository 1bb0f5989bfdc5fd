"""LIME-RS (Nóbrega & Marinho, 2019): a local weighted ridge surrogate of the factorisation machine.

Taught in 03_fm_lime. LIME-RS keeps the user fixed and samples other items with probability
proportional to their training popularity, scores them with the FM, weights them by an
exponential kernel of the cosine distance to the explained pair, and fits a weighted ridge
surrogate with ``lime.lime_base.LimeBase``. Its coefficients on the genre flags (and, when users
are also swapped, on the demographic match indicators) are the explanation; its weighted R² says
how well a linear surrogate describes the FM around that pair.

Because the FM's exact Shapley values are known in closed form (``FactorizationMachine.shapley``),
LIME's ``attribution`` (weight x the pair's own slot value) can be graded against the truth with
``xrec_helpers.metrics.attribution.attribution_agreement``; KernelSHAP on the same slots lives in
``xrec_helpers.explainers.kernel_shap_fm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lime.lime_base import LimeBase
from sklearn.linear_model import Ridge

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.fm import FIELDS, FactorizationMachine

N_ONE_HOT = 5  # user, item, age, gender, occupation slots come first in FIELDS


@dataclass
class LimeResult:
    """One LIME-RS explanation: a weight per slot of ``FIELDS`` and the surrogate's quality.

    ``attribution`` is weight x the pair's own slot value (comparable to Shapley values);
    ``varied`` marks slots that changed in the neighbourhood (the others get weight 0 by necessity).
    """

    user: int
    item: int
    labels: list[str]
    weights: np.ndarray
    attribution: np.ndarray
    varied: np.ndarray
    intercept: float
    r2: float
    local_prediction: float
    model_prediction: float

    def to_frame(self, genres_and_demographics_only: bool = True) -> pd.DataFrame:
        """Weights with readable labels, largest |weight| first (never internal ids)."""
        frame = pd.DataFrame({"feature": self.labels, "weight": self.weights, "varied": self.varied})
        if genres_and_demographics_only:
            frame = frame.drop(index=[0, 1])  # "this user" / "this movie" identity indicators
        return frame.reindex(frame["weight"].abs().sort_values(ascending=False).index).reset_index(drop=True)


class LimeRSExplainer(Explainer):
    """LIME-RS on a fitted :class:`FactorizationMachine`. Taught in 03_fm_lime.

    Args:
        model: the fitted FM (its ``train_`` defines histories and popularity).
        titles: display titles by internal item id.
        n_samples: neighbourhood size including the explained pair (the workshop used 1,000).
        kernel_width: width w of pi(d) = sqrt(exp(-d^2 / w^2)) on cosine distance d in [0, 1]
            (the workshop's w = 25 made every weight ~1, i.e. no locality at all).
        user_share: share of the neighbourhood that swaps the *user* (sampled by activity) instead
            of the item; 0 is the original LIME-RS (user fixed), where demographics cannot vary.
        alpha: ridge penalty of the surrogate.
        random_state: seed; each (user, item) gets its own stream, so results do not depend on order.
    """

    name = "LIME-RS"

    def __init__(self, model: FactorizationMachine, titles: Sequence[str] | None = None, n_samples: int = 300,
                 kernel_width: float = 0.5, user_share: float = 0.0, alpha: float = 1.0, random_state: int = 0):
        super().__init__(model._fitted(), titles)
        if n_samples < 10:
            raise ValueError(f"n_samples={n_samples} is too small for a surrogate with {len(FIELDS)} features; use >= 10.")
        if not 0 <= user_share < 1:
            raise ValueError(f"user_share must be in [0, 1), got {user_share}.")
        self.model, self.n_samples, self.kernel_width = model, n_samples, kernel_width
        self.user_share, self.alpha, self.random_state = user_share, alpha, random_state
        binary = (self.train > 0)
        self.item_popularity = np.asarray(binary.sum(0)).ravel().astype(np.float64)
        self.user_activity = np.asarray(binary.sum(1)).ravel().astype(np.float64)

    def _kernel(self, d: np.ndarray) -> np.ndarray:
        return np.sqrt(np.exp(-(d ** 2) / self.kernel_width ** 2))

    @staticmethod
    def _sample(rng: np.random.Generator, weights: np.ndarray, exclude: int, n: int) -> np.ndarray:
        p = weights.copy()
        p[exclude] = 0.0
        n = min(n, int((p > 0).sum()))
        return rng.choice(len(p), size=n, replace=False, p=p / p.sum()) if n > 0 else np.array([], int)

    def neighbourhood(self, user: int, item: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of the neighbourhood, the explained pair first."""
        rng = np.random.default_rng([self.random_state, int(user), int(item)])
        n_users_swapped = int(round((self.n_samples - 1) * self.user_share))
        items = self._sample(rng, self.item_popularity, item, self.n_samples - 1 - n_users_swapped)
        users = self._sample(rng, self.user_activity, user, n_users_swapped)
        all_users = np.concatenate([[user], np.full(len(items), user), users]).astype(np.int64)
        all_items = np.concatenate([[item], items, np.full(len(users), item)]).astype(np.int64)
        return all_users, all_items

    def explain_features(self, user: int, item: int) -> LimeResult:
        """Fit the surrogate for one pair and return its weights and R²."""
        self.check_pair(user, item)
        users, items = self.neighbourhood(user, item)
        features = self.model.features_
        index, value = features.encode(users, items)
        y = self.model.predict_encoded(index, value)
        # Interpretable representation: "same as the explained pair" for the one-hot slots, raw genre flags.
        data = np.empty((len(users), len(FIELDS)))
        data[:, :N_ONE_HOT] = index[:, :N_ONE_HOT] == index[0, :N_ONE_HOT]
        data[:, N_ONE_HOT:] = value[:, N_ONE_HOT:]
        # Cosine distance between the full one-hot + genre vectors (all entries 0/1).
        shared = data[:, :N_ONE_HOT].sum(1) + data[:, N_ONE_HOT:] @ data[0, N_ONE_HOT:]
        norms = np.sqrt(N_ONE_HOT + data[:, N_ONE_HOT:].sum(1))
        distances = 1.0 - shared / (norms * norms[0])
        base = LimeBase(self._kernel, verbose=False, random_state=self.random_state)
        intercept, weights_list, r2, local_pred = base.explain_instance_with_data(
            data, y[:, None], distances, label=0, num_features=len(FIELDS), feature_selection="none",
            model_regressor=Ridge(alpha=self.alpha, fit_intercept=True))
        weights = np.zeros(len(FIELDS))
        for j, w in weights_list:
            weights[j] = w
        varied = data.std(0) > 0
        return LimeResult(user=int(user), item=int(item), labels=features.slot_labels(user, item, self.titles),
                          weights=weights, attribution=weights * data[0], varied=varied, intercept=float(intercept),
                          r2=float(r2), local_prediction=float(np.ravel(local_pred)[0]), model_prediction=float(y[0]))

    def explain(self, user: int, item: int) -> Explanation:
        """Contract wrapper: LIME-RS explains with features, not history items, so ``items`` is empty and
        the feature weights are in ``extra["features"]``."""
        result = self.explain_features(user, item)
        frame = result.to_frame()
        expl = Explanation(user=int(user), item=int(item), method=self.name, items=np.array([], int),
                           scores=np.array([]), titles=self.titles,
                           extra={"features": frame, "r2": result.r2, "result": result}, text="")
        top = frame.head(2)
        expl.text = (f"Around {expl._md_title(item)}, the FM's prediction moves most with "
                     + " and ".join(f"{markdown_escape(f)} ({w:+.2f})" for f, w in zip(top["feature"], top["weight"], strict=False))
                     + f" (surrogate R² {result.r2:.2f}).")
        return expl

