"""RCF (Relational Collaborative Filtering, Xin et al., SIGIR 2019) as ACCENT runs it, plus many retrains at once.

Taught in 06_accent (the RCF half of Table 1). RCF scores a target item ``i`` for user ``u`` from the user's
own positive training items ``j`` (the *neighbours*), attended at two levels through the typed item–item
relations of :mod:`xrec_helpers.data.item_relations` (type 0 "no shared attribute", then genre, director,
actor, each with the shared value):

* type level: ``a_t = softmax_t( w2 . GELU(W1 (p_u * r_t) + b1) )`` over the types that relate at least one
  neighbour to ``i``;
* item level within type ``t``: ``s_tj = h . tanh(W_i q_i + W_j q_j + W_e e_v(t, i, j) + b)`` (no value term
  for type 0) and ``a_tj = exp(s_tj) / (sum_{j' in t} exp(s_tj'))^alpha`` with ``alpha = 0.5``;
* ``mu = p_u + sum_t a_t sum_j a_tj q_j`` and ``f(u, i) = w_o . GELU(W_m (mu * q_i) + b_m) + b_o``.

A neighbour ``j`` that shares several typed relations with ``i`` takes part in each of them; a target that
is itself one of the user's positives (a training positive) is left out of its own neighbours, so a
positive never explains itself.

Training (as in ACCENT's RCF runs): BPR on one (user, positive, negative) triple per training positive,
the negative taken from the user's training negatives (rating below the threshold) as the one sharing the
most relation types with the positive, then the most attribute values, then the one used least so far
for this user (then the smallest id); plus ``reg_t`` times a relational BPR loss
``-log sigma(<q_h * (r_t + e_v), q_pos> - <q_h * (r_t + e_v), q_neg>)`` over (head item, its value, a tail
sharing the value, a random tail not sharing it), drawn afresh for every minibatch. Adagrad (initial
accumulator 0.1) with a constant learning rate, weights initialised normal(0, 0.05).

Every parameter carries a leading "model" axis, as in :mod:`xrec_helpers.models.ncf`, so the same code trains
one model (``RCF.fit``) or ``M`` copies with their own removed pairs, their own neighbour lists and their own
minibatch order (:class:`RCFStack`): the verification protocol's retrains run stacked.

Influence functions (``INFLUENCE``, taught in 06_accent) move only the user's embedding ``theta = p_u``, which
enters only the type level ``a_t`` and the mixing ``mu``: ``RCF.user_training_losses`` and
``RCF.user_score_function`` build the item-level attention once, without gradients, as the per-type aggregates
``E_t = sum_j a_tj q_j``, and differentiate only ``theta -> f`` through ``mu = theta + sum_t a_t(theta) E_t``
(exact: the same values as the full forward pass to float64 round-off, and many times faster Hessians).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from xrec_helpers._ids import check_ids
from xrec_helpers.data.item_relations import ItemRelations, no_relations
from xrec_helpers.engines import Engine, map_jobs
from xrec_helpers.models._retrain import check_retrain_request, stack_targets
from xrec_helpers.models._torch import CachedScores, generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import INFLUENCE, ITEM_ATTENTION, RETRAIN, SCORE, Recommender

_ACCUMULATOR = 0.0
_ORDER = ("P", "Q", "R", "V", "W1", "b1", "w2", "Wi", "Wj", "We", "bi", "h", "Wm", "bm", "wo", "bo")


# --- the data RCF trains on ---------------------------------------------------------------------------------
@dataclass
class RCFData:
    """Everything RCF's training and scoring read, as tensors (built once by ``RCF.fit``; 06_accent).

    Attributes
    ----------
    users, pos, neg : torch.Tensor
        The BPR triples, shape (n,).
    neighbours : torch.Tensor
        (n_users, L) each user's positive training items, padded with 0.
    valid : torch.Tensor
        (n_users, L) bool, True on real neighbours.
    values : torch.Tensor
        (n_types - 1, n_items, n_items) int32 relation values (``ItemRelations.values``), -1 for none.
    value_type : torch.Tensor
        (n_values,) relation type (1..) of each value.
    link_item, link_value, link_start, link_degree : torch.Tensor
        The (item, value) incidences sorted by value, with each link's value's first position and degree:
        the relational loss draws its samples from them.
    has_value : torch.Tensor
        (n_items, n_values) bool incidence (to drop a random negative tail that shares the value).
    """

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    neighbours: torch.Tensor
    valid: torch.Tensor
    values: torch.Tensor
    value_type: torch.Tensor
    link_item: torch.Tensor
    link_value: torch.Tensor
    link_start: torch.Tensor
    link_degree: torch.Tensor
    has_value: torch.Tensor

    @property
    def n_values(self) -> int:
        """Number of relation values."""
        return len(self.value_type)

    def to(self, device: torch.device) -> RCFData:
        """A copy on ``device``."""
        return RCFData(**{k: v.to(device) for k, v in self.__dict__.items()})


def bpr_triples(train: sp.csr_matrix, relations: ItemRelations, threshold: float) -> np.ndarray:
    """One (user, positive, negative) triple per training positive, chosen deterministically (06_accent).

    The negative comes from the user's training negatives (rating < ``threshold``): the one sharing the most
    relation types with the positive, then the most attribute values, then the one used least often so far
    for this user, then the smallest id. A user without training negatives draws from the items they did not
    rate instead (the ACCENT split always has negatives; the fallback keeps tiny test data usable).

    Parameters
    ----------
    train : scipy.sparse.csr_matrix
        Explicit ratings, canonical CSR.
    relations : ItemRelations
        Relations over the same items.
    threshold : float
        Smallest positive rating.

    Returns
    -------
    numpy.ndarray
        Shape (n, 3), int64, grouped by user, positives in increasing item id.
    """
    iv = sp.csr_matrix(relations.item_values, dtype=np.float32)
    out = []
    for u in range(train.shape[0]):
        cols = train.indices[train.indptr[u]:train.indptr[u + 1]]
        data = train.data[train.indptr[u]:train.indptr[u + 1]]
        positives, negatives = np.sort(cols[data >= threshold]), np.sort(cols[data < threshold])
        if len(positives) == 0:
            continue
        if len(negatives) == 0:
            negatives = np.setdiff1d(np.arange(train.shape[1]), cols)
        if len(negatives) == 0:
            continue
        types = (relations.values[:, positives[:, None], negatives[None, :]] >= 0).sum(0)
        shared = np.asarray((iv[positives] @ iv[negatives].T).todense()) if iv.shape[1] else np.zeros_like(types)
        used = np.zeros(len(negatives), dtype=np.int64)
        for row, p in enumerate(positives):
            best = np.lexsort((negatives, used, -shared[row], -types[row]))[0]
            used[best] += 1
            out.append((u, p, negatives[best]))
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def build_rcf_data(train: sp.csr_matrix, relations: ItemRelations, threshold: float) -> RCFData:
    """The tensors of :class:`RCFData` for a rating matrix and its relations (06_accent).

    Parameters
    ----------
    train : scipy.sparse.csr_matrix
        Explicit ratings.
    relations : ItemRelations
        Relations over the matrix's items.
    threshold : float
        Smallest positive rating.

    Returns
    -------
    RCFData
    """
    triples = bpr_triples(train, relations, threshold)
    n_users = train.shape[0]
    pos_lists = []
    for u in range(n_users):
        cols = train.indices[train.indptr[u]:train.indptr[u + 1]]
        pos_lists.append(np.sort(cols[train.data[train.indptr[u]:train.indptr[u + 1]] >= threshold]))
    width = max(1, max(len(p) for p in pos_lists))
    neighbours = np.zeros((n_users, width), dtype=np.int64)
    valid = np.zeros((n_users, width), dtype=bool)
    for u, p in enumerate(pos_lists):
        neighbours[u, :len(p)], valid[u, :len(p)] = p, True
    inc = sp.csc_matrix(relations.item_values)
    link_item = inc.indices.astype(np.int64)
    link_value = np.repeat(np.arange(inc.shape[1]), np.diff(inc.indptr))
    link_start = inc.indptr[:-1][link_value]
    link_degree = np.diff(inc.indptr)[link_value]
    t = torch.as_tensor
    return RCFData(users=t(triples[:, 0]), pos=t(triples[:, 1]), neg=t(triples[:, 2]), neighbours=t(neighbours),
                   valid=t(valid), values=t(np.ascontiguousarray(relations.values, dtype=np.int32)),
                   value_type=t(np.asarray(relations.value_type, dtype=np.int64)), link_item=t(link_item),
                   link_value=t(link_value.astype(np.int64)), link_start=t(link_start.astype(np.int64)),
                   link_degree=t(link_degree.astype(np.int64)),
                   has_value=t(np.asarray(relations.item_values.todense()) > 0))


# --- the forward pass, batched over models ------------------------------------------------------------------
def _bmm(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """(M, ..., a) @ (M, a, b) -> (M, ..., b)."""
    M = x.shape[0]
    return torch.bmm(x.reshape(M, -1, x.shape[-1]), W).reshape(*x.shape[:-1], W.shape[-1])


def _rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of a stacked (M, n, d) table for (M, ...) indices -> (M, ..., d), via one index_select."""
    M, n, d = table.shape
    offset = (torch.arange(M, device=idx.device) * n).reshape(M, *([1] * (idx.dim() - 1)))
    return table.reshape(M * n, d).index_select(0, (idx + offset).reshape(-1)).reshape(*idx.shape, d)


