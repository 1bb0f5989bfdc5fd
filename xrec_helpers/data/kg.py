"""The ML-100K knowledge graph as an item–entity graph: relation types, degrees, shared entities.

Taught in 10_knowledge_graph_paths. ``Dataset.kg`` holds Freebase triples (``head``, ``relation``,
``tail``) and ``Dataset.item_entity`` links internal item ids to film entities. Here the triples
become a sparse items x nodes incidence matrix, where a *node* is an (relation, entity) pair:

* every relation is stored in both directions in Freebase (``film.film.directed_by`` and
  ``film.director.film``); only the film -> entity direction is kept, so no edge is counted twice;
* a node is keyed by relation *and* entity, so a person who both directed and wrote films becomes
  two nodes ("the same director", "the same writer") and a path never mixes the two roles;
* ``film.film.sequel`` / ``film.film.prequel`` link two films directly; films joined by them are
  grouped into one derived "film series" node (a connected component), so a sequel pair shares an
  entity like any other pair.

Entities have no names in the data (Freebase ids such as ``m.0dyb1``), so explanations say
"the same director" and name the *movies*, never the entity.

A known defect of the public copy: the ids in RecBole's ``ml-100k.link`` appear to be MovieLens-1M movie ids
(RUCAIBox/RecSysDatasets issue #130: ML-100K's *Titanic* is linked to *The Swan Princess*), so most ML-100K
movies are linked to another film's entity. :func:`link_check` measures it: on this copy, movies that share a
linked director share a MovieLens genre no more often than random movies do. Every path built here is a path
between the linked entities, not a fact about the titles shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from xrec_helpers.data.dataset import Dataset

# Freebase relation (film -> entity direction) -> short name used everywhere else.
FORWARD: dict[str, str] = {
    "film.film.actor": "actor",
    "film.film.genre": "genre",
    "film.film.award_nomination": "award_nomination",
    "film.film.award_won": "award_won",
    "film.film.produced_by": "producer",
    "film.film.written_by": "writer",
    "film.film.language": "language",
    "film.film.country": "country",
    "film.film.directed_by": "director",
    "film.film.cinematography": "cinematographer",
    "film.film.production_companies": "production_company",
    "film.film.rating": "content_rating",
    "film.film.subjects": "subject",
}
# The reverse direction of a forward relation: dropped (or flipped where the forward copy is missing).
INVERSE: dict[str, str] = {
    "film.actor.film": "actor",
    "film.film_genre.films_in_this_genre": "genre",
    "film.producer.film": "producer",
    "film.writer.film": "writer",
    "film.director.film": "director",
    "film.cinematographer.film": "cinematographer",
    "film.production_company.films": "production_company",
    "film.content_rating.film": "content_rating",
    "film.film_subject.films": "subject",
}
SERIES_RELATIONS = ("film.film.sequel", "film.film.prequel")

# Short name -> (noun phrase, connective used in a sentence "A, which <connective> B").
READABLE: dict[str, tuple[str, str]] = {
    "actor": ("a shared actor", "has an actor in common with"),
    "genre": ("the same genre", "is in the same genre as"),
    "award_nomination": ("a nomination for the same award", "was nominated for the same award as"),
    "award_won": ("the same award won", "won the same award as"),
    "producer": ("the same producer", "has the same producer as"),
    "writer": ("the same writer", "has the same writer as"),
    "language": ("the same language", "is in the same language as"),
    "country": ("the same country", "was made in the same country as"),
    "director": ("the same director", "has the same director as"),
    "cinematographer": ("the same cinematographer", "has the same cinematographer as"),
    "production_company": ("the same production company", "comes from the same production company as"),
    "content_rating": ("the same content rating", "has the same content rating as"),
    "subject": ("the same subject", "is about the same subject as"),
    "series": ("the same film series", "is in the same film series as"),
}


def readable(relation: str) -> str:
    """Words for a relation ("director" -> "the same director"); accepts Freebase ids too.

    Used by :func:`connective`.

    Parameters
    ----------
    relation : str
        A relation name (``"director"``) or its Freebase id.

    Returns
    -------
    str
        The words.

    Raises
    ------
    KeyError
        For an unknown relation.
    """
    short = FORWARD.get(relation) or INVERSE.get(relation) or ("series" if relation in SERIES_RELATIONS else relation)
    if short not in READABLE:
        raise KeyError(f"Unknown relation {relation!r}; known: {sorted(READABLE)}.")
    return READABLE[short][0]


def connective(relation: str) -> str:
    """The verb phrase linking two movies through ``relation`` ("has the same director as").

    Not used by a notebook (the explainers and :mod:`xrec_helpers.metrics.claims` read ``READABLE``).

    Parameters
    ----------
    relation : str
        A relation name (``"director"``) or its Freebase id.

    Returns
    -------
    str
        The verb phrase.

    Raises
    ------
    KeyError
        For an unknown relation.
    """
    readable(relation)  # validates
    short = FORWARD.get(relation) or INVERSE.get(relation) or ("series" if relation in SERIES_RELATIONS else relation)
    return READABLE[short][1]


@dataclass
class ItemKG:
    """Items x nodes incidence of the knowledge graph (see the module docstring).

    Taught in 11_comparing_explainers; :func:`build_item_kg` returns one in 10_knowledge_graph_paths.

    Attributes
    ----------
    incidence
        CSR (n_items, n_nodes), 1 where the item links to the node.
    node_relation
        short relation name of each node.
    node_entity
        Freebase entity id of each node ("series:<film entity>" for derived series nodes).
    edges
        one row per (item, node): ``item``, ``node``, ``relation``.
    """

    incidence: sp.csr_matrix
    node_relation: np.ndarray
    node_entity: np.ndarray
    edges: pd.DataFrame

    @property
    def n_items(self) -> int:
        """Number of items (internal ids run 0..n_items-1)."""
        return self.incidence.shape[0]

    @property
    def n_nodes(self) -> int:
        """Number of entity nodes."""
        return self.incidence.shape[1]

    @property
    def relations(self) -> list[str]:
        """Short relation names, most edges first."""
        return self.edges["relation"].value_counts().index.tolist()

    def node_degree(self) -> np.ndarray:
        """Number of catalogue items linked to each node.

        Returns
        -------
        np.ndarray
            Shape (n_nodes,).
        """
        return np.asarray(self.incidence.sum(axis=0)).ravel().astype(np.int64)

    def item_degree(self) -> np.ndarray:
        """Number of nodes each item links to (0 for movies missing from the KG).

        Returns
        -------
        np.ndarray
            Shape (n_items,).
        """
        return np.diff(self.incidence.indptr).astype(np.int64)

    def linked_items(self) -> np.ndarray:
        """Internal ids of items with at least one KG link.

        Returns
        -------
        np.ndarray
            Sorted internal item ids.
        """
        return np.flatnonzero(self.item_degree() > 0)

    def node_idf(self) -> np.ndarray:
        """log(linked items / node degree): a node shared by few movies is a more specific link.

        Returns
        -------
        np.ndarray
            Shape (n_nodes,).
        """
        n = max(len(self.linked_items()), 1)
        return np.log(n / np.maximum(self.node_degree(), 1))

    def relation_table(self) -> pd.DataFrame:
        """One row per relation: readable words, edges, distinct entities, median and max degree.

        Returns
        -------
        pd.DataFrame
            One row per relation.
        """
        degree = self.node_degree()
        rows = []
        for rel in self.relations:
            nodes = np.flatnonzero(self.node_relation == rel)
            rows.append({"relation": rel, "in words": READABLE[rel][0],
                         "edges": int(degree[nodes].sum()), "entities": len(nodes),
                         "median items per entity": float(np.median(degree[nodes])),
                         "max items per entity": int(degree[nodes].max())})
        return pd.DataFrame(rows).set_index("relation")

    def _check_item(self, item: int) -> int:
        if not isinstance(item, (int, np.integer)) or not 0 <= int(item) < self.n_items:
            raise IndexError(f"Unknown item id {item!r}: internal ids run 0..{self.n_items - 1}.")
        return int(item)

    def nodes_of(self, item: int) -> np.ndarray:
        """Node ids linked to ``item`` (empty for a movie missing from the KG).

        Parameters
        ----------
        item : int
            Internal item id.

        Returns
        -------
        np.ndarray
            Node ids.
        """
        item = self._check_item(item)
        return self.incidence.indices[self.incidence.indptr[item]:self.incidence.indptr[item + 1]]

    def shared_entities(self, a: int, b: int) -> pd.DataFrame:
        """Nodes linked to both items: ``node``, ``relation``, ``in words``, ``degree``, rarest first.

        Parameters
        ----------
        a, b : int
            Internal item ids.

        Returns
        -------
        pd.DataFrame
            One row per shared node, rarest first.
        """
        shared = np.intersect1d(self.nodes_of(a), self.nodes_of(b))
        degree = self.node_degree()[shared]
        frame = pd.DataFrame({"node": shared, "relation": self.node_relation[shared],
                              "in words": [READABLE[r][0] for r in self.node_relation[shared]],
                              "degree": degree})
        return frame.sort_values(["degree", "node"], kind="stable").reset_index(drop=True)


def build_item_kg(dataset: Dataset) -> ItemKG:
    """The item–entity graph of a dataset with KG triples (ML-100K from the RecBole copy).

    Taught in 10_knowledge_graph_paths. Works on ``Dataset.subset_users`` slices too (their
    ``item_entity`` is re-indexed; the triples are shared).

    Parameters
    ----------
    dataset : Dataset
        A dataset with ``kg`` and ``item_entity``.

    Returns
    -------
    ItemKG
        The item-entity graph.
    """
    if dataset.kg is None or dataset.item_entity is None:
        raise ValueError(f"{dataset.name} has no knowledge graph: load ML-100K with load_movielens('ml-100k'), "
                         "whose RecBole copy carries the .kg and .link files.")
    kg = dataset.kg
    film_of = pd.Series(dataset.item_entity.index.to_numpy(), index=dataset.item_entity.to_numpy())
    rel = kg["relation"].to_numpy()
    fwd = kg[np.isin(rel, list(FORWARD))]
    fwd = pd.DataFrame({"film": fwd["head"].to_numpy(), "relation": fwd["relation"].map(FORWARD).to_numpy(),
                        "entity": fwd["tail"].to_numpy()})
    inv = kg[np.isin(rel, list(INVERSE))]
    inv = pd.DataFrame({"film": inv["tail"].to_numpy(), "relation": inv["relation"].map(INVERSE).to_numpy(),
                        "entity": inv["head"].to_numpy()})
    # Most inverse triples duplicate a forward one; drop_duplicates keeps the few that do not.
    triples = pd.concat([fwd, inv]).drop_duplicates()
    triples = triples[triples["film"].isin(film_of.index)]
    edges = pd.DataFrame({"item": film_of[triples["film"]].to_numpy(), "relation": triples["relation"].to_numpy(),
                          "entity": triples["entity"].to_numpy()})

    # Sequel/prequel: group linked films into series (connected components of the film-film links).
    series = kg[np.isin(rel, SERIES_RELATIONS)]
    films = pd.Index(pd.unique(np.concatenate([series["head"].to_numpy(), series["tail"].to_numpy()])))
    if len(films):
        a, b = films.get_indexer(series["head"]), films.get_indexer(series["tail"])
        graph = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(films), len(films)))
        _, label = connected_components(graph, directed=False)
        in_catalogue = films.isin(film_of.index)
        series_edges = pd.DataFrame({"item": film_of[films[in_catalogue]].to_numpy(), "relation": "series",
                                     "entity": [f"series:{films[label == lab][0]}" for lab in label[in_catalogue]]})
        edges = pd.concat([edges, series_edges], ignore_index=True)

    keys = edges["relation"] + "|" + edges["entity"]
    codes, uniques = pd.factorize(keys, sort=True)
    edges = edges.assign(node=codes).drop_duplicates(["item", "node"])
    # A series node with one catalogue film links nothing: keep it anyway (its degree says so).
    node_relation = np.array([u.split("|", 1)[0] for u in uniques], dtype=object)
    node_entity = np.array([u.split("|", 1)[1] for u in uniques], dtype=object)
    incidence = sp.csr_matrix((np.ones(len(edges), dtype=np.float32), (edges["item"], edges["node"])),
                              shape=(dataset.n_items, len(uniques)))
    incidence.sum_duplicates()
    incidence.sort_indices()
    return ItemKG(incidence=incidence, node_relation=node_relation, node_entity=node_entity,
                  edges=edges[["item", "node", "relation"]].reset_index(drop=True))


def link_check(kg: ItemKG, items: pd.DataFrame, *, relations: tuple[str, ...] = ("series", "director", "writer",
               "genre", "actor"), max_degree: int = 30, n_random: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Do the entity links agree with the items' own metadata? Genre agreement of linked pairs vs random pairs.

    Taught in 10_knowledge_graph_paths. A path explanation is only as true as the link between an item id and
    its KG entity. The entities have no names here, so the link cannot be read; but two movies that truly share
    a director, a writer or a series share a MovieLens genre far more often than two movies drawn at random. For
    each relation, every pair of items that share one of its entities (entities linking 2..``max_degree`` items,
    so that a generic entity such as a language does not swamp the count) is compared with ``n_random`` random
    pairs of linked items: a share close to the random one means the links carry no information about the items.

    Parameters
    ----------
    kg : ItemKG
        From :func:`build_item_kg`.
    items : pd.DataFrame
        The dataset's items (``Dataset.items``), with one 0/1 column per genre of
        :data:`xrec_helpers.data.dataset.GENRES`, indexed by internal item id.
    relations : tuple of str
        Short relation names to check (those absent from the graph are skipped).
    max_degree : int
        Largest number of items an entity may link to be counted.
    n_random : int
        Random pairs for the baseline.
    seed : int
        Seed of the random pairs.

    Returns
    -------
    pd.DataFrame
        One row per relation: ``pairs`` (item pairs sharing an entity), ``same genre`` (share of those pairs with
        at least one common genre), ``random pairs, same genre`` and ``ratio`` (the first share over the second).

    Raises
    ------
    ValueError
        When ``items`` has no genre columns or does not cover the graph's items.
    """
    from xrec_helpers.data.dataset import GENRES

    genre_cols = [g for g in GENRES if g in items.columns]
    if not genre_cols:
        raise ValueError("items has no genre columns: pass Dataset.items of a dataset with genres (ML-100K).")
    if len(items) != kg.n_items:
        raise ValueError(f"items has {len(items)} rows, the graph {kg.n_items} items: pass the same dataset's items.")
    G = items[genre_cols].to_numpy(dtype=bool)
    linked = kg.linked_items()
    rng = np.random.default_rng(seed)
    a, b = rng.choice(linked, n_random), rng.choice(linked, n_random)
    keep = a != b
    random_share = float((G[a[keep]] & G[b[keep]]).any(axis=1).mean())
    degree = kg.node_degree()
    csc = kg.incidence.tocsc()
    rows = []
    for rel in relations:
        nodes = np.flatnonzero((kg.node_relation == rel) & (degree >= 2) & (degree <= max_degree))
        if len(nodes) == 0:
            continue
        same = total = 0
        for node in nodes:
            members = csc.indices[csc.indptr[node]:csc.indptr[node + 1]]
            i, j = np.triu_indices(len(members), k=1)
            shared = (G[members[i]] & G[members[j]]).any(axis=1)
            same += int(shared.sum())
            total += len(shared)
        share = same / total
        rows.append({"relation": rel, "pairs": total, "same genre": share, "random pairs, same genre": random_share,
                     "ratio": share / random_share if random_share else np.nan})
    return pd.DataFrame(rows).set_index("relation")
