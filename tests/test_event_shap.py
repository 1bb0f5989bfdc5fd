"""GRU4Rec sequence scoring, event-level Shapley values, sampled metrics and sequence removal."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest

from xrec_helpers.explainers.event_shap import (
    EventOrderExplainer,
    EventSHAPExplainer,
    SequenceGame,
    exact_shapley,
    occlusion,
    pruned_game,
    pruning_curve,
    pruning_index,
    sequences_csr,
    shap_package_values,
)
from xrec_helpers.metrics.sampled import sampled_ranks, target_ranks
from xrec_helpers.metrics.sequence_perturbation import sequence_removal_curves
from xrec_helpers.models.gru4rec import GRU4Rec, leave_last_out, user_sequences


@pytest.fixture(scope="module")
def fitted(ml100k):
    data = ml100k.subset_users(60, seed=1)
    seqs = user_sequences(data.ratings, data.n_users)
    train, held = leave_last_out(seqs, 2)
    model = GRU4Rec(max_len=12, epochs=1, emb_size=16, hidden_size=16, random_state=0)
    model.fit(sequences_csr(train, data.n_items), train)
    return data, model, train


def _top_unseen(model, train, u):
    s = model.score_sequences([train[u]])[0]
    s[train[u]] = -np.inf
    return int(np.argmax(s))


def _brute_shapley(value, n):
    """Average marginal contribution over all n! orderings (the textbook definition)."""
    phi = np.zeros(n)
    for perm in itertools.permutations(range(n)):
        mask = np.zeros(n)
        prev = value(mask[None])[0]
        for p in perm:
            mask[p] = 1
            cur = value(mask[None])[0]
            phi[p] += cur - prev
            prev = cur
    return phi / factorial(n)


def test_user_sequences_are_time_ordered(ml100k):
    seqs = user_sequences(ml100k.ratings, ml100k.n_users)
    r = ml100k.ratings
    u = 5
    times = r.set_index("item").loc[seqs[u][r["user"].eq(u).sum() * 0:], :]
    mine = r[r["user"] == u].set_index("item")["timestamp"]
    assert np.all(np.diff(mine.loc[seqs[u]].to_numpy()) >= 0)
    assert sum(len(s) for s in seqs) == len(r)
    assert len(times) >= 1


def test_padding_does_not_change_scores(fitted):
    _, model, train = fitted
    alone = model.score_sequences([train[0][:3]])
    batched = model.score_sequences([train[0][:3], train[1], np.array([], dtype=int)])
    np.testing.assert_allclose(alone[0], batched[0], rtol=1e-5, atol=1e-5)
    # score(users) is score_sequences of the stored training sequences.
    np.testing.assert_allclose(model.score([2])[0], model.score_sequences([train[2]])[0], rtol=1e-5, atol=1e-5)
    # Only the last max_len events are read.
    long = train[3]
    assert len(long) > model.max_len
    np.testing.assert_allclose(model.score_sequences([long])[0],
                               model.score_sequences([long[-model.max_len:]])[0], rtol=1e-5, atol=1e-5)


def test_gru_errors(fitted):
    data, model, train = fitted
    with pytest.raises(IndexError, match="Unknown item"):
        model.score_sequences([np.array([data.n_items + 3])])
    with pytest.raises(ValueError, match="time-ordered"):
        GRU4Rec().fit(sequences_csr(train, data.n_items))
    with pytest.raises(ValueError, match="fewer than"):
        leave_last_out([np.array([1, 2])], 2)


def test_exact_matches_permutation_definition_and_efficiency(fitted):
    _, model, train = fitted
    item = _top_unseen(model, train, 0)
    for baseline in ("remove", 7):
        game = SequenceGame(model, train[0], item, 5, baseline)
        phi = exact_shapley(game)
        np.testing.assert_allclose(phi, _brute_shapley(game, 5), rtol=1e-6, atol=1e-6)
        full, base = game.full_and_base()
        assert abs(phi.sum() - (full - base)) < 1e-6


def test_exact_on_additive_game_recovers_weights():
    w = np.array([0.5, -1.0, 2.0, 0.0])

    class Additive:
        n_players = 4

        def __call__(self, masks):
            return np.atleast_2d(masks) @ w + masks[:, 0] * masks[:, 1]  # one interaction, split equally

    phi = exact_shapley(Additive())
    np.testing.assert_allclose(phi, w + np.array([0.5, 0.5, 0, 0]))


def test_kernel_shap_converges_to_exact(fitted):
    _, model, train = fitted
    game = SequenceGame(model, train[1], _top_unseen(model, train, 1), 8)
    exact = exact_shapley(game)
    small = np.mean([np.linalg.norm(shap_package_values(game, 24, random_state=s) - exact) for s in range(3)])
    large = np.linalg.norm(shap_package_values(game, 2 ** 8, random_state=0) - exact)
    assert large < small
    assert large < 1e-4 * max(1.0, np.abs(exact).max())  # 2^L samples enumerate every coalition


def test_occlusion_is_leave_one_out(fitted):
    _, model, train = fitted
    item = _top_unseen(model, train, 2)
    game = SequenceGame(model, train[2], item, 4)
    x = train[2][-model.max_len:]
    direct = model.score_sequences([x])[0, item] - model.score_sequences([np.delete(x, len(x) - 4 + 1)])[0, item]
    assert occlusion(game)[1] == pytest.approx(direct, rel=1e-5, abs=1e-5)


def test_pruning_blocks_sum_to_total_and_pruned_game(fitted):
    _, model, train = fitted
    game = SequenceGame(model, train[4], _top_unseen(model, train, 4), 8)
    curve = pruning_curve(game)
    full, base = game.full_and_base()
    np.testing.assert_allclose(curve.sum(axis=1), full - base, atol=1e-5)
    keep = pruning_index(curve, tol=0.05)
    assert 0 <= keep <= 8
    pg = pruned_game(game, 3)
    phi = exact_shapley(pg)
    assert pg.n_players == 4 and abs(phi.sum() - (full - base)) < 1e-5


def test_explainer_contract_and_errors(fitted):
    data, model, train = fitted
    item = _top_unseen(model, train, 0)
    ex = EventSHAPExplainer(model, window=6, method="exact", baseline="highest", titles=data.titles())
    e = ex.explain(0, item)
    assert e.scores.sum() == pytest.approx(e.extra["gap"], abs=1e-5)
    assert "note" not in e.extra or "small" in e.extra["note"]
    with pytest.raises(ValueError, match="already in user"):
        ex.explain(0, int(train[0][0]))
    with pytest.raises(IndexError, match="Unknown user"):
        ex.explain(10_000, item)
    class Big:
        n_players = 17

    with pytest.raises(ValueError, match="2\\^17"):
        exact_shapley(Big())
    with pytest.raises(ValueError, match="max_len"):
        EventSHAPExplainer(model, window=40)
    with pytest.raises(ValueError, match="baseline"):
        EventSHAPExplainer(model, window=6, baseline="median")


def test_small_gap_gives_note_not_error(fitted):
    data, model, train = fitted
    item = _top_unseen(model, train, 0)
    # The target itself as filler is forbidden by name, but an explicit item id close in score is allowed:
    ex = EventSHAPExplainer(model, window=4, method="exact", baseline="remove", small_gap=1e9)
    e = ex.explain(0, item)
    assert "small" in e.extra["note"]


def test_ranks_against_brute_force():
    rng = np.random.default_rng(0)
    scores = rng.random((5, 30))
    targets = np.array([0, 3, 5, 7, 29])
    full = target_ranks(scores, targets)
    assert np.array_equal(full, [(scores[u] > scores[u, t]).sum() for u, t in enumerate(targets)])
    sampled = sampled_ranks(scores, targets, n_negatives=29)  # every other item: equals full ranking
    assert np.array_equal(sampled, full)
    with pytest.raises(ValueError, match="n_negatives"):
        sampled_ranks(scores, targets, n_negatives=40)


def test_sequence_removal_definitions(fitted):
    _, model, train = fitted
    pairs = [(u, _top_unseen(model, train, u)) for u in range(6)]
    recent = EventOrderExplainer(model, window=6, order="recent").explain_many(pairs)
    res = sequence_removal_curves(model, train, recent, counts=(0, 1, 2), ks=(10,))
    assert res.curves.loc[0, "DEL"] == 0.0  # nothing removed: no change
    # Removing the most recent event equals scoring the sequence without it.
    u, i = pairs[0]
    x = train[u][-model.max_len:]
    expected = model.score_sequences([x[:-1]])[0, i] - model.score_sequences([x])[0, i]
    assert res.per_user.shape[0] == 6
    single = sequence_removal_curves(model, train, recent[:1], counts=(0, 1), ks=(10,))
    assert single.curves.loc[1, "DEL"] == pytest.approx(expected, abs=1e-5)
    assert res.curves.loc[0, "POS@10"] == 1.0  # each item was the user's top unseen item
