"""How much each item of a user's own history moves a recommendation: leave-one-out, influence functions, ACCENT.

Taught in 05_lxr (leave-one-out on history models) and 06_accent (influence functions on NCF). Pieces:

* :class:`LOOExplainer` ("LOO"): exact leave-one-out (LOO) re-scoring of a history-conditioned model: the
  drop of the item's score when one history item is removed, for every history item (``SCORE_HISTORIES``).
* :class:`FastInfluence`: FIA (Cheng et al., KDD 2019) for a model with the ``INFLUENCE`` capability (NCF).
  Only the user's and the target item's parameters move; the Hessian over the ratings of that user and that
  item is damped and solved exactly. The target item is unrated by the user, so no rating touches both, the
  Hessian is block-diagonal and the influence of the user's own ratings needs only the user block.
* :func:`accent_search`: ACCENT's search (Tran, Ghazimatin & Saha Roy, SIGIR 2021, Algorithm 1), written once:
  the smallest set of history items whose removal, with the items' single effects added up, is predicted to let a
  top-k item replace the recommendation (the smallest for the real effects only if they add up). It runs on
  any matrix of per-item effects: exact LOO effects (:class:`LOOCounterfactualExplainer`) or FIA estimates
  (:class:`ACCENTExplainer`).
* :func:`fia_search` and the FIA explainers of 06_accent: :class:`PureFIAExplainer` ("pure FIA"),
  :class:`FIAExplainer` ("FIA"), :class:`ACCENTExplainer` ("ACCENT") and :class:`ACCENTResumeExplainer`
  ("ACCENT+resume", verified by warm-start retraining and resumed when the set is not yet counterfactual).

"FIA" and "ACCENT" name only the influence-function methods; on a history model the same search over exact
effects is the "LOO counterfactual". All effects are *predicted* changes under additive assumptions; only
re-scoring (05_lxr) or retraining (:class:`xrec_helpers.metrics.retraining.RetrainingVerification`) says
whether a set is really counterfactual. Written from the papers; no code from their repositories.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch.func import hessian, jacrev

from xrec_helpers.engines import Engine
from xrec_helpers.explainers.base import Counterfactual, Explainer, Explanation, derive
from xrec_helpers.models.base import INFLUENCE, RETRAIN, SCORE_HISTORIES, capabilities_of


# --- the searches, written once -------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """One greedy search's outcome over an effect matrix (rows: the explained item, then the candidates).

    Attributes
    ----------
    removed : tuple of int
        Columns (history positions) removed, in the order the search took them; empty when nothing is found.
    replacement : int or None
        Row of the replacement (>= 1); None when no set lets a candidate overtake.
    gap : float or None
        Predicted score gap (explained item minus replacement) after the removal; < 0 claims a flip. When no set
        is found: the smallest gap left over the candidates (ACCENT) or None (FIA).
    row : int
        The candidate row the search ended on: the replacement, or the candidate whose gap closed furthest.
    """

    removed: tuple[int, ...]
    replacement: int | None
    gap: float | None
    row: int = 1

    @property
    def found(self) -> bool:
        """Whether a replacement is predicted to overtake."""
        return self.replacement is not None


def accent_search(scores: np.ndarray, effects: np.ndarray, k: int) -> Search:
    """ACCENT's search (Algorithm 1): the smallest removal predicted, effects added up, to let a top-k item win.

    For every candidate row ``j`` in ``1..k-1``, the effect of removing column ``z`` on the gap
    ``scores[0] - scores[j]`` is ``effects[0, z] - effects[j, z]``; columns are added in decreasing order of
    that effect until the predicted gap turns negative (stopping when the next effect is <= 0: the gap
    cannot close). The candidate with the smallest set wins (ties: the more negative gap, then the first).
    Used with exact leave-one-out effects (:class:`LOOCounterfactualExplainer`, 05_lxr) and with FIA
    estimates (:class:`ACCENTExplainer`, 06_accent).

    Parameters
    ----------
    scores : numpy.ndarray
        Shape ``(m,)``: the score of the explained item, then of the candidates, best first.
    effects : numpy.ndarray
        Shape ``(m, n)``: the predicted (or exact) *drop* of each row's score when column ``z`` (a history
        item) is removed.
    k : int
        The top-k size: candidates are rows ``1..k-1``.

    Returns
    -------
    Search
        With ``row`` the replacement, or (nothing found) the candidate whose gap was closed furthest.
    """
    best: tuple | None = None
    for j in range(1, min(k, len(scores))):
        pair = effects[0] - effects[j]  # how much removing each column closes the gap
        gap = float(scores[0] - scores[j])
        chosen: list[int] = []
        for z in np.argsort(-pair, kind="stable"):
            if gap < 0 or pair[z] <= 0:
                break
            gap -= float(pair[z])
            chosen.append(int(z))
        key = (len(chosen) if gap < 0 else np.inf, gap)
        if best is None or key < best[0]:
            best = (key, j, chosen, gap)
    if best is None:
        raise ValueError(f"k={k} with {len(scores)} rows leaves no candidate replacement.")
    (size, _), j, chosen, gap = best
    found = bool(np.isfinite(size))
    return Search(tuple(chosen) if found else (), j if found else None, gap, j)


def fia_search(scores: np.ndarray, effects: np.ndarray, k: int, pure: bool) -> Search:
    """pure FIA / FIA: remove columns by their effect on the recommendation's score, largest drop first.

    Every top-k score is updated additively until some other top-k item overtakes the recommendation.
    pure FIA takes every column in that order; FIA skips one that does not narrow the lead of the
    recommendation over its best competitor (:class:`PureFIAExplainer`, :class:`FIAExplainer`; 06_accent).

    Parameters
    ----------
    scores : numpy.ndarray
        Shape ``(m,)``: the top-k scores, the recommendation first.
    effects : numpy.ndarray
        Shape ``(m, n)``: predicted drop of each score when column ``z`` is removed.
    k : int
        Top-k size (rows ``0..k-1`` take part).
    pure : bool
        pure FIA (True) or FIA (False).

    Returns
    -------
    Search
    """
    s = np.asarray(scores[:k], dtype=np.float64).copy()
    infl = effects[:k]
    chosen: list[int] = []
    for z in np.argsort(-infl[0], kind="stable"):
        new = s - infl[:, z]
        if not pure and (new[0] - new[1:].max()) >= (s[0] - s[1:].max()):
            continue
        s = new
        chosen.append(int(z))
        rep = 1 + int(np.argmax(s[1:]))
        if s[0] < s[rep]:
            return Search(tuple(chosen), rep, float(s[0] - s[rep]), rep)
    return Search((), None, None, 1)


def _check_k(k: int, largest: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= largest:
        raise ValueError(f"k={k}: the replacement candidates are the top-k after the explained item, so k must be "
                         f"an integer between 2 and {what} {largest}.")
    return int(k)


# --- exact leave-one-out on history models --------------------------------------------------------------
class LOOExplainer(Explainer):
    """Leave-one-out (LOO): ``score(x)_y - score(x without h)_y`` for every history item ``h``, exactly.

    A history-conditioned model re-scores an edited history without retraining, so the effect of removing
    each item is measured, not estimated: one batched call of ``|history| + 1`` rows. (On an ID-embedding
    model the same question needs retraining, which FIA approximates: 06_accent.) Taught in 05_lxr.

    Parameters
    ----------
    model : HistoryRecommender
        A fitted model with ``SCORE_HISTORIES``; histories are read from ``model.train_``.
    titles : sequence of str, optional
        Display titles by internal item id.

    Raises
    ------
    TypeError
        When the model cannot score edited histories.
    """

    name: ClassVar[str] = "LOO"
    requires: ClassVar[frozenset[str]] = frozenset({SCORE_HISTORIES})

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None):
        self._attach(model, titles)

    def effects(self, user: int, items: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact leave-one-out effects of the user's history on the scores of ``items``.

        Parameters
        ----------
        user : int
            Internal user id.
        items : sequence of int
            The items whose scores are followed.

        Returns
        -------
        history : numpy.ndarray
            The user's history items (columns of ``drops``).
        scores : numpy.ndarray
            Shape ``(len(items),)``: the scores on the full history.
        drops : numpy.ndarray
            Shape ``(len(items), len(history))``: full score minus the score without each history item.
        """
        hist = self.history(user)
        X = np.tile(self._row(hist), (len(hist) + 1, 1))
        X[np.arange(len(hist)), hist] = 0.0  # row j: history without its j-th item; last row: full
        S = self.model.score_histories(X)[:, np.asarray(items)].astype(np.float64)
        return hist, S[-1], (S[-1][None, :] - S[:-1]).T

    def explain(self, user: int, item: int) -> Explanation:
        """Rank the user's history by the exact drop of ``item``'s score when each one is removed.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
        """
        self.check_pair(user, item)
        hist, _, drops = self.effects(user, [item])
        return self._make(user, item, hist, drops[0], model_calls=len(hist) + 1)


