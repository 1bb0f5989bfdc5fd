"""Metrics: hand-checked ranking values, and counterfactual metrics that can tell good from bad."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from xrec_helpers.data.dataset import to_csr
from xrec_helpers.explainers.base import Explanation
from xrec_helpers.explainers.baselines import JaccardExplainer, RandomExplainer
from xrec_helpers.metrics.counterfactual import compare, perturbation_curves
from xrec_helpers.metrics.explanation import mep, mer, model_fidelity, surrogate_r2
from xrec_helpers.metrics.ranking import coverage, hit_rate, mrr, ndcg, ranking_report, recall
from xrec_helpers.models.history_mf import HistoryMF


def test_ranking_metrics_by_hand():
    recs = np.array([[1, 2, 3], [4, 5, 6]])
    test = sp.csr_matrix(np.array([[0, 0, 1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]]))
    assert hit_rate(recs, test, 3) == 0.5  # user 0 has a hit, user 1 none
    assert recall(recs, test, 3) == pytest.approx(0.25)  # user 0 finds 1 of 2, user 1 0 of 1
    assert mrr(recs, test, 3) == pytest.approx(0.25)  # first hit at rank 2 for user 0
    idcg0 = 1 + 1 / np.log2(3)
    assert ndcg(recs, test, 3) == pytest.approx(((1 / np.log2(3)) / idcg0) / 2)
    assert coverage(recs, 8) == 6 / 8
    report = ranking_report(recs, test, 8, ks=(1, 3))
    assert report["HR@1"] == 0 and report["HR@3"] == 0.5


def test_perfect_ranking_has_ndcg_one():
    recs = np.array([[2, 0, 1]])
    test = sp.csr_matrix(np.array([[1, 0, 1]]))
    assert ndcg(recs, test, 2) == pytest.approx(1.0)
    assert hit_rate(recs, test, 1) == 1.0 and recall(recs, test, 1) == 0.5


def test_explanation_metrics():
    E = np.array([[1, 0, 1, 0], [0, 0, 0, 1]])
    recs = np.array([[0, 1], [2, 3]])
    assert mep(E, recs) == pytest.approx((0.5 + 0.5) / 2)
    assert mer(E, recs) == pytest.approx((1 / 2 + 1 / 1) / 2)
    e_full = Explanation(0, 5, "m", [1, 2], [0.3, 0.1])
    e_empty = Explanation(1, 5, "m", [], [])
    assert model_fidelity([e_full, e_empty]) == 0.5
    y = np.array([1.0, 2.0, 3.0])
    assert surrogate_r2(y, y) == 1.0 and surrogate_r2(y, np.full(3, 2.0)) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def planted_model(planted):
    data, train, held = planted
    X = to_csr(train, data.n_users, data.n_items)
    model = HistoryMF(factors=32, epochs=40, batch_size=32, random_state=0).fit(X)
    return data, X, held, model


def _planted_explanations(data, X, held, oracle: bool):
    out = []
    cause_of = {e: c for c, e in data.planted_pairs}
    for user, effect in zip(held["user"], held["item"]):
        hist = X.indices[X.indptr[user]:X.indptr[user + 1]]
        rng = np.random.default_rng(user)
        order = rng.permutation(hist)
        if oracle:
            order = np.concatenate([[cause_of[effect]], order[order != cause_of[effect]]])
        out.append(Explanation(int(user), int(effect), "Oracle" if oracle else "Random", order,
                               np.linspace(1, 0, len(order))))
    return out


def test_oracle_beats_random_on_planted_causes(planted_model):
    data, X, held, model = planted_model
    # The model must have learnt the planted rule, or the comparison would be meaningless.
    recs = model.recommend(held["user"].to_numpy(), 10)
    assert np.mean([e in r for e, r in zip(held["item"], recs)]) > 0.8
    oracle = perturbation_curves(model, _planted_explanations(data, X, held, True), ks=(10,))
    random = perturbation_curves(model, _planted_explanations(data, X, held, False), ks=(10,))
    # The cause is one item among ~11, so removing it lowers the effect's score clearly
    # (DEL, INS, fixed K_e = 1) even where the rest of the cluster keeps it in the top-10.
    assert oracle.auc["DEL"] < random.auc["DEL"] - 0.03
    assert oracle.auc["INS"] > random.auc["INS"] + 0.03
    assert oracle.auc["POS@10"] <= random.auc["POS@10"]
    assert oracle.fixed.loc[1, "DEL"] < random.fixed.loc[1, "DEL"] - 0.05
    table = compare({"Oracle": oracle, "Random": random})
    assert list(table.index) == ["Oracle", "Random"] and "POS@10 ↓" in table.columns


@given(st.integers(0, 10_000))
@settings(max_examples=15, deadline=None)
def test_curve_properties_for_any_explanation_order(planted_model, seed):
    data, X, held, model = planted_model
    users = np.arange(0, 400, 40)
    items = model.recommend(users, 1)[:, 0]
    rng = np.random.default_rng(seed)
    explanations = []
    for u, i in zip(users, items):
        hist = X.indices[X.indptr[u]:X.indptr[u + 1]]
        explanations.append(Explanation(int(u), int(i), "any", rng.permutation(hist), np.zeros(len(hist))))
    result = perturbation_curves(model, explanations, ks=(1, 5))
    aucs = result.auc.drop(["DEL", "INS"])
    assert ((aucs >= 0) & (aucs <= 1)).all()
    # Nothing removed: every item is top-1 of its own user, so POS@1 and NEG@1 start at 1.
    assert result.curves["POS@1"].iloc[0] == 1.0 and result.curves["NEG@1"].iloc[0] == 1.0
    # Everything removed: POS and NEG see the same empty history; INS at 100 % is the full history.
    last = result.curves.iloc[-1]
    assert last["POS@5"] == last["NEG@5"]
    assert result.curves["INS"].iloc[-1] == pytest.approx(result.curves["DEL"].iloc[0])


def test_jaccard_beats_random_on_real_structure(planted_model):
    data, X, held, model = planted_model
    users = np.arange(0, 400, 4)
    items = model.recommend(users, 1)[:, 0]
    jac = perturbation_curves(model, JaccardExplainer(X).explain_many(zip(users, items)))
    rnd = perturbation_curves(model, RandomExplainer(X).explain_many(zip(users, items)))
    assert jac.auc["POS@10"] < rnd.auc["POS@10"]


def test_protocol_rejects_bad_input(planted_model):
    data, X, held, model = planted_model
    hist = X.indices[X.indptr[0]:X.indptr[1]]
    with pytest.raises(ValueError, match="in user 0's history"):
        perturbation_curves(model, [Explanation(0, int(hist[0]), "m", hist[1:], np.zeros(len(hist) - 1))])
    outside = int(np.setdiff1d(np.arange(data.n_items), hist)[0])
    with pytest.raises(ValueError, match="not in the user's training history"):
        perturbation_curves(model, [Explanation(0, outside, "m", [outside], [1.0])])
    with pytest.raises(ValueError, match="(?i)no explanations"):
        perturbation_curves(model, [])


def test_statistics_copies_agree_with_their_originals_and_scipy():
    from scipy import stats

    from xrec_helpers.metrics.statistics import grouped_share_ci, mcnemar, paired_size_test

    a = np.array([1, 1, 0, 1, 0, 1, 1, 1], bool)
    b = np.array([0, 1, 0, 0, 0, 1, 0, 1], bool)
    assert mcnemar(a, b) == (3, 0, pytest.approx(stats.binomtest(3, 3, 0.5).pvalue))
    assert mcnemar(a, a) == (0, 0, 1.0)
    n, diff, p = paired_size_test([1, 2, 2, 3], [2, 4, 3, 3])
    assert n == 4 and diff == pytest.approx(-1.0)
    assert p == pytest.approx(stats.ttest_rel([1, 2, 2, 3], [2, 4, 3, 3], alternative="less").pvalue)
    assert np.isnan(paired_size_test([1, 2], [2, 3])[2])  # a constant difference has no variance
    share, low, high, groups = grouped_share_ci([1, 0, 1, 1, 0, 1], ["a", "a", "b", "b", "c", "c"], n_resamples=500)
    assert share == pytest.approx(4 / 6) and groups == 3 and low <= share <= high
    with pytest.raises(ValueError, match="two groups"):
        grouped_share_ci([1, 0], ["a", "a"])


def test_fidelity_is_one_definition_for_keys_paths_and_counterfactual_sets():
    import pandas as pd

    from xrec_helpers.explainers.base import Counterfactual
    from xrec_helpers.metrics.explanation import explanation_size, fidelity

    listed = Explanation(0, 5, "m", [1, 2], [1.0, 0.5])
    empty = Explanation(1, 5, "m", [], [])
    with_path = Explanation(2, 5, "m", [1], [1.0], paths=pd.DataFrame({"relation": ["director"]}))
    with_set = Explanation(3, 5, "m", [1], [1.0], counterfactual=Counterfactual(items=[1], replacement=4))
    assert fidelity([listed, empty]) == model_fidelity([listed, empty]) == 0.5
    assert fidelity([listed, with_path], of="paths") == 0.5
    assert fidelity([with_set, listed, empty, with_path], of="counterfactual") == 0.25
    # a method that searched and found no set reports an empty, not-found counterfactual: not a found set
    searched = Explanation(4, 5, "m", [1], [1.0], counterfactual=Counterfactual(items=[], replacement=4, found=False))
    size = explanation_size([with_set, searched])
    assert size["CF found %"] == 50.0 and size["CF set size"] == 1.0 and size["non-empty %"] == 100.0
    with pytest.raises(ValueError, match="of="):
        fidelity([listed], of="films")


def test_protocols_check_capabilities_and_kinds(planted_model):
    from xrec_helpers.metrics.counterfactual import PerturbationProtocol
    from xrec_helpers.metrics.necessity import NecessityProtocol, necessity_sufficiency

    data, X, held, model = planted_model
    users = np.arange(0, 60, 3)
    items = model.recommend(users, 1)[:, 0]
    expl = JaccardExplainer(X).explain_many(zip(users, items))
    for protocol in (PerturbationProtocol(), NecessityProtocol(k=10)):
        assert protocol.supports(model) and not protocol.supports(object())
        with pytest.raises(TypeError, match="score_histories"):
            protocol.evaluate(object(), expl)
        features = Explanation(0, 1, "LIME-RS", ["genre=Drama"], [0.3], kind="features")
        with pytest.raises(ValueError, match="history"):
            protocol.evaluate(model, [features])
    res = NecessityProtocol(k=10).evaluate(model, expl)
    assert [m.name for m in res.metrics] == ["PN@10", "PS@10"] and all(m.higher_is_better for m in res.metrics)
    out = necessity_sufficiency(model, expl, k=10)
    ok = out["eligible"]
    assert res.summary().loc["Jaccard", "PN@10"] == pytest.approx(out.loc[ok, "necessary"].mean())
    assert res.per_explanation.loc[~ok.to_numpy(), "PN@10"].isna().all()
