"""GRU4Rec with event features, Shapley values at the event, feature and cell levels, pruning, removal."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest

from xrec_helpers.data import GENRES
from xrec_helpers.data.sequences import EVENT_DTYPE, events_frame, gap_bucket, user_event_sequences
from xrec_helpers.explainers.event_shap import (
    EventOrderExplainer,
    EventSHAPExplainer,
    SequenceGame,
    SequenceSHAP,
    cell_players,
    event_players,
    event_values,
    exact_shapley,
    feature_players,
    kernel_shap,
    leave_one_out,
    older_block_value,
    pruning_curve,
    pruning_index,
    resolve_baselines,
    sequences_csr,
)
from xrec_helpers.metrics.sampled import sampled_ranks, target_ranks
from xrec_helpers.metrics.sequence_perturbation import SequenceRemoval
from xrec_helpers.models.gru4rec import FEATURES, GRU4Rec, leave_last_out, user_sequences


@pytest.fixture(scope="module")
def fitted(ml100k):
    data = ml100k.subset_users(60, seed=1)
    seqs = user_event_sequences(data.ratings, data.n_users)
    train, held = leave_last_out(seqs, 2)
    model = GRU4Rec(max_len=12, epochs=1, emb_size=16, hidden_size=16, random_state=0)
    model.fit(sequences_csr(train, data.n_items), train, item_genres=data.items[list(GENRES)].to_numpy())
    return data, model, train


def _top_unseen(model, train, u):
    s = model.score_sequences([train[u]])[0]
    s[train[u]["item"]] = -np.inf
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


def test_event_sequences_are_time_ordered_with_features(ml100k):
    seqs = user_event_sequences(ml100k.ratings, ml100k.n_users)
    r = ml100k.ratings
    u = 5
    mine = r[r["user"] == u].sort_values("timestamp", kind="stable")
    assert seqs[u].dtype == EVENT_DTYPE
    np.testing.assert_array_equal(seqs[u]["rating"], mine["rating"].to_numpy())
    assert np.isnan(seqs[u]["days"][0])
    np.testing.assert_allclose(seqs[u]["days"][1:], np.diff(mine["timestamp"].to_numpy()) / 86400.0)
    assert sum(len(s) for s in seqs) == len(r)
    # The item-only view is the same order.
    np.testing.assert_array_equal(user_sequences(r, ml100k.n_users)[u], seqs[u]["item"])
    assert gap_bucket(np.array([np.nan, 0.0, 2.0, 400.0])).tolist() == [6, 0, 3, 5]
    frame = events_frame(seqs[u][-3:], ml100k.titles(), GENRES, ml100k.items[list(GENRES)].to_numpy())
    assert list(frame.columns) == ["title", "rating you gave", "days since previous", "genres"]


def test_fit_is_reproducible_in_one_process(ml100k):
    """Two fits with the same random_state give identical weights (GRU and output layer included)."""
    data = ml100k.subset_users(30, seed=2)
    train, _ = leave_last_out(user_event_sequences(data.ratings, data.n_users), 2)
    X = sequences_csr(train, data.n_items)
    a = GRU4Rec(max_len=8, epochs=1, emb_size=8, hidden_size=8, random_state=3).fit(X, train)
    import torch

    torch.manual_seed(123)  # the global generator must not matter
    b = GRU4Rec(max_len=8, epochs=1, emb_size=8, hidden_size=8, random_state=3).fit(X, train)
    for (name, pa), (_, pb) in zip(a.net_.state_dict().items(), b.net_.state_dict().items()):
        assert torch.equal(pa, pb), name
    c = GRU4Rec(max_len=8, epochs=1, emb_size=8, hidden_size=8, random_state=4).fit(X, train)
    assert not torch.equal(a.net_.gru.weight_hh_l0, c.net_.gru.weight_hh_l0)


def test_early_stopping_keeps_best_epoch(ml100k):
    data = ml100k.subset_users(40, seed=3)
    seqs = user_event_sequences(data.ratings, data.n_users)
    train, held = leave_last_out(seqs, 2)
    X = sequences_csr(train, data.n_items)
    m = GRU4Rec(max_len=8, epochs=6, emb_size=8, hidden_size=8, patience=1, lr=0.05, random_state=0)
    m.fit(X, train, validation=(train, held[:, 0]))
    hist = m.history_
    assert {"train loss", "HR@10", "NDCG@10"} <= set(hist.columns)
    assert m.best_epoch_ == int(hist["HR@10"].idxmax())
    # The kept weights are the best epoch's: re-evaluating gives its HR@10.
    assert m.evaluate(train, held[:, 0])["HR@10"] == pytest.approx(hist["HR@10"].max())
    if m.stopped_early_:
        assert len(hist) < 6 and hist["HR@10"].iloc[-1] <= hist["HR@10"].max()


def test_padding_does_not_change_scores(fitted):
    _, model, train = fitted
    alone = model.score_sequences([train[0][:3]])
    batched = model.score_sequences([train[0][:3], train[1], train[1][:0]])
    np.testing.assert_allclose(alone[0], batched[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.score([2])[0], model.score_sequences([train[2]])[0], rtol=1e-5, atol=1e-5)
    long = train[3]
    assert len(long) > model.max_len
    np.testing.assert_allclose(model.score_sequences([long])[0],
                               model.score_sequences([long[-model.max_len:]])[0], rtol=1e-5, atol=1e-5)
    # Features matter: changing the ratings changes the scores.
    edited = train[0].copy()
    edited["rating"] = 1.0
    assert not np.allclose(model.score_sequences([edited])[0], model.score_sequences([train[0]])[0])


def test_gru_errors(fitted):
    data, model, train = fitted
    with pytest.raises(IndexError, match="Unknown item"):
        model.score_sequences([np.array([data.n_items + 3])])
    with pytest.raises(ValueError, match="time-ordered"):
        GRU4Rec().fit(sequences_csr(train, data.n_items))
    with pytest.raises(ValueError, match="fewer than"):
        leave_last_out([np.array([1, 2])], 2)
    with pytest.raises(ValueError, match="own input"):
        model.evaluate([train[0]], np.array([train[0]["item"][-1]]))
    with pytest.raises(ValueError, match="item_genres"):
        GRU4Rec(epochs=1).fit(sequences_csr(train, data.n_items), train, item_genres=np.zeros((3, 2)))


def test_average_event_game_replaces_cells(fitted):
    """The all-absent coalition scores the input with every event set to the average event."""
    _, model, train = fitted
    item = _top_unseen(model, train, 0)
    game = SequenceGame(model, train[0], item, baseline="average")
    tokens, dense, lengths = model.encode([train[0]])
    tokens[0, 1:lengths[0] + 1] = model.average_token
    dense[0, 1:lengths[0] + 1] = model.baseline_dense_
    expected = model.score_encoded(tokens, dense, lengths, items=[item])[0, 0]
    assert game.full_and_base()[1] == pytest.approx(expected, abs=1e-5)
    assert game.full_and_base()[0] == pytest.approx(model.score_sequences([train[0]])[0, item], abs=1e-5)


@pytest.mark.parametrize("baseline", ["remove", "average", 7])
def test_exact_matches_permutation_definition_and_efficiency(fitted, baseline):
    _, model, train = fitted
    item = _top_unseen(model, train, 0)
    game = SequenceGame(model, train[0], item, window=4, baseline=baseline)
    assert game.n_players == 5  # 4 events + the older block
    phi = exact_shapley(game)
    np.testing.assert_allclose(phi, _brute_shapley(game, 5), rtol=1e-6, atol=1e-6)
    full, base = game.full_and_base()
    assert abs(phi.sum() - (full - base)) < 1e-6


def test_levels_partition_cells_and_share_the_total(fitted):
    _, model, train = fitted
    item = _top_unseen(model, train, 1)
    sh = SequenceSHAP(model, baseline="average", method="exact", prune_tol=None)
    n = min(len(train[1]), model.max_len)
    ev = sh.event_level(train[1], item, keep=5)
    ft = sh.feature_level(train[1], item, keep=5)
    ce = sh.cell_level(train[1], item, keep=5, top_events=2, top_features=2, events=ev, features=ft)
    assert ev.total == pytest.approx(ft.total, abs=1e-6) == pytest.approx(ce.total, abs=1e-6)
    for level in (ev, ft, ce):
        assert level.efficiency_gap < 1e-6, level.level
    assert len(ft.values) == len(FEATURES) + 1 and ft.labels[0].startswith("older events")
    # The cell game's players: 2x2 cells, 2 event rests, 2 feature rests, the rest, the pruned block.
    assert len(ce.values) == 4 + 2 + 2 + 1 + 1
    grid = ce.grid()
    assert grid.shape == (4, 4) and np.isclose(np.nansum(grid.to_numpy()), ce.total)
    masks, _ = cell_players(n, 5, ce.top_events, ce.top_features)
    assert np.array_equal(np.sum(masks, axis=0), np.ones((n, len(FEATURES))))
    # The bar chart draws the top n players plus one "others" bar, so its bars add up to the total.
    ax = ev.plot(n=3)
    heights = np.array([p.get_width() for p in ax.patches])
    assert len(heights) == 4 and "other players" in ax.get_yticklabels()[0].get_text()
    assert heights.sum() == pytest.approx(ev.total, abs=1e-6)
    assert len(ft.plot(n=12).patches) == len(ft.values)  # all players fit: no "others" bar
    with pytest.raises(ValueError, match="whole events"):
        SequenceGame(model, train[1], item, baseline="remove", players=feature_players(n, 5)[0])
    with pytest.raises(ValueError, match="partition"):
        SequenceGame(model, train[1], item, players=event_players(n, 3)[0][1:])


def test_feature_level_on_an_additive_game_recovers_weights():
    w = np.array([0.5, -1.0, 2.0, 0.0])

    class Additive:
        n_players = 4

        def __call__(self, masks):
            return np.atleast_2d(masks) @ w + masks[:, 0] * masks[:, 1]  # one interaction, split equally

    np.testing.assert_allclose(exact_shapley(Additive()), w + np.array([0.5, 0.5, 0, 0]))


def test_kernel_shap_converges_to_exact(fitted):
    _, model, train = fitted
    game = SequenceGame(model, train[1], _top_unseen(model, train, 1), window=7, baseline="average")
    exact = exact_shapley(game)
    small = np.mean([np.linalg.norm(kernel_shap(game, 24, random_state=s) - exact) for s in range(3)])
    large = np.linalg.norm(kernel_shap(game, 2 ** 8, random_state=0) - exact)
    assert large < small
    assert large < 1e-4 * max(1.0, np.abs(exact).max())  # 2^n samples enumerate every coalition


def test_leave_one_out_deletes_one_event(fitted):
    _, model, train = fitted
    item = _top_unseen(model, train, 2)
    game = SequenceGame(model, train[2], item, window=4, baseline="remove")
    x = train[2][-model.max_len:]
    direct = model.score_sequences([x])[0, item] - model.score_sequences([np.delete(x, len(x) - 4 + 1)])[0, item]
    assert leave_one_out(game)[2] == pytest.approx(direct, rel=1e-5, abs=1e-5)  # player 0 is the older block


def test_pruning_rule():
    import pandas as pd

    # Total 1; the older block is small for t >= 3 except a chance dip at t = 1.
    older = np.array([1.0, 0.0, 0.5, 0.04, 0.02, 0.0])
    curve = pd.DataFrame({"older block": older, "recent block": 1 - older})
    assert pruning_index(curve, tol=0.05) == 3  # "stays under", not "first dips under" (t = 1)
    assert pruning_index(curve, tol=0.0) == 5
    with pytest.raises(ValueError):
        pruning_index(curve, tol=-1)


def test_pruning_blocks_sum_to_total(fitted):
    _, model, train = fitted
    game = SequenceGame(model, train[4], _top_unseen(model, train, 4), baseline="average")
    curve = pruning_curve(game)
    full, base = game.full_and_base()
    np.testing.assert_allclose(curve.sum(axis=1), full - base, atol=1e-5)
    assert curve["older block"].iloc[-1] == pytest.approx(0.0, abs=1e-9)  # nothing older than everything
    sh = SequenceSHAP(model, prune_tol=0.2)
    pr = sh.prune(train[4], _top_unseen(model, train, 4))
    assert abs(pr.older_value) <= 0.2 * abs(pr.total) + 1e-9
    assert pr.keep + pr.pruned == pr.n_events


def test_resolve_baselines_are_distinct(fitted):
    _, model, train = fitted
    for u in range(10):
        item = _top_unseen(model, train, u)
        b = resolve_baselines(model, train[u], item)
        items = [b[k] for k in ("popular", "lowest", "highest")]
        assert len(set(items)) == 3 and item not in items
        assert b["remove"] == "remove" and b["average"] == "average"


def test_explainer_contract_and_errors(fitted):
    data, model, train = fitted
    item = _top_unseen(model, train, 0)
    ex = EventSHAPExplainer(model, window=6, method="exact", baseline="highest", titles=data.titles())
    e = ex.explain(0, item)
    assert e.kind == "events" and e.method == "Exact Shapley (events)"
    full = float(model.score_sequences([model.sequences_[0]])[0, item])
    assert e.base_value + e.values.sum() == pytest.approx(full, abs=1e-5)  # efficient, older block included
    values = event_values(e)
    assert list(values.index) == list(range(-6, 0))  # the window's events, oldest first
    assert values.sum() + older_block_value(e) == pytest.approx(e.values.sum(), abs=1e-9)
    x = model.sequences_[0][-model.max_len:]
    assert sorted(e.keys.tolist()) == list(range(-7, 0))  # the older block is the position before the window
    assert all(e.events[j] == x["item"][k] for j, k in enumerate(e.keys) if k >= -6)
    assert e.model_calls == 2 ** 7 + 2 and e.labels[list(e.keys).index(-7)].startswith("older events")
    with pytest.raises(ValueError, match="already in user"):
        ex.explain(0, int(train[0]["item"][0]))
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
    with pytest.raises(TypeError, match="score_sequences"):
        from xrec_helpers.models.popularity import PopularityRecommender

        EventSHAPExplainer(PopularityRecommender().fit(model.train_))
    pruned = EventSHAPExplainer(model, window=6, method="exact", baseline="average", prune_tol=0.1).explain(0, item)
    assert len(event_values(pruned)) <= 6
    assert pruned.base_value + pruned.values.sum() == pytest.approx(full, abs=1e-5)
    s = model.score_sequences([train[0]])[0]
    s[train[0]["item"]] = -np.inf
    top2 = [int(i) for i in np.argsort(-s)[:2]]
    pair = ex.explain(0, top2)  # the mean score of a frozen set of items
    assert list(pair.targets) == top2
    g = ex.game(0, top2)
    assert g.full_and_base()[0] == pytest.approx(s[top2].mean(), abs=1e-5)
    loo = EventSHAPExplainer(model, window=6, method="loo").explain(0, item)
    assert loo.method == "LOO (events)" and loo.base_value is None  # not additive


def test_small_gap_note_appears_only_when_the_gap_is_small(fitted):
    _, model, train = fitted
    item = _top_unseen(model, train, 0)
    noted = EventSHAPExplainer(model, window=4, method="exact", baseline="remove", small_gap=1e9).explain(0, item)
    assert noted.note is not None and "is small" in noted.note  # fails if the note is absent
    plain = EventSHAPExplainer(model, window=4, method="exact", baseline="remove", small_gap=0.0).explain(0, item)
    assert plain.note is None


def test_level_attribution_converts_to_an_explanation(fitted):
    data, model, train = fitted
    item = _top_unseen(model, train, 1)
    sh = SequenceSHAP(model, baseline="average", method="exact", prune_tol=None)
    ev = sh.event_level(train[1], item, keep=5)
    e = ev.to_explanation(1, titles=data.titles())
    assert e.kind == "events" and sorted(e.keys.tolist()) == list(range(-6, 0))
    assert e.base_value + e.values.sum() == pytest.approx(ev.full_value, abs=1e-6)
    assert older_block_value(e) == pytest.approx(ev.values[0])
    ft = sh.feature_level(train[1], item, keep=5).to_explanation(1)
    assert ft.kind == "features" and set(FEATURES) <= set(ft.keys.tolist())


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
    recent = EventOrderExplainer(model, sequences=train, window=6, order="recent").explain_many(pairs)
    protocol = SequenceRemoval(sequences=train, counts=(0, 1, 2), ks=(10,))
    res = protocol.evaluate(model, recent)
    assert res.curves.loc[0, "ΔDEL"] == 0.0  # nothing removed: no change
    assert res.metric("ΔDEL").higher_is_better is False and "DEL" not in [m.name for m in res.metrics]
    u, i = pairs[0]
    x = train[u][-model.max_len:]
    expected = model.score_sequences([x[:-1]])[0, i] - model.score_sequences([x])[0, i]
    assert res.per_explanation.shape[0] == 6 and set(res.per_explanation["method"]) == {"Most recent first"}
    single = SequenceRemoval(sequences=train, counts=(0, 1), ks=(10,)).evaluate(model, recent[:1])
    assert single.curves.loc[1, "ΔDEL"] == pytest.approx(expected, abs=1e-5)
    assert res.curves.loc[0, "POS@10"] == 1.0  # each item was the user's top unseen item
    popular = EventOrderExplainer(model, sequences=train, window=6, order="popular").explain(*pairs[0])
    freq = model.item_frequency_[popular.events]
    assert np.all(np.diff(freq) <= 0)  # most popular first
    with pytest.raises(TypeError, match="score_sequences"):
        from xrec_helpers.models.popularity import PopularityRecommender

        protocol.evaluate(PopularityRecommender().fit(model.train_), recent)


def test_pruning_costs_four_calls_per_t(fitted):
    _, model, train = fitted
    pr = SequenceSHAP(model, prune_tol=0.2).prune(train[4], _top_unseen(model, train, 4))
    assert pr.n_evals == 4 * (pr.n_events + 1)  # the cost notebook 04 states


def test_cell_level_both_signs_on_the_model(fitted):
    _, model, train = fitted
    item = _top_unseen(model, train, 1)
    sh = SequenceSHAP(model, baseline="average", method="exact", prune_tol=None)
    ev = sh.event_level(train[1], item, keep=6)
    ft = sh.feature_level(train[1], item, keep=6)
    ce = sh.cell_level(train[1], item, keep=6, top_events=2, top_features=1, events=ev, features=ft, both_signs=True)
    ev_vals = {k[1]: v for k, v in zip(ev.keys, ev.values) if k[0] == "event"}
    chosen = ce.top_events
    if min(ev_vals.values()) < 0 < max(ev_vals.values()):  # both signs exist: one of each is chosen
        assert max(ev_vals, key=ev_vals.get) in chosen and min(ev_vals, key=ev_vals.get) in chosen
    assert ce.efficiency_gap < 1e-6
    grid = ce.grid()
    assert grid.columns[-1].startswith("all features") and np.isfinite(grid.iloc[-1, -1])  # the older block
    assert grid.iloc[-1, :-1].isna().all()


def test_short_title_keeps_the_year():
    from xrec_helpers.explainers.event_shap import short_title

    long = "When the Cats Away (Chacun cherche son chat) (1996) "
    out = short_title(long, 30)
    assert len(out) <= 30 and out.endswith("(1996)") and "…" in out
    assert short_title("Kolya (1996)", 30) == "Kolya (1996)"


def test_leave_one_out_with_deletion_is_the_first_removal_step(fitted):
    _, model, train = fitted
    pairs = [(u, _top_unseen(model, train, u)) for u in range(5)]
    loo = EventSHAPExplainer(model, sequences=train, window=6, method="loo", baseline="remove").explain_many(pairs)
    rand = EventOrderExplainer(model, sequences=train, window=6, order="random").explain_many(pairs)
    protocol = SequenceRemoval(sequences=train, counts=(1,), ks=(10,))
    a, b = protocol.evaluate(model, loo), protocol.evaluate(model, rand)
    for e, drop in zip(loo, a.per_explanation["ΔDEL"], strict=True):
        assert drop == pytest.approx(-event_values(e).max(), abs=1e-5)
    assert (a.per_explanation["ΔDEL"].to_numpy() <= b.per_explanation["ΔDEL"].to_numpy() + 1e-5).all()


def test_column_heatmap_scales_each_column():
    import pandas as pd

    from xrec_helpers.plotting import plot_column_heatmap

    frame = pd.DataFrame({"small": [0.01, -0.02], "large": [5.0, 1.0]}, index=["a", "b"])
    ax = plot_column_heatmap(frame, title="t", xlabel="x", ylabel="y")
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown, [[0.5, 1.0], [-1.0, 0.2]])
    assert ax.get_xlabel() == "x" and ax.figure.axes[-1].get_ylabel().startswith("value")
