"""Gradient saliency: how fast the recommended item's score changes with each history item.

A cheap, classic baseline for differentiable recommenders (Simonyan et al. 2014, "Deep inside convolutional
networks: visualising image classification models and saliency maps"). The value of history item ``h`` for
the recommendation of ``y`` is the partial derivative ``d score(y) / d x_h`` at the user's 0/1 history
``x``; because ``x_h = 1`` on the history, it equals gradient x input there. One backward pass explains a
whole batch. It is a first-order, local reading: removing an item is not an infinitesimal change, so the
removal protocols can disagree with it (compare it with leave-one-out).

Adding this explainer needed this module and its test only: discovery (:mod:`.registry`) builds it for every
model that declares ``TORCH_SCORES``, and the conformance suite checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models.base import TORCH_SCORES


class GradientSaliencyExplainer(Explainer):
    """Ranks history items by the gradient of the recommended item's score with respect to each of them.

    Parameters
    ----------
    model : Recommender
        A fitted model with the ``TORCH_SCORES`` capability (``torch_scores(X)``, differentiable in the
        history), e.g. ``HistoryMF`` or ``MultVAE``.
    titles : sequence of str, optional
        Display titles by internal item id.
    batch_size : int
        Pairs per backward pass in :meth:`explain_many`.

    Raises
    ------
    TypeError
        When ``model`` does not declare ``TORCH_SCORES``.

    Examples
    --------
    >>> explainer = GradientSaliencyExplainer(model, titles=titles)  # doctest: +SKIP
    >>> explainer.explain(user, item).to_frame()  # doctest: +SKIP
    """

    name: ClassVar[str] = "Gradient saliency"
    kind: ClassVar[str] = "history"
    requires: ClassVar[frozenset[str]] = frozenset({TORCH_SCORES})

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, batch_size: int = 256):
        self.check_supports(model)
        model._fitted()
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1.")
        self.model = model
        super().__init__(model.train_, titles=titles)
        self.batch_size = int(batch_size)

    def _gradients(self, pairs: list[tuple[int, int]], histories: list[np.ndarray]) -> np.ndarray:
        """(len(pairs), n_items) gradients of each pair's item score w.r.t. its 0/1 history row."""
        x = np.zeros((len(pairs), self.n_items), dtype=np.float32)
        for row, hist in enumerate(histories):
            x[row, hist] = 1.0
        xt = torch.tensor(x, requires_grad=True)
        scores = self.model.torch_scores(xt)
        items = torch.as_tensor([item for _, item in pairs], dtype=torch.long)
        # rows are scored independently, so the gradient of the sum gives each row its own gradient
        scores[torch.arange(len(pairs)), items].sum().backward()
        return xt.grad.detach().cpu().numpy().astype(np.float64)

    def explain(self, user: int, item: int) -> Explanation:
        """Explain why ``item`` is recommended to ``user`` by the score's gradient over the history.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` must be outside the user's history.

        Returns
        -------
        Explanation
            ``kind="history"``; values are ``d score(item) / d x_h``, largest first.

        Raises
        ------
        IndexError, TypeError, ValueError
            For unknown or non-integer ids, an empty history, or an item already in the history.
        """
        return self.explain_many([(user, item)])[0]

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Explain many (user, item) pairs, ``batch_size`` per backward pass.

        Parameters
        ----------
        pairs : iterable of (int, int)
            Internal (user, item) ids.

        Returns
        -------
        list of Explanation
            In the order of ``pairs``.
        """
        pairs = list(pairs)
        histories = [self.check_pair(u, i) for u, i in pairs]
        out: list[Explanation] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            hists = histories[start:start + self.batch_size]
            grads = self._gradients(chunk, hists)
            out += [self._make(u, i, hist, grads[row, hist], model_calls=1)
                    for row, ((u, i), hist) in enumerate(zip(chunk, hists, strict=True))]
        return out
