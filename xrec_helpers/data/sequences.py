"""Users as time-ordered sequences of events, each event with features a learner can read.

Taught in 04_shap_sequential. An *event* is one rating, in time order, with:

* ``item``: the movie (internal id);
* ``rating``: the rating the user gave (1-5; NaN when unknown);
* ``days``: days since the user's previous event (NaN for the first event).

The movie's genres are a property of the item (``Dataset.items``), so they are looked up, not stored.
A user's sequence is a NumPy structured array with dtype :data:`EVENT_DTYPE`: it slices, deletes and
concatenates like a plain array, and ``seq["item"]`` gives the items. Plain 1-d integer arrays of
item ids are accepted wherever an event sequence is (their rating and timing are then unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

EVENT_DTYPE = np.dtype([("item", np.int64), ("rating", np.float64), ("days", np.float64)])

# Buckets of "days since previous event". ML-100K users often rate many films in one sitting, so
# the short end is resolved finely; NaN (the first event) gets its own bucket.
GAP_EDGES_DAYS = (10 / 1440, 1 / 24, 1.0, 7.0, 30.0)
GAP_LABELS = ("< 10 min", "10 min – 1 h", "1 h – 1 day", "1 – 7 days", "7 – 30 days", "> 30 days", "first event")


def user_event_sequences(ratings: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's events in time order (ties keep the frame's order), indexed by internal user id.

    Taught in 04_shap_sequential. ``ratings`` needs ``user``, ``item``, ``rating`` and ``timestamp``
    (seconds) columns. Users without ratings get an empty sequence.

    Parameters
    ----------
    ratings : pd.DataFrame
        Rows with ``user``, ``item``, ``rating`` and ``timestamp``.
    n_users : int
        Number of users.

    Returns
    -------
    list[np.ndarray]
        One event array per user.
    """
    missing = {"user", "item", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings lacks column(s) {sorted(missing)}; pass Dataset.ratings.")
    frame = ratings[["user", "item", "rating", "timestamp"]].reset_index(drop=True)
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy(), frame["user"].to_numpy()))
    users = frame["user"].to_numpy()[order]
    times = frame["timestamp"].to_numpy()[order].astype(np.float64)
    events = np.empty(len(frame), dtype=EVENT_DTYPE)
    events["item"] = frame["item"].to_numpy()[order]
    events["rating"] = frame["rating"].to_numpy()[order]
    days = np.full(len(frame), np.nan)
    same_user = users[1:] == users[:-1]
    days[1:][same_user] = (times[1:] - times[:-1])[same_user] / 86400.0
    events["days"] = days
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [events[bounds[u]:bounds[u + 1]] for u in range(n_users)]


