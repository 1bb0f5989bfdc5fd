"""The demo's ipywidgets views: "Which explanation is true?" and "Top reviews for you".

Taught in apps/why_this_recommendation. Views only: every callback calls the states of
:mod:`xrec_helpers.app.compare` / :mod:`xrec_helpers.app.reviews` and renders what they return. Titles and
review texts are HTML-escaped and never interpreted as markup (a title such as *M*A*S*H* stays as it is).
Errors are shown in the panel, and a failed selection puts the picker back on what the panel still shows.
CSS classes (``xrec-*``) let the browser test find the parts; the numbers it checks are the rendered ones.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import ipywidgets as w

from xrec_helpers.app.compare import ComparisonState, DefaultChoice, RemovalCheck
from xrec_helpers.app.reviews import NARRE, ReviewPick, ReviewViewState

if TYPE_CHECKING:
    from xrec_helpers.app.demo import Demo

RED, GREEN, GREY = "#c0392b", "#2a9d4b", "#777"


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _error(err: Exception) -> str:
    return f'<span class="xrec-error" style="color:{RED}">{_esc(err)}</span>'


def titles_html(titles: Sequence[str], css: str, mark: str | None = None, new: set[str] | None = None) -> str:
    """An ordered list of escaped titles; ``mark`` is bolded with ◀, titles in ``new`` get "(new)".

    Parameters
    ----------
    titles : Sequence[str]
        Titles in list order.
    css : str
        CSS class of the list.
    mark : str | None
        The title to bold.
    new : set[str] | None
        Titles marked "(new)".

    Returns
    -------
    str
        The HTML.
    """
    rows = []
    for title in titles:
        text = _esc(title)
        if mark is not None and str(title) == mark:
            text = f"<b>{text}</b> ◀"
        if new and str(title) in new:
            text += f' <span style="color:{GREEN}">(new)</span>'
        rows.append(f'<li class="xrec-title">{text}</li>')
    return f'<ol class="{css}" style="margin:0;padding-left:1.6em">' + "".join(rows) + "</ol>"


def check_html(check: RemovalCheck) -> str:
    """The rank move as numbers the reader (and the browser test) can read, then the verdict.

    Parameters
    ----------
    check : RemovalCheck
        One explanation's removal check.

    Returns
    -------
    str
        The HTML.
    """
    colour = GREEN if check.moved else GREY
    return (f'<p class="xrec-result" style="color:{colour}">rank <span class="xrec-rank-before">{check.rank_before}</span>'
            f' → <span class="xrec-rank-after">{check.rank_after}</span><br><small>{_esc(check.verdict())}</small></p>')


class ComparisonPanel:
    """Several explanations of one recommendation side by side, and one button that checks them all.

    Part of the demo (apps/why_this_recommendation, inside DemoView). ``panel.widget`` is the box to display.

    Parameters
    ----------
    state : ComparisonState
        The comparison state.
    choice : DefaultChoice | None
        The start-up choice, explained on the panel.
    """

    def __init__(self, state: ComparisonState, choice: DefaultChoice | None = None):
        self.state = state
        self.user_picker = w.Dropdown(options=state.user_options(), value=state.raw_user, description="User",
                                      layout=w.Layout(width="480px"))
        self.rank_picker = w.Dropdown(description="Explain", layout=w.Layout(width="480px"))
        self.n_picker = w.IntSlider(value=state.n_remove, min=1, max=10, description="Remove top",
                                    continuous_update=False)
        self.remove_button = w.Button(description="Remove each explanation's movies", button_style="warning",
                                      icon="scissors", layout=w.Layout(width="300px"))
        self.top_html, self.message_html, self.intro_html = w.HTML(), w.HTML(), w.HTML()
        self.columns = {name: (w.HTML(), w.HTML(), w.HTML()) for name in state.explainers}  # blamed, result, after
        for part, css in [(self.user_picker, "xrec-user"), (self.rank_picker, "xrec-rank"),
                          (self.n_picker, "xrec-n"), (self.remove_button, "xrec-remove"),
                          (self.top_html, "xrec-top"), (self.message_html, "xrec-message"),
                          (self.intro_html, "xrec-intro")]:
            part.add_class(css)
        self.checks: dict[str, RemovalCheck] | None = None
        self._busy = False
        if choice is not None:
            self.intro_html.value = self.choice_html(choice)
        boxes = []
        for name, (blamed, result, after) in self.columns.items():
            box = w.VBox([w.HTML(f'<h4 class="xrec-name" style="margin:4px 0">{_esc(name)}</h4>'), blamed, result, after],
                         layout=w.Layout(width=f"{95 // len(self.columns)}%", border="1px solid #ddd", padding="4px"))
            box.add_class("xrec-col")
            boxes.append(box)
        self.widget = w.VBox([
            self.intro_html,
            w.HBox([self.user_picker, self.rank_picker]),
            w.HBox([w.VBox([w.HTML(f"<b>Top-{state.k}</b>"), self.top_html], layout=w.Layout(width="30%")),
                    w.VBox([w.HBox([self.n_picker, self.remove_button]), w.HBox(boxes)],
                           layout=w.Layout(width="70%"))]),
            self.message_html,
        ])
        self.user_picker.observe(self._on_user, names="value")
        self.rank_picker.observe(self._on_rank, names="value")
        self.n_picker.observe(self._on_n, names="value")
        self.remove_button.on_click(self._on_remove)
        self._refresh_user()

    @staticmethod
    def choice_html(choice: DefaultChoice) -> str:
        """Why the demo opened where it did, from the numbers computed at start-up.

        Parameters
        ----------
        choice : DefaultChoice
            The start-up choice.

        Returns
        -------
        str
            The HTML.
        """
        shares = ", ".join(f"{_esc(name)} {choice.shares.loc[choice.n_remove, name]:.0%}" for name in choice.shares)
        reader = " and ".join(_esc(m) for m in choice.model_reading) or "the model-reading explanation"
        ranks = ", ".join(f"{_esc(name)} #{rank}" for name, rank in choice.contrast.items())
        why = (f"On this user's top pick, only {reader} takes it out of the top-{choice.k} (its rank after the "
               f"removal, per explanation: {ranks}); of the sampled users where only it does, this is the one whose "
               "pick falls furthest below the best data-only explanation's." if choice.clean else
               f"On this user's top pick, {reader} pushes it furthest below the data-only explanations among the "
               f"sampled users (its rank after the removal, per explanation: {ranks}).")
        return (f'<p class="xrec-choice">Opened on user {_esc(choice.raw_user)} and removal count '
                f'{choice.n_remove}, chosen at start-up: among {choice.n_users} sampled users, removing each '
                f"explanation's {choice.n_remove} most blamed movies moved the top pick down at least one place "
                f"for: {shares}. {why}</p>")

    # --- rendering ----------------------------------------------------------------------------------
    def _refresh_user(self) -> None:
        self._busy = True
        try:
            table = self.state.recommendations()
            self.rank_picker.options = [(f"#{r} {t}", r) for r, t in table["title"].items()]
            self.rank_picker.value = self.state.rank
            self.n_picker.max = max(1, min(10, len(self.state.history()) - 1))
            self.n_picker.value = min(self.state.n_remove, self.n_picker.max)
            self.state.set_n_remove(int(self.n_picker.value))
        finally:
            self._busy = False
        self._refresh_explanations()

    def _refresh_explanations(self) -> None:
        self.checks = None
        table = self.state.recommendations()
        item_title = str(table["title"].iloc[self.state.rank - 1])
        self.top_html.value = titles_html(table["title"], "xrec-top10", mark=item_title)
        try:
            explanations = self.state.explanations()
        except (ValueError, IndexError) as err:
            self.message_html.value = _error(err)
            return
        self.message_html.value = ""
        n = self.state.n_remove
        for name, (blamed, result, after) in self.columns.items():
            top = self.state.titles[explanations[name].top(n)]
            blamed.value = f"<small>blames (top {n}):</small>" + titles_html(top, "xrec-blamed")
            result.value = '<p class="xrec-pending" style="color:#777"><i>press remove to check</i></p>'
            after.value = ""

    def _show_checks(self) -> None:
        before = set(self.state.recommendations()["title"].astype(str))
        for name, (_, result, after) in self.columns.items():
            check = self.checks[name]
            result.value = check_html(check)
            after_titles = check.after["title"].astype(str)
            after.value = (f"<small>top-{self.state.k} re-scored without them:</small>"
                           + titles_html(after_titles, "xrec-after10", mark=str(self.state.titles[check.explanation.item]),
                                         new=set(after_titles) - before))

    # --- callbacks ----------------------------------------------------------------------------------
    def _on_user(self, change) -> None:
        if self._busy:
            return
        try:
            self.state.select_user(change["new"])
            self.state.rank = 1
        except (ValueError, KeyError, TypeError) as err:
            self._busy = True
            try:
                self.user_picker.value = self.state.raw_user  # the picker shows who the panel shows
            finally:
                self._busy = False
            self.message_html.value = _error(err)
            return
        self._refresh_user()

    def _on_rank(self, change) -> None:
        if self._busy or change["new"] is None:
            return
        self.state.select_rank(int(change["new"]))
        self._refresh_explanations()

    def _on_n(self, change) -> None:
        if self._busy:
            return
        self.state.set_n_remove(int(change["new"]))
        self._refresh_explanations()

    def _on_remove(self, _button=None) -> None:
        try:
            self.checks = self.state.remove()
        except (ValueError, IndexError) as err:
            self.message_html.value = _error(err)
            return
        self.message_html.value = ""
        self._show_checks()


def _stars(n: int) -> str:
    return "★" * int(n) + "☆" * (5 - int(n))


class ReviewPanel:
    """Three picks of a recommended item's reviews for one user; the planted truth and the hiding check on demand.

    Part of the demo (apps/why_this_recommendation, inside DemoView). ``panel.widget`` is the box to display.

    Parameters
    ----------
    state : ReviewViewState
        The review state.
    numbers : dict[str, float] | None
        The start-up numbers, shown on the panel.
    """

    def __init__(self, state: ReviewViewState, numbers: dict[str, float] | None = None):
        self.state = state
        self.user_picker = w.Dropdown(options=state.user_options(), value=state.user, description="Reviewer",
                                      layout=w.Layout(width="360px"))
        self.item_picker = w.Dropdown(description="Item", layout=w.Layout(width="420px"))
        self.truth_button = w.ToggleButton(value=False, description="Reveal the planted truth", icon="eye",
                                           layout=w.Layout(width="220px"))
        self.hide_button = w.Button(description="Hide these reviews", button_style="warning", icon="eye-slash",
                                    layout=w.Layout(width="220px"))
        self.truth_html, self.message_html, self.intro_html = w.HTML(), w.HTML(), w.HTML()
        for part, css in [(self.user_picker, "xrec-reviewer"), (self.item_picker, "xrec-item"),
                          (self.truth_button, "xrec-truth"), (self.hide_button, "xrec-hide"),
                          (self.truth_html, "xrec-aspect"), (self.message_html, "xrec-review-message")]:
            part.add_class(css)
        if numbers:
            picks = ", ".join(f"{_esc(k)} {v:.0%}" for k, v in numbers.items())
            summary = state.default_summary  # every sampled reviewer, from choose_default
            among = (f", of {summary['n_users']} sampled," if summary else "")
            means = ("; mean over the sampled reviewers: " + ", ".join(f"{_esc(k)} {v:.0%}"
                                                                       for k, v in summary["means"].items())
                     if summary else "")
            self.intro_html.value = (f'<p class="xrec-review-choice">Opened on the reviewer{among} whose '
                                     f"personalised pick holds the most reviews on the aspect they care about, "
                                     f"compared with NARRE's (share of the 3 picked reviews on that aspect, for this "
                                     f"reviewer: {picks}{means}); reveal the planted truth to see the aspect.</p>")
        self.picks: dict[str, ReviewPick] = {}
        self.hidden = False
        self.columns: dict[str, w.HTML] = {}
        boxes = []
        for name in ("Personalised attention", "NARRE attention", "Random pick"):
            self.columns[name] = w.HTML()
            box = w.VBox([w.HTML(f'<h4 style="margin:4px 0">{_esc(name)}</h4>'), self.columns[name]],
                         layout=w.Layout(width="32%", border="1px solid #ddd", padding="4px"))
            box.add_class("xrec-review-col")
            boxes.append(box)
        self._busy = False
        self.widget = w.VBox([self.intro_html, w.HBox([self.user_picker, self.item_picker]),
                              w.HBox([self.truth_button, self.hide_button]), self.truth_html, w.HBox(boxes),
                              self.message_html])
        self.user_picker.observe(self._on_user, names="value")
        self.item_picker.observe(self._on_item, names="value")
        self.truth_button.observe(lambda _: self._render(), names="value")
        self.hide_button.on_click(self._on_hide)
        self._refresh_items()

    def _refresh_items(self) -> None:
        self._busy = True
        try:
            recs = self.state.recommendations()
            self.item_picker.options = [(f"{t} (predicted {p:.2f}★)", int(i))
                                        for t, i, p in zip(recs["title"], recs["item"], recs["predicted"])]
            self.item_picker.value = self.state.item
        finally:
            self._busy = False
        self._refresh_picks()

    def _refresh_picks(self) -> None:
        self.hidden = False
        self.picks = self.state.picks()
        self._render()

    def _render(self) -> None:
        truth = bool(self.truth_button.value)
        self.truth_html.value = (f'<p>This reviewer cares most about <b class="xrec-top-aspect">{_esc(self.state.top_aspect())}</b>'
                                 " (planted in the synthetic corpus).</p>" if truth else "")
        for name, box in self.columns.items():
            pick = self.picks[name]
            # NARRE predicts with its own model; the random pick is checked on the personalised one
            by = "by the NARRE model" if name == NARRE else "by the personalised-attention model"
            rows = []
            for _, r in pick.reviews.iterrows():
                mark = ""
                if truth:
                    mark = (f' <span class="xrec-relevant" style="color:{GREEN}">✓ {_esc(r["aspects"])}</span>'
                            if r["relevant"] else f' <span class="xrec-irrelevant" style="color:{RED}">✗ {_esc(r["aspects"])}</span>')
                rows.append(f'<li class="xrec-review">{_stars(r["stars"])} “{_esc(r["text"])}”{mark}</li>')
            html_ = f'<ol style="padding-left:1.4em;margin:0">{"".join(rows)}</ol>'
            if truth:
                html_ += f'<p class="xrec-precision">on the reviewer\'s aspect: {pick.precision:.0%}</p>'
            if self.hidden:
                html_ += (f'<p class="xrec-hidden-result">predicted <span class="xrec-pred-before">{pick.predicted:.2f}</span>'
                          f'★ → <span class="xrec-pred-after">{pick.predicted_hidden:.2f}</span>★ without them '
                          f"({pick.change:+.2f}; {by})</p>")
            else:
                html_ += f'<p><small>predicted {pick.predicted:.2f}★ with all reviews, {by}</small></p>'
            box.value = html_

    def _on_user(self, change) -> None:
        if self._busy:
            return
        try:
            self.state.select(int(change["new"]))
        except (ValueError, TypeError) as err:
            self._busy = True
            try:
                self.user_picker.value = self.state.user
            finally:
                self._busy = False
            self.message_html.value = _error(err)
            return
        self.message_html.value = ""
        self._refresh_items()

    def _on_item(self, change) -> None:
        if self._busy or change["new"] is None:
            return
        try:
            self.state.select(self.state.user, int(change["new"]))
        except ValueError as err:
            self.message_html.value = _error(err)
            return
        self._refresh_picks()

    def _on_hide(self, _button=None) -> None:
        self.hidden = True
        self._render()


class DemoView:
    """Both views in tabs, for the Voilà page (``demo`` from :func:`xrec_helpers.app.demo.load_demo`).

    ``view.widget`` is the box to display; ``view.compare`` and ``view.reviews`` are the two panels.

    Parameters
    ----------
    demo : Demo
        The loaded demo.
    """

    def __init__(self, demo: Demo):
        self.compare = ComparisonPanel(demo.compare, demo.choice)
        self.reviews = ReviewPanel(demo.reviews, demo.review_choice)
        tab = w.Tab(children=[self.compare.widget, self.reviews.widget])
        tab.set_title(0, "Which explanation is true?")
        tab.set_title(1, "Top reviews for you")
        tab.add_class("xrec-tabs")
        # Wider tab labels than ipywidgets' default, so both titles are readable on a projector.
        style = w.HTML("<style>.xrec-tabs { --jp-widgets-horizontal-tab-width: 260px; }</style>")
        self.widget = w.VBox([style, tab])
