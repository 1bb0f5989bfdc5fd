"""Checking an explanation sentence claim by claim: is each statement true, and is it why the model recommends?

Taught in 12_generated_explanations. A sentence such as "Because you watched *Fargo (1996)*, which has the
same director as *Raising Arizona (1987)*, we recommend it" bundles several **atomic claims**:

* factual, about the data: "you watched *Fargo*" (:class:`Watched`, checked against every film the user
  rated, at any star level, when the star ratings are given), "7 of your 10 nearest neighbours rated it 4 or
  higher" (:class:`NeighboursLiked`);
* factual, about side data: "*Fargo* has the same director as *Raising Arizona*" (:class:`SameEntity`,
  checked against the knowledge graph);
* causal, about the model: "because you watched *Fargo*" (:class:`Because`), checked by removing the film
  from the history and re-scoring (``score_histories``): the claim holds when the removal lowers the
  recommended item's score, and lowers it at least as much as removing a typical film of the history
  does (the median leave-one-out drop); a film the model ignores fails. By construction about half of a
  history's films pass this rule, so a method that blames films at random holds about 50 % of the time:
  that is the chance level;
  :meth:`ClaimChecker.check` also reports a stricter verdict, ``rank falls``: removing the film moves the
  recommended item down at least one place among the films the user has not rated (it would change the
  recommendation list);
* about a review-corpus item: "the build is great" (:class:`AspectStatement`), true when the item's planted
  quality on that aspect has that sign, relevant when the aspect is the one the user cares about, and
  faithful when hiding what the item's reviews say about that aspect moves the model's predicted rating for
  this user more than hiding any other aspect does, *and* (for a polar claim) in the claim's direction: "the
  build is great" is faithful only if what the reviews say about the build raises the prediction (hiding it
  lowers the rating); "the build is poor" only if it lowers it.

The parser adds only the claims a sentence states. A knowledge-graph sentence "You watched A, which has the
same director as B" says nothing about *why* B is recommended; when such a sentence is shown as the reason
for the recommendation, pass ``implied_reason=True`` and the checker also tests the implied causal claim,
labelled as implied.

:class:`ClaimChecker` turns a sentence written by anything (a course explainer, a template, an LLM you
run yourself) into claims with :meth:`ClaimChecker.parse` and returns one verdict per claim with its
evidence (:meth:`ClaimChecker.check`). A verdict is True, False, or None when the claim cannot be checked
with what the checker was given (e.g. no knowledge graph).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.data.kg import READABLE, ItemKG
from xrec_helpers.data.reviews import aspect_mentions
from xrec_helpers.metrics.ranking import rank_among_unseen
from xrec_helpers.models.base import SCORE_HISTORIES, capabilities_of


# ---- claims ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Watched:
    """Factual: ``item`` is in ``user``'s history.

    Parameters
    ----------
    user : int
        Internal user id.
    item : int
        Internal id of the watched item.
    check : str
        What the claim is checked against (shown in the verdict table).
    """

    user: int
    item: int
    check: str = "data"


@dataclass(frozen=True)
class Because:
    """Causal: the model recommends ``item`` to ``user`` because ``cause`` is in the history.

    Parameters
    ----------
    user : int
        Internal user id.
    item : int
        Internal id of the recommended item.
    cause : int
        Internal id of the history item named as the reason.
    implied : bool
        True when the sentence does not state it in words but is shown as the reason.
    check : str
        What the claim is checked against (shown in the verdict table).
    """

    user: int
    item: int
    cause: int
    implied: bool = False  # True: not stated in words, implied by showing the sentence as the reason
    check: str = "removal and re-scoring"


@dataclass(frozen=True)
class SameEntity:
    """Factual: ``item_a`` and ``item_b`` share a knowledge-graph entity of ``relation`` ("director", ...).

    Parameters
    ----------
    item_a, item_b : int
        Internal item ids.
    relation : str
        The relation of the shared entity.
    check : str
        What the claim is checked against (shown in the verdict table).
    """

    item_a: int
    item_b: int
    relation: str
    check: str = "knowledge graph"


@dataclass(frozen=True)
class NeighboursLiked:
    """Factual: ``n_liked`` of ``user``'s ``k`` nearest neighbours rated ``item`` ``threshold`` or higher.

    Parameters
    ----------
    user : int
        Internal user id.
    item : int
        Internal id of the recommended item.
    n_liked : int
        How many neighbours the sentence says liked it.
    k : int
        Neighbours counted.
    threshold : float
        Lowest rating that counts as liked.
    check : str
        What the claim is checked against (shown in the verdict table).
    """

    user: int
    item: int
    n_liked: int
    k: int
    threshold: float = 4.0
    check: str = "data"


@dataclass(frozen=True)
class AspectStatement:
    """A review-corpus statement about ``item`` for ``user``: ``aspect`` is good (+1) or bad (-1) (None: named only).

    Parameters
    ----------
    user : int
        Internal user id.
    item : int
        Internal id of the item the statement is about.
    aspect : str
        The aspect named.
    polarity : int | None
        +1 (good), -1 (bad) or None (named only).
    check : str
        What the claim is checked against (shown in the verdict table).
    """

    user: int
    item: int
    aspect: str
    polarity: int | None
    check: str = "planted truth and intervention"


Claim = Watched | Because | SameEntity | NeighboursLiked | AspectStatement


# ---- review-corpus statements ------------------------------------------------------------------------
def aspect_statements(texts: Sequence[str], users: Sequence[int], items: Sequence[int]) -> list[list[AspectStatement]]:
    """Split each sentence about (user, item) into its aspect statements (one list per sentence).

    Uses the corpus lexicon (:func:`~xrec_helpers.data.reviews.aspect_mentions`). Taught in
    12_generated_explanations.

    Parameters
    ----------
    texts : Sequence[str]
        One sentence per pair.
    users, items : Sequence[int]
        The pair of each sentence.

    Returns
    -------
    list[list[AspectStatement]]
        The statements of each sentence.

    Raises
    ------
    ValueError
        When the three lengths differ.
    """
    if not len(texts) == len(users) == len(items):
        raise ValueError(f"One user and one item per sentence: {len(texts)} sentences, {len(users)} users, "
                         f"{len(items)} items.")
    return [[AspectStatement(int(u), int(i), a, p) for a, p in aspect_mentions(t)]
            for t, u, i in zip(texts, users, items)]


def check_aspect_statements(
    statements: Sequence[AspectStatement],
    quality: np.ndarray,
    top_aspect: np.ndarray,
    aspects: Sequence[str],
    predict: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """One row per statement: true of the item?, relevant to the user?, and (with ``predict``) faithful?

    Taught in 12_generated_explanations.

    Parameters
    ----------
    statements : Sequence[AspectStatement]
        E.g. the flattened output of :func:`aspect_statements`.
    quality : np.ndarray
        (n_items, n_aspects) planted qualities (from :func:`xrec_helpers.data.reviews.planted_truth`).
    top_aspect : np.ndarray
        (n_users,) index of each user's aspect (from the same function).
    aspects : Sequence[str]
        Aspect names in the column order of ``quality``.
    predict : Callable | None
        ``predict(users, items, hide_aspect)`` -> predicted ratings, where ``hide_aspect`` is an
        aspect index per pair or -1 for none (``ReviewTextGenerator.predict``).
    random_state : int
        Seed of the random other aspect of ``delta_random``.

    Returns
    -------
    pd.DataFrame
        One row per statement; the columns are described below.

    Raises
    ------
    ValueError
        When ``quality`` does not match ``aspects``, or a statement names an unknown aspect.

    Notes
    -----
    Columns: ``user``, ``item``, ``aspect``, ``polarity``, ``true_of_item`` (None when the statement names
    the aspect without a verdict), ``relevant``; with ``predict``: ``effect_cited`` (predicted rating minus
    the prediction with the cited aspect hidden: what the aspect adds to the rating, signed),
    ``delta_cited`` (its absolute value), ``delta_random`` (the same for one other aspect drawn at random,
    seeded: a paired comparison for plots, not part of the rule), ``delta_max_other`` (the largest over all
    the other aspects), ``drives`` (``delta_cited`` > ``delta_max_other``: the cited aspect moves this
    prediction more than any other) and ``faithful``: ``drives`` and, for a polar claim, ``effect_cited``
    has the claim's sign ("great" must raise the rating, "poor" lower it); a claim with no polarity needs
    ``drives`` only.
    """
    index = {a: k for k, a in enumerate(aspects)}
    quality = np.asarray(quality, dtype=float)
    if quality.ndim != 2 or quality.shape[1] != len(index):
        raise ValueError(f"quality must be (n_items, {len(index)}) for aspects {list(aspects)}; got {quality.shape}.")
    unknown = sorted({s.aspect for s in statements} - set(index))
    if unknown:
        raise ValueError(f"Statements name aspects {unknown} that are not among {list(aspects)}.")
    users = np.array([s.user for s in statements], dtype=np.int64)
    items = np.array([s.item for s in statements], dtype=np.int64)
    cited = np.array([index[s.aspect] for s in statements], dtype=np.int64)
    pol = [s.polarity for s in statements]
    sign = np.sign(quality[items, cited]) if len(statements) else np.array([])
    frame = pd.DataFrame({
        "user": users, "item": items, "aspect": [s.aspect for s in statements], "polarity": pol,
        "true_of_item": [None if p is None else bool(q == p) for p, q in zip(pol, sign)],
        "relevant": np.asarray(top_aspect)[users] == cited if len(statements) else np.array([], dtype=bool),
    })
    if predict is not None and len(statements):
        n_aspects = len(index)
        base = np.asarray(predict(users, items, np.full(len(users), -1)), dtype=float)
        effects = np.stack([base - np.asarray(predict(users, items, np.full(len(users), a)), dtype=float)
                            for a in range(n_aspects)], axis=1)
        deltas = np.abs(effects)
        rng = np.random.default_rng(random_state)
        other = (cited + rng.integers(1, n_aspects, len(cited))) % n_aspects  # uniform over the other aspects
        rows = np.arange(len(cited))
        masked = deltas.copy()
        masked[rows, cited] = -np.inf
        frame["effect_cited"] = effects[rows, cited]
        frame["delta_cited"] = deltas[rows, cited]
        frame["delta_random"] = deltas[rows, other]
        frame["delta_max_other"] = masked.max(1)
        frame["drives"] = frame["delta_cited"] > frame["delta_max_other"]
        # a polar claim must also point the right way: "great" is faithful only if the aspect raises the rating
        want = np.array([0 if p is None else p for p in pol], dtype=float)
        right_way = (want == 0) | (np.sign(frame["effect_cited"].to_numpy()) == want)
        frame["faithful"] = frame["drives"].to_numpy() & right_way
    return frame


# ---- the checker for MovieLens-style explanations ----------------------------------------------------
_NUMBER_WORDS = {w: k for k, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven",
                                             "eight", "nine", "ten"])}


class ClaimChecker:
    """Verdicts for the atomic claims of explanation sentences, against the data, the KG and the model.

    Taught in 12_generated_explanations.

    Parameters
    ----------
    histories
        user x item matrix whose rows are the histories the model reads (the recommender's
        ``train_`` after ``use_histories``).
    recommender
        a fitted model declaring ``SCORE_HISTORIES`` (it re-scores edited histories), for causal
        claims (None: they are not checkable).
    titles
        display titles by internal item id (the parser finds them in the sentence).
    kg
        the item–entity graph (:func:`xrec_helpers.data.kg.build_item_kg`), for :class:`SameEntity`.
    ratings
        user x item star ratings and ``neighbours`` ((n_users, k) ids, nearest first), for
        :class:`NeighboursLiked`. The ratings are also the full watch history for :class:`Watched`: a film
        rated 1 star was watched even when the model reads only liked films.
    min_drop
        a removal must lower the score by more than this to count as an effect (float noise).
    """

    def __init__(self, histories: sp.csr_matrix, recommender: Any | None = None,
                 titles: Sequence[str] | None = None, kg: ItemKG | None = None,
                 ratings: sp.csr_matrix | None = None, neighbours: np.ndarray | None = None,
                 min_drop: float = 1e-6):
        if not sp.issparse(histories):
            raise TypeError("histories must be a scipy.sparse user x item matrix (the histories the model reads).")
        self.histories = sp.csr_matrix(histories)
        if recommender is not None:
            if SCORE_HISTORIES not in capabilities_of(recommender):
                raise TypeError(f"{type(recommender).__name__} cannot re-score an edited history: causal claims need "
                                "a model with score_histories (or pass recommender=None and they are reported "
                                "unchecked).")
            if recommender.n_items != self.histories.shape[1]:
                raise ValueError(f"The recommender has {recommender.n_items} items, the histories "
                                 f"{self.histories.shape[1]}.")
        if kg is not None and kg.n_items != self.histories.shape[1]:
            raise ValueError(f"The KG covers {kg.n_items} items, the histories {self.histories.shape[1]}.")
        if (ratings is None) != (neighbours is None):
            raise ValueError("Neighbour claims need both ratings and neighbours (or neither).")
        self.recommender, self.kg, self.min_drop = recommender, kg, float(min_drop)
        self.ratings = None if ratings is None else sp.csr_matrix(ratings)
        self.neighbours = None if neighbours is None else np.asarray(neighbours, dtype=np.int64)
        self.titles = None if titles is None else np.asarray(titles, dtype=object)
        self._title_index: dict[str, list[int]] | None = None

    # -- words --
    def title(self, item: int) -> str:
        """Display title of an internal item id.

        Parameters
        ----------
        item : int
            Internal item id.

        Returns
        -------
        str
            The title.
        """
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    def describe(self, claim: Claim) -> str:
        """The claim in words, with titles.

        Parameters
        ----------
        claim : Claim
            One atomic claim.

        Returns
        -------
        str
            The claim in words.
        """
        t = self.title
        if isinstance(claim, Watched):
            return f"you watched {t(claim.item)}"
        if isinstance(claim, Because):
            said = "(implied) " if claim.implied else ""
            return f"{said}{t(claim.item)} is recommended because you watched {t(claim.cause)}"
        if isinstance(claim, SameEntity):
            words = READABLE.get(claim.relation, ("", f"shares a {claim.relation} with"))[1]
            return f"{t(claim.item_a)} {words} {t(claim.item_b)}"
        if isinstance(claim, NeighboursLiked):
            return (f"{claim.n_liked} of your {claim.k} nearest neighbours rated {t(claim.item)} "
                    f"{claim.threshold:g} or higher")
        if isinstance(claim, AspectStatement):
            verdict = {1: "good", -1: "bad", None: "mentioned"}[claim.polarity]
            return f"{claim.aspect} is {verdict}"
        raise TypeError(f"Not a claim: {claim!r}")

    # -- checks --
    def _history(self, user: int) -> np.ndarray:
        if not 0 <= int(user) < self.histories.shape[0]:
            raise IndexError(f"Unknown user id {user}: internal ids run 0..{self.histories.shape[0] - 1}.")
        return self.histories.indices[self.histories.indptr[user]:self.histories.indptr[user + 1]]

    def _check_one(self, claim: Claim) -> tuple[bool | None, str]:
        if isinstance(claim, Watched):
            if self.ratings is not None:  # the full watch history: every film rated, at any star level
                self._history(claim.user)  # validates the id
                stars = float(self.ratings[claim.user, claim.item])
                return stars > 0, (f"rated it {stars:g} stars" if stars > 0 else "never rated it")
            held = bool(np.isin(claim.item, self._history(claim.user)))
            return held, "in the history the model reads" if held else "not in the history the model reads"
        if isinstance(claim, SameEntity):
            if self.kg is None:
                return None, "no knowledge graph given"
            shared = self.kg.shared_entities(claim.item_a, claim.item_b)
            held = bool((shared["relation"] == claim.relation).any())
            if shared.empty:
                return held, "they share no entity in the graph"
            # name the shared entities (Freebase ids: the graph has no names) and how many films each links
            ordered = pd.concat([shared[shared["relation"] == claim.relation], shared[shared["relation"] != claim.relation]])
            degree = self.kg.node_degree()
            parts = [f"{r.replace('_', ' ')} {self.kg.node_entity[n]} ({degree[n]} films{self._linked_titles(n, claim)})"
                     for n, r in zip(ordered["node"].head(3), ordered["relation"].head(3))]
            more = f" and {len(ordered) - 3} more" if len(ordered) > 3 else ""
            return held, "shared in the graph: " + "; ".join(parts) + more
        if isinstance(claim, NeighboursLiked):
            if self.ratings is None:
                return None, "no ratings / neighbours given"
            nb = self.neighbours[claim.user][:claim.k]
            r = np.asarray(self.ratings[nb, claim.item].todense()).ravel()
            actual = int((r >= claim.threshold).sum())
            return actual == claim.n_liked and len(nb) == claim.k, f"{actual} of {len(nb)} did"
        if isinstance(claim, Because):
            return self._check_because(claim)
        if isinstance(claim, AspectStatement):
            raise TypeError("Aspect statements are checked against a review corpus: use check_aspect_statements.")
        raise TypeError(f"Not a claim: {claim!r}")

    def _linked_titles(self, node: int, claim: SameEntity, show: int = 4) -> str:
        """'; also A, B, C' -- the other films the entity links, so a reader can judge an id the graph cannot name."""
        if self.titles is None:
            return ""
        films = [int(i) for i in self.kg.incidence[:, int(node)].nonzero()[0] if i not in (claim.item_a, claim.item_b)]
        if not films:
            return "; no other film"
        more = f" and {len(films) - show} more" if len(films) > show else ""
        return "; also " + ", ".join(self.title(i) for i in films[:show]) + more

    def _check_because(self, claim: Because) -> tuple[bool | None, str]:
        held, evidence, _ = self._check_because_ranked(claim)
        return held, evidence

    def _check_because_ranked(self, claim: Because) -> tuple[bool | None, str, bool | None]:
        history = self._history(claim.user)
        if claim.cause not in set(history.tolist()):
            return False, "the film is not in the history the model reads, so removing it cannot matter", False
        if self.recommender is None:
            return None, "no model given to re-score", None
        others = history[history != claim.cause]
        X = np.zeros((len(history) + 1, self.histories.shape[1]), dtype=np.float32)
        X[:, history] = 1
        X[1 + np.arange(len(history)), history] = 0  # leave-one-out for every history film
        S = np.asarray(self.recommender.score_histories(X), dtype=np.float64)
        drops = S[0, claim.item] - S[1:, claim.item]
        drop = float(drops[history == claim.cause][0])
        typical = float(np.median(drops[history != claim.cause])) if len(others) else 0.0
        seen = history
        if self.ratings is not None:  # rank among the films the user has not rated, as a recommender would list them
            seen = np.union1d(history, self.ratings.indices[self.ratings.indptr[claim.user]:self.ratings.indptr[claim.user + 1]])
        row = 1 + int(np.flatnonzero(history == claim.cause)[0])
        rank0, rank1 = (int(r) for r in rank_among_unseen(S[[0, row]], claim.item, seen))
        position = 1 + int((drops > drop).sum())
        held = drop > self.min_drop and drop >= typical
        return held, (f"removing it changes the score by {-drop:+.4f} (rank {rank0} → {rank1}); a typical film "
                      f"of this history: {-typical:+.4f}; it ranks {position} of {len(history)} films by effect"), \
            rank1 > rank0

    def check(self, claims: Sequence[Claim]) -> pd.DataFrame:
        """One row per claim: ``claim`` (in words), ``type``, ``checked against``, ``verdict``, ``evidence``, and
        ``rank falls`` -- for a causal claim the stricter verdict (removing the film moves the recommended item
        down at least one place among the films the user has not rated); None for a factual claim.

        Parameters
        ----------
        claims : Sequence[Claim]
            Atomic claims, e.g. from :meth:`parse`.

        Returns
        -------
        pd.DataFrame
            The verdict table.
        """
        rows = []
        for claim in claims:
            if isinstance(claim, Because):
                verdict, evidence, rank_falls = self._check_because_ranked(claim)
            else:
                (verdict, evidence), rank_falls = self._check_one(claim), None
            rows.append({"claim": self.describe(claim), "type": "causal" if isinstance(claim, Because) else "factual",
                         "checked against": claim.check, "verdict": verdict, "evidence": evidence,
                         "rank falls": rank_falls})
        return pd.DataFrame(rows, columns=["claim", "type", "checked against", "verdict", "evidence", "rank falls"])

    # -- parsing --
    def _index(self) -> dict[str, list[int]]:
        if self._title_index is None:
            if self.titles is None:
                raise ValueError("Parsing a sentence needs titles: pass titles= to ClaimChecker.")
            index: dict[str, list[int]] = {}
            for i, t in enumerate(self.titles):
                full = str(t).strip().lower()
                index.setdefault(full, []).append(i)
                stem = re.sub(r"\s*\(\d{4}\)$", "", full)  # "Fargo (1996)" can be written "Fargo"
                if stem != full:
                    index.setdefault(stem, []).append(i)
            self._title_index = index
        return self._title_index

    def find_item(self, text: str, prefer: set[int] | None = None) -> int:
        """The internal id of the film named ``text`` (title with or without its year; case-insensitive).

        When several films carry that title (ML-100K lists a few twice), the one in ``prefer`` (the user's
        history and the recommended film, when parsing) is taken if exactly one of them is there.

        Parameters
        ----------
        text : str
            A film title.
        prefer : set[int] | None
            Internal ids to prefer when the title is ambiguous.

        Returns
        -------
        int
            The internal item id.

        Raises
        ------
        ValueError
            When no film, or several, carry the title.
        """
        key = text.strip().strip("*\"'“”‘’ .").lower()
        hits = sorted(set(self._index().get(key, [])))
        if len(hits) > 1 and prefer:
            preferred = [h for h in hits if h in prefer]
            hits = preferred if len(preferred) == 1 else hits
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise ValueError(f"No film is titled {text!r}. Write the title as the course shows it, e.g. "
                             f"{self.title(0)!r}.")
        names = [self.title(h) for h in hits]
        how = ("the catalogue lists this title under several ids (a duplicate entry)" if len(set(names)) == 1
               else "add the year in brackets")
        raise ValueError(f"{text!r} names several films (ids {hits[:4]}, titled {names[:4]}): {how}; or build "
                         "the Claim objects with item ids directly.")

    def _items(self, listing: str, prefer: set[int]) -> list[int]:
        starred = re.findall(r"\*([^*]+)\*", listing)
        parts = starred if starred else re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", listing.strip())
        return [self.find_item(p, prefer) for p in parts if p.strip()]

    def parse(self, sentence: str, user: int, item: int, implied_reason: bool = False) -> list[Claim]:
        """Atomic claims of an explanation ``sentence`` of ``item`` for ``user``.

        Titles may be *starred* (as the course's explanations write them; then titles with commas are
        safe) or plain. Recognised statements (case-insensitive; several per sentence are fine):

        * "because you watched|liked|loved|rated|saw|enjoyed A, B and C" -> Watched and Because, per film;
        * "you watched A, which <KG connective> B" (the connectives of 10's paths, e.g. "has the same director
          as") -> Watched(A), SameEntity(A, B, relation); with ``implied_reason=True`` (the sentence is shown
          as the reason for recommending B) also an implied Because(A), labelled as implied. Without it the
          checker adds no claim the sentence does not state;
        * "N of your K (nearest) neighbours rated [it|B] T or higher" -> NeighboursLiked.

        A sentence with none of them raises a ValueError that lists what can be checked.

        Parameters
        ----------
        sentence : str
            The explanation.
        user : int
            Internal user id.
        item : int
            Internal id of the recommended item.
        implied_reason : bool
            The sentence is shown as the reason for the recommendation.

        Returns
        -------
        list[Claim]
            The atomic claims.

        Raises
        ------
        ValueError
            When the sentence makes no checkable statement.
        """
        s = " ".join(sentence.replace("’", "'").split())
        claims: list[Claim] = []
        prefer = set(self._history(user).tolist()) | {int(item)}

        def add(claim: Claim) -> None:
            if claim not in claims:
                claims.append(claim)

        verbs = r"because you (?:watched|liked|loved|rated|saw|enjoyed) "
        m = re.search(verbs + r"(?P<list>(?:\*[^*]+\*(?:,? and |, )?)+)", s, re.I) or \
            re.search(verbs + r"(?P<list>.+?)(?:,? (?:we|so)\b|,? which\b|[.;]$|$)", s, re.I)
        if m:
            for h in self._items(m.group("list"), prefer):
                add(Watched(user, h))
                add(Because(user, item, h))
        connectives = sorted(((rel, words[1]) for rel, words in READABLE.items()), key=lambda x: -len(x[1]))
        for rel, words in connectives:
            starred = rf"\*(?P<a>[^*]+)\*,? which {re.escape(words)} \*(?P<b>[^*]+)\*"
            plain = rf"you watched (?P<a>[^*]+?),? which {re.escape(words)} (?P<b>[^*]+?)(?:[.;]|, we|$)"
            for pattern in (starred, plain):
                found = list(re.finditer(pattern, s, re.I))
                for m in found:
                    a, b = self.find_item(m.group("a"), prefer), self.find_item(m.group("b"), prefer)
                    add(Watched(user, a))
                    add(SameEntity(a, b, rel))
                    if implied_reason and b == item and Because(user, item, a) not in claims:
                        add(Because(user, item, a, implied=True))
                if found:
                    break
        m = re.search(r"(?P<n>\d+|\w+) of your (?P<k>\d+|\w+) (?:nearest )?neighbou?rs rated (?:it|.+?) "
                      r"(?P<t>\d(?:\.\d)?)(?: stars)? or (?:higher|more|better)", s, re.I)
        if m:
            n, k = (int(x) if x.isdigit() else _NUMBER_WORDS.get(x.lower(), -1) for x in (m.group("n"), m.group("k")))
            add(NeighboursLiked(user, item, n, k, float(m.group("t"))))
        if not claims:
            raise ValueError(f"No checkable claim found in {sentence!r}. The checker reads 'because you watched A "
                             "and B', 'you watched A, which has the same director as B' (any relation of the "
                             "knowledge graph) and 'N of your K nearest neighbours rated it 4 or higher'.")
        return claims

    def check_sentence(self, sentence: str, user: int, item: int, implied_reason: bool = False) -> pd.DataFrame:
        """:meth:`parse` then :meth:`check`: the verdict table of one sentence.

        Parameters
        ----------
        sentence : str
            The explanation.
        user : int
            Internal user id.
        item : int
            Internal id of the recommended item.
        implied_reason : bool
            As in :meth:`parse`.

        Returns
        -------
        pd.DataFrame
            The verdict table.
        """
        return self.check(self.parse(sentence, user, item, implied_reason=implied_reason))
