"""Bring your own data: a user–item interactions table (CSV or Parquet) as the course's :class:`Dataset`.

Taught in 13_your_own_data. One row per interaction, with a user id and an item id, and optionally a rating,
a timestamp and the item's title. Every explainer and protocol of the course then runs on it, as long as
they need only the interactions (the FM of 03 also needs MovieLens' demographics and genres, the
knowledge-graph paths of 10 a knowledge graph, the review attention of 09 reviews).

Bad input is refused with a message that says what was wrong, where, and what to do; the file is only read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xrec_helpers.data.dataset import Dataset

DUPLICATE_POLICIES = ("error", "first", "last", "mean")
_AUTO = "auto"


class InteractionsError(ValueError):
    """A table that cannot become a Dataset: the message names the problem, the rows and the fix."""


def _read(source: str | Path | pd.DataFrame, text_columns: list[str]) -> tuple[pd.DataFrame, str, str]:
    """The table, a name for it, and how its rows are numbered in messages."""
    if isinstance(source, pd.DataFrame):
        return source.copy(), "interactions", "row"
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"No interactions file at {path}: give the path of a .csv, .tsv or .parquet file "
                                "(or a pandas DataFrame).")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        # Ids are read as text, exactly as written: "007" stays "007" and never turns into the number 7.
        sep = "\t" if suffix == ".tsv" else ","
        try:
            frame = pd.read_csv(path, sep=sep, dtype={c: "string" for c in text_columns}, keep_default_na=True,
                                skipinitialspace=True)
        except pd.errors.ParserError as err:
            raise InteractionsError(f"{path.name} is not a well-formed {'TSV' if sep == chr(9) else 'CSV'} table "
                                    f"({err}). Check that every row has the same number of fields as the "
                                    "header and that fields containing the separator are quoted.") from err
        except pd.errors.EmptyDataError as err:
            raise InteractionsError(f"{path.name} is empty: it needs a header row and one row per "
                                    "interaction.") from err
        return frame, path.stem, "line"  # line numbers of the file (the header is line 1)
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except ImportError as err:
            raise ImportError("Reading Parquet needs pyarrow: `pip install pyarrow` (or save the table as "
                              "CSV).") from err
        return frame, path.stem, "row"
    raise InteractionsError(f"{path.name}: unknown file type {suffix!r}. Use .csv, .tsv or .parquet, or pass a "
                            "pandas DataFrame.")


def _where(index: pd.Index, numbering: str, limit: int = 5) -> str:
    rows = [int(i) + 2 if numbering == "line" else int(i) for i in index[:limit]]
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"{numbering}{'s' if len(index) > 1 else ''} {', '.join(map(str, rows))}{more}"


def _timestamps(values: pd.Series, column: str, numbering: str) -> np.ndarray:
    """Seconds since 1970 from numbers (Unix time) or date strings; malformed entries are refused."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64).round().astype(np.int64)
    if numeric.notna().any():
        bad = values.index[numeric.isna()]
        raise InteractionsError(f"Column {column!r} mixes numbers and other values ({_where(bad, numbering)}, "
                                f"e.g. {values.loc[bad[0]]!r}). Fix them so the column holds Unix "
                                "seconds throughout or dates throughout (e.g. '2024-01-31 14:05:00'), or pass "
                                "timestamp=None to use the row order instead.")
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = values.index[parsed.isna()]
    if len(bad):
        raise InteractionsError(f"Column {column!r} has values that are neither Unix seconds nor dates "
                                f"({_where(bad, numbering)}, e.g. {values.loc[bad[0]]!r}). Fix them: "
                                f"write real dates as year-month-day, e.g. '2024-01-31 14:05:00' "
                                f"(or Unix seconds), or pass timestamp=None to use the row order instead.")
    return ((parsed - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def load_interactions(source: str | Path | pd.DataFrame, *, user: str = "user", item: str = "item",
                      rating: str | None = _AUTO, timestamp: str | None = _AUTO, title: str | None = _AUTO,
                      duplicates: str = "error", name: str | None = None) -> Dataset:
    """Read a user–item interactions table into a :class:`Dataset` with contiguous internal ids.

    Taught in 13_your_own_data.

    Parameters
    ----------
    source
        A ``.csv`` / ``.tsv`` / ``.parquet`` file, or a pandas DataFrame, one row per interaction.
    user, item
        Names of the user-id and item-id columns (required). Ids may be numbers or text; they are kept as
        raw ids (``Dataset.users["raw_id"]``, ``Dataset.items["raw_id"]``) and mapped to internal ids
        0..n-1 in sorted order.
    rating, timestamp, title
        Names of the optional columns. ``"auto"`` (default) uses a column called ``rating`` / ``timestamp``
        / ``title`` when there is one; ``None`` ignores it; any other name must exist. Without ratings every
        interaction counts 1.0 (implicit feedback); without timestamps the row order is used (0, 1, 2, …);
        without titles an item is shown by its id. Timestamps may be Unix seconds or dates.
    duplicates
        What to do with repeated (user, item) rows: ``"error"`` (default: refuse, and say where they are),
        ``"first"`` / ``"last"`` (keep that row), or ``"mean"`` (average the ratings, keep the latest time).
    name
        The dataset's name (default: the file's stem).

    Returns
    -------
    Dataset
        ``ratings`` with ``user``, ``item``, ``rating``, ``timestamp``; ``items`` with ``raw_id``, ``title``
        and ``name``; ``users`` with ``raw_id``.

    Raises
    ------
    InteractionsError
        A missing column, an empty table, a row without a user or item, a rating that is not a finite
        number, a malformed timestamp, duplicate rows under ``duplicates="error"``, or one item with two
        different titles. The message gives the rows (file line numbers for CSV, the header being line 1).
    FileNotFoundError
        No file at ``source``.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, not {duplicates!r}.")
    frame, stem, numbering = _read(source, [user, item] + ([title] if title not in (None, _AUTO) else ["title"]))
    columns = list(frame.columns)

    missing = [c for c in (user, item) if c not in columns]
    for option in (rating, timestamp, title):
        if option not in (None, _AUTO) and option not in columns:
            missing.append(option)
    if missing:
        where = "its header (line 1)" if numbering == "line" else "its columns"
        asked = [f"{kw}={name!r}" for kw, name in (("user", user), ("item", item), ("rating", rating),
                                                    ("timestamp", timestamp), ("title", title)) if name in missing]
        raise InteractionsError(f"Missing column(s) {missing}: {where} has {columns}. Pass the name your table "
                                f"uses as the keyword argument instead of {', '.join(asked)} (one of the columns "
                                "above), or pass rating=None / timestamp=None / title=None for an optional column "
                                "the table does not have.")
    rating = ("rating" if "rating" in columns else None) if rating == _AUTO else rating
    timestamp = ("timestamp" if "timestamp" in columns else None) if timestamp == _AUTO else timestamp
    title = ("title" if "title" in columns else None) if title == _AUTO else title
    if frame.empty:
        raise InteractionsError("The table has a header but no rows: there are no interactions to learn from.")

    for column in (user, item):
        ids = frame[column]
        blank = ids.isna() | (ids.astype("string").str.strip() == "")
        if blank.any():
            raise InteractionsError(f"Column {column!r} is empty in {_where(frame.index[blank], numbering)}: every "
                                    "interaction needs a user and an item. Remove or complete them.")
        if ids.dtype == "string":
            frame[column] = ids.str.strip()

    if rating is not None:
        values = pd.to_numeric(frame[rating], errors="coerce")
        bad = frame.index[values.isna() | ~np.isfinite(values.astype("float64").fillna(np.nan))]
        if len(bad):
            raise InteractionsError(f"Column {rating!r} must hold numbers ({_where(bad, numbering)}, e.g. "
                                    f"{frame.loc[bad[0], rating]!r}). Fix them, or pass rating=None to treat "
                                    "every interaction as 1.0.")
        frame["_rating"] = values.astype("float64")
    else:
        frame["_rating"] = 1.0
    if timestamp is not None:
        frame["_timestamp"] = _timestamps(frame[timestamp], timestamp, numbering)
    else:
        frame["_timestamp"] = np.arange(len(frame), dtype=np.int64)

    pair = frame.duplicated([user, item], keep=False)
    if pair.any():
        if duplicates == "error":
            first = frame.loc[pair].iloc[0]
            raise InteractionsError(f"{int(pair.sum())} rows repeat a (user, item) pair ({_where(frame.index[pair], numbering)}; "
                                    f"e.g. user {first[user]!r} and item {first[item]!r}). Pass duplicates='last', "
                                    "'first' or 'mean' to keep one interaction per pair.")
        if duplicates in ("first", "last"):
            frame = frame.drop_duplicates([user, item], keep=duplicates)
        else:
            agg = frame.groupby([user, item], sort=False).agg(_rating=("_rating", "mean"),
                                                              _timestamp=("_timestamp", "max"))
            keep = frame.drop_duplicates([user, item], keep="last").set_index([user, item])
            keep[["_rating", "_timestamp"]] = agg
            frame = keep.reset_index()

    titles = None
    if title is not None:
        named = frame[[item, title]].dropna()
        named = named[named[title].astype("string").str.strip() != ""]
        clash = named.groupby(item)[title].nunique()
        clash = clash[clash > 1]
        if len(clash):
            example = clash.index[0]
            rows = named.index[named[item] == example]
            seen = sorted(named.loc[rows, title].astype(str).unique())[:3]
            raise InteractionsError(f"{len(clash)} item(s) have more than one title, e.g. item {example!r}: {seen} "
                                    f"({_where(rows, numbering)}). Give each item one title (correct them), or pass title=None to show items by their ids.")
        titles = named.drop_duplicates(item).set_index(item)[title].astype(str)

    user_codes, user_ids = pd.factorize(frame[user], sort=True)
    item_codes, item_ids = pd.factorize(frame[item], sort=True)
    ratings = pd.DataFrame({"user": user_codes.astype(np.int64), "item": item_codes.astype(np.int64),
                            "rating": frame["_rating"].to_numpy(dtype=np.float64),
                            "timestamp": frame["_timestamp"].to_numpy(dtype=np.int64)})
    ratings = ratings.sort_values(["user", "timestamp", "item"], kind="stable").reset_index(drop=True)
    raw_items = pd.Index(item_ids)
    shown = [titles.get(raw, f"item {raw}") if titles is not None else f"item {raw}" for raw in raw_items]
    items = pd.DataFrame({"raw_id": np.asarray(raw_items, dtype=object), "title": shown, "name": shown})
    users = pd.DataFrame({"raw_id": np.asarray(user_ids, dtype=object)})
    origin = "DataFrame" if isinstance(source, pd.DataFrame) else str(source)
    return Dataset(name=name or stem, ratings=ratings, items=items, users=users, source=f"own data: {origin}")
