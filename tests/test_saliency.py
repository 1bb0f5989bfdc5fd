"""GradientSaliencyExplainer: the value of a history item is d score(item) / d x_h, checked by finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xrec_helpers.explainers.registry import build_explainers
from xrec_helpers.explainers.saliency import GradientSaliencyExplainer
from xrec_helpers.models.base import TORCH_SCORES
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.popularity import PopularityRecommender
from xrec_helpers.models.vae import MultVAE
from xrec_helpers.testing import check_explainer, tiny_world


@pytest.fixture(scope="module")
def world():
    return tiny_world()


@pytest.fixture(scope="module", params=[HistoryMF, MultVAE], ids=["HistoryMF", "MultVAE"])
def model(request, world):
    return request.param(epochs=3, random_state=0).fit(world.train)


def _finite_difference(model, history, item, h, eps=1e-2):
    x = torch.zeros(2, model.n_items, dtype=torch.float64)
    x[:, history] = 1.0
    x[0, h] += eps
    x[1, h] -= eps
    with torch.no_grad():
        s = model.torch_scores(x.float()).double()[:, item]
    return float((s[0] - s[1]) / (2 * eps))


def test_values_are_the_score_gradient_over_the_history(model, world):
    explainer = GradientSaliencyExplainer(model, titles=world.titles)
    user = int(np.flatnonzero(np.diff(model.train_.indptr) >= 3)[0])
    item = int(model.recommend(user, k=1)[0, 0])
    e = explainer.explain(user, item)
    history = model.train_[user].indices
    assert sorted(e.items.tolist()) == sorted(history.tolist())
    assert np.all(np.diff(e.values) <= 0) and e.method == "Gradient saliency" and e.kind == "history"
    scale = max(np.abs(e.values).max(), 1e-8)
    for h, v in zip(e.items, e.values, strict=True):
        assert v == pytest.approx(_finite_difference(model, history, item, int(h)), rel=0.02, abs=1e-3 * scale + 1e-6)


def test_batch_equals_one_by_one_and_the_suite_passes(model, world):
    explainer = GradientSaliencyExplainer(model, batch_size=2)
    users = np.flatnonzero(np.diff(model.train_.indptr) >= 2)[:5]
    pairs = [(int(u), int(model.recommend(int(u), k=2)[0, 1])) for u in users]
    many = explainer.explain_many(pairs)
    for (u, i), e in zip(pairs, many, strict=True):
        one = explainer.explain(u, i)
        assert one.items.tolist() == e.items.tolist() and np.allclose(one.values, e.values, atol=1e-7)
    check_explainer(explainer, world)


def test_needs_differentiable_scores_and_is_found_by_discovery(world):
    bare = PopularityRecommender().fit(world.train)
    with pytest.raises(TypeError, match="torch_scores"):
        GradientSaliencyExplainer(bare)
    assert GradientSaliencyExplainer.requires == {TORCH_SCORES}
    assert "Gradient saliency" not in build_explainers(bare)
    assert "Gradient saliency" in build_explainers(world.fitted(HistoryMF))
