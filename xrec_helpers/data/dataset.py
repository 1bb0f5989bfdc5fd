"""The Dataset contract: ratings with contiguous internal ids, side tables, maps to raw ids, titles.

Taught in 06_accent (:func:`to_csr`); every notebook reads a :class:`Dataset` from
``load_movielens`` (the first is 01_eda). Internal ids (0-based ``user`` and ``item``) are what models use;
learners only ever see titles (``Dataset.titles``) and raw ids. Raw ids enter only through
``user_index``/``item_index`` (which refuse floats and bools), and every method that takes internal ids refuses
anything but integers, so ``int(3.7)`` or ``True`` never picks a user silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers._ids import check_ids

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)


@dataclass
class Dataset:
    """A ratings dataset with contiguous internal ids.

    Attributes
    ----------
    name : str
        E.g. ``"ml-100k"``.
    ratings : pd.DataFrame
        Columns ``user``, ``item`` (internal, 0-based), ``rating``, ``timestamp``.
    items : pd.DataFrame
        Indexed by internal item id; ``raw_id``, ``title`` (with year), ``name``, ``year`` and
        one 0/1 column per genre in :data:`GENRES`.
    users : pd.DataFrame
        Indexed by internal user id; ``raw_id``, ``age``, ``gender``, ``occupation``, ``zip``.
    kg : pd.DataFrame | None
        Knowledge-graph triples ``head``, ``relation``, ``tail`` (entity ids), or ``None``.
    item_entity : pd.Series | None
        Internal item id -> KG entity id for the linked items, or ``None``.
    source : str
        Where the data came from (for the record).
    planted_pairs : list[tuple[int, int]] | None
        Synthetic data only: the planted (cause item, effect item) pairs.
    """

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    kg: pd.DataFrame | None = None
    item_entity: pd.Series | None = None
    source: str = ""
    planted_pairs: list[tuple[int, int]] | None = None
    _user_index: dict = field(default_factory=dict, repr=False)
    _item_index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {raw: i for i, raw in enumerate(self.users["raw_id"].tolist())}
        self._item_index = {raw: i for i, raw in enumerate(self.items["raw_id"].tolist())}

    @property
    def n_users(self) -> int:
        """Number of users (internal ids run 0..n_users-1)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items (internal ids run 0..n_items-1)."""
        return len(self.items)

    def __repr__(self) -> str:
        kg = f", kg={len(self.kg):,} triples" if self.kg is not None else ""
        return (
            f"Dataset({self.name!r}: {len(self.ratings):,} ratings, {self.n_users:,} users, "
            f"{self.n_items:,} items{kg}; source={self.source!r})"
        )

    # --- id maps -------------------------------------------------------------------------------
    def _raw_to_internal(self, raw, index: dict, what: str, table: str):
        def one(raw_id):
            # A float or bool is never a raw MovieLens id; True == 1 and 1.0 == 1 would hash to raw id 1.
            if isinstance(raw_id, (bool, np.bool_, float, np.floating)):
                raise TypeError(f"Raw {what} ids are the values of Dataset.{table}.raw_id; got {raw_id!r} "
                                f"({type(raw_id).__name__}). Pass the id itself, e.g. {next(iter(index))!r}.")
            try:
                return index[raw_id]
            except (KeyError, TypeError):
                raise KeyError(f"Unknown {what} id {raw_id!r} in {self.name}: raw {what} ids run over "
                               f"{len(index):,} {what}s (see Dataset.{table}.raw_id).") from None

        if isinstance(raw, (list, tuple, np.ndarray, pd.Series, pd.Index)):
            return np.asarray([one(r.item() if isinstance(r, np.generic) else r) for r in raw], dtype=np.int64)
        return one(raw.item() if isinstance(raw, np.generic) else raw)

    def user_index(self, raw_id: object) -> int | np.ndarray:
        """Internal id(s) of raw user id(s) (a scalar gives an int, a list an array); a clear error if unknown.

        Used by :mod:`xrec_helpers.app.compare`; this is the one way from a raw MovieLens id to the internal id
        models take.

        Parameters
        ----------
        raw_id : object
            A raw user id, or a list of them.

        Returns
        -------
        int | np.ndarray
            The internal id (an int) or ids (an array).

        Raises
        ------
        TypeError
            For a float or bool id.
        KeyError
            For a raw id the dataset does not have.
        """
        return self._raw_to_internal(raw_id, self._user_index, "user", "users")

    def item_index(self, raw_id: object) -> int | np.ndarray:
        """Internal id(s) of raw item id(s) (a scalar gives an int, a list an array); a clear error if unknown.

        Taught in 13_your_own_data (raw product ids). With MovieLens, ``data.titles(data.item_index(1))`` is Toy
        Story; ``data.titles(1)`` is internal item 1.

        Parameters
        ----------
        raw_id : object
            A raw item id, or a list of them.

        Returns
        -------
        int | np.ndarray
            The internal id (an int) or ids (an array).

        Raises
        ------
        TypeError
            For a float or bool id.
        KeyError
            For a raw id the dataset does not have.
        """
        return self._raw_to_internal(raw_id, self._item_index, "item", "items")

    def raw_user_id(self, users: int | Iterable[int] | np.ndarray) -> object:
        """Raw id(s) of internal user id(s) (validated: integers in range).

        Parameters
        ----------
        users : int | Iterable[int] | np.ndarray
            Internal user id(s).

        Returns
        -------
        object
            The raw id (for a scalar) or an array of raw ids.
        """
        ids = self.users["raw_id"].to_numpy()[check_ids(users, self.n_users, "user")]
        return ids[0] if np.isscalar(users) else ids

    def raw_item_id(self, items: int | Iterable[int] | np.ndarray) -> object:
        """Raw id(s) of internal item id(s) (validated: integers in range).

        Parameters
        ----------
        items : int | Iterable[int] | np.ndarray
            Internal item id(s).

        Returns
        -------
        object
            The raw id (for a scalar) or an array of raw ids.
        """
        ids = self.items["raw_id"].to_numpy()[check_ids(items, self.n_items, "item")]
        return ids[0] if np.isscalar(items) else ids

    def titles(self, items: Iterable[int] | int | None = None) -> np.ndarray | str:
        """Display titles of *internal* item ids (all titles when ``items`` is None).

        Ids must be integers (a float such as 1.7 is refused, not truncated); raw ids go through
        :meth:`item_index` first.

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
        if np.isscalar(items):  # ints, and also floats/strings/bools, which check_ids refuses
            return str(all_titles[check_ids(items, self.n_items, "item")[0]])
        return all_titles[self._check_items(items)]

    def _check_items(self, items) -> np.ndarray:
        return check_ids(items, self.n_items, "item")

    # --- matrices ------------------------------------------------------------------------------
    def csr(self, ratings: pd.DataFrame | None = None, *, binary: bool = True,
            duplicates: str = "error") -> sp.csr_matrix:
        """User x item CSR matrix of ``ratings`` (default: all ratings), shape (n_users, n_items).

        ``binary=True`` stores 1 for every observed pair, otherwise the rating value; see
        :func:`to_csr` for the checks and for ``duplicates``.

        Parameters
        ----------
        ratings : pd.DataFrame | None
            A subset of :attr:`ratings` (default: all of them).
        binary : bool
            Store 1 for every observed pair instead of the rating.
        duplicates : str
            How a repeated (user, item) pair is combined (see :func:`to_csr`).

        Returns
        -------
        sp.csr_matrix
            Matrix of shape (n_users, n_items).
        """
        return to_csr(self.ratings if ratings is None else ratings, self.n_users, self.n_items, binary=binary,
                      duplicates=duplicates)

    def subset_users(self, n_users: int, seed: int = 0) -> Dataset:
        """A smaller dataset: ``n_users`` random users, the items they rated, ids re-indexed.

        Used for the ``smoke`` size. KG links are kept for the surviving items.

        Parameters
        ----------
        n_users : int
            How many users to keep.
        seed : int
            Seed of the user sample.

        Returns
        -------
        Dataset
            The smaller dataset (this one is unchanged).
        """
        if n_users >= self.n_users:
            return self
        rng = np.random.default_rng(seed)
        keep_users = np.sort(rng.choice(self.n_users, size=n_users, replace=False))
        ratings = self.ratings[self.ratings["user"].isin(keep_users)]
        keep_items = np.sort(ratings["item"].unique())
        umap = pd.Series(np.arange(len(keep_users)), index=keep_users)
        imap = pd.Series(np.arange(len(keep_items)), index=keep_items)
        new_ratings = ratings.assign(user=umap[ratings["user"]].to_numpy(), item=imap[ratings["item"]].to_numpy())
        item_entity = None
        if self.item_entity is not None:
            linked = self.item_entity[self.item_entity.index.isin(keep_items)]
            item_entity = pd.Series(linked.to_numpy(), index=imap[linked.index].to_numpy(), name="entity")
        return Dataset(
            name=f"{self.name}[{n_users} users]",
            ratings=new_ratings.reset_index(drop=True),
            items=self.items.loc[keep_items].reset_index(drop=True),
            users=self.users.loc[keep_users].reset_index(drop=True),
            kg=self.kg,
            item_entity=item_entity,
            source=self.source,
        )


