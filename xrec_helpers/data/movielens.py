"""MovieLens loaders (ML-100K, ML-1M) that work offline.

Taught in 01_eda. ML-100K is looked for, in order:

1. the cache (``data/`` or ``XREC_DATA_DIR``): ``ml-100k.zip`` from GroupLens, or the folder
   ``ml-100k-recbole/`` with the five RecBole atomic files;
2. the GroupLens zip (MD5-checked);
3. the copy of ML-100K inside the ``recbole==1.2.1`` wheel on PyPI, fetched with
   ``pip download --no-deps`` (RecBole is *not* installed) and checked file by file (SHA-256);
4. otherwise a :class:`DataUnavailableError` that says which files to put where.

Both formats parse to the same tables (100,000 ratings, 943 users, 1,682 items). The knowledge
graph (91,631 Freebase triples, 1,598 linked movies) exists only in the RecBole copy; with the
GroupLens source it is fetched from there as well when the registry is reachable.

MovieLens may not be redistributed: the cache is git-ignored and nothing here commits it.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from xrec_helpers._paths import data_dir
from xrec_helpers.data.cache import (
    DataUnavailableError,
    HashMismatchError,
    atomic_write_bytes,
    cache_lock,
    download,
    net_timeout,
    remove_stale_parts,
    say,
    verify_or_delete,
)
from xrec_helpers.data.dataset import GENRES, Dataset

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ML1M_MD5 = "c4d9eecfca2ab87c1945afe126590906"
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_DIR = "recbole/dataset_example/ml-100k"
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
    "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
}
RECBOLE_CORE = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")  # the ratings; .kg and .link are the graph
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)
_TITLE_YEAR = re.compile(r"^(?P<name>.*?)\s*\((?P<year>\d{4})\)\s*(?:\(.*\))?\s*$")


def load_movielens(name: str = "ml-100k", *, download_ok: bool = True, with_kg: bool = True) -> Dataset:
    """Load a MovieLens dataset as a :class:`Dataset` (taught in 01_eda).

    Parameters
    ----------
    name : str
        ``"ml-100k"`` or ``"ml-1m"``.
    download_ok : bool
        If False, only the cache is used (raises when it is empty).
    with_kg : bool
        ML-100K only: also load the knowledge graph when it can be had.

    Returns
    -------
    Dataset
        The dataset.

    Raises
    ------
    ValueError
        For an unknown ``name``.
    DataUnavailableError
        When the data is neither cached nor downloadable.
    """
    if name == "ml-100k":
        return _load_ml100k(download_ok=download_ok, with_kg=with_kg)
    if name == "ml-1m":
        return _load_ml1m(download_ok=download_ok)
    raise ValueError(f"Unknown dataset {name!r}: choose 'ml-100k' or 'ml-1m'.")


# --- ML-100K ------------------------------------------------------------------------------------
def _load_ml100k(*, download_ok: bool, with_kg: bool) -> Dataset:
    root = data_dir()
    zip_path = root / "ml-100k.zip"
    recbole_dir = root / "ml-100k-recbole"

    def from_zip(kg_download_ok: bool) -> Dataset:
        dataset = parse_grouplens_100k(zip_path)
        kg_dir = (_recbole_files(recbole_dir, download_ok=kg_download_ok, required=False, with_kg=True)
                  if with_kg else None)
        if kg_dir is not None:
            _attach_kg(dataset, kg_dir)
        return dataset

    with cache_lock("ml-100k"):
        # Under the lock no live download owns a .part file: any left is from a killed process.
        for target in (zip_path, *(recbole_dir / name for name in RECBOLE_SHA256)):
            remove_stale_parts(target)
        if zip_path.exists():
            verify_or_delete(zip_path, ML100K_MD5, "md5")
            return from_zip(download_ok)
        cached = _recbole_files(recbole_dir, download_ok=False, required=False, with_kg=with_kg)
        if cached is not None:
            return parse_recbole_100k(cached, with_kg=with_kg)
        if not download_ok:
            raise DataUnavailableError(_missing_message(root, with_kg=with_kg))
        say(f"ML-100K is not in the cache {root}: fetching it (two sources are tried, "
            f"each gives up after {net_timeout():.0f} s without an answer; XREC_NET_TIMEOUT sets that).")
        grouplens_error = None
        try:
            download(ML100K_URL, zip_path, md5=ML100K_MD5, retries=2)
        except DataUnavailableError as err:
            grouplens_error = err
        if grouplens_error is None:
            return from_zip(True)
        try:
            _fetch_recbole_wheel(recbole_dir)
        except DataUnavailableError as recbole_error:
            raise DataUnavailableError(_missing_message(root, grouplens_error, recbole_error, with_kg=with_kg)) from None
        return parse_recbole_100k(recbole_dir, with_kg=with_kg)


def _missing_message(root: Path, *causes: Exception, with_kg: bool = True) -> str:
    why = "".join(f"\n  - {cause}" for cause in causes)
    why = f" Tried:{why}" if why else ""
    folder = root / "ml-100k-recbole"
    needed = tuple(RECBOLE_SHA256) if with_kg else RECBOLE_CORE
    have = [n for n in needed if (folder / n).exists()]
    missing = [n for n in needed if n not in have]
    partial = ""
    if have:
        partial = f"\n{folder} holds {', '.join(have)} but lacks {', '.join(missing)}."
        if with_kg and all((folder / n).exists() for n in RECBOLE_CORE):
            partial += " Pass with_kg=False to load the ratings without the knowledge graph."
    return (
        f"ML-100K is not in the cache {root} and could not be fetched.{why}{partial}\n"
        "Put ONE of these in place by hand, then run again:\n"
        f"  * the GroupLens zip as {root / 'ml-100k.zip'} (from {ML100K_URL}, MD5 {ML100K_MD5}), or\n"
        f"  * the five files ml-100k.inter/.item/.user/.kg/.link in {folder}/, taken from\n"
        f"    the wheel of `pip download --no-deps {RECBOLE_WHEEL}` (inside it: {RECBOLE_DIR}/).\n"
        "Set XREC_DATA_DIR to use another cache folder."
    )


def _recbole_files(folder: Path, *, download_ok: bool, required: bool, with_kg: bool = True) -> Path | None:
    """The verified RecBole ML-100K folder, fetching the wheel if allowed; None if unavailable.

    Without ``with_kg`` only the three ratings files are needed (the graph files are not checked).
    """
    needed = tuple(RECBOLE_SHA256) if with_kg else RECBOLE_CORE
    if all((folder / name).exists() for name in needed):
        for file_name in needed:
            verify_or_delete(folder / file_name, RECBOLE_SHA256[file_name])
        return folder
    if not download_ok:
        if required:
            raise DataUnavailableError(_missing_message(folder.parent, with_kg=with_kg))
        return None
    try:
        _fetch_recbole_wheel(folder)
    except DataUnavailableError as err:
        if required:
            raise
        warnings.warn(f"Could not fetch the RecBole copy of ML-100K: {err}", stacklevel=3)
        return None
    return folder


def _fetch_recbole_wheel(folder: Path) -> None:
    """``pip download --no-deps recbole==1.2.1`` into a temp dir; extract and verify the five files.

    pip gets the same per-attempt timeout as the downloads (one retry) and the whole command a hard
    limit, so a registry that accepts connections but never answers fails within a minute.
    """
    timeout = net_timeout()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "--timeout", f"{timeout:g}", "--retries", "1",
               "-d", tmp, RECBOLE_WHEEL]
        limit = 3 * timeout
        say(f"Trying `pip download --no-deps {RECBOLE_WHEEL}` (the copy of ML-100K inside RecBole's wheel; "
            f"giving up after {limit:.0f} s)...")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise DataUnavailableError(
                f"`pip download --no-deps {RECBOLE_WHEEL}` got no answer from the package index within "
                f"{limit:.0f} s") from None
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataUnavailableError(f"`{' '.join(cmd[2:])}` failed: {proc.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            payload = {n: wheel.read(f"{RECBOLE_DIR}/{n}") for n in RECBOLE_SHA256}
    import hashlib

    for file_name, data in payload.items():
        actual = hashlib.sha256(data).hexdigest()
        if actual != RECBOLE_SHA256[file_name]:
            raise HashMismatchError(
                f"{file_name} from the {RECBOLE_WHEEL} wheel has SHA-256 {actual}, expected "
                f"{RECBOLE_SHA256[file_name]}; nothing was written to the cache."
            )
    for file_name, data in payload.items():
        remove_stale_parts(folder / file_name)
        atomic_write_bytes(folder / file_name, data)


def _finish_items(items: pd.DataFrame) -> pd.DataFrame:
    """Common item columns: raw_id, title ("Name (Year)"), name, year, genre flags."""
    items = items.sort_values("raw_id").reset_index(drop=True)
    year = items["year"].astype("Int64")
    items["title"] = [f"{n} ({y})" if pd.notna(y) else n for n, y in zip(items["name"], year)]
    items["year"] = year
    return items[["raw_id", "title", "name", "year", *GENRES]]


def _finish(name: str, ratings: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, source: str) -> Dataset:
    """Map raw ids to contiguous internal ids (sorted raw order) and build the Dataset."""
    users = users.sort_values("raw_id").reset_index(drop=True)
    items = _finish_items(items)
    umap = pd.Series(np.arange(len(users)), index=users["raw_id"].to_numpy())
    imap = pd.Series(np.arange(len(items)), index=items["raw_id"].to_numpy())
    unknown_users = ~ratings["raw_user"].isin(umap.index)
    unknown_items = ~ratings["raw_item"].isin(imap.index)
    if unknown_users.any() or unknown_items.any():
        raise ValueError(f"{name}: {int(unknown_users.sum())} ratings name unknown users and "
                         f"{int(unknown_items.sum())} unknown items; the files are inconsistent.")
    out = pd.DataFrame({
        "user": umap[ratings["raw_user"]].to_numpy(np.int64),
        "item": imap[ratings["raw_item"]].to_numpy(np.int64),
        "rating": ratings["rating"].to_numpy(np.float32),
        "timestamp": ratings["timestamp"].to_numpy(np.int64),
    })
    out = out.sort_values(["user", "timestamp", "item"], kind="stable").reset_index(drop=True)
    return Dataset(name=name, ratings=out, items=items, users=users, source=source)


def parse_grouplens_100k(path: Path | str) -> Dataset:
    """Parse the GroupLens ``ml-100k.zip`` (or a folder holding ``u.data``, ``u.item``, ``u.user``).

    Parameters
    ----------
    path : Path | str
        The zip file or the folder.

    Returns
    -------
    Dataset
        ML-100K without the knowledge graph.
    """
    path = Path(path)

    def read(member: str) -> bytes:
        if path.is_dir():
            return (path / member).read_bytes()
        with zipfile.ZipFile(path) as zf:
            return zf.read(f"ml-100k/{member}")

    try:
        ratings = pd.read_csv(io.BytesIO(read("u.data")), sep="\t", header=None,
                              names=["raw_user", "raw_item", "rating", "timestamp"])
        raw_items = pd.read_csv(io.BytesIO(read("u.item")), sep="|", header=None, encoding="latin-1",
                                names=["raw_id", "title", "release", "video", "url", *GENRES])
        users = pd.read_csv(io.BytesIO(read("u.user")), sep="|", header=None,
                            names=["raw_id", "age", "gender", "occupation", "zip"], dtype={"zip": str})
    except (KeyError, FileNotFoundError, zipfile.BadZipFile, pd.errors.ParserError) as err:
        raise DataUnavailableError(f"{path} is not a readable ML-100K GroupLens archive: {err}. "
                                   "Delete it and run again to re-fetch.") from err
    names, years = [], []
    for title, release in zip(raw_items["title"].fillna("unknown"), raw_items["release"]):
        match = _TITLE_YEAR.match(title)
        if match:
            names.append(match["name"])
            years.append(int(match["year"]))
        else:
            names.append(title.strip())
            years.append(int(str(release)[-4:]) if isinstance(release, str) and release[-4:].isdigit() else None)
    items = raw_items[["raw_id", *GENRES]].assign(name=names, year=pd.array(years, dtype="Int64"))
    return _finish("ml-100k", ratings, items, users, source=f"GroupLens zip ({path.name})")


def parse_recbole_100k(folder: Path | str, *, with_kg: bool = True) -> Dataset:
    """Parse the RecBole atomic files (``ml-100k.inter``/``.item``/``.user``, optional ``.kg``/``.link``).

    Parameters
    ----------
    folder : Path | str
        Folder of the atomic files.
    with_kg : bool
        Also read the ``.kg`` and ``.link`` files.

    Returns
    -------
    Dataset
        ML-100K, with ``kg`` and ``item_entity`` when read.
    """
    folder = Path(folder)
    ratings = pd.read_csv(folder / "ml-100k.inter", sep="\t")
    ratings.columns = ["raw_user", "raw_item", "rating", "timestamp"]
    raw_items = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    raw_items.columns = ["raw_id", "name", "year", "genres"]
    # RecBole's copy misspells ML-100K's placeholder item 267 ("unknown") as "unkonwn".
    raw_items["name"] = raw_items["name"].replace("unkonwn", "unknown")
    # RecBole took the *last* bracket of GroupLens titles as the year, so "X (1995) (V)" (item 1412)
    # became name "X (1995)", year "V". Move that "(1995)" into the year, as the GroupLens parser
    # does, so both sources give the same name, year and title.
    bracketed = raw_items["name"].str.extract(r"\s*\((\d{4})\)$", expand=False)
    raw_items["name"] = raw_items["name"].str.replace(r"\s*\(\d{4}\)$", "", regex=True)
    year = pd.to_numeric(raw_items["year"], errors="coerce")
    year = year.fillna(pd.to_numeric(bracketed, errors="coerce")).astype("Int64")
    flags = {g: raw_items["genres"].str.split(" ").apply(lambda gs, g=g: int(g in gs)) for g in GENRES}
    items = pd.DataFrame({"raw_id": raw_items["raw_id"].astype(int), "name": raw_items["name"], "year": year, **flags})
    users = pd.read_csv(folder / "ml-100k.user", sep="\t", dtype={"zip_code:token": str})
    users.columns = ["raw_id", "age", "gender", "occupation", "zip"]
    dataset = _finish("ml-100k", ratings, items, users, source="the copy of MovieLens-100K inside the RecBole 1.2.1 package")
    if with_kg and (folder / "ml-100k.kg").exists():
        _attach_kg(dataset, folder)
    return dataset


def _attach_kg(dataset: Dataset, folder: Path) -> None:
    """Attach the Freebase triples and the item -> entity links from the RecBole files."""
    kg = pd.read_csv(folder / "ml-100k.kg", sep="\t")
    kg.columns = ["head", "relation", "tail"]
    link = pd.read_csv(folder / "ml-100k.link", sep="\t")
    link.columns = ["raw_item", "entity"]
    imap = pd.Series(np.arange(dataset.n_items), index=dataset.items["raw_id"].to_numpy())
    link = link[link["raw_item"].isin(imap.index)]
    dataset.kg = kg
    dataset.item_entity = pd.Series(link["entity"].to_numpy(), index=imap[link["raw_item"]].to_numpy(),
                                    name="entity").sort_index()
    dataset.source += ", with its Freebase knowledge graph"


# --- ML-1M --------------------------------------------------------------------------------------
def _load_ml1m(*, download_ok: bool) -> Dataset:
    zip_path = data_dir() / "ml-1m.zip"
    with cache_lock("ml-1m"):
        remove_stale_parts(zip_path)
        if zip_path.exists():
            verify_or_delete(zip_path, ML1M_MD5, "md5")
        elif download_ok:
            try:
                download(ML1M_URL, zip_path, md5=ML1M_MD5, retries=2)
            except DataUnavailableError as err:
                raise DataUnavailableError(
                    f"ML-1M is not cached and could not be downloaded ({err}). Place the GroupLens zip "
                    f"at {zip_path} (from {ML1M_URL}, MD5 {ML1M_MD5}) and run again."
                ) from None
        else:
            raise DataUnavailableError(f"ML-1M is not cached: place the GroupLens zip at {zip_path}.")
        return parse_ml1m(zip_path)


def parse_ml1m(path: Path | str) -> Dataset:
    """Parse ML-1M's ``::``-separated files from the GroupLens zip or a folder holding them.

    Parameters
    ----------
    path : Path | str
        The zip file or the folder.

    Returns
    -------
    Dataset
        ML-1M.
    """
    path = Path(path)

    def read(member: str) -> io.StringIO:
        raw = (path / member).read_bytes() if path.is_dir() else zipfile.ZipFile(path).read(f"ml-1m/{member}")
        # "::" is a two-character separator; turn it into one so the fast C parser can be used.
        return io.StringIO(raw.decode("latin-1").replace("::", "\t"))

    try:
        ratings = pd.read_csv(read("ratings.dat"), sep="\t", header=None,
                              names=["raw_user", "raw_item", "rating", "timestamp"])
        movies = pd.read_csv(read("movies.dat"), sep="\t", header=None, names=["raw_id", "title", "genres"],
                             quoting=3)
        users = pd.read_csv(read("users.dat"), sep="\t", header=None,
                            names=["raw_id", "gender", "age", "occupation", "zip"], dtype={"zip": str})
    except (KeyError, FileNotFoundError, zipfile.BadZipFile, pd.errors.ParserError) as err:
        raise DataUnavailableError(f"{path} is not a readable ML-1M archive: {err}.") from err
    parsed = movies["title"].str.extract(_TITLE_YEAR)
    movie_genres = movies["genres"].str.split("|")
    flags = {g: movie_genres.apply(lambda gs, g=g: int(g in gs)) for g in GENRES}
    items = pd.DataFrame({"raw_id": movies["raw_id"], "name": parsed["name"].fillna(movies["title"]),
                          "year": pd.to_numeric(parsed["year"], errors="coerce"), **flags})
    users["occupation"] = users["occupation"].map(lambda c: ML1M_OCCUPATIONS[int(c)])
    users = users[["raw_id", "age", "gender", "occupation", "zip"]]
    return _finish("ml-1m", ratings, items, users, source=f"GroupLens zip ({path.name})")
