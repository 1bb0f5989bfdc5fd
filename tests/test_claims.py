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
from xrec_helpers.models.base import HistoryRecommender


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
    assert SameEntity(0, 1, "director") in claims and Watched(0, 0) in claims and Because(0, 1, 0) in claims
    table = checker.check([SameEntity(0, 1, "director"), SameEntity(0, 2, "director"), SameEntity(0, 2, "genre")])
    assert table["verdict"].tolist() == [True, False, True]
    # user 0's neighbours 1, 2, 3 rated Fargo 5, 2, 4: two of three rated it 4 or higher
    assert checker.check_sentence("2 of your 3 nearest neighbours rated it 4 or higher.", 0, 1)["verdict"].tolist() == [True]
    assert checker.check([NeighboursLiked(0, 1, 3, 3)])["verdict"].tolist() == [False]
    assert checker.find_item("fargo") == 1  # the year may be left out
    with pytest.raises(ValueError, match="several films"):
        ClaimChecker(hist, titles=["Heat (1995)", "Heat (1972)", "X"]).find_item("Heat")
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
    # faithful exactly when the cited aspect is the one the rating reads
    assert table["faithful"].tolist() == table["relevant"].tolist()
    assert (table.loc[~table["relevant"], "delta_cited"] == 0).all()
    with pytest.raises(ValueError, match="not among"):
        check_aspect_statements([AspectStatement(0, 0, "colour", 1)], quality, top, aspects)
