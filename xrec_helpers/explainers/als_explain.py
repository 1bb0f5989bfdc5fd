"""Item-style explanations of ALS (Hu, Koren & Volinsky 2008, §5) via implicit's ``explain``.

Taught in 08_als_item_style. With W^u = (YᵀC^uY + λI)⁻¹ the folded-in score decomposes exactly as
r̂_ui = Σ_{j in history} (y_iᵀ W^u y_j) c_uj: each history item j contributes s_ij·c_uj, and the
contributions sum to the score of the freshly folded-in user (``ALS.fold_in``). They can be
negative, so they are drawn as signed bars, never as a pie.

``batched_explain`` computes the same numbers for many (user, item) pairs at once (one batched
solve, one sparse product) instead of one Cholesky factorisation and a Python loop per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models.als import ALS
from xrec_helpers.models.base import ITEM_DECOMPOSITION


def batched_explain(model: ALS, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                    histories: sp.spmatrix | None = None) -> tuple[np.ndarray, sp.csr_matrix]:
    """Contributions of every history item to many (user, item) scores at once.

    Taught in 08_als_item_style.

    Parameters
    ----------
    model : ALS
        A fitted model.
    users, items : array-like of int
        One (user, item) pair per position.
    histories : scipy.sparse matrix, optional
        Defaults to the model's training rows of ``users``; pass edited rows to explain a counterfactual
        history.

    Returns
    -------
    totals : numpy.ndarray
        ``totals[b]`` is implicit's ``explain`` total for pair b.
    contributions : scipy.sparse.csr_matrix
        (pairs, n_items); row b holds s_ij·c_uj on the user's history items (rows sum to ``totals``).

    Raises
    ------
    ValueError, IndexError
        On mismatched lengths, unknown item ids or a wrongly shaped ``histories``.
    """
    users = model.check_users(users)
    items = np.atleast_1d(np.asarray(items, dtype=np.int64))
    if len(items) != len(users):
        raise ValueError(f"Got {len(users)} users but {len(items)} items: pass one item per user.")
    bad = items[(items < 0) | (items >= model.n_items)]
    if len(bad):
        raise IndexError(f"Unknown item id(s) {bad[:5].tolist()}: internal ids run 0..{model.n_items - 1}.")
    H = model.train_[users] if histories is None else sp.csr_matrix(histories)
    if H.shape != (len(users), model.n_items):
        raise ValueError(f"histories must have shape {(len(users), model.n_items)}, got {H.shape}.")
    # Solve each user's system once, even when a user appears in many pairs.
    uniq, inverse = np.unique(users, return_inverse=True)
    if histories is None and len(uniq) < len(users):
        A, _ = model.normal_equations(model.train_[uniq])
        A = A[inverse]
    else:
        A, _ = model.normal_equations(H)
    Y = model.item_factors_.astype(np.float64)
    with threadpool_limits(1, "blas"):
        weighted = np.linalg.solve(A, Y[items][..., None])[..., 0]  # y_iᵀ W^u, per pair
    C = sp.csr_matrix(H, dtype=np.float64, copy=True)
    C.eliminate_zeros()
    C.data = (C.data * np.float32(model.alpha)).astype(np.float32).astype(np.float64)
    rows = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    # s_ij c_uj only on the history entries: a row-wise dot product, never the dense (pairs x items) matrix.
    C.data = C.data * np.einsum("ij,ij->i", weighted[rows], Y[C.indices])
    return np.asarray(C.sum(axis=1)).ravel(), C


class ALSExplainer(Explainer):
    """Item-style ALS explanation: each history item's signed contribution to the score.

    Taught in 08_als_item_style. ``explain`` calls implicit's ``explain`` (one Cholesky per call);
    ``explain_many`` uses :func:`batched_explain` (same numbers, vectorised). The explanation is additive:
    ``base_value + values.sum()`` is the folded-in score implicit's ``explain`` returns. An empty history
    folds in to the zero vector, so with the whole history ``base_value`` is only the float rounding of
    the decomposition (below 1e-6); with ``n`` set it also holds the weaker contributors left out.

    Parameters
    ----------
    model : ALS
        A fitted model declaring ``ITEM_DECOMPOSITION`` (:class:`~xrec_helpers.models.als.ALS`).
    titles : sequence of str, optional
        Display titles by internal item id.
    n : int, optional
        How many contributors to keep (None = the whole history, which the perturbation metrics need).

    Raises
    ------
    TypeError
        When the model does not declare ``ITEM_DECOMPOSITION``.
    """

    name = "ALS explain"
    requires = frozenset({ITEM_DECOMPOSITION})

    def __init__(self, model: ALS, *, titles: Sequence[str] | np.ndarray | None = None, n: int | None = None):
        self._attach(model, titles)
        if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
            raise ValueError(f"n={n!r} must be a positive integer (or None for the whole history).")
        self.n = None if n is None else int(n)
        self._weights: dict[int, object] = {}  # per-user Cholesky factors implicit hands back

    def _kept(self, hist: np.ndarray, user: int) -> int:
        if self.n is None:
            return len(hist)
        if self.n > len(hist):
            raise ValueError(f"n={self.n} is larger than user {user}'s history ({len(hist)} items): ask for at most "
                             f"{len(hist)} contributors, or n=None for all of them.")
        return self.n

    def _build(self, user: int, item: int, ids: np.ndarray, contrib: np.ndarray, total: float,
               kept: int) -> Explanation:
        order = np.argsort(-contrib, kind="stable")[:kept]
        shown = contrib[order]
        note = None
        if kept < len(contrib):
            note = (f"The {kept} strongest of {len(contrib)} contributions; base_value holds the other "
                    f"{len(contrib) - kept} ({contrib.sum() - shown.sum():+.4f}).")
        return self._make(user, item, ids[order], shown, order="given", base_value=float(total) - float(shown.sum()),
                          note=note)

    def explain(self, user: int, item: int) -> Explanation:
        """implicit's ``explain`` for one pair: every history item's contribution, strongest first.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
            ``kind="history"``, additive (``base_value + values.sum()`` is implicit's total score).
        """
        hist = self.check_pair(user, item)
        kept = self._kept(hist, user)
        total, top, weights = self.model.model_.explain(int(user), self.model.train_, int(item),
                                                        user_weights=self._weights.get(int(user)), N=len(hist))
        self._weights[int(user)] = weights
        ids = np.array([i for i, _ in top], dtype=np.int64)
        contrib = np.array([s for _, s in top], dtype=np.float64)
        return self._build(user, item, ids, contrib, float(total), kept)

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """The batched path: one vectorised computation for all pairs (values match ``explain`` to ~1e-7).

        Parameters
        ----------
        pairs : iterable of (int, int)
            Internal (user, item) ids.

        Returns
        -------
        list of Explanation
        """
        pairs = [(int(u), int(i)) for u, i in pairs]
        if not pairs:
            return []
        kept = [self._kept(self.check_pair(u, i), u) for u, i in pairs]
        users, items = np.array(pairs).T
        totals, C = batched_explain(self.model, users, items)
        out = []
        for b, (u, i) in enumerate(pairs):
            lo, hi = C.indptr[b], C.indptr[b + 1]
            out.append(self._build(u, i, C.indices[lo:hi].astype(np.int64), C.data[lo:hi], float(totals[b]), kept[b]))
        return out
