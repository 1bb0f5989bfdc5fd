""""Top reviews most relevant to you": a review-attention model's weights as an explanation.

Taught in 09_attention_reviews. The explanation lists the recommended item's reviews ordered by the
item-side attention the model computed *for this user* (personalised attention) or for nobody in
particular (NARRE attention, which does not depend on the target user).

How it maps onto the course's Explanation contract (which ranks the user's *history items*):

- ``items`` / ``scores``: the user's own reviewed items, ordered by the user-side attention the
  model gave to the user's review of each item when scoring the target item. These are history
  items, so the contract's meaning is kept. Attention weights are non-negative and sum to 1: they
  say where the model looked, not which way a review pushed the rating (not signed).
- ``extra["review_ids"]``: the item's reviews, most attended first; ``extra["review_weights"]`` the
  weights; ``extra["reviews"]`` a table (stars, aspects when planted, text, attention) for display.
- ``text``: "Top 3 reviews of <title> most relevant to you: ...".

Attention is not explanation by itself: the notebook checks it against planted ground truth and by
removing the attended reviews and re-predicting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xrec_helpers.data.reviews import ReviewCorpus
from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.review_attention import ReviewAttentionRecommender


class ReviewAttentionExplainer(Explainer):
    """Explains a :class:`ReviewAttentionRecommender` prediction with the item's most attended reviews.

    Taught in 09_attention_reviews.

    Args:
        model: a fitted review-attention model.
        corpus: the corpus it was trained on (defines histories, titles and the review texts).
        top: how many reviews the one-line text names.
    """

    def __init__(self, model: ReviewAttentionRecommender, corpus: ReviewCorpus, top: int = 3):
        if not hasattr(model, "net_"):
            raise ValueError("The model is not fitted: call model.fit(corpus) before explaining it.")
        if model.n_users != corpus.n_users or model.n_items != corpus.n_items:
            raise ValueError(f"Model ({model.n_users} users, {model.n_items} items) and corpus ({corpus.n_users}, "
                             f"{corpus.n_items}) differ: pass the corpus the model was trained on.")
        super().__init__(corpus.csr(), corpus.titles())
        self.model, self.corpus, self.top = model, corpus, top
        self.name = f"Review attention ({model.attention})"
        self._by_id = corpus.reviews.set_index("review_id")

    def review_table(self, review_ids: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
        """Reviews as a readable table: rank, stars, aspects (if planted), attention, text."""
        rows = self._by_id.loc[np.asarray(review_ids, dtype=int)]
        table = pd.DataFrame({"stars": rows["rating"].to_numpy(), "attention": np.asarray(weights, dtype=float),
                              "text": rows["text"].to_numpy(), "review_id": np.asarray(review_ids, dtype=int)})
        if self.corpus.aspects:
            table.insert(1, "aspects", [", ".join(a) for a in rows["aspects"]])
        table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
        return table

    def explain(self, user: int, item: int) -> Explanation:
        self.check_pair(user, item)
        w = self.model.attention_weights([int(user)], [int(item)])
        ids, weights = w["item_reviews"][0], w["item_weights"][0]
        keep = ids >= 0
        if not keep.any():
            raise ValueError(f"{self.titles[item]} has no training review the model can read: there is nothing "
                             "to explain it with.")
        order = np.argsort(-weights[keep], kind="stable")
        review_ids, review_weights = ids[keep][order], weights[keep][order]
        own = w["user_reviews"][0] >= 0
        own_items = self.model.review_item_[w["user_reviews"][0][own]]
        table = self.review_table(review_ids, review_weights)
        # Stars as ★ and the review text escaped: the sentence is Markdown, where "*****" would be emphasis.
        named = "; ".join(f"{'★' * int(s)} \"{markdown_escape(t)}\""
                          for s, t in zip(table["stars"][:self.top], table["text"][:self.top]))
        text = (f"Top {min(self.top, len(table))} reviews of *{markdown_escape(self.titles[item])}* most relevant "
                f"to you: {named}")
        return self._make(user, item, own_items, w["user_weights"][0][own], text=text,
                          extra={"review_ids": review_ids, "review_weights": review_weights, "reviews": table})


ORDERINGS = ("attention", "random", "most_liked")


def review_orderings(model: ReviewAttentionRecommender, corpus: ReviewCorpus, users: np.ndarray, items: np.ndarray,
                     how: str = "attention", seed: int = 0) -> list[np.ndarray]:
    """For each (user, item) pair, the item's readable reviews in the order ``how`` ranks them.

    ``"attention"``: the model's item-side attention for that user; ``"random"``: a seeded shuffle;
    ``"most_liked"``: highest stars first (ties in a seeded random order). Taught in 09_attention_reviews.
    """
    if how not in ORDERINGS:
        raise ValueError(f"how={how!r} must be one of {ORDERINGS}.")
    w = model.attention_weights(users, items)
    stars = corpus.reviews.set_index("review_id")["rating"]
    rng = np.random.default_rng(seed)
    out = []
    for ids, weights in zip(w["item_reviews"], w["item_weights"]):
        keep = ids >= 0
        ids, weights = ids[keep], weights[keep]
        noise = rng.random(len(ids))
        if how == "attention":
            key = -weights
        elif how == "random":
            key = noise
        else:
            key = -stars.loc[ids].to_numpy() + 0.1 * noise
        out.append(ids[np.argsort(key, kind="stable")])
    return out


def precision_at_k(orderings: list[np.ndarray], corpus: ReviewCorpus, users: np.ndarray, k: int = 3) -> np.ndarray:
    """Per pair: the share of the first ``k`` reviews that discuss the user's planted top aspect.

    Pairs whose item has fewer than ``k`` readable reviews get NaN. Taught in 09_attention_reviews.
    """
    if k < 1:
        raise ValueError(f"k={k} must be at least 1.")
    if len(orderings) != len(users):
        raise ValueError(f"{len(orderings)} orderings for {len(users)} users: give one per pair.")
    return np.array([corpus.relevant(int(u), ids[:k]).mean() if len(ids) >= k else np.nan
                     for ids, u in zip(orderings, users)])


def removal_effect(model: ReviewAttentionRecommender, corpus: ReviewCorpus, users: np.ndarray, items: np.ndarray,
                   k: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Is attention explanation? |change in predicted stars| when the ``k`` most attended reviews of each
    item are hidden, next to hiding ``k`` random ones (the same number, from the same item).

    Taught in 09_attention_reviews.
    """
    users, items = np.asarray(users), np.asarray(items)
    base = model.predict(users, items)
    top = [ids[:k] for ids in review_orderings(model, corpus, users, items, "attention")]
    rand = [ids[:k] for ids in review_orderings(model, corpus, users, items, "random", seed=seed)]
    return {"top": np.abs(model.predict(users, items, hide=top) - base),
            "random": np.abs(model.predict(users, items, hide=rand) - base)}
