"""Rule mining and the rule explainer: agreement with a direct count, ordering, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.explainers.rules import (
    RuleExplainer,
    baskets_from_histories,
    baskets_from_top_n,
    mine_rules,
    rule_fidelity,
)
from xrec_helpers.metrics.explanation import model_fidelity
from xrec_helpers.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def data():
    d = synthetic(n_users=200, n_items=40, items_per_user=6, seed=1)
    X = d.csr()
    return d, X, mine_rules(baskets_from_histories(X), min_support=0.05)


def test_support_confidence_lift_match_direct_counts(data):
    _, X, rules = data
    B = (X > 0).toarray().astype(float)
    n = len(B)
    for row in rules.head(20).itertuples():
        a, c = B[:, row.antecedent], B[:, row.consequent]
        assert row.support == pytest.approx((a * c).sum() / n)
        assert row.confidence == pytest.approx((a * c).sum() / a.sum())
        assert row.lift == pytest.approx(row.confidence / (c.sum() / n))
    # every frequent pair gives both directions
    co = B.T @ B
    np.fill_diagonal(co, 0)
    assert len(rules) == int((co >= 0.05 * n).sum())


def test_planted_pairs_are_found(data):
    d, _, rules = data
    found = set(zip(rules["antecedent"], rules["consequent"]))
    assert all(pair in found for pair in d.planted_pairs)


def test_explainer_orders_by_confidence_and_uses_history(data):
    d, X, rules = data
    ex = RuleExplainer(X, rules=rules, titles=d.titles())
    B = X.toarray() > 0
    user, effect = next((u, int(r.consequent)) for r in rules.itertuples() for u in range(len(B))
                        if B[u, r.antecedent] and not B[u, r.consequent])
    e = ex.explain(int(user), effect)
    expected = rules[(rules["consequent"] == effect) & rules["antecedent"].isin(np.flatnonzero(B[user]))]
    assert set(e.items) == set(expected["antecedent"])
    assert e.scores[0] == pytest.approx(expected["confidence"].max())
    holders = [user]
    assert set(e.items) <= set(ex.history(int(holders[0])))
    assert np.all(np.diff(e.scores) <= 0)
    assert "co-occurrence" in e.text
    # the lifts travel in the display table, aligned with the explanation's order
    lifts = expected.set_index("antecedent")["lift"]
    assert list(e.table["antecedent"]) == list(e.items)
    assert np.allclose(e.table["lift"], lifts.loc[e.items].to_numpy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.text = "changed"  # frozen: an explanation is never edited after it is built


def test_vectorised_fidelity_matches_explain_many(data):
    d, X, rules = data
    ex = RuleExplainer(X, rules=rules, titles=d.titles())
    pop = PopularityRecommender().fit(X)
    users = np.arange(30)
    recs = pop.recommend(users, 5)
    pairs = [(u, i) for u, row in zip(users, recs) for i in row]
    assert rule_fidelity(ex, users, recs) == pytest.approx(model_fidelity(ex.explain_many(pairs)))


def test_top_n_baskets_have_n_items_each(data):
    _, X, _ = data
    B = baskets_from_top_n(PopularityRecommender().fit(X), n=7)
    assert B.shape[0] == X.shape[0] and set(np.diff(B.indptr)) == {7}


def test_clear_errors(data):
    d, X, rules = data
    with pytest.raises(ValueError, match="yields no rules.*Lower min_support"):
        mine_rules(baskets_from_histories(X), min_support=0.9)
    with pytest.raises(ValueError, match="min_support must be"):
        mine_rules(baskets_from_histories(X), min_support=0)
    ex = RuleExplainer(X, rules=rules, titles=d.titles())
    seen = int(ex.history(0)[0])
    with pytest.raises(ValueError, match="already in user 0's history"):
        ex.explain(0, seen)
    empty = sp.lil_matrix(X.shape)
    empty[1:] = X[1:]
    ex2 = RuleExplainer(sp.csr_matrix(empty), rules=rules)
    with pytest.raises(ValueError, match="empty history"):
        ex2.explain(0, 1)
    with pytest.raises(ValueError, match="lacks columns"):
        RuleExplainer(X, rules=rules.drop(columns="lift"))
