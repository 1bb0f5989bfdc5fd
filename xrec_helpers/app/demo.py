"""Everything the demo needs, built once per size and cached: data, models, states and their defaults.

Taught in apps/why_this_recommendation. One call, :func:`load_demo`, returns the two tabs' states with their
start-up choices made; the first call with a size trains (and caches) the models, later calls read them back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xrec_helpers.app.cache import cached, fingerprint
from xrec_helpers.app.compare import ComparisonState, DefaultChoice, choose_default
from xrec_helpers.app.reviews import ReviewViewState
from xrec_helpers.data import load_movielens
from xrec_helpers.data.reviews import synthetic_reviews
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.review_attention import ReviewAttentionRecommender

#: Settings per size. HistoryMF is trained for 60 epochs at workshop size: after 30 (the old setting) its top
#: picks leaned on item popularity and far fewer of them moved when the blamed movies were removed
#: (tests/test_explorer.py measures both over 100 random users).
SETTINGS = {
    "smoke": {"n_users": 300, "hmf": {"factors": 64, "epochs": 30},
              "corpus": {"n_users": 100, "n_items": 40, "reviews_per_user": 8}, "review_epochs": 2},
    "workshop": {"n_users": None, "hmf": {"factors": 64, "epochs": 60},
                 "corpus": {"n_users": 400, "n_items": 150, "reviews_per_user": 12}, "review_epochs": 10},
}
SETTINGS["paper"] = SETTINGS["workshop"]
#: The review models of 09_attention_reviews (a one-number bottleneck per review; items known by their reviews).
REVIEW_MODEL = dict(embed_dim=8, filters=16, attention_dim=8, factors=4, max_item_reviews=24, max_user_reviews=8,
                    lr=0.01, dropout=0.0, value_dim=1, item_ids=False)


@dataclass
class Demo:
    """The two tabs' states, their start-up choices and how long each step took (seconds).

    Parameters
    ----------
    compare : ComparisonState
        State of the "Which explanation is true?" tab.
    choice : DefaultChoice
        Its start-up choice.
    reviews : ReviewViewState
        State of the "Top reviews for you" tab.
    review_choice : dict[str, float]
        Its start-up numbers.
    timings : dict[str, float]
        Seconds each start-up step took.
    from_cache : dict[str, bool]
        Whether each model was read from the cache.
    """

    compare: ComparisonState
    choice: DefaultChoice
    reviews: ReviewViewState
    review_choice: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    from_cache: dict[str, bool] = field(default_factory=dict)


def load_demo(size: str = "workshop", seed: int = 0, log: Callable[[str], None] = print) -> Demo:
    """Load (or train once and cache) the demo's models for ``size`` and make the start-up choices.

    Taught in apps/why_this_recommendation.

    Parameters
    ----------
    size : str
        ``"smoke"``, ``"workshop"`` or ``"paper"``.
    seed : int
        Seed of training and of the start-up choices.
    log : Callable[[str], None]
        Where progress lines go.

    Returns
    -------
    Demo
        The demo.
    """
    if size not in SETTINGS:
        raise ValueError(f"size={size!r} must be one of {sorted(SETTINGS)} (XREC_SIZE).")
    s = SETTINGS[size]
    timings, from_cache = {}, {}
    t = time.perf_counter()
    full = load_movielens("ml-100k")
    data = full.subset_users(s["n_users"], seed=seed) if s["n_users"] else full
    timings["data"] = time.perf_counter() - t

    t = time.perf_counter()
    hmf_settings = {"model": "HistoryMF", **s["hmf"], "random_state": seed, "ratings": fingerprint(data.ratings, ["user", "item"])}
    model, from_cache["history-mf"] = cached(
        "history-mf", hmf_settings,
        lambda: HistoryMF(**s["hmf"], random_state=seed).fit(data.csr(data.ratings)), log=log,
        label="the recommender")
    timings["recommender"] = time.perf_counter() - t

    t = time.perf_counter()
    compare = ComparisonState(data, model, k=10)
    choice = choose_default(compare, seed=seed)
    timings["choose default"] = time.perf_counter() - t

    t = time.perf_counter()
    corpus = synthetic_reviews(**s["corpus"], seed=seed)
    train, valid = corpus.split(test_frac=0.1, seed=seed + 1)

    def fit_reviews():
        return {kind: ReviewAttentionRecommender(kind, epochs=s["review_epochs"], random_state=seed, **REVIEW_MODEL)
                .fit(train, valid) for kind in ("personalised", "narre")}

    review_settings = {"corpus": s["corpus"], "epochs": s["review_epochs"], "model": REVIEW_MODEL, "seed": seed,
                       "reviews": fingerprint(train.reviews, ["review_id", "user", "item", "rating"])}
    models, from_cache["review-attention"] = cached("review-attention", review_settings, fit_reviews, log=log,
                                                  label="the two review-attention models")
    reviews = ReviewViewState(train, models["personalised"], models["narre"], seed=seed)
    review_choice = reviews.choose_default()
    timings["reviews"] = time.perf_counter() - t
    return Demo(compare=compare, choice=choice, reviews=reviews, review_choice=review_choice, timings=timings,
                from_cache=from_cache)
