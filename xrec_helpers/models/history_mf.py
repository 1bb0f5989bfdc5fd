"""History-conditioned MF: the user vector is a learned function of the multi-hot history.

Taught in 01_eda and 05_lxr (it is LXR's "MF"). Because the user is built from the history,
``score_histories`` re-scores any edited history exactly, which is what the counterfactual
perturbation metrics need. Trained as a denoising model: each step hides a random part of every
user's history and learns to score the hidden items above the items the user never had, so the
positive being predicted is never in the input (a leak in the LXR authors' code, where the target could sit in the input).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import trange

from xrec_helpers.models._torch import generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import SCORE, SCORE_HISTORIES, TORCH_SCORES, HistoryRecommender


class HistoryMF(HistoryRecommender):
    """score(x)_i = sigmoid(u(x) . q_i + b_i) with u(x) = (x P) / sqrt(|x|) + c.

    Parameters
    ----------
    factors : int
        Latent dimension.
    epochs : int
        Passes over the users.
    hide : float
        Fraction of each history hidden (and predicted) per step.
    lr, weight_decay : float
        Adam settings.
    batch_size : int
        Users per step.
    random_state : int | None
        Seed for initialisation and the hidden-item draws.
    progress : bool
        Show a progress bar while fitting.
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present); the seed gives the same
        initial weights and random draws on every device.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, SCORE_HISTORIES, TORCH_SCORES})

    def __init__(self, factors: int = 64, epochs: int = 40, hide: float = 0.25, lr: float = 0.01,
                 weight_decay: float = 1e-5, batch_size: int = 128, random_state: int | None = 0,
                 progress: bool = False, device: str = "cpu"):
        self.factors, self.epochs, self.hide, self.lr = factors, epochs, hide, lr
        self.device = device
        self.weight_decay, self.batch_size = weight_decay, batch_size
        self.random_state, self.progress = random_state, progress

    def _build(self, n_items: int, g: torch.Generator, dev: torch.device) -> None:
        # drawn on the CPU from the seed, then moved once (a no-op on the CPU)
        self.in_factors_ = torch.nn.Parameter((torch.randn(n_items, self.factors, generator=g) * 0.05).to(dev))
        self.out_factors_ = torch.nn.Parameter((torch.randn(n_items, self.factors, generator=g) * 0.05).to(dev))
        self.user_offset_ = torch.nn.Parameter(torch.zeros(self.factors, device=dev))
        self.item_bias_ = torch.nn.Parameter(torch.zeros(n_items, device=dev))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.sum(1, keepdim=True).clamp(min=1.0).sqrt()
        user = x @ self.in_factors_ / norm + self.user_offset_
        return user @ self.out_factors_.T + self.item_bias_

    def fit(self, train: sp.csr_matrix) -> HistoryMF:
        train = self._set_train(train)
        dev = resolve_device(self.device)
        prepare_cpu_training()
        g = generator(self.random_state)
        self._build(train.shape[1], g, dev)
        params = [self.in_factors_, self.out_factors_, self.user_offset_, self.item_bias_]
        optimiser = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        dense = torch.as_tensor((train > 0).toarray(), dtype=torch.float32, device=dev)  # moved once
        active = torch.nonzero(dense.sum(1) > 0).flatten()
        self.loss_history_ = []
        for _ in trange(self.epochs, desc="HistoryMF", disable=not self.progress):
            perm = active[torch.randperm(len(active), generator=g).to(dev)]
            total = 0.0
            for start in range(0, len(perm), self.batch_size):
                x = dense[perm[start:start + self.batch_size]]
                hidden = (torch.rand(x.shape, generator=g).to(dev) < self.hide) & (x > 0)
                visible = x * (~hidden)
                logits = self._logits(visible)
                target = hidden.float()
                # Visible items are excluded from the loss: predicting them would teach copying.
                weight = 1.0 - visible
                n_pos = target.sum().clamp(min=1.0)
                n_neg = (weight.sum() - n_pos).clamp(min=1.0)
                pos_weight = n_neg / n_pos
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, target, weight=weight * (1 + (pos_weight - 1) * target), reduction="sum"
                ) / (2 * n_neg)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item()
            self.loss_history_.append(total)
        return self

    def torch_scores(self, histories: torch.Tensor) -> torch.Tensor:
        """Differentiable scores of a (batch, n_items) float tensor of (soft) histories.

        Explainers that learn masks over the history (05_lxr) back-propagate through this. The scores
        come back on the device of ``histories`` (the model's own device is used in between).

        Parameters
        ----------
        histories : torch.Tensor
            Float tensor of shape (batch, n_items); entries in [0, 1] (soft masks allowed).

        Returns
        -------
        torch.Tensor
            Scores of shape (batch, n_items), differentiable in ``histories``.
        """
        self._fitted()
        dev = self.in_factors_.device
        return torch.sigmoid(self._logits(histories.to(dev))).to(histories.device)

    def score_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        x = torch.as_tensor(self.check_histories(histories), device=self.in_factors_.device)
        with torch.no_grad():
            return to_numpy(torch.sigmoid(self._logits(x)))
