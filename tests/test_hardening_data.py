"""Hardening of the data layer: nothing half-written, nothing silently wrong, no silent waits.

Each test reproduces a case that went wrong before (a stale download, a literal "~" folder, a
read-only cache, a missing graph file, a silent host, Windows' missing fcntl, item 1412's year,
raw ids passed as internal ones, NaN or duplicate ratings) and checks the clear behaviour instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xrec_helpers._paths import CacheDirError, data_dir
from xrec_helpers.data import DataUnavailableError, HashMismatchError, load_movielens
from xrec_helpers.data.cache import cache_lock, download, file_hash
from xrec_helpers.data.dataset import GENRES, to_csr
from xrec_helpers.data.movielens import RECBOLE_CORE, parse_grouplens_100k, parse_recbole_100k

ROOT = Path(__file__).resolve().parent.parent


# --- nothing half-written ------------------------------------------------------------------------
def test_a_killed_download_leaves_no_part_file_behind(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"y" * 3000)
    dest_dir = tmp_path / "cache"
    dest_dir.mkdir()
    # What a download killed with SIGKILL leaves: its temporary file, which no `finally` removed.
    stale = dest_dir / ".file.bin.k1ll3d.part"
    stale.write_bytes(b"y" * 100)
    download(src.as_uri(), dest_dir / "file.bin", md5=file_hash(src, "md5"), progress=False)
    assert sorted(p.name for p in dest_dir.iterdir()) == ["file.bin"]


def test_a_killed_process_really_leaves_a_part_file_that_the_next_load_removes(tmp_path):
    """The real thing: kill -9 a process mid-download, then download again."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(1 << 20))
    cache = tmp_path / "cache"
    cache.mkdir()
    script = textwrap.dedent(f"""
        import sys, time, urllib.request
        from xrec_helpers.data import cache
        real = urllib.request.urlopen
        class Slow:
            def __init__(self, r): self.r, self.headers = r, r.headers
            def __enter__(self): return self
            def __exit__(self, *a): self.r.close()
            def read(self, n):
                print("reading", flush=True); time.sleep(0.2); return self.r.read(1024)
        urllib.request.urlopen = lambda url, timeout=None: Slow(real(url, timeout=timeout))
        cache.download({src.as_uri()!r}, {str(cache / "big.bin")!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "reading"
        proc.kill()
    finally:
        proc.wait(timeout=30)
    assert list(cache.glob(".big.bin.*.part")), "the killed download should have left its temporary file"
    download(src.as_uri(), cache / "big.bin", md5=file_hash(src, "md5"), progress=False)
    assert sorted(p.name for p in cache.iterdir()) == ["big.bin"]


def test_a_load_from_the_cache_removes_part_files_of_killed_downloads(private_cache):
    stale = [private_cache / ".ml-100k.zip.x1.part", private_cache / "ml-100k-recbole" / ".ml-100k.kg.x2.part"]
    for path in stale:
        path.write_bytes(b"half")
    assert len(load_movielens("ml-100k", download_ok=False).ratings) == 100_000
    assert not any(path.exists() for path in stale)


# --- XREC_DATA_DIR -------------------------------------------------------------------------------
def test_tilde_in_xrec_data_dir_is_the_home_folder(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    monkeypatch.setenv("XREC_DATA_DIR", "~/xrec-data")
    assert data_dir() == home / "xrec-data"
    assert not (work / "~").exists()


@pytest.mark.parametrize("where", ["under_a_file", "in_proc"])
def test_unusable_xrec_data_dir_names_the_variable(tmp_path, monkeypatch, where):
    if where == "under_a_file":
        a_file = tmp_path / "a_file"
        a_file.write_text("x")
        bad = a_file / "cache"
    else:
        if not Path("/proc").is_dir():
            pytest.skip("no /proc on this system")
        bad = Path("/proc/xrec-cache")
    monkeypatch.setenv("XREC_DATA_DIR", str(bad))
    with pytest.raises(CacheDirError, match=r"XREC_DATA_DIR=.*Point XREC_DATA_DIR at a folder"):
        load_movielens("ml-100k", download_ok=False)


def test_xrec_data_dir_that_is_a_file_is_refused(tmp_path, monkeypatch):
    a_file = tmp_path / "cache.zip"
    a_file.write_text("x")
    monkeypatch.setenv("XREC_DATA_DIR", str(a_file))
    with pytest.raises(CacheDirError, match="XREC_DATA_DIR=.*is a file"):
        data_dir()


# --- read-only caches ----------------------------------------------------------------------------
@contextlib.contextmanager
def _read_only(folder: Path):
    """Make ``folder`` unwritable, also for root (who ignores permission bits): chattr +i where it works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture()
def private_cache(tmp_path, monkeypatch, ml100k):
    src = data_dir() / "ml-100k-recbole"
    cache = tmp_path / "cache"
    shutil.copytree(src, cache / "ml-100k-recbole")
    monkeypatch.setenv("XREC_DATA_DIR", str(cache))
    return cache


def test_a_read_only_cache_can_be_read(private_cache):
    with _read_only(private_cache), _read_only(private_cache / "ml-100k-recbole"):
        assert not (private_cache / ".ml-100k.lock").exists()
        data = load_movielens("ml-100k", download_ok=False)
    assert len(data.ratings) == 100_000 and data.kg is not None


def test_a_corrupt_file_in_a_read_only_cache_reports_the_hash_not_the_delete(private_cache):
    target = private_cache / "ml-100k-recbole" / "ml-100k.user"
    data = bytearray(target.read_bytes())
    data[50] ^= 0x01
    target.write_bytes(bytes(data))
    with _read_only(private_cache), _read_only(private_cache / "ml-100k-recbole"):
        with pytest.raises(HashMismatchError, match=r"sha256.*could not be deleted.*read-only.*by hand"):
            load_movielens("ml-100k", download_ok=False)
    assert target.exists()


# --- a missing graph file ------------------------------------------------------------------------
def test_ratings_load_without_the_graph_files_when_the_graph_is_not_wanted(private_cache):
    (private_cache / "ml-100k-recbole" / "ml-100k.kg").unlink()
    data = load_movielens("ml-100k", download_ok=False, with_kg=False)
    assert len(data.ratings) == 100_000 and data.kg is None
    with pytest.raises(DataUnavailableError) as err:
        load_movielens("ml-100k", download_ok=False, with_kg=True)
    message = str(err.value)
    assert "lacks ml-100k.kg" in message and "with_kg=False" in message
    assert all(name in message for name in RECBOLE_CORE)  # it says which files it does have


# --- no fcntl (Windows) --------------------------------------------------------------------------
def test_the_data_layer_works_without_fcntl(private_cache):
    """Windows has no fcntl: block its import and use the cache lock and a load from the cache."""
    script = textwrap.dedent("""
        import sys
        sys.modules["fcntl"] = None  # any `import fcntl` now raises ImportError, as on Windows
        from xrec_helpers.data import load_movielens
        from xrec_helpers.data.cache import cache_lock
        with cache_lock("probe"):
            pass
        print(len(load_movielens("ml-100k", download_ok=False).ratings))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XREC_DATA_DIR": str(private_cache)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "100000"


def test_a_second_process_says_it_is_waiting_for_the_lock(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("XREC_DATA_DIR", str(tmp_path))
    script = textwrap.dedent("""
        import time
        from xrec_helpers.data.cache import cache_lock
        with cache_lock("probe"):
            print("locked", flush=True)
            time.sleep(2)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XREC_DATA_DIR": str(tmp_path)}
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataUnavailableError, match="held the lock .* for more than 0 s"):
            with cache_lock("probe", timeout=0.2):
                pass
        assert "Another notebook or process is loading probe right now; waiting" in capfd.readouterr().err
        with cache_lock("probe", timeout=30):  # released when the holder is done
            pass
    finally:
        holder.wait(timeout=30)


# --- a silent host ------------------------------------------------------------------------------
@contextlib.contextmanager
def _silent_server():
    """A server on 127.0.0.1 that accepts every connection and never answers (loopback only)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])  # keep it open, say nothing

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


def _load_against_silent_host(cache: Path, port: int, net_timeout: str | None) -> tuple[subprocess.CompletedProcess, float]:
    script = textwrap.dedent(f"""
        from xrec_helpers.data import movielens
        movielens.ML100K_URL = "http://127.0.0.1:{port}/ml-100k.zip"
        movielens.load_movielens("ml-100k")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PYTHONPATH=str(ROOT), XREC_DATA_DIR=str(cache), PIP_CONFIG_FILE=os.devnull,
               PIP_INDEX_URL=f"http://127.0.0.1:{port}/simple", PIP_NO_CACHE_DIR="1")
    env.pop("XREC_NET_TIMEOUT", None)
    if net_timeout is not None:
        env["XREC_NET_TIMEOUT"] = net_timeout
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240)
    return out, time.perf_counter() - start


def _startup_seconds() -> float:
    """What the load's processes cost before any network wait, measured now: the import and pip's own start.

    The promise under test is about the network timeouts; on a loaded machine the two interpreter start-ups
    alone can take 20-30 s, so the time limit applies to the load minus this reference from the same run.
    """
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from xrec_helpers.data import movielens"], capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=240, check=True)
    subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, timeout=240, check=True)
    return time.perf_counter() - start


def _check_silent_host_failure(out: subprocess.CompletedProcess, cache: Path, port: int) -> None:
    assert out.returncode != 0
    err = out.stderr
    assert "DataUnavailableError" in err and "TimeoutExpired" not in err
    # it said what it was trying while it waited ...
    assert f"Downloading http://127.0.0.1:{port}/ml-100k.zip (attempt 1 of 2" in err
    assert "Trying `pip download --no-deps recbole==1.2.1`" in err
    # ... and the error names both manual fixes
    assert str(cache / "ml-100k.zip") in err and str(cache / "ml-100k-recbole") in err
    assert "pip download --no-deps recbole==1.2.1" in err
    assert not list(cache.glob("*.part")) and not list(cache.glob(".*.part"))
    with cache_lock("ml-100k", timeout=0.5):  # the lock was released
        pass


def test_a_silent_host_fails_with_both_fixes_and_progress_lines(tmp_path, monkeypatch):
    """The whole load against a host that accepts connections but never answers (a short timeout)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XREC_DATA_DIR", str(cache))
    with _silent_server() as (port, accepted):
        out, elapsed = _load_against_silent_host(cache, port, net_timeout="2")
        assert accepted, "the load never reached the silent host"
    _check_silent_host_failure(out, cache, port)
    # two 2 s GroupLens attempts + 1 s back-off, then pip's hard limit of 3 x 2 s (~11 s; 45 s still fails a hang)
    startup = _startup_seconds()
    assert elapsed - startup < 45, f"took {elapsed:.0f} s, of which {startup:.0f} s start-up"


@pytest.mark.skipif(os.environ.get("XREC_SLOW_TESTS") != "1", reason="takes ~45 s; make test-lowest (in CI) sets XREC_SLOW_TESTS=1")
def test_a_silent_host_fails_within_60_s_with_the_default_timeouts(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XREC_DATA_DIR", str(cache))
    with _silent_server() as (port, _):
        out, elapsed = _load_against_silent_host(cache, port, net_timeout=None)
    _check_silent_host_failure(out, cache, port)
    startup = _startup_seconds()
    assert elapsed - startup < 60, f"took {elapsed:.0f} s, of which {startup:.0f} s start-up"


def test_a_bad_xrec_net_timeout_is_named(monkeypatch):
    from xrec_helpers.data.cache import net_timeout

    monkeypatch.setenv("XREC_NET_TIMEOUT", "ten")
    with pytest.raises(ValueError, match="XREC_NET_TIMEOUT='ten'"):
        net_timeout()


# --- both source formats agree (item 1412) -------------------------------------------------------
def test_item_1412_has_the_same_title_and_year_from_both_sources(tmp_path):
    """GroupLens writes 'Name (1995) (V)'; RecBole's copy kept '(1995)' in the name and made 'V' the year."""
    flags = ["0"] * len(GENRES)
    flags[GENRES.index("Animation")] = flags[GENRES.index("Children's")] = "1"
    grouplens = tmp_path / "grouplens"
    grouplens.mkdir()
    (grouplens / "u.data").write_text("1\t1412\t4\t881000000\n1\t1\t5\t881000001\n")
    (grouplens / "u.item").write_bytes((
        "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
        "1412|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1995||http://x|"
        + "|".join(flags) + "\n").encode("latin-1"))
    (grouplens / "u.user").write_text("1|24|M|technician|85711\n")
    recbole = tmp_path / "recbole"
    recbole.mkdir()
    (recbole / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t1412\t4\t881000000\n1\t1\t5\t881000001\n")
    (recbole / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's\n"
        "1412\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's\n")
    (recbole / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n")
    a, b = parse_grouplens_100k(grouplens), parse_recbole_100k(recbole, with_kg=False)
    pd.testing.assert_frame_equal(a.items, b.items)
    row = b.items.loc[b.item_index(1412)]
    assert row["title"] == "Land Before Time III: The Time of the Great Giving (1995)" and row["year"] == 1995


def test_item_1412_in_the_real_data(ml100k):
    row = ml100k.items.loc[ml100k.item_index(1412)]
    assert (row["name"], row["year"]) == ("Land Before Time III: The Time of the Great Giving", 1995)
    assert ml100k.items["year"].isna().sum() == 1  # only the placeholder item 267 ("unknown") has no year


# --- raw vs internal ids -------------------------------------------------------------------------
def test_raw_ids_have_an_explicit_path(ml100k):
    toy_story = ml100k.item_index(1)
    assert ml100k.titles(toy_story) == "Toy Story (1995)"
    assert ml100k.titles(1) == "GoldenEye (1995)"  # internal id 1: the documented meaning, not a guess
    assert ml100k.item_index([1, 2]).tolist() == [0, 1]
    assert ml100k.raw_item_id(toy_story) == 1 and ml100k.raw_item_id([0, 1]).tolist() == [1, 2]
    assert ml100k.raw_user_id(ml100k.user_index(943)) == 943
    assert ml100k.user_index(np.int64(5)) == 4


@pytest.mark.parametrize("bad", [1.7, 1.0, True, "1", None])
def test_internal_item_ids_must_be_integers(ml100k, bad):
    with pytest.raises(TypeError, match=r"internal integer ids 0\.\.1681.*item_index"):
        ml100k.titles([bad])
    if bad is not None:  # titles(None) is documented as "all titles"
        with pytest.raises(TypeError, match="internal integer ids"):
            ml100k.titles(bad)


@pytest.mark.parametrize("bad", [True, 1.0, np.float64(2.0), False])
def test_raw_ids_refuse_bools_and_floats(ml100k, bad):
    with pytest.raises(TypeError, match="Raw user ids"):
        ml100k.user_index(bad)
    with pytest.raises(TypeError, match="Raw item ids"):
        ml100k.item_index(bad)


def test_unknown_raw_id_says_where_raw_ids_are(ml100k):
    with pytest.raises(KeyError, match=r"Unknown user id '7'.*Dataset.users.raw_id"):
        ml100k.user_index("7")


# --- ratings at the boundary ---------------------------------------------------------------------
def _frame(**cols):
    base = {"user": [0, 1, 1], "item": [0, 1, 2], "rating": [4.0, 2.0, 5.0], "timestamp": [1, 2, 3]}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize("binary", [True, False])
def test_nan_ratings_are_refused_not_counted_as_watched(binary):
    with pytest.raises(ValueError, match=r"1 rating\(s\) are missing or not finite"):
        to_csr(_frame(rating=[4.0, np.nan, 5.0]), 2, 3, binary=binary)


def test_duplicate_ratings_are_refused_unless_an_aggregation_is_asked_for():
    dup = pd.DataFrame({"user": [0, 0, 1], "item": [1, 1, 2], "rating": [2.0, 2.0, 5.0], "timestamp": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"1 \(user, item\) pair\(s\) occur more than once.*duplicates="):
        to_csr(dup, 2, 3, binary=False)
    assert to_csr(dup, 2, 3, binary=False, duplicates="mean")[0, 1] == 2.0
    assert to_csr(dup, 2, 3, binary=False, duplicates="sum")[0, 1] == 4.0
    last = dup.assign(rating=[2.0, 3.0, 5.0])
    assert to_csr(last, 2, 3, binary=False, duplicates="last")[0, 1] == 3.0
    assert to_csr(last, 2, 3, binary=False, duplicates="max")[0, 1] == 3.0
    assert to_csr(dup, 2, 3)[0, 1] == 1.0  # binary: still one "watched"
    with pytest.raises(ValueError, match="duplicates='median'"):
        to_csr(dup, 2, 3, binary=False, duplicates="median")


def test_bad_ids_and_zero_ratings_in_a_frame_are_refused():
    with pytest.raises(IndexError, match=r"Unknown item id\(s\) \[3\]"):
        to_csr(_frame(item=[0, 1, 3]), 2, 3)
    with pytest.raises(TypeError, match="'user' column holds non-integer values"):
        to_csr(_frame(user=[0.0, 1.5, 1.0]), 2, 3)
    assert to_csr(_frame(user=[0.0, 1.0, 1.0]), 2, 3).nnz == 3  # whole numbers stored as floats are fine
    with pytest.raises(ValueError, match="are 0: in a sparse matrix"):
        to_csr(_frame(rating=[0.0, 2.0, 5.0]), 2, 3, binary=False)
