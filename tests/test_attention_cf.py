"""ACCENT's attention baselines on RCF (06_accent): order, the re-scored flip, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_rcf import planted
from xrec_helpers.explainers.attention_cf import AttentionExplainer, PureAttentionExplainer, attention_explainers
from xrec_helpers.models.ncf import NCF
from xrec_helpers.testing import tiny_world


def test_pure_attention_takes_a_prefix_of_the_attention_order_and_its_flip_holds():
    model, _, _, _ = planted()
    found = 0
    for user in range(6):
        item = int(model.recommend(user, 1)[0, 0])
        pure = PureAttentionExplainer(model, k=5)
        e = pure.explain(user, item)
        keys, w = pure.weights(user, item)
        order = keys[np.argsort(-w, kind="stable")]
        assert e.keys.tolist() == order.tolist()  # values are the attention weights, best first
        np.testing.assert_allclose(np.sort(e.values)[::-1], np.sort(w)[::-1])
        cf = e.counterfactual
        if cf.found:
            found += 1
            assert cf.items.tolist() == order[:cf.size].tolist()
            topk = model.recommend(user, 5)[0]
            s = model.score_without(user, cf.items, topk)
            assert s[topk.tolist().index(cf.replacement)] > s[0]
            assert cf.predicted_gap < 0
        a = AttentionExplainer(model, k=5).explain(user, item)
        if a.counterfactual.found:
            rank = {int(j): r for r, j in enumerate(order)}
            assert [rank[int(j)] for j in a.counterfactual.items] == sorted(rank[int(j)] for j in a.counterfactual.items)
            s = model.score_without(user, a.counterfactual.items, model.recommend(user, 5)[0])
            assert s[1:].max() > s[0]
    assert found >= 1


def test_attention_explainers_refuse_bad_input():
    model, train, _, _ = planted()
    with pytest.raises(TypeError, match="item_attention"):
        PureAttentionExplainer(NCF(factors=4, epochs=1).fit(tiny_world().train))
    with pytest.raises(ValueError, match="k="):
        AttentionExplainer(model, k=1)
    user = 0
    top = model.recommend(user, 2)[0]
    with pytest.raises(ValueError, match="not user 0's top item"):
        AttentionExplainer(model, k=3).explain(user, int(top[1]))
    with pytest.raises(ValueError, match="exceeds user 0's"):
        AttentionExplainer(model, k=model.n_items).explain(user, int(top[0]))
    with pytest.raises(ValueError, match="already in user"):
        AttentionExplainer(model).explain(user, int(train[user].indices[0]))
    assert set(attention_explainers(model, ks=(3, 5))) == {("pure attention", 3), ("pure attention", 5),
                                                           ("attention", 3), ("attention", 5)}


def one_at_a_time(model, user: int, item: int, k: int, pure: bool) -> tuple[list[int], int | None, int]:
    """The greedy search of the attention baselines, re-scoring one candidate at a time (the reference)."""
    keys, w = PureAttentionExplainer(model, k=k).weights(user, item)
    topk = model.recommend(user, k)[0]
    s = model.score_without(user, [], topk)
    gap, removed, calls = s[0] - s[1:].max(), [], 1
    for j in keys[np.argsort(-w, kind="stable")]:
        trial = model.score_without(user, [*removed, int(j)], topk)
        calls += 1
        new_gap = trial[0] - trial[1:].max()
        if not pure and new_gap >= gap:
            continue
        removed.append(int(j))
        gap = new_gap
        if gap < 0:
            return removed, int(topk[1 + int(np.argmax(trial[1:]))]), calls
    return [], None, calls


def test_batched_greedy_searches_decide_as_one_at_a_time():
    model, _, _, _ = planted()
    found = 0
    for user in range(12):
        item = int(model.recommend(user, 1)[0, 0])
        for cls in (PureAttentionExplainer, AttentionExplainer):
            for k in (3, 5):
                e = cls(model, k=k).explain(user, item)
                items, replacement, calls = one_at_a_time(model, user, item, k, cls.pure)
                assert e.counterfactual.items.tolist() == items
                assert e.counterfactual.replacement == replacement
                assert e.model_calls == calls
                found += e.counterfactual.found
    assert found >= 4
