"""LXR: an explainer network trained to produce counterfactual masks over the user's history.

Taught in 05_lxr. Gurevitch, Bogina, Barkan et al., "LXR: Learning to eXplain Recommendations"
(WWW 2024 / ACM TORS 2025). Written from the paper's description, not
from the authors' code.

The explainer e(x, y) reads the multi-hot history x and the explained item y and outputs a mask
m in (0, 1) for every catalogue item; only history positions are read. It is trained, with the
recommender frozen, on each training user's own top-1 recommendation to minimise

    lambda_pos * -log p(x * m)  +  lambda_neg * log p(x * (1 - m))  +  alpha * mean(m on history)

where p(z) is the recommender's score of y for the (soft) history z: keeping only the masked items
should keep y's score (sufficiency), removing them should destroy it (necessity), and the mask
should be small. After training one forward pass explains a user: no per-user optimisation.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import trange

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models._torch import generator, prepare_cpu_training
from xrec_helpers.models.base import TORCH_SCORES, HistoryRecommender

_EPS = 1e-9  # inside the logs: the original has none and produces -inf when a score underflows


class LXRNet(torch.nn.Module):
    """History encoder and item encoder -> tanh MLP -> one sigmoid mask value per catalogue item.

    The network of :class:`LXRExplainer` (05_lxr).

    Parameters
    ----------
    n_items : int
        Catalogue size.
    hidden : int
        Width of the encoders and the hidden layer.
    """

    def __init__(self, n_items: int, hidden: int):
        super().__init__()
        self.user_encoder = torch.nn.Linear(n_items, hidden)
        # An embedding lookup is the one-hot Linear of the paper without the (|I| x h) matmul.
        self.item_encoder = torch.nn.Embedding(n_items, hidden)
        self.item_bias = torch.nn.Parameter(torch.zeros(hidden))
        self.hidden_layer = torch.nn.Linear(2 * hidden, hidden)
        self.out = torch.nn.Linear(hidden, n_items)

    def logits(self, x: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid mask values, shape (batch, n_items).

        Parameters
        ----------
        x : torch.Tensor
            Histories, shape (batch, n_items).
        items : torch.Tensor
            The explained item of each row.

        Returns
        -------
        torch.Tensor
            The logits.
        """
        z = torch.cat([self.user_encoder(x), self.item_encoder(items) + self.item_bias], dim=1)
        return self.out(torch.tanh(self.hidden_layer(torch.tanh(z))))

    def forward(self, x: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mask values in (0, 1), shape (batch, n_items): the sigmoid of :meth:`logits`.

        Parameters
        ----------
        x : torch.Tensor
            Histories, shape (batch, n_items).
        items : torch.Tensor
            The explained item of each row.

        Returns
        -------
        torch.Tensor
            The mask values.
        """
        return torch.sigmoid(self.logits(x, items))


def _recommender_parameters(recommender: HistoryRecommender) -> list[torch.Tensor]:
    params: list[torch.Tensor] = []
    for value in vars(recommender).values():
        if isinstance(value, torch.nn.Module):
            params.extend(value.parameters())
        elif isinstance(value, torch.Tensor) and value.requires_grad:
            params.append(value)
    return params


@contextmanager
def frozen(recommender: HistoryRecommender) -> Iterator[None]:
    """Switch off gradients of the recommender's torch parameters (restored afterwards).

    Used while :class:`LXRExplainer` trains (05_lxr): gradients flow *through* the recommender into the explainer,
    never into it.

    Parameters
    ----------
    recommender : HistoryRecommender
        A recommender with torch parameters.

    Yields
    ------
    None
        Nothing; gradients are restored on exit.
    """
    params = _recommender_parameters(recommender)
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


class LXRExplainer(Explainer):
    """The LXR explainer: ``fit`` trains the mask network, ``explain`` is one forward pass.

    Taught in 05_lxr. Explanation values are the mask values (probabilities in (0, 1)) of the history items,
    ordered by the network's logits (the sigmoid saturates at 1.0 in float32 and would tie the top items);
    :meth:`masks` with ``logits=True`` gives the logits themselves.

    Parameters
    ----------
    model : HistoryRecommender
        A fitted history-conditioned model with a differentiable ``torch_scores`` (capability ``TORCH_SCORES``);
        histories are read from ``model.train_``.
    titles : sequence of str, optional
        Display titles by internal item id.
    hidden : int
        Width h of the encoders and the MLP.
    lambda_pos, lambda_neg, alpha : float
        Weights of the sufficiency, necessity and mask-size terms. ``lambda_neg=0`` gives LXR-pos,
        ``lambda_pos=0`` LXR-neg.
    lr, batch_size, epochs
        Adam training settings.
    random_state : int, optional
        Seed for initialisation and batch order.
    name : str, optional
        Display name of this instance (defaults to LXR, LXR-pos or LXR-neg from the lambdas).

    Raises
    ------
    TypeError
        When the model has no differentiable scores.
    """

    name: ClassVar[str] = "LXR"
    requires: ClassVar[frozenset[str]] = frozenset({TORCH_SCORES})

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, hidden: int = 64,
                 lambda_pos: float = 11.6, lambda_neg: float = 0.14, alpha: float = 1.0, lr: float = 4e-3,
                 batch_size: int = 32, epochs: int = 10, random_state: int | None = 0, name: str | None = None):
        self._attach(model, titles)
        if lambda_pos < 0 or lambda_neg < 0 or alpha < 0 or lambda_pos + lambda_neg == 0:
            raise ValueError("lambda_pos, lambda_neg and alpha must be >= 0, and at least one lambda positive.")
        if hidden < 1 or batch_size < 1 or epochs < 0:
            raise ValueError("hidden and batch_size must be >= 1 and epochs >= 0.")
        self.hidden, self.lambda_pos, self.lambda_neg, self.alpha = hidden, lambda_pos, lambda_neg, alpha
        self.lr, self.batch_size, self.epochs, self.random_state = lr, batch_size, epochs, random_state
        self.name = name or ("LXR-pos" if lambda_neg == 0 else "LXR-neg" if lambda_pos == 0 else "LXR")
        self.net_: LXRNet | None = None

    # --- training ------------------------------------------------------------------------------
    def loss_terms(self, x: torch.Tensor, items: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three loss terms for a batch (each a scalar tensor); ``loss`` is their weighted sum.

        The loss of 05_lxr's section 3.

        Parameters
        ----------
        x : torch.Tensor
            Histories, shape (batch, n_items).
        items : torch.Tensor
            The explained item of each row.
        mask : torch.Tensor
            Mask values, shape (batch, n_items).

        Returns
        -------
        dict[str, torch.Tensor]
            ``loss`` (the weighted sum), ``pred``, ``inv`` and ``mask`` (the three terms).
        """
        rows = torch.arange(len(items))
        p_keep = self.model.torch_scores(x * mask)[rows, items]
        p_remove = self.model.torch_scores(x * (1 - mask))[rows, items]
        pred = -torch.log(p_keep + _EPS).mean()
        inv = torch.log(p_remove + _EPS).mean()
        # Batch-pooled mean of the mask over history entries only (L1 sparsity, as LXR).
        size = (mask * x).sum() / x.sum().clamp(min=1.0)
        loss = self.lambda_pos * pred + self.lambda_neg * inv + self.alpha * size
        return {"loss": loss, "pred": pred, "inv": inv, "mask": size}

    def fit(self, users: Iterable[int] | None = None, items: Iterable[int] | None = None,
            validate: Callable[[LXRExplainer], float] | None = None, progress: bool = False) -> LXRExplainer:
        """Train on (user, item) pairs: by default every non-empty user and their top-1 item.

        Sets ``history_`` (per-epoch loss terms and validation scores), ``best_epoch_``, ``fit_seconds_``.

        Parameters
        ----------
        users, items : Iterable[int] | None
            The training pairs (items default to the recommender's top-1 per user).
        validate : Callable[[LXRExplainer], float] | None
            Called after every epoch with the explainer; returns a number where lower is
            better (e.g. POS@20 AUC on *validation* users). The best epoch's weights are kept.
        progress : bool
            Show a progress bar.
        """
        start_time = time.perf_counter()
        prepare_cpu_training()
        g = generator(self.random_state)
        if users is None:
            users = np.flatnonzero(np.diff(self.train.indptr) > 0)
        users = np.asarray(list(users), dtype=np.int64)
        if len(users) == 0:
            raise ValueError("No training users: pass users whose histories are non-empty.")
        for u in users[:1]:
            self.history(int(u))  # range / empty-history errors with a clear message
        if items is None:
            items = self.model.recommend(users, k=1)[:, 0]
        items = np.asarray(list(items), dtype=np.int64)
        if len(items) != len(users):
            raise ValueError(f"{len(users)} users but {len(items)} items: pass one item per user.")
        for u, i in zip(users, items):
            self.check_pair(int(u), int(i))
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        self.net_ = LXRNet(self.n_items, self.hidden)
        optimiser = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        X = torch.as_tensor((self.train[users] > 0).toarray(), dtype=torch.float32)
        Y = torch.as_tensor(items)
        self.history_: list[dict[str, float]] = []
        best, self.best_epoch_ = np.inf, 0
        best_state = copy.deepcopy(self.net_.state_dict())
        if validate is not None:
            best = float(validate(self))  # epoch 0: the untrained network is a legitimate candidate too
            self.history_.append({"epoch": 0, "validation": best})
        with frozen(self.model):
            for epoch in trange(1, self.epochs + 1, desc=self.name, disable=not progress):
                self.net_.train()
                perm = torch.randperm(len(users), generator=g)
                sums = {"loss": 0.0, "pred": 0.0, "inv": 0.0, "mask": 0.0}
                for s in range(0, len(perm), self.batch_size):
                    idx = perm[s:s + self.batch_size]
                    x, y = X[idx], Y[idx]
                    terms = self.loss_terms(x, y, self.net_(x, y))
                    optimiser.zero_grad()
                    terms["loss"].backward()
                    optimiser.step()
                    for k in sums:
                        sums[k] += float(terms[k].detach()) * len(idx) / len(users)
                row = {"epoch": epoch, **sums}
                if validate is not None:
                    row["validation"] = float(validate(self))
                    if row["validation"] < best:
                        best, self.best_epoch_ = row["validation"], epoch
                        best_state = copy.deepcopy(self.net_.state_dict())
                else:
                    self.best_epoch_ = epoch
                self.history_.append(row)
        if validate is not None:
            self.net_.load_state_dict(best_state)
        self.net_.eval()
        self.fit_seconds_ = time.perf_counter() - start_time
        return self

    # --- explaining ----------------------------------------------------------------------------
    def masks(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
              batch_rows: int = 1024, logits: bool = False) -> np.ndarray:
        """Mask values for every catalogue item, shape (len(users), n_items), in batched forward passes.

        Every LXR explanation of 05_lxr comes from it. Only the history positions are an explanation; the rest
        is ignored.
        ``logits=True`` returns the pre-sigmoid values (same order, no saturation at 1.0).

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned (user, explained item) pairs.
        batch_rows : int
            Rows per forward pass.
        logits : bool
            Return pre-sigmoid values.

        Returns
        -------
        np.ndarray
            Mask values of shape (len(users), n_items).
        """
        if self.net_ is None:
            raise RuntimeError("LXRExplainer is not trained yet: call .fit() first.")
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        self.net_.eval()
        with torch.no_grad():
            for s in range(0, len(users), batch_rows):
                x = torch.as_tensor((self.train[users[s:s + batch_rows]] > 0).toarray(), dtype=torch.float32)
                z = self.net_.logits(x, torch.as_tensor(items[s:s + batch_rows]))
                out[s:s + batch_rows] = (z if logits else torch.sigmoid(z)).numpy()
        return out

    def explain(self, user: int, item: int) -> Explanation:
        return self.explain_many([(user, item)])[0]

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        pairs = [(int(u), int(i)) for u, i in pairs]
        histories = [self.check_pair(u, i) for u, i in pairs]
        if not pairs:
            return []
        Z = self.masks([u for u, _ in pairs], [i for _, i in pairs], logits=True).astype(np.float64)
        out = []
        for b, ((u, i), h) in enumerate(zip(pairs, histories)):
            # Order by the logit: the sigmoid saturates at 1.0 in float32 and would tie the top items.
            h = h[np.argsort(-Z[b, h], kind="stable")]
            out.append(self._make(u, i, h, 1.0 / (1.0 + np.exp(-Z[b, h])), order="given"))
        return out
