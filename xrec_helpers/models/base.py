"""The Recommender contract (scikit-learn spirit) and its history-conditioned extension.

Taught in 01_eda. ``fit`` returns self; the constructor takes hyperparameters only.
``HistoryRecommender.score_histories`` scores *any* 0/1 history, which is what lets an
explanation be checked by removing items without retraining.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

UserIds = int | Iterable[int] | np.ndarray


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit``."""


class Recommender(ABC):
    """Base class: ``fit(train)``, ``score(users)``, ``recommend(users, k)``.

    ``train`` is a user x item CSR matrix (binary or ratings); the model keeps it as ``train_`` so
    that ``recommend(..., exclude_seen=True)`` knows each user's history.
    """

    train_: sp.csr_matrix | None = None

    @abstractmethod
    def fit(self, train: sp.csr_matrix) -> Recommender:
        """Learn from the training matrix; returns self."""

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Scores for validated internal user ids, shape (len(users), n_items)."""

    @property
    def n_users(self) -> int:
        return self._fitted().shape[0]

    @property
    def n_items(self) -> int:
        return self._fitted().shape[1]

    def _fitted(self) -> sp.csr_matrix:
        if self.train_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call .fit(train) first.")
        return self.train_

    def _set_train(self, train: sp.csr_matrix) -> sp.csr_matrix:
        if not sp.issparse(train):
            raise TypeError(f"fit expects a scipy.sparse user x item matrix, got {type(train).__name__}; "
                            "build one with Dataset.csr(ratings).")
        if train.nnz == 0:
            raise ValueError("The training matrix is empty: there is nothing to learn from.")
        self.train_ = sp.csr_matrix(train, dtype=np.float32)
        return self.train_

    def check_users(self, users: UserIds) -> np.ndarray:
        """Validate internal user ids and return them as an int array."""
        arr = np.atleast_1d(np.asarray(users if not isinstance(users, range) else list(users)))
        if arr.dtype.kind not in "iu":
            raise TypeError(f"User ids must be integers (internal ids), got {arr.dtype}.")
        bad = arr[(arr < 0) | (arr >= self.n_users)]
        if len(bad):
            raise IndexError(f"Unknown user id(s) {bad[:5].tolist()}: internal ids run 0..{self.n_users - 1}. "
                             "Map raw ids with Dataset.user_index(raw_id).")
        return arr.astype(np.int64)

    def score(self, users: UserIds) -> np.ndarray:
        """Scores of every item for ``users``, shape (n_users_asked, n_items); higher is better."""
        return self._score(self.check_users(users))

    def recommend(self, users: UserIds, k: int = 10, exclude_seen: bool = True) -> np.ndarray:
        """Top-``k`` internal item ids per user, best first, shape (n_users_asked, k)."""
        users = self.check_users(users)
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k={k} must be between 1 and the catalogue size {self.n_items}.")
        scores = np.asarray(self._score(users), dtype=np.float64).copy()
        if exclude_seen:
            seen = self.train_[users]
            n_unseen = self.n_items - np.diff(seen.indptr)
            if (n_unseen < k).any():
                who = users[n_unseen < k][:5].tolist()
                raise ValueError(f"k={k} exceeds the number of unseen items for user(s) {who}; "
                                 "lower k or use exclude_seen=False.")
            rows = np.repeat(np.arange(len(users)), np.diff(seen.indptr))
            scores[rows, seen.indices] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)


class HistoryRecommender(Recommender):
    """A recommender whose user representation is a function of the 0/1 history vector.

    ``score_histories(X)`` scores arbitrary (edited) histories; ``score(users)`` is
    ``score_histories(train_[users])``.
    """

    @abstractmethod
    def score_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Scores for a batch of 0/1 histories, shape (batch, n_items)."""

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.score_histories(self.train_[users])

    def use_histories(self, histories: sp.csr_matrix) -> HistoryRecommender:
        """Score users from ``histories`` from now on, without retraining; returns self.

        Taught in 05_lxr: fit on the training users' rows, then hand over the matrix that also holds
        the validation and test users, so they are scored from their own histories (a user-level split).
        """
        self._fitted()
        if not sp.issparse(histories) or histories.shape[1] != self.n_items:
            raise ValueError(f"histories must be a sparse matrix with {self.n_items} item columns.")
        self.train_ = sp.csr_matrix(histories, dtype=np.float32)
        return self

    def check_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Dense float32 (batch, n_items) array from a dense or sparse batch, with a shape check."""
        arr = histories.toarray() if sp.issparse(histories) else np.asarray(histories)
        arr = np.atleast_2d(arr).astype(np.float32, copy=False)
        if arr.shape[1] != self.n_items:
            raise ValueError(f"Histories have {arr.shape[1]} columns, the model has {self.n_items} items.")
        return arr
