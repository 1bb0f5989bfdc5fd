"""NCF (NeuMF) regression on explicit ratings, as ACCENT trains it, plus many retrains at once.

Taught in 06_accent. Architecture (He et al. 2017, settings of the ACCENT code): GMF and MLP
embedding tables of size 16 for users and items; the MLP branch maps [p_u; q_i] through dense
16 + ReLU and dense 8 + ReLU; a linear output over concat(MLP 8, GMF 16) predicts the *rating*.
Loss: mean squared error on the batch plus ``weight_decay/2 * ||W||^2`` on the four embedding
tables and the three weight matrices (added once per step on the whole tables; biases free).
Adam with a constant learning rate.

Every parameter is stored with a leading "model" axis, so the same code trains one model
(``NCF.fit``) or ``M`` warm-started copies with their own removed rows and their own minibatch
order (:class:`NCFStack`): the verification protocol stacks all its retrains into one batched
model instead of looping over them. Stacks are independent jobs, so ``retrain_scores`` hands them
to an engine (:func:`xrec_helpers.engines.map_jobs`: serial, local processes, a Dask cluster), and
each stack trains on the model's ``device`` (the CPU, or a GPU with ``device="cuda"``/``"auto"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from xrec_helpers._ids import check_ids
from xrec_helpers.engines import Engine, map_jobs
from xrec_helpers.models._retrain import check_retrain_request, stack_targets
from xrec_helpers.models._torch import CachedScores, generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import INFLUENCE, RETRAIN, SCORE, Recommender

_DECAYED = ("P_gmf", "Q_gmf", "P_mlp", "Q_mlp", "W1", "W2", "Wo")
_ORDER = ("P_gmf", "Q_gmf", "P_mlp", "Q_mlp", "W1", "b1", "W2", "b2", "Wo", "bo")


def ncf_forward(p_gmf: torch.Tensor, q_gmf: torch.Tensor, p_mlp: torch.Tensor, q_mlp: torch.Tensor,
                W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor,
                Wo: torch.Tensor, bo: torch.Tensor) -> torch.Tensor:
    """Predicted rating from gathered embeddings, batched over models.

    Embeddings have shape (M, B, d); weights (M, ...). Returns (M, B). Also used by FIA, which
    differentiates it with respect to one user's (or item's) embeddings only (06_accent).

    Parameters
    ----------
    p_gmf, q_gmf : torch.Tensor
        Gathered GMF user and item embeddings, (M, B, d).
    p_mlp, q_mlp : torch.Tensor
        Gathered MLP user and item embeddings, (M, B, d).
    W1, b1, W2, b2 : torch.Tensor
        The two MLP layers, stacked over models.
    Wo, bo : torch.Tensor
        The output layer, stacked over models.

    Returns
    -------
    torch.Tensor
        Predicted ratings of shape (M, B).
    """
    h2 = W2.shape[-1]
    h = ncf_hidden(p_mlp, q_mlp, W1, b1, W2, b2)[1]
    out = torch.bmm(h, Wo[:, :h2].unsqueeze(-1)) + torch.bmm(p_gmf * q_gmf, Wo[:, h2:].unsqueeze(-1))
    return out.squeeze(-1) + bo.unsqueeze(1)


def ncf_hidden(p_mlp: torch.Tensor, q_mlp: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor,
               W2: torch.Tensor, b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP branch's two hidden layers after their ReLUs, batched over models.

    :func:`ncf_forward` feeds the second to the output layer; :meth:`NCF.mlp_units_on` reads which
    units are on (06_accent).

    Parameters
    ----------
    p_mlp, q_mlp : torch.Tensor
        Gathered MLP user and item embeddings, (M, B, d).
    W1, b1, W2, b2 : torch.Tensor
        The two MLP layers, stacked over models.

    Returns
    -------
    h1, h2 : torch.Tensor
        Activations of shape (M, B, hidden[0]) and (M, B, hidden[1]).
    """
    # W1 split by rows instead of concatenating inputs: the same maths, and no (M, B, 2d) copies
    # in the forward and backward passes of every training step.
    d = p_mlp.shape[-1]
    h1 = torch.baddbmm(b1.unsqueeze(1), p_mlp, W1[:, :d]).baddbmm_(q_mlp, W1[:, d:]).relu_()
    return h1, torch.relu(torch.baddbmm(b2.unsqueeze(1), h1, W2))


class NCFStack:
    """``M`` NCF models stacked along a leading axis, trained together with per-model row weights.

    Each model has its own copy of every parameter and of Adam's moments (Adam is elementwise,
    so one optimiser over stacked tensors is M independent optimisers). Behind 06_accent's retrains.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        Stacked parameters, each with a leading model axis M.
    adam_state : dict[str, tuple] | None
        Per parameter, the (step, first moment, second moment) to resume from; None starts fresh.
    lr : float
        Adam learning rate.
    weight_decay : float
        L2 coefficient.
    batch_size : int
        Rows per step.
    """

    def __init__(self, params: dict[str, torch.Tensor], adam_state: dict[str, tuple] | None,
                 lr: float, weight_decay: float, batch_size: int):
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.device = self.params["bo"].device  # every tensor of a stack lives where its parameters do
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.opt = torch.optim.Adam([self.params[k] for k in _ORDER], lr=lr, fused=True)
        if adam_state is not None:  # warm start restores Adam's moments too, as the original retrains do
            for k in _ORDER:
                step, m, v = adam_state[k]
                M = self.params[k].shape[0]
                self.opt.state[self.params[k]] = {
                    # fused Adam keeps its step count on the parameters' device
                    "step": torch.tensor(float(step), device=self.device),
                    "exp_avg": m.to(self.device).expand(M, *m.shape[1:]).clone(),
                    "exp_avg_sq": v.to(self.device).expand(M, *v.shape[1:]).clone(),
                }

    @property
    def n_models(self) -> int:
        """Number of stacked models M."""
        return self.params["bo"].shape[0]

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings, users/items of shape (M, B) -> (M, B).

        Parameters
        ----------
        users, items : torch.Tensor
            Internal ids of shape (M, B): one row of pairs per stacked model.

        Returns
        -------
        torch.Tensor
            Predicted ratings of shape (M, B).
        """
        p = self.params
        M, B = users.shape

        def rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            # gather from the flattened (M * n, d) table: index_select (and index_add_ backward) avoids the
            # broadcast index tensor that advanced indexing with a model index would build and scatter into.
            n, d = table.shape[1:]
            flat = (idx + torch.arange(M, device=idx.device).unsqueeze(1) * n).reshape(-1)
            return table.reshape(M * n, d).index_select(0, flat).reshape(M, B, d)

        return ncf_forward(rows(p["P_gmf"], users), rows(p["Q_gmf"], items), rows(p["P_mlp"], users),
                           rows(p["Q_mlp"], items), p["W1"], p["b1"], p["W2"], p["b2"], p["Wo"], p["bo"])

    def train_epochs(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, keep: torch.Tensor,
                     seeds: Sequence[int], epochs: int) -> list[float]:
        """Run ``epochs`` passes; returns the mean training MSE of each epoch (over kept rows, all models).

        ``keep`` (M, n) is 1 for rows a model trains on and 0 for removed rows; a removed row keeps
        its slot in the minibatch order but carries no weight, so the batch mean is over kept rows.
        Models with the same seed share the minibatch order (seeds only change the order, as in the
        original retrains). The row tensors must be on the stack's device; the minibatch orders are
        drawn on the CPU (the same order on every device) and moved there.

        Parameters
        ----------
        users, items, ratings : torch.Tensor
            The training rows, shape (n,).
        keep : torch.Tensor
            (M, n) 0/1 row weights.
        seeds : Sequence[int]
            One minibatch-order seed per model.
        epochs : int
            Passes over the rows.

        Returns
        -------
        list[float]
            Mean training MSE of each epoch.
        """
        M, n = keep.shape
        if len(seeds) != M:
            raise ValueError(f"Need one seed per model: {len(seeds)} seeds for {M} models.")
        uniq, which = np.unique(np.asarray(seeds), return_inverse=True)
        gens = [generator(int(s)) for s in uniq]
        which = torch.as_tensor(which)
        m_idx = torch.arange(M, device=keep.device).unsqueeze(1)
        decayed = [self.params[k] for k in _DECAYED]
        history = []
        for _ in range(epochs):
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens])[which].to(keep.device)  # (M, n)
            total, weight = 0.0, 0.0
            for start in range(0, n, self.batch_size):
                idx = perms[:, start:start + self.batch_size]
                w = keep[m_idx, idx]
                err = self.predict(users[idx], items[idx]) - ratings[idx]
                sq = (w * err * err).sum(1)
                count = w.sum(1).clamp_min(1.0)
                loss = (sq / count).sum()  # sum over models: independent grads
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                with torch.no_grad():  # + d/dθ of weight_decay/2 ||θ||², added in place (cheaper than autograd)
                    for t in decayed:
                        t.grad.add_(t, alpha=self.weight_decay)
                self.opt.step()
                total += float(sq.detach().sum())
                weight += float(w.sum())
            history.append(total / max(weight, 1.0))
        return history

    @torch.no_grad()
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> np.ndarray:
        """Scores of (M, B) user/item pairs, one row per model.

        Parameters
        ----------
        users, items : torch.Tensor
            Internal ids of shape (M, B): one row of pairs per stacked model.

        Returns
        -------
        np.ndarray
            Scores of shape (M, B).
        """
        return to_numpy(self.predict(users, items))


class NCF(CachedScores, Recommender):
    """NeuMF regression on explicit ratings (the model ACCENT explains). Taught in 06_accent.

    ``fit`` expects a CSR matrix holding explicit ratings (``Dataset.csr(train, binary=False)``).

    Parameters
    ----------
    factors : int
        Embedding size of each of the four tables (16 in the paper).
    hidden : tuple[int, int]
        MLP layer sizes after the concatenated MLP embeddings (16, 8).
    weight_decay : float
        L2 coefficient lambda (1e-3).
    lr : float
        Adam learning rate (1e-3 in the paper; the workshop uses a larger one, fewer epochs).
    batch_size : int
        Rows per step (1,246 = 1/49 of the paper's 61,054 ratings).
    epochs : int
        Training epochs (the paper: 120,000 steps ~ 2,449 epochs).
    random_state : int | None
        Seed of initialisation and minibatch order.
    device : str
        Where training, scoring and the stacked retrains run: ``"cpu"`` (default), ``"cuda"``,
        or ``"auto"`` (a GPU when present: what the paper-size settings use). A seed gives the same
        initial weights and minibatch order on every device.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, INFLUENCE, RETRAIN})

    def __init__(self, factors: int = 16, hidden: tuple[int, int] = (16, 8), weight_decay: float = 1e-3,
                 lr: float = 1e-3, batch_size: int = 1246, epochs: int = 100, random_state: int | None = 0,
                 device: str = "cpu"):
        self.factors, self.hidden, self.weight_decay, self.lr = factors, hidden, weight_decay, lr
        self.batch_size, self.epochs, self.random_state = batch_size, epochs, random_state
        self.device = device

    # --- training ------------------------------------------------------------------------------
    def _init_params(self, n_users: int, n_items: int) -> dict[str, torch.Tensor]:
        g = generator(self.random_state)
        d, (h1, h2) = self.factors, self.hidden

        def trunc(*shape: int, fan_in: int) -> torch.Tensor:
            t = torch.empty(1, *shape)
            std = 1.0 / np.sqrt(fan_in)
            return torch.nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std, generator=g)

        return {
            "P_gmf": trunc(n_users, d, fan_in=d), "Q_gmf": trunc(n_items, d, fan_in=d),
            "P_mlp": trunc(n_users, d, fan_in=d), "Q_mlp": trunc(n_items, d, fan_in=d),
            "W1": trunc(2 * d, h1, fan_in=2 * d), "b1": torch.zeros(1, h1),
            "W2": trunc(h1, h2, fan_in=h1), "b2": torch.zeros(1, h2),
            "Wo": trunc(h2 + d, fan_in=h2 + d), "bo": torch.zeros(1),
        }

    def _rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        coo = self.train_.tocoo()
        dev = self._stack.device
        return (torch.as_tensor(coo.row, dtype=torch.long, device=dev),
                torch.as_tensor(coo.col, dtype=torch.long, device=dev),
                torch.as_tensor(coo.data, dtype=torch.float32, device=dev))

    def fit(self, train: sp.csr_matrix) -> NCF:
        """Train from scratch on explicit ratings; returns self.

        Parameters
        ----------
        train : sp.csr_matrix
            User x item matrix of explicit ratings.

        Returns
        -------
        NCF
            The fitted model.
        """
        train = self._set_train(train)
        if train.data.min() < 1 or train.data.max() > 5 or np.all(train.data == 1):
            raise ValueError("NCF regresses explicit ratings 1-5: build the matrix with "
                             "Dataset.csr(train, binary=False), not a binary one.")
        dev = resolve_device(self.device)
        prepare_cpu_training()
        # initialised on the CPU from the seed, then moved once: the same start on every device
        params = {k: v.to(dev) for k, v in self._init_params(*train.shape).items()}
        self._stack = NCFStack(params, None, self.lr, self.weight_decay, self.batch_size)
        self.loss_history_ = []
        self.continue_training(self.epochs)
        return self

    def continue_training(self, epochs: int, lr: float | None = None) -> NCF:
        """More epochs on the same data (e.g. a lower-learning-rate finish); Adam state is kept.

        Parameters
        ----------
        epochs : int
            Extra epochs.
        lr : float | None
            Learning rate of these epochs (default: the current one).

        Returns
        -------
        NCF
            The model itself.
        """
        self._fitted()
        if lr is not None:
            for group in self._stack.opt.param_groups:
                group["lr"] = lr
            self._stack.lr = lr
        users, items, ratings = self._rows()
        keep = torch.ones(1, len(users), device=users.device)
        seed = 0 if self.random_state is None else int(self.random_state)
        self._parameters_moved()
        self.loss_history_ += self._stack.train_epochs(users, items, ratings, keep,
                                                       [seed + len(self.loss_history_)], epochs)
        return self

    # --- scoring -------------------------------------------------------------------------------
    @property
    def params_(self) -> dict[str, torch.Tensor]:
        """The trained parameters of the single model (leading model axis of size 1), on the CPU.

        Influence functions (06_accent) work on these; for a CPU model they are the model's own tensors.
        """
        self._fitted()
        return {k: v.detach().cpu() for k, v in self._stack.params.items()}

    # --- influence functions (capability INFLUENCE) ------------------------------------------
    def user_parameters(self, user: int) -> torch.Tensor:
        """The user's own trainable parameters, float64: the GMF and MLP embeddings concatenated (2 x factors).

        Part of the ``INFLUENCE`` capability: influence functions (06_accent) move only these (and the
        target item's, which do not interact with the user's own ratings).

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        torch.Tensor
            Shape ``(2 * factors,)``.
        """
        user = int(self.check_users(user)[0])
        p = self.params_
        return torch.cat([p["P_gmf"][0, user], p["P_mlp"][0, user]]).double()

    def user_score_function(self, user: int | None = None,
                            without: Sequence[int] = ()) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``f(theta, items)``: predicted ratings of ``items`` for a user whose own parameters are ``theta``.

        Part of the ``INFLUENCE`` capability. Every other parameter is frozen (a float64 copy taken now),
        so ``f`` is differentiable in ``theta`` only: FIA takes its Jacobian and Hessian (06_accent).

        Parameters
        ----------
        user : int | None
            Unused: NCF's user enters only through ``theta`` (the argument keeps one interface with RCF).
        without : sequence of int
            Unused: NCF's ratings are not inputs of its scores, so removing them changes only ``theta``
            (the argument keeps one interface with RCF, whose removed items leave its inputs).

        Returns
        -------
        callable
            ``f(theta: (2 * factors,) float64 tensor, items: int tensor (B,)) -> (B,) float64 tensor``.
        """
        p = {key: v[0].double() for key, v in self.params_.items() if not key.startswith("P_")}  # theta replaces P
        d = self.factors

        def f(theta: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            B = len(items)
            out = ncf_forward(theta[:d].expand(1, B, d), p["Q_gmf"][items].unsqueeze(0), theta[d:].expand(1, B, d),
                              p["Q_mlp"][items].unsqueeze(0), p["W1"].unsqueeze(0), p["b1"].unsqueeze(0),
                              p["W2"].unsqueeze(0), p["b2"].unsqueeze(0), p["Wo"].unsqueeze(0), p["bo"].unsqueeze(0))
            return out[0]

        return f

    def mlp_units_on(self, user: int, items: Sequence[int]) -> np.ndarray:
        """Which ReLU units of the MLP branch each item switches on for this user.

        Through the MLP, a score's gradient with respect to the user's parameters depends on the item
        only via these on/off patterns (and the GMF branch, :attr:`gmf_output_weights`): 06_accent uses
        them to show why several candidates' gradients coincide.

        Parameters
        ----------
        user : int
            Internal user id.
        items : sequence of int
            Internal item ids.

        Returns
        -------
        numpy.ndarray
            Boolean, shape ``(len(items), hidden[0] + hidden[1])``: the first layer's units, then the second's.

        Raises
        ------
        IndexError, TypeError
            For unknown or non-integer user or item ids (internal ids expected).
        """
        user = int(self.check_users(user)[0])
        items = torch.as_tensor(check_ids(list(items), self.n_items, "item"))
        p = self.params_
        with torch.no_grad():
            h1, h2 = ncf_hidden(p["P_mlp"][:, [user]].expand(1, len(items), -1), p["Q_mlp"][:, items],
                                p["W1"], p["b1"], p["W2"], p["b2"])
        return torch.cat([h1[0] > 0, h2[0] > 0], 1).numpy()

    @property
    def gmf_output_weights(self) -> np.ndarray:
        """The output layer's weights on the GMF branch, shape ``(factors,)`` (06_accent).

        Near zero when training has switched the GMF branch off, so that only the MLP shapes the scores.
        """
        return self.params_["Wo"][0, self.hidden[1]:].numpy().copy()

    #: FIA's default damping on NCF (as in FIA), added on top of the weight decay.
    influence_damping: ClassVar[float] = 1e-6

    @property
    def influence_l2(self) -> float:
        """The L2 coefficient on the user's parameters in NCF's objective (``weight_decay``; ``INFLUENCE``)."""
        return float(self.weight_decay)

    def user_training_losses(self, user: int,
                             without: Sequence[int] = ()) -> tuple[Callable[[torch.Tensor], torch.Tensor], np.ndarray]:
        """The squared errors of the user's training ratings as a function of ``theta``, and each rating's item.

        Part of the ``INFLUENCE`` capability (06_accent): removing an item drops its rating. No L2 term (FIA
        adds ``influence_l2`` to the Hessian).

        Parameters
        ----------
        user : int
            Internal user id.
        without : sequence of int
            Rated items whose ratings are left out (the user-refit verification of 06_accent; default none).

        Returns
        -------
        losses : callable
            ``losses(theta) -> (n_u,)`` float64, over the kept ratings.
        removes : numpy.ndarray
            The rated item of each kept row, in CSR order.

        Raises
        ------
        ValueError
            When an item of ``without`` is not one of the user's training ratings.
        """
        hist, ratings = self._user_ratings(user, without)
        f, J = self.user_score_function(), torch.as_tensor(hist)
        return (lambda theta: (f(theta, J) - ratings) ** 2), hist

    def _user_ratings(self, user: int, without: Sequence[int]) -> tuple[np.ndarray, torch.Tensor]:
        """The user's kept training items (CSR order) and their ratings (float64), ``without`` left out."""
        user = int(self.check_users(user)[0])
        train = self.train_
        start, end = train.indptr[user], train.indptr[user + 1]
        hist = train.indices[start:end].astype(np.int64)
        ratings = torch.as_tensor(train.data[start:end], dtype=torch.float64)
        if len(without):
            without = check_ids(list(without), self.n_items, "item")
            missing = np.setdiff1d(without, hist)
            if len(missing):
                raise ValueError(f"Items {missing[:5].tolist()} are not in user {user}'s training ratings: only "
                                 "rated items can be removed.")
            kept = ~np.isin(hist, without)
            hist, ratings = hist[kept], ratings[torch.as_tensor(kept)]
        return hist, ratings

    def user_score_jacobian(self, user: int | None = None,
                            without: Sequence[int] = ()) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``jac(theta, items)``: the gradients of :meth:`user_score_function` in ``theta``, analytic (no autograd).

        Optional part of the ``INFLUENCE`` capability (06_accent): FIA (``FastInfluence``) and the user refit
        (``metrics.refit``) use it instead of :mod:`torch.func` when a model has it. With theta = [p_gmf; p_mlp]::

            d f / d p_gmf = wo_gmf * q_gmf
            d f / d p_mlp = W1_u (m1 * (W2 (m2 * wo_mlp)))

        where ``W1_u`` are the rows of the first MLP layer fed by the user's embedding and ``m1``, ``m2`` the
        ReLU masks (unit on), read from the same forward pass (:func:`ncf_hidden`) the scores come from, so the
        masks are the ones autograd would differentiate through.

        Parameters
        ----------
        user : int | None
            Unused, as in :meth:`user_score_function`.
        without : sequence of int
            Unused, as in :meth:`user_score_function`.

        Returns
        -------
        callable
            ``jac(theta: (2 * factors,) float64 tensor, items: int tensor (B,)) -> (B, 2 * factors) float64``.
        """
        p = {key: v[0].double() for key, v in self.params_.items() if not key.startswith("P_")}  # theta replaces P
        d, h2 = self.factors, self.hidden[1]
        wo_mlp, wo_gmf, W1_u = p["Wo"][:h2], p["Wo"][h2:], p["W1"][:d]

        def jac(theta: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            B = len(items)
            with torch.no_grad():
                a1, a2 = ncf_hidden(theta[d:].expand(1, B, d), p["Q_mlp"][items].unsqueeze(0), p["W1"].unsqueeze(0),
                                    p["b1"].unsqueeze(0), p["W2"].unsqueeze(0), p["b2"].unsqueeze(0))
                v2 = (a2[0] > 0) * wo_mlp  # (B, h2): output weights through the second ReLU
                v1 = (a1[0] > 0) * (v2 @ p["W2"].T)  # (B, h1): back through W2 and the first ReLU
                return torch.cat([wo_gmf * p["Q_gmf"][items], v1 @ W1_u.T], 1)

        return jac

    def user_training_loss_derivatives(
            self, user: int, without: Sequence[int] = ()
    ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Per-rating gradients and the summed Hessian of :meth:`user_training_losses`, analytic (no autograd).

        Optional part of the ``INFLUENCE`` capability (06_accent): with ``J`` the per-rating score gradients
        (:meth:`user_score_jacobian`) and ``e = f - r`` the errors, the loss ``sum (f - r)^2`` has per-rating
        gradients ``2 e J`` and Hessian ``2 J^T J``.

        Why ``2 J^T J`` is the exact Hessian, not the Gauss-Newton approximation: the full Hessian is
        ``2 J^T J + 2 sum e * d2f``, and ``f`` is linear in ``p_gmf`` (no product of two user parameters) and
        piecewise linear in ``p_mlp`` (two ReLU layers, then a linear output), so ``d2f = 0`` away from the ReLU
        kinks. At a kink autograd differentiates ReLU as a step with zero derivative, so the ``torch.func`` Hessian
        sees ``d2f = 0`` there too: the two agree everywhere (up to float64 round-off).

        Parameters
        ----------
        user : int
            Internal user id.
        without : sequence of int
            Rated items whose ratings are left out, as in :meth:`user_training_losses`.

        Returns
        -------
        callable
            ``derivatives(theta) -> (grads, hessian)``: ``grads`` of shape ``(n_u, 2 * factors)`` (one row per kept
            rating, in the order of :meth:`user_training_losses`) and ``hessian`` of shape
            ``(2 * factors, 2 * factors)``, of the *sum* of the losses; float64, no L2 term.

        Raises
        ------
        ValueError
            When an item of ``without`` is not one of the user's training ratings.
        """
        hist, ratings = self._user_ratings(user, without)
        f, jac, items = self.user_score_function(), self.user_score_jacobian(), torch.as_tensor(hist)

        def derivatives(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                J = jac(theta, items)
                err = f(theta, items) - ratings
                return 2 * err.unsqueeze(1) * J, 2 * (J.T @ J)

        return derivatives

    def influence_counts(self, user: int, targets: np.ndarray, normalization: str = "local") -> np.ndarray:
        """How many ratings FIA's objective averages over, per target (``INFLUENCE``; 06_accent).

        ``"local"``: the user's ratings plus the target item's (the rows touching the moved parameters);
        ``"global"``: all training ratings.

        Parameters
        ----------
        user : int
            Internal user id.
        targets : numpy.ndarray
            Target items.
        normalization : {"local", "global"}

        Returns
        -------
        numpy.ndarray
        """
        user = int(self.check_users(user)[0])
        train = self.train_
        if normalization == "global":
            return np.full(len(targets), train.nnz)
        item_counts = np.bincount(train.indices, minlength=train.shape[1])  # ratings per item (as CSC's indptr)
        return (train.indptr[user + 1] - train.indptr[user]) + item_counts[np.asarray(targets)]

    @torch.no_grad()
    def _score_catalogue(self, users: np.ndarray) -> np.ndarray:
        n_items, dev = self.n_items, self._stack.device
        u = torch.as_tensor(users, device=dev).repeat_interleave(n_items).unsqueeze(0)
        i = torch.arange(n_items, device=dev).repeat(len(users)).unsqueeze(0)
        out = self._stack.predict(u, i)
        return to_numpy(out.reshape(len(users), n_items))

    def train_rmse(self) -> float:
        """Root mean squared error on the training ratings (the plateau the schedules are compared on)."""
        users, items, ratings = self._rows()
        with torch.no_grad():
            pred = self._stack.predict(users.unsqueeze(0), items.unsqueeze(0))[0]
        return float(torch.sqrt(((pred - ratings) ** 2).mean()))

    # --- many retrains at once -----------------------------------------------------------------
    def retrain_scores(self, removals: Sequence[tuple[int, Sequence[int]]], seeds: Sequence[int], epochs: int,
                       targets: Sequence[Sequence[int]], max_models: int = 128,
                       lr: float | None = None,
                       target_users: Sequence[Sequence[int]] | None = None,
                       engine: Engine = None, device: str | None = None) -> list[np.ndarray]:
        """Warm-start retrains with rows removed, stacked into batched models; returns new scores.

        Parameters
        ----------
        removals : Sequence[tuple[int, Sequence[int]]]
            One ``(user, items)`` per retrain: drop the training ratings of ``user`` on
            ``items`` (an empty ``items`` is a no-removal control run).
        seeds : Sequence[int]
            One minibatch-order seed per retrain.
        epochs : int
            Extra epochs from the trained checkpoint (parameters and Adam moments restored).
        targets : Sequence[Sequence[int]]
            Per retrain, the items of ``user`` to score afterwards.
        max_models : int
            How many retrains one stacked model holds (memory/speed trade-off; on a GPU,
            larger stacks use it better).
        lr : float | None
            Learning rate of the retrains (default: the rate the model last trained at, so a
            base finished at a lower rate by ``continue_training(lr=...)`` is retrained at that rate).
        target_users : Sequence[Sequence[int]] | None
            Per retrain, the user of each target (default: the retrain's own user).
            A no-removal control is the same model for every user with the same seed, so one
            control per seed can score every user's targets.
        engine : Engine
            Where the stacks run (:func:`xrec_helpers.engines.map_jobs`): ``None`` in this
            process (default), ``2`` for two local loky processes, a ``dask.distributed.Client``
            for a cluster. Stacks are independent and seeded, so every engine gives the same scores.
        device : str | None
            Where each stack trains (default: the model's ``device``). Resolved by the worker
            that runs the stack, so ``"auto"`` uses a worker's GPU when it has one.

        Returns
        -------
        list[np.ndarray]
            One array per retrain: the predicted ratings of its targets after retraining.
        """
        self._fitted()
        device, target_users = check_retrain_request(self, removals, seeds, epochs, targets, max_models, target_users,
                                                     engine, device)
        if len(removals) == 0:
            return []
        indptr = self.train_.indptr
        row_of = {}
        for m, (user, removed) in enumerate(removals):
            user = int(self.check_users(user)[0])
            cols = self.train_.indices[indptr[user]:indptr[user + 1]]
            where = {int(c): indptr[user] + j for j, c in enumerate(cols)}
            removed = check_ids(list(removed), self.n_items, "item").tolist()  # no float ids truncated by int()
            missing = [int(i) for i in removed if int(i) not in where]
            if missing:
                raise ValueError(f"Items {missing[:5]} are not in user {user}'s training ratings: only rated "
                                 "items can be removed.")
            row_of[m] = [where[int(i)] for i in removed]
        # coo of a CSR is in row order, so row positions equal CSR data positions.
        serial = engine is None or engine == "serial" or (isinstance(engine, int) and engine == 1)
        # Jobs sent to other processes carry CPU tensors (a worker without the model's GPU can read them);
        # in this process they stay where they are (no copy on the CPU, no round trip on a GPU).
        here = (lambda t: t) if serial else (lambda t: t.cpu())
        users, items, ratings = (here(t) for t in self._rows())
        opt_state = self._stack.opt.state
        base = {k: here(v.detach()) for k, v in self._stack.params.items()}
        adam = {k: (float(opt_state[self._stack.params[k]]["step"]), here(opt_state[self._stack.params[k]]["exp_avg"]),
                    here(opt_state[self._stack.params[k]]["exp_avg_sq"])) for k in _ORDER}
        jobs = [([row_of[m] for m in block], [seeds[m] for m in block], tu, ti)
                for block, tu, ti in stack_targets(targets, target_users, max_models)]
        shared = (base, adam, self._stack.lr if lr is None else lr, self.weight_decay, self.batch_size,
                  users, items, ratings, epochs, device)
        out = np.concatenate(map_jobs(_retrain_block, jobs, shared=shared, engine=engine), axis=0)
        return [out[m, :len(targets[m])] for m in range(len(removals))]


def _retrain_block(shared: tuple, job: tuple) -> np.ndarray:
    """Warm-start-train one stack of retrains and score its targets (one engine job).

    Runs in whichever process the engine chooses, so it sets that process's torch up itself.
    """
    base, adam, lr, weight_decay, batch_size, users, items, ratings, epochs, device = shared
    removed_rows, seeds, tu, ti = job
    dev = resolve_device(device)
    prepare_cpu_training()  # per process (and per thread): workers start without denormal flushing
    M = len(seeds)
    users, items, ratings = users.to(dev), items.to(dev), ratings.to(dev)
    stack = NCFStack({k: v.to(dev).expand(M, *v.shape[1:]) for k, v in base.items()}, adam, lr, weight_decay,
                     batch_size)
    keep = torch.ones(M, len(users), device=dev)
    for b, rows in enumerate(removed_rows):
        keep[b, rows] = 0.0
    stack.train_epochs(users, items, ratings, keep, seeds, epochs)
    return stack.score_pairs(tu.to(dev), ti.to(dev)).astype(np.float64)
