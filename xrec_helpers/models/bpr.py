"""BPR matrix factorisation in torch (an ID-embedding model). Taught in 01_eda.

An ID-embedding model cannot re-score an edited history without retraining: its explanations
are checked by retraining (06_accent), not by ``score_histories``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import trange

from xrec_helpers.models._torch import generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import Recommender


class BPRMF(Recommender):
    """Bayesian personalised ranking MF: score(u, i) = p_u . q_i + b_i.

    Taught in 01_eda. Declares only the ``SCORE`` capability (an ID-embedding model).

    Parameters
    ----------
    factors : int
        Latent dimension.
    epochs : int
        Passes over the training interactions (one sampled negative each).
    lr : float
        Adam learning rate.
    reg : float
        L2 penalty on the embeddings used in each batch.
    batch_size : int
        Interactions per step.
    random_state : int or None
        Seed for initialisation and sampling.
    progress : bool
        Show a progress bar over epochs.
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present); the seed gives the same initial
        weights and random draws on every device.
    """

    def __init__(self, factors: int = 64, epochs: int = 30, lr: float = 0.01, reg: float = 1e-4,
                 batch_size: int = 4096, random_state: int | None = 0, progress: bool = False, device: str = "cpu"):
        self.factors, self.epochs, self.lr, self.reg = factors, epochs, lr, reg
        self.device = device
        self.batch_size, self.random_state, self.progress = batch_size, random_state, progress

    def fit(self, train: sp.csr_matrix) -> BPRMF:
        """Train on the observed (user, item) pairs of ``train`` with one sampled negative each.

        Parameters
        ----------
        train : scipy.sparse matrix
            User x item matrix; every stored entry is a positive. Copied, never modified.

        Returns
        -------
        BPRMF
            self, fitted.
        """
        train = self._set_train(train)
        dev = resolve_device(self.device)
        prepare_cpu_training()
        g = generator(self.random_state)
        n_users, n_items = train.shape
        # drawn on the CPU from the seed, then moved once (a no-op on the CPU)
        self.user_factors_ = torch.nn.Parameter((torch.randn(n_users, self.factors, generator=g) * 0.1).to(dev))
        self.item_factors_ = torch.nn.Parameter((torch.randn(n_items, self.factors, generator=g) * 0.1).to(dev))
        self.item_bias_ = torch.nn.Parameter(torch.zeros(n_items, device=dev))
        params = [self.user_factors_, self.item_factors_, self.item_bias_]
        optimiser = torch.optim.Adam(params, lr=self.lr)
        coo = train.tocoo()
        users = torch.as_tensor(coo.row, dtype=torch.long, device=dev)
        items = torch.as_tensor(coo.col, dtype=torch.long, device=dev)
        # A sampled negative may occasionally be a positive; with ~6% density that noise is harmless
        # and avoids a slow rejection loop.
        self.loss_history_ = []
        for _ in trange(self.epochs, desc="BPR-MF", disable=not self.progress):
            perm = torch.randperm(len(users), generator=g).to(dev)
            negatives = torch.randint(0, n_items, (len(users),), generator=g).to(dev)
            total = 0.0
            for start in range(0, len(users), self.batch_size):
                idx = perm[start:start + self.batch_size]
                u, i, j = users[idx], items[idx], negatives[idx]
                pu, qi, qj = self.user_factors_[u], self.item_factors_[i], self.item_factors_[j]
                x = (pu * (qi - qj)).sum(1) + self.item_bias_[i] - self.item_bias_[j]
                loss = -torch.nn.functional.logsigmoid(x).mean()
                loss = loss + self.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(idx)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            self.loss_history_.append(total / len(users))
        return self

    def _score(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            p = self.user_factors_[torch.as_tensor(users, device=self.user_factors_.device)]
            return to_numpy(p @ self.item_factors_.T + self.item_bias_)