class LOOCounterfactualExplainer(LOOExplainer):
    """ACCENT's search over exact leave-one-out effects: a set whose removal lets a top-k item replace ``item``.

    For every candidate replacement r among the user's top-(k-1) other items, the effect of removing h on the
    gap s_y - s_r is measured exactly (leave-one-out on both scores) and :func:`accent_search` picks the smallest
    set. Effects are summed as if additive; the real effect of removing the whole set is checked by the
    perturbation metrics. The history is ranked by its effect on the chosen gap (when no set is found, on the
    gap closed furthest). Not the influence-function ACCENT of 06_accent: on a history model nothing needs
    estimating. Taught in 05_lxr.

    Parameters
    ----------
    model : HistoryRecommender
        A fitted model with ``SCORE_HISTORIES``.
    titles : sequence of str, optional
        Display titles by internal item id.
    k : int
        Top-k size: the replacement candidates are the k - 1 best other unseen items.
    """

    name: ClassVar[str] = "LOO counterfactual"

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, k: int = 5):
        super().__init__(model, titles=titles)
        self.k = _check_k(k, self.n_items, "the catalogue size")

    def explain(self, user: int, item: int) -> Explanation:
        """The LOO counterfactual set for ``(user, item)``, with the history ranked by its effect on the gap.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
            With a :class:`Counterfactual` (``found`` False when no candidate can overtake).
        """
        hist = self.check_pair(user, item)
        full = self.model.score_histories(self._row(hist)[None, :])[0].astype(np.float64)
        full[hist] = -np.inf
        full[item] = -np.inf
        candidates = np.argsort(-full, kind="stable")[: self.k - 1]
        hist, scores, drops = self.effects(user, [item, *candidates.tolist()])
        res = accent_search(scores, drops, self.k)
        cf = Counterfactual(items=hist[list(res.removed)], predicted_gap=res.gap, k=self.k, found=res.found,
                            replacement=int(candidates[res.replacement - 1]) if res.found else None)
        return self._make(user, item, hist, drops[0] - drops[res.row], counterfactual=cf,
                          model_calls=len(hist) + 2)


