"""The interactive "Why this recommendation?" explorer: pick a user, read the top-10, explain one, remove the blame.

Taught in apps/why_this_recommendation (the Voilà demo) and usable in any notebook. Two layers:

* :class:`ExplorerState` is plain Python (no widgets): it maps raw user ids to histories, ranks the
  top-k with the model's ``score_histories``, asks an :class:`~xrec_helpers.explainers.base.Explainer`
  why, and runs the *live counterfactual check*: drop the N most-blamed history items, re-score the
  edited history without retraining and compare the two top-k lists. Unit tests drive this layer.
* :class:`ExplorerPanel` is a thin ipywidgets view that only calls the state and renders its answers.

It sits at the right end of the dependency chain (data -> models -> explainers -> metrics -> plotting
-> explorer), so it may import from all of them. Learners only ever see titles and raw user ids.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.data.dataset import Dataset
from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.explainers.baselines import (
    CosineExplainer,
    JaccardExplainer,
    PopularityExplainer,
    RandomExplainer,
)
from xrec_helpers.models.base import HistoryRecommender


def default_explainers(model: HistoryRecommender, titles: np.ndarray | None = None,
                       random_state: int = 0) -> dict[str, Explainer]:
    """The explainers the panel offers for ``model``: the four baselines, plus ALS explain for an ALS model.

    Taught in apps/why_this_recommendation. Similarities come from the model's own training matrix,
    so explainer and model agree on every user's history. ALS explain needs the ALS normal equations,
    so it is offered only when the model *is* an :class:`~xrec_helpers.models.als.ALS`.
    """
    train = model._fitted()
    explainers: dict[str, Explainer] = {
        "Random": RandomExplainer(train, titles, random_state=random_state),
        "Popularity": PopularityExplainer(train, titles),
        "Jaccard": JaccardExplainer(train, titles),
        "Cosine": CosineExplainer(train, titles),
    }
    from xrec_helpers.models.als import ALS  # imported here: only needed (and meaningful) for ALS models

    if isinstance(model, ALS):
        from xrec_helpers.explainers.als_explain import ALSExplainer

        explainers["ALS explain"] = ALSExplainer(model, titles)
    return explainers


@dataclass
class CounterfactualCheck:
    """What happened to the top-k when the blamed history items were removed.

    Taught in apps/why_this_recommendation. ``before``/``after`` are top-k tables (rank, title, score);
    ranks are among items outside the *original* history, so a removed item never re-enters the list
    (the convention of :func:`xrec_helpers.metrics.counterfactual.perturbation_curves`).

    Attributes:
        item: the explained recommendation (internal id).
        removed: the history items that were removed (internal ids), most blamed first.
        before, after: top-k tables with titles, before and after the removal.
        rank_before, rank_after: 1-based rank of ``item`` before and after.
        score_before, score_after: the model's score of ``item`` before and after.
        k: the list length.
    """

    item: int
    removed: np.ndarray
    before: pd.DataFrame
    after: pd.DataFrame
    rank_before: int
    rank_after: int
    score_before: float
    score_after: float
    k: int
    titles: np.ndarray | None = None

    @property
    def dropped_out(self) -> bool:
        """True when the explained item left the top-k: the explanation passed the check for this pair."""
        return self.rank_after > self.k

    @property
    def list_changed(self) -> bool:
        """True when the top-k (items or their order) differs after the removal."""
        return list(self.before["item"]) != list(self.after["item"])

    def summary(self) -> str:
        """One sentence with titles: what was removed and where the recommendation went."""
        name = (lambda i: str(self.titles[i])) if self.titles is not None else (lambda i: f"item {i}")
        names = [f"*{name(i)}*" for i in self.removed]
        removed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        move = (f"stays at #{self.rank_before}" if self.rank_after == self.rank_before
                else f"moves from #{self.rank_before} to #{self.rank_after}")
        verdict = (f"it left the top-{self.k}" if self.dropped_out
                   else f"it is still in the top-{self.k}: removing these alone does not undo it")
        return (f"Without {removed} (re-scored, not retrained), *{name(self.item)}* {move} "
                f"(score {self.score_before:.3f} → {self.score_after:.3f}); {verdict}.")


class ExplorerState:
    """The logic behind the panel: one user at a time, one explainer at a time.

    Taught in apps/why_this_recommendation.

    Args:
        data: the dataset the model was trained on (titles, raw user ids, user table).
        model: a fitted history-conditioned recommender; its ``train_`` rows are the users' histories.
        explainers: name -> explainer built on the same training matrix (default: :func:`default_explainers`).
        k: length of the recommendation list.
        n_remove: default number of blamed items removed by :meth:`remove_blamed`.
    """

    def __init__(self, data: Dataset, model: HistoryRecommender, explainers: Mapping[str, Explainer] | None = None,
                 k: int = 10, n_remove: int = 3):
        if not isinstance(model, HistoryRecommender):
            raise TypeError(f"The explorer needs a history-conditioned recommender (score_histories), got "
                            f"{type(model).__name__}: use HistoryMF, ALS or another HistoryRecommender.")
        train = model._fitted()
        if train.shape != (data.n_users, data.n_items):
            raise ValueError(f"The model was trained on a {train.shape} matrix but the dataset has "
                             f"{(data.n_users, data.n_items)} users x items: pass the dataset the model was fitted on.")
        if not 1 <= k <= data.n_items:
            raise ValueError(f"k={k} must be between 1 and the catalogue size {data.n_items}.")
        self.data, self.model, self.k = data, model, int(k)
        self.titles = data.titles()
        self.explainers = dict(explainers) if explainers is not None else default_explainers(model, self.titles)
        if not self.explainers:
            raise ValueError("No explainers given: pass at least one, or None for the default four baselines.")
        for name, explainer in self.explainers.items():
            if explainer.train.shape != train.shape or (explainer.train != train).nnz:
                raise ValueError(f"Explainer {name!r} reads different histories from the model's training matrix: "
                                 "build it on model.train_ so both agree on what the user watched.")
        self.n_remove = self._check_n_remove(n_remove)
        self.explainer_name = next(iter(self.explainers))
        self.user: int | None = None  # internal id of the selected user
        options = self.user_options()
        if not options:
            raise ValueError("No user has a history: the model was trained on an empty matrix.")
        self.select_user(options[0][1])

    # --- users ------------------------------------------------------------------------------------
    def user_label(self, user: int) -> str:
        """A learner-facing label: raw id, age, occupation, gender and history length."""
        row = self.data.users.iloc[user]
        n = int(self.model.train_.indptr[user + 1] - self.model.train_.indptr[user])
        return f"User {row['raw_id']} · {row['age']} y, {row['occupation']} ({row['gender']}) · {n} movies"

    def user_options(self) -> list[tuple[str, object]]:
        """(label, raw id) for every user with a non-empty history, for a dropdown."""
        counts = np.diff(self.model.train_.indptr)
        raw = self.data.users["raw_id"].to_numpy()
        return [(self.user_label(u), raw[u]) for u in range(self.data.n_users) if counts[u] > 0]

    def select_user(self, raw_id) -> int:
        """Select a user by *raw* id (as the learner sees it); returns the internal id."""
        try:
            user = self.data.user_index(raw_id)
        except KeyError as err:
            raise KeyError(f"{err.args[0]} Pick one of ExplorerState.user_options().") from None
        if self.model.train_.indptr[user + 1] == self.model.train_.indptr[user]:
            raise ValueError(f"User {raw_id!r} has an empty history: there is nothing to recommend from or explain with.")
        n_unseen = self.data.n_items - int(self.model.train_.indptr[user + 1] - self.model.train_.indptr[user])
        if n_unseen < self.k:
            raise ValueError(f"User {raw_id!r} has seen all but {n_unseen} items: fewer than k={self.k} to recommend.")
        self.user = int(user)
        return self.user

    @property
    def raw_user(self):
        """The selected user's raw id."""
        return self.data.users["raw_id"].iloc[self._user()]

    def _user(self) -> int:
        if self.user is None:
            raise ValueError("No user selected: call select_user(raw_id) first.")
        return self.user

    def history(self) -> np.ndarray:
        """The selected user's history (sorted internal item ids)."""
        user = self._user()
        row = self.model.train_[user]
        return np.sort(row.indices[row.data > 0])

    # --- recommendations ----------------------------------------------------------------------------
    def _ranking(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores for ``history`` and the full ranking of items outside the *original* history."""
        x = sp.csr_matrix((np.ones(len(history), dtype=np.float32), (np.zeros(len(history), dtype=np.int64), history)),
                          shape=(1, self.data.n_items))
        scores = np.asarray(self.model.score_histories(x), dtype=np.float64)[0]
        masked = scores.copy()
        masked[self.history()] = -np.inf  # removed items never re-enter the ranking
        order = np.argsort(-masked, kind="stable")
        return scores, order[: self.data.n_items - len(self.history())]

    def _table(self, scores: np.ndarray, order: np.ndarray) -> pd.DataFrame:
        top = order[: self.k]
        return pd.DataFrame({"rank": np.arange(1, len(top) + 1), "title": self.titles[top],
                             "score": scores[top], "item": top}).set_index("rank")

    def recommendations(self) -> pd.DataFrame:
        """The selected user's top-k: rank, title, score (and the internal ``item`` column the panel hides)."""
        scores, order = self._ranking(self.history())
        return self._table(scores, order)

    # --- explanations ---------------------------------------------------------------------------
    def select_explainer(self, name: str) -> None:
        """Choose the explainer by its display name."""
        if name not in self.explainers:
            raise ValueError(f"Unknown explainer {name!r}: choose one of {list(self.explainers)}.")
        self.explainer_name = name

    def explain(self, rank: int = 1) -> Explanation:
        """Explain the selected user's recommendation at position ``rank`` (1 = the top item)."""
        if not isinstance(rank, (int, np.integer)) or not 1 <= rank <= self.k:
            raise ValueError(f"rank={rank!r} must be between 1 and k={self.k} (a position in the top-{self.k}).")
        item = int(self.recommendations()["item"].iloc[rank - 1])
        return self.explainers[self.explainer_name].explain(self._user(), item)

    def _check_n_remove(self, n: int) -> int:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_remove={n!r} must be a positive integer (how many blamed items to remove).")
        return int(n)

    def remove_blamed(self, explanation: Explanation, n: int | None = None) -> CounterfactualCheck:
        """Remove the ``n`` most blamed history items, re-score the edited history, compare the top-k.

        Taught in apps/why_this_recommendation: the live counterfactual check. Nothing is retrained;
        the model's ``score_histories`` re-scores the edited history exactly. The selected user's stored
        history is not changed, so every press starts from what the user really watched.
        """
        user = self._user()
        if explanation.user != user:
            other = self.data.users["raw_id"].iloc[explanation.user] if 0 <= explanation.user < self.data.n_users else "?"
            raise ValueError(f"This explanation is for another user (user {other}, not {self.raw_user}); "
                             "explain the selected user's recommendation first.")
        n = self.n_remove if n is None else self._check_n_remove(n)
        history = self.history()
        if n > len(explanation.items):
            raise ValueError(f"n={n} is more than the {len(explanation.items)} items the explanation ranks: "
                             f"remove at most {len(explanation.items)}.")
        if n >= len(history):
            raise ValueError(f"Removing n={n} items would empty this user's history of {len(history)} movies: "
                             f"remove at most {len(history) - 1}.")
        removed = explanation.top(n)
        scores0, order0 = self._ranking(history)
        scores1, order1 = self._ranking(np.setdiff1d(history, removed))
        rank0 = int(np.flatnonzero(order0 == explanation.item)[0]) + 1
        rank1 = int(np.flatnonzero(order1 == explanation.item)[0]) + 1
        return CounterfactualCheck(item=explanation.item, removed=removed, before=self._table(scores0, order0),
                                   after=self._table(scores1, order1), rank_before=rank0, rank_after=rank1,
                                   score_before=float(scores0[explanation.item]),
                                   score_after=float(scores1[explanation.item]), k=self.k, titles=self.titles)


# --- the widget view ------------------------------------------------------------------------------
def _top_html(table: pd.DataFrame, css: str, highlight: set[int] | None = None, mark: int | None = None) -> str:
    """An ordered list of titles (never ids); ``highlight`` marks new entries, ``mark`` the explained item."""
    rows = []
    for _, row in table.iterrows():
        title = html.escape(str(row["title"]))
        if mark is not None and int(row["item"]) == mark:
            title = f"<b>{title}</b> ◀"
        if highlight and int(row["item"]) in highlight:
            title += ' <span style="color:#2a9d4b">(new)</span>'
        rows.append(f'<li class="xrec-rec">{title} <small style="color:#777">{row["score"]:.3f}</small></li>')
    return f'<ol class="{css}" style="margin:0;padding-left:1.6em">' + "".join(rows) + "</ol>"


def _markdown_to_html(text: str) -> str:
    """The explanations' *title* emphasis as <i>, everything escaped."""
    parts = html.escape(text).split("*")
    return "".join(f"<i>{p}</i>" if i % 2 else p for i, p in enumerate(parts))


def _figure_png(explanation: Explanation, n: int = 10) -> bytes:
    import matplotlib.pyplot as plt

    ax = explanation.plot(n=n)
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", bbox_inches="tight", dpi=90)
    plt.close(ax.figure)
    return buffer.getvalue()


class ExplorerPanel:
    """The ipywidgets panel: user and explainer pickers, top-10, explanation plot + sentence, "remove these".

    Taught in apps/why_this_recommendation. Every callback calls :class:`ExplorerState` and renders what it
    returns; errors (e.g. a history too short to remove N items) are shown in the panel, not raised.
    ``panel.widget`` is the VBox to display. CSS classes (``xrec-*``) let the browser test find the parts.
    """

    def __init__(self, state: ExplorerState):
        import ipywidgets as w

        self.state = state
        self.user_picker = w.Dropdown(options=state.user_options(), value=state.raw_user, description="User",
                                      layout=w.Layout(width="460px"))
        self.explainer_picker = w.Dropdown(options=list(state.explainers), value=state.explainer_name,
                                           description="Explainer")
        self.rank_picker = w.Dropdown(description="Explain", layout=w.Layout(width="460px"))
        self.n_picker = w.IntSlider(value=state.n_remove, min=1, max=10, description="Remove top")
        self.remove_button = w.Button(description="Remove these", button_style="warning", icon="scissors")
        self.top_html = w.HTML()
        self.sentence_html = w.HTML()
        self.plot_image = w.Image(format="png", layout=w.Layout(max_width="640px"))
        self.after_html = w.HTML()
        self.message_html = w.HTML()
        for part, css in [(self.user_picker, "xrec-user"), (self.explainer_picker, "xrec-explainer"),
                          (self.rank_picker, "xrec-rank"), (self.remove_button, "xrec-remove"),
                          (self.top_html, "xrec-top"), (self.sentence_html, "xrec-sentence"),
                          (self.plot_image, "xrec-plot"), (self.after_html, "xrec-after"),
                          (self.message_html, "xrec-message")]:
            part.add_class(css)
        self.explanation: Explanation | None = None
        self.check: CounterfactualCheck | None = None
        self._busy = False
        self.user_picker.observe(self._on_user, names="value")
        self.explainer_picker.observe(self._on_explainer, names="value")
        self.rank_picker.observe(self._on_rank, names="value")
        self.remove_button.on_click(self._on_remove)
        self.widget = w.VBox([
            w.HTML("<h3>Why this recommendation?</h3>"),
            w.HBox([self.user_picker, self.explainer_picker]),
            w.HBox([w.VBox([w.HTML(f"<b>Top-{state.k}</b>"), self.top_html], layout=w.Layout(width="45%")),
                    w.VBox([w.HTML("<b>After the removal</b>"), self.after_html], layout=w.Layout(width="45%"))]),
            self.rank_picker, self.sentence_html, self.plot_image,
            w.HBox([self.n_picker, self.remove_button]), self.message_html,
        ])
        self._refresh_user()

    # Callbacks: each recomputes from the state; _busy stops option changes from re-entering.
    def _refresh_user(self) -> None:
        self._busy = True
        try:
            table = self.state.recommendations()
            self.top_html.value = _top_html(table, "xrec-top10")
            self.rank_picker.options = [(f"#{r} {t}", r) for r, t in table["title"].items()]
            self.rank_picker.value = 1
            self.n_picker.max = max(1, min(10, len(self.state.history()) - 1))
        finally:
            self._busy = False
        self._refresh_explanation()

    def _refresh_explanation(self) -> None:
        self.after_html.value = "<i>Press “Remove these” to check the explanation.</i>"
        self.check = None
        try:
            self.explanation = self.state.explain(int(self.rank_picker.value))
        except (ValueError, IndexError) as err:
            self.explanation = None
            self.message_html.value = f'<span style="color:#c0392b">{html.escape(str(err))}</span>'
            return
        self.message_html.value = ""
        self.sentence_html.value = (f'<p class="xrec-text"><b>{html.escape(self.explanation.method)}:</b> '
                                    f'{_markdown_to_html(self.explanation.text)}</p>')
        self.plot_image.value = _figure_png(self.explanation)
        self.top_html.value = _top_html(self.state.recommendations(), "xrec-top10", mark=self.explanation.item)

    def _on_user(self, change) -> None:
        if self._busy:
            return
        try:
            self.state.select_user(change["new"])
        except (ValueError, KeyError) as err:
            self.message_html.value = f'<span style="color:#c0392b">{html.escape(str(err))}</span>'
            return
        self._refresh_user()

    def _on_explainer(self, change) -> None:
        self.state.select_explainer(change["new"])
        self._refresh_explanation()

    def _on_rank(self, change) -> None:
        if not self._busy and change["new"] is not None:
            self._refresh_explanation()

    def _on_remove(self, _button=None) -> None:
        if self.explanation is None:
            return
        try:
            self.check = self.state.remove_blamed(self.explanation, int(self.n_picker.value))
        except ValueError as err:
            self.message_html.value = f'<span style="color:#c0392b">{html.escape(str(err))}</span>'
            return
        new = set(self.check.after["item"]) - set(self.check.before["item"])
        self.after_html.value = _top_html(self.check.after, "xrec-after10", highlight=new, mark=self.check.item)
        self.message_html.value = f'<p class="xrec-verdict">{_markdown_to_html(self.check.summary())}</p>'


def explorer(data: Dataset, model: HistoryRecommender, explainers: Mapping[str, Explainer] | None = None,
             k: int = 10, n_remove: int = 3):
    """Build the "Why this recommendation?" panel and return its widget (display it in a notebook).

    Taught in apps/why_this_recommendation.
    """
    return ExplorerPanel(ExplorerState(data, model, explainers, k=k, n_remove=n_remove)).widget
