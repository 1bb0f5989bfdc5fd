"""ACCENT on NCF: model, batched retrains, FIA against autograd, the greedy searches, verification."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.protocols import accent_split
from xrec_helpers.explainers.base import top_pairs
from xrec_helpers.explainers.influence import (
    ACCENTExplainer,
    ACCENTResumeExplainer,
    FastInfluence,
    FIAExplainer,
    PureFIAExplainer,
    accent_search,
    fia_search,
    influence_explainers,
)
from xrec_helpers.metrics.retraining import (
    RetrainingVerification,
    cf_summary,
    compare_methods,
    verify_by_retraining,
)
from xrec_helpers.metrics.statistics import mcnemar, paired_size_test
from xrec_helpers.models.ncf import NCF, ncf_forward


@pytest.fixture(scope="module")
def small(ml100k):
    split = accent_split(ml100k.subset_users(120, seed=1).ratings)
    X = to_csr(split.train, len(split.users), len(split.items), binary=False)
    torch.set_num_threads(1)
    model = NCF(lr=1e-2, epochs=4, batch_size=512, random_state=0).fit(X)
    return split, X, model


def test_split_follows_the_paper(ml100k):
    split = accent_split(ml100k.ratings)
    train, test = split.train, split.test
    pos, neg = train["rating"] >= 3, train["rating"] < 3
    assert len(split.users) == 452  # the paper's 452 users
    assert abs(len(train) - 61_054) < 100  # 61,054 in the paper (it also drops movies without metadata)
    # per user, every held-out rating is no earlier than that user's training ratings of the same polarity
    for polarity in (True, False):
        tr = train[(train["rating"] >= 3) == polarity].groupby("user")["timestamp"].max()
        te = test[(test["rating"] >= 3) == polarity].groupby("user")["timestamp"].min()
        assert (te >= tr.reindex(te.index)).all()
    assert pos.groupby(train["user"]).sum().min() >= 8 and neg.groupby(train["user"]).sum().min() >= 8


def test_split_errors():
    import pandas as pd

    with pytest.raises(ValueError, match="No ratings"):
        accent_split(pd.DataFrame(columns=["user", "item", "rating", "timestamp"]))


def test_ncf_rejects_binary_and_bad_ids(small):
    split, X, model = small
    binary = X.copy()
    binary.data[:] = 1
    with pytest.raises(ValueError, match="explicit ratings"):
        NCF(epochs=1).fit(binary)
    with pytest.raises(IndexError, match="Unknown user"):
        model.score(10_000)
    user = 0
    unrated = np.setdiff1d(np.arange(model.n_items), X[user].indices)[:1]
    with pytest.raises(ValueError, match="not in user 0's training ratings"):
        model.retrain_scores([(user, unrated)], [0], 1, [[0, 1]])


def test_training_lowers_loss(small):
    _, _, model = small
    assert model.loss_history_[-1] < model.loss_history_[0]


def test_batched_retrain_equals_continued_training(small):
    """A no-removal retrain in a stack of three equals continuing the single model with that seed,
    and a retrain without some rows differs from it (so removal is really applied)."""
    split, X, model = small
    user = 3
    items = [0, 1, 2]
    seed = 0 + len(model.loss_history_)  # the seed continue_training will use
    removed = X[user].indices[:5]
    new = model.retrain_scores([(user, []), (user, removed), (user, [])], [seed, seed, seed + 1], 2,
                               [items] * 3)
    clone = NCF(lr=1e-2, epochs=4, batch_size=512, random_state=0).fit(X)
    clone.continue_training(2)
    np.testing.assert_allclose(new[0], clone.score(user)[0, items], atol=1e-5)
    assert np.abs(new[1] - new[0]).max() > 1e-4
    assert np.abs(new[2] - new[0]).max() > 1e-6


def test_retrain_uses_the_rate_the_model_finished_at(small):
    """A base finished at a lower rate is retrained at that rate (not at the constructor's), and
    target_users scores other users' items in the same run."""
    split, X, _ = small
    model = NCF(lr=1e-2, epochs=3, batch_size=512, random_state=0).fit(X).continue_training(1, lr=1e-3)
    clone = NCF(lr=1e-2, epochs=3, batch_size=512, random_state=0).fit(X).continue_training(1, lr=1e-3)
    seed = len(model.loss_history_)
    new = model.retrain_scores([(0, [])], [seed], 2, [[0, 1, 2]], target_users=[[0, 5, 7]])
    clone.continue_training(2)
    want = [clone.score(0)[0, 0], clone.score(5)[0, 1], clone.score(7)[0, 2]]
    np.testing.assert_allclose(new[0], want, atol=1e-5)
    with pytest.raises(ValueError, match="target_users"):
        model.retrain_scores([(0, [])], [seed], 1, [[0, 1]], target_users=[[0]])


def test_retrain_blocks_in_worker_processes_match_one_process(small):
    """engine=2 runs the stacked blocks in two loky worker processes: same scores as one process."""
    _, X, model = small
    removals = [(u, X[u].indices[:2]) for u in range(5)] + [(0, [])]
    seeds, targets = [0, 1, 0, 1, 0, 1], [[0, 1, 2]] * 6
    one = model.retrain_scores(removals, seeds, 1, targets, max_models=2)
    two = model.retrain_scores(removals, seeds, 1, targets, max_models=2, engine=2)
    np.testing.assert_array_equal(np.array(one), np.array(two))
    with pytest.raises(ValueError, match="worker processes must be >= 1"):
        model.retrain_scores(removals, seeds, 1, targets, engine=0)


def _full_fia(model: NCF, user: int, target: int, damping: float = 1e-6) -> np.ndarray:
    """Reference: the 64x64 Hessian over R_u and R_i via autograd, predicted drop per user rating."""
    p = {k: v[0].double() for k, v in model.params_.items()}
    X = model.train_
    d = model.factors
    u_items = torch.as_tensor(X[user].indices)
    u_r = torch.as_tensor(X[user].data, dtype=torch.float64)
    Xc = X.tocsc()
    i_users = torch.as_tensor(Xc[:, target].indices)
    i_r = torch.as_tensor(Xc[:, target].data, dtype=torch.float64)

    def f(theta, users_emb_g, users_emb_m, items_emb_g, items_emb_m):
        return ncf_forward(users_emb_g.unsqueeze(0), items_emb_g.unsqueeze(0), users_emb_m.unsqueeze(0),
                           items_emb_m.unsqueeze(0), p["W1"][None], p["b1"][None], p["W2"][None], p["b2"][None],
                           p["Wo"][None], p["bo"][None])[0]

    def rows_user(theta):
        n = len(u_items)
        return f(theta, theta[:d].expand(n, d), theta[d:2 * d].expand(n, d), p["Q_gmf"][u_items], p["Q_mlp"][u_items])

    def rows_item(theta):
        n = len(i_users)
        return f(theta, p["P_gmf"][i_users], p["P_mlp"][i_users], theta[2 * d:3 * d].expand(n, d),
                 theta[3 * d:].expand(n, d))

    def total(theta):
        return ((rows_user(theta) - u_r) ** 2).sum() + ((rows_item(theta) - i_r) ** 2).sum()

    theta = torch.cat([p["P_gmf"][user], p["P_mlp"][user], p["Q_gmf"][target], p["Q_mlp"][target]])
    n = len(u_items) + len(i_users)
    H = torch.autograd.functional.hessian(total, theta) / n + (model.weight_decay + damping) * torch.eye(4 * d,
                                                                                                       dtype=torch.float64)

    def score(theta):
        return f(theta, theta[:d][None], theta[d:2 * d][None], theta[2 * d:3 * d][None], theta[3 * d:][None])[0]

    grad_f = torch.autograd.functional.jacobian(score, theta)
    x = torch.linalg.solve(H, grad_f)
    per_row = torch.autograd.functional.jacobian(lambda t: (rows_user(t) - u_r) ** 2, theta)  # (n_u, 64)
    return -(per_row @ x / n).numpy()


def test_fia_matches_full_64_dimensional_reference(small):
    _, X, model = small
    fi = FastInfluence(model, k=3)
    info = fi.user(5)
    for a in range(3):
        ref = _full_fia(model, 5, int(info.topk[a]))
        np.testing.assert_allclose(info.influence[a], ref, rtol=1e-6, atol=1e-9)
    assert np.abs(info.influence).max() > 0


def test_fia_predicts_single_removal_direction(small):
    """FIA's predicted drop of the rec, for the most influential rating, has the sign retraining shows
    when only the user's embedding is re-fitted... checked loosely: the predicted top drop is positive."""
    _, _, model = small
    info = FastInfluence(model, k=5).user(7)
    assert info.influence[0].max() > 0 and info.influence[0].min() < 0


def test_accent_search_toy():
    scores = np.array([4.0, 3.9, 3.5])
    # rows: rec, cand1, cand2; columns: ratings. Pair gaps vs cand1: [0.05, 0.08, -0.1, 0.5]
    influence = np.array([[0.10, 0.10, 0.0, 0.5],
                          [0.05, 0.02, 0.1, 0.0],
                          [0.00, 0.00, 0.0, 0.0]])
    # k=2: only cand1; order by pair gap 3, 1, 0: after 3 the gap is -0.4 < 0 -> set {3}
    two = accent_search(scores, influence, k=2)
    assert two.removed == (3,) and two.replacement == 1 and two.found and two.row == 1
    three = accent_search(scores, influence, k=3)
    assert three.removed == (3,)  # cand2 needs 0.5 too but ties break on the more negative gap
    assert three.gap == pytest.approx(min(0.1 - 0.5, 0.5 - 0.6))
    # nothing closes the gap: no set, and the row is the candidate whose gap closed furthest
    none = accent_search(np.array([4.0, 3.0, 3.9]), np.zeros((3, 2)), k=3)
    assert not none.found and none.removed == () and none.row == 2 and none.gap == pytest.approx(0.1)


def test_fia_search_toy():
    scores = np.array([4.0, 3.9, 3.0])
    influence = np.array([[0.3, 0.2, 0.1],
                          [0.3, 0.0, 0.0],
                          [0.0, 0.0, 0.0]])
    # pure FIA takes rating 0 (no gap change), then 1: 4-0.5=3.5 < 3.9-0.3=3.6 -> {0, 1}
    pure = fia_search(scores, influence, k=3, pure=True)
    assert pure.removed == (0, 1) and pure.replacement == 1
    # FIA skips rating 0 (it does not narrow the lead) and takes 1: 3.8 vs 3.9 -> {1}
    fia = fia_search(scores, influence, k=3, pure=False)
    assert fia.removed == (1,) and fia.gap == pytest.approx(-0.1)


def test_explainers_contract_and_nesting(small):
    split, X, model = small
    fi = FastInfluence(model, k=20)
    titles = [f"Movie {i}" for i in range(model.n_items)]
    by_k = influence_explainers(model, (5, 10, 20), methods=(ACCENTExplainer,), titles=titles, influence=fi)
    assert list(by_k) == [("ACCENT", 5), ("ACCENT", 10), ("ACCENT", 20)]
    acc = by_k[("ACCENT", 5)]
    pure = PureFIAExplainer(model, k=5, influence=fi)
    fia = FIAExplainer(model, k=5, influence=fi)
    found = other_found = 0
    for user, rec in top_pairs(model, range(12)):
        expls = [ex.explain(user, rec) for ex in by_k.values()]
        assert [e.counterfactual.k for e in expls] == [5, 10, 20]
        sizes = [e.counterfactual.size if e.counterfactual.found else np.inf for e in expls]
        assert sizes[0] >= sizes[1] >= sizes[2]  # nested candidates: never larger for a larger k
        e = expls[0]
        assert e.item == model.recommend(user, 1)[0, 0]
        if e.counterfactual.found:
            found += 1
            top = acc.predicted_scores(e)
            assert e.predicted_gap < 0 and e.replacement in top.index[1:]
            assert set(e.counterfactual_set) <= set(X[user].indices)
            assert e.text.startswith("Had you not rated *Movie")
            # the predicted scores after removal: the replacement overtakes the rec
            ps = top["predicted after removal"]
            assert ps[e.replacement] > ps[e.item]
            for other, ex in ((pure.explain(user, rec), pure), (fia.explain(user, rec), fia)):
                if other.counterfactual.found:
                    other_found += 1
                    # the FIA variants' sets obey the same contract: rated items whose predicted removal
                    # lets the named replacement overtake the recommendation
                    assert set(other.counterfactual_set) <= set(X[user].indices) and other.predicted_gap < 0
                    ps = ex.predicted_scores(other)["predicted after removal"]
                    assert ps[other.replacement] > ps[other.item]
        else:
            assert e.counterfactual.size == 0 and e.replacement is None and "found no set" in e.text
    assert found >= 1 and other_found >= 1
    with pytest.raises(ValueError, match="top recommendation"):
        acc.explain(0, int(model.recommend(0, 2)[0, 1]))
    with pytest.raises(ValueError, match="already in user"):
        acc.explain(0, int(X[0].indices[0]))
    with pytest.raises(TypeError, match="item=None"):
        acc.explain_many([(0, None)])
    with pytest.raises(ValueError, match="k=30"):
        ACCENTExplainer(model, k=30, influence=fi)
    with pytest.raises(TypeError, match="influence"):
        ACCENTExplainer(object())


def test_verification_and_resume(small):
    split, X, model = small
    fi = FastInfluence(model, k=5)
    acc = ACCENTExplainer(model, k=5, influence=fi)
    pairs = [p for p in top_pairs(model, range(20)) if acc.explain(*p).counterfactual.found][:4]
    assert pairs, "no ACCENT set on the small model"
    expl = acc.explain_many(pairs) + PureFIAExplainer(model, k=5, influence=fi).explain_many(pairs)
    v = verify_by_retraining(model, expl, epochs=1, seeds=[0, 1])
    assert v.attrs["distinct_sets"] <= len(expl) and v.attrs["retrains"] == 2 * (v.attrs["distinct_sets"] + 1)
    assert (v["k"] == 5).all()
    # the shared control (one per seed) gives each user the gap of a no-removal retrain of that user
    row = v[v["size"] > 0].iloc[0]
    ctrl = model.retrain_scores([(int(row.user), [])] * 2, [0, 1], 1, [[int(row.rec), int(row.replacement)]] * 2)
    assert row.control_gap == pytest.approx(float(np.mean([c[0] - c[1] for c in ctrl])), abs=1e-5)
    has = v["size"] > 0
    assert (v.loc[has, "success"] == (v.loc[has, "actual_gap"] < 0)).all()
    assert not v.loc[~has, "success"].any()
    # the protocol: the same numbers, one row per explanation, metrics named with their direction
    result = RetrainingVerification(epochs=1, seeds=[0, 1]).evaluate(model, expl)
    rows = result.per_explanation
    assert list(rows.columns[:3]) == ["method", "user", "item"] and len(rows) == len(expl)
    np.testing.assert_allclose(rows["actual_gap"], v["actual_gap"])
    assert (rows["retrained CF"] == v["success"].astype(float)).all()
    assert rows["retrained CF size"].isna().tolist() == (~v["success"].astype(bool)).tolist()
    assert result.metric("retrained CF").higher_is_better and result.details["retrains"] == v.attrs["retrains"]
    assert result.summary().loc["ACCENT", "retrained CF"] == pytest.approx(v[v.method == "ACCENT"]["success"].mean())
    with pytest.raises(TypeError, match="retrain"):
        RetrainingVerification(epochs=1).evaluate(object(), expl)
    # net of drift: the verdict is corrected_gap < 0, and the protocol can count it instead of the raw flip
    assert (v.loc[has, "corrected_success"] == (v.loc[has, "corrected_gap"] < 0)).all()
    np.testing.assert_allclose(v.loc[has, "corrected_gap"],
                               v.loc[has, "actual_gap"] - v.loc[has, "control_gap"] + v.loc[has, "original_gap"])
    net = RetrainingVerification(epochs=1, seeds=[0, 1], verdict="corrected").evaluate(model, expl)
    assert (net.per_explanation["retrained CF"] == v["corrected_success"].astype(float)).all()
    assert "net of the no-removal drift" in net.details["label"] and "+1-epoch" in net.details["label"]
    assert cf_summary(v, "corrected_success").loc[("ACCENT", 5), "cf_percent"] == pytest.approx(
        100 * v[v.method == "ACCENT"]["corrected_success"].mean())
    with pytest.raises(ValueError, match="controls"):
        RetrainingVerification(verdict="corrected", controls=False)
    with pytest.raises(ValueError, match="raw"):
        RetrainingVerification(verdict="net")
    with pytest.raises(ValueError, match="column"):
        cf_summary(v, "verified")
    summary = cf_summary(v)
    acc_row = summary.loc[("ACCENT", 5)]
    assert acc_row["cf_percent"] == pytest.approx(100 * v[v.method == "ACCENT"]["success"].mean())
    cmp = compare_methods(v, "ACCENT", "pure FIA", 5)
    # recomputed from the verification table: discordant users and McNemar's exact (binomial) p-value
    a = v[(v.method == "ACCENT") & (v.k == 5)].set_index("user")["success"].astype(bool)
    b = v[(v.method == "pure FIA") & (v.k == 5)].set_index("user")["success"].astype(bool)
    a, b = a.loc[a.index.intersection(b.index)], b.loc[a.index.intersection(b.index)]
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    assert (cmp["only_a"], cmp["only_b"]) == (only_a, only_b)
    expected_p = 1.0 if only_a + only_b == 0 else binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    assert cmp["p_mcnemar"] == pytest.approx(min(1.0, expected_p))
    resumed = ACCENTResumeExplainer(model, k=5, influence=fi, epochs=1, rounds=2).explain_many(pairs)
    for r, (u, i) in zip(resumed, pairs):
        base = acc.explain(u, i)
        assert r.method == "ACCENT+resume" and r.counterfactual.rounds >= 1 and r.counterfactual.verified is not None
        assert list(r.counterfactual_set[:base.counterfactual.size]) == list(base.counterfactual_set)  # only extends
        assert base.counterfactual.rounds == 0 and base.counterfactual.verified is None  # never mutated


def test_significance_helpers():
    only_a, only_b, p = mcnemar([1, 1, 1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0, 0])
    assert (only_a, only_b) == (7, 0) and p == pytest.approx(2 * 0.5 ** 7)
    assert mcnemar([1, 0], [1, 0])[2] == 1.0
    n, diff, p = paired_size_test([1, 2, 1, 2], [3, 5, 4, 6])
    assert n == 4 and diff < 0 and p < 0.05
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar([1], [1, 0])