def _type_masks(mask: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """(M, B, T, L) bool: neighbour l of target b takes part in type t (type 0: no typed relation; 06_accent).

    A neighbour's membership reads only its own relation values and its own ``mask`` entry, never the other
    neighbours: removing one neighbour leaves every other neighbour in the same types.
    """
    typed = (vals >= 0) & mask.unsqueeze(0)  # (T-1, M, B, L)
    none = mask & ~typed.any(0)
    return torch.cat([none.unsqueeze(0), typed]).permute(1, 2, 0, 3)


def _item_scores(params: dict[str, torch.Tensor], q: torch.Tensor, nb: torch.Tensor, tmask: torch.Tensor,
                 vals: torch.Tensor) -> torch.Tensor:
    """The item-level attention's pre-softmax scores ``s_tj`` (M, B, T, L), -1e4 off ``tmask`` (06_accent).

    ``s_tj = h . tanh(W_i q_i + W_j q_j + W_e e_v(t, i, j) + b)`` reads the target, the neighbour and their
    relation value only: no term is normalised over the neighbour list, so a neighbour's score does not change
    when another neighbour is removed (what ``RCF.user_score_without_function``'s closed form relies on).

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        The stacked parameters (leading model axis M).
    q : torch.Tensor
        (M, B, d) target item embeddings.
    nb : torch.Tensor
        (M, B, L) neighbour item ids.
    tmask : torch.Tensor
        (M, B, T, L) bool, from :func:`_type_masks`.
    vals : torch.Tensor
        (n_types - 1, M, B, L) relation values, -1 for none.

    Returns
    -------
    torch.Tensor
    """
    M, B, L = nb.shape
    n_values = params["V"].shape[1] - 1  # the last row of V is never used: type 0 has no value term
    # computed only on the (model, target, type, neighbour) entries that exist: padding and the rare typed
    # relations would otherwise make most of a dense (M, B, T, L, a) tensor
    m_e, b_e, t_e, l_e = tmask.nonzero(as_tuple=True)
    j_e = nb[m_e, b_e, l_e]
    full_vals = torch.cat([torch.full_like(vals[:1], n_values), vals]).permute(1, 2, 0, 3)  # (M, B, T, L)
    v_e = full_vals[m_e, b_e, t_e, l_e].long()
    a_i = _bmm(q, params["Wi"]) + params["bi"][:, None, :]  # (M, B, a)
    a_j = _bmm(params["Q"], params["Wj"])  # (M, n_items, a): every item's projection, once
    vw = torch.cat([_bmm(params["V"][:, :n_values], params["We"]),
                    torch.zeros_like(params["We"][:, :1])], 1)  # (M, n_values + 1, a), the last row zero
    A = a_i.shape[-1]
    pre = (a_i.reshape(M * B, A)[m_e * B + b_e] + a_j.reshape(-1, A)[m_e * a_j.shape[1] + j_e]
           + vw.reshape(-1, A)[m_e * vw.shape[1] + v_e])
    s_e = (torch.tanh(pre) * params["h"][m_e]).sum(-1)
    # finite fill: an empty type gives 0 weights, never NaN gradients
    s = torch.full((M, B, tmask.shape[2], L), -1e4, dtype=s_e.dtype, device=s_e.device)
    return s.index_put((m_e, b_e, t_e, l_e), s_e)


def _item_weights(params: dict[str, torch.Tensor], q: torch.Tensor, nb: torch.Tensor, tmask: torch.Tensor,
                  vals: torch.Tensor, alpha: float) -> torch.Tensor:
    """The item-level attention ``a_tj = exp(s_tj) / (sum_{j' in t} exp(s_tj'))^alpha`` (M, B, T, L), 0 off ``tmask``.

    The log-sum-exp form of rcf_forward's item level; it reads no user embedding (06_accent).
    """
    s = _item_scores(params, q, nb, tmask, vals)
    return torch.exp(s - alpha * torch.logsumexp(s, -1, keepdim=True)) * tmask


def rcf_forward(params: dict[str, torch.Tensor], p: torch.Tensor, items: torch.Tensor, nb: torch.Tensor,
                mask: torch.Tensor, vals: torch.Tensor, alpha: float,
                attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RCF's scores of target items from the user embeddings and the neighbour lists, batched over models.

    Used by training, scoring, ``score_without``, the attention explainers and FIA (06_accent).

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        The stacked parameters (leading model axis M).
    p : torch.Tensor
        (M, B, d) user embeddings (FIA passes a moved copy).
    items : torch.Tensor
        (M, B) target items.
    nb : torch.Tensor
        (M, B, L) neighbour item ids.
    mask : torch.Tensor
        (M, B, L) bool: real, kept neighbours (not padding, not removed, not the target itself).
    vals : torch.Tensor
        (n_types - 1, M, B, L) relation value of each (target, neighbour) pair, -1 for none.
    alpha : float
        The item-level smoothing exponent.
    attention : bool
        Also return the attention weights.

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor, torch.Tensor)
        Scores (M, B); with ``attention``, also the type weights (M, B, T) and the item weights (M, B, T, L).
    """
    q = _rows(params["Q"], items)  # (M, B, d)
    M, B, _ = nb.shape
    tmask = _type_masks(mask, vals)  # (M, B, T, L)
    has = tmask.any(-1)  # (M, B, T)
    # type level: depends on the user and the type only; types without a neighbour for this target are masked
    x = p.unsqueeze(2) * params["R"].unsqueeze(1)  # (M, B, T, d)
    hidden = F.gelu(_bmm(x, params["W1"]) + params["b1"][:, None, None, :])
    logits = (hidden * params["w2"][:, None, None, :]).sum(-1)
    logits = torch.where(has.any(-1, keepdim=True), logits.masked_fill(~has, float("-inf")), torch.zeros_like(logits))
    a_t = torch.softmax(logits, -1) * has  # a user with no neighbour at all keeps mu = p_u
    # item level: a_tj = exp(s_tj) / (sum_{j' in t} exp(s_tj'))^alpha, the sum in log-sum-exp form
    a_tj = _item_weights(params, q, nb, tmask, vals, alpha)
    w = (a_t.unsqueeze(-1) * a_tj).sum(2)  # (M, B, L): each neighbour's weight, summed over its types
    n_items = params["Q"].shape[1]
    dense = torch.zeros(M, B, n_items, dtype=w.dtype, device=w.device).scatter_add(2, nb, w)
    mu = p + torch.bmm(dense, params["Q"])
    out = F.gelu(_bmm(mu * q, params["Wm"]) + params["bm"][:, None, :])
    score = (out * params["wo"][:, None, :]).sum(-1) + params["bo"].unsqueeze(1)
    return (score, a_t, a_tj) if attention else score



# --- the user's scores as a function of theta = p_u alone (INFLUENCE) ---------------------------------------
# Why the split is exact: in rcf_forward, p_u enters only (1) the type-level attention a_t(p_u) and (2) the
# mixing mu = p_u + sum_t a_t E_t and everything after it (the output layer). The item-level attention a_tj
# reads q_i, q_j, the relation values and the masks (which neighbours are kept, the target left out), never
# p_u; so the per-type aggregates E[b, t] = sum_l a_tl q_{nb_l} and the masks ``has[b, t]`` are constants of
# theta for a fixed user, removal set and target list. Since sum_l w_l q_{nb_l} with w_l = sum_t a_t a_tl is
# sum_t a_t E_t, precomputing E once (no gradients) and differentiating only the small function of theta below
# gives the same values, gradients and Hessians up to float64 round-off (the order of the sums differs).
#: the type-level and output weights that _theta_scores reads (everything else of theta's scores is precomputed)
_THETA_WEIGHTS = ("R", "W1", "b1", "w2", "Wm", "bm", "wo", "bo")


@dataclass
class _ThetaFree:
    """The parts of a user's scores of ``B`` targets that do not depend on theta, float64 (06_accent).

    Attributes
    ----------
    has : torch.Tensor
        (B, T) bool: type t relates at least one kept neighbour to target b.
    E : torch.Tensor
        (B, T, d) per-type aggregates ``sum_l a_tl q_{nb_l}`` of the item-level attention.
    q : torch.Tensor
        (B, d) target item embeddings.
    weights : dict[str, torch.Tensor]
        The type-level and output weights (R, W1, b1, w2, Wm, bm, wo, bo) of the single model, no model axis.
    """

    has: torch.Tensor
    E: torch.Tensor
    q: torch.Tensor
    weights: dict[str, torch.Tensor]


def _target_inputs(nb_row: torch.Tensor, keep: torch.Tensor, values: torch.Tensor,
                   items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """rcf_forward's inputs for one user's targets: neighbours (1, B, L), targets (1, B), mask, relation values.

    The mask keeps the neighbours in ``keep`` except the target itself, as rcf_forward's callers do (06_accent).
    """
    B, L = len(items), len(nb_row)
    nb, it = nb_row.expand(B, L).unsqueeze(0), items.unsqueeze(0)
    mask = keep.expand(B, L).unsqueeze(0) & (nb != it.unsqueeze(-1))
    return nb, it, mask, values[:, it.unsqueeze(-1), nb]


def _theta_free_parts(params: dict[str, torch.Tensor], nb_row: torch.Tensor, keep: torch.Tensor,
                      values: torch.Tensor, items: torch.Tensor, alpha: float) -> _ThetaFree:
    """Build :class:`_ThetaFree` once, without gradients, from rcf_forward's item level alone (06_accent).

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        Float64 parameters of one model (model axis of length 1).
    nb_row : torch.Tensor
        (L,) the user's neighbour list (padding included).
    keep : torch.Tensor
        (L,) bool: real neighbours that are kept (not padding, not removed).
    values : torch.Tensor
        (n_types - 1, n_items, n_items) relation values.
    items : torch.Tensor
        (B,) target items.
    alpha : float
        The item-level smoothing exponent.

    Returns
    -------
    _ThetaFree
    """
    nb, it, mask, vals = _target_inputs(nb_row, keep, values, items)
    with torch.no_grad():
        q = params["Q"][0][items]
        tmask = _type_masks(mask, vals)  # (1, B, T, L), rcf_forward's masks
        a_tj = _item_weights(params, q.unsqueeze(0), nb, tmask, vals, alpha)  # rcf_forward's item level, alone
        has = tmask[0].any(-1)  # (B, T)
        E = torch.einsum("btl,ld->btd", a_tj[0], params["Q"][0][nb_row])
    weights = {k: params[k][0] for k in _THETA_WEIGHTS}
    return _ThetaFree(has=has, E=E, q=q, weights=weights)


def _theta_scores(theta: torch.Tensor, parts: _ThetaFree) -> torch.Tensor:
    """(..., B) scores from theta (..., d) and the theta-free parts: the type level and the mixing of rcf_forward.

    Leading axes (the removals of ``RCF.user_score_without_function``) are shared by ``theta``, ``parts.has``
    (..., B, T) and ``parts.E`` (..., B, T, d); INFLUENCE's own calls have none (06_accent).
    """
    w, has = parts.weights, parts.has
    th = theta.unsqueeze(-2)  # (..., 1, d)
    logits = (F.gelu((th * w["R"]) @ w["W1"] + w["b1"]) * w["w2"]).sum(-1)  # (..., T): a_t reads only p_u and t
    logits = logits.unsqueeze(-2).expand(has.shape)
    logits = torch.where(has.any(-1, keepdim=True), logits.masked_fill(~has, float("-inf")), torch.zeros_like(logits))
    a_t = torch.softmax(logits, -1) * has  # a target without any kept neighbour keeps mu = theta
    mu = th + (a_t.unsqueeze(-1) * parts.E).sum(-2)
    return (F.gelu((mu * parts.q) @ w["Wm"] + w["bm"]) * w["wo"]).sum(-1) + w["bo"]


def _gelu_derivatives(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GELU's first and second derivatives (the exact, erf form F.gelu uses): Phi + x phi and phi (2 - x^2)."""
    phi = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * phi, phi * (2 - x * x)


def _theta_derivatives(theta: torch.Tensor, parts: _ThetaFree
                       ) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """:func:`_theta_scores`' values, per-target gradients and weighted Hessians, in closed form (06_accent).

    Why it is cheap: the type level's logits ``l(theta)`` (T,) do not depend on the target, so their Jacobian ``L``
    (T, d) and Hessians are computed once; per target only the softmax over its types, the mixing
    ``mu = theta + a^T E`` and the output layer remain. With ``v = d s / d mu``, ``S = diag(a) - a a^T`` and
    ``m = S E v``, the gradient is ``v + L^T m``, and the Hessian of ``s`` is
    ``J^T P J + L^T K L + sum_t m_t Hess(l_t)`` with ``J = I + E^T S L`` (d mu / d theta), ``P`` the output
    layer's Hessian in ``mu`` and ``K = diag(m) - m a^T - a m^T`` the softmax's second derivative of ``(E v) . a``.
    Summed over targets with weights ``c``, the first term is one (d, B h) x (B h, d) product. Tested equal to
    :mod:`torch.func` on :meth:`RCF.user_training_losses`.

    Parameters
    ----------
    theta : torch.Tensor
        (d,) float64.
    parts : _ThetaFree
        The theta-free parts of B targets (no leading axes).

    Returns
    -------
    scores : torch.Tensor
        (B,) the same values as :func:`_theta_scores`.
    grads : torch.Tensor
        (B, d) each target's gradient in theta.
    hessian : callable
        ``c (B,) -> (d, d)``: the Hessian of ``sum_b c_b s_b``.
    """
    w, has, E, q = parts.weights, parts.has, parts.E, parts.q
    u = (theta * w["R"]) @ w["W1"] + w["b1"]  # (T, a): the type level, shared by every target
    g1u, g2u = _gelu_derivatives(u)
    logits = (F.gelu(u) * w["w2"]).sum(-1)  # (T,)
    L = w["R"] * ((g1u * w["w2"]) @ w["W1"].T)  # (T, d): d logits / d theta
    lg = torch.where(has.any(-1, keepdim=True), logits.expand(has.shape).masked_fill(~has, float("-inf")),
                     torch.zeros_like(has, dtype=theta.dtype))
    a = torch.softmax(lg, -1) * has  # (B, T), as _theta_scores
    mu = theta + (a.unsqueeze(-1) * E).sum(-2)  # (B, d)
    z = (mu * q) @ w["Wm"] + w["bm"]  # (B, h)
    g1z, g2z = _gelu_derivatives(z)
    scores = (F.gelu(z) * w["wo"]).sum(-1) + w["bo"]
    v = q * ((g1z * w["wo"]) @ w["Wm"].T)  # (B, d): d s / d mu
    ev = (E @ v.unsqueeze(-1)).squeeze(-1)  # (B, T)
    m = a * (ev - (a * ev).sum(-1, keepdim=True))  # (B, T): S (E v)
    grads = v + m @ L

    def hess(c: torch.Tensor) -> torch.Tensor:
        Aq = q.unsqueeze(-1) * w["Wm"]  # (B, d, h): d z / d mu, transposed
        Y = E @ Aq  # (B, T, h)
        SY = a.unsqueeze(-1) * Y - a.unsqueeze(-1) * (a.unsqueeze(-1) * Y).sum(-2, keepdim=True)  # S Y
        X = Aq + L.T @ SY  # (B, d, h): J^T (d z / d mu)^T
        Xw = X * (c.unsqueeze(-1) * g2z * w["wo"]).unsqueeze(1)
        H = torch.einsum("bdh,beh->de", Xw, X)  # sum_b c_b J^T P J
        cm = c.unsqueeze(-1) * m  # (B, T)
        beta = cm.sum(0)  # (T,): sum_b c_b m_bt, also the weights of the logits' own Hessians
        M = cm.T @ a  # sum_b c_b m_b a_b^T
        H = H + L.T @ (torch.diag(beta) - M - M.T) @ L  # sum_b c_b L^T K_b L
        Wb = w["W1"].unsqueeze(0) * (beta.unsqueeze(-1) * g2u * w["w2"]).unsqueeze(1)  # (T, d, a)
        H = H + ((Wb @ w["W1"].T) * w["R"].unsqueeze(-1) * w["R"].unsqueeze(1)).sum(0)
        return H

    return scores, grads, hess


# --- the input effect in closed form (INFLUENCE's optional user_score_without_function) ------------------------
# Why the closed form is exact: for target b and type t, with the kept neighbours' pre-softmax scores s_l (which
# read only the target, the neighbour and their relation value: _item_scores), rcf_forward's aggregate is
# E_t = sum_l exp(s_l) q_l / (sum_l exp(s_l))^alpha. Removing neighbour z leaves every other s_l and every other
# neighbour's type membership (_type_masks) unchanged, so with m = max_l s_l, S = sum_l exp(s_l - m) and
# N = sum_l exp(s_l - m) q_l: E_t^{-z} = exp((1 - alpha) m) (N - exp(s_z - m) q_z) / (S - exp(s_z - m))^alpha,
# and the type is absent (``has`` False, E = 0) when z was its only neighbour. The subtraction loses digits only
# when z carries almost all of the type's mass (S - exp(s_z - m) < _RECOMPUTE * S); those few (removal, target,
# type) entries are summed again directly over the remaining neighbours. The type level and the output layer then
# run as in _theta_scores, batched over the removals.
_RECOMPUTE = 1e-3


def _item_level(params: dict[str, torch.Tensor], nb_row: torch.Tensor, valid: torch.Tensor, values: torch.Tensor,
                items: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The item-level attention of ``items`` (B,) over the real neighbours ``valid``, once, without gradients.

    Returns ``q`` (B, d) targets, ``tmask`` (B, T, L) type membership, ``s`` (B, T, L) pre-softmax scores (-1e4 off
    ``tmask``), ``m`` (B, T) their maxima, ``e = exp(s - m)`` (0 off ``tmask``) and ``Qn`` (L, d) the neighbours'
    embeddings: everything a removal of neighbours re-weights without recomputing (06_accent).
    """
    nb, _, mask, vals = _target_inputs(nb_row, valid, values, items)
    with torch.no_grad():
        q = params["Q"][0][items]
        tmask = _type_masks(mask, vals)[0]  # (B, T, L)
        s = _item_scores(params, q.unsqueeze(0), nb, tmask.unsqueeze(0), vals)[0]  # (B, T, L), -1e4 off tmask
        m = s.max(-1).values  # (B, T)
        e = torch.exp(s - m.unsqueeze(-1)) * tmask  # 0 off tmask, also in an empty type (m = -1e4 there)
    return q, tmask, s, m, e, params["Q"][0][nb_row]


def _theta_free_kept(params: dict[str, torch.Tensor], nb_row: torch.Tensor, valid: torch.Tensor,
                     values: torch.Tensor, items: torch.Tensor, alpha: float) -> Callable[[torch.Tensor], _ThetaFree]:
    """For one user's targets ``items`` (B,): a map ``keep (Z, L) bool -> _ThetaFree`` for Z sets of kept neighbours.

    The item-level scores are built once (:func:`_item_level`); a kept set only re-weights them:
    ``E_t = exp((1 - alpha) m) sum_kept e_l q_l / (sum_kept e_l)^alpha`` with ``e_l = exp(s_l - m)``, summed
    directly over the kept neighbours (no subtraction, so no lost digits), and a type with no kept neighbour
    drops out (``has`` False). What the attention baselines' greedy removals re-score (06_accent).
    """
    q, tmask, _, m, e, Qn = _item_level(params, nb_row, valid, values, items)
    scale = torch.exp((1 - alpha) * m).unsqueeze(-1)  # (B, T, 1)
    weights = {k: params[k][0] for k in _THETA_WEIGHTS}

    def parts(keep: torch.Tensor) -> _ThetaFree:
        with torch.no_grad():
            kept = tmask.unsqueeze(0) & keep[:, None, None, :]  # (Z, B, T, L)
            ek = e.unsqueeze(0) * kept
            has = kept.any(-1)
            S = torch.where(has, ek.sum(-1), torch.ones((), dtype=ek.dtype))
            E = torch.where(has.unsqueeze(-1), scale * (ek @ Qn) / S.pow(alpha).unsqueeze(-1), 0.0)
        return _ThetaFree(has=has, E=E, q=q, weights=weights)

    return parts


def _theta_free_without(params: dict[str, torch.Tensor], nb_row: torch.Tensor, valid: torch.Tensor,
                        values: torch.Tensor, items: torch.Tensor, alpha: float
                        ) -> Callable[[torch.Tensor], _ThetaFree]:
    """For one user's targets ``items`` (B,): a map ``positions (Z,) -> _ThetaFree`` with one neighbour removed each.

    ``positions[z]`` is the removed neighbour's index in ``nb_row`` (``len(nb_row)``: nothing removed). The
    item-level scores are built once; each removal then costs O(B T d) (06_accent; exactness: comment above).

    Parameters
    ----------
    params, nb_row, values, items, alpha
        As in :func:`_theta_free_parts`.
    valid : torch.Tensor
        (L,) bool: real neighbours (not padding); the removal is one of them at a time.

    Returns
    -------
    callable
        ``positions (Z,) -> _ThetaFree`` with ``has`` (Z, B, T) and ``E`` (Z, B, T, d).
    """
    q, tmask, s, m, e, Qn = _item_level(params, nb_row, valid, values, items)
    B, L = s.shape[0], s.shape[-1]
    Qn = torch.cat([Qn, Qn.new_zeros(1, q.shape[-1])])  # (L + 1, d), row L: nothing removed
    with torch.no_grad():
        e1 = torch.cat([e, e.new_zeros(B, e.shape[1], 1)], -1)  # column L: the "nothing removed" position
        t1 = torch.cat([tmask, tmask.new_zeros(B, tmask.shape[1], 1)], -1)
        S, N = e.sum(-1), e @ Qn[:L]  # (B, T), (B, T, d)
        count = tmask.sum(-1)  # (B, T)
        scale = torch.exp((1 - alpha) * m)
    weights = {k: params[k][0] for k in _THETA_WEIGHTS}

    def parts(positions: torch.Tensor) -> _ThetaFree:
        with torch.no_grad():
            ez = e1[:, :, positions].permute(2, 0, 1)  # (Z, B, T): the removed neighbour's exp(s_z - m), or 0
            has = (count - t1[:, :, positions].permute(2, 0, 1).long()) > 0  # z was the type's only neighbour
            S_z = S - ez
            N_z = N - ez.unsqueeze(-1) * Qn[positions][:, None, None, :]
            safe = torch.where(has, S_z, torch.ones_like(S_z))
            E = torch.where(has.unsqueeze(-1), scale.unsqueeze(-1) * N_z / safe.pow(alpha).unsqueeze(-1), 0.0)
            z_i, b_i, t_i = (has & (S_z < _RECOMPUTE * S)).nonzero(as_tuple=True)
            if len(z_i):  # z held almost all of the type's mass: sum the remaining neighbours again, directly
                keep = tmask[b_i, t_i] & (torch.arange(L) != positions[z_i].unsqueeze(-1))  # (n, L)
                s_k = s[b_i, t_i].masked_fill(~keep, float("-inf"))
                a = torch.exp(s_k - alpha * torch.logsumexp(s_k, -1, keepdim=True))
                E[z_i, b_i, t_i] = a @ Qn[:L]
        return _ThetaFree(has=has, E=E, q=q, weights=weights)

    return parts


class RCFStack:
    """``M`` RCF models stacked along a leading axis, trained together with per-model pair weights (06_accent).

    Adagrad is elementwise, so one optimiser over stacked tensors is M independent optimisers.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        Stacked parameters, each with a leading model axis M.
    adagrad_state : dict[str, tuple] | None
        Per parameter, (step, accumulated squared gradients) to resume from; None starts fresh.
    data : RCFData
        The training data, on the parameters' device.
    lr, reg_t, alpha : float
        Adagrad learning rate, relational-loss weight, item-level smoothing.
    batch_size : int
        Triples per step.
    """

    def __init__(self, params: dict[str, torch.Tensor], adagrad_state: dict[str, tuple] | None, data: RCFData,
                 lr: float, reg_t: float, alpha: float, batch_size: int):
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.device = self.params["bo"].device
        self.data, self.lr, self.reg_t, self.alpha, self.batch_size = data, lr, reg_t, alpha, batch_size
        self.opt = torch.optim.Adagrad([self.params[k] for k in _ORDER], lr=lr, initial_accumulator_value=_ACCUMULATOR)
        if adagrad_state is not None:  # a warm start restores the accumulators too
            for k in _ORDER:
                step, acc = adagrad_state[k]
                M = self.params[k].shape[0]
                self.opt.state[self.params[k]] = {"step": torch.tensor(float(step)),
                                                  "sum": acc.to(self.device).expand(M, *acc.shape[1:]).clone()}

    @property
    def n_models(self) -> int:
        """Number of stacked models M."""
        return self.params["bo"].shape[0]

    def predict(self, users: torch.Tensor, items: torch.Tensor, keep_nb: torch.Tensor | None = None,
                attention: bool = False, p: torch.Tensor | None = None):
        """Scores of (M, B) user/item pairs; ``keep_nb`` (M, n_users, L) bool drops neighbours per model.

        Parameters
        ----------
        users, items : torch.Tensor
            (M, B) internal ids.
        keep_nb : torch.Tensor, optional
            Per model, which neighbours of each user stay (default: all real ones).
        attention : bool
            Also return the attention weights and the neighbour ids (M, B, L).
        p : torch.Tensor, optional
            (M, B, d) user embeddings to use instead of the table's.

        Returns
        -------
        torch.Tensor or tuple
        """
        d = self.data
        M = users.shape[0]
        lengths = d.valid.sum(1)
        L = max(1, int(lengths[users].max()))
        nb = d.neighbours[users, :L]  # (M, B, L)
        if keep_nb is None:
            mask = d.valid[users, :L]
        else:
            mask = keep_nb[torch.arange(M, device=users.device).unsqueeze(1), users][..., :L]
        mask = mask & (nb != items.unsqueeze(-1))
        vals = d.values[:, items.unsqueeze(-1), nb]  # (T-1, M, B, L)
        if p is None:
            p = _rows(self.params["P"], users)
        out = rcf_forward(self.params, p, items, nb, mask, vals, self.alpha, attention=attention)
        return (*out, nb, mask) if attention else out

    def _relational(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Relational BPR terms for (M, 3, b) uniforms: per-model weighted loss sums and weights."""
        d, prm = self.data, self.params
        n_links = len(d.link_item)
        r = (u[:, 0] * n_links).long().clamp_max(n_links - 1)  # (M, b)
        head, value = d.link_item[r], d.link_value[r]
        deg, start = d.link_degree[r], d.link_start[r]
        off = 1 + (u[:, 1] * (deg - 1)).long().clamp_max(deg - 2)
        tail = d.link_item[start + (r - start + off) % deg]
        neg = (u[:, 2] * d.has_value.shape[0]).long().clamp_max(d.has_value.shape[0] - 1)
        w = (~d.has_value[neg, value]).float()
        rel = _rows(prm["R"], d.value_type[value]) + _rows(prm["V"], value)
        hr = _rows(prm["Q"], head) * rel
        diff = (hr * (_rows(prm["Q"], tail) - _rows(prm["Q"], neg))).sum(-1)
        return (w * F.softplus(-diff)).sum(1), w.sum(1).clamp_min(1.0)

    def train_epochs(self, keep: torch.Tensor, keep_nb: torch.Tensor | None, seeds: Sequence[int],
                     epochs: int) -> list[float]:
        """Run ``epochs`` passes over the triples; returns each epoch's mean BPR loss (kept triples, all models).

        ``keep`` (M, n) is 1 for triples a model trains on and 0 for removed ones (a removed triple keeps its
        slot in the minibatch order but carries no weight). Models with the same seed share the minibatch
        order and the relational samples. Random draws are made on the CPU.

        Parameters
        ----------
        keep : torch.Tensor
            (M, n) 0/1 triple weights.
        keep_nb : torch.Tensor | None
            (M, n_users, L) neighbours kept per model (None: all).
        seeds : Sequence[int]
            One seed per model.
        epochs : int
            Passes.

        Returns
        -------
        list[float]
        """
        d = self.data
        M, n = keep.shape
        if len(seeds) != M:
            raise ValueError(f"Need one seed per model: {len(seeds)} seeds for {M} models.")
        uniq, which = np.unique(np.asarray(seeds), return_inverse=True)
        gens = [generator(int(s)) for s in uniq]
        which = torch.as_tensor(which)
        m_idx = torch.arange(M, device=keep.device).unsqueeze(1)
        relational = self.reg_t > 0 and len(d.link_item) > 0
        history = []
        for _ in range(epochs):
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens])[which].to(keep.device)
            total, weight = 0.0, 0.0
            for start in range(0, n, self.batch_size):
                idx = perms[:, start:start + self.batch_size]
                b = idx.shape[1]
                w = keep[m_idx, idx]
                users = d.users[idx]
                s = self.predict(torch.cat([users, users], 1), torch.cat([d.pos[idx], d.neg[idx]], 1), keep_nb)
                bpr = F.softplus(-(s[:, :b] - s[:, b:]))
                lsum = (w * bpr).sum(1)
                count = w.sum(1).clamp_min(1.0)
                loss = (lsum / count).sum()
                if relational:
                    u = torch.stack([torch.rand(3, b, generator=g) for g in gens])[which].to(keep.device)
                    rsum, rcount = self._relational(u)
                    loss = loss + self.reg_t * (rsum / rcount).sum()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                total += float(lsum.detach().sum())
                weight += float(w.sum())
            history.append(total / max(weight, 1.0))
        return history

    def adagrad_state(self) -> dict[str, tuple]:
        """(step, accumulator) of every parameter, detached."""
        st = self.opt.state
        return {k: (float(st[self.params[k]]["step"]), st[self.params[k]]["sum"].detach()) for k in _ORDER}


