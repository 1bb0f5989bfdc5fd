"""Review corpora: a synthetic one with planted aspects, and a loader for Amazon 5-core JSON.

Taught in 09_attention_reviews. No real review corpus is reachable offline, so the notebook's
default is a generated one whose structure is planted: every user cares about one product aspect
(durability, price, fun, safety), every item has a quality per aspect, every review talks about one
aspect with a sentiment word, and ratings follow preference x quality plus noise.
Because we planted it, we know which of an item's reviews matter to a given user (those about the
user's top aspect), so review-level attention can be graded against truth.

``load_amazon_5core`` reads McAuley's 5-core files (one JSON object per line with ``reviewerID``,
``asin``, ``overall``, ``reviewText``) into the same :class:`ReviewCorpus`, without aspects.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.data.dataset import to_csr

ASPECTS: tuple[str, ...] = ("durability", "price", "fun", "safety")
PAD, OOV = 0, 1  # token ids reserved in every vocabulary

# Aspect nouns carry no sentiment and sentiment words carry no aspect: a review encoder must read
# the two *together* (a window of 3 tokens) to know "which aspect is good or bad".
_ASPECT_WORDS = {
    "durability": ["durability", "build", "material", "lifetime", "construction"],
    "price": ["price", "value", "cost", "money", "deal"],
    "fun": ["fun", "gameplay", "entertainment", "playtime", "excitement"],
    "safety": ["safety", "edges", "paint", "pieces", "finish"],
}
_POSITIVE = ["great", "excellent", "solid", "wonderful", "impressive", "good"]
_NEGATIVE = ["poor", "terrible", "flimsy", "awful", "disappointing", "bad"]
_OPENERS = ["i bought this for my son", "got it for my daughter", "a birthday gift for my nephew",
            "arrived quickly in a big box", "the kids play with it every week", "we ordered two of these"]
_JOINERS = ["and", "but", "also", "overall", "honestly"]
_TEMPLATES = ["the {noun} is {adj}", "{adj} {noun} overall", "really {adj} {noun}", "{noun} feels {adj}"]
_TITLE_A = ["Wooden", "Plush", "Magnetic", "Glow", "Turbo", "Mini", "Deluxe", "Classic", "Jumbo", "Pocket"]
_TITLE_B = ["Train Set", "Puzzle", "Robot", "Doll House", "Kite", "Blocks", "Race Car", "Board Game",
            "Dinosaur", "Drone", "Tea Set", "Marble Run"]


def tokenize(text: str) -> list[str]:
    """Lower-case words: every non-letter becomes a space (as Kim's ``clean_str`` does first).

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    list[str]
        The words.
    """
    return re.sub(r"[^a-z]+", " ", str(text).lower()).split()


@dataclass
class ReviewCorpus:
    """Reviews with contiguous internal ids and their token ids.

    Attributes
    ----------
    name
        where it came from.
    reviews
        one row per review: ``review_id`` (row of ``tokens``), ``user``, ``item``,
        ``rating`` (stars), ``text``, and for synthetic corpora ``aspects`` (tuple of names).
    users
        indexed by internal user id: ``raw_id``; synthetic corpora add ``top_aspect`` and one
        preference column per aspect (``pref_<aspect>``).
    items
        indexed by internal item id: ``raw_id``, ``title``; synthetic corpora add
        ``quality_<aspect>`` columns.
    tokens
        (n_reviews_total, max_len) int32 token ids, 0-padded, row = ``review_id``. Subsets made
        by :meth:`split` share it, so a review id means the same review everywhere.
    vocab
        the words; ``vocab[t]`` is token ``t`` (0 = padding, 1 = unknown word).
    aspects
        the planted aspect names (empty for real data).
    """

    name: str
    reviews: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    tokens: np.ndarray
    vocab: list[str]
    aspects: tuple[str, ...] = ()
    source: str = ""
    _csr: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_users(self) -> int:
        """Number of users (internal ids run 0..n_users-1)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items (internal ids run 0..n_items-1)."""
        return len(self.items)

    def __repr__(self) -> str:
        return (f"ReviewCorpus({self.name!r}: {len(self.reviews):,} reviews, {self.n_users:,} users, "
                f"{self.n_items:,} items, vocabulary {len(self.vocab):,}, {self.tokens.shape[1]} tokens/review)")

    def titles(self, items: Iterable[int] | int | None = None) -> np.ndarray | str:
        """Display titles of internal item ids (all titles when ``items`` is None).

        Parameters
        ----------
        items : Iterable[int] | int | None
            Internal item id(s); None for every item.

        Returns
        -------
        np.ndarray | str
            One title (for a scalar) or an array of titles.
        """
        all_titles = self.items["title"].to_numpy()
        if items is None:
            return all_titles
        if np.isscalar(items):
            return str(all_titles[int(items)])
        return all_titles[np.asarray(list(items), dtype=int)]

    def csr(self, *, binary: bool = True) -> sp.csr_matrix:
        """User x item matrix of this corpus' reviews (1 per review, or the stars).

        Parameters
        ----------
        binary : bool
            Store 1 per review instead of its stars.

        Returns
        -------
        sp.csr_matrix
            Matrix of shape (n_users, n_items).
        """
        return to_csr(self.reviews, self.n_users, self.n_items, binary=binary)

    def top_aspect(self, users: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """The planted aspect each user cares most about (synthetic corpora only).

        Parameters
        ----------
        users : np.ndarray | Sequence[int] | None
            Internal user ids (default: all).

        Returns
        -------
        np.ndarray
            Aspect index per user.
        """
        if "top_aspect" not in self.users:
            raise ValueError(f"{self.name} has no planted aspects: only synthetic_reviews(...) corpora do.")
        top = self.users["top_aspect"].to_numpy()
        return top if users is None else top[np.asarray(users, dtype=int)]

    def relevant(self, user: int, review_ids: np.ndarray) -> np.ndarray:
        """Ground truth: which of ``review_ids`` discuss ``user``'s planted top aspect (bool array).

        Parameters
        ----------
        user : int
            Internal user id.
        review_ids : np.ndarray
            Review ids to judge.

        Returns
        -------
        np.ndarray
            One bool per review id.
        """
        aspect = self.top_aspect([user])[0]
        ids = np.asarray(review_ids, dtype=int)
        pos = self._review_index().get_indexer(ids)
        if (pos < 0).any():
            raise KeyError(f"Unknown review id(s) {ids[pos < 0][:5].tolist()} in {self.name}.")
        aspects = self.reviews["aspects"].to_numpy()
        return np.array([aspect in aspects[p] for p in pos], dtype=bool)

    def _review_index(self) -> pd.Index:
        """``review_id`` as an index (rebuilt when ``reviews`` is replaced), for fast look-ups by id."""
        cached = self.__dict__.get("_by_review_id")
        if cached is None or cached[0] is not self.reviews:
            cached = (self.reviews, pd.Index(self.reviews["review_id"].to_numpy()))
            self.__dict__["_by_review_id"] = cached
        return cached[1]

    def subset(self, mask: np.ndarray, name: str) -> ReviewCorpus:
        """The same users, items, vocabulary and tokens, with only the reviews where ``mask`` is True.

        Parameters
        ----------
        mask : np.ndarray
            One bool per review.
        name : str
            Name of the new corpus.

        Returns
        -------
        ReviewCorpus
            The smaller corpus.
        """
        return replace(self, name=name, reviews=self.reviews[np.asarray(mask, dtype=bool)].reset_index(drop=True))

    def split(self, test_frac: float = 0.1, seed: int = 0) -> tuple[ReviewCorpus, ReviewCorpus]:
        """Random train/test split of the reviews; every test user and item keeps >= 1 training review.

        The test reviews are the targets: a model is trained and its documents are built on ``train``
        only, so a test review's text can never reach the model.

        Parameters
        ----------
        test_frac : float
            Share of reviews held out.
        seed : int
            Seed of the split.

        Returns
        -------
        tuple[ReviewCorpus, ReviewCorpus]
            (train, test) corpora.
        """
        if not 0.0 < test_frac < 1.0:
            raise ValueError(f"test_frac={test_frac} must lie strictly between 0 and 1.")
        rng = np.random.default_rng(seed)
        test = rng.random(len(self.reviews)) < test_frac
        # Move back test reviews whose user or item would have no training review at all.
        for col in ("user", "item"):
            frame = self.reviews.assign(test=test)
            n_train = frame.groupby(col)["test"].transform(lambda s: (~s).sum()).to_numpy()
            first = ~frame.duplicated(col).to_numpy()
            test &= ~((n_train == 0) & first)
        return self.subset(~test, f"{self.name}[train]"), self.subset(test, f"{self.name}[test]")


def _vocabulary(token_lists: Sequence[list[str]], min_count: int) -> list[str]:
    counts = Counter(w for toks in token_lists for w in toks)
    return ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_count)


def _encode(token_lists: Sequence[list[str]], vocab: list[str], max_len: int) -> np.ndarray:
    index = {w: i for i, w in enumerate(vocab)}
    out = np.full((len(token_lists), max_len), PAD, dtype=np.int32)
    for r, toks in enumerate(token_lists):
        ids = [index.get(w, OOV) for w in toks[:max_len]]
        out[r, :len(ids)] = ids
    return out


def synthetic_reviews(
    n_users: int = 600,
    n_items: int = 200,
    reviews_per_user: int = 12,
    top_weight: float = 1.0,
    second_aspect_prob: float = 0.0,
    own_aspect_prob: float = 0.5,
    sentiment_noise: float = 0.05,
    rating_noise: float = 0.3,
    bias_scale: float = 0.1,
    max_len: int = 18,
    seed: int = 0,
) -> ReviewCorpus:
    """A toy-shop review corpus with planted aspect preferences, qualities and review topics.

    Each user's preference puts ``top_weight`` on one aspect and the rest on a second one (the
    default 1.0: a user cares about one aspect only); each item's quality per aspect is uniform in
    [-1, 1], independently across aspects, so knowing an item's durability says nothing about its
    fun. A user writes ``reviews_per_user`` reviews (about 1 to 2x that, items drawn with a popularity
    skew); each review discusses the author's top aspect (probability ``own_aspect_prob``) or an
    aspect drawn uniformly, plus a second aspect with ``second_aspect_prob``; the sentiment word of
    an aspect is positive with probability ``sigmoid(6 q)`` (flipped with ``sentiment_noise``).
    Stars = round(3 + 2 p.q + item bias + user bias + noise), clipped to 1..5, biases with standard
    deviation ``bias_scale``.

    So with the defaults the rating of (u, i) depends on i's quality on u's aspect only, and each
    review of i reports one aspect's quality: the reviews that matter to ``u`` are the ones about
    ``u``'s top aspect, and :meth:`ReviewCorpus.relevant` returns that ground truth. Taught in
    09_attention_reviews.

    Parameters
    ----------
    n_users, n_items : int
        Size of the corpus.
    reviews_per_user : int
        Reviews each user writes (about).
    top_weight : float
        Weight of each user's top aspect.
    second_aspect_prob : float
        Probability that a review discusses a second aspect.
    own_aspect_prob : float
        Probability that a review discusses the author's top aspect.
    sentiment_noise : float
        Probability that a sentiment word is flipped.
    rating_noise : float
        Standard deviation of the rating noise.
    bias_scale : float
        Standard deviation of the user and item biases.
    max_len : int
        Tokens kept per review.
    seed : int
        Seed of every draw.

    Returns
    -------
    ReviewCorpus
        The corpus, with its planted truth.
    """
    if n_users < 2 or n_items < 2:
        raise ValueError(f"Need at least 2 users and 2 items, got n_users={n_users}, n_items={n_items}.")
    if not 1 <= reviews_per_user < n_items:
        raise ValueError(f"reviews_per_user={reviews_per_user} must be between 1 and n_items-1={n_items - 1}.")
    for name, value in (("top_weight", top_weight), ("second_aspect_prob", second_aspect_prob),
                        ("own_aspect_prob", own_aspect_prob), ("sentiment_noise", sentiment_noise)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value} is a probability or share: it must lie in [0, 1].")
    if max_len < 12:
        raise ValueError(f"max_len={max_len} is too short to hold a review with two aspects; use >= 12.")
    rng = np.random.default_rng(seed)
    n_aspects = len(ASPECTS)
    top = rng.integers(0, n_aspects, n_users)
    second = (top + rng.integers(1, n_aspects, n_users)) % n_aspects
    pref = np.zeros((n_users, n_aspects))
    pref[np.arange(n_users), top] = top_weight
    pref[np.arange(n_users), second] += 1.0 - top_weight
    quality = rng.uniform(-1.0, 1.0, (n_items, n_aspects))
    item_bias = rng.normal(0.0, bias_scale, n_items)
    user_bias = rng.normal(0.0, bias_scale, n_users)
    popularity = rng.pareto(2.0, n_items) + 1.0
    popularity /= popularity.sum()

    rows, token_lists = [], []
    for u in range(n_users):
        n = int(np.clip(rng.integers(reviews_per_user, 2 * reviews_per_user + 1), 1, n_items - 1))
        for t, i in enumerate(rng.choice(n_items, size=n, replace=False, p=popularity)):
            main = top[u] if rng.random() < own_aspect_prob else rng.integers(0, n_aspects)
            aspects = [int(main)]
            if rng.random() < second_aspect_prob:
                aspects.append(int((main + rng.integers(1, n_aspects)) % n_aspects))
            words = str(rng.choice(_OPENERS)).split()
            for k, a in enumerate(aspects):
                positive = rng.random() < 1.0 / (1.0 + np.exp(-6.0 * quality[i, a]))
                positive ^= rng.random() < sentiment_noise
                adj = rng.choice(_POSITIVE if positive else _NEGATIVE)
                noun = rng.choice(_ASPECT_WORDS[ASPECTS[a]])
                words += ([str(rng.choice(_JOINERS))] if k else []) + rng.choice(_TEMPLATES).format(
                    noun=noun, adj=adj).split()
            stars = 3.0 + 2.0 * pref[u] @ quality[i] + item_bias[i] + user_bias[u] + rng.normal(0, rating_noise)
            text = (" ".join(words[:max_len]) + ".").capitalize()
            rows.append((u, int(i), float(np.clip(np.rint(stars), 1, 5)), text,
                         tuple(ASPECTS[a] for a in aspects), 1_500_000_000 + 86_400 * (u * 50 + t)))
            token_lists.append(tokenize(text))
    reviews = pd.DataFrame(rows, columns=["user", "item", "rating", "text", "aspects", "timestamp"])
    reviews.insert(0, "review_id", np.arange(len(reviews)))
    vocab = _vocabulary(token_lists, min_count=1)
    users = pd.DataFrame({"raw_id": [f"U{u:05d}" for u in range(n_users)],
                          "top_aspect": np.array(ASPECTS)[top],
                          **{f"pref_{a}": pref[:, k] for k, a in enumerate(ASPECTS)}})
    titles = [f"{_TITLE_A[i % len(_TITLE_A)]} {_TITLE_B[(i // len(_TITLE_A)) % len(_TITLE_B)]} No. {i + 1}"
              for i in range(n_items)]
    items = pd.DataFrame({"raw_id": [f"B{i:08d}" for i in range(n_items)], "title": titles,
                          **{f"quality_{a}": quality[:, k] for k, a in enumerate(ASPECTS)}})
    return ReviewCorpus(name="synthetic-reviews", reviews=reviews, users=users, items=items,
                        tokens=_encode(token_lists, vocab, max_len), vocab=vocab, aspects=ASPECTS,
                        source=f"synthetic_reviews(n_users={n_users}, n_items={n_items}, seed={seed})")


_REQUIRED = ("reviewerID", "asin", "overall", "reviewText")


def _parse_line(line: str, number: int, path: Path) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        try:  # the older, non-5-core dumps are Python literals, not JSON
            return ast.literal_eval(line)
        except (ValueError, SyntaxError):
            raise ValueError(f"{path}, line {number}: neither JSON nor a Python dict literal. Amazon 5-core "
                             "files hold one review object per line.") from None


def load_amazon_5core(path: str | Path, *, max_len: int = 64, min_count: int = 1,
                      max_reviews: int | None = None) -> ReviewCorpus:
    """Read an Amazon 5-core review file (``.json`` or ``.json.gz``, one object per line).

    Keeps ``reviewerID`` -> user, ``asin`` -> item, ``overall`` -> rating, ``reviewText`` -> text
    (and ``unixReviewTime`` when present). Ids are mapped to contiguous internal ids in order of
    first appearance; words seen fewer than ``min_count`` times become the unknown token. Items
    have no titles in these files, so the title is ``"asin <ASIN>"``. Taught in 09_attention_reviews
    (point ``REVIEWS_PATH`` at e.g. ``reviews_Toys_and_Games_5.json.gz``).

    Parameters
    ----------
    path : str | Path
        The ``.json`` or ``.json.gz`` file.
    max_len : int
        Tokens kept per review.
    min_count : int
        Fewest occurrences of a word in the vocabulary.
    max_reviews : int | None
        Read at most this many reviews.

    Returns
    -------
    ReviewCorpus
        The corpus.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No review file at {path}. Download an Amazon 5-core file (e.g. "
                                "reviews_Toys_and_Games_5.json.gz from McAuley's SNAP page) and pass its path.")
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            rec = _parse_line(line, number, path)
            missing = [k for k in _REQUIRED if k not in rec]
            if missing:
                raise ValueError(f"{path}, line {number}: missing field(s) {missing}; a 5-core review has "
                                 f"{list(_REQUIRED)}.")
            records.append(rec)
            if max_reviews is not None and len(records) >= max_reviews:
                break
    if not records:
        raise ValueError(f"{path} holds no reviews.")
    frame = pd.DataFrame({
        "raw_user": [r["reviewerID"] for r in records], "raw_item": [r["asin"] for r in records],
        "rating": [float(r["overall"]) for r in records], "text": [r["reviewText"] or "" for r in records],
        "timestamp": [int(r.get("unixReviewTime", 0)) for r in records],
    })
    raw_users = pd.unique(frame["raw_user"])
    raw_items = pd.unique(frame["raw_item"])
    frame["user"] = pd.Series(np.arange(len(raw_users)), index=raw_users)[frame["raw_user"]].to_numpy()
    frame["item"] = pd.Series(np.arange(len(raw_items)), index=raw_items)[frame["raw_item"]].to_numpy()
    token_lists = [tokenize(t) for t in frame["text"]]
    vocab = _vocabulary(token_lists, min_count=min_count)
    reviews = frame[["user", "item", "rating", "text", "timestamp"]].copy()
    reviews["aspects"] = [()] * len(reviews)
    reviews.insert(0, "review_id", np.arange(len(reviews)))
    return ReviewCorpus(name=path.name, reviews=reviews, users=pd.DataFrame({"raw_id": raw_users}),
                        items=pd.DataFrame({"raw_id": raw_items, "title": [f"asin {a}" for a in raw_items]}),
                        tokens=_encode(token_lists, vocab, max_len), vocab=vocab, source=str(path))


