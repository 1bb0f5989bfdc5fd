"""ACCENT (Tran et al., SIGIR 2021) on NCF: counterfactual sets from Fast Influence Analysis.

Taught in 06_accent. Pieces:

* :class:`FastInfluence`: FIA (Cheng et al., KDD 2019) for NCF. Only the embeddings of the user
  and of the target item move; the Hessian is taken over the ratings of that user and that item,
  damped, and solved exactly. Because the target item is unrated by the user, no rating touches
  both embeddings, so the 64x64 Hessian is block-diagonal and the influence of the user's own
  ratings needs only the 32x32 user block: exact, not an approximation on top of FIA.
* :class:`PureFIAExplainer`, :class:`FIAExplainer`, :class:`AccentExplainer`: the three greedy
  searches of the paper over one influence matrix (top-k items x the user's ratings), each
  returning a counterfactual set and a replacement from the original top-k.
* :class:`AccentResumeExplainer`: the paper's §4.3 suggestion, built: verify ACCENT's set by
  warm-start retraining and, if the replacement has not overtaken the recommendation, resume
  adding ratings until the predicted gap also covers the error observed in that retrain.

All influences are *predicted* changes under FIA's frozen-network, additive assumptions; only
retraining (``xrec_helpers.metrics.retraining``) says whether a set is really counterfactual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import hessian, jacrev

from xrec_helpers.engines import Engine
from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.ncf import NCF, ncf_forward


@dataclass
class UserInfluence:
    """FIA for one user: influence of each of the user's ratings on each of their top-k items.

    Attributes:
        user: internal user id.
        topk: the user's top-k unrated items, best first (``topk[0]`` is the recommendation).
        scores: predicted ratings of ``topk``.
        history: the user's rated items (one column of ``influence`` each).
        influence: (k, n_u) predicted *drop* in the score of ``topk[a]`` when the rating of
            ``history[b]`` is removed and the model re-fits (FIA's I(z, i) = -Delta f).
    """

    user: int
    topk: np.ndarray
    scores: np.ndarray
    history: np.ndarray
    influence: np.ndarray


class FastInfluence:
    """FIA for NCF with exact small Hessian solves, cached per user. Taught in 06_accent.

    Args:
        model: a fitted :class:`NCF`.
        k: how many top items to compute influences for (the largest k you will explain with).
        damping: added to the Hessian's diagonal on top of the weight decay (1e-6 as in FIA).
        normalization: ``"local"`` (FIA as implemented: the loss over the n_ui related ratings is
            averaged over n_ui) or ``"global"`` (averaged over all n training ratings, the model's
            actual objective, where the weight decay weighs far more against the user's ratings).
    """

    def __init__(self, model: NCF, k: int = 20, damping: float = 1e-6, normalization: str = "local"):
        if not isinstance(model, NCF):
            raise TypeError(f"FastInfluence needs a fitted NCF model, got {type(model).__name__}.")
        if normalization not in ("local", "global"):
            raise ValueError(f"normalization must be 'local' or 'global', not {normalization!r}.")
        train = model._fitted()
        if not 2 <= k <= model.n_items:
            raise ValueError(f"k={k} must be between 2 (a recommendation and a replacement) and the catalogue "
                             f"size {model.n_items}.")
        self.model, self.k, self.damping, self.normalization = model, k, damping, normalization
        self.params = {key: v[0].double() for key, v in model.params_.items()}
        self.item_counts = np.diff(train.tocsc().indptr)
        self._cache: dict[int, UserInfluence] = {}

    def _f(self, theta_u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of ``items`` for a user whose (GMF; MLP) embedding is ``theta_u`` (32,)."""
        p, d = self.params, self.model.factors
        B = len(items)
        pg = theta_u[:d].expand(1, B, d)
        pm = theta_u[d:].expand(1, B, d)
        out = ncf_forward(pg, p["Q_gmf"][items].unsqueeze(0), pm, p["Q_mlp"][items].unsqueeze(0),
                          p["W1"].unsqueeze(0), p["b1"].unsqueeze(0), p["W2"].unsqueeze(0), p["b2"].unsqueeze(0),
                          p["Wo"].unsqueeze(0), p["bo"].unsqueeze(0))
        return out[0]

    def user(self, user: int) -> UserInfluence:
        """FIA influences for ``user``'s top-k (computed once, then cached)."""
        user = int(self.model.check_users(user)[0])
        if user in self._cache:
            return self._cache[user]
        train = self.model.train_
        start, end = train.indptr[user], train.indptr[user + 1]
        hist = train.indices[start:end].astype(np.int64)
        if len(hist) == 0:
            raise ValueError(f"User {user} has no training ratings: there is nothing to remove.")
        ratings = torch.as_tensor(train.data[start:end], dtype=torch.float64)
        topk = self.model.recommend(user, self.k)[0]
        p, d = self.params, self.model.factors
        theta = torch.cat([p["P_gmf"][user], p["P_mlp"][user]])
        J = torch.as_tensor(hist)
        T = torch.as_tensor(topk)
        with torch.no_grad():
            f_hist = self._f(theta, J)
            s_top = self._f(theta, T)
        grad_f_hist = jacrev(self._f)(theta, J)  # (n_u, 32)
        grad_loss = 2.0 * (f_hist - ratings).unsqueeze(1) * grad_f_hist  # squared error, no L2 term
        S = hessian(lambda t: ((self._f(t, J) - ratings) ** 2).sum())(theta)  # full Hessian, not Gauss-Newton
        grad_f_top = jacrev(self._f)(theta, T)  # (k, 32)
        n_norm = (len(hist) + self.item_counts[topk] if self.normalization == "local"
                  else np.full(len(topk), train.nnz))
        n_norm = torch.as_tensor(n_norm, dtype=torch.float64)
        lam = self.model.weight_decay + self.damping
        H = S.unsqueeze(0) / n_norm[:, None, None] + lam * torch.eye(2 * d, dtype=torch.float64)
        x = torch.linalg.solve(H, grad_f_top)  # (k, 32): H^-1 grad f for each target
        delta_f = (x @ grad_loss.T) / n_norm[:, None]  # (k, n_u): change of each target when z is removed
        out = UserInfluence(user, topk, s_top.numpy(), hist, (-delta_f).detach().numpy())
        self._cache[user] = out
        return out


# --- the greedy searches ---------------------------------------------------------------------
@dataclass
class Search:
    """One greedy search's outcome for one k: positions (columns of the influence matrix) removed,
    the replacement's position in the top-k (None: no set found), and the predicted final gap."""

    removed: list[int]
    replacement: int | None
    gap: float | None


def accent_search(scores: np.ndarray, influence: np.ndarray, ks: Sequence[int]) -> dict[int, Search]:
    """ACCENT (Algorithm 1): per candidate replacement, add ratings by pairwise score-gap influence
    until the predicted gap turns negative; keep the smallest set (ties: the more negative gap).

    Candidates for a given k are the other items of the original top-k; one pass over the
    candidates answers every k (the set for a larger k is never larger). Taught in 06_accent.
    """
    best: Search = Search([], None, None)
    out: dict[int, Search] = {}
    kmax = max(ks)
    for j in range(1, kmax):
        pair = influence[0] - influence[j]  # how much removing z closes the gap rec - candidate
        gap = float(scores[0] - scores[j])
        order = np.argsort(-pair, kind="stable")
        chosen: list[int] = []
        for z in order:
            if pair[z] <= 0 or gap < 0:
                break
            chosen.append(int(z))
            gap -= float(pair[z])
        if gap < 0 and (best.replacement is None or len(chosen) < len(best.removed)
                        or (len(chosen) == len(best.removed) and gap < best.gap)):
            best = Search(chosen, j, gap)
        if j + 1 in ks:
            out[j + 1] = Search(list(best.removed), best.replacement, best.gap)
    return out


def fia_search(scores: np.ndarray, influence: np.ndarray, k: int, pure: bool) -> Search:
    """pure FIA / FIA: remove ratings by their influence on the recommendation's score, largest
    drop first, updating every top-k score additively, until some other top-k item overtakes it.
    pure FIA takes every rating in that order; FIA skips a rating that does not narrow the lead of
    the recommendation over its best competitor. Taught in 06_accent.
    """
    s = np.asarray(scores[:k], dtype=np.float64).copy()
    infl = influence[:k]
    chosen: list[int] = []
    for z in np.argsort(-infl[0], kind="stable"):
        new = s - infl[:, z]
        if not pure and (new[0] - new[1:].max()) >= (s[0] - s[1:].max()):
            continue
        s = new
        chosen.append(int(z))
        rep = 1 + int(np.argmax(s[1:]))
        if s[0] < s[rep]:
            return Search(chosen, rep, float(s[0] - s[rep]))
    return Search([], None, None)


class _InfluenceExplainer(Explainer):
    """Shared plumbing: explain a user's top recommendation for several k from one FIA pass."""

    def __init__(self, model: NCF, k: int = 5, influence: FastInfluence | None = None,
                 titles: Sequence[str] | np.ndarray | None = None):
        super().__init__(model._fitted(), titles)
        self.model, self.k = model, k
        self.influence = influence if influence is not None else FastInfluence(model, k=max(k, 2))
        if not 2 <= k <= self.influence.k:
            raise ValueError(f"k={k} must be between 2 and the influence's k={self.influence.k}; build "
                             "FastInfluence(model, k=...) with the largest k you will use.")

    def _search(self, info: UserInfluence, ks: Sequence[int]) -> dict[int, Search]:
        raise NotImplementedError

    def _ranking(self, info: UserInfluence, result: Search) -> np.ndarray:
        return info.influence[0]

    def explain(self, user: int, item: int | None = None) -> Explanation:
        """Explain ``user``'s top recommendation (``item`` may be given, but must be that top item)."""
        return self.explain_ks(user, (self.k,), item=item)[self.k]

    def explain_ks(self, user: int, ks: Iterable[int] = (5, 10, 20), item: int | None = None) -> dict[int, Explanation]:
        """One explanation per k (candidate replacements = the other items of the top-k)."""
        ks = tuple(sorted({int(k) for k in ks}))
        if not ks or ks[0] < 2 or ks[-1] > self.influence.k:
            raise ValueError(f"ks={ks} must lie in 2..{self.influence.k} (the influence's k).")
        info = self.influence.user(user)
        rec = int(info.topk[0])
        if item is not None and int(item) != rec:
            self.check_pair(user, int(item))
            raise ValueError(f"{self.name} explains the top recommendation; item {item} is not user {user}'s top "
                             f"item (that is {rec}). Call explain(user) to explain it.")
        self.check_pair(user, rec)
        return {k: self._wrap(info, k, res) for k, res in self._search(info, ks).items()}

    def _wrap(self, info: UserInfluence, k: int, res: Search) -> Explanation:
        ranking = self._ranking(info, res)
        removed = np.asarray(res.removed, dtype=np.int64)
        predicted = info.scores[:k] - info.influence[:k, removed].sum(1)
        replacement = None if res.replacement is None else int(info.topk[res.replacement])
        cf = info.history[removed] if res.replacement is not None else None
        extra = {"k": k, "topk": info.topk[:k].copy(), "topk_scores": info.scores[:k].copy(),
                 "predicted_scores": predicted, "n_ratings": len(info.history)}
        expl = self._make(info.user, int(info.topk[0]), info.history, ranking, counterfactual_set=cf,
                          replacement=replacement, predicted_gap=res.gap, extra=extra)
        expl.text = self.render(expl)
        return expl

    def _title(self, item: int) -> str:
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    def _md_title(self, item: int) -> str:
        return f"*{markdown_escape(self._title(item))}*"

    def render(self, expl: Explanation, n: int = 4) -> str:
        """"Had you not rated A and B, you would have been recommended C instead of D." """
        if expl.counterfactual_set is None:
            return (f"{self.name} found no set of your ratings that lets another top-{expl.extra['k']} item "
                    f"replace {self._md_title(expl.item)}.")
        names = [self._md_title(i) for i in expl.counterfactual_set[:n]]
        more = len(expl.counterfactual_set) - n
        if more > 0:
            names.append(f"{more} more")
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return (f"Had you not rated {joined}, you would have been recommended "
                f"{self._md_title(expl.replacement)} instead of {self._md_title(expl.item)}.")


class PureFIAExplainer(_InfluenceExplainer):
    """pure FIA: remove ratings by their influence on the recommendation, never skipping one.
    Scores = predicted drop of the recommendation's rating. Taught in 06_accent."""

    name = "pure FIA"

    def _search(self, info: UserInfluence, ks: Sequence[int]) -> dict[int, Search]:
        return {k: fia_search(info.scores, info.influence, k, pure=True) for k in ks}


class FIAExplainer(_InfluenceExplainer):
    """FIA: as pure FIA, but a rating is added only if it narrows the recommendation's lead.
    Taught in 06_accent."""

    name = "FIA"

    def _search(self, info: UserInfluence, ks: Sequence[int]) -> dict[int, Search]:
        return {k: fia_search(info.scores, info.influence, k, pure=False) for k in ks}


class AccentExplainer(_InfluenceExplainer):
    """ACCENT: pairwise score-gap influence, smallest set over replacement candidates in the top-k.
    Scores = each rating's predicted reduction of the gap between the recommendation and the
    chosen replacement (or the runner-up when no set exists). Taught in 06_accent."""

    name = "ACCENT"

    def _search(self, info: UserInfluence, ks: Sequence[int]) -> dict[int, Search]:
        return accent_search(info.scores, info.influence, ks)

    def _ranking(self, info: UserInfluence, result: Search) -> np.ndarray:
        j = 1 if result.replacement is None else result.replacement
        return info.influence[0] - info.influence[j]


class AccentResumeExplainer(AccentExplainer):
    """ACCENT, verified by warm-start retraining and resumed when the set is not yet counterfactual.

    The paper (§4.3) observes that FIA often over-estimates a set's influence, so ACCENT stops too
    early, and suggests retraining after it stops and resuming if needed. Here: after a retrain in
    which the replacement has not overtaken the recommendation, with actual gap ``a`` where FIA
    predicted ``p < 0``, keep adding ratings in ACCENT's order for the same replacement until the
    predicted gap is below ``-(a - p)``, i.e. until it also covers the error just observed; verify
    again, up to ``rounds`` times. ``explain_many`` runs every user's round together in one batched
    retrain. The internal retrains use seeds ``seed_offset + s``, so an evaluation with seeds
    ``0..`` stays independent of the stopping rule. Taught in 06_accent.
    """

    name = "ACCENT+resume"

    def __init__(self, model: NCF, k: int = 5, influence: FastInfluence | None = None,
                 titles: Sequence[str] | np.ndarray | None = None, epochs: int = 10, seeds: int = 1,
                 rounds: int = 2, seed_offset: int = 1000, lr: float | None = None, engine: Engine = None):
        super().__init__(model, k, influence, titles)
        if rounds < 1 or seeds < 1 or epochs < 0:
            raise ValueError(f"rounds and seeds must be >= 1 and epochs >= 0 (got {rounds}, {seeds}, {epochs}).")
        self.epochs, self.seeds, self.rounds, self.seed_offset, self.lr = epochs, seeds, rounds, seed_offset, lr
        self.engine = engine  # where the batched retrains run (see xrec_helpers.engines)

    def explain_ks(self, user: int, ks: Iterable[int] = (5, 10, 20), item: int | None = None) -> dict[int, Explanation]:
        base = AccentExplainer.explain_ks(self, user, ks, item=item)
        return {k: self._resume([e])[0] for k, e in base.items()}

    def explain_many(self, pairs: Iterable[tuple[int, int | None]]) -> list[Explanation]:
        base = [AccentExplainer.explain_ks(self, int(u), (self.k,), item=i)[self.k] for u, i in pairs]
        return self._resume(base)

    def _resume(self, expls: list[Explanation]) -> list[Explanation]:
        state = []  # per explanation: (order of columns, n taken, replacement column) or None
        for e in expls:
            e.extra["rounds"] = 0
            e.extra["verified"] = None
            e.method = self.name
            if e.counterfactual_set is None:
                state.append(None)
                continue
            info = self.influence.user(e.user)
            j = int(np.flatnonzero(info.topk == e.replacement)[0])
            pair = info.influence[0] - info.influence[j]
            order = np.argsort(-pair, kind="stable")
            order = order[pair[order] > 0]
            state.append([info, j, pair, order, len(e.counterfactual_set)])
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
            new = self.model.retrain_scores(removals, seeds, self.epochs, targets, lr=self.lr,
                                            engine=self.engine)
            still = []
            for n in active:
                rows = np.mean([new[r] for r in np.flatnonzero(np.asarray(owner) == n)], axis=0)
                actual = float(rows[0] - rows[1])
                info, j, pair, order, taken = state[n]
                e = expls[n]
                e.extra["rounds"] += 1
                if actual < 0:
                    e.extra["verified"] = True
                    continue
                predicted = float(info.scores[0] - info.scores[j] - pair[order[:taken]].sum())
                target = -(actual - predicted)
                gap, extended = predicted, taken
                while extended < len(order) and (extended == taken or gap >= target):
                    gap -= float(pair[order[extended]])
                    extended += 1
                if extended == taken:  # nothing left that narrows the gap
                    e.extra["verified"] = False
                    continue
                state[n][4] = extended
                e.counterfactual_set = info.history[order[:extended]]
                e.predicted_gap = gap
                e.extra["predicted_scores"] = info.scores[:len(e.extra["topk"])] - \
                    info.influence[:len(e.extra["topk"]), order[:extended]].sum(1)
                e.extra["verified"] = False
                still.append(n)
            active = still
        for e in expls:
            e.text = self.render(e)
        return expls
