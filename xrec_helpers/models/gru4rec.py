"""GRU4Rec: a session/sequence recommender that reads the last events and predicts the next item.

Taught in 04_shap_sequential. The user is *the sequence of items they interacted with, in time
order*; the model reads the last ``max_len`` events with a GRU and scores every item by the dot
product of the final state with the item's (tied) embedding, as ReChorus's GRU4Rec does.

Because the user representation is a function of the sequence, ``score_sequences`` scores *any*
edited sequence without retraining. How an edited sequence is scored:

* **Removing** events means deleting them: the remaining events keep their order and the model reads
  the shorter sequence (only the last ``max_len`` events are read; older ones are cut).
* **Replacing** an event by a baseline item means putting that item at the event's position.
* Every sequence starts with a learned begin-of-sequence token, so even an empty sequence has a
  well-defined score (the model's prior, close to popularity).
* Sequences are right-padded and the state is read at each sequence's own last position; the GRU is
  causal, so padding never changes a score (a test checks this).

This is not a ``HistoryRecommender``: a 0/1 multi-hot history has no order, so the foundation's
``perturbation_curves`` cannot drive it; ``metrics/sequence_perturbation.py`` applies the same
protocol to sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import trange

from xrec_helpers.models._torch import generator, prepare_cpu_training
from xrec_helpers.models.base import Recommender


def user_sequences(ratings: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's items in time order (ties keep the frame's order), as a list indexed by user id.

    Taught in 04_shap_sequential. Users without ratings get an empty array.
    """
    frame = ratings[["user", "item", "timestamp"]].reset_index(drop=True)
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy(), frame["user"].to_numpy()))
    users = frame["user"].to_numpy()[order]
    items = frame["item"].to_numpy()[order].astype(np.int64)
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u]:bounds[u + 1]] for u in range(n_users)]


