"""Knowledge graph (10): item–entity graph, KG path explainer, path metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xrec_helpers.data.kg import FORWARD, INVERSE, build_item_kg, connective, readable
from xrec_helpers.explainers.baselines import JaccardExplainer
from xrec_helpers.explainers.kg_paths import KGPathExplainer
from xrec_helpers.metrics.kg_paths import (
    PathQuality,
    PathRemoval,
    coverage,
    entity_popularity,
    interaction_recency,
    path_metrics,
    path_type_diversity,
)
from xrec_helpers.metrics.ranking import rank_among_unseen
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def kg(ml100k):
    return build_item_kg(ml100k)


@pytest.fixture(scope="module")
def small(ml100k):
    data = ml100k.subset_users(80, seed=1)
    X = data.csr()
    model = HistoryMF(factors=16, epochs=2, random_state=0).fit(X)
    return data, X, build_item_kg(data), model


def test_graph_shape_and_deduplication(ml100k, kg):
    assert kg.n_items == ml100k.n_items
    assert len(kg.linked_items()) == 1598
    # No inverse-direction name survives; each relation is stored once.
    assert set(kg.relations) <= set(FORWARD.values()) | {"series"}
    triples = ml100k.kg
    linked = set(ml100k.item_entity)
    for freebase, short in [("film.film.directed_by", "director"), ("film.film.genre", "genre")]:
        rows = triples[(triples["relation"] == freebase) & triples["head"].isin(linked)]
        expected = len(rows.drop_duplicates(["head", "tail"]))
        assert (kg.edges["relation"] == short).sum() == expected, short
    # Degrees agree with the incidence matrix and with a count over edges.
    deg = kg.node_degree()
    assert deg.sum() == len(kg.edges) == kg.incidence.nnz
    assert np.array_equal(np.bincount(kg.edges["node"], minlength=kg.n_nodes), deg)
    table = kg.relation_table()
    assert table.loc["actor", "edges"] == (kg.edges["relation"] == "actor").sum()
    assert table["edges"].iloc[0] == table["edges"].max()


def test_shared_entities_brute_force(kg):
    rng = np.random.default_rng(0)
    items = rng.choice(kg.linked_items(), size=(20, 2))
    by_item = kg.edges.groupby("item")["node"].apply(set)
    for a, b in items:
        shared = kg.shared_entities(int(a), int(b))
        assert set(shared["node"]) == by_item[a] & by_item[b]
        assert set(kg.shared_entities(int(b), int(a))["node"]) == set(shared["node"])
        assert list(shared["degree"]) == sorted(shared["degree"])
    with pytest.raises(IndexError, match="Unknown item id"):
        kg.shared_entities(0, kg.n_items)


def test_sequels_share_a_series_node(ml100k, kg):
    triples = ml100k.kg
    film_of = pd.Series(ml100k.item_entity.index, index=ml100k.item_entity.to_numpy())
    seq = triples[(triples["relation"] == "film.film.sequel") & triples["head"].isin(film_of.index)
                  & triples["tail"].isin(film_of.index)]
    assert len(seq) > 0
    for head, tail in seq[["head", "tail"]].head(10).itertuples(index=False):
        shared = kg.shared_entities(int(film_of[head]), int(film_of[tail]))
        assert "series" in set(shared["relation"])


def test_readable_words():
    assert readable("film.film.directed_by") == "the same director"
    assert readable("film.director.film") == "the same director"
    assert readable("actor") == "a shared actor"
    assert connective("film.film.sequel") == "is in the same film series as"
    assert set(INVERSE.values()) <= set(FORWARD.values())
    with pytest.raises(KeyError, match="Unknown relation"):
        readable("film.film.budget")


def test_no_kg_is_a_clear_error(planted):
    data, _, _ = planted
    with pytest.raises(ValueError, match="no knowledge graph"):
        build_item_kg(data)


def test_paths_agree_with_brute_force(small):
    data, X, kg, model = small
    explainer = KGPathExplainer(model, kg=kg, titles=data.titles(), max_paths=100_000)  # keep every path
    rarity = np.log(len(kg.linked_items()) / np.maximum(kg.node_degree(), 1))
    checked = 0
    for user in range(10):
        item = int(model.recommend([user], 1)[0, 0])
        expl = explainer.explain(user, item)
        paths = expl.paths
        hist = X[user].indices
        expected = sum(len(kg.shared_entities(int(h), item)) for h in hist)
        assert len(paths) == expected and len(explainer.paths(user, item)) == expected
        if expected == 0:
            continue
        checked += 1
        # Weights are the drop in the model's score of the item when one history item is removed.
        full = model.score_histories(X[user])[0, item]
        for h in paths["history_item"].unique()[:3]:
            x = X[user].toarray()
            x[0, h] = 0
            drop = full - model.score_histories(x)[0, item]
            np.testing.assert_allclose(paths.loc[paths["history_item"] == h, "weight"], drop, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(paths["score"], rarity[paths["node"].to_numpy()] * paths["weight"], rtol=1e-9)
        assert list(paths["score"]) == sorted(paths["score"], reverse=True)
        # items = history items with a path, ranked by their best path.
        best = paths.groupby("history_item")["score"].max()
        assert set(expl.items) == set(best.index) and set(expl.items) <= set(hist)
        np.testing.assert_allclose(expl.scores, best[expl.items].to_numpy())
        assert data.titles(item) in expl.text and data.titles(int(expl.items[0])) in expl.text
        assert expl.text == paths["text"].iloc[0]
    assert checked >= 5


def test_kg_weighting_and_relation_filter(small):
    data, X, kg, model = small
    explainer = KGPathExplainer(model, kg=kg, titles=data.titles(), weighting="kg",
                                relations=["director", "writer"])
    assert explainer.name == "KG paths (KG only)"
    found = 0
    for user in range(40):
        unseen = np.setdiff1d(kg.linked_items(), X[user].indices)[:30]
        for item in unseen:
            paths = explainer.paths(user, int(item))
            assert set(paths["relation"]) <= {"director", "writer"}
            assert (paths["weight"] == 1).all()
            found += len(paths)
    assert found > 0


def test_no_path_and_errors(small):
    data, X, kg, model = small
    explainer = KGPathExplainer(model, kg=kg, titles=data.titles())
    unlinked = np.flatnonzero(kg.item_degree() == 0)
    user = next(u for u in range(X.shape[0]) if unlinked[0] not in set(X[u].indices))
    expl = explainer.explain(user, int(unlinked[0]))
    assert len(expl.items) == 0 and "No knowledge-graph path" in expl.text
    seen = int(X[0].indices[0])
    with pytest.raises(ValueError, match="already in user 0's history"):
        explainer.explain(0, seen)
    with pytest.raises(IndexError, match="Unknown user id"):
        explainer.explain(X.shape[0], 0)
    with pytest.raises(TypeError, match="score_histories"):
        KGPathExplainer(PopularityRecommender().fit(X), kg=kg)
    with pytest.raises(ValueError, match="weighting"):
        KGPathExplainer(model, kg=kg, weighting="both")
    with pytest.raises(ValueError, match="Unknown relation"):
        KGPathExplainer(model, kg=kg, relations=["budget"])
    other = build_item_kg(data.subset_users(20, seed=3))
    with pytest.raises(ValueError, match="build it from the same Dataset"):
        KGPathExplainer(model, kg=other)


def test_recency_and_popularity_definitions(kg):
    ratings = pd.DataFrame({"user": [0, 0, 0, 1, 1], "item": [5, 3, 4, 1, 2],
                            "timestamp": [30, 10, 20, 7, 7]})
    lir1 = interaction_recency(ratings, beta=1.0)
    assert lir1[(0, 3)] == 0 and lir1[(0, 4)] == 0.5 and lir1[(0, 5)] == 1 and lir1[(1, 1)] == 1
    lir = interaction_recency(ratings, beta=0.5)
    assert lir[(0, 3)] == 0 and lir[(0, 4)] == pytest.approx(0.25) and lir[(0, 5)] == pytest.approx(0.625)
    with pytest.raises(ValueError, match="beta"):
        interaction_recency(ratings, beta=0)
    sep1 = entity_popularity(kg, beta=1.0)
    deg = kg.node_degree()
    genre = np.flatnonzero(kg.node_relation == "genre")
    assert sep1[genre[np.argmax(deg[genre])]] == 1.0 and sep1[genre[np.argmin(deg[genre])]] == 0.0
    sep = entity_popularity(kg)
    order = genre[np.argsort(deg[genre], kind="stable")]
    assert np.all(np.diff(sep[order]) >= -1e-12) and sep.min() >= 0 and sep.max() <= 1


def test_path_metrics_and_diversity(small):
    data, X, kg, model = small
    explainer = KGPathExplainer(model, kg=kg, titles=data.titles())
    pairs = [(u, int(i)) for u in range(8) for i in model.recommend([u], 3)[0]]
    expls = explainer.explain_many(pairs)
    table = path_metrics(expls, kg, data.ratings)
    assert len(table) == sum(len(e.items) > 0 for e in expls)
    assert coverage(expls) == pytest.approx(len(table) / len(expls))
    assert table["LIR"].between(0, 1).all() and table["SEP"].between(0, 1).all()
    lir = interaction_recency(data.ratings)
    first = next(e for e in expls if len(e.items))
    assert table.iloc[0]["LIR"] == pytest.approx(lir[(first.user, int(first.paths.iloc[0]["history_item"]))])
    frame = pd.DataFrame({"user": [0, 0, 0, 1, 1], "relation": ["actor", "actor", "genre", "genre", "genre"]})
    ptd = path_type_diversity(frame, n_types=14)
    assert ptd[0] == pytest.approx(2 / 3) and ptd[1] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="KGPathExplainer"):
        path_metrics(JaccardExplainer(X).explain_many(pairs[:2]), kg, data.ratings)
    # the same numbers through the protocol interface: one row per explanation, NaN without a path
    result = PathQuality(kg=kg, ratings=data.ratings).evaluate(model, expls)
    rows = result.per_explanation
    assert len(rows) == len(expls) and rows["has path"].mean() == pytest.approx(coverage(expls))
    with_path = rows[rows["has path"] == 1]
    np.testing.assert_allclose(with_path["LIR"], table["LIR"])
    np.testing.assert_allclose(with_path["SEP"], table["SEP"])
    assert rows.loc[rows["has path"] == 0, "LIR"].isna().all()
    assert {m.name for m in result.metrics} == {"has path", "LIR", "SEP"}
    assert set(result.summary().columns) == {"has path", "LIR", "SEP"}


def test_path_removal_protocol_rescores_without_the_blamed_items(small):
    data, X, kg, model = small
    explainer = KGPathExplainer(model, kg=kg, titles=data.titles())
    users = np.arange(12)
    pairs = [(int(u), int(model.recommend([u], 1)[0, 0])) for u in users]
    expls = explainer.explain_many(pairs)
    result = PathRemoval(n=3).evaluate(model, expls)
    rows = result.per_explanation
    assert list(rows["user"]) == [e.user for e in expls] and result.details == {"n": 3}
    for e, (_, row) in zip(expls, rows.iterrows()):
        x = X[e.user].toarray()
        before = model.score_histories(x)[0]
        x[0, e.keys[:3]] = 0
        after = model.score_histories(x)[0]
        assert row["score drop (top-n removed)"] == pytest.approx(before[e.item] - after[e.item], abs=1e-5)
        assert row["rank (top-n removed)"] == rank_among_unseen(after, e.item, X[e.user].indices)
    # a history explanation without paths goes through the same protocol (comparison with a baseline)
    assert len(PathRemoval().evaluate(model, JaccardExplainer(X).explain_many(pairs)).per_explanation) == len(pairs)
    with pytest.raises(TypeError, match="score_histories"):
        PathRemoval().evaluate(PopularityRecommender().fit(X), expls)
    with pytest.raises(ValueError, match="n="):
        PathRemoval(n=0)
