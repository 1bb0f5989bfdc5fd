"""The claim checker: planted true claims pass, planted false ones fail, a film the model ignores is no cause."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from xrec_helpers.data.kg import ItemKG
from xrec_helpers.data.reviews import aspect_mentions, planted_truth, synthetic_reviews
from xrec_helpers.metrics.claims import (
    AspectStatement,
    Because,
    ClaimChecker,
    NeighboursLiked,
    SameEntity,
    Watched,
    aspect_statements,
    check_aspect_statements,
)
from xrec_helpers.metrics.statistics import grouped_share_ci
from xrec_helpers.models.base import HistoryRecommender
from xrec_helpers.models.popularity import PopularityRecommender


class PlantedLinear(HistoryRecommender):
    """score(x) = x @ W: an item is recommended *because of* exactly the history items W links to it."""

    def __init__(self, W: np.ndarray):
        self.W = np.asarray(W, dtype=np.float32)

    def fit(self, train):
        self._set_train(train)
        return self

    def score_histories(self, histories):
        return self.check_histories(histories) @ self.W


def planted_model(data, train_ratings):
    n = data.n_items
    W = np.zeros((n, n), dtype=np.float32)
    cluster = data.items["cluster"].to_numpy()
    effects = {e for _, e in data.planted_pairs}
    for i in range(n):
        for j in range(n):
            if cluster[i] == cluster[j] and i != j and j not in effects:
                W[i, j] = 0.01  # weak same-cluster pull, never towards an effect item
    for cause, effect in data.planted_pairs:
        W[cause, effect] = 1.0  # the effect is recommended because of the cause, and of nothing else
    X = data.csr(train_ratings)
    return PlantedLinear(W).fit(X), X


def _holder(data, X):
    cause, effect = data.planted_pairs[0]
    for u in range(X.shape[0]):
        row = set(X[u].indices.tolist())
        if cause in row and effect not in row and len(row) > 3:
            return u, cause, effect, row
    raise AssertionError("no user holds the cause without the effect")


def test_planted_true_claims_pass_and_false_claims_fail(planted):
    data, train_ratings, _ = planted
    model, X = planted_model(data, train_ratings)
    u, cause, effect, row = _holder(data, X)
    other = next(h for h in sorted(row) if h != cause)
    never = next(i for i in range(data.n_items) if i not in row and i != effect)
    checker = ClaimChecker(X, model, titles=data.titles())
    table = checker.check([Watched(u, cause), Watched(u, never), Because(u, effect, cause),
                           Because(u, effect, other), Because(u, effect, never)])
    assert table["verdict"].tolist() == [True, False, True, False, False]
    assert table["type"].tolist() == ["factual", "factual", "causal", "causal", "causal"]
    assert "rank" in table.loc[2, "evidence"]


def test_causal_claim_about_an_ignored_item_fails_the_removal_check(planted):
    data, train_ratings, _ = planted
    model, X = planted_model(data, train_ratings)
    u, cause, effect, row = _holder(data, X)
    # Every history film except the cause has zero weight towards the effect: the model ignores them.
    ignored = [h for h in sorted(row) if h != cause and model.W[h, effect] == 0]
    assert ignored
    checker = ClaimChecker(X, model)
    verdicts = checker.check([Because(u, effect, h) for h in ignored])["verdict"]
    assert not verdicts.any()
    # Without a model the causal claim cannot be checked: no verdict rather than a guess.
    assert ClaimChecker(X).check([Because(u, effect, cause)])["verdict"].iloc[0] is None
    # A model that cannot re-score an edited history is refused by capability, whatever its class.
    with pytest.raises(TypeError, match="score_histories"):
        ClaimChecker(X, PopularityRecommender().fit(X))


def test_parse_reads_course_sentences_with_titles(planted):
    data, train_ratings, _ = planted
    model, X = planted_model(data, train_ratings)
    u, cause, effect, row = _holder(data, X)
    titles = data.titles()
    checker = ClaimChecker(X, model, titles=titles)
    other = next(h for h in sorted(row) if h != cause)
    sentence = f"Because you watched *{titles[cause]}* and *{titles[other]}*, we recommend *{titles[effect]}*."
    claims = checker.parse(sentence, u, effect)
    assert claims == [Watched(u, cause), Because(u, effect, cause), Watched(u, other), Because(u, effect, other)]
    assert checker.check(claims)["verdict"].tolist() == [True, True, True, False]
    # Plain titles work too; a title nobody has is a clear error, not a silent skip.
    assert checker.parse(f"because you watched {titles[cause]}", u, effect) == [Watched(u, cause),
                                                                                 Because(u, effect, cause)]
    with pytest.raises(ValueError, match="No film is titled"):
        checker.parse("Because you watched *Not A Film*, we recommend it.", u, effect)
    with pytest.raises(ValueError, match="No checkable claim"):
        checker.parse("This is a great film.", u, effect)


def _tiny_kg():
    # items 0 and 1 share director node 0; item 2 only shares genre node 1 with item 0
    incidence = sp.csr_matrix(np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float32))
    edges = pd.DataFrame({"item": [0, 0, 1, 2], "node": [0, 1, 0, 1],
                          "relation": ["director", "genre", "director", "genre"]})
    return ItemKG(incidence=incidence, node_relation=np.array(["director", "genre"], dtype=object),
                  node_entity=np.array(["m.d", "m.g"], dtype=object), edges=edges)


def test_kg_and_neighbour_claims_and_title_parsing():
    titles = ["Usual Suspects, The (1995)", "Fargo (1996)", "Heat (1995)"]
    hist = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=np.float32))
    ratings = sp.csr_matrix(np.array([[5, 0, 4], [0, 5, 0], [4, 2, 5], [0, 4, 1]], dtype=np.float32))
    neighbours = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    checker = ClaimChecker(hist, titles=titles, kg=_tiny_kg(), ratings=ratings, neighbours=neighbours)
    s = "You watched *Usual Suspects, The (1995)*, which has the same director as *Fargo (1996)*."
    claims = checker.parse(s, 0, 1)
    # The sentence states a watch and a shared director, nothing about why Fargo is recommended: no causal claim.
    assert claims == [Watched(0, 0), SameEntity(0, 1, "director")]
    # Shown as the reason for the recommendation, it implies one, labelled as implied.
    implied = checker.parse(s, 0, 1, implied_reason=True)
    assert implied == [Watched(0, 0), SameEntity(0, 1, "director"), Because(0, 1, 0, implied=True)]
    assert checker.check(implied)["claim"].iloc[2].startswith("(implied)")
    # A stated "because" is not duplicated as an implied one.
    stated = checker.parse("Because you watched *Usual Suspects, The (1995)*, which has the same director as "
                           "*Fargo (1996)*, we recommend it.", 0, 1, implied_reason=True)
    assert [c for c in stated if isinstance(c, Because)] == [Because(0, 1, 0)]
    table = checker.check([SameEntity(0, 1, "director"), SameEntity(0, 2, "director"), SameEntity(0, 2, "genre")])
    assert table["verdict"].tolist() == [True, False, True]
    # The evidence names the shared entity as the graph has it (its Freebase id), how many films it links and
    # the titles of the other films, so a reader can judge an entity the graph cannot name.
    assert "director m.d (2 films; no other film)" in table["evidence"].iloc[0]
    assert "genre m.g (2 films; no other film)" in table["evidence"].iloc[1]
    # An entity that links more films lists the others by title.
    wide = ItemKG(incidence=sp.csr_matrix(np.ones((3, 1), dtype=np.float32)), node_relation=np.array(["director"], dtype=object),
                  node_entity=np.array(["m.d"], dtype=object),
                  edges=pd.DataFrame({"item": [0, 1, 2], "node": [0, 0, 0], "relation": ["director"] * 3}))
    evidence = ClaimChecker(hist, titles=titles, kg=wide).check([SameEntity(0, 1, "director")])["evidence"].iloc[0]
    assert "director m.d (3 films; also Heat (1995))" in evidence
    # user 0's neighbours 1, 2, 3 rated Fargo 5, 2, 4: two of three rated it 4 or higher
    assert checker.check_sentence("2 of your 3 nearest neighbours rated it 4 or higher.", 0, 1)["verdict"].tolist() == [True]
    assert checker.check([NeighboursLiked(0, 1, 3, 3)])["verdict"].tolist() == [False]
    assert checker.find_item("fargo") == 1  # the year may be left out
    with pytest.raises(ValueError, match="several films"):
        ClaimChecker(hist, titles=["Heat (1995)", "Heat (1972)", "X"]).find_item("Heat")
    # "You watched" reads every rating, not only the liked films the model reads: user 2 rated Fargo 2 stars.
    liked = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32))
    full = ClaimChecker(liked, titles=titles, ratings=ratings, neighbours=neighbours)
    watched = full.check([Watched(2, 1), Watched(0, 1)])
    assert watched["verdict"].tolist() == [True, False]
    assert watched["evidence"].tolist() == ["rated it 2 stars", "never rated it"]
    # Without ratings only the model's histories are known, and the evidence says so.
    assert ClaimChecker(liked).check([Watched(2, 1)])["evidence"].iloc[0] == "not in the history the model reads"
    # without a graph the KG claim has no verdict
    assert ClaimChecker(hist, titles=titles).check([SameEntity(0, 1, "director")])["verdict"].iloc[0] is None


def test_aspect_statements_against_planted_truth_and_an_intervention():
    corpus = synthetic_reviews(n_users=40, n_items=12, reviews_per_user=4, seed=1)
    quality, top = planted_truth(corpus)
    aspects = corpus.aspects
    u, i = 3, 5
    good = int(np.argmax(quality[i]))
    bad = int(np.argmin(quality[i]))
    text = f"the {aspects[good]} is great and {aspects[bad]} feels awful"
    assert aspect_mentions(text) == [(aspects[good], 1), (aspects[bad], -1)]
    lie = f"the {aspects[good]} is terrible"

    def predict(users, items, hide):  # a model whose rating reads the user's top aspect only
        hide = np.asarray(hide)
        base = quality[items, top[users]]
        return np.where(hide == top[users], 0.0, base)

    stmts = sum(aspect_statements([text, lie], [u, u], [i, i]), [])
    table = check_aspect_statements(stmts, quality, top, aspects, predict=predict)
    assert table["true_of_item"].tolist() == [True, True, False]
    assert table["relevant"].tolist() == [top[u] == good, top[u] == bad, top[u] == good]
    # the cited aspect drives the prediction exactly when it is the one the rating reads ...
    assert table["drives"].tolist() == table["relevant"].tolist()
    # ... and the claim is faithful only if it also points the way the aspect moves the rating: the lie says
    # "terrible" about an aspect whose (positive) quality raises the prediction, so it is never faithful.
    assert table["faithful"].tolist() == [top[u] == good and quality[i, good] > 0, top[u] == bad and quality[i, bad] < 0,
                                          False]
    assert (table.loc[~table["relevant"], "delta_cited"] == 0).all()
    # Faithfulness respects the claim's sign: if the user's aspect *lowers* the rating when present, "great" about
    # it is not faithful although it drives the prediction, and "poor" about it is.
    def predict_neg(users, items, hide):
        hide = np.asarray(hide)
        return np.where(hide == top[users], 1.0, 0.0)  # the aspect, when shown, lowers the rating by one star

    a_top = aspects[top[u]]
    signed = check_aspect_statements(sum(aspect_statements([f"the {a_top} is great", f"the {a_top} is poor",
                                                            a_top], [u] * 3, [i] * 3), []),
                                     quality, top, aspects, predict=predict_neg)
    assert signed["polarity"].tolist()[:2] == [1, -1] and pd.isna(signed["polarity"].iloc[2])
    assert signed["drives"].all() and (signed["effect_cited"] == -1.0).all()
    assert signed["faithful"].tolist() == [False, True, True]
    with pytest.raises(ValueError, match="not among"):
        check_aspect_statements([AspectStatement(0, 0, "colour", 1)], quality, top, aspects)


def test_grouped_interval_resamples_sentences_not_claims():
    # 40 sentences of 5 claims each, all true or all false: claims within a sentence are perfectly correlated,
    # so the interval over sentences must be wider than the naive one over 200 independent claims.
    values = np.repeat(np.arange(40) % 2, 5).astype(float)
    groups = np.repeat(np.arange(40), 5)
    share, low, high, n = grouped_share_ci(values, groups, n_resamples=4000, random_state=0)
    assert share == 0.5 and n == 40 and low < 0.5 < high
    _, low1, high1, n1 = grouped_share_ci(values, np.arange(200), n_resamples=4000, random_state=0)
    assert n1 == 200 and (high - low) > 1.8 * (high1 - low1)
    with pytest.raises(ValueError, match="two groups"):
        grouped_share_ci([1.0, 0.0], [0, 0])
    with pytest.raises(ValueError, match="One group per value"):
        grouped_share_ci([1.0, 0.0], [0, 1, 2])


def test_rank_falls_is_stricter_than_the_median_rule():
    # history {0, 1, 4}; item 2 is recommended (score 1.6), item 3 is next (0.7).
    W = np.zeros((5, 5), dtype=np.float32)
    W[0, 2], W[1, 2], W[4, 3] = 1.0, 0.6, 0.7
    hist = sp.csr_matrix(np.array([[1, 1, 0, 0, 1]], dtype=np.float32))
    model = PlantedLinear(W).fit(hist)
    table = ClaimChecker(hist, model).check([Because(0, 2, 0), Because(0, 2, 1), Because(0, 2, 4), Watched(0, 0)])
    # Removing film 1 drops the score by 0.6, above the median of the others' drops (1.0, 0.0): it holds under the
    # median rule, yet item 2 stays first (1.0 > 0.7): the stricter rule says the recommendation would not change.
    assert table["verdict"].tolist() == [True, True, False, True]
    assert table["rank falls"].tolist() == [True, False, False, None]
    assert "rank 1 → 2" in table["evidence"].iloc[0]
    # Ranks are among films the user has not rated: if item 3 was rated (1 star), nothing can overtake item 2.
    ratings = sp.csr_matrix(np.array([[5, 4, 0, 1, 5]], dtype=np.float32))
    rated = ClaimChecker(hist, model, ratings=ratings, neighbours=np.zeros((1, 0), dtype=np.int64))
    assert rated.check([Because(0, 2, 0)])["rank falls"].tolist() == [False]
