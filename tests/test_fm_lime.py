"""FM exact Shapley identity, agreement of KernelSHAP with it, LIME-RS plumbing and errors."""

from __future__ import annotations

import numpy as np
import pytest

from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.explainers.kernel_shap_fm import kernel_shap_fm, slot_vector
from xrec_helpers.explainers.lime_rs import LimeRSExplainer
from xrec_helpers.metrics.attribution import attribution_agreement
from xrec_helpers.models.fm import FIELDS, FactorizationMachine, FMFeatures


@pytest.fixture(scope="module")
def fitted():
    d = synthetic(n_users=120, n_items=40, items_per_user=6, seed=2)
    model = FactorizationMachine(factors=4, epochs=3, negatives=1, random_state=0).fit(
        d.csr(binary=False), FMFeatures.from_dataset(d))
    return d, model


def _brute_force_shapley(model, user, item):
    """Shapley values by enumerating all coalitions of the active slots (reference: absent)."""
    from itertools import combinations
    from math import factorial

    index, value = model.features_.encode(np.array([user]), np.array([item]))
    active = np.flatnonzero(value[0])
    m = len(active)
    phi = np.zeros(len(FIELDS))

    def v(coalition):
        vals = np.zeros_like(value)
        vals[0, list(coalition)] = value[0, list(coalition)]
        return float(model.predict_encoded(index, vals)[0])

    for j in active:
        others = [k for k in active if k != j]
        for r in range(m):
            for s in combinations(others, r):
                w = factorial(r) * factorial(m - r - 1) / factorial(m)
                phi[j] += w * (v(s + (j,)) - v(s))
    return phi


def test_shapley_sums_to_prediction_minus_base(fitted):
    d, model = fitted
    users, items = np.arange(10), np.arange(10) + 5
    phi = model.shapley(users, items)
    assert np.allclose(phi.sum(1), model.predict(users, items) - model.base_value, atol=1e-4)


def test_closed_form_equals_enumeration(fitted):
    _, model = fitted
    exact = model.shapley(np.array([3]), np.array([7]))[0]
    assert np.allclose(exact, _brute_force_shapley(model, 3, 7), atol=1e-4)


def test_score_matches_pairwise_predict(fitted):
    d, model = fitted
    assert np.allclose(model.score([4])[0], model.predict(np.full(d.n_items, 4), np.arange(d.n_items)), atol=1e-4)


def test_kernel_shap_recovers_exact_with_enough_samples(fitted):
    _, model = fitted
    exact = model.shapley(np.array([2]), np.array([11]))[0]
    ks = kernel_shap_fm(model, 2, 11, nsamples=500)
    assert np.allclose(ks, exact, atol=1e-3)


def test_lime_rs_runs_and_reports_r2(fitted):
    d, model = fitted
    user = 0
    item = int(np.setdiff1d(np.arange(d.n_items), model.train_[user].indices)[0])
    lime = LimeRSExplainer(model, titles=d.titles(), n_samples=60, user_share=0.5)
    e = lime.explain(user, item)
    assert e.kind == "features" and e.method == "LIME-RS" and e.model_calls == 60
    assert -1 <= e.fit_r2 <= 1
    # keys: the slots the pair has (the movie's genres, never one it lacks); absent genres only in the table
    labels = model.features_.slot_labels(user, item, d.titles())
    has = [labels[5 + g] for g in np.flatnonzero(model.features_.genres[item])]
    assert set(e.keys.tolist()) == set(labels[:5]) | set(has)
    assert len(e.table) == len(FIELDS) - 2 and e.table["varied"].any()
    assert set(e.table.loc[~e.table["movie has it"], "feature"]).isdisjoint(e.keys.tolist())
    # same seed, same answer
    again = lime.explain(user, item)
    assert again.keys.tolist() == e.keys.tolist() and np.allclose(again.values, e.values)
    assert "surrogate R²" in e.text
    # the sentence names only slots the movie has, even when an absent genre has the largest |weight|
    absent = set(e.table.loc[~e.table["movie has it"], "feature"])
    assert not any(f"{a} (" in e.text for a in absent)
    vec = slot_vector(e, model.features_)
    assert vec.shape == (len(FIELDS),) and np.allclose(sorted(vec[vec != 0]), sorted(e.values[e.values != 0]))


def test_lime_rs_refuses_a_model_without_feature_inputs(fitted):
    from xrec_helpers.models.popularity import PopularityRecommender

    d, _ = fitted
    with pytest.raises(TypeError, match="feature_inputs"):
        LimeRSExplainer(PopularityRecommender().fit(d.csr()))


def test_agreement_metric():
    a = np.array([3.0, -1.0, 2.0, 0.5])
    assert attribution_agreement(a, a)["spearman"] == pytest.approx(1.0)
    assert attribution_agreement(-a, a)["sign_agreement"] == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        attribution_agreement(a, a[:2])


def test_clear_errors(fitted):
    d, model = fitted
    lime = LimeRSExplainer(model, titles=d.titles(), n_samples=30)
    seen = int(model.train_[0].indices[0])
    with pytest.raises(ValueError, match="already in user 0's history"):
        lime.explain(0, seen)
    with pytest.raises(IndexError, match="Unknown user"):
        lime.explain(10_000, 1)
    with pytest.raises(ValueError, match="needs features"):
        FactorizationMachine().fit(d.csr(binary=False))
    with pytest.raises(ValueError, match="n_samples"):
        LimeRSExplainer(model, n_samples=3)


def test_kernel_shap_explainer_on_contract(fitted):
    from xrec_helpers.explainers.kernel_shap_fm import KernelSHAPFMExplainer

    d, model = fitted
    ks = KernelSHAPFMExplainer(model, titles=d.titles(), nsamples=500)
    user = 1
    item = int(np.setdiff1d(np.arange(d.n_items), model.train_[user].indices)[0])
    expl = ks.explain(user, item)
    assert expl.kind == "features" and expl.method == "KernelSHAP"
    phi = slot_vector(expl, model.features_)
    assert np.allclose(phi, model.shapley(np.array([user]), np.array([item]))[0], atol=1e-3)
    prediction = float(model.predict(np.array([user]), np.array([item]))[0])
    assert expl.base_value + expl.values.sum() == pytest.approx(prediction, abs=1e-3)
    assert "item" not in " ".join(expl.keys.tolist()).split()  # titles, not ids
    seen = int(model.train_[user].indices[0])
    with pytest.raises(ValueError, match="already in user 1's history"):
        ks.explain(user, seen)
    with pytest.raises(ValueError, match="nsamples"):
        kernel_shap_fm(model, user, item, nsamples=1)
    with pytest.raises(IndexError, match="Unknown item"):
        kernel_shap_fm(model, user, 10_000)


def test_agreement_mask_errors():
    a = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="mask has shape"):
        attribution_agreement(a, a, np.array([True, False]))
    with pytest.raises(ValueError, match="empty mask"):
        attribution_agreement(a, a, np.zeros(3, bool))
    assert np.isnan(attribution_agreement(a[:2], a[:2])["spearman"])  # fewer than 3 features: undefined
