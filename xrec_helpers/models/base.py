"""The Recommender contract (scikit-learn spirit) and its history-conditioned extension.

Used by every model of :mod:`xrec_helpers.models`. ``fit`` returns self; the constructor takes hyperparameters only.
``HistoryRecommender.score_histories`` scores *any* 0/1 history, which is what lets an
explanation be checked by removing items without retraining.

Inputs are checked at this boundary: ``fit`` copies the caller's matrix (a model never writes
into it) and refuses NaN/inf; user ids must be integers; histories must be finite 2-D 0/1 batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from xrec_helpers._ids import check_ids

UserIds = int | Iterable[int] | np.ndarray

# Capabilities a model declares (``Recommender.capabilities``) and an explainer or protocol requires
# (``Explainer.requires``). Declared, never guessed from the class: see ``capabilities_of``.
#: ``score(users)`` / ``recommend(users, k)``: every recommender.
SCORE = "score"
#: ``score_histories(X)``: scores any edited 0/1 history without retraining (01_eda).
SCORE_HISTORIES = "score_histories"
#: ``torch_scores(X)``: differentiable scores of a float history batch, for gradient explainers (05_lxr).
TORCH_SCORES = "torch_scores"
#: ``score_sequences(seqs)``: scores of event sequences (04_shap_sequential).
SCORE_SEQUENCES = "score_sequences"
#: ``predict(users, items)``: the score of given (user, item) pairs, e.g. a predicted rating (07_neighbourhood_mf).
PREDICT = "predict"
#: its input is a row of named features (``features``, ``predict_encoded``), for feature explainers (03_fm_lime).
FEATURE_INPUTS = "feature_inputs"
#: per-(user, item) gradients and Hessians of its training loss, for influence functions (06_accent).
#: The methods FIA (``explainers.influence.FastInfluence``) reads, on NCF and RCF alike:
#:
#: * ``user_parameters(user)``: the user's own parameters theta, a float64 vector (the only ones FIA moves);
#: * ``user_score_function(user, without=())``: ``f(theta, items) -> (B,)`` float64 scores of ``items`` for that
#:   user; ``without`` (items removed from the user's data) leaves those items out of the model's inputs where
#:   the user's items are inputs (RCF's neighbour lists; NCF ignores it);
#: * ``user_training_losses(user, without=())``: ``(losses, removes)``: ``losses(theta) -> (n_rows,)`` the
#:   unregularised training losses of the user's rows (NCF: squared errors of the ratings; RCF: BPR losses of the
#:   pairs) and ``removes`` the item whose removal drops each row (the rated item; RCF: the pair's positive);
#:   with ``without``, the rows those items own are dropped and (RCF) the items leave every kept row's inputs,
#:   which is what the user-refit verification re-fits on (``metrics.refit``);
#: * ``influence_counts(user, targets, normalization)``: per target, how many rows FIA's objective averages
#:   over (``"local"`` or ``"global"``); ``influence_l2`` (the objective's L2 coefficient on theta) and
#:   ``influence_damping`` (FIA's default damping: 1e-6 on NCF, 0.01 on RCF);
#: * optional ``user_score_without_function(user)``: ``g(thetas (Z, p), removed (Z,), items) -> (Z, B)``, the
#:   scores with each moved theta *and* its removed item out of the model's inputs (RCF, whose inputs are the
#:   user's items). Without it FIA predicts the linear change ``grad f . delta theta``;
#: * optional ``user_score_jacobian(user, without=())``: ``jac(theta, items) -> (B, p)``, the gradients of ``f`` in
#:   theta, and ``user_training_loss_derivatives(user, without=())``: ``d(theta) -> (grads (n_rows, p), hessian
#:   (p, p))``, the per-row gradients of ``losses`` and the Hessian of their sum, both computed without autograd
#:   (NCF: both hooks; RCF: the loss derivatives; 06_accent: exact and fast). FIA and the user refit use them when
#:   present, ``torch.func`` otherwise.
INFLUENCE = "influence"
#: retraining from a warm start with some ratings removed, for verification (06_accent).
RETRAIN = "retrain"
#: an item-based decomposition of its own scores (implicit's ``explain``; 08_als_item_style).
ITEM_DECOMPOSITION = "item_decomposition"
#: attention weights over the item's reviews (09_attention_reviews).
REVIEW_ATTENTION = "review_attention"
#: per-(user, item) attention weights over the user's own items (``item_attention(user, item)``),
#: ``score_without(user, removed, items)``, re-scoring with items left out of the inputs, and
#: ``score_without_many(user, removals, items)``, the same for many removal sets at once (06_accent, RCF).
ITEM_ATTENTION = "item_attention"

#: Every capability name, with what it promises (for error messages and the conformance suite).
CAPABILITIES: dict[str, str] = {
    SCORE: "score(users) and recommend(users, k)",
    SCORE_HISTORIES: "score_histories(X) of edited 0/1 histories",
    TORCH_SCORES: "torch_scores(X), differentiable in the history",
    SCORE_SEQUENCES: "score_sequences(sequences)",
    PREDICT: "predict(users, items) for given pairs",
    FEATURE_INPUTS: "feature-row inputs (features, predict_encoded)",
    INFLUENCE: "influence-function gradients and Hessians",
    RETRAIN: "warm-start retraining with ratings removed",
    ITEM_DECOMPOSITION: "an item-based decomposition of its scores",
    REVIEW_ATTENTION: "attention weights over reviews",
    ITEM_ATTENTION: "per-(user, item) attention weights over the user's own items, and re-scoring without some",
}


def capabilities_of(model: object) -> frozenset[str]:
    """The capabilities ``model`` declares (its class's ``capabilities``); empty for anything else.

    Used by ``Explainer.supports(model)``, which compares this with the explainer's
    ``requires``, so no code switches on model classes.

    Parameters
    ----------
    model : object
        A model instance (or class).

    Returns
    -------
    frozenset of str
    """
    return frozenset(getattr(model, "capabilities", frozenset()))


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit``."""


def check_rating_range(train: sp.csr_matrix, rating_range: tuple[float, float]) -> None:
    """Refuse explicit ratings outside ``rating_range`` (e.g. 50 or -3 on a 1-5 scale), with the fix in the message.

    Used by the rating models (EMF, FM).

    Parameters
    ----------
    train : sp.csr_matrix
        User x item matrix of explicit ratings.
    rating_range : tuple[float, float]
        The (lowest, highest) rating of the scale.

    Raises
    ------
    ValueError
        When a stored rating lies outside ``rating_range``.
    """
    low, high = rating_range
    outside = (train.data < low) | (train.data > high)
    if outside.any():
        odd = np.unique(train.data[outside])[:5].tolist()
        raise ValueError(f"{int(outside.sum())} rating(s) lie outside the scale {low:g}-{high:g} (e.g. {odd}): "
                         "fix the data, or set rating_range=(low, high) for another scale.")


class Recommender(ABC):
    """Base class: ``fit(train)``, ``score(users)``, ``recommend(users, k)``.

    ``train`` is a user x item CSR matrix (binary or ratings); the model keeps it as ``train_`` so
    that ``recommend(..., exclude_seen=True)`` knows each user's history.
    """

    train_: sp.csr_matrix | None = None
    #: What the model offers explainers and protocols (names above); subclasses extend it.
    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE})

    @abstractmethod
    def fit(self, train: sp.csr_matrix) -> Recommender:
        """Learn from the training matrix; returns self.

        Parameters
        ----------
        train : sp.csr_matrix
            User x item matrix of the training interactions (0/1, or ratings for rating models).

        Returns
        -------
        Recommender
            The fitted model.
        """

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Scores for validated internal user ids, shape (len(users), n_items)."""

    @property
    def n_users(self) -> int:
        """Number of users of the training matrix."""
        return self._fitted().shape[0]

    @property
    def n_items(self) -> int:
        """Number of items of the training matrix."""
        return self._fitted().shape[1]

    def _fitted(self) -> sp.csr_matrix:
        if self.train_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call .fit(train) first.")
        return self.train_

    def _set_train(self, train: sp.csr_matrix) -> sp.csr_matrix:
        """Validate ``train`` and keep a float32 *copy* as ``train_`` (the caller's matrix is never modified)."""
        if not sp.issparse(train):
            raise TypeError(f"fit expects a scipy.sparse user x item matrix, got {type(train).__name__}; "
                            "build one with Dataset.csr(ratings).")
        if train.ndim != 2:
            raise ValueError(f"fit expects a 2-D user x item matrix, got shape {train.shape}.")
        if train.nnz == 0:
            raise ValueError("The training matrix is empty: there is nothing to learn from.")
        copy = sp.csr_matrix(train, dtype=np.float32, copy=True)
        copy.sum_duplicates()
        if not np.isfinite(copy.data).all():
            raise ValueError(f"The training matrix holds {int((~np.isfinite(copy.data)).sum())} NaN/inf value(s): "
                             "drop or fill those ratings first (Dataset.csr refuses them).")
        self.train_ = copy
        return self.train_

    def check_users(self, users: UserIds) -> np.ndarray:
        """Validate internal user ids (integers, not floats, strings or bools) and return them as an int array.

        Parameters
        ----------
        users : UserIds
            Internal user id(s): an int, an iterable of ints or an integer array (floats, strings and bools are
            refused).

        Returns
        -------
        np.ndarray
            The ids as a 1-D int64 array.

        Raises
        ------
        TypeError
            For a float, string, bool or object id.
        IndexError
            For an id out of range.
        """
        return check_ids(users, self.n_users, "user")

    def score(self, users: UserIds) -> np.ndarray:
        """Scores of every item for ``users``, shape (n_users_asked, n_items); higher is better.

        Parameters
        ----------
        users : UserIds
            Internal user id(s): an int, an iterable of ints or an integer array (floats, strings and bools are
            refused).

        Returns
        -------
        np.ndarray
            Scores of shape (n_users_asked, n_items).
        """
        return self._score(self.check_users(users))

    def recommend(self, users: UserIds, k: int = 10, exclude_seen: bool = True) -> np.ndarray:
        """Top-``k`` internal item ids per user, best first, shape (n_users_asked, k).

        Parameters
        ----------
        users : UserIds
            Internal user id(s): an int, an iterable of ints or an integer array (floats, strings and bools are
            refused).
        k : int
            Length of each list.
        exclude_seen : bool
            Leave out the items of each user's training history.

        Returns
        -------
        np.ndarray
            Internal item ids of shape (n_users_asked, k), best first.
        """
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

    ``score_histories(X)`` scores arbitrary (edited) histories (capability ``SCORE_HISTORIES``); ``score(users)`` is
    ``score_histories(train_[users])``. ``fit`` keeps the *binarised* training matrix (every stored
    rating > 0 becomes 1), so ``score(users)`` scores the same 0/1 rows the model was trained on.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, SCORE_HISTORIES})

    def _set_train(self, train: sp.csr_matrix) -> sp.csr_matrix:
        copy = super()._set_train(train)
        if (copy.data < 0).any():
            raise ValueError(f"The training matrix holds {int((copy.data < 0).sum())} negative value(s): a history "
                             "model reads 0/1 'watched' histories. Binarise the ratings first (splits.binarize).")
        copy.data = (copy.data > 0).astype(np.float32)
        copy.eliminate_zeros()
        if copy.nnz == 0:
            raise ValueError("The training matrix has no positive entry: there is nothing to learn from.")
        self.train_ = copy
        return copy

    @abstractmethod
    def score_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Scores for a batch of 0/1 histories, shape (batch, n_items).

        Parameters
        ----------
        histories : np.ndarray | sp.spmatrix
            One 0/1 history row or a (batch, n_items) batch, dense or sparse.

        Returns
        -------
        np.ndarray
            Scores of shape (batch, n_items).
        """

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.score_histories(self.train_[users])

    def use_histories(self, histories: sp.csr_matrix) -> HistoryRecommender:
        """Score users from ``histories`` from now on, without retraining; returns self.

        Taught in 05_lxr: fit on the training users' rows, then hand over the matrix that also holds
        the validation and test users, so they are scored from their own histories (a user-level split).

        Parameters
        ----------
        histories : sp.csr_matrix
            User x item 0/1 matrix that holds every user to be scored.

        Returns
        -------
        HistoryRecommender
            The model itself (``train_`` is now ``histories``).
        """
        self._fitted()
        if not sp.issparse(histories) or histories.shape[1] != self.n_items:
            raise ValueError(f"histories must be a sparse matrix with {self.n_items} item columns.")
        matrix = sp.csr_matrix(histories, dtype=np.float32, copy=True)
        self.validate_histories(matrix)
        self.train_ = matrix
        return self

    def validate_histories(self, histories: np.ndarray | sp.spmatrix) -> None:
        """Raise unless ``histories`` is one row or a 2-D batch of finite 0/1 values with ``n_items`` columns.

        Refuses, with what to do: more than 2 dimensions, the wrong number of columns, NaN/inf, and
        values other than 0 and 1 (a rating row 1-5 or a -1 is not a history; binarise it with ``X > 0``).

        Parameters
        ----------
        histories : np.ndarray | sp.spmatrix
            One 0/1 history row or a (batch, n_items) batch, dense or sparse.

        Raises
        ------
        ValueError
            For a wrong shape, a non-finite value or a value other than 0 and 1.
        """
        if sp.issparse(histories):
            values, shape = histories.data, histories.shape
        else:
            values = np.asarray(histories)
            if values.ndim > 2:
                raise ValueError(f"Histories must be one row or a 2-D (batch, n_items) batch, got shape {values.shape}; "
                                 "reshape to (-1, n_items) or loop over the batches.")
            shape = np.atleast_2d(values).shape
        if shape[1] != self.n_items:
            raise ValueError(f"Histories have {shape[1]} columns, the model has {self.n_items} items.")
        if values.dtype.kind not in "biuf":
            raise TypeError(f"Histories must be numeric 0/1, got dtype {values.dtype}.")
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError("Histories hold NaN or inf: a history is 0/1 (1 = the user has the item).")
        ok = (values == 0) | (values == 1)
        if not ok.all():
            odd = np.unique(values[~ok])[:5].tolist()
            raise ValueError(f"Histories must be 0/1, found {odd}: a rating row or a signed vector is not a history. "
                             "Binarise it first, e.g. (X > 0).astype(float).")

    def check_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Dense float32 (batch, n_items) array from a dense or sparse batch of 0/1 histories (validated).

        Parameters
        ----------
        histories : np.ndarray | sp.spmatrix
            One 0/1 history row or a (batch, n_items) batch, dense or sparse.

        Returns
        -------
        np.ndarray
            Dense float32 array of shape (batch, n_items).

        Raises
        ------
        ValueError
            As :meth:`validate_histories`.
        """
        self.validate_histories(histories)
        arr = histories.toarray() if sp.issparse(histories) else np.atleast_2d(np.asarray(histories))
        return arr.astype(np.float32, copy=False)
