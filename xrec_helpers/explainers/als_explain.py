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


def batched_explain(model: ALS, users: Sequence[int] | np.ndarray, items: Sequence[int] | np.ndarray,
                    histories: sp.spmatrix | None = None) -> tuple[np.ndarray, sp.csr_matrix]:
    """Contributions of every history item to many (user, item) scores at once.

    Taught in 08_als_item_style. Returns ``(totals, contributions)``: ``totals[b]`` is implicit's
    ``explain`` total for pair b and ``contributions`` is a (pairs, n_items) CSR matrix whose row b
    holds s_ij·c_uj on the user's history items (rows sum to ``totals``). ``histories`` defaults to
    the model's training rows of ``users``; pass edited rows to explain a counterfactual history.
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
    ``explain_many`` uses :func:`batched_explain` (same numbers, vectorised).

    Args:
        model: a fitted :class:`~xrec_helpers.models.als.ALS`.
        titles: display titles by internal item id.
        n: how many contributors to keep (None = the whole history, which the perturbation metrics need).
    """

    name = "ALS explain"

    def __init__(self, model: ALS, titles: Sequence[str] | np.ndarray | None = None, n: int | None = None):
        super().__init__(model._fitted(), titles)
        self.model, self.n = model, n
        self._weights: dict[int, object] = {}  # per-user Cholesky factors implicit hands back

    def _check_n(self, n: int | None, hist: np.ndarray, user: int) -> int:
        n = self.n if n is None else n
        if n is None:
            return len(hist)
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"N={n!r} must be a positive integer (or None for the whole history).")
        if n > len(hist):
            raise ValueError(f"N={n} is larger than user {user}'s history ({len(hist)} items): ask for at most "
                             f"{len(hist)} contributors, or N=None for all of them.")
        return int(n)

    def explain(self, user: int, item: int, n: int | None = None) -> Explanation:
        """implicit's ``explain`` for one pair; the total and the full sum are kept in ``extra``."""
        hist = self.check_pair(user, item)
        n = self._check_n(n, hist, user)
        total, top, weights = self.model.model_.explain(int(user), self.model.train_, int(item),
                                                        user_weights=self._weights.get(int(user)), N=len(hist))
        self._weights[int(user)] = weights
        ids = np.array([i for i, _ in top], dtype=np.int64)
        contrib = np.array([s for _, s in top], dtype=np.float64)
        expl = self._make(user, item, ids, contrib,
                          extra={"total_score": float(total), "sum_of_all": float(contrib.sum())})
        if n < len(hist):
            expl.items, expl.scores = expl.items[:n], expl.scores[:n]
        return expl

    def explain_many(self, pairs: Iterable[tuple[int, int]], n: int | None = None) -> list[Explanation]:
        """The batched path: one vectorised computation for all pairs (values match ``explain``)."""
        pairs = [(int(u), int(i)) for u, i in pairs]
        if not pairs:
            return []
        hists = [self.check_pair(u, i) for u, i in pairs]
        ns = [self._check_n(n, h, u) for h, (u, _) in zip(hists, pairs)]
        users, items = np.array(pairs).T
        totals, C = batched_explain(self.model, users, items)
        out = []
        for b, (u, i) in enumerate(pairs):
            lo, hi = C.indptr[b], C.indptr[b + 1]
            expl = self._make(u, i, C.indices[lo:hi], C.data[lo:hi],
                              extra={"total_score": float(totals[b]), "sum_of_all": float(C.data[lo:hi].sum())})
            expl.items, expl.scores = expl.items[:ns[b]], expl.scores[:ns[b]]
            out.append(expl)
        return out
