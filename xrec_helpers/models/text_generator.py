"""A small PETER-style transformer that predicts a rating and writes an explanation, trained from scratch.

Taught in 12_generated_explanations. PETER (Li, Zhang, Chen, ACL 2021) feeds a transformer the
sequence [user, item, <bos>, w_1, ..., w_n]: the user and item positions see each other, the words see
everything before them (the "PETER mask"). Three heads read the hidden states:

* the **rating** from the user position (an MLP on top of a global mean);
* **context prediction** from the item position: the bag of words of the review (it makes the text
  depend on the user and item rather than on the language model alone);
* the **next word** from every word position (the explanation, decoded greedily).

The closest design small enough to train on a laptop CPU during the lesson: one layer of width 32 (PETER: two
layers of 512),
and the item is described
by an **aspect profile** read from its training reviews (per aspect: the share of positive minus negative
statements, and whether any review talks about it; see :func:`aspect_profile`) instead of only an ID
embedding. That profile is the model's only view of the item (``item_ids=False``, the default), which is
what makes faithfulness measurable: hiding everything the item's reviews say about one aspect and
re-predicting tells whether that aspect drives this user's rating (:meth:`ReviewTextGenerator.predict`
with ``hide_aspect``). The profile of a training pair leaves out that pair's own review (no target leak).

This is not a :class:`~xrec_helpers.models.base.Recommender` of the CSR contract: like the review models of
09 it reads a :class:`~xrec_helpers.data.reviews.ReviewCorpus`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import trange

from xrec_helpers.data.reviews import PAD, ReviewCorpus, aspect_mentions
from xrec_helpers.models._torch import generator, prepare_cpu_training, resolve_device, to_numpy


def mention_counts(corpus: ReviewCorpus) -> tuple[np.ndarray, np.ndarray]:
    """Per review: (positive, negative) statement counts per aspect, each (n_reviews, n_aspects).

    Read from the review *text* with :func:`~xrec_helpers.data.reviews.aspect_mentions` (never from the
    planted labels). Used by :class:`ReviewTextGenerator`.

    Parameters
    ----------
    corpus : ReviewCorpus
        Reviews.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        Positive and negative counts, each (n_reviews, n_aspects).
    """
    if not corpus.aspects:
        raise ValueError(f"{corpus.name} has no aspect lexicon: the generator's item profile needs a synthetic corpus.")
    index = {a: k for k, a in enumerate(corpus.aspects)}
    pos = np.zeros((len(corpus.reviews), len(index)), dtype=np.float32)
    neg = np.zeros_like(pos)
    for r, text in enumerate(corpus.reviews["text"]):
        for aspect, polarity in aspect_mentions(text):
            if polarity == 1:
                pos[r, index[aspect]] += 1
            elif polarity == -1:
                neg[r, index[aspect]] += 1
    return pos, neg


def aspect_profile(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(n, 2 * n_aspects) profile from summed counts: (pos - neg) / (pos + neg) per aspect, then 1 if mentioned.

    An aspect nobody wrote about has (0, 0): the same as hiding it. Used by :class:`ReviewTextGenerator`.

    Parameters
    ----------
    pos, neg : np.ndarray
        Summed positive and negative counts, each (n, n_aspects).

    Returns
    -------
    np.ndarray
        Profiles of shape (n, 2 * n_aspects).
    """
    total = pos + neg
    balance = np.divide(pos - neg, total, out=np.zeros_like(total, dtype=np.float32), where=total > 0)
    return np.concatenate([balance, (total > 0).astype(np.float32)], axis=-1).astype(np.float32)


