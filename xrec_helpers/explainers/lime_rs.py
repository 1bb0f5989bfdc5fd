"""LIME-RS (Nóbrega & Marinho, 2019): a local weighted ridge surrogate of the factorisation machine.

Taught in 03_fm_lime. LIME-RS keeps the user fixed and samples other items with probability
proportional to their training popularity, scores them with the FM, weights them by an
exponential kernel of the cosine distance to the explained pair, and fits a weighted ridge
surrogate with ``lime.lime_base.LimeBase``. Its coefficients on the slots the pair has (the movie,
its genres and, when users are also swapped, the demographic slots) are the explanation; its
weighted R² (``Explanation.fit_r2``) says how well a linear surrogate describes the FM around that pair.

Because the FM's exact Shapley values are known in closed form (``FactorizationMachine.shapley``),
LIME's attribution (weight x the pair's own slot value, i.e. the weights of the slots the pair has) can
be graded against the truth with ``xrec_helpers.metrics.attribution.attribution_agreement`` after
:func:`~xrec_helpers.explainers.kernel_shap_fm.slot_vector`; KernelSHAP on the same slots lives in
``xrec_helpers.explainers.kernel_shap_fm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lime.lime_base import LimeBase
from sklearn.linear_model import Ridge

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.base import FEATURE_INPUTS
from xrec_helpers.models.fm import FIELDS

N_ONE_HOT = 5  # user, item, age, gender, occupation slots come first in FIELDS


class LimeRSExplainer(Explainer):
    """LIME-RS on a fitted factorisation machine. Taught in 03_fm_lime.

    ``explain(user, item)`` returns a ``kind="features"`` explanation: keys are the readable labels of the
    slots the pair *has* (this user, the movie, its demographics and the movie's genres), values the
    surrogate's weights on them (= its attribution, weight x value 1), ``fit_r2`` the surrogate's weighted
    R² and ``model_calls`` the neighbourhood size. A genre the movie lacks is absent: its weight is the
    surrogate's guess of what *adding* that genre would do, not part of this movie's attribution, so it is
    not a key; ``table`` shows every genre and demographic slot (feature, weight, varied, movie has it),
    largest |weight| first, for reading. ``varied`` is False for a slot that never changed in the
    neighbourhood (its weight is 0 by necessity, e.g. the demographics when the user is fixed).

    Parameters
    ----------
    model : FactorizationMachine
        A fitted model with feature inputs (its ``train_`` defines histories and popularity).
    titles : sequence of str, optional
        Display titles by internal item id.
    n_samples : int
        Neighbourhood size including the explained pair (at least 10; the 2023 tutorial this notebook
        revisits used 1,000).
    kernel_width : float
        Width w of pi(d) = sqrt(exp(-d^2 / w^2)) on cosine distance d in [0, 1] (the 2023 tutorial's
        w = 25 made every weight ~1, i.e. no locality at all).
    user_share : float
        Share of the neighbourhood that swaps the *user* (sampled by activity) instead of the item; 0 is
        the original LIME-RS (user fixed), where demographics cannot vary.
    alpha : float
        Ridge penalty of the surrogate.
    random_state : int
        Seed; each (user, item) gets its own stream, so results do not depend on order.

    Raises
    ------
    TypeError
        When the model lacks feature inputs.
    ValueError
        For ``n_samples`` < 10 or ``user_share`` outside [0, 1).
    """

    name = "LIME-RS"
    kind = "features"
    requires = frozenset({FEATURE_INPUTS})

    def __init__(self, model: Any, *, titles: Sequence[str] | None = None, n_samples: int = 300,
                 kernel_width: float = 0.5, user_share: float = 0.0, alpha: float = 1.0, random_state: int = 0):
        self._attach(model, titles)
        if n_samples < 10:
            raise ValueError(f"n_samples={n_samples} is too small for a surrogate with {len(FIELDS)} features; use >= 10.")
        if not 0 <= user_share < 1:
            raise ValueError(f"user_share must be in [0, 1), got {user_share}.")
        self.n_samples, self.kernel_width = n_samples, kernel_width
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
        """(users, items) of the neighbourhood, the explained pair first.

        Parameters
        ----------
        user, item : int
            The explained pair.

        Returns
        -------
        tuple of numpy.ndarray
            Aligned user and item ids, ``n_samples`` long at most.
        """
        rng = np.random.default_rng([self.random_state, int(user), int(item)])
        n_users_swapped = int(round((self.n_samples - 1) * self.user_share))
        items = self._sample(rng, self.item_popularity, item, self.n_samples - 1 - n_users_swapped)
        users = self._sample(rng, self.user_activity, user, n_users_swapped)
        all_users = np.concatenate([[user], np.full(len(items), user), users]).astype(np.int64)
        all_items = np.concatenate([[item], items, np.full(len(users), item)]).astype(np.int64)
        return all_users, all_items

    def _fit(self, user: int, item: int) -> dict[str, Any]:
        """The surrogate for one pair (a private detail): weights over ``FIELDS``, the pair's own slot values,
        which slots varied, R² and the number of model calls."""
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
        _, weights_list, r2, _ = base.explain_instance_with_data(
            data, y[:, None], distances, label=0, num_features=len(FIELDS), feature_selection="none",
            model_regressor=Ridge(alpha=self.alpha, fit_intercept=True))
        weights = np.zeros(len(FIELDS))
        for j, w in weights_list:
            weights[j] = w
        return {"weights": weights, "own": data[0], "varied": data.std(0) > 0, "r2": float(r2), "calls": len(users)}

    def explain(self, user: int, item: int) -> Explanation:
        """Fit the surrogate around (user, item) and return its weights on the slots the pair has.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` must be outside the user's history.

        Returns
        -------
        Explanation
            ``kind="features"``, with ``fit_r2``, ``model_calls`` and a display ``table`` (class docstring).
        """
        self.check_pair(user, item)
        fit = self._fit(user, item)
        labels = self.model.features_.slot_labels(int(user), int(item), self.titles)
        present = np.flatnonzero(fit["own"] != 0)
        table = pd.DataFrame({"feature": labels, "weight": fit["weights"], "varied": fit["varied"],
                              "movie has it": fit["own"] != 0}).iloc[2:]  # drop the "this user"/"this movie" indicators
        table = table.reindex(table["weight"].abs().sort_values(ascending=False).index).reset_index(drop=True)
        keys, values = [labels[j] for j in present], fit["weights"][present]
        # The sentence names the slots the movie has with the largest |weight| (never an absent genre).
        strongest = [j for j in np.argsort(-np.abs(values), kind="stable") if values[j] != 0][:2]
        target = f"*{markdown_escape(self.titles[item] if self.titles is not None else f'item {item}')}*"
        text = (f"Around {target}, the FM's prediction moves most with "
                + (" and ".join(f"{markdown_escape(keys[j])} ({values[j]:+.2f})" for j in strongest) or "no slot it has")
                + f" (surrogate R² {fit['r2']:.2f}).")
        return self._make(user, item, keys, values, fit_r2=fit["r2"], model_calls=fit["calls"], table=table,
                          text=text)
