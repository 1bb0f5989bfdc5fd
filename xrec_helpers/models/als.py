"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008): a thin wrapper of implicit's CPU solver.

Taught in 08_als_item_style. implicit fits the factors; this wrapper adds what the course needs:

* ``fold_in(histories)``: the closed-form user factor of *any* 0/1 history given the item factors,
  p = (YᵀY + λI + Σ_j (c_j − 1) y_j y_jᵀ)⁻¹ Σ_j c_j y_j with confidence c_j = alpha for a history item
  (implicit's convention: it multiplies the matrix by ``alpha``; unobserved cells have c = 1, p = 0).
* ``score_histories`` = fold-in followed by the dot product with the item factors, so an edited
  history is re-scored exactly without retraining (the counterfactual metrics need this).
* ``score(users)`` follows the contract (it folds in each user's training row). implicit's own
  ``recommend`` ranks by the *stored* user factors, which are one half-sweep stale (the items were
  updated after them in the last iteration); ``stored_scores`` gives those for comparison.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from xrec_helpers.models.base import ITEM_DECOMPOSITION, SCORE, SCORE_HISTORIES, HistoryRecommender, UserIds


class ALS(HistoryRecommender):
    """Weighted-confidence ALS on a binary user x item matrix, fitted by ``implicit``.

    Taught in 08_als_item_style.

    Parameters
    ----------
    factors
        latent dimension.
    regularization
        λ, the L2 penalty on user and item factors.
    alpha
        confidence of an observed cell (implicit multiplies the matrix by it; unobserved cells
        have confidence 1 and preference 0).
    iterations
        full ALS sweeps (each: all users, then all items).
    use_cg
        implicit's conjugate-gradient solver (fast, approximate) instead of Cholesky.
    random_state
        seed of implicit's initialisation.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, SCORE_HISTORIES, ITEM_DECOMPOSITION})

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 10.0,
                 iterations: int = 15, use_cg: bool = True, random_state: int | None = 0):
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.use_cg, self.random_state = iterations, use_cg, random_state

    def fit(self, train: sp.csr_matrix) -> ALS:
        """Fit implicit's CPU ALS on the binarised ``train`` (users x items); returns self.

        Parameters
        ----------
        train : sp.csr_matrix
            User x item matrix; every stored value counts as 1.

        Returns
        -------
        ALS
            The fitted model.
        """
        from implicit.cpu.als import AlternatingLeastSquares  # the CPU class: explain() is CPU-only

        if self.alpha <= 0:
            raise ValueError(f"alpha={self.alpha} must be positive (it is the confidence of an observed cell).")
        # _set_train keeps a binarised copy (preferences are 0/1; confidence comes from alpha): the
        # caller's rating matrix is never overwritten.
        train = self._set_train(train)
        # implicit warns (and runs far slower) when BLAS uses a thread pool inside its own threads.
        with threadpool_limits(1, "blas"):
            self.model_ = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, use_cg=self.use_cg, random_state=self.random_state, num_threads=1)
            self.model_.fit(train, show_progress=False)
        self.item_factors_ = np.asarray(self.model_.item_factors)
        self.stored_user_factors_ = np.asarray(self.model_.user_factors)
        # Same float32 YᵀY implicit caches, so our closed form matches its explain() to ~1e-7.
        self._YtY = np.asarray(self.model_.YtY, dtype=np.float64)
        self._Y64 = self.item_factors_.astype(np.float64)
        return self

    # --- the closed form ------------------------------------------------------------------------
    def _as_sparse(self, histories: np.ndarray | sp.spmatrix) -> sp.csr_matrix:
        # 0/1 only, like the binarised matrix fit saw: a 1-5 row would silently scale the confidences.
        self.validate_histories(histories)
        X = sp.csr_matrix(histories if sp.issparse(histories) else np.atleast_2d(np.asarray(histories)),
                          dtype=np.float64)
        X.eliminate_zeros()
        return X

    def normal_equations(self, histories: np.ndarray | sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
        """(A, b) per history: A = YᵀY + λI + Σ_j (c_j − 1) y_j y_jᵀ, b = Σ_j c_j y_j (float64).

        Taught in 08_als_item_style: A⁻¹ is Hu et al.'s W^u, the weighting behind item-style explanations.

        Parameters
        ----------
        histories : np.ndarray | sp.spmatrix
            One 0/1 history row or a (batch, n_items) batch, dense or sparse.

        Returns
        -------
        tuple[np.ndarray, np.ndarray]
            A of shape (batch, factors, factors) and b of shape (batch, factors).
        """
        self._fitted()
        X = self._as_sparse(histories)
        C = X * np.float32(self.alpha)  # confidences, as implicit computes them (float32 products)
        C.data = C.data.astype(np.float32).astype(np.float64)
        k, Y = self.factors, self._Y64
        A = np.empty((C.shape[0], k, k))
        A[:] = self._YtY + self.regularization * np.eye(k)
        # One small GEMM per history over its own items only (a sparse x (items, k*k) product is
        # single-threaded and much slower).
        with threadpool_limits(1, "blas"):  # many tiny GEMMs: a BLAS thread pool only adds overhead
            for r in range(C.shape[0]):
                lo, hi = C.indptr[r], C.indptr[r + 1]
                if hi > lo:
                    Yh = Y[C.indices[lo:hi]]
                    A[r] += (Yh * (C.data[lo:hi] - 1.0)[:, None]).T @ Yh
        b = np.asarray(C @ Y)
        return A, b

    def fold_in(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Exact (Cholesky-quality) user factors of a batch of histories, shape (batch, factors).

        Used by :meth:`score_histories` and :class:`ALSExplainer`: this is how ALS re-scores an edited history
        without retraining.

        Parameters
        ----------
        histories : np.ndarray | sp.spmatrix
            One 0/1 history row or a (batch, n_items) batch, dense or sparse.

        Returns
        -------
        np.ndarray
            User factors of shape (batch, factors).
        """
        A, b = self.normal_equations(histories)
        return np.linalg.solve(A, b[..., None])[..., 0]

    def score_histories(self, histories: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Scores (batch, n_items) of the folded-in histories: p(x) · y_i.

        Parameters
        ----------
        histories : np.ndarray | sp.spmatrix
            One 0/1 history row or a (batch, n_items) batch, dense or sparse.

        Returns
        -------
        np.ndarray
            Scores of shape (batch, n_items).
        """
        return (self.fold_in(histories) @ self._Y64.T).astype(np.float32)

    def stored_scores(self, users: UserIds) -> np.ndarray:
        """Scores from implicit's stored user factors (what ``model_.recommend`` ranks by).

        Parameters
        ----------
        users : UserIds
            Internal user id(s).

        Returns
        -------
        np.ndarray
            Scores of shape (n_users_asked, n_items).
        """
        users = self.check_users(users)
        return self.stored_user_factors_[users].astype(np.float64) @ self.item_factors_.T.astype(np.float64)