# --- FIA on an ID-embedding model -------------------------------------------------------------------------
@dataclass(frozen=True)
class UserInfluence:
    """FIA for one user: the influence of each of the user's ratings on each of their top-k items.

    Attributes
    ----------
    user : int
        Internal user id.
    topk : numpy.ndarray
        The user's top-k unrated items, best first (``topk[0]`` is the recommendation).
    scores : numpy.ndarray
        Predicted ratings of ``topk``.
    history : numpy.ndarray
        The user's rated items (one column of ``influence`` each).
    influence : numpy.ndarray
        Shape ``(k, n_u)``: predicted *drop* in the score of ``topk[a]`` when the rating of ``history[b]`` is
        removed and the model re-fits (FIA's I(z, i) = -Delta f).
    """

    user: int
    topk: np.ndarray
    scores: np.ndarray
    history: np.ndarray
    influence: np.ndarray


class FastInfluence:
    """FIA with exact small Hessian solves, computed once per user and cached. Taught in 06_accent.

    Works on any model with the ``INFLUENCE`` capability (its interface is documented next to the constant in
    :mod:`xrec_helpers.models.base`): only the user's own parameters theta move. For each of the user's
    training rows the per-row loss gradient is taken; removing an item drops the rows it owns (NCF: its rating;
    RCF: the pair whose positive it is), and theta moves by ``(1/n) H^-1 grad l(z)`` with ``H`` the Hessian of
    the mean loss over the ``n`` rows of the objective plus ``(l2 + damping) I``. The gradients and the Hessian
    come from :mod:`torch.func`, or from the model's optional analytic ``user_training_loss_derivatives`` and
    ``user_score_jacobian`` when it has them (NCF: exact, since its score is piecewise linear in theta; RCF: the
    loss derivatives in closed form, equal to torch.func's to round-off).

    * NCF (squared error on ratings): the predicted change of a target's score is linear,
      ``grad f . delta theta``; ``n`` is the user's plus the target item's ratings (``"local"``), so ``H`` is
      solved per target.
    * RCF (BPR on pairs, ``user_score_without_function``): a removed positive also stops being one of the
      user's inputs, so the change is measured by re-running the forward pass with ``theta + delta theta`` *and*
      the item out of the neighbour list (batched over the removed items), as ACCENT's RCF code does. The
      Hessian is computed once per user (ACCENT's code recomputes it for each removed item).

    Parameters
    ----------
    model : Recommender
        A fitted model with the ``INFLUENCE`` capability (NCF, RCF).
    k : int
        How many top items to compute influences for (the largest k you will explain with).
    damping : float, optional
        Added to the Hessian's diagonal on top of the model's L2 term (default: the model's
        ``influence_damping``: 1e-6 on NCF as in FIA, 0.01 on RCF as in ACCENT's RCF code).
    normalization : {"local", "global"}
        ``"local"`` (FIA as implemented: the loss over the related rows is averaged over their number; NCF: the
        user's and the target item's ratings, RCF: the user's pairs) or ``"global"`` (averaged over all training
        rows, the model's actual objective, where the L2 term weighs far more against the user's rows).

    Raises
    ------
    TypeError
        When the model lacks ``INFLUENCE``.
    """

    def __init__(self, model: Any, *, k: int = 20, damping: float | None = None, normalization: str = "local"):
        if INFLUENCE not in capabilities_of(model):
            raise TypeError(f"FastInfluence needs a fitted model with the {INFLUENCE!r} capability (NCF, RCF); "
                            f"{type(model).__name__} offers {sorted(capabilities_of(model))}.")
        if normalization not in ("local", "global"):
            raise ValueError(f"normalization must be 'local' or 'global', not {normalization!r}.")
        model._fitted()
        self.k = _check_k(k, model.n_items, "the catalogue size")
        damping = float(model.influence_damping) if damping is None else float(damping)
        self.model, self.damping, self.normalization = model, damping, normalization
        self._cache: dict[int, UserInfluence] = {}

    def user(self, user: int) -> UserInfluence:
        """FIA influences for ``user``'s top-k (computed once, then cached).

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        UserInfluence

        Raises
        ------
        ValueError
            When the user has no training row that can be removed (RCF: no positive).
        """
        user = int(self.model.check_users(user)[0])
        if user in self._cache:
            return self._cache[user]
        losses, removes = self.model.user_training_losses(user)
        removes = np.asarray(removes, dtype=np.int64)
        if len(removes) == 0:
            raise ValueError(f"User {user} has no training rows FIA can remove (no ratings; on RCF no positive "
                             "rating): there is nothing to explain the recommendation with.")
        hist, first, inverse = np.unique(removes, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # columns in the order the rows come (NCF: CSR order)
        hist, rank = hist[order], np.argsort(order)
        topk = self.model.recommend(user, self.k)[0]
        theta = self.model.user_parameters(user)
        f = self.model.user_score_function(user)
        T = torch.as_tensor(topk)
        with torch.no_grad():
            s_top = f(theta, T)
        derivatives = getattr(self.model, "user_training_loss_derivatives", None)  # optional analytic hook (NCF)
        if derivatives is not None:
            G, S = derivatives(user)(theta)  # NCF: 2 e J and 2 J^T J, exact (see the model's method)
        else:
            G = jacrev(losses)(theta)  # (n_rows, p): per-row loss gradients
            S = hessian(lambda t: losses(t).sum())(theta)  # full Hessian, not Gauss-Newton
        grad_loss = torch.zeros(len(hist), len(theta), dtype=torch.float64).index_add_(
            0, torch.as_tensor(rank[inverse]), G)
        n_norm = torch.as_tensor(self.model.influence_counts(user, topk, self.normalization), dtype=torch.float64)
        lam = float(self.model.influence_l2) + self.damping
        eye = torch.eye(len(theta), dtype=torch.float64)
        hook = getattr(self.model, "user_score_without_function", None)  # the optional input effect (RCF)
        if hook is None:
            H = S.unsqueeze(0) / n_norm[:, None, None] + lam * eye
            score_jac = getattr(self.model, "user_score_jacobian", None)  # optional analytic hook (NCF)
            grad_f = score_jac(user)(theta, T) if score_jac is not None else jacrev(f)(theta, T)
            x = torch.linalg.solve(H, grad_f)  # (k, p): H^-1 grad f for each target
            drop = -(x @ grad_loss.T) / n_norm[:, None]  # (k, n_u): FIA's I(z, i) = -delta f
        else:
            if not torch.all(n_norm == n_norm[0]):
                raise ValueError("A model with an input effect must average FIA's objective over the same rows for "
                                 "every target.")
            n = n_norm[0]
            delta = torch.linalg.solve(S / n + lam * eye, grad_loss.T).T / n  # (n_u, p): theta shift per removal
            with torch.no_grad():
                moved = hook(user)(theta.unsqueeze(0) + delta, hist, T)  # (n_u, k)
            drop = (s_top.unsqueeze(0) - moved).T
        out = UserInfluence(user, topk, s_top.detach().numpy(), hist, drop.detach().numpy())
        self._cache[user] = out
        return out


class _InfluenceExplainer(Explainer):
    """Shared plumbing of the FIA explainers: explain a user's top recommendation from one cached FIA pass."""

    requires: ClassVar[frozenset[str]] = frozenset({INFLUENCE})

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, k: int = 5,
                 influence: FastInfluence | None = None):
        self._attach(model, titles)
        if influence is None:
            influence = FastInfluence(model, k=_check_k(k, model.n_items, "the catalogue size"))
        elif influence.model is not model:
            raise ValueError("influence was computed for another model: build FastInfluence(model, k=...) for this one.")
        self.k = _check_k(k, influence.k, "the influence's k =")
        self.influence = influence

    @abstractmethod
    def _search(self, info: UserInfluence) -> Search:
        """The method's greedy search over one user's influence matrix."""

    def _values(self, info: UserInfluence, res: Search) -> np.ndarray:
        return info.influence[0]

    def explain(self, user: int, item: int) -> Explanation:
        """Explain ``user``'s top recommendation ``item`` with a counterfactual set of their ratings.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` must be the user's top recommendation (build the pairs with
            :func:`xrec_helpers.explainers.base.top_pairs`).

        Returns
        -------
        Explanation
            Values: each rating's predicted effect (see the class); a :class:`Counterfactual` with ``k``.

        Raises
        ------
        ValueError
            When ``item`` is in the history or is not the user's top recommendation.
        """
        self.check_pair(user, item)
        info = self.influence.user(user)
        rec = int(info.topk[0])
        if int(item) != rec:
            raise ValueError(f"{self.name} explains a user's top recommendation (the replacement comes from the rest "
                             f"of the top-k); item {item} is not user {user}'s top item (that is {rec}). Build the "
                             "pairs with top_pairs(model, users).")
        res = self._search(info)
        cf = Counterfactual(items=info.history[list(res.removed)], predicted_gap=res.gap, k=self.k, found=res.found,
                            replacement=int(info.topk[res.replacement]) if res.found else None)
        expl = self._make(info.user, rec, info.history, self._values(info, res), counterfactual=cf)
        return derive(expl, text=self.sentence(expl))

    def sentence(self, explanation: Explanation, n: int = 4) -> str:
        """"Had you not rated A and B, you would have been recommended C instead of D." (Markdown, escaped).

        Parameters
        ----------
        explanation : Explanation
            One of this explainer's explanations.
        n : int
            How many titles to name before "and m more".

        Returns
        -------
        str
        """
        cf = explanation.counterfactual
        if cf is None or not cf.found:
            return (f"{self.name} found no set of your ratings that lets another top-{cf.k if cf else self.k} item "
                    f"replace {explanation._md_title(explanation.item)}.")
        joined = explanation._md_titles(cf.items, n)
        return (f"Had you not rated {joined}, you would have been recommended "
                f"{explanation._md_title(cf.replacement)} instead of {explanation._md_title(explanation.item)}.")

    def predicted_scores(self, explanation: Explanation) -> pd.DataFrame:
        """The top-k scores now and as predicted after removing the explanation's set (FIA, additive).

        Parameters
        ----------
        explanation : Explanation
            One of this explainer's explanations (same model).

        Returns
        -------
        pandas.DataFrame
            Index: the top-k items, best first; columns ``score now`` and ``predicted after removal``.
        """
        info = self.influence.user(explanation.user)
        k = explanation.counterfactual.k if explanation.counterfactual is not None else self.k
        cols = np.flatnonzero(np.isin(info.history, explanation.counterfactual_set if
                                      explanation.counterfactual_set is not None else []))
        return pd.DataFrame({"score now": info.scores[:k],
                             "predicted after removal": info.scores[:k] - info.influence[:k, cols].sum(1)},
                            index=pd.Index(info.topk[:k], name="item"))


