"""Validation of internal user and item ids, shared by the data, model and explainer layers.

Used by the data layer and every model (no notebook calls it directly). Internal ids are contiguous integers
``0..n-1``; raw MovieLens ids are mapped to them with ``Dataset.user_index`` / ``Dataset.item_index``. A float, a
string or a bool is never an internal id: ``int(3.7)`` or ``True == 1`` would silently pick another user or item, so
they are refused here with an error that says what was passed and how to get an internal id.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_RAW_HINT = {
    "user": "Map raw ids with Dataset.user_index(raw_id).",
    "item": "Map raw ids with Dataset.item_index(raw_id).",
}


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def is_integer_id(value: object) -> bool:
    """True for a Python or NumPy integer that is not a bool.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool
        Whether ``value`` can be an id.
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_id(value: object, n: int, what: str = "item") -> int:
    """One internal id as a Python int, or a ``TypeError``/``IndexError`` that says what was wrong.

    Used by :mod:`xrec_helpers.explainers.base`.

    Parameters
    ----------
    value : object
        The id.
    n : int
        Number of ids (valid ids are 0..n-1).
    what : str
        ``"user"`` or ``"item"``, for the message.

    Returns
    -------
    int
        The id.

    Raises
    ------
    TypeError
        For a float, bool, string or other non-integer.
    IndexError
        For an id out of range.
    """
    if not is_integer_id(value):
        raise TypeError(f"{what.capitalize()} ids are internal integer ids 0..{n - 1}; got {_describe(value)}. "
                        f"{_RAW_HINT.get(what, '')}".strip())
    if not 0 <= int(value) < n:
        raise IndexError(f"Unknown {what} id {int(value)}: internal ids run 0..{n - 1}. {_RAW_HINT.get(what, '')}".strip())
    return int(value)


def check_ids(values: int | Iterable[int] | np.ndarray, n: int, what: str = "item") -> np.ndarray:
    """Internal ids as a 1-D int64 array, every entry validated as :func:`check_id` does.

    Used by the models and :mod:`xrec_helpers.data.dataset`. Accepts a scalar, a list/tuple/range or an integer
    NumPy array; a float, bool, string or object array is refused (``np.asarray([True, 2])`` would turn the bool
    into 1).

    Parameters
    ----------
    values : int | Iterable[int] | np.ndarray
        A scalar, a list/tuple/range or an integer array.
    n : int
        Number of ids (valid ids are 0..n-1).
    what : str
        ``"user"`` or ``"item"``, for the message.

    Returns
    -------
    np.ndarray
        The ids.

    Raises
    ------
    TypeError
        For floats, bools, strings or an object array.
    IndexError
        For ids out of range.
    """
    if is_integer_id(values):
        return np.array([check_id(values, n, what)], dtype=np.int64)
    if isinstance(values, (str, bytes)) or np.isscalar(values) or values is None:
        check_id(values, n, what)  # raises the TypeError
    if isinstance(values, np.ndarray):
        arr = values
    else:
        items = list(values)
        for v in items:
            if not is_integer_id(v):
                check_id(v, n, what)  # raises the TypeError
        arr = np.asarray(items, dtype=np.int64)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{what.capitalize()} ids are internal integer ids 0..{n - 1}; got an array of "
                        f"{arr.dtype}. {_RAW_HINT.get(what, '')}".strip())
    arr = arr.astype(np.int64).ravel()
    bad_range = arr[(arr < 0) | (arr >= n)]
    if len(bad_range):
        raise IndexError(f"Unknown {what} id(s) {bad_range[:5].tolist()}: internal ids run 0..{n - 1}. "
                         f"{_RAW_HINT.get(what, '')}".strip())
    return arr
