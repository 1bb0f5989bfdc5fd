"""Rating prediction from reviews with review-level attention, and a biased-MF baseline, in torch.

Taught in 09_attention_reviews. Each review is encoded by word embeddings -> 1-D convolution ->
max-pool over time. A user is described by the reviews they wrote, an item by the reviews written
about it; attention weights those reviews, the weighted sum goes through a dense layer and is added
to an ID embedding, and the rating is ``w . relu(f_u * f_i) + b + b_u + b_i``.

Two attention scores (``attention=``):

- ``"personalised"`` (the Explainable-RecSys change): an item's review ``l`` is scored against the
  *target* user's ID: ``s = relu((W_O o_l) * (W_U e_target) + b1)``, ``a = softmax_l(w . s + b2)``; a
  user's reviews are scored against the target item's ID in the same way.
- ``"narre"`` (Chen et al., 2018): additive, with the ID of the review's *author* (item side) or of
  the reviewed item (user side): ``s = relu(W_O o_l + W_U e_author + b1)``. The item-side weights
  do not depend on who the recommendation is for.

No target-review leak: the documents are built from the training reviews only, and for a pair
(u, i) every review *by u about i* is masked out of both documents, in training and at prediction
(DeepCoNN-style code keeps the target review inside the documents during training).
:meth:`ReviewAttentionRecommender.documents` returns exactly the reviews the model reads.

These models take a :class:`~xrec_helpers.data.reviews.ReviewCorpus` in ``fit`` (they read text),
not the CSR matrix of the base contract; ``score``/``recommend`` then work as for every
Recommender, with predicted stars as scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import trange

from xrec_helpers.data.reviews import ReviewCorpus
from xrec_helpers.models._torch import generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import PREDICT, REVIEW_ATTENTION, SCORE, Recommender

ATTENTIONS = ("personalised", "narre")


def _pairs(model: Recommender, users, items) -> tuple[np.ndarray, np.ndarray]:
    users = model.check_users(users)
    items = np.atleast_1d(np.asarray(items))
    if items.dtype.kind not in "iu":
        raise TypeError(f"Item ids must be integers (internal ids), got {items.dtype}.")
    bad = items[(items < 0) | (items >= model.n_items)]
    if len(bad):
        raise IndexError(f"Unknown item id(s) {bad[:5].tolist()}: internal ids run 0..{model.n_items - 1}.")
    if len(users) != len(items):
        raise ValueError(f"users and items differ in length ({len(users)} vs {len(items)}): pass one item per user.")
    return users, items.astype(np.int64)


def _check_corpus(corpus: ReviewCorpus) -> None:
    if not isinstance(corpus, ReviewCorpus):
        raise TypeError(f"fit expects a ReviewCorpus (e.g. the train half of corpus.split()), got "
                        f"{type(corpus).__name__}.")
    if len(corpus.reviews) == 0:
        raise ValueError("The training corpus has no reviews: there is nothing to learn from.")


class BiasedMF(Recommender):
    """Rating baseline without text: ``r = mu + b_u + b_i + p_u . q_i`` fitted by MSE with Adam.

    Taught in 09_attention_reviews (does text help?). ``fit`` takes a ReviewCorpus and ignores its text.
    ``device``: ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present); the seed gives the same
    initial weights and batch order on every device.

    Parameters
    ----------
    factors : int
        Latent dimension.
    epochs, lr, batch_size, weight_decay
        Adam settings.
    random_state : int | None
        Seed of initialisation and batch order.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, PREDICT})

    def __init__(self, factors: int = 16, epochs: int = 30, lr: float = 0.01, weight_decay: float = 1e-4,
                 batch_size: int = 512, random_state: int | None = 0, device: str = "cpu"):
        self.device = device
        self.factors, self.epochs, self.lr, self.weight_decay = factors, epochs, lr, weight_decay
        self.batch_size, self.random_state = batch_size, random_state

    def fit(self, corpus: ReviewCorpus) -> BiasedMF:
        """Fit on the stars of ``corpus`` (its text is ignored); returns self.

        Parameters
        ----------
        corpus : ReviewCorpus
            Training reviews.

        Returns
        -------
        BiasedMF
            The fitted model.
        """
        _check_corpus(corpus)
        self._set_train(corpus.csr())
        dev = resolve_device(self.device)
        prepare_cpu_training()
        g = generator(self.random_state)
        n_users, n_items = corpus.n_users, corpus.n_items
        self.mu_ = float(corpus.reviews["rating"].mean())
        # drawn on the CPU from the seed, then moved once (a no-op on the CPU)
        self.P_ = nn.Parameter((torch.randn(n_users, self.factors, generator=g) * 0.05).to(dev))
        self.Q_ = nn.Parameter((torch.randn(n_items, self.factors, generator=g) * 0.05).to(dev))
        self.bu_ = nn.Parameter(torch.zeros(n_users, device=dev))
        self.bi_ = nn.Parameter(torch.zeros(n_items, device=dev))
        params = [self.P_, self.Q_, self.bu_, self.bi_]
        opt = torch.optim.Adam(params, lr=self.lr)
        u = torch.as_tensor(corpus.reviews["user"].to_numpy().copy(), dtype=torch.long, device=dev)
        i = torch.as_tensor(corpus.reviews["item"].to_numpy().copy(), dtype=torch.long, device=dev)
        r = torch.as_tensor(corpus.reviews["rating"].to_numpy().copy(), dtype=torch.float32, device=dev)
        self.loss_history_ = []
        for _ in range(self.epochs):
            perm = torch.randperm(len(r), generator=g).to(dev)
            total = 0.0
            for start in range(0, len(r), self.batch_size):
                b = perm[start:start + self.batch_size]
                pred = self.mu_ + self.bu_[u[b]] + self.bi_[i[b]] + (self.P_[u[b]] * self.Q_[i[b]]).sum(1)
                # L2 on the rows touched by the batch (classic SGD-MF regularisation).
                reg = self.weight_decay * (self.P_[u[b]].pow(2).sum() + self.Q_[i[b]].pow(2).sum())
                loss = ((pred - r[b]) ** 2).mean() + reg / len(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            self.loss_history_.append(total / len(r))
        return self

    @torch.no_grad()
    def predict(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray) -> np.ndarray:
        """Predicted stars for aligned (user, item) pairs.

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned internal ids of the pairs.

        Returns
        -------
        np.ndarray
            One predicted rating per pair.
        """
        users, items = _pairs(self, users, items)
        u, i = torch.as_tensor(users, device=self.P_.device), torch.as_tensor(items, device=self.P_.device)
        return to_numpy(self.mu_ + self.bu_[u] + self.bi_[i] + (self.P_[u] * self.Q_[i]).sum(1))

    @torch.no_grad()
    def _score(self, users: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(users, device=self.P_.device)
        return to_numpy(self.mu_ + self.bu_[u, None] + self.bi_[None] + self.P_[u] @ self.Q_.T)


class _Encoder(nn.Module):
    """Word embeddings -> Conv1d (window ``window``) -> ReLU -> max-pool over time: one vector per review."""

    def __init__(self, vocab: int, embed_dim: int, filters: int, window: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=0)
        self.conv = nn.Conv1d(embed_dim, filters, window, padding=window // 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.conv(self.embed(tokens).transpose(1, 2)))
        return hidden.max(dim=2).values


class _Side(nn.Module):
    """One tower: review attention (personalised or NARRE) -> pooled review vector -> dense + ID embedding."""

    def __init__(self, attention: str, n_query: int, n_self: int, filters: int, att_dim: int, factors: int,
                 dropout: float, value_dim: int | None = None):
        super().__init__()
        self.attention = attention
        # Optional value bottleneck: each review contributes only ``value_dim`` numbers (e.g. one
        # sentiment score) to the pooled vector, so a uniform average cannot carry every aspect at once.
        self.value = nn.Linear(filters, value_dim) if value_dim else nn.Identity()
        self.project = nn.Linear(filters, att_dim, bias=False)   # W_O
        self.query = nn.Embedding(n_query, att_dim)              # e_target (personalised) or e_author (NARRE)
        self.b1 = nn.Parameter(torch.zeros(att_dim))
        self.score = nn.Linear(att_dim, 1)                       # w_s, b2
        self.dense = nn.Linear(value_dim or filters, factors)
        self.ids = nn.Embedding(n_self, factors)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.query.weight, 0.0, 0.5)
        nn.init.normal_(self.ids.weight, 0.0, 0.3)  # not tiny: relu(f_u * f_i) starts near zero otherwise

    def weights(self, encoded: torch.Tensor, mask: torch.Tensor, target: torch.Tensor,
                authors: torch.Tensor) -> torch.Tensor:
        """Attention over the (masked) reviews, shape (batch, L); rows with no review are all zero."""
        projected = self.project(encoded)
        if self.attention == "personalised":
            hidden = torch.relu(projected * self.query(target)[:, None, :] + self.b1)
        else:
            hidden = torch.relu(projected + self.query(authors.clamp(min=0)) + self.b1)
        logits = self.score(hidden).squeeze(-1).masked_fill(~mask, -1e9)
        return torch.softmax(logits, dim=1) * mask  # an empty document gets zero weight everywhere

    def forward(self, encoded, mask, target, authors, own, use_ids: bool = True):
        a = self.weights(encoded, mask, target, authors)
        pooled = (a[..., None] * self.value(encoded)).sum(1)
        out = self.dense(self.drop(pooled))
        return (out + self.ids(own) if use_ids else out), a, pooled


class _Net(nn.Module):
    def __init__(self, attention, n_users, n_items, vocab, embed_dim, filters, window, att_dim, factors, dropout,
                 value_dim=None):
        super().__init__()
        self.user_encoder = _Encoder(vocab, embed_dim, filters, window)
        self.item_encoder = _Encoder(vocab, embed_dim, filters, window)
        # User tower: the user's reviews, queried by the target item (personalised) or the reviewed item (NARRE).
        self.user_side = _Side(attention, n_items, n_users, filters, att_dim, factors, dropout, value_dim)
        # Item tower: the item's reviews, queried by the target user (personalised) or the author (NARRE).
        self.item_side = _Side(attention, n_users, n_items, filters, att_dim, factors, dropout, value_dim)
        self.out = nn.Linear(factors, 1)
        # Bottleneck head: the item's pooled review values are read linearly (no product with the user
        # tower), and the user tower adds a user-and-item-dependent offset.
        self.value_out = nn.Linear(value_dim, 1) if value_dim else None
        self.user_out = nn.Linear(factors, 1) if value_dim else None
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.drop = nn.Dropout(dropout)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)


class ReviewAttentionRecommender(Recommender):
    """Review-attention rating model (personalised attention or NARRE); see the module docstring.

    Taught in 09_attention_reviews.

    Parameters
    ----------
    attention
        ``"personalised"`` (target-ID multiplicative score) or ``"narre"`` (author-ID additive).
    embed_dim, filters, window
        review encoder sizes (word vector, convolution filters, window).
    attention_dim
        size of the attention projection; factors: size of the towers' outputs.
    max_user_reviews, max_item_reviews
        document caps (a seeded random subset beyond them).
    value_dim
        None (each review passes its full ``filters``-vector to the attention-weighted sum) or
        a small int: each review is first projected to ``value_dim`` numbers (1 = one sentiment score
        per review). With a bottleneck, averaging all of an item's reviews mixes the aspects, so only
        attention to the right reviews recovers what one user cares about.
    item_ids
        False removes the item ID embedding and the item bias: the item tower knows the item
        from its reviews only and cannot memorise per-item answers. (The target item's ID still
        queries the user-side attention over the user's own reviews.)
    dropout, epochs, lr, weight_decay, batch_size
        training settings (MSE, Adam).
    random_state
        seed for initialisation, document sampling and batch order.
    device
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present). Initial weights,
        documents and batch order come from the seed on every device; dropout masks on a GPU come
        from its own seeded generator.

    ``fit(train, valid=...)`` records the validation RMSE after each epoch (``valid_rmse_``) and keeps
    the weights of the best epoch (``best_epoch_``).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, PREDICT, REVIEW_ATTENTION})

    def __init__(self, attention: str = "personalised", embed_dim: int = 16, filters: int = 32, window: int = 3,
                 attention_dim: int = 16, factors: int = 16, max_user_reviews: int = 12, max_item_reviews: int = 24,
                 dropout: float = 0.1, epochs: int = 8, lr: float = 0.004, weight_decay: float = 1e-6,
                 batch_size: int = 256, item_ids: bool = True, value_dim: int | None = None,
                 threads: int | None = 1,
                 random_state: int | None = 0, progress: bool = False, device: str = "cpu"):
        self.device = device
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r} must be one of {ATTENTIONS}.")
        self.attention, self.embed_dim, self.filters, self.window = attention, embed_dim, filters, window
        self.attention_dim, self.factors = attention_dim, factors
        self.max_user_reviews, self.max_item_reviews = max_user_reviews, max_item_reviews
        self.dropout, self.epochs, self.lr, self.weight_decay = dropout, epochs, lr, weight_decay
        self.batch_size, self.random_state, self.progress = batch_size, random_state, progress
        self.item_ids, self.value_dim, self.threads = item_ids, value_dim, threads
        if value_dim is not None and value_dim < 1:
            raise ValueError(f"value_dim={value_dim} must be None or a positive int (1 = one score per review).")

    # --- documents ------------------------------------------------------------------------------
    def _build_documents(self, corpus: ReviewCorpus, rng: np.random.Generator) -> None:
        n_total = corpus.tokens.shape[0]
        self.review_user_ = np.full(n_total, -1, dtype=np.int64)
        self.review_item_ = np.full(n_total, -1, dtype=np.int64)
        rid = corpus.reviews["review_id"].to_numpy()
        self.review_user_[rid] = corpus.reviews["user"].to_numpy()
        self.review_item_[rid] = corpus.reviews["item"].to_numpy()
        self.train_reviews_ = np.sort(rid)

        def docs(key: str, n: int, cap: int) -> np.ndarray:
            out = np.full((n, cap), -1, dtype=np.int64)
            for owner, ids in corpus.reviews.groupby(key)["review_id"]:
                ids = ids.to_numpy()
                if len(ids) > cap:
                    ids = np.sort(rng.choice(ids, size=cap, replace=False))
                out[owner, :len(ids)] = ids
            return out

        self.user_doc_ = docs("user", corpus.n_users, self.max_user_reviews)
        self.item_doc_ = docs("item", corpus.n_items, self.max_item_reviews)

    def documents(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                  hide: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The review ids the model reads for aligned (user, item) pairs: ``(user_docs, item_docs)``.

        Each is (batch, L) with -1 where nothing is read. Reviews written by ``user`` about ``item``
        are removed from both (no target-review leak); ``hide[b]`` lists extra review ids to remove
        for pair ``b`` (used to test whether removing the attended reviews changes the prediction).

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned internal ids of the pairs.
        hide : Sequence[Sequence[int]] | None
            Per pair, extra review ids to remove.

        Returns
        -------
        tuple[np.ndarray, np.ndarray]
            User-side and item-side review ids, each (batch, L), -1 padded.
        """
        self._fitted()
        users, items = _pairs(self, users, items)
        return self._documents(users, items, hide)

    def _documents(self, users: np.ndarray, items: np.ndarray, hide=None) -> tuple[np.ndarray, np.ndarray]:
        u_doc = self.user_doc_[users].copy()
        i_doc = self.item_doc_[items].copy()
        u_doc[(u_doc >= 0) & (self.review_item_[u_doc] == items[:, None])] = -1
        i_doc[(i_doc >= 0) & (self.review_user_[i_doc] == users[:, None])] = -1
        if hide is not None:
            if len(hide) != len(users):
                raise ValueError(f"hide has {len(hide)} entries for {len(users)} pairs: give one list per pair.")
            for b, ids in enumerate(hide):
                if len(ids):
                    ids = np.asarray(ids, dtype=np.int64)
                    u_doc[b, np.isin(u_doc[b], ids)] = -1
                    i_doc[b, np.isin(i_doc[b], ids)] = -1
        return u_doc, i_doc

    # --- forward --------------------------------------------------------------------------------
    def _encode(self, encoder: _Encoder, doc: torch.Tensor, cache: torch.Tensor | None) -> torch.Tensor:
        mask = doc >= 0
        if cache is not None:
            return cache[doc.clamp(min=0)] * mask[..., None]
        out = torch.zeros(*doc.shape, self.filters, device=doc.device)
        # Encode each distinct review of the batch once (items share many reviews across pairs).
        unique, inverse = torch.unique(doc[mask], return_inverse=True)
        out[mask] = encoder(self.tokens_[unique])[inverse]
        return out

    def _forward(self, users: np.ndarray, items: np.ndarray, u_doc: np.ndarray, i_doc: np.ndarray,
                 cached: bool = False):
        net = self.net_
        dev = self.tokens_.device
        # np.array copies: callers pass read-only views (pandas), which torch.as_tensor warns about.
        u, i = torch.as_tensor(np.array(users), device=dev), torch.as_tensor(np.array(items), device=dev)
        ud, id_ = torch.as_tensor(u_doc, device=dev), torch.as_tensor(i_doc, device=dev)
        caches = self._cache() if cached else (None, None)
        enc_u = self._encode(net.user_encoder, ud, caches[0])
        enc_i = self._encode(net.item_encoder, id_, caches[1])
        reviewed_items = torch.as_tensor(self.review_item_, device=dev)[ud.clamp(min=0)]
        authors = torch.as_tensor(self.review_user_, device=dev)[id_.clamp(min=0)]
        f_u, a_u, _ = net.user_side(enc_u, ud >= 0, i, reviewed_items, u)
        f_i, a_i, v_i = net.item_side(enc_i, id_ >= 0, u, authors, i, self.item_ids)
        if net.value_out is None:  # the original head: w . relu(f_u * f_i)
            pred = net.out(net.drop(torch.relu(f_u * f_i))).squeeze(-1)
        else:
            pred = net.value_out(v_i).squeeze(-1) + net.user_out(net.drop(f_u)).squeeze(-1)
        pred = pred + self.mu_ + net.user_bias(u).squeeze(-1)
        if self.item_ids:
            pred = pred + net.item_bias(i).squeeze(-1)
        return pred, a_u, a_i

    @torch.no_grad()
    def _cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every training review encoded once by each tower (eval mode): reused across all predictions."""
        if self.cache_ is None:
            ids = torch.as_tensor(self.train_reviews_, device=self.tokens_.device)
            tables = []
            for enc in (self.net_.user_encoder, self.net_.item_encoder):
                table = torch.zeros(self.tokens_.shape[0], self.filters, device=self.tokens_.device)
                for start in range(0, len(ids), 4096):
                    chunk = ids[start:start + 4096]
                    table[chunk] = enc(self.tokens_[chunk])
                tables.append(table)
            self.cache_ = tuple(tables)
        return self.cache_

    # --- fit / predict --------------------------------------------------------------------------
    def fit(self, corpus: ReviewCorpus, valid: ReviewCorpus | None = None) -> ReviewAttentionRecommender:
        """Train on ``corpus`` (its reviews are both the targets and the documents; see the leak rule).

        ``valid``: held-out reviews (targets only, never documents) scored after every epoch; the
        weights of the epoch with the lowest validation RMSE are kept.

        Parameters
        ----------
        corpus : ReviewCorpus
            Training reviews.
        valid : ReviewCorpus | None
            Held-out reviews for choosing the epoch.

        Returns
        -------
        ReviewAttentionRecommender
            The fitted model.
        """
        _check_corpus(corpus)
        if valid is not None and (valid.n_users != corpus.n_users or valid.n_items != corpus.n_items):
            raise ValueError("valid must come from the same corpus as the training reviews (use corpus.split).")
        if valid is not None and set(valid.reviews["review_id"]) & set(corpus.reviews["review_id"]):
            raise ValueError("valid shares reviews with the training corpus: split them apart with corpus.split.")
        self._set_train(corpus.csr())
        dev = resolve_device(self.device)
        prepare_cpu_training()
        g = generator(self.random_state)
        rng = np.random.default_rng(self.random_state)
        if self.threads:  # tiny ops: extra threads only add overhead on a shared 2-core machine
            torch.set_num_threads(self.threads)
        self._build_documents(corpus, rng)
        self.tokens_ = torch.as_tensor(corpus.tokens, dtype=torch.long, device=dev)  # moved once
        self.mu_ = float(corpus.reviews["rating"].mean())
        self.cache_ = None
        torch.manual_seed(int(rng.integers(2**31)))  # nn.Module initialisation uses the global generator
        self.net_ = _Net(self.attention, corpus.n_users, corpus.n_items, len(corpus.vocab), self.embed_dim,
                         self.filters, self.window, self.attention_dim, self.factors, self.dropout,
                         self.value_dim).to(dev)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        users = corpus.reviews["user"].to_numpy()
        items = corpus.reviews["item"].to_numpy()
        ratings = torch.as_tensor(corpus.reviews["rating"].to_numpy().copy(), dtype=torch.float32, device=dev)
        self.net_.train()
        self.loss_history_, self.valid_rmse_ = [], []
        best_state, best_rmse, self.best_epoch_ = None, np.inf, self.epochs - 1
        for _ in trange(self.epochs, desc=f"ReviewAttention[{self.attention}]", disable=not self.progress):
            perm = torch.randperm(len(users), generator=g).numpy()
            total = 0.0
            for start in range(0, len(perm), self.batch_size):
                b = perm[start:start + self.batch_size]
                u_doc, i_doc = self._documents(users[b], items[b])
                pred, _, _ = self._forward(users[b], items[b], u_doc, i_doc)
                loss = ((pred - ratings[torch.as_tensor(b, device=dev)]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            self.loss_history_.append(total / len(users))
            if valid is not None:
                self.net_.eval()
                self.cache_ = None
                rmse = self._rmse(valid)
                self.cache_ = None
                self.net_.train()
                self.valid_rmse_.append(rmse)
                if rmse < best_rmse:
                    best_rmse, self.best_epoch_ = rmse, len(self.valid_rmse_) - 1
                    best_state = {k: v.detach().clone() for k, v in self.net_.state_dict().items()}
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        self.net_.eval()
        self.cache_ = None
        return self

    @torch.no_grad()
    def _rmse(self, corpus: ReviewCorpus) -> float:
        users, items = corpus.reviews["user"].to_numpy(), corpus.reviews["item"].to_numpy()
        u_doc, i_doc = self._documents(users, items)
        pred = to_numpy(self._forward(users, items, u_doc, i_doc, cached=True)[0])
        return float(np.sqrt(np.mean((pred - corpus.reviews["rating"].to_numpy()) ** 2)))

    def _check_fitted_net(self) -> None:
        self._fitted()
        if not hasattr(self, "net_"):
            raise RuntimeError("The model is not fitted: call .fit(corpus) first.")

    @torch.no_grad()
    def predict(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                hide: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """Predicted stars for aligned (user, item) pairs; ``hide`` removes review ids per pair.

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned internal ids of the pairs.
        hide : Sequence[Sequence[int]] | None
            Per pair, review ids to remove.

        Returns
        -------
        np.ndarray
            One predicted rating per pair.
        """
        self._check_fitted_net()
        users, items = _pairs(self, users, items)
        u_doc, i_doc = self._documents(users, items, hide)
        return to_numpy(self._forward(users, items, u_doc, i_doc, cached=True)[0])

    @torch.no_grad()
    def attention_weights(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                          hide: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
        """Attention for aligned pairs: ``item_reviews``/``item_weights`` (the item's reviews, as read for
        that user) and ``user_reviews``/``user_weights`` (the user's own reviews), each (batch, L), -1/0 padded.

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned internal ids of the pairs.
        hide : Sequence[Sequence[int]] | None
            Per pair, review ids to remove.

        Returns
        -------
        dict[str, np.ndarray]
            ``item_reviews``, ``item_weights``, ``user_reviews``, ``user_weights``.
        """
        self._check_fitted_net()
        users, items = _pairs(self, users, items)
        u_doc, i_doc = self._documents(users, items, hide)
        _, a_u, a_i = self._forward(users, items, u_doc, i_doc, cached=True)
        return {"user_reviews": u_doc, "user_weights": to_numpy(a_u), "item_reviews": i_doc,
                "item_weights": to_numpy(a_i)}

    @torch.no_grad()
    def user_representation(self, kind: str = "attention") -> np.ndarray:
        """Per-user vectors, shape (n_users, d).

        ``"attention"``: the user's vector inside the item tower's attention (the target-user query of
        the personalised model; the author vector for NARRE). ``"id"``: the user's ID embedding in the
        rating towers, which never touches attention.

        Parameters
        ----------
        kind : str
            ``"attention"`` or ``"id"``.

        Returns
        -------
        np.ndarray
            Shape (n_users, d).
        """
        self._check_fitted_net()
        if kind == "attention":
            return to_numpy(self.net_.item_side.query.weight).copy()
        if kind == "id":
            return to_numpy(self.net_.user_side.ids.weight).copy()
        raise ValueError(f"kind={kind!r} must be 'attention' or 'id'.")

    @torch.no_grad()
    def _score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted_net()
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        all_items = np.arange(self.n_items)
        for row, u in enumerate(users):
            uu = np.full(self.n_items, u)
            u_doc, i_doc = self._documents(uu, all_items)
            out[row] = to_numpy(self._forward(uu, all_items, u_doc, i_doc, cached=True)[0])
        return out