def user_sequences(ratings: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's items in time order (no features), as a list indexed by user id.

    Used by :mod:`xrec_helpers.models.gru4rec`. Users without ratings get an empty array.

    Parameters
    ----------
    ratings : pd.DataFrame
        Rows with ``user``, ``item`` and ``timestamp``.
    n_users : int
        Number of users.

    Returns
    -------
    list[np.ndarray]
        One item-id array per user.
    """
    frame = ratings.assign(rating=np.nan) if "rating" not in ratings.columns else ratings
    return [s["item"].copy() for s in user_event_sequences(frame, n_users)]


def event_items(sequence: np.ndarray | Sequence[int]) -> np.ndarray:
    """The item ids of an event sequence (or of a plain item-id array). Used by GRU4Rec and EventSHAP.

    Parameters
    ----------
    sequence : np.ndarray | Sequence[int]
        An event array or a plain 1-d array of item ids.

    Returns
    -------
    np.ndarray
        The item ids, oldest first.
    """
    arr = np.asarray(sequence)
    return arr["item"] if arr.dtype.names else arr


def as_events(sequence: np.ndarray | Sequence[int]) -> np.ndarray:
    """An event sequence from an event array or a plain 1-d array of item ids (features unknown).

    Used by GRU4Rec, EventSHAP and the sequence-removal protocol. A wrong dtype or shape raises an error that says
    what was expected.

    Parameters
    ----------
    sequence : np.ndarray | Sequence[int]
        An event array or a plain 1-d array of item ids.

    Returns
    -------
    np.ndarray
        An array of :data:`EVENT_DTYPE`.

    Raises
    ------
    TypeError
        For a structured array with other fields.
    ValueError
        For an array that is not 1-d.
    """
    arr = np.asarray(sequence)
    if arr.dtype.names:
        if arr.dtype != EVENT_DTYPE:
            raise TypeError(f"An event sequence has fields {EVENT_DTYPE.names}, got {arr.dtype.names}.")
        return arr
    if arr.ndim != 1:
        raise ValueError(f"A sequence must be 1-d, got shape {arr.shape}.")
    if len(arr) and arr.dtype.kind not in "iu":
        raise TypeError(f"Sequences hold internal item ids (integers), got {arr.dtype}.")
    out = np.empty(len(arr), dtype=EVENT_DTYPE)
    out["item"], out["rating"], out["days"] = arr, np.nan, np.nan
    return out


def leave_last_out(sequences: Sequence[np.ndarray], n: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Split off each user's last ``n`` events: (shortened sequences, held-out items (n_users, n)).

    Taught in 04_shap_sequential (``n=2``: second-last is validation, last is test). Users with fewer
    than ``n + 1`` events raise a ValueError (they would have no history left).

    Parameters
    ----------
    sequences : Sequence[np.ndarray]
        One event array per user.
    n : int
        Events held out per user.

    Returns
    -------
    tuple[list[np.ndarray], np.ndarray]
        The shortened sequences and the held-out items, shape (n_users, n).

    Raises
    ------
    ValueError
        For a user with fewer than ``n + 1`` events.
    """
    short = [u for u, s in enumerate(sequences) if len(s) < n + 1]
    if short:
        raise ValueError(f"Users {short[:5]} have fewer than {n + 1} events; filter them out before a "
                         f"leave-{n}-out split.")
    return [s[:-n] for s in sequences], np.array([event_items(s[-n:]) for s in sequences], dtype=np.int64)


def gap_bucket(days: np.ndarray) -> np.ndarray:
    """Bucket index of :data:`GAP_LABELS` for each "days since previous" value (NaN -> "first event").

    Used by :mod:`xrec_helpers.models.gru4rec` (the model learns one vector per bucket).

    Parameters
    ----------
    days : np.ndarray
        Days since the previous event (NaN for the first event).

    Returns
    -------
    np.ndarray
        Bucket index per value.
    """
    days = np.asarray(days, dtype=np.float64)
    out = np.searchsorted(np.asarray(GAP_EDGES_DAYS), days, side="right")
    return np.where(np.isnan(days), len(GAP_LABELS) - 1, out)


def events_frame(sequence: np.ndarray, titles: Sequence[str], genre_names: Sequence[str] | None = None,
                 item_genres: np.ndarray | None = None) -> pd.DataFrame:
    """A readable table of events (oldest first): position, title, rating you gave, days since previous, genres.

    Taught in 04_shap_sequential.

    Parameters
    ----------
    sequence : np.ndarray
        One user's events.
    titles : Sequence[str]
        Item titles.
    genre_names : Sequence[str] | None
        Names of the genre columns.
    item_genres : np.ndarray | None
        (n_items, G) 0/1 genre matrix.

    Returns
    -------
    pd.DataFrame
        One row per event.
    """
    ev = as_events(sequence)
    frame = pd.DataFrame({
        "position": np.arange(-len(ev), 0),
        "title": [titles[i] for i in ev["item"]],
        "rating you gave": ev["rating"],
        "days since previous": np.round(ev["days"], 2),
    })
    if item_genres is not None and genre_names is not None:
        frame["genres"] = [", ".join(np.asarray(genre_names)[item_genres[i] > 0]) for i in ev["item"]]
    return frame.set_index("position")