DUPLICATE_RULES = ("error", "mean", "max", "last", "sum")


def _integral(column: pd.Series, what: str) -> np.ndarray:
    """An id column as integers: a float column is accepted only when every value is a whole number."""
    values = column.to_numpy()
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise TypeError(f"The '{what}' column holds non-integer values (e.g. NaN or 3.7): internal {what} ids "
                            "are whole numbers. Map raw ids with Dataset.user_index / Dataset.item_index.")
        return values.astype(np.int64)
    return values


def to_csr(ratings: pd.DataFrame, n_users: int, n_items: int, *, binary: bool = True,
           duplicates: str = "error") -> sp.csr_matrix:
    """CSR matrix from a ratings frame with internal ``user``/``item`` columns.

    Taught in 06_accent. Checked at this boundary, so no model sees silently wrong
    input: ids must be integers in range; ratings must be finite (NaN is not "watched"), and with ``binary=False``
    non-zero (a stored 0 reads as "not rated"). A (user, item) pair that occurs twice is an error with
    ``binary=False`` unless ``duplicates`` says how to combine the ratings (``"mean"``, ``"max"``, ``"last"`` row,
    or ``"sum"``); with ``binary=True`` a repeated pair is still one 1.

    Parameters
    ----------
    ratings : pd.DataFrame
        Ratings with internal ``user`` and ``item`` columns (and ``rating``, ``timestamp`` where used).
    n_users, n_items : int
        Shape of the matrix.
    binary : bool
        Store 1 for every observed pair instead of the rating.
    duplicates : str
        ``"error"``, ``"mean"``, ``"max"``, ``"last"`` or ``"sum"``: how a repeated pair is combined when
        ``binary=False``.

    Returns
    -------
    sp.csr_matrix
        Matrix of shape (n_users, n_items).

    Raises
    ------
    TypeError
        For ids that are not integers.
    IndexError
        For ids out of range.
    ValueError
        For a missing column, a non-finite rating, a stored 0 with ``binary=False``, a repeated pair with
        ``duplicates="error"`` or an unknown ``duplicates`` rule.
    """
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(f"duplicates={duplicates!r} must be one of {DUPLICATE_RULES}.")
    missing = [c for c in ("user", "item") + (() if binary else ("rating",)) if c not in ratings.columns]
    if missing:
        raise ValueError(f"The ratings frame lacks column(s) {missing}: it needs internal 'user' and 'item' ids"
                         + ("" if binary else " and a 'rating'") + ".")
    users = check_ids(_integral(ratings["user"], "user"), n_users, "user")
    items = check_ids(_integral(ratings["item"], "item"), n_items, "item")
    if "rating" in ratings.columns:
        values = pd.to_numeric(ratings["rating"], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            first = ratings.index[np.flatnonzero(bad)[0]]
            raise ValueError(f"{int(bad.sum())} rating(s) are missing or not finite (first at row {first!r}: "
                             f"{ratings['rating'].iloc[np.flatnonzero(bad)[0]]!r}). Drop or fill those rows first.")
    if binary:
        values = np.ones(len(ratings), dtype=np.float32)
    else:
        values = ratings["rating"].to_numpy(np.float32)
        if (values == 0).any():
            raise ValueError(f"{int((values == 0).sum())} rating(s) are 0: in a sparse matrix a stored 0 reads as "
                             "'not rated'. Shift the rating scale or drop those rows.")
        key = users * np.int64(n_items) + items
        if len(np.unique(key)) != len(key):
            if duplicates == "error":
                frame = pd.DataFrame({"user": users, "item": items})
                dup = frame[frame.duplicated(keep=False)].iloc[0]
                n_dup = int(frame.duplicated().sum())
                raise ValueError(
                    f"{n_dup} (user, item) pair(s) occur more than once (e.g. user {dup['user']}, item {dup['item']}); "
                    "their ratings would be added up. Deduplicate the frame or pass duplicates='mean', 'max', "
                    "'last' or 'sum'.")
            if duplicates != "sum":
                agg = pd.DataFrame({"key": key, "value": values}).groupby("key", sort=False)["value"].agg(duplicates)
                key, values = agg.index.to_numpy(np.int64), agg.to_numpy(np.float32)
                users, items = key // n_items, key % n_items
    matrix = sp.csr_matrix((values, (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix
