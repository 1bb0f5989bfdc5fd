"""The "Why this recommendation?" explorer: the logic layer against reference computations, and the widget."""

from __future__ import annotations

import html

import numpy as np
import pytest
import scipy.sparse as sp

from xrec_helpers.explainers.baselines import JaccardExplainer, RandomExplainer
from xrec_helpers.explorer import ExplorerPanel, ExplorerState, default_explainers
from xrec_helpers.models.als import ALS
from xrec_helpers.models.bpr import BPRMF
from xrec_helpers.models.history_mf import HistoryMF


@pytest.fixture(scope="module")
def small(ml100k):
    data = ml100k.subset_users(120, seed=1)
    model = HistoryMF(factors=16, epochs=4, random_state=0).fit(data.csr(data.ratings))
    return data, model


@pytest.fixture()
def state(small):
    data, model = small
    return ExplorerState(data, model, k=10, n_remove=3)


def _reference_top(model, history, original, k):
    """Top-k by hand: score the edited history, rank outside the original history."""
    x = np.zeros((1, model.n_items), dtype=np.float32)
    x[0, history] = 1
    scores = model.score_histories(x)[0].astype(np.float64)
    scores[original] = -np.inf
    return np.argsort(-scores, kind="stable")[:k]


def test_recommendations_match_the_model(state, small):
    data, model = small
    raw = data.users["raw_id"].iloc[5]
    user = state.select_user(raw)
    assert user == 5 and state.raw_user == raw
    table = state.recommendations()
    assert list(table.index) == list(range(1, 11))
    assert np.array_equal(table["item"].to_numpy(), model.recommend(user, 10)[0])
    assert list(table["title"]) == list(data.titles(table["item"]))
    assert not set(table["item"]) & set(state.history())
    assert (np.diff(table["score"].to_numpy()) <= 0).all()


def test_user_labels_show_raw_id_age_and_occupation(state, small):
    data, _ = small
    options = state.user_options()
    assert len(options) == data.n_users  # every user of the subset has ratings
    label, raw = options[3]
    row = data.users.iloc[3]
    assert raw == row["raw_id"]
    assert f"User {row['raw_id']}" in label and str(row["age"]) in label and row["occupation"] in label


def test_explain_uses_the_chosen_explainer_and_rank(state):
    state.select_explainer("Jaccard")
    third = int(state.recommendations()["item"].iloc[2])
    expl = state.explain(3)
    assert expl.method == "Jaccard" and expl.item == third and expl.user == state.user
    ref = state.explainers["Jaccard"].explain(state.user, third)
    assert np.array_equal(expl.items, ref.items)
    assert set(expl.items) == set(state.history())


def test_remove_blamed_matches_a_manual_counterfactual(state, small):
    _, model = small
    state.select_user(state.user_options()[7][1])
    state.select_explainer("Cosine")
    expl = state.explain(1)
    history_before = state.history().copy()
    check = state.remove_blamed(expl, n=4)
    assert np.array_equal(check.removed, expl.items[:4])
    kept = np.setdiff1d(history_before, check.removed)
    expected = _reference_top(model, kept, history_before, 10)
    assert np.array_equal(check.after["item"].to_numpy(), expected)
    assert np.array_equal(check.before["item"].to_numpy(), state.recommendations()["item"].to_numpy())
    x = np.zeros((1, model.n_items), dtype=np.float32)
    x[0, kept] = 1
    assert check.score_after == pytest.approx(float(model.score_histories(x)[0, expl.item]), rel=1e-6)
    assert check.rank_before == 1
    assert check.dropped_out == (check.rank_after > 10)
    assert check.list_changed == (list(check.before["item"]) != list(expected))
    # The stored history is untouched: every press starts from what the user really watched.
    assert np.array_equal(state.history(), history_before)
    assert set(check.after["item"]).isdisjoint(history_before)
    assert "re-scored, not retrained" in check.summary()
    assert all(str(t) in check.summary() for t in state.titles[check.removed])