class _Peter(nn.Module):
    def __init__(self, n_users: int, n_items: int, n_profile: int, vocab: int, d: int, layers: int, heads: int,
                 max_len: int, dropout: float, item_ids: bool):
        super().__init__()
        self.user = nn.Embedding(n_users, d)
        self.item_profile = nn.Linear(n_profile, d)
        self.item = nn.Embedding(n_items, d) if item_ids else None
        self.word = nn.Embedding(vocab, d)
        self.position = nn.Embedding(max_len + 3, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.rating = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
        self.context = nn.Linear(d, vocab)
        self.next_word = nn.Linear(d, vocab)

    @staticmethod
    def peter_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
        """Causal mask, except that the user (0) and item (1) positions see each other."""
        mask = torch.triu(torch.full((length, length), float("-inf"), device=device), diagonal=1)
        mask[0, 1] = 0.0
        return mask

    def forward(self, users, profile, items, words):
        item = self.item_profile(profile)
        if self.item is not None:
            item = item + self.item(items)
        x = torch.cat([self.user(users)[:, None], item[:, None], self.word(words)], dim=1)
        x = x + self.position(torch.arange(x.shape[1], device=x.device))[None]
        h = self.encoder(x, mask=self.peter_mask(x.shape[1], x.device))
        return self.rating(h[:, 0]).squeeze(-1), self.context(h[:, 1]), self.next_word(h[:, 2:])


class ReviewTextGenerator:
    """PETER-style rating + explanation generator on a synthetic review corpus (see the module docstring).

    Taught in 12_generated_explanations.

    Parameters
    ----------
    d_model, layers, heads
        transformer size.
    epochs, lr, batch_size, weight_decay
        Adam training; the best epoch on ``valid`` (text loss + rating
        loss) is kept when a validation corpus is given.
    rating_weight, context_weight
        loss weights of the rating and context heads (text weight 1).
    max_len
        generated words at most (the reference reviews are cut to it too).
    item_ids
        add an item ID embedding to the profile (then the model can memorise items, and hiding an
        aspect's reviews may change nothing: the lesson of 09's exercise 4).
    random_state
        seeds initialisation and batch order, so a fit is reproducible.
    device
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present); initial weights and batch
        order come from the seed on every device (dropout, when set, uses the device's own generator).
    """

    def __init__(self, *, d_model: int = 32, layers: int = 1, heads: int = 2, epochs: int = 12, lr: float = 1e-2,
                 batch_size: int = 128, weight_decay: float = 0.0, rating_weight: float = 2.0,
                 context_weight: float = 0.5, dropout: float = 0.0, max_len: int = 18, item_ids: bool = False,
                 random_state: int | None = 0, progress: bool = False, device: str = "cpu"):
        self.device = device
        self.d_model, self.layers, self.heads, self.epochs, self.lr = d_model, layers, heads, epochs, lr
        self.batch_size, self.weight_decay, self.dropout = batch_size, weight_decay, dropout
        self.rating_weight, self.context_weight, self.max_len = rating_weight, context_weight, max_len
        self.item_ids, self.random_state, self.progress = item_ids, random_state, progress

    # ---- data ----------------------------------------------------------------------------------
    def _targets(self, corpus: ReviewCorpus) -> np.ndarray:
        """Word ids [w_1 .. w_n, <eos>] of each review, 0-padded to max_len + 1."""
        tokens = corpus.tokens[corpus.reviews["review_id"].to_numpy()][:, :self.max_len].astype(np.int64)
        out = np.zeros((len(tokens), self.max_len + 1), dtype=np.int64)
        out[:, :tokens.shape[1]] = tokens
        lengths = (tokens != PAD).sum(1)
        out[np.arange(len(out)), lengths] = self.eos_
        return out

    def _item_counts(self, corpus: ReviewCorpus) -> tuple[np.ndarray, np.ndarray]:
        pos, neg = mention_counts(corpus)
        n_items, n_aspects = corpus.n_items, len(corpus.aspects)
        item_pos, item_neg = np.zeros((n_items, n_aspects), np.float32), np.zeros((n_items, n_aspects), np.float32)
        items = corpus.reviews["item"].to_numpy()
        np.add.at(item_pos, items, pos)
        np.add.at(item_neg, items, neg)
        return item_pos, item_neg

    def profile(self, items: Sequence[int] | np.ndarray, hide_aspect: Sequence[int] | np.ndarray | None = None
                ) -> np.ndarray:
        """The items' aspect profiles from the training reviews; ``hide_aspect[k]`` (an aspect index, or -1
        for none) removes everything the reviews of ``items[k]`` say about that aspect.

        Parameters
        ----------
        items : Sequence[int] | np.ndarray
            Internal item ids.
        hide_aspect : Sequence[int] | np.ndarray | None
            Per item, an aspect index to hide, or -1.

        Returns
        -------
        np.ndarray
            Profiles of shape (len(items), 2 * n_aspects).
        """
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        pos, neg = self.item_pos_[items].copy(), self.item_neg_[items].copy()
        if hide_aspect is not None:
            hide = np.asarray(hide_aspect, dtype=np.int64)
            if hide.shape != items.shape:
                raise ValueError(f"hide_aspect needs one aspect index (or -1) per item: {hide.shape} vs {items.shape}.")
            if ((hide < -1) | (hide >= len(self.aspects_))).any():
                raise ValueError(f"hide_aspect holds indices outside -1..{len(self.aspects_) - 1} "
                                 f"(aspects {list(self.aspects_)}).")
            rows = np.flatnonzero(hide >= 0)
            pos[rows, hide[rows]] = 0.0
            neg[rows, hide[rows]] = 0.0
        return aspect_profile(pos, neg)

    def leave_one_out_profile(self, corpus: ReviewCorpus) -> np.ndarray:
        """Per review of ``corpus`` (the training corpus): its item's profile *without that review*.

        Training pairs read these, so the text being predicted is never an input (no target leak).

        Parameters
        ----------
        corpus : ReviewCorpus
            The training corpus.

        Returns
        -------
        np.ndarray
            One profile per review.
        """
        self._check_fitted()
        pos, neg = mention_counts(corpus)
        items = corpus.reviews["item"].to_numpy()
        return aspect_profile(self.item_pos_[items] - pos, self.item_neg_[items] - neg)

    # ---- training ------------------------------------------------------------------------------
    def fit(self, train: ReviewCorpus, valid: ReviewCorpus | None = None) -> ReviewTextGenerator:
        """Train on ``train``'s reviews; ``valid`` (same ids, other reviews) picks the epoch. Returns self.

        Parameters
        ----------
        train : ReviewCorpus
            Training reviews.
        valid : ReviewCorpus | None
            Held-out reviews for choosing the epoch.

        Returns
        -------
        ReviewTextGenerator
            The fitted model.
        """
        if not isinstance(train, ReviewCorpus) or len(train.reviews) == 0:
            raise TypeError("fit expects a non-empty ReviewCorpus (the train part of corpus.split()).")
        dev = resolve_device(self.device)
        prepare_cpu_training()
        g = generator(self.random_state)
        self.aspects_ = tuple(train.aspects)
        self.vocab_ = list(train.vocab) + ["<bos>", "<eos>"]
        self.bos_, self.eos_ = len(self.vocab_) - 2, len(self.vocab_) - 1
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.item_pos_, self.item_neg_ = self._item_counts(train)
        items = np.array(train.reviews["item"], dtype=np.int64)
        profile = self.leave_one_out_profile(train)
        users = torch.as_tensor(np.array(train.reviews["user"], dtype=np.int64), device=dev)  # moved once
        items_t = torch.as_tensor(items, device=dev)
        profile_t = torch.as_tensor(profile, device=dev)
        targets = torch.as_tensor(self._targets(train), device=dev)
        ratings = torch.as_tensor(np.array(train.reviews["rating"], dtype=np.float32), device=dev)
        self.mean_rating_ = float(ratings.mean())
        self.net_ = _Peter(self.n_users_, self.n_items_, profile.shape[1], len(self.vocab_), self.d_model,
                           self.layers, self.heads, self.max_len, self.dropout, self.item_ids)
        with torch.no_grad():  # seeded initialisation, independent of torch's global state
            for p in self.net_.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (0.02 if p.dim() > 1 else 0.0))
            for m in self.net_.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
        self.net_.to(dev)  # initialised on the CPU from the seed, then moved once
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if valid is not None:
            v_items = valid.reviews["item"].to_numpy()
            v_data = tuple(t.to(dev) for t in (
                torch.as_tensor(np.array(valid.reviews["user"], dtype=np.int64)),
                torch.as_tensor(self.profile(v_items)), torch.as_tensor(np.array(v_items, dtype=np.int64)),
                torch.as_tensor(self._targets(valid)),
                torch.as_tensor(np.array(valid.reviews["rating"], dtype=np.float32))))
        self.history_ = []
        best, best_state = np.inf, None
        for epoch in trange(self.epochs, desc="ReviewTextGenerator", disable=not self.progress):
            self.net_.train()
            perm = torch.randperm(len(users), generator=g).to(dev)
            sums = np.zeros(3)
            for start in range(0, len(perm), self.batch_size):
                b = perm[start:start + self.batch_size]
                losses = self._losses(users[b], profile_t[b], items_t[b], targets[b], ratings[b])
                loss = losses[0] + self.rating_weight * losses[1] + self.context_weight * losses[2]
                opt.zero_grad()
                loss.backward()
                opt.step()
                sums += np.array([x.item() for x in losses]) * len(b)
            row = {"epoch": epoch + 1, "train text NLL": sums[0] / len(users), "train rating MSE": sums[1] / len(users)}
            if valid is not None:
                self.net_.eval()
                with torch.no_grad():
                    text, mse, _ = (x.item() for x in self._losses(*v_data))
                row |= {"valid text NLL": text, "valid rating RMSE": float(np.sqrt(mse))}
                if text + mse < best:
                    best, best_state = text + mse, {k: v.clone() for k, v in self.net_.state_dict().items()}
                    self.best_epoch_ = epoch + 1
            self.history_.append(row)
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        else:
            self.best_epoch_ = self.epochs
        self.net_.eval()
        return self

    def _losses(self, users, profile, items, targets, ratings):
        inputs = torch.cat([torch.full((len(users), 1), self.bos_, device=targets.device), targets[:, :-1]], dim=1)
        inputs = torch.where(inputs == self.eos_, torch.zeros_like(inputs), inputs)  # nothing after <eos>
        rating, context, words = self.net_(users, profile, items, inputs)
        mask = targets != PAD
        text = nn.functional.cross_entropy(words[mask], targets[mask])
        mse = ((self.mean_rating_ + rating - ratings) ** 2).mean()
        # Context prediction (PETER): the item position predicts the review's bag of words.
        log_p = torch.log_softmax(context, dim=-1)
        ctx = -(log_p.gather(1, targets) * mask).sum() / mask.sum()
        return text, mse, ctx

    # ---- use -----------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "item_pos_"):
            raise RuntimeError("ReviewTextGenerator is not fitted yet: call .fit(train_corpus) first.")

    def _pairs(self, users, items) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        users, items = np.atleast_1d(np.asarray(users)), np.atleast_1d(np.asarray(items))
        if users.dtype.kind not in "iu" or items.dtype.kind not in "iu":
            raise TypeError("users and items must be integer internal ids.")
        if users.shape != items.shape:
            raise ValueError(f"users and items differ in length ({len(users)} vs {len(items)}): one item per user.")
        if ((users < 0) | (users >= self.n_users_)).any() or ((items < 0) | (items >= self.n_items_)).any():
            raise IndexError(f"ids out of range: users run 0..{self.n_users_ - 1}, items 0..{self.n_items_ - 1}.")
        return users.astype(np.int64), items.astype(np.int64)

    def predict(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                hide_aspect: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Predicted stars of (user, item) pairs; ``hide_aspect`` as in :meth:`profile` (the intervention).

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned internal ids of the pairs.
        hide_aspect : Sequence[int] | np.ndarray | None
            Per pair, an aspect index to hide, or -1.

        Returns
        -------
        np.ndarray
            One predicted rating per pair.
        """
        users, items = self._pairs(users, items)
        dev = self.net_.word.weight.device
        with torch.no_grad():
            words = torch.full((len(users), 1), self.bos_, device=dev)
            rating, _, _ = self.net_(torch.as_tensor(users, device=dev),
                                     torch.as_tensor(self.profile(items, hide_aspect), device=dev),
                                     torch.as_tensor(items, device=dev), words)
        return self.mean_rating_ + to_numpy(rating).astype(np.float64)

    def generate(self, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                 max_words: int | None = None, batch: int = 1024, top_k: int | None = None,
                 temperature: float = 1.0, random_state: int | None = 0) -> list[str]:
        """One explanation per (user, item) pair: greedy decoding (the default; PETER decodes greedily), or
        sampling from the ``top_k`` most likely next words at ``temperature`` (seeded by ``random_state``).

        Greedy decoding of a small model tends to write nearly the same sentence for everyone; sampling trades
        some likelihood for variety. Taught in 12_generated_explanations.

        Parameters
        ----------
        users, items : Sequence[int] | np.ndarray
            Aligned internal ids of the pairs.
        max_words : int | None
            Longest explanation (default: the model's ``max_len``).
        batch : int
            Pairs per forward pass.
        top_k : int | None
            Sample among the ``top_k`` next words (None: greedy).
        temperature : float
            Softmax temperature when sampling.
        random_state : int | None
            Seed of the sampling.

        Returns
        -------
        list[str]
            One explanation per pair.
        """
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k={top_k} must be >= 1 (or None for greedy decoding).")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0.")
        generator = None
        if top_k is not None:
            generator = torch.Generator().manual_seed(0 if random_state is None else int(random_state))
        users, items = self._pairs(users, items)
        max_words = max_words or self.max_len
        dev = self.net_.word.weight.device
        banned = torch.tensor([PAD, 1, self.bos_], device=dev)  # padding, unknown word and <bos> are never written
        out = []
        with torch.no_grad():
            for s in range(0, len(users), batch):
                u, i = torch.as_tensor(users[s:s + batch], device=dev), torch.as_tensor(items[s:s + batch], device=dev)
                prof = torch.as_tensor(self.profile(items[s:s + batch]), device=dev)
                words = torch.full((len(u), 1), self.bos_, device=dev)
                done = torch.zeros(len(u), dtype=torch.bool, device=dev)
                for _ in range(max_words):
                    logits = self.net_(u, prof, i, words)[2][:, -1]
                    logits[:, banned] = -torch.inf
                    if top_k is None:
                        choice = logits.argmax(-1)
                    else:
                        best, idx = torch.topk(logits / temperature, min(top_k, logits.shape[1]), dim=-1)
                        pick = torch.multinomial(torch.softmax(best, -1), 1, generator=generator)
                        choice = idx.gather(1, pick)[:, 0]
                    nxt = torch.where(done, torch.full_like(done, self.eos_, dtype=torch.long), choice)
                    words = torch.cat([words, nxt[:, None]], dim=1)
                    done |= nxt == self.eos_
                    if done.all():
                        break
                for row in words[:, 1:].tolist():
                    row = row[:row.index(self.eos_)] if self.eos_ in row else row
                    out.append(" ".join(self.vocab_[t] for t in row))
        return out