# --- the recommender ----------------------------------------------------------------------------------------
class RCF(CachedScores, Recommender):
    """Relational Collaborative Filtering (Xin et al. 2019), trained as in ACCENT's RCF runs. Taught in 06_accent.

    ``fit`` expects the explicit-rating CSR (``Dataset.csr(train, binary=False)``): ratings >= ``threshold``
    are positives (the neighbours and BPR positives), the others negatives. See the module docstring.

    Parameters
    ----------
    relations : ItemRelations, optional
        Typed item–item relations over the model's items (:func:`xrec_helpers.data.item_relations.item_relations`
        with ``items=split.items``). None: every pair is related by type 0 only (RCF without metadata).
    factors : int
        Embedding size of users, items, relation types and values (64).
    attention_size : int
        Hidden size of both attention levels (32).
    hidden : int
        The output MLP layer (64).
    alpha : float
        Item-level smoothing exponent (0.5; 1 gives a softmax).
    reg_t : float
        Weight of the relational loss (0.01).
    threshold : float
        Smallest positive rating (3, as ACCENT's split).
    lr : float
        Adagrad learning rate (0.05).
    batch_size : int
        Triples per step (512).
    epochs : int
        Training epochs (50).
    init_std : float
        Standard deviation of the normal initialisation (0.05).
    random_state : int | None
        Seed of initialisation, minibatch order and relational samples.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, INFLUENCE, RETRAIN, ITEM_ATTENTION})
    #: FIA's default damping on RCF (ACCENT's RCF code), added to the Hessian of the user's mean pair loss.
    influence_damping: ClassVar[float] = 0.01
    #: RCF's objective has no L2 term on the user embedding.
    influence_l2: ClassVar[float] = 0.0

    def __init__(self, *, relations: ItemRelations | None = None, factors: int = 64, attention_size: int = 32,
                 hidden: int = 64, alpha: float = 0.5, reg_t: float = 0.01, threshold: float = 3.0,
                 lr: float = 0.05, batch_size: int = 512, epochs: int = 50, init_std: float = 0.05,
                 random_state: int | None = 0, device: str = "cpu"):
        if relations is not None and not isinstance(relations, ItemRelations):
            raise TypeError(f"relations must be an ItemRelations (xrec_helpers.data.item_relations.item_relations), "
                            f"not {type(relations).__name__}.")
        self.relations, self.factors, self.attention_size, self.hidden = relations, factors, attention_size, hidden
        self.alpha, self.reg_t, self.threshold, self.lr, self.batch_size = alpha, reg_t, threshold, lr, batch_size
        self.epochs, self.init_std, self.random_state, self.device = epochs, init_std, random_state, device

    # --- training ------------------------------------------------------------------------------
    def _init_params(self, n_users: int, n_items: int, n_types: int, n_values: int) -> dict[str, torch.Tensor]:
        g = generator(self.random_state)
        d, a, h = self.factors, self.attention_size, self.hidden

        def normal(*shape: int) -> torch.Tensor:
            return torch.normal(0.0, self.init_std, size=(1, *shape), generator=g)

        return {"P": normal(n_users, d), "Q": normal(n_items, d), "R": normal(n_types, d),
                "V": normal(n_values + 1, d), "W1": normal(d, a), "b1": torch.zeros(1, a), "w2": normal(a),
                "Wi": normal(d, a), "Wj": normal(d, a), "We": normal(d, a), "bi": torch.zeros(1, a), "h": normal(a),
                "Wm": normal(d, h), "bm": torch.zeros(1, h), "wo": normal(h), "bo": torch.zeros(1)}

    def fit(self, train: sp.csr_matrix) -> RCF:
        """Build the triples and train from scratch; returns self.

        Parameters
        ----------
        train : sp.csr_matrix
            User x item explicit ratings.

        Returns
        -------
        RCF

        Raises
        ------
        ValueError
            When no rating is a positive, or the relations do not cover the matrix's items.
        """
        train = self._set_train(train)
        relations = no_relations(train.shape[1]) if self.relations is None else self.relations
        if relations.n_items != train.shape[1]:
            raise ValueError(f"The relations cover {relations.n_items} items, the matrix has {train.shape[1]}: build "
                             "them with item_relations(kg, items=split.items) for this matrix's items.")
        if not (train.data >= self.threshold).any():
            raise ValueError(f"No rating is >= threshold={self.threshold}: RCF needs positives (explicit ratings, "
                             "Dataset.csr(train, binary=False)).")
        dev = resolve_device(self.device)
        prepare_cpu_training()
        self.data_ = build_rcf_data(train, relations, self.threshold).to(dev)
        if len(self.data_.users) == 0:
            raise ValueError("No user has both a positive and a candidate negative: nothing to train on.")
        self.relation_types_ = relations.types
        params = {k: v.to(dev) for k, v in self._init_params(*train.shape, relations.n_types,
                                                            relations.n_values).items()}
        self._stack = RCFStack(params, None, self.data_, self.lr, self.reg_t, self.alpha, self.batch_size)
        self.loss_history_: list[float] = []
        self.continue_training(self.epochs)
        return self

    def continue_training(self, epochs: int) -> RCF:
        """More epochs on the same triples (Adagrad state kept); returns self.

        Parameters
        ----------
        epochs : int
            Extra epochs.

        Returns
        -------
        RCF
        """
        self._fitted()
        keep = torch.ones(1, len(self.data_.users), device=self._stack.device)
        seed = 0 if self.random_state is None else int(self.random_state)
        self._parameters_moved()
        self.loss_history_ += self._stack.train_epochs(keep, None, [seed + len(self.loss_history_)], epochs)
        return self

    # --- scoring -------------------------------------------------------------------------------
    def positives(self, user: int) -> np.ndarray:
        """The user's positive training items (the neighbours), sorted.

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        numpy.ndarray
        """
        user = int(self.check_users(user)[0])
        d = self.data_
        return to_numpy(d.neighbours[user][d.valid[user]]).astype(np.int64)

    @torch.no_grad()
    def _score_catalogue(self, users: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        dev = self._stack.device
        items = torch.arange(self.n_items, device=dev)
        for r, u in enumerate(users):
            for start in range(0, self.n_items, 256):
                it = items[start:start + 256].unsqueeze(0)
                out[r, start:start + 256] = to_numpy(self._stack.predict(torch.full_like(it, int(u)), it)[0])
        return out

    def _check_items(self, items: Sequence[int] | np.ndarray | None) -> np.ndarray:
        return np.arange(self.n_items) if items is None else check_ids(items, self.n_items, "item")

    @torch.no_grad()
    def score_without(self, user: int, removed: Sequence[int] | np.ndarray,
                      items: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Scores of ``items`` with ``removed`` left out of the user's neighbours, without retraining.

        Part of ``ITEM_ATTENTION``: what the attention baselines of 06_accent "remove" (the user embedding and
        every weight stay; only the inputs change).

        Parameters
        ----------
        user : int
            Internal user id.
        removed : sequence of int
            Positive training items of the user to leave out.
        items : sequence of int, optional
            Items to score (default: all).

        Returns
        -------
        numpy.ndarray
            float64 scores of ``items``.

        Raises
        ------
        ValueError
            When a removed item is not one of the user's positives.
        """
        user = int(self.check_users(user)[0])
        items = self._check_items(items)
        keep = self._keep_without(user, removed)
        dev = self._stack.device
        it = torch.as_tensor(items, device=dev).unsqueeze(0)
        s = self._stack.predict(torch.full_like(it, user), it, keep.unsqueeze(0))
        return to_numpy(s[0]).astype(np.float64)

    def score_without_many(self, user: int, removals: Sequence[Sequence[int]],
                           items: Sequence[int] | np.ndarray) -> np.ndarray:
        """Scores of ``items`` with each removal set in turn left out of the user's neighbours, without retraining.

        Part of ``ITEM_ATTENTION``: :meth:`score_without` for many sets at once, what the attention baselines'
        greedy searches re-score (06_accent). Removing neighbours changes neither the user's embedding nor any
        neighbour's item-level score, only which neighbours each type's attention sums over, so the item-level
        attention of ``items`` is built once (and reused while the user and ``items`` stay the same) and each set
        only re-weights it, in float64: :meth:`score_without`'s values to its float32 round-off.

        Parameters
        ----------
        user : int
            Internal user id.
        removals : sequence of sequences of int
            Z sets of the user's positive training items to leave out (an empty set: nothing removed).
        items : sequence of int
            B items to score.

        Returns
        -------
        numpy.ndarray
            (Z, B) float64 scores.

        Raises
        ------
        ValueError
            When a removed item is not one of the user's positives.
        """
        user = int(self.check_users(user)[0])
        items = check_ids(items, self.n_items, "item")
        removals = [check_ids(r if isinstance(r, np.ndarray) else list(r), self.n_items, "item") for r in removals]
        if removals:
            self._check_positives(user, np.unique(np.concatenate(removals)))
        nb_row, valid = self._neighbour_row(user)
        key = (self._params_key(), user, items.tobytes())
        cached = getattr(self, "_without_cache", None)
        if cached is None or cached[0] != key:
            self._without_cache = (key, _theta_free_kept(self._double_params(), nb_row, valid, self.data_.values.cpu(),
                                                         torch.as_tensor(items), self.alpha))
        # each set's items -> their positions in the neighbour list, all sets at once (one scatter, no loop)
        position = np.full(self.n_items, len(nb_row), dtype=np.int64)  # len(nb_row): not a kept neighbour
        position[nb_row[valid].numpy()] = np.flatnonzero(valid.numpy())
        keep = torch.ones(len(removals), len(nb_row) + 1, dtype=torch.bool)
        if removals:
            rows = np.repeat(np.arange(len(removals)), [len(r) for r in removals])
            keep[torch.as_tensor(rows), torch.as_tensor(position[np.concatenate(removals)])] = False
        keep = keep[:, :-1]
        theta = self.user_parameters(user)
        with torch.no_grad():
            return _theta_scores(theta, self._without_cache[1](keep & valid)).numpy()

    def _check_positives(self, user: int, removed: np.ndarray) -> None:
        """Raise unless every (validated) id of ``removed`` is one of ``user``'s positives."""
        bad = np.setdiff1d(removed, self.positives(user))
        if len(bad):
            raise ValueError(f"Items {bad[:5].tolist()} are not positive training items of user {user}: only the "
                             "user's positives (ratings >= threshold) are RCF's inputs and can be removed.")

    def _keep_without(self, user: int, removed: Sequence[int] | np.ndarray) -> torch.Tensor:
        removed = check_ids(list(removed), self.n_items, "item")
        self._check_positives(user, removed)
        d = self.data_
        keep = d.valid.clone()
        keep[user] &= ~torch.isin(d.neighbours[user], torch.as_tensor(removed, device=keep.device))
        return keep

    @torch.no_grad()
    def item_attention(self, user: int, item: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RCF's attention for recommending ``item`` to ``user``, over the user's positive items (``ITEM_ATTENTION``).

        Parameters
        ----------
        user, item : int
            Internal ids.

        Returns
        -------
        neighbours : numpy.ndarray
            The user's positive items (the target itself left out).
        type_weights : numpy.ndarray
            (n_types,) a_t, summing to 1 over the types that relate a neighbour to ``item``.
        item_weights : numpy.ndarray
            (n_types, len(neighbours)) a_tj (0 where neighbour j is not related by type t). Each neighbour's
            weight in the explanation baselines is ``type_weights @ item_weights``.
        """
        user = int(self.check_users(user)[0])
        item = int(check_ids(item, self.n_items, "item")[0])
        dev = self._stack.device
        u, i = torch.tensor([[user]], device=dev), torch.tensor([[item]], device=dev)
        _, a_t, a_tj, nb, mask = self._stack.predict(u, i, attention=True)
        keep = to_numpy(mask[0, 0])
        return (to_numpy(nb[0, 0])[keep], to_numpy(a_t[0, 0]).astype(np.float64),
                to_numpy(a_tj[0, 0])[:, keep].astype(np.float64))

    # --- influence functions (INFLUENCE) ---------------------------------------------------------
    def _double_params(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().double() for k, v in self._stack.params.items()}

    def user_parameters(self, user: int) -> torch.Tensor:
        """The user's embedding p_u, float64 (``factors``,): all FIA moves on RCF (``INFLUENCE``; 06_accent).

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        torch.Tensor
        """
        user = int(self.check_users(user)[0])
        return self._stack.params["P"][0, user].detach().cpu().double().clone()

    def _neighbour_row(self, user: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The user's neighbour list and its real-neighbour mask, cut to the real length L (at least 1), on the CPU."""
        d = self.data_
        L = max(1, int(d.valid[user].sum()))
        return d.neighbours[user].cpu()[:L], d.valid[user].cpu()[:L]

    def _user_fn(self, user: int) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """g(thetas (Z, d), keep (Z, L) bool, items (Z, B)) -> (Z, B) float64 scores for ``user``."""
        p = self._double_params()
        nb_row, valid = self._neighbour_row(user)
        L = len(nb_row)
        values = self.data_.values.cpu()

        def g(thetas: torch.Tensor, keep: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            Z, B = items.shape
            nb = nb_row.expand(Z, B, L).reshape(1, Z * B, L)
            it = items.reshape(1, Z * B)
            mask = (valid & keep).unsqueeze(1).expand(Z, B, L).reshape(1, Z * B, L) & (nb != it.unsqueeze(-1))
            vals = values[:, it.unsqueeze(-1), nb]
            pu = thetas.unsqueeze(1).expand(Z, B, thetas.shape[-1]).reshape(1, Z * B, -1)
            return rcf_forward(p, pu, it, nb, mask, vals, self.alpha)[0].reshape(Z, B)

        return g

    def _kept_neighbours(self, user: int, without: Sequence[int]) -> torch.Tensor:
        """(1, L) bool over the user's neighbour list: False on the items of ``without`` (validated positives)."""
        nb_row = self._neighbour_row(user)[0]
        if len(without) == 0:
            return torch.ones(1, len(nb_row), dtype=torch.bool)
        removed = check_ids(list(without), self.n_items, "item")
        self._check_positives(user, removed)
        return ~torch.isin(nb_row, torch.as_tensor(removed)).unsqueeze(0)

    def _theta_free(self, user: int, keep: torch.Tensor, items: torch.Tensor,
                    params: dict[str, torch.Tensor] | None = None) -> _ThetaFree:
        """The theta-free parts of ``user``'s scores of ``items`` (B,) with the neighbours ``keep`` (L,) bool."""
        nb_row, valid = self._neighbour_row(user)
        params = self._double_params() if params is None else params
        return _theta_free_parts(params, nb_row, valid & keep, self.data_.values.cpu(), items.cpu(),
                                 self.alpha)

    def user_score_function(self, user: int,
                            without: Sequence[int] = ()) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``f(theta, items)``: float64 scores of ``items`` for ``user`` with embedding ``theta`` (``INFLUENCE``).

        The neighbours are the user's positives (a target that is one of them is left out of its own). Only the
        type-level attention and the mixing depend on ``theta``: each call builds the item-level attention of
        ``items`` once without gradients (reused while ``items`` stays the same) and differentiates the small
        rest, which gives the full forward pass's values to float64 round-off (06_accent teaches why).

        Parameters
        ----------
        user : int
            Internal user id.
        without : sequence of int
            Positives left out of the neighbours (the input effect, as ``score_without``; default none).

        Returns
        -------
        callable
            ``f(theta (d,), items) -> (B,)`` float64, ``items`` flattened.

        Raises
        ------
        ValueError
            When an item of ``without`` is not one of the user's positives.
        """
        user = int(self.check_users(user)[0])
        keep = self._kept_neighbours(user, without)[0]
        params = self._double_params()  # the parameters as they are now, as the full path captured them
        cache: list = [None, None]  # the last items and their theta-free parts

        def f(theta: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            items = torch.as_tensor(items).reshape(-1)
            if len(items) == 0:
                return theta.new_zeros(0)
            if cache[0] is None or not torch.equal(cache[0], items):
                cache[:] = [items.clone(), self._theta_free(user, keep, items, params)]
            return _theta_scores(theta, cache[1])

        return f

    def _user_score_function_full(self, user: int,
                                  without: Sequence[int] = ()) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """:meth:`user_score_function` through the whole forward pass (the reference the fast path is tested on)."""
        user = int(self.check_users(user)[0])
        g = self._user_fn(user)
        keep = self._kept_neighbours(user, without)
        return lambda theta, items: g(theta.unsqueeze(0), keep, items.reshape(1, -1))[0]

    def _user_pairs(self, user: int, without: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The positives and negatives of the user's kept BPR pairs (those whose positive is not in ``without``)."""
        d = self.data_
        rows = torch.nonzero(d.users.cpu() == user).ravel()
        pos, neg = d.pos.cpu()[rows], d.neg.cpu()[rows]
        if len(without):
            kept = ~torch.isin(pos, torch.as_tensor(check_ids(list(without), self.n_items, "item")))
            pos, neg = pos[kept], neg[kept]
        return pos, neg

    def user_training_losses(self, user: int,
                             without: Sequence[int] = ()) -> tuple[Callable[[torch.Tensor], torch.Tensor], np.ndarray]:
        """The BPR losses of the user's training pairs as a function of ``theta``, and each pair's positive.

        Part of ``INFLUENCE``: removing an item drops the pairs whose positive it is (06_accent). The item-level
        attention of the pairs' items, which does not depend on ``theta``, is built here once without gradients;
        ``losses`` computes only the type-level attention and the mixing, so FIA's gradients and Hessians and the
        refit's Newton steps differentiate a small function (the same values as the full forward pass to float64
        round-off; 06_accent explains the split).

        Parameters
        ----------
        user : int
            Internal user id.
        without : sequence of int
            Positives removed (the user-refit verification of 06_accent; default none): their pairs are dropped
            AND they leave the neighbours of every remaining pair's scores, as in a retrain without them.

        Returns
        -------
        losses : callable
            ``losses(theta) -> (n_pairs,)`` float64, over the kept pairs.
        removes : numpy.ndarray
            The positive item of each kept pair.

        Raises
        ------
        ValueError
            When an item of ``without`` is not one of the user's positives.
        """
        parts, pos, n = self._pair_parts(user, without)

        def losses(theta: torch.Tensor) -> torch.Tensor:
            if n == 0:  # the removal takes every pair of the user: nothing is left to fit
                return theta.new_zeros(0)
            s = _theta_scores(theta, parts)
            return F.softplus(-(s[:n] - s[n:]))

        return losses, pos.numpy().astype(np.int64)

    def _pair_parts(self, user: int, without: Sequence[int]) -> tuple[_ThetaFree | None, torch.Tensor, int]:
        """The theta-free parts of the user's kept pairs' 2n targets (positives, then negatives), the positives, n.

        The last answer is kept until the parameters move: FIA asks for the losses and then for their derivatives.
        """
        user = int(self.check_users(user)[0])
        keep = self._kept_neighbours(user, without)[0]  # validates: only the user's positives
        key = (self._params_key(), user, tuple(sorted(int(z) for z in without)))
        cached = getattr(self, "_pairs_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        pos, neg = self._user_pairs(user, without)
        n = len(pos)
        out = (self._theta_free(user, keep, torch.cat([pos, neg])) if n else None), pos, n
        self._pairs_cache = (key, out)
        return out

    def user_training_loss_derivatives(
            self, user: int, without: Sequence[int] = ()
    ) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Per-pair gradients and the summed Hessian of :meth:`user_training_losses`, in closed form (no autograd).

        Optional part of the ``INFLUENCE`` capability (06_accent), used by FIA and the user re-fit. Each pair's loss
        ``softplus(-(s_pos - s_neg))`` has the gradient ``l' (grad s_pos - grad s_neg)`` and the sum the Hessian
        ``sum l'' dd^T + sum_b c_b Hess(s_b)`` with ``dd`` the gap's gradient and ``c_b = +-l'``; the targets'
        gradients and weighted Hessians come from the closed form of :func:`_theta_derivatives` (the type level
        is shared by every target). Equal to :mod:`torch.func`'s to float64 round-off (tested), several times faster.

        Parameters
        ----------
        user : int
            Internal user id.
        without : sequence of int
            Positives removed, as in :meth:`user_training_losses`.

        Returns
        -------
        callable
            ``D(theta (d,)) -> (G (n_pairs, d), S (d, d))`` float64.
        """
        parts, _, n = self._pair_parts(user, without)

        def D(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if n == 0:  # the removal takes every pair of the user
                return theta.new_zeros(0, len(theta)), theta.new_zeros(len(theta), len(theta))
            s, grads, hess = _theta_derivatives(theta.detach(), parts)
            delta, dd = s[:n] - s[n:], grads[:n] - grads[n:]  # each pair's score gap and its gradient
            d1, d2 = -torch.sigmoid(-delta), torch.sigmoid(delta) * torch.sigmoid(-delta)  # softplus(-x)', ''
            return d1.unsqueeze(-1) * dd, (dd * d2.unsqueeze(-1)).T @ dd + hess(torch.cat([d1, -d1]))

        return D

    def _user_training_losses_full(self, user: int, without: Sequence[int] = ()
                                   ) -> tuple[Callable[[torch.Tensor], torch.Tensor], np.ndarray]:
        """:meth:`user_training_losses` through the whole forward pass (the reference the fast path is tested on)."""
        user = int(self.check_users(user)[0])
        f = self._user_score_function_full(user, without)
        pos, neg = self._user_pairs(user, without)
        n = len(pos)

        def losses(theta: torch.Tensor) -> torch.Tensor:
            if n == 0:
                return theta.new_zeros(0)
            s = f(theta, torch.cat([pos, neg]))
            return F.softplus(-(s[:n] - s[n:]))

        return losses, pos.numpy().astype(np.int64)

    def user_score_without_function(self, user: int) -> Callable[[torch.Tensor, np.ndarray, torch.Tensor],
                                                                    torch.Tensor]:
        """``g(thetas, removed, items)``: scores with embedding ``thetas[z]`` AND item ``removed[z]`` out of the inputs.

        The optional "input effect" hook of ``INFLUENCE``: on RCF a removed positive also stops being a neighbour
        of the user's predictions (06_accent). The item-level scores of ``items`` are built once (reused while
        ``items`` stays the same); removing one neighbour then changes each of its types' aggregate in closed form
        (the type disappears when it was the only neighbour), and the type level and output layer run batched over
        the removals: the full forward pass's scores to float64 round-off, without re-running it per removal.

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        callable
            ``g(thetas (Z, d), removed (Z,) item ids, items (B,)) -> (Z, B)`` float64.
        """
        user = int(self.check_users(user)[0])
        nb_row, valid = self._neighbour_row(user)
        L = len(nb_row)
        params = self._double_params()
        values = self.data_.values.cpu()
        cache: list = [None, None]  # the last items and their removal map

        def without(thetas: torch.Tensor, removed: np.ndarray, items: torch.Tensor) -> torch.Tensor:
            items = torch.as_tensor(items).reshape(-1)
            if cache[0] is None or not torch.equal(cache[0], items):
                cache[:] = [items.clone(), _theta_free_without(params, nb_row, valid, values, items,
                                                               self.alpha)]
            hit = (nb_row.unsqueeze(0) == torch.as_tensor(np.asarray(removed)).reshape(-1, 1)) & valid  # (Z, L)
            positions = torch.where(hit.any(1), hit.long().argmax(1), L)  # L: not a neighbour, nothing changes
            return _theta_scores(thetas, cache[1](positions))

        return without

    def _user_score_without_function_full(self, user: int) -> Callable[[torch.Tensor, np.ndarray, torch.Tensor],
                                                                          torch.Tensor]:
        """:meth:`user_score_without_function` through the whole forward pass per removal (the tests' reference)."""
        user = int(self.check_users(user)[0])
        g = self._user_fn(user)
        nb_row = self._neighbour_row(user)[0]

        def without(thetas: torch.Tensor, removed: np.ndarray, items: torch.Tensor) -> torch.Tensor:
            keep = nb_row.unsqueeze(0) != torch.as_tensor(np.asarray(removed)).unsqueeze(1)
            return g(thetas, keep, items.unsqueeze(0).expand(len(removed), -1))

        return without

    def influence_counts(self, user: int, targets: np.ndarray, normalization: str = "local") -> np.ndarray:
        """How many training pairs FIA's objective averages over, per target (``INFLUENCE``).

        ``"local"``: the user's pairs (only p_u moves); ``"global"``: every training pair.

        Parameters
        ----------
        user : int
            Internal user id.
        targets : numpy.ndarray
            The target items.
        normalization : {"local", "global"}

        Returns
        -------
        numpy.ndarray
        """
        user = int(self.check_users(user)[0])
        n = int((self.data_.users == user).sum()) if normalization == "local" else len(self.data_.users)
        return np.full(len(targets), n)

    # --- many retrains at once -----------------------------------------------------------------
    def retrain_scores(self, removals: Sequence[tuple[int, Sequence[int]]], seeds: Sequence[int], epochs: int,
                       targets: Sequence[Sequence[int]], max_models: int = 16, lr: float | None = None,
                       target_users: Sequence[Sequence[int]] | None = None, engine: Engine = None,
                       device: str | None = None, from_scratch: bool = False) -> list[np.ndarray]:
        """Retrains with positives removed, stacked into batched models; returns new scores (``RETRAIN``; 06_accent).

        A removal ``(user, items)`` drops the user's training pairs whose positive is in ``items`` and takes those
        items out of the user's neighbours; an empty ``items`` is a no-removal control.

        Parameters
        ----------
        removals : Sequence[tuple[int, Sequence[int]]]
            One ``(user, positive items)`` per retrain.
        seeds : Sequence[int]
            One seed per retrain (minibatch order and relational samples).
        epochs : int
            Epochs of each retrain: extra epochs from the trained model (warm start), or from a fresh
            initialisation with ``from_scratch`` (pass ``model.epochs`` for the original protocol).
        targets : Sequence[Sequence[int]]
            Per retrain, the items to score afterwards.
        max_models : int
            Retrains per stacked model.
        lr : float | None
            Adagrad learning rate of the retrains (default: the model's).
        target_users : Sequence[Sequence[int]] | None
            Per retrain, the user of each target (default: the retrain's own user).
        engine : Engine
            Where the stacks run (:func:`xrec_helpers.engines.map_jobs`).
        device : str | None
            Where each stack trains (default: the model's ``device``).
        from_scratch : bool
            False (default): warm start from the trained parameters and Adagrad accumulators. True: fresh
            initialisation from the model's ``random_state`` and a fresh optimiser (ACCENT's RCF protocol).

        Returns
        -------
        list[np.ndarray]
            One float64 array per retrain: the scores of its targets after retraining.
        """
        self._fitted()
        device, target_users = check_retrain_request(self, removals, seeds, epochs, targets, max_models, target_users,
                                                     engine, device)
        if len(removals) == 0:
            return []
        d = self.data_
        users_cpu, pos_cpu = d.users.cpu().numpy(), d.pos.cpu().numpy()
        nb_cpu = d.neighbours.cpu().numpy()
        spec = []
        for user, removed in removals:
            user = int(self.check_users(user)[0])
            removed = check_ids(list(removed), self.n_items, "item")
            self._check_positives(user, removed)
            rows = np.flatnonzero((users_cpu == user) & np.isin(pos_cpu, removed))
            cols = np.flatnonzero(np.isin(nb_cpu[user], removed) & d.valid[user].cpu().numpy())
            spec.append((user, rows, cols))
        if from_scratch:
            base = {k: v for k, v in self._init_params(self.n_users, self.n_items, self._stack.params["R"].shape[1],
                                                       d.n_values).items()}
            state = None
        else:
            base = {k: v.detach().cpu() for k, v in self._stack.params.items()}
            state = {k: (s, a.cpu()) for k, (s, a) in self._stack.adagrad_state().items()}
        jobs = [([spec[m] for m in block], [seeds[m] for m in block], tu, ti)
                for block, tu, ti in stack_targets(targets, target_users, max_models)]
        shared = (base, state, d.to(torch.device("cpu")), self.lr if lr is None else lr, self.reg_t, self.alpha,
                  self.batch_size, epochs, device)
        out = np.concatenate(map_jobs(_retrain_block, jobs, shared=shared, engine=engine), axis=0)
        return [out[m, :len(targets[m])] for m in range(len(removals))]


def _retrain_block(shared: tuple, job: tuple) -> np.ndarray:
    """Train one stack of RCF retrains and score its targets (one engine job)."""
    base, state, data, lr, reg_t, alpha, batch_size, epochs, device = shared
    spec, seeds, tu, ti = job
    dev = resolve_device(device)
    prepare_cpu_training()
    data = data.to(dev)
    M = len(seeds)
    stack = RCFStack({k: v.to(dev).expand(M, *v.shape[1:]) for k, v in base.items()}, state, data, lr, reg_t,
                     alpha, batch_size)
    keep = torch.ones(M, len(data.users), device=dev)
    keep_nb = data.valid.unsqueeze(0).expand(M, *data.valid.shape).clone()
    for m, (user, rows, cols) in enumerate(spec):
        keep[m, torch.as_tensor(rows, dtype=torch.long)] = 0.0
        keep_nb[m, user, torch.as_tensor(cols, dtype=torch.long)] = False
    stack.train_epochs(keep, keep_nb, seeds, epochs)
    with torch.no_grad():
        out = stack.predict(tu.to(dev), ti.to(dev), keep_nb)
    return to_numpy(out).astype(np.float64)