def test_removing_all_positive_evidence_moves_the_item_down_for_als(ml100k):
    """ALS explain is offered for an ALS model; removing its top contributors lowers the folded-in score."""
    data = ml100k.subset_users(150, seed=2)
    model = ALS(factors=16, iterations=8, random_state=0).fit(data.csr(data.ratings))
    state = ExplorerState(data, model)
    assert list(state.explainers) == ["Random", "Popularity", "Jaccard", "Cosine", "ALS explain"]
    state.select_explainer("ALS explain")
    drops = []
    for _, raw in state.user_options()[:8]:
        state.select_user(raw)
        expl = state.explain(1)
        check = state.remove_blamed(expl, n=min(5, len(state.history()) - 1))
        drops.append(check.score_before - check.score_after)
    assert np.mean(np.array(drops) > 0) >= 0.75, drops


def test_history_mf_gets_the_four_baselines(small):
    _, model = small
    assert list(default_explainers(model)) == ["Random", "Popularity", "Jaccard", "Cosine"]


def test_clear_errors(state, small, ml100k):
    data, model = small
    with pytest.raises(KeyError, match="user_options"):
        state.select_user(10**9)
    with pytest.raises(ValueError, match="choose one of"):
        state.select_explainer("Oracle")
    for bad in (0, 11, 2.0):
        with pytest.raises(ValueError, match="rank="):
            state.explain(bad)
    expl = state.explain(1)
    with pytest.raises(ValueError, match="empty this user's history|explanation ranks"):
        state.remove_blamed(expl, n=len(state.history()))
    with pytest.raises(ValueError, match="positive integer"):
        state.remove_blamed(expl, n=0)
    other = state.user_options()[1][1]
    state.select_user(other)
    with pytest.raises(ValueError, match="another user"):
        state.remove_blamed(expl, n=1)
    with pytest.raises(ValueError, match="k=0"):
        ExplorerState(data, model, k=0)
    with pytest.raises(ValueError, match="dataset the model was fitted on"):
        ExplorerState(ml100k, model)
    with pytest.raises(TypeError, match="history-conditioned"):
        ExplorerState(data, BPRMF(factors=4, epochs=1).fit(data.csr(data.ratings)))
    shuffled = data.csr(data.ratings)[np.roll(np.arange(data.n_users), 1)]
    with pytest.raises(ValueError, match="different histories"):
        ExplorerState(data, model, explainers={"Random": RandomExplainer(shuffled)})


def test_empty_history_user_is_refused(small):
    data, _ = small
    X = data.csr(data.ratings).tolil()
    X[4, :] = 0
    X = sp.csr_matrix(X)
    X.eliminate_zeros()
    model = HistoryMF(factors=8, epochs=1, random_state=0).fit(X)
    state = ExplorerState(data, model, explainers={"Jaccard": JaccardExplainer(X, data.titles())})
    assert data.users["raw_id"].iloc[4] not in [raw for _, raw in state.user_options()]
    with pytest.raises(ValueError, match="empty history"):
        state.select_user(data.users["raw_id"].iloc[4])


def test_panel_builds_and_reacts(state):
    panel = ExplorerPanel(state)
    assert panel.top_html.value.count("<li") == 10
    first_title = state.recommendations()["title"].iloc[0]
    assert bytes(panel.plot_image.value[:8]) == b"\x89PNG\r\n\x1a\n"
    assert panel.explanation.method in panel.sentence_html.value
    assert panel.explanation.item == state.recommendations()["item"].iloc[0]
    assert html.escape(first_title) in panel.sentence_html.value
    assert "<li" not in panel.after_html.value

    panel.explainer_picker.value = "Popularity"
    assert panel.explanation.method == "Popularity" and "Popularity" in panel.sentence_html.value

    panel.n_picker.value = 2
    panel.remove_button.click()
    assert panel.check is not None and len(panel.check.removed) == 2
    assert panel.after_html.value.count("<li") == 10
    assert "xrec-verdict" in panel.message_html.value

    panel.rank_picker.value = 4
    assert panel.explanation.item == state.recommendations()["item"].iloc[3]
    assert panel.check is None and "<li" not in panel.after_html.value  # a new explanation resets the check

    new_user = state.user_options()[10][1]
    panel.user_picker.value = new_user
    assert state.raw_user == new_user
    assert all(html.escape(t) in panel.top_html.value for t in state.recommendations()["title"])
    assert panel.n_picker.max <= len(state.history()) - 1
