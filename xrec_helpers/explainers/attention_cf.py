"""ACCENT's attention baselines on RCF: remove the user's most-attended items until the recommendation changes.

Taught in 06_accent (the RCF half of Table 1; Tran, Ghazimatin & Saha Roy, SIGIR 2021). RCF scores a target
from the user's positive items through two attention levels (:mod:`xrec_helpers.models.rcf`); each positive
item ``j`` gets the weight ``sum_t a_t a_tj`` it receives when the recommendation is scored. The items are
taken in decreasing weight and "removed" *without retraining*: the model re-scores the top-k with them left
out of its inputs (``score_without_many``, part of ``ITEM_ATTENTION``: the candidates of the greedy search are
re-scored in batches, with the same decisions as one at a time).

* :class:`PureAttentionExplainer` ("pure attention") removes items in that order until another item of the
  original top-k overtakes the recommendation.
* :class:`AttentionExplainer` ("attention") keeps an item only if removing it narrows the gap between the
  recommendation and its best top-k competitor.

Both return a :class:`~xrec_helpers.explainers.base.Counterfactual` like the FIA explainers, so
:class:`xrec_helpers.metrics.retraining.RetrainingVerification` checks them by retraining. The predicted gap
is the re-scored one (recommendation minus replacement; < 0 claims a flip). Written from the papers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from xrec_helpers.explainers.base import Counterfactual, Explainer, Explanation, derive
from xrec_helpers.models.base import ITEM_ATTENTION

_CHUNK = 32  # candidates re-scored per batch in the greedy searches


class _AttentionCFExplainer(Explainer):
    """Shared plumbing: attention weights, the top-k, the greedy removal by re-scoring."""

    requires: ClassVar[frozenset[str]] = frozenset({ITEM_ATTENTION})
    pure: ClassVar[bool] = True

    def __init__(self, model: Any, *, titles: Sequence[str] | np.ndarray | None = None, k: int = 5):
        self._attach(model, titles)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= model.n_items:
            raise ValueError(f"k={k}: the replacement candidates are the top-k after the recommendation, so k must be "
                             f"an integer between 2 and the catalogue size {model.n_items}.")
        self.k = int(k)

    def weights(self, user: int, item: int) -> tuple[np.ndarray, np.ndarray]:
        """Each positive item's attention weight ``sum_t a_t a_tj`` when ``item`` is scored for ``user``.

        Parameters
        ----------
        user, item : int
            Internal ids.

        Returns
        -------
        items : numpy.ndarray
            The user's positive items.
        weights : numpy.ndarray
            Their weights.
        """
        items, a_t, a_tj = self.model.item_attention(user, item)
        return items, a_t @ a_tj

    def explain(self, user: int, item: int) -> Explanation:
        """Explain ``user``'s top recommendation ``item`` by removing attended items (no retraining).

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` must be the user's top recommendation (``top_pairs(model, users)``).

        Returns
        -------
        Explanation
            Keys: the user's positive items; values: their attention weights; a :class:`Counterfactual` with ``k``.

        Raises
        ------
        ValueError
            For an item in the history, a user without positive items, k above the user's unrated items, or an
            item that is not the user's top recommendation.
        """
        hist = self.check_pair(user, item)
        positives = self.model.positives(user)
        if len(positives) == 0:
            raise ValueError(f"User {user} has no positive training item: RCF's attention has nothing to attend to, "
                             "so there is nothing to remove.")
        unrated = self.n_items - len(hist)
        if self.k > unrated:
            raise ValueError(f"k={self.k} exceeds user {user}'s {unrated} unrated items: lower k.")
        topk = self.model.recommend(user, self.k)[0]
        if int(item) != int(topk[0]):
            raise ValueError(f"{self.name} explains a user's top recommendation (the replacement comes from the rest of "
                             f"the top-k); item {item} is not user {user}'s top item (that is {int(topk[0])}). Build the "
                             "pairs with top_pairs(model, users).")
        keys, values = self.weights(user, item)
        order = [int(keys[j]) for j in np.argsort(-values, kind="stable")]
        rescore = self.model.score_without_many  # score_without for many removal sets at once
        s = rescore(user, [[]], topk)[0]
        gap = float(s[0] - s[1:].max())
        removed: list[int] = []
        found, replacement, final_gap = False, None, None
        calls, start = 1, 0
        # The greedy search taken a chunk of candidates at a time: the same decisions, in the same order, as re-scoring
        # one candidate after the other (a candidate's fate depends only on the items removed before it), but one
        # batched re-scoring per chunk. ``calls`` counts the re-scorings the one-at-a-time search would make.
        size = 2
        while start < len(order) and not found:
            cand = order[start:start + size]
            if self.pure:  # every prefix: remove the candidates in order
                sets = [removed + cand[:c + 1] for c in range(len(cand))]
            else:  # each candidate added to what is kept so far
                sets = [removed + [c] for c in cand]
            trial = rescore(user, [np.asarray(r, dtype=np.int64) for r in sets], topk)
            gaps = trial[:, 0] - trial[:, 1:].max(1)
            if self.pure:
                flips = np.flatnonzero(gaps < 0)
                c = int(flips[0]) if len(flips) else len(cand) - 1
            else:
                narrows = np.flatnonzero(gaps < gap)  # removing it narrows the lead; attention skips the others
                if not len(narrows):
                    calls, start, size = calls + len(cand), start + len(cand), min(_CHUNK, 2 * size)
                    continue
                c = int(narrows[0])
            # the next chunk: about twice as far as this one reached (short after a quick acceptance)
            calls, start, size = calls + c + 1, start + c + 1, min(_CHUNK, max(2, 2 * (c + 1)))
            removed, gap = list(sets[c]), float(gaps[c])
            if gap < 0:
                rep = 1 + int(np.argmax(trial[c, 1:]))
                found, replacement, final_gap = True, int(topk[rep]), float(trial[c, 0] - trial[c, rep])
        cf = Counterfactual(items=np.asarray(removed if found else [], dtype=np.int64), replacement=replacement,
                            predicted_gap=final_gap, k=self.k, found=found)
        expl = self._make(user, item, keys, values, counterfactual=cf, model_calls=calls)
        return derive(expl, text=self.sentence(expl))

    def sentence(self, explanation: Explanation, n: int = 4) -> str:
        """"Without A and B among your inputs, C would be recommended instead of D." (Markdown, escaped).

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
            return (f"{self.name} found no set of your liked items whose removal from RCF's inputs lets another "
                    f"top-{self.k} item replace {explanation._md_title(explanation.item)}.")
        joined = explanation._md_titles(cf.items, n)
        return (f"Without {joined} among your liked items, you would have been recommended "
                f"{explanation._md_title(cf.replacement)} instead of {explanation._md_title(explanation.item)}.")


class PureAttentionExplainer(_AttentionCFExplainer):
    """pure attention: remove the user's items by decreasing RCF attention until the recommendation changes.

    Taught in 06_accent. Parameters: ``model`` (with ``ITEM_ATTENTION``: RCF), ``titles``, ``k`` (top-k size).
    """

    name: ClassVar[str] = "pure attention"
    pure: ClassVar[bool] = True


class AttentionExplainer(_AttentionCFExplainer):
    """attention: as pure attention, but an item is kept only if its removal narrows the recommendation's lead.

    Taught in 06_accent. Parameters as :class:`PureAttentionExplainer`.
    """

    name: ClassVar[str] = "attention"
    pure: ClassVar[bool] = False


def attention_explainers(model: Any, ks: Sequence[int] = (5, 10, 20), *,
                         titles: Sequence[str] | np.ndarray | None = None) -> dict[tuple[str, int], Explainer]:
    """pure attention and attention at every k, for one RCF model (06_accent, Table 1).

    Parameters
    ----------
    model : RCF
        A fitted model with ``ITEM_ATTENTION``.
    ks : sequence of int
        The top-k sizes.
    titles : sequence of str, optional
        Display titles by internal item id.

    Returns
    -------
    dict
        ``{(method name, k): explainer}``.
    """
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("Give at least one k.")
    return {(cls.name, k): cls(model, titles=titles, k=k) for cls in (PureAttentionExplainer, AttentionExplainer)
            for k in ks}
