"""Typed item–item relations for RCF (Xin et al., SIGIR 2019), built from the Freebase item KG.

Taught in 06_accent (the RCF half of ACCENT's Table 1). RCF relates two movies by *relation types* and
*relation values*: type 0 "no shared attribute", type 1 "same genre", type 2 "same director", type 3
"same actor", each typed relation carrying its value (the shared genre, director or actor). The RCF paper
takes these from MovieLens metadata; the course's ML-100K carries the RecBole Freebase KG instead, whose
``genre``, ``director`` and ``actor`` relations (:func:`xrec_helpers.data.kg.build_item_kg`) are the
closest Freebase relation types to that metadata.

Two items can share several values of a type (two actors, say). RCF gives a pair one value per type, so
the *rarest* shared entity is kept (the one linked to the fewest catalogue items; ties: the smallest node
id): the most specific link. Entities linked to fewer than two of the items are dropped (they relate no
pair). Items without KG links relate to every other item by type 0 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xrec_helpers.data.kg import ItemKG

#: RCF's relation types, by index: 0 is "no shared attribute", then the three typed relations.
RELATION_TYPES: tuple[str, ...] = ("none", "genre", "director", "actor")


@dataclass(frozen=True)
class ItemRelations:
    """The relation types and values of every (item, item) pair, as dense arrays (06_accent, RCF).

    Attributes
    ----------
    values : numpy.ndarray
        Shape ``(n_types - 1, n_items, n_items)``, int32: ``values[t - 1, i, j]`` is the value id shared by
        items ``i`` and ``j`` through typed relation ``t`` (1..3), or -1 when they share none (and on the
        diagonal). A pair sharing no typed value is related by type 0.
    value_type : numpy.ndarray
        Shape ``(n_values,)``: the relation type (1..3) of each value.
    value_entity : numpy.ndarray
        Shape ``(n_values,)``: the Freebase entity id of each value.
    item_values : scipy.sparse.csr_matrix
        ``(n_items, n_values)`` 0/1 incidence: every value an item has (not only the rarest shared one).
    types : tuple of str
        Relation type names by index (:data:`RELATION_TYPES` by default).
    """

    values: np.ndarray
    value_type: np.ndarray
    value_entity: np.ndarray
    item_values: sp.csr_matrix
    types: tuple[str, ...] = RELATION_TYPES

    @property
    def n_items(self) -> int:
        """Number of items related."""
        return self.values.shape[1]

    @property
    def n_values(self) -> int:
        """Number of relation values (entities shared by at least two items)."""
        return len(self.value_type)

    @property
    def n_types(self) -> int:
        """Number of relation types, type 0 ("none") included."""
        return len(self.types)

    def relation(self, i: int, j: int) -> list[tuple[str, int]]:
        """The relations of one pair: ``[(type name, value id), ...]``, or ``[("none", -1)]``.

        Parameters
        ----------
        i, j : int
            Item ids.

        Returns
        -------
        list of (str, int)
        """
        if not (0 <= int(i) < self.n_items and 0 <= int(j) < self.n_items):
            raise IndexError(f"Item ids run 0..{self.n_items - 1}; got ({i}, {j}).")
        out = [(self.types[t + 1], int(v)) for t, v in enumerate(self.values[:, int(i), int(j)]) if v >= 0]
        return out or [(self.types[0], -1)]

    def type_counts(self) -> dict[str, int]:
        """How many ordered item pairs (i != j) each relation type relates.

        Returns
        -------
        dict[str, int]
        """
        typed = self.values >= 0
        n = self.n_items
        none = int(n * (n - 1) - (typed.any(0).sum()))
        return {self.types[0]: none, **{self.types[t + 1]: int(typed[t].sum()) for t in range(len(typed))}}


def no_relations(n_items: int) -> ItemRelations:
    """Relations without metadata: every pair is related by type 0 ("no shared attribute") only.

    What :class:`xrec_helpers.models.rcf.RCF` uses when given no relations (06_accent).

    Parameters
    ----------
    n_items : int
        Number of items.

    Returns
    -------
    ItemRelations
    """
    return ItemRelations(values=np.full((len(RELATION_TYPES) - 1, n_items, n_items), -1, dtype=np.int32),
                         value_type=np.zeros(0, dtype=np.int64), value_entity=np.zeros(0, dtype=object),
                         item_values=sp.csr_matrix((n_items, 0), dtype=np.float32))


def item_relations(kg: ItemKG, items: Sequence[int] | np.ndarray | None = None, *,
                   relations: Sequence[str] = ("genre", "director", "actor")) -> ItemRelations:
    """RCF's typed item–item relations from the Freebase item KG (see the module docstring).

    Taught in 06_accent. For the ACCENT split pass ``items=split.items`` (new item id -> the dataset's
    internal id, which is the KG's item id).

    Parameters
    ----------
    kg : ItemKG
        From :func:`xrec_helpers.data.kg.build_item_kg`.
    items : sequence of int, optional
        The KG item id of each item to relate, in the model's item order (default: every KG item, in order).
    relations : sequence of str
        The KG relations that become types 1, 2, ... (default: genre, director, actor, as RCF).

    Returns
    -------
    ItemRelations

    Raises
    ------
    ValueError
        For an item id outside the KG, or repeated relation names. (A relation the KG lacks relates no pair.)
    """
    items = np.arange(kg.n_items) if items is None else np.asarray(items, dtype=np.int64)
    if items.ndim != 1 or len(items) == 0:
        raise ValueError("items must be a non-empty 1-D array of KG item ids (e.g. AccentSplit.items).")
    if items.min() < 0 or items.max() >= kg.n_items:
        raise ValueError(f"items hold ids outside the KG's 0..{kg.n_items - 1}: pass the dataset's internal item ids "
                         "(AccentSplit.items maps the split's item ids to them).")
    relations = tuple(relations)
    if len(set(relations)) != len(relations) or not relations:
        raise ValueError(f"relations must be distinct KG relation names, got {relations}.")
    n = len(items)
    A = kg.incidence[items].tocsc()  # (n, nodes): restricted to the related items
    degree = np.diff(A.indptr)
    values = np.full((len(relations), n, n), -1, dtype=np.int32)
    value_nodes, value_types = [], []
    for t, rel in enumerate(relations):
        nodes = np.flatnonzero((kg.node_relation == rel) & (degree >= 2))
        # Most common first, so the rarest shared node is written last and wins (ties: the smallest node id).
        nodes = nodes[np.lexsort((-nodes, -degree[nodes]))]
        first = len(value_nodes)
        value_nodes.extend(nodes.tolist())
        value_types.extend([t + 1] * len(nodes))
        for v, node in enumerate(nodes, start=first):
            members = A.indices[A.indptr[node]:A.indptr[node + 1]]
            values[t][np.ix_(members, members)] = v
        np.fill_diagonal(values[t], -1)
    value_nodes = np.asarray(value_nodes, dtype=np.int64)
    cols = A[:, value_nodes] if len(value_nodes) else sp.csc_matrix((n, 0))
    item_values = sp.csr_matrix((cols > 0).astype(np.float32))
    return ItemRelations(values=values, value_type=np.asarray(value_types, dtype=np.int64),
                         value_entity=np.asarray(kg.node_entity[value_nodes], dtype=object),
                         item_values=item_values, types=(RELATION_TYPES[0], *relations))
