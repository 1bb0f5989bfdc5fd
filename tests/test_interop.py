"""Titles are escaped in explanation sentences, explanations export to shap, KernelSHAP leaves the caller's RNG alone."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from xrec_helpers.data.synthetic import synthetic  # noqa: E402
from xrec_helpers.explainers.base import Explanation, markdown_escape  # noqa: E402
from xrec_helpers.explainers.event_shap import EventSHAPExplainer, sequences_csr  # noqa: E402
from xrec_helpers.explainers.kernel_shap_fm import KernelSHAPFMExplainer, kernel_shap_fm  # noqa: E402
from xrec_helpers.models.fm import FactorizationMachine, FMFeatures  # noqa: E402
from xrec_helpers.models.gru4rec import GRU4Rec, leave_last_out, user_sequences  # noqa: E402

STAR_TITLES = ["M*A*S*H (1970)", "B*A*P*S (1997)"]  # the two real ML-100K titles that contain "*"


def _markdown_html(text: str) -> str:
    """Render Markdown the way the book and JupyterLab's exporters do (nbconvert's mistune renderer)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(text)


def test_markdown_escape_round_trips_through_a_markdown_renderer():
    for title in [*STAR_TITLES, "Snake_Eyes [1998] <cut> $5 ~x~ a|b `c` back\\slash"]:
        html = _markdown_html(f"we recommend *{markdown_escape(title)}*.")
        assert "<em>M</em>" not in html
        inner = html.split("<em>", 1)[1].split("</em>", 1)[0]
        assert inner.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == title


def test_star_titles_render_verbatim_in_sentences(ml100k):
    titles = ml100k.items["title"].to_numpy()
    stars = [int(np.flatnonzero(titles == t)[0]) for t in STAR_TITLES]  # the real items, looked up by title
    e = Explanation(user=0, item=stars[0], method="test", keys=np.array([stars[1], 5]),
                    values=np.array([0.7, 0.2]), titles=titles)
    assert e.text.startswith("Because you watched *B\\*A\\*P\\*S (1997)* and ")
    html = _markdown_html(e.text)
    assert "<em>M*A*S*H (1970)</em>" in html and "<em>B*A*P*S (1997)</em>" in html
    assert "<em>M</em>" not in html and "<em>B</em>" not in html
    assert e.to_frame()["title"].iloc[0] == "B*A*P*S (1997)"  # tables keep the plain title


@pytest.fixture(scope="module")
def fm():
    d = synthetic(n_users=120, n_items=40, items_per_user=6, seed=2)
    model = FactorizationMachine(factors=4, epochs=3, negatives=1, random_state=0).fit(
        d.csr(binary=False), FMFeatures.from_dataset(d))
    titles = np.array([f"movie {i}" for i in range(d.n_items)], dtype=object)
    titles[:2] = STAR_TITLES
    return d, model, titles


def _unseen(train, user, item):
    while train[user, item] != 0:
        item += 1
    return item


def test_kernel_shap_keeps_the_callers_rng_state(fm):
    _, model, _ = fm
    np.random.seed(123)
    before = np.random.get_state()
    expected_next = np.random.random(3)
    np.random.set_state(before)
    kernel_shap_fm(model, 2, 11, nsamples=64, seed=7)
    after = np.random.get_state()
    assert after[0] == before[0] and np.array_equal(after[1], before[1]) and after[2:] == before[2:]
    assert np.array_equal(np.random.random(3), expected_next)
    # ... and its own seed still makes the estimate reproducible whatever the caller's state.
    np.random.seed(999)
    again = kernel_shap_fm(model, 2, 11, nsamples=64, seed=7)
    np.random.seed(1)
    assert np.allclose(again, kernel_shap_fm(model, 2, 11, nsamples=64, seed=7))


def test_fm_explanation_exports_to_shap(fm):
    import shap

    d, model, titles = fm
    train = d.csr(binary=False)
    user, item = 3, _unseen(train, 3, 0)
    expl = KernelSHAPFMExplainer(model, titles=titles, nsamples=256).explain(user, item)
    sv = expl.to_shap()
    assert isinstance(sv, shap.Explanation) and sv.values.ndim == 1
    labels = expl.keys.tolist()
    assert list(sv.feature_names) == labels and f"the movie {titles[item]}" in labels  # titles, not ids
    # Additive: the base value (all slots off) plus the values is the FM's prediction for the pair.
    prediction = float(model.predict_encoded(*model.features_.encode(np.array([user]), np.array([item])))[0])
    assert sv.base_values == pytest.approx(expl.base_value)
    assert sv.base_values + sv.values.sum() == pytest.approx(prediction, abs=1e-4)
    assert "<em>M</em>" not in _markdown_html(expl.text)
    shap.plots.waterfall(sv, show=False)
    plt.close("all")
    shap.plots.bar(sv, show=False)
    plt.close("all")


def test_event_explanation_exports_to_shap(ml100k):
    import shap

    data = ml100k.subset_users(40, seed=3)
    seqs = user_sequences(data.ratings, data.n_users)
    train, _ = leave_last_out(seqs, 2)
    model = GRU4Rec(max_len=10, epochs=1, emb_size=8, hidden_size=8, random_state=0)
    model.fit(sequences_csr(train, data.n_items), train)
    titles = data.items["title"].to_numpy()
    user = 0
    scores = model.score_sequences([train[user]])[0]
    scores[train[user]] = -np.inf
    item = int(np.argmax(scores))
    for prune in (None, 0.05):
        expl = EventSHAPExplainer(model, sequences=train, window=6, method="exact", titles=titles,
                                  prune_tol=prune).explain(user, item)
        sv = expl.to_shap()
        assert sv.base_values == pytest.approx(expl.base_value)
        # Exact Shapley values are efficient: base + sum = the score with the real history.
        full = float(model.score_sequences([train[user]])[0, item])
        assert sv.base_values + sv.values.sum() == pytest.approx(full, abs=1e-4)
        last = int(np.flatnonzero(expl.keys == -1)[0])
        assert sv.feature_names[last] == f"{titles[train[user][-1]]} (event -1)"
        shap.plots.waterfall(sv, show=False)
        plt.close("all")


def test_history_explanation_without_base_exports_for_the_bar_plot():
    e = Explanation(user=0, item=2, method="m", keys=np.array([0, 1]), values=np.array([0.5, -0.25]),
                    titles=np.array(STAR_TITLES + ["x"], dtype=object))
    sv = e.to_shap()
    assert sv.base_values is None and list(sv.feature_names) == STAR_TITLES
    assert np.allclose(sv.values, [0.5, -0.25])