class PureFIAExplainer(_InfluenceExplainer):
    """pure FIA: remove ratings by their influence on the recommendation, never skipping one.

    Values: the predicted drop of the recommendation's rating when each rating is removed. Taught in 06_accent.

    Parameters
    ----------
    model : NCF
        A fitted model with ``INFLUENCE``.
    titles : sequence of str, optional
        Display titles by internal item id.
    k : int
        Top-k size: the replacement must come from the original top-k.
    influence : FastInfluence, optional
        A shared FIA cache (built with the largest k you use); one is built when omitted.
    """

    name: ClassVar[str] = "pure FIA"

    def _search(self, info: UserInfluence) -> Search:
        return fia_search(info.scores, info.influence, self.k, pure=True)


class FIAExplainer(_InfluenceExplainer):
    """FIA: as pure FIA, but a rating is added only if it narrows the recommendation's lead.

    Taught in 06_accent. Parameters as :class:`PureFIAExplainer`.
    """

    name: ClassVar[str] = "FIA"

    def _search(self, info: UserInfluence) -> Search:
        return fia_search(info.scores, info.influence, self.k, pure=False)


class ACCENTExplainer(_InfluenceExplainer):
    """ACCENT: :func:`accent_search` over FIA's pairwise score-gap influences.

    Values: each rating's predicted reduction of the gap between the recommendation and the chosen replacement
    (when no set exists, the candidate whose gap closed furthest). Taught in 06_accent. Parameters as
    :class:`PureFIAExplainer`.
    """

    name: ClassVar[str] = "ACCENT"

    def _search(self, info: UserInfluence) -> Search:
        return accent_search(info.scores, info.influence, self.k)

    def _values(self, info: UserInfluence, res: Search) -> np.ndarray:
        return info.influence[0] - info.influence[res.row]


