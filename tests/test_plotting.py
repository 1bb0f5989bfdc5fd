"""plot_explanation shows both signs: the strongest evidence against a recommendation is never cut off."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.plotting import plot_explanation


def _explanation(scores, **fields):
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="stable")  # explanations list their items most explanatory first
    titles = np.array([f"T{i}" for i in range(len(scores) + 1)], dtype=object)
    return Explanation(user=0, item=len(scores), method="M", keys=np.arange(len(scores))[order],
                       values=scores[order], titles=titles, **fields)


def _bars(ax):
    labels = [t.get_text() for t in ax.get_yticklabels()]
    return dict(zip(labels, (p.get_width() for p in ax.patches), strict=True))


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_the_strongest_opposing_entry_is_shown():
    # Twelve small positive entries and one large negative one: the head of the list would drop T12.
    scores = [0.1 + 0.01 * i for i in range(12)] + [-5.0]
    bars = _bars(plot_explanation(_explanation(scores), n=6))
    assert len(bars) == 6 and bars["T12"] == -5.0
    assert bars["T11"] == pytest.approx(0.21), "the strongest supporting entry is shown too"
    # Largest value on top: matplotlib draws the first bar at the bottom.
    widths = list(bars.values())
    assert widths == sorted(widths)


def test_each_sign_gets_half_and_leaves_the_rest_to_the_other():
    scores = [3, 2, 1, 0.5, -0.1, -0.2, -0.3, -4]
    bars = _bars(plot_explanation(_explanation(scores), n=4))
    assert sorted(bars.values()) == [-4, -0.3, 2, 3]
    bars = _bars(plot_explanation(_explanation([3, 2, 1, 0.5, -1]), n=4))  # one negative: three positives
    assert sorted(bars.values()) == [-1, 1, 2, 3]
    bars = _bars(plot_explanation(_explanation([-1, -2, -3, -4, 0.5]), n=3))
    assert sorted(bars.values()) == [-4, -3, 0.5]
    assert len(_bars(plot_explanation(_explanation([1, -1]), n=10))) == 2


def test_colours_and_the_additive_annotation():
    scores = [2.0, 1.0, -0.5, 0.25, -3.0]
    ax = plot_explanation(_explanation(scores, base_value=0.5), n=2, xlabel="change in score")
    colours = {round(p.get_width(), 3): p.get_facecolor()[:3] for p in ax.patches}
    assert set(colours) == {2.0, -3.0} and colours[2.0] != colours[-3.0]
    title = ax.get_title()
    assert "base +0.500" in title and "shown -1.000" in title and "not shown +0.750" in title
    assert "total +0.250" in title  # 0.5 + (2 + 1 - 0.5 + 0.25 - 3)
    assert ax.get_xlabel() == "change in score"
    assert "base" not in plot_explanation(_explanation(scores), n=10).get_title()  # non-additive: no annotation


def test_explanation_plot_uses_it():
    ax = _explanation([0.1] * 12 + [-5.0]).plot(n=4)
    assert "T12" in _bars(ax)


def test_the_title_says_against_only_when_a_negative_bar_is_shown():
    assert "strongest for and against" in plot_explanation(_explanation([3, 2, 1, -1]), n=2).get_title()
    ax = plot_explanation(_explanation([3, 2, 1, 0.5]), n=2)
    assert "strongest (none against)" in ax.get_title() and "red opposes" not in ax.get_xlabel()


def test_feature_and_event_explanations_are_drawn_with_their_labels():
    feats = Explanation(user=0, item=1, method="M", keys=["genre Drama", "age 25-34"], values=[0.4, -0.1],
                        kind="features", base_value=1.0)
    bars = _bars(plot_explanation(feats))
    assert bars == {"age 25-34": -0.1, "genre Drama": 0.4} and "base +1.000" in plt.gca().get_title()
    titles = np.array(["A", "B", "C"], dtype=object)
    events = Explanation(user=0, item=2, method="M", keys=[-1, -2], values=[0.3, 0.1], kind="events",
                         events=[0, 1], titles=titles)
    assert set(_bars(plot_explanation(events))) == {"A (event -1)", "B (event -2)"}
