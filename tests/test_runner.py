"""The runner (metrics.runner) and statistics (metrics.statistics): timed runs, one table, bootstrap CIs, paired tests.

Notebook 11's machinery.

Small synthetic data with planted cause -> effect pairs and a small HistoryMF; every number is
checked against an independent computation (the perturbation protocol itself, scipy, by hand).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from xrec_helpers.explainers.perturbation import ACCENTExplainer, FIAExplainer

from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.explainers.baselines import JaccardExplainer, RandomExplainer
from xrec_helpers.metrics.counterfactual import PerturbationProtocol, compare, perturbation_curves, removal_outcomes
from xrec_helpers.metrics.explanation import explanation_size, top_overlap
from xrec_helpers.metrics.necessity import NecessityProtocol, necessity_sufficiency, pn_ps
from xrec_helpers.metrics.runner import build_timed, evaluate_explainers
from xrec_helpers.metrics.statistics import adjacent, bootstrap_ci, holm, paired_test
from xrec_helpers.models.history_mf import HistoryMF


class FirstOnly(Explainer):
    """Lists only the smallest history item: a partial explanation (the rest is filled at random)."""

    name = "First only"

    def explain(self, user, item):
        hist = self.check_pair(user, item)
        return self._make(user, item, hist[:1], [1.0])


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    data = synthetic(n_users=240, n_items=60, seed=2)
    X = data.csr()
    mf = HistoryMF(factors=16, epochs=12, random_state=0).fit(X)
    users = np.arange(50)
    items = mf.recommend(users, k=1)[:, 0]
    pairs = list(zip(users.tolist(), items.tolist(), strict=False))
    explainers, setup_s = build_timed({
        "Random": lambda: RandomExplainer(X, random_state=0),
        "Jaccard": lambda: JaccardExplainer(X),
        "FIA": lambda: FIAExplainer(X, mf),
        "ACCENT": lambda: ACCENTExplainer(X, mf, k=3),
    })
    protocols = [PerturbationProtocol(random_state=7), NecessityProtocol(k=20, fraction=0.2, random_state=7)]
    # a factory is built and timed by the runner itself
    cmp = evaluate_explainers(mf, {**explainers, "First only": lambda: FirstOnly(X)}, protocols, pairs,
                              setup_seconds=setup_s)
    explainers["First only"] = FirstOnly(X)
    runs = {n: perturbation_curves(mf, cmp.explanations[n], random_state=7) for n in cmp.methods}
    return X, mf, pairs, explainers, cmp, runs


def test_table_matches_the_protocols_and_measures_size_and_cost(setup):
    X, mf, pairs, explainers, cmp, runs = setup
    table = cmp.table()
    assert list(table.index) == list(explainers)
    assert (table["users"] == len(pairs)).all()
    # The AUC columns are exactly compare() of an independent perturbation run on the same explanations.
    reference = compare({n: perturbation_curves(mf, explainers[n].explain_many(pairs), random_state=7)
                         for n in explainers})
    pd.testing.assert_frame_equal(table[reference.columns].astype(float), reference.astype(float))
    # PN and PS are the means of the protocol's per-explanation outcomes (pn_ps over eligible rows).
    for n in explainers:
        pp = pn_ps(necessity_sufficiency(mf, explainers[n].explain_many(pairs), k=20, fraction=0.2, random_state=7))
        assert table.loc[n, "PN@20 ↑"] == pytest.approx(pp["PN"], nan_ok=True)
        assert table.loc[n, "PS@20 ↑"] == pytest.approx(pp["PS"], nan_ok=True)
    hist_len = np.array([X[u].nnz for u, _ in pairs], dtype=float)
    assert table.loc["Jaccard", "items listed"] == pytest.approx(hist_len.mean())
    assert table.loc["Jaccard", "listed / history"] == pytest.approx(1.0)
    assert table.loc["First only", "items listed"] == 1.0
    assert table.loc["First only", "listed / history"] == pytest.approx((1 / hist_len).mean())
    assert np.isnan(table.loc["FIA", "CF set size"]) and table.loc["FIA", "CF found %"] == 0
    found = [e.counterfactual.size for e in cmp.explanations["ACCENT"]
             if e.counterfactual is not None and e.counterfactual.found and e.counterfactual.size > 0]
    assert table.loc["ACCENT", "CF found %"] == pytest.approx(100 * len(found) / len(pairs))
    assert found, "ACCENT found no counterfactual set on the planted data"
    assert table.loc["ACCENT", "CF set size"] == pytest.approx(np.mean(found))
    assert (table["ms / explanation"] > 0).all() and (table["setup s"] > 0).all()


def test_protocol_result_has_one_row_per_explanation_and_directed_metrics(setup):
    _, mf, pairs, _, cmp, runs = setup
    res = cmp.results["perturbation"]
    assert len(res.per_explanation) == len(pairs) * len(cmp.methods)
    assert res.metric("POS@20").higher_is_better is False and res.metric("NEG@20").higher_is_better is True
    summary = res.summary()
    for n, run in runs.items():
        assert summary.loc[n, "POS@20"] == pytest.approx(run.auc["POS@20"])
        pd.testing.assert_frame_equal(res.curves.loc[n], run.curves)
    # evaluating one method alone gives its rows in the mixed evaluation (same seed per method)
    alone = PerturbationProtocol(random_state=7).evaluate(mf, cmp.explanations["First only"]).per_explanation
    mixed = res.per_explanation[res.per_explanation["method"] == "First only"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, mixed)


def test_model_reading_explainer_beats_random_on_planted_data(setup):
    *_, runs = setup
    assert runs["FIA"].auc["POS@20"] < runs["Random"].auc["POS@20"]
    assert runs["FIA"].auc["DEL"] < runs["Random"].auc["DEL"]


@pytest.mark.parametrize("k_e, k", [(1, 5), (3, 10), (5, 20)])
def test_removal_outcomes_agree_with_the_protocols_fixed_metrics(setup, k_e, k):
    X, mf, pairs, explainers, cmp, runs = setup
    checked = 0
    for name, run in runs.items():
        explanations = cmp.explanations[name]
        out = removal_outcomes(mf, explanations, k=k, k_e=k_e, random_state=7)
        assert list(zip(out["user"], out["item"], strict=False)) == pairs
        # Same seeded fill-in as perturbation_curves (matters for the partial "First only").
        assert out["in_top_k"].mean() == pytest.approx(run.fixed.loc[k_e, f"POS@{k}"]), name
        # the rank recomputed here for explanations that list >= k_e items (no random fill-in needed):
        # 1 + the number of unseen items scored above the item once its top k_e blamed items are gone
        for e, rank in zip(explanations, out["rank"], strict=True):
            if len(e.items) < k_e:
                continue
            history = X[e.user].indices
            x = np.zeros((1, X.shape[1]), dtype=np.float32)
            x[0, history] = 1
            x[0, e.items[:k_e]] = 0
            s = mf.score_histories(x)[0].astype(np.float64)
            others = np.setdiff1d(np.arange(X.shape[1]), np.append(history, e.item))
            assert rank == 1 + int((s[others] > s[e.item]).sum()), name
            checked += 1
    assert checked >= len(pairs)  # at least one explainer's whole run was recomputed


@pytest.mark.parametrize("fraction, k", [(0.1, 5), (0.3, 10), (0.5, 20), (1.0, 20)])
def test_removal_outcomes_agree_with_the_curve_points(setup, fraction, k):
    _, mf, pairs, explainers, cmp, runs = setup
    for name, run in runs.items():
        out = removal_outcomes(mf, cmp.explanations[name], k=k, fraction=fraction, random_state=7)
        assert out["in_top_k"].mean() == pytest.approx(run.curves.loc[fraction, f"POS@{k}"]), name
    with pytest.raises(ValueError, match="curve's points"):
        removal_outcomes(mf, cmp.explanations[name], fraction=0.25)
    with pytest.raises(ValueError, match="exactly one"):
        removal_outcomes(mf, cmp.explanations[name], k_e=2, fraction=0.2)


def test_slicing_a_full_run_equals_rerunning_on_the_subsample(setup):
    _, mf, pairs, explainers, cmp, runs = setup
    sub = pairs[5:20]
    rerun = perturbation_curves(mf, explainers["FIA"].explain_many(sub), random_state=7)
    sliced = cmp.rows("POS@20", sub)
    np.testing.assert_allclose(sliced[sliced["method"] == "FIA"]["POS@20"], rerun.per_user["POS@20"])
    table = cmp.table(pairs=sub)
    assert (table["users"] == len(sub)).all()
    assert table.loc["FIA", "POS@20 ↓"] == pytest.approx(rerun.auc["POS@20"])
    assert table.loc["FIA", "DEL ↓"] == pytest.approx(rerun.auc["DEL"])
    assert list(compare({"x": rerun}).columns) == [c for c in table.columns if c[:2] not in ("us", "PN", "PS")]
    with pytest.raises(KeyError, match="was not run on pairs"):
        cmp.rows("POS@20", [(0, 10**6)])


def test_bootstrap_interval_brackets_the_mean_and_orders_best_first(setup):
    *_, cmp, runs = setup
    x = np.random.default_rng(0).normal(size=200)
    mean, low, high = bootstrap_ci(x, level=0.95)
    assert mean == pytest.approx(x.mean())
    assert low < mean < high
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal-theory interval it should resemble
    assert high - low == pytest.approx(2 * half, rel=0.25)
    narrow = bootstrap_ci(x, level=0.5)
    assert narrow[2] - narrow[1] < high - low
    assert bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)
    table = cmp.bootstrap("POS@20")
    assert table["POS@20"].is_monotonic_increasing  # lower is better: best first
    assert (table["low"] <= table["POS@20"]).all() and (table["POS@20"] <= table["high"]).all()
    assert cmp.bootstrap("NEG@20")["NEG@20"].is_monotonic_decreasing
    assert table.loc["FIA", "POS@20"] == pytest.approx(runs["FIA"].auc["POS@20"])
    with pytest.raises(KeyError, match="No protocol here reports"):
        cmp.bootstrap("POS@7")
    with pytest.raises(ValueError, match="at least two"):
        bootstrap_ci([1.0])


def test_holm_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, np.nan, 0.01]), [0.5, np.nan, 0.02])
    assert holm([0.9, 0.8]).max() <= 1.0


def test_paired_test_agrees_with_scipy_and_counts_discordant_pairs():
    rng = np.random.default_rng(1)
    a = rng.random(40)
    b = a + 0.05 + rng.normal(0, 0.02, 40)
    out = paired_test(a, b, a > 0.5, b > 0.5)
    assert out["mean diff"] == pytest.approx((a - b).mean())
    assert out["p Wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert out["p t-test"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert out["p t-test"] < 0.001
    assert out["only a"] == int(((a > 0.5) & ~(b > 0.5)).sum())
    assert out["only b"] == int((~(a > 0.5) & (b > 0.5)).sum())
    same = paired_test(a, a, a > 0.5, a > 0.5)
    assert same["p Wilcoxon"] == same["p t-test"] == same["p McNemar"] == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_test(a, b[:-1])
    with pytest.raises(ValueError, match="both binary outcomes"):
        paired_test(a, b, a > 0.5)


def test_paired_tests_table_on_shared_users(setup):
    _, mf, pairs, _, cmp, runs = setup
    outcome = pd.concat([removal_outcomes(mf, ex, k=20, fraction=0.2, random_state=7)
                         for ex in cmp.explanations.values()])
    ranking = list(cmp.bootstrap("POS@20").index)
    tests = cmp.paired_tests(adjacent(ranking), "POS@20", outcome=outcome)
    assert len(tests) == len(cmp.methods) - 1
    assert (tests["p Wilcoxon (Holm)"] >= tests["p Wilcoxon"] - 1e-12).all()
    row = cmp.paired_tests([("FIA", "Random")], "POS@20", outcome=outcome).iloc[0]
    fia, rnd = runs["FIA"].per_user["POS@20"], runs["Random"].per_user["POS@20"]
    assert row["mean diff"] == pytest.approx((fia - rnd).mean())
    assert row["p Wilcoxon"] == pytest.approx(stats.wilcoxon(fia, rnd, method="asymptotic").pvalue)  # AUCs tie
    by = outcome.groupby("method")["in_top_k"]
    assert row["only a"] + row["only b"] == int((by.get_group("FIA").to_numpy() != by.get_group("Random").to_numpy()).sum())
    # McNemar's outcome is the complement of the PN/PS protocol's necessity at the same removal
    nec = cmp.results["PN/PS"].per_explanation
    np.testing.assert_array_equal(nec["necessary"].to_numpy(), ~outcome["in_top_k"].to_numpy())
    with pytest.raises(KeyError, match="Unknown explainer"):
        cmp.paired_tests([("FIA", "LXR")], "POS@20")
    assert adjacent(["x", "y", "z"]) == [("x", "y"), ("y", "z")]


def test_merging_comparisons_keeps_every_method(setup):
    _, mf, pairs, explainers, cmp, runs = setup
    slow = evaluate_explainers(mf, {"Jaccard again": explainers["Jaccard"]},
                               [PerturbationProtocol(random_state=7), NecessityProtocol(k=20, random_state=7)],
                               pairs[:10])
    both = cmp | slow
    assert both.methods == cmp.methods + ["Jaccard again"]
    assert all(e.method == "Jaccard again" for e in both.explanations["Jaccard again"])  # reported under its name
    table = both.table(pairs=pairs[:10])
    assert table.loc["Jaccard again", "POS@20 ↓"] == pytest.approx(table.loc["Jaccard", "POS@20 ↓"])
    assert both.table().loc["Jaccard again", "users"] == 10


def test_clear_errors(setup):
    X, mf, pairs, explainers, cmp, runs = setup
    protocols = [PerturbationProtocol()]
    with pytest.raises(ValueError, match="No \\(user, item\\) pairs"):
        evaluate_explainers(mf, explainers, protocols, [])
    with pytest.raises(ValueError, match="No explainers"):
        evaluate_explainers(mf, {}, protocols, pairs)
    with pytest.raises(ValueError, match="No protocols"):
        evaluate_explainers(mf, explainers, [], pairs)
    with pytest.raises(TypeError, match="score_histories"):
        evaluate_explainers(object(), explainers, protocols, pairs)
    with pytest.raises(TypeError, match="not an Explainer"):
        build_timed({"bad": lambda: object()})
    with pytest.raises(ValueError, match="one positive history length"):
        explanation_size(cmp.explanations["FIA"], [1, 2])
    u = pairs[0][0]
    seen = int(X[u].indices[0])
    bad_copy = Explanation(user=u, item=seen, method="x", keys=[], values=[])
    with pytest.raises(ValueError, match="in user"):
        removal_outcomes(mf, [bad_copy], k_e=1)
    with pytest.raises(ValueError, match="k_e"):
        removal_outcomes(mf, cmp.explanations["FIA"], k_e=0)
    with pytest.raises(ValueError, match="in user"):
        removal_outcomes(mf, [bad_copy], fraction=0.2)
    with pytest.raises(IndexError, match="Unknown user"):
        evaluate_explainers(mf, {"Random": explainers["Random"]}, protocols, [(10**6, 0)])


def test_top_overlap_by_hand(setup):
    *_, cmp, runs = setup
    table = cmp.overlap(n=3)
    pd.testing.assert_frame_equal(table, top_overlap(cmp.explanations, n=3))
    assert table.loc["FIA", "FIA"] == pytest.approx(1.0)  # FIA lists the whole history (>= 3 items here)
    assert table.loc["First only", "First only"] == pytest.approx(1 / 3)
    manual = np.mean([len(set(a.items[:3]) & set(b.items[:3])) / 3
                      for a, b in zip(cmp.explanations["FIA"], cmp.explanations["Jaccard"], strict=False)])
    assert table.loc["FIA", "Jaccard"] == pytest.approx(manual)
    assert np.allclose(table.to_numpy(), table.to_numpy().T)