class ACCENTResumeExplainer(ACCENTExplainer):
    """ACCENT, verified by warm-start retraining and resumed while the set is not yet counterfactual.

    The paper (§4.3) observes that FIA often over-estimates a set's influence, so ACCENT stops too early, and
    suggests retraining after it stops and resuming if needed. Here: after a retrain in which the replacement
    has not overtaken the recommendation, with actual gap ``a`` where FIA predicted ``p < 0``, keep adding
    ratings in ACCENT's order for the same replacement until the predicted gap is below ``-(a - p)``; verify
    again, up to ``rounds`` times. ``explain_many`` runs every user's round together in one batched retrain.
    The internal retrains use seeds ``seed_offset + s``, so an evaluation with seeds ``0..`` stays independent
    of the stopping rule. ``Counterfactual.rounds`` and ``verified`` record the outcome. Taught in 06_accent.

    Parameters
    ----------
    model : NCF
        A fitted model with ``INFLUENCE`` and ``RETRAIN``.
    titles, k, influence
        As :class:`ACCENTExplainer`.
    epochs : int
        Warm-start epochs per verification retrain.
    seeds : int
        Retrains per round (seeds ``seed_offset .. seed_offset + seeds - 1``), averaged.
    rounds : int
        Verify-and-resume rounds at most.
    seed_offset : int
        First seed of the internal retrains.
    lr : float, optional
        Learning rate of the retrains (default: the model's).
    engine : None, int or dask.distributed.Client
        Where the batched retrains run (:mod:`xrec_helpers.engines`).
    """

    name: ClassVar[str] = "ACCENT+resume"
    requires: ClassVar[frozenset[str]] = frozenset({INFLUENCE, RETRAIN})

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, k: int = 5,
                 influence: FastInfluence | None = None, epochs: int = 10, seeds: int = 1, rounds: int = 2,
                 seed_offset: int = 1000, lr: float | None = None, engine: Engine = None):
        super().__init__(model, titles=titles, k=k, influence=influence)
        if rounds < 1 or seeds < 1 or epochs < 0:
            raise ValueError(f"rounds and seeds must be >= 1 and epochs >= 0 (got {rounds}, {seeds}, {epochs}).")
        self.epochs, self.seeds, self.rounds, self.seed_offset, self.lr = epochs, seeds, rounds, seed_offset, lr
        self.engine = engine

    def explain(self, user: int, item: int) -> Explanation:
        """ACCENT's set for the top recommendation, verified and resumed (see the class).

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` must be the user's top recommendation.

        Returns
        -------
        Explanation
        """
        return self.explain_many([(user, item)])[0]

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Explain many (user, top item) pairs; every round's retrains of all users run as one batch.

        Parameters
        ----------
        pairs : iterable of (int, int)
            Internal (user, top recommendation) ids, e.g. ``top_pairs(model, users)``.

        Returns
        -------
        list of Explanation
        """
        return self._resume([ACCENTExplainer.explain(self, u, i) for u, i in pairs])

    def _resume(self, expls: list[Explanation]) -> list[Explanation]:
        state: list[list | None] = []  # per explanation: [info, replacement row, pair effects, order, n taken]
        rounds = [0] * len(expls)
        verified: list[bool | None] = [None] * len(expls)
        for e in expls:
            if not e.counterfactual.found:
                state.append(None)
                continue
            info = self.influence.user(e.user)
            j = int(np.flatnonzero(info.topk == e.replacement)[0])
            pair = info.influence[0] - info.influence[j]
            order = np.argsort(-pair, kind="stable")
            order = order[pair[order] > 0]
            state.append([info, j, pair, order, e.counterfactual.size])
        gaps = {n: e.predicted_gap for n, e in enumerate(expls)}
        active = [n for n, s in enumerate(state) if s is not None]
        for _ in range(self.rounds):
            if not active:
                break
            removals, seeds, targets, owner = [], [], [], []
            for n in active:
                info, j, pair, order, taken = state[n]
                for s in range(self.seeds):
                    removals.append((info.user, info.history[order[:taken]]))
                    seeds.append(self.seed_offset + s)
                    targets.append([int(info.topk[0]), int(info.topk[j])])
                    owner.append(n)
            new = self.model.retrain_scores(removals, seeds, self.epochs, targets, lr=self.lr, engine=self.engine)
            still = []
            for n in active:
                rows = np.mean([new[r] for r in np.flatnonzero(np.asarray(owner) == n)], axis=0)
                actual = float(rows[0] - rows[1])
                info, j, pair, order, taken = state[n]
                rounds[n] += 1
                if actual < 0:
                    verified[n] = True
                    continue
                predicted = float(info.scores[0] - info.scores[j] - pair[order[:taken]].sum())
                target = -(actual - predicted)
                gap, extended = predicted, taken
                while extended < len(order) and (extended == taken or gap >= target):
                    gap -= float(pair[order[extended]])
                    extended += 1
                verified[n] = False
                if extended == taken:  # nothing left that narrows the gap
                    continue
                state[n][4] = extended
                gaps[n] = gap
                still.append(n)
            active = still
        out = []
        for n, e in enumerate(expls):
            cf = e.counterfactual
            if state[n] is not None:
                info, _, _, order, taken = state[n]
                cf = dataclasses.replace(cf, items=info.history[order[:taken]], predicted_gap=gaps[n],
                                         rounds=rounds[n], verified=verified[n])
            e = derive(e, counterfactual=cf)
            out.append(derive(e, text=self.sentence(e)))
        return out


def influence_explainers(model: Any, ks: Sequence[int] = (5, 10, 20), *,
                         methods: Sequence[type[_InfluenceExplainer]] = (PureFIAExplainer, FIAExplainer,
                                                                          ACCENTExplainer),
                         titles: Sequence[str] | np.ndarray | None = None,
                         influence: FastInfluence | None = None) -> dict[tuple[str, int], Explainer]:
    """One explainer per (method, k), all sharing one FIA cache, so several k never recompute FIA.

    Taught in 06_accent (Table 1 runs pure FIA, FIA and ACCENT at k = 5, 10, 20).

    Parameters
    ----------
    model : NCF
        A fitted model with ``INFLUENCE``.
    ks : sequence of int
        The top-k sizes.
    methods : sequence of explainer classes
        Influence explainers to build (default: pure FIA, FIA, ACCENT).
    titles : sequence of str, optional
        Display titles by internal item id.
    influence : FastInfluence, optional
        The shared cache (default: ``FastInfluence(model, k=max(ks))``).

    Returns
    -------
    dict
        ``{(method name, k): explainer}``, method-major in the order given, then by k.
    """
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("Give at least one k.")
    influence = FastInfluence(model, k=max(ks)) if influence is None else influence  # the model's damping
    return {(cls.name, k): cls(model, titles=titles, k=k, influence=influence) for cls in methods for k in ks}