# --- The planted vocabulary, as an accessor: which word names which aspect, which word is a verdict. ---
# Taught in 12_generated_explanations: a sentence about a synthetic toy splits into (aspect, polarity)
# claims with this lexicon, and the planted qualities say whether each claim is true.
ASPECT_WORDS: dict[str, tuple[str, ...]] = {a: tuple(words) for a, words in _ASPECT_WORDS.items()}
POSITIVE_WORDS: tuple[str, ...] = tuple(_POSITIVE)
NEGATIVE_WORDS: tuple[str, ...] = tuple(_NEGATIVE)
_ASPECT_OF = {w: a for a, words in _ASPECT_WORDS.items() for w in words}
_POLARITY_OF = {**{w: 1 for w in _POSITIVE}, **{w: -1 for w in _NEGATIVE}}


def aspect_mentions(text: str) -> list[tuple[str, int | None]]:
    """The (aspect, polarity) statements a synthetic review makes, in order, without repeats.

    Every aspect noun of the planted lexicon (``ASPECT_WORDS``) is one mention; its polarity is +1 or -1
    from the sentiment word the corpus templates put next to it ("the build is *great*", "*poor* value
    overall", "fun feels *flimsy*"): two words after the noun when joined by "is"/"feels", else the word
    just before it, else the nearest sentiment word at most two words away; ``None`` when there is none
    (an aspect named without a verdict). Works on any text, e.g. a generated sentence. Taught in
    12_generated_explanations.

    Parameters
    ----------
    text : str
        A review or a generated sentence.

    Returns
    -------
    list[tuple[str, int | None]]
        (aspect, +1 / -1 / None) per mentioned aspect.
    """
    tokens = tokenize(text)
    out: list[tuple[str, int | None]] = []
    for k, word in enumerate(tokens):
        aspect = _ASPECT_OF.get(word)
        if aspect is None:
            continue
        polarity = None
        if k + 2 < len(tokens) and tokens[k + 1] in ("is", "feels") and tokens[k + 2] in _POLARITY_OF:
            polarity = _POLARITY_OF[tokens[k + 2]]
        elif k >= 1 and tokens[k - 1] in _POLARITY_OF:
            polarity = _POLARITY_OF[tokens[k - 1]]
        else:
            near = [(abs(j - k), j) for j in range(max(0, k - 2), min(len(tokens), k + 3))
                    if tokens[j] in _POLARITY_OF]
            if near:
                polarity = _POLARITY_OF[tokens[min(near)[1]]]
        if (aspect, polarity) not in out:
            out.append((aspect, polarity))
    return out


def planted_truth(corpus: ReviewCorpus) -> tuple[np.ndarray, np.ndarray]:
    """(quality, top) of a synthetic corpus: items x aspects planted qualities and each user's top aspect index.

    Taught in 12_generated_explanations. ``quality[i, a]`` is item i's planted quality on ``corpus.aspects[a]``
    (in [-1, 1]; positive = good); ``top[u]`` indexes user u's planted top aspect.

    Parameters
    ----------
    corpus : ReviewCorpus
        A corpus from :func:`synthetic_reviews`.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        Qualities (n_items, n_aspects) and top aspect per user.
    """
    if not corpus.aspects or "top_aspect" not in corpus.users:
        raise ValueError(f"{corpus.name} has no planted truth: only synthetic_reviews(...) corpora carry it.")
    quality = corpus.items[[f"quality_{a}" for a in corpus.aspects]].to_numpy(dtype=float)
    index = {a: k for k, a in enumerate(corpus.aspects)}
    top = np.array([index[a] for a in corpus.users["top_aspect"]], dtype=np.int64)
    return quality, top
