"""The Dataset contract: ratings with contiguous internal ids, side tables, maps to raw ids, titles.

Taught in 01_eda. Internal ids (0-based ``user`` and ``item``) are what models use; learners
only ever see titles (``Dataset.titles``) and raw ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)


@dataclass
class Dataset:
    """A ratings dataset with contiguous internal ids.

    Attributes:
        name: e.g. ``"ml-100k"``.
        ratings: columns ``user``, ``item`` (internal, 0-based), ``rating``, ``timestamp``.
        items: indexed by internal item id; ``raw_id``, ``title`` (with year), ``name``, ``year`` and
            one 0/1 column per genre in :data:`GENRES`.
        users: indexed by internal user id; ``raw_id``, ``age``, ``gender``, ``occupation``, ``zip``.
        kg: knowledge-graph triples ``head``, ``relation``, ``tail`` (entity ids), or ``None``.
        item_entity: internal item id -> KG entity id for the linked items, or ``None``.
        source: where the data came from (for the record).
        planted_pairs: synthetic data only: the planted (cause item, effect item) pairs.
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
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        kg = f", kg={len(self.kg):,} triples" if self.kg is not None else ""
        return (
            f"Dataset({self.name!r}: {len(self.ratings):,} ratings, {self.n_users:,} users, "
            f"{self.n_items:,} items{kg}; source={self.source!r})"
        )

    # --- id maps -------------------------------------------------------------------------------
    def user_index(self, raw_id) -> int:
        """Internal id of a raw user id; a clear ``KeyError`` if unknown."""
        try:
            return self._user_index[raw_id]
        except KeyError:
            raise KeyError(f"Unknown user id {raw_id!r} in {self.name}: raw user ids run over "
                           f"{len(self._user_index):,} users (see Dataset.users.raw_id).") from None

    def item_index(self, raw_id) -> int:
        """Internal id of a raw item id; a clear ``KeyError`` if unknown."""
        try:
            return self._item_index[raw_id]
        except KeyError:
            raise KeyError(f"Unknown item id {raw_id!r} in {self.name}: raw item ids run over "
                           f"{len(self._item_index):,} items (see Dataset.items.raw_id).") from None

    def titles(self, items: Iterable[int] | int | None = None) -> np.ndarray | str:
        """Display titles of internal item ids (all titles when ``items`` is None)."""
        all_titles = self.items["title"].to_numpy()
        if items is None:
            return all_titles
        if np.isscalar(items):
            return str(all_titles[self._check_items(np.asarray([items]))[0]])
        return all_titles[self._check_items(np.asarray(list(items), dtype=int))]

    def _check_items(self, items: np.ndarray) -> np.ndarray:
        bad = items[(items < 0) | (items >= self.n_items)]
        if len(bad):
            raise IndexError(f"Internal item id(s) {bad[:5].tolist()} out of range 0..{self.n_items - 1}.")
        return items

    # --- matrices ------------------------------------------------------------------------------
    def csr(self, ratings: pd.DataFrame | None = None, *, binary: bool = True) -> sp.csr_matrix:
        """User x item CSR matrix of ``ratings`` (default: all ratings), shape (n_users, n_items).

        ``binary=True`` stores 1 for every observed pair, otherwise the rating value.
        """
        return to_csr(self.ratings if ratings is None else ratings, self.n_users, self.n_items, binary=binary)

    def subset_users(self, n_users: int, seed: int = 0) -> Dataset:
        """A smaller dataset: ``n_users`` random users, the items they rated, ids re-indexed.

        Used for the ``smoke`` size. KG links are kept for the surviving items.
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


def to_csr(ratings: pd.DataFrame, n_users: int, n_items: int, *, binary: bool = True) -> sp.csr_matrix:
    """CSR matrix from a ratings frame with internal ``user``/``item`` columns (duplicates summed)."""
    values = np.ones(len(ratings), dtype=np.float32) if binary else ratings["rating"].to_numpy(np.float32)
    matrix = sp.csr_matrix(
        (values, (ratings["user"].to_numpy(), ratings["item"].to_numpy())), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix
