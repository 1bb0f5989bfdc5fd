"""The data layer: real ML-100K offline, both source formats agree, corruption and absence are caught."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xrec_helpers.data import DataUnavailableError, HashMismatchError, load_movielens
from xrec_helpers.data.cache import download, file_hash
from xrec_helpers.data.dataset import GENRES
from xrec_helpers.data.movielens import RECBOLE_SHA256, parse_grouplens_100k, parse_ml1m, parse_recbole_100k


def test_ml100k_shape_titles_and_kg(ml100k):
    assert len(ml100k.ratings) == 100_000
    assert (ml100k.n_users, ml100k.n_items) == (943, 1682)
    assert ml100k.ratings["user"].between(0, 942).all() and ml100k.ratings["item"].between(0, 1681).all()
    assert set(ml100k.ratings["rating"].unique()) == {1, 2, 3, 4, 5}
    assert ml100k.titles(ml100k.item_index(1)) == "Toy Story (1995)"
    assert ml100k.items.loc[ml100k.item_index(1), ["Animation", "Children's", "Comedy"]].tolist() == [1, 1, 1]
    assert len(ml100k.kg) == 91_631 and ml100k.item_entity.nunique() == 1598
    assert ml100k.users.loc[0, "occupation"] == "technician"
    # Every user of ML-100K rated at least 20 movies.
    assert ml100k.ratings.groupby("user").size().min() == 20


def test_unknown_ids_say_what_to_do(ml100k):
    with pytest.raises(KeyError, match="Unknown user id"):
        ml100k.user_index(99999)
    with pytest.raises(KeyError, match="Unknown item id"):
        ml100k.item_index(0)
    with pytest.raises(IndexError, match=r"Unknown item id.*0\.\.1681.*item_index"):
        ml100k.titles([1682])


def _write_grouplens_zip(dataset, path: Path) -> None:
    """Write a Dataset back out in the GroupLens u.data / u.item / u.user format."""
    r = dataset.ratings
    u_data = pd.DataFrame({"u": dataset.users["raw_id"].to_numpy()[r["user"]],
                           "i": dataset.items["raw_id"].to_numpy()[r["item"]],
                           "r": r["rating"].astype(int), "t": r["timestamp"]})
    lines = []
    for _, row in dataset.items.iterrows():
        # GroupLens writes "Name (Year)" and a release date; item 267 is "unknown" with no date; item
        # 1412 is the one title with a second bracket, "(1995) (V)", which RecBole's copy misread.
        title = row["title"] + (" (V)" if row["raw_id"] == 1412 else "")
        release = f"01-Jan-{row['year']}" if pd.notna(row["year"]) else ""
        flags = "|".join(str(int(row[g])) for g in GENRES)
        lines.append(f"{row['raw_id']}|{title}|{release}||http://example|{flags}")
    users = dataset.users[["raw_id", "age", "gender", "occupation", "zip"]]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", u_data.to_csv(sep="\t", header=False, index=False))
        zf.writestr("ml-100k/u.item", ("\n".join(lines) + "\n").encode("latin-1"))
        zf.writestr("ml-100k/u.user", users.to_csv(sep="|", header=False, index=False))


def test_grouplens_and_recbole_formats_parse_identically(ml100k, tmp_path):
    zip_path = tmp_path / "ml-100k.zip"
    _write_grouplens_zip(ml100k, zip_path)
    grouplens = parse_grouplens_100k(zip_path)
    pd.testing.assert_frame_equal(grouplens.ratings, ml100k.ratings)
    pd.testing.assert_frame_equal(grouplens.items, ml100k.items)
    pd.testing.assert_frame_equal(grouplens.users, ml100k.users)


def test_title_parsing_edge_cases(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t10\n1\t2\t3\t11\n")
    flags = "|".join(["0"] * 19)
    (folder / "u.item").write_bytes(
        ("1|Misérables, Les (1995)|01-Jan-1995||u|" + flags + "\n"
         "2|unknown||||" + flags + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n")
    d = parse_grouplens_100k(folder)
    assert d.titles([0, 1]).tolist() == ["Misérables, Les (1995)", "unknown"]
    assert d.items["year"].isna().tolist() == [False, True]


@pytest.fixture()
def private_cache(tmp_path, monkeypatch, ml100k):
    """A cache folder of our own holding a verified copy of the RecBole files."""
    from xrec_helpers._paths import data_dir

    src = data_dir() / "ml-100k-recbole"
    dst = tmp_path / "cache" / "ml-100k-recbole"
    shutil.copytree(src, dst)
    monkeypatch.setenv("XREC_DATA_DIR", str(tmp_path / "cache"))
    return dst


def test_cached_recbole_copy_loads_offline(private_cache):
    d = load_movielens("ml-100k", download_ok=False)
    assert len(d.ratings) == 100_000 and d.kg is not None


def test_corrupt_cached_file_is_detected_and_removed(private_cache):
    target = private_cache / "ml-100k.inter"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match="corrupt"):
        load_movielens("ml-100k", download_ok=False)
    assert not target.exists()


def test_no_cache_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XREC_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataUnavailableError) as err:
        load_movielens("ml-100k", download_ok=False)
    message = str(err.value)
    assert "ml-100k.zip" in message and "ml-100k-recbole" in message and "recbole==1.2.1" in message


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="ml-100k"):
        load_movielens("ml-25m")


def test_recbole_hashes_match_cache():
    from xrec_helpers._paths import data_dir

    for name, digest in RECBOLE_SHA256.items():
        assert file_hash(data_dir() / "ml-100k-recbole" / name) == digest


def test_parse_recbole_without_kg(private_cache):
    d = parse_recbole_100k(private_cache, with_kg=False)
    assert d.kg is None and len(d.ratings) == 100_000


# Six invented ratings in ML-1M's exact `::` format (written at test time: files named like MovieLens'
# are never committed, even when the content is ours).
ML1M_TINY = {
    "ratings.dat": "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978298413\n"
                   "2::30::1::978299000\n3::20::2::978297867\n3::30::5::978301968\n",
    "movies.dat": "10::Toy Story (1995)::Animation|Children's|Comedy\n20::Heat (1995)::Action|Crime|Thriller\n"
                  "30::City of Lost Children, The (1995)::Adventure|Sci-Fi\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
}


def test_ml1m_fixture_in_exact_format(tmp_path):
    for name, text in ML1M_TINY.items():
        (tmp_path / name).write_text(text)
    d = parse_ml1m(tmp_path)
    assert (len(d.ratings), d.n_users, d.n_items) == (6, 3, 3)
    assert d.titles([2]).tolist() == ["City of Lost Children, The (1995)"]
    assert d.items.loc[0, ["Animation", "Children's", "Comedy", "unknown"]].tolist() == [1, 1, 1, 0]
    assert d.users["occupation"].tolist() == ["K-12 student", "self-employed", "scientist"]
    assert d.ratings.loc[0, ["user", "item", "rating"]].tolist() == [0, 0, 5]


def test_ml1m_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("XREC_DATA_DIR", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="ml-1m.zip"):
        load_movielens("ml-1m", download_ok=False)


def test_download_verifies_hash_and_leaves_nothing_half_written(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 5000)
    good = file_hash(src, "md5")
    dest = tmp_path / "out" / "file.bin"
    dest.parent.mkdir()
    with pytest.raises(HashMismatchError, match="deleted"):
        download(src.as_uri(), dest, md5="0" * 32, progress=False)
    assert list(dest.parent.iterdir()) == []
    assert download(src.as_uri(), dest, md5=good, progress=False) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_subset_users_reindexes(ml100k):
    small = ml100k.subset_users(50, seed=1)
    assert small.n_users == 50 and small.ratings["user"].max() == 49
    assert small.ratings["item"].max() == small.n_items - 1
    assert np.isin(small.items["raw_id"], ml100k.items["raw_id"]).all()
    raw_pairs = set(zip(small.users["raw_id"].to_numpy()[small.ratings["user"]],
                        small.items["raw_id"].to_numpy()[small.ratings["item"]]))
    full_pairs = set(zip(ml100k.users["raw_id"].to_numpy()[ml100k.ratings["user"]],
                         ml100k.items["raw_id"].to_numpy()[ml100k.ratings["item"]]))
    assert raw_pairs <= full_pairs


def test_csr_matches_ratings(ml100k):
    X = ml100k.csr()
    assert X.shape == (943, 1682) and X.nnz == 100_000
    R = ml100k.csr(binary=False)
    row = ml100k.ratings.iloc[123]
    assert R[int(row["user"]), int(row["item"])] == row["rating"]


def test_synthetic_has_planted_pairs():
    from xrec_helpers.data.synthetic import synthetic

    d = synthetic(n_users=200, seed=3)
    r = d.ratings
    for cause, effect in d.planted_pairs:
        with_cause = set(r.loc[r["item"] == cause, "user"])
        with_effect = set(r.loc[r["item"] == effect, "user"])
        assert with_effect <= with_cause  # the effect never occurs without its cause
        assert len(with_effect) >= 0.8 * len(with_cause)


def test_cached_zip_with_wrong_md5_is_deleted(ml100k, tmp_path, monkeypatch):
    monkeypatch.setenv("XREC_DATA_DIR", str(tmp_path))
    zip_path = tmp_path / "ml-100k.zip"
    _write_grouplens_zip(ml100k, zip_path)  # same tables, but not GroupLens' exact bytes
    with pytest.raises(HashMismatchError, match="deleted"):
        load_movielens("ml-100k", download_ok=False)
    assert not zip_path.exists()