def leave_last_out(sequences: Sequence[np.ndarray], n: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Split off each user's last ``n`` events: (shortened sequences, held-out items (n_users, n)).

    Taught in 04_shap_sequential (``n=2``: second-last is validation, last is test). Users with fewer
    than ``n + 1`` events raise a ValueError (they would have no history left).
    """
    short = [u for u, s in enumerate(sequences) if len(s) < n + 1]
    if short:
        raise ValueError(f"Users {short[:5]} have fewer than {n + 1} events; filter them out before a "
                         f"leave-{n}-out split.")
    return [np.asarray(s[:-n]) for s in sequences], np.array([s[-n:] for s in sequences], dtype=np.int64)


class _GRUNet(torch.nn.Module):
    def __init__(self, n_items: int, emb: int, hidden: int, g: torch.Generator):
        super().__init__()
        # Rows 0..n_items-1 are items, n_items is the begin-of-sequence token, n_items+1 padding.
        self.embedding = torch.nn.Embedding(n_items + 2, emb, padding_idx=n_items + 1)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.randn(n_items + 2, emb, generator=g) * 0.05)
            self.embedding.weight[n_items + 1] = 0
        self.gru = torch.nn.GRU(emb, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, emb)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))
        self.n_items = n_items

    def states(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, T) tokens -> (batch, T, emb) query vectors, one per position."""
        out, _ = self.gru(self.embedding(tokens))
        return self.out(out)

    def logits(self, query: torch.Tensor) -> torch.Tensor:
        return query @ self.embedding.weight[: self.n_items].T + self.item_bias


class GRU4Rec(Recommender):
    """GRU4Rec with tied item embeddings, trained with full softmax cross-entropy on next items.

    Taught in 04_shap_sequential. ``fit(train, sequences)`` needs the time-ordered sequences (build
    them with :func:`user_sequences`); ``train`` is the matching user x item matrix (it defines
    the seen items that ``recommend`` excludes). Scores are logits (unbounded, can be negative).

    Args:
        max_len: events the model reads (the most recent ones); also the training window length.
        emb_size, hidden_size: embedding and GRU state sizes.
        epochs, lr, weight_decay, batch_size: Adam training settings (batch = windows per step).
        dropout: dropout on the input embeddings during training.
        random_state: seed for initialisation and shuffling.
        threads: torch CPU threads (set globally while fitting and scoring). A GRU step is a small
            matrix product, so on a few shared cores thread synchronisation costs more than it saves
            (measured 10x slower with 2 threads on a busy 2-core machine); None leaves torch's setting.
    """

    def __init__(self, max_len: int = 20, emb_size: int = 64, hidden_size: int = 64, epochs: int = 10,
                 lr: float = 3e-3, weight_decay: float = 0.0, batch_size: int = 128, dropout: float = 0.2,
                 random_state: int | None = 0, threads: int | None = 1, progress: bool = False):
        self.max_len, self.emb_size, self.hidden_size, self.epochs = max_len, emb_size, hidden_size, epochs
        self.lr, self.weight_decay, self.batch_size, self.dropout = lr, weight_decay, batch_size, dropout
        self.random_state, self.threads, self.progress = random_state, threads, progress

    # --- training ------------------------------------------------------------------------------
    def _windows(self, sequences: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut each sequence into windows of ``max_len`` targets; the input is BOS + previous events.

        A window starts the GRU from scratch, exactly as inference does on the last ``max_len`` events.
        """
        bos, pad = self.n_items, self.n_items + 1
        inputs, targets = [], []
        for seq in sequences:
            for end in range(len(seq), 0, -self.max_len):
                start = max(0, end - self.max_len)
                tgt = seq[start:end]
                # Context for the first target: the max_len - 1 events before it would be ideal, but
                # starting a window at BOS matches how a cut sequence is read at inference.
                inp = np.concatenate([[bos], seq[start:end - 1]])
                row_in = np.full(self.max_len, pad, dtype=np.int64)
                row_t = np.full(self.max_len, -100, dtype=np.int64)  # -100: ignored by cross_entropy
                row_in[: len(inp)], row_t[: len(tgt)] = inp, tgt
                inputs.append(row_in)
                targets.append(row_t)
        return torch.as_tensor(np.array(inputs)), torch.as_tensor(np.array(targets))

    def fit(self, train: sp.csr_matrix, sequences: Sequence[np.ndarray] | None = None) -> GRU4Rec:
        """Learn next-item prediction from ``sequences`` (one time-ordered item array per user)."""
        train = self._set_train(train)
        if sequences is None:
            raise ValueError("GRU4Rec needs the time-ordered sequences: fit(train, user_sequences(ratings, n_users)). "
                             "A user x item matrix has no order.")
        if len(sequences) != train.shape[0]:
            raise ValueError(f"{len(sequences)} sequences for {train.shape[0]} users: pass one (possibly empty) "
                             "sequence per user, in user-id order.")
        self.sequences_ = [self._check_sequence(s) for s in sequences]
        prepare_cpu_training(self.threads)
        g = generator(self.random_state)
        self.net_ = _GRUNet(self.n_items, self.emb_size, self.hidden_size, g)
        optimiser = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        X, Y = self._windows([s for s in self.sequences_ if len(s)])
        self.loss_history_ = []
        self.net_.train()
        for _ in trange(self.epochs, desc="GRU4Rec", disable=not self.progress):
            perm = torch.randperm(len(X), generator=g)
            total, count = 0.0, 0
            for start in range(0, len(X), self.batch_size):
                idx = perm[start:start + self.batch_size]
                emb = self.net_.embedding(X[idx])
                if self.dropout:
                    keep = (torch.rand(emb.shape[:2], generator=g) >= self.dropout).unsqueeze(-1)
                    emb = emb * keep / (1 - self.dropout)
                out, _ = self.net_.gru(emb)
                logits = self.net_.logits(self.net_.out(out))
                y = Y[idx]
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.n_items), y.reshape(-1),
                                                         ignore_index=-100, reduction="sum")
                n = (y >= 0).sum().clamp(min=1)
                optimiser.zero_grad()
                (loss / n).backward()
                optimiser.step()
                total, count = total + loss.item(), count + int(n)
            self.loss_history_.append(total / max(count, 1))
        self.net_.eval()
        return self

    # --- scoring -------------------------------------------------------------------------------
    def _check_sequence(self, seq) -> np.ndarray:
        arr = np.asarray(seq)
        if arr.ndim != 1:
            raise ValueError(f"A sequence must be a 1-d array of item ids, got shape {arr.shape}.")
        if len(arr) == 0:
            return arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"Sequences hold internal item ids (integers), got {arr.dtype}.")
        bad = arr[(arr < 0) | (arr >= self.n_items)]
        if len(bad):
            raise IndexError(f"Unknown item id(s) {bad[:5].tolist()} in a sequence: internal ids run "
                             f"0..{self.n_items - 1}.")
        return arr.astype(np.int64)

    def _tokens(self, sequences: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded BOS + last ``max_len`` events, and each row's last position."""
        cut = [self._check_sequence(s)[-self.max_len:] for s in sequences]
        lengths = np.array([len(s) for s in cut], dtype=np.int64)
        width = int(lengths.max(initial=0)) + 1
        tokens = np.full((len(cut), width), self.n_items + 1, dtype=np.int64)
        tokens[:, 0] = self.n_items
        for r, s in enumerate(cut):
            tokens[r, 1:1 + len(s)] = s
        return torch.as_tensor(tokens), torch.as_tensor(lengths)

    def torch_query(self, sequences: Sequence[np.ndarray]) -> torch.Tensor:
        """(batch, emb) query vectors: item j's score is ``query @ E_j + b_j``."""
        self._net()
        tokens, last = self._tokens(sequences)
        with torch.no_grad():
            states = self.net_.states(tokens)
            return states[torch.arange(len(tokens)), last]

    def score_sequences(self, sequences: Sequence[np.ndarray], items: np.ndarray | None = None,
                        batch_size: int = 4096) -> np.ndarray:
        """Scores (logits) of every item, or of ``items`` only, for a batch of item sequences.

        Taught in 04_shap_sequential. Each sequence is a time-ordered 1-d array of internal item
        ids (oldest first); only its last ``max_len`` events are read. ``items`` (1-d) restricts the
        output columns, which is much cheaper when an explainer scores thousands of edited sequences.
        """
        self._net()
        if items is not None:
            items = self._check_sequence(np.asarray(items))
        out = []
        for start in range(0, len(sequences), batch_size):
            q = self.torch_query(sequences[start:start + batch_size])
            with torch.no_grad():
                if items is None:
                    s = self.net_.logits(q)
                else:
                    idx = torch.as_tensor(items)
                    s = q @ self.net_.embedding.weight[idx].T + self.net_.item_bias[idx]
            out.append(s.numpy())
        n_cols = self.n_items if items is None else len(items)
        return np.concatenate(out) if out else np.zeros((0, n_cols), dtype=np.float32)

    def _net(self) -> _GRUNet:
        self._fitted()
        if self.threads:
            torch.set_num_threads(self.threads)
        return self.net_

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.score_sequences([self.sequences_[u] for u in users])
