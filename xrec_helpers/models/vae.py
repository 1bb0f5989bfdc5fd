"""Mult-VAE (Liang et al., 2018) on the HistoryRecommender contract.

Taught in 05_lxr (the second recommender LXR explains). The user is the multi-hot history, so
``score_histories`` re-scores any edited history exactly; scores are the decoder's softmax over the
catalogue (probabilities, tiny numbers: compare ranks, not raw scores, across models).
``torch_scores`` is the same map, differentiable, for mask-learning explainers.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import trange

from xrec_helpers.models._torch import generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import SCORE, SCORE_HISTORIES, TORCH_SCORES, HistoryRecommender


class _VAENet(torch.nn.Module):
    def __init__(self, n_items: int, hidden: int, latent: int, dropout: float):
        super().__init__()
        self.encoder = torch.nn.Linear(n_items, hidden)
        self.to_stats = torch.nn.Linear(hidden, 2 * latent)
        self.decoder_hidden = torch.nn.Linear(latent, hidden)
        self.decoder_out = torch.nn.Linear(hidden, n_items)
        self.dropout = torch.nn.Dropout(dropout)
        self.latent = latent

    def forward(self, x: torch.Tensor, noise: torch.Generator | None = None):
        # L2-normalised input, as in Mult-VAE: long histories do not dominate the encoder.
        h = torch.nn.functional.normalize(x, dim=1)
        h = self.dropout(h)
        h = torch.tanh(self.encoder(h))
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        z = mu
        if self.training:
            eps = torch.randn(mu.shape, generator=noise).to(mu.device)  # CPU draw: same noise on every device
            z = mu + eps * torch.exp(0.5 * logvar)
        logits = self.decoder_out(torch.tanh(self.decoder_hidden(z)))
        return logits, mu, logvar


class MultVAE(HistoryRecommender):
    """Variational autoencoder with a multinomial likelihood over the catalogue.

    Taught in 05_lxr.

    Parameters
    ----------
    hidden, latent : int
        Encoder/decoder widths (|I| -> hidden -> latent -> hidden -> |I|).
    dropout : float
        Input dropout during training (denoising, 0.5 as in the paper).
    epochs, lr, batch_size, weight_decay
        Adam training settings.
    anneal_cap, anneal_steps
        KL weight grows linearly to ``anneal_cap`` over ``anneal_steps`` updates.
    random_state : int | None
        Seed for initialisation, dropout and the reparameterisation noise.
    progress : bool
        Show a progress bar while fitting.
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present); the seed gives the same
        initial weights, minibatch order and noise on every device (dropout masks on a GPU come
        from its own seeded generator, so a GPU fit is reproducible but not bit-equal to a CPU fit).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, SCORE_HISTORIES, TORCH_SCORES})

    def __init__(self, hidden: int = 256, latent: int = 64, dropout: float = 0.5, epochs: int = 50,
                 lr: float = 1e-3, batch_size: int = 64, weight_decay: float = 0.0, anneal_cap: float = 0.2,
                 anneal_steps: int = 2000, random_state: int | None = 0, progress: bool = False,
                 device: str = "cpu"):
        self.device = device
        self.hidden, self.latent, self.dropout, self.epochs = hidden, latent, dropout, epochs
        self.lr, self.batch_size, self.weight_decay = lr, batch_size, weight_decay
        self.anneal_cap, self.anneal_steps = anneal_cap, anneal_steps
        self.random_state, self.progress = random_state, progress

    def fit(self, train: sp.csr_matrix) -> MultVAE:
        """Train on the non-empty rows of ``train`` (empty rows, e.g. held-out users, are skipped).

        Parameters
        ----------
        train : sp.csr_matrix
            User x item 0/1 matrix.

        Returns
        -------
        MultVAE
            The fitted model.
        """
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs ({self.epochs}) and batch_size ({self.batch_size}) must be >= 1.")
        train = self._set_train(train)
        dev = resolve_device(self.device)
        prepare_cpu_training()
        g = generator(self.random_state)
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))  # initialisation + dropout
        self.net_ = _VAENet(train.shape[1], self.hidden, self.latent, self.dropout).to(dev)
        optimiser = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        dense = torch.as_tensor((train > 0).toarray(), dtype=torch.float32, device=dev)  # moved once
        active = torch.nonzero(dense.sum(1) > 0).flatten()
        self.loss_history_, step = [], 0
        self.net_.train()
        for _ in trange(self.epochs, desc="MultVAE", disable=not self.progress):
            perm = active[torch.randperm(len(active), generator=g).to(dev)]
            total = 0.0
            for start in range(0, len(perm), self.batch_size):
                x = dense[perm[start:start + self.batch_size]]
                logits, mu, logvar = self.net_(x, noise=g)
                nll = -(torch.log_softmax(logits, dim=1) * x).sum(1).mean()
                kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
                beta = min(self.anneal_cap, step / max(self.anneal_steps, 1))
                loss = nll + beta * kl
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item()
                step += 1
            self.loss_history_.append(total)
        self.net_.eval()
        for p in self.net_.parameters():
            p.requires_grad_(False)  # a fitted recommender is frozen; explainers differentiate through it
        return self

    def torch_scores(self, histories: torch.Tensor) -> torch.Tensor:
        """Differentiable softmax scores of a (batch, n_items) float tensor of (soft) histories.

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
        logits, _, _ = self.net_(histories.to(self.net_.encoder.weight.device))
        return torch.softmax(logits, dim=1).to(histories.device)

    def score_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        x = torch.as_tensor(self.check_histories(histories), device=self.net_.encoder.weight.device)
        with torch.no_grad():
            return to_numpy(self.torch_scores(x))
