"""The download cache: fetch with retries and a progress bar, verify a hash, write atomically.

Used by every loader of :mod:`xrec_helpers.data` (01_eda shows where the data comes from). Nothing half-written is
ever left in the cache: downloads go to a temporary ``.part`` file in the same folder and are renamed into place
only after the hash matches; a mismatch deletes the temporary file and says so, and ``.part`` files left by a
process that was killed mid-download are removed by the next download of that file.

Nothing waits silently: every network attempt has a bounded timeout (``XREC_NET_TIMEOUT``
seconds, default 10) and prints one line saying what it is trying. The lock that keeps parallel
processes from fetching twice is a cross-platform :mod:`filelock` lock; a read-only cache is
read under a lock in the temporary folder instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock
from filelock import Timeout as LockTimeout
from tqdm.auto import tqdm

from xrec_helpers._paths import data_dir


class DataUnavailableError(RuntimeError):
    """Raised when a dataset is neither cached nor obtainable; the message says what to do."""


class HashMismatchError(RuntimeError):
    """Raised when a downloaded or cached file does not have the expected hash."""


def file_hash(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks.

    Parameters
    ----------
    path : Path | str
        The file.
    algorithm : str
        A :mod:`hashlib` algorithm name.

    Returns
    -------
    str
        The hex digest.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path | str, expected: str, algorithm: str = "sha256") -> None:
    """Raise :class:`HashMismatchError` unless ``path`` has the ``expected`` digest.

    Parameters
    ----------
    path : Path | str
        The file.
    expected : str
        The expected hex digest.
    algorithm : str
        A :mod:`hashlib` algorithm name.

    Raises
    ------
    HashMismatchError
        When the digests differ.
    """
    actual = file_hash(path, algorithm)
    if actual != expected.lower():
        raise HashMismatchError(
            f"{path} has {algorithm} {actual}, expected {expected}. The file is corrupt or is a "
            "different version; delete it and run again to re-fetch it."
        )


def verify_or_delete(path: Path | str, expected: str, algorithm: str = "sha256") -> None:
    """Like :func:`verify`, but a cached file that fails is deleted so the next run fetches it again.

    When the file cannot be deleted (a read-only cache), the hash failure is still what is raised,
    and the message says the file must be replaced by hand.

    Parameters
    ----------
    path : Path | str
        The file.
    expected : str
        The expected hex digest.
    algorithm : str
        A :mod:`hashlib` algorithm name.

    Raises
    ------
    HashMismatchError
        When the digests differ.
    """
    try:
        verify(path, expected, algorithm)
    except HashMismatchError as err:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as unlink_error:
            raise HashMismatchError(
                f"{err} It could not be deleted ({type(unlink_error).__name__}: {unlink_error.strerror}): "
                f"the cache is read-only, so replace or delete {path} by hand, or point XREC_DATA_DIR at "
                "a folder you can write to."
            ) from None
        raise HashMismatchError(f"{err} (the corrupt cached file was deleted)") from None


def net_timeout() -> float:
    """Seconds one network attempt may wait (``XREC_NET_TIMEOUT``, default 10)."""
    raw = os.environ.get("XREC_NET_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else 10.0
    except ValueError:
        raise ValueError(f"XREC_NET_TIMEOUT={raw!r} is not a number of seconds (e.g. 10).") from None
    if not 0 < value <= 600:
        raise ValueError(f"XREC_NET_TIMEOUT={raw!r} must be between 0 and 600 seconds.")
    return value


def say(message: str) -> None:
    """One progress line on stderr (shown in notebooks and terminals alike, never buffered).

    Parameters
    ----------
    message : str
        The line.
    """
    print(message, file=sys.stderr, flush=True)


LOCK_WAIT_S = 300.0  # longest a process waits for another one that is fetching the same data


def _lock_path(name: str) -> Path:
    """The lock file: in the cache, or in the temporary folder when the cache is read-only."""
    root = data_dir()
    try:
        # Probe with a throw-away file: creating the lock file itself would leave it behind, which a
        # soft lock (platforms without fcntl/msvcrt) reads as "held".
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
        return root / f".{name}.lock"
    except OSError:
        # A read-only cache can still be read; a lock outside it keeps processes that might repair it
        # apart (the name is derived from the cache path, so every process picks the same file).
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"xrec-{key}-{name}.lock"


@contextlib.contextmanager
def cache_lock(name: str, timeout: float = LOCK_WAIT_S) -> Iterator[None]:
    """An inter-process lock for one dataset, so parallel test workers fetch a file once.

    Cross-platform (:mod:`filelock`). A process that has to wait says so; after ``timeout`` seconds
    it gives up with an error naming the lock file (a crashed process never holds it: the
    operating system releases the lock with the process).

    Parameters
    ----------
    name : str
        The dataset's name (one lock file each).
    timeout : float
        Seconds to wait for another process.

    Yields
    ------
    None
        Nothing; the lock is held inside the ``with`` block.

    Raises
    ------
    DataUnavailableError
        When the lock is not acquired within ``timeout``.
    """
    lock = FileLock(str(_lock_path(name)))
    try:
        lock.acquire(timeout=0)
    except LockTimeout:
        # No lock path here: a learner who runs two notebooks at once needs only to know why the cell waits; the
        # path is in the error, for when the wait runs out.
        say(f"Another notebook or process is loading {name} right now; waiting for it (up to {timeout:.0f} s)...")
        try:
            lock.acquire(timeout=timeout)
        except LockTimeout:
            raise DataUnavailableError(
                f"Another process has held the lock {lock.lock_file} for more than {timeout:.0f} s while "
                f"loading {name}. Wait for it to finish (or stop it) and run again."
            ) from None
    try:
        yield
    finally:
        lock.release()


def remove_stale_parts(dest: Path) -> list[Path]:
    """Delete ``.part`` files of ``dest`` left by a download that was killed; returns what was removed.

    Call it only while holding the dataset's :func:`cache_lock`: then no live download owns them.

    Parameters
    ----------
    dest : Path
        The final path of a download.

    Returns
    -------
    list[Path]
        The removed files.
    """
    removed = []
    for part in dest.parent.glob(f".{dest.name}.*.part"):
        with contextlib.suppress(OSError):
            part.unlink()
            removed.append(part)
    return removed


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file in the same folder and a rename.

    Parameters
    ----------
    dest : Path
        The final path.
    data : bytes
        The bytes to write.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def download(
    url: str,
    dest: Path | str,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 2,
    timeout: float | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5`` or ``sha256`` when given.

    Each attempt waits at most ``timeout`` seconds for the server to answer (default
    :func:`net_timeout`) and prints a line saying what it is trying; a failure is retried
    ``retries - 1`` times. A name-resolution failure (no network) is not retried, because waiting
    does not bring a network back. ``.part`` files of ``dest`` left by a killed download are deleted
    first (call this under :func:`cache_lock` when other processes may be downloading).

    Parameters
    ----------
    url : str
        Where to fetch from.
    dest : Path | str
        The final path.
    md5, sha256 : str | None
        Expected digests (checked when given).
    retries : int
        Attempts in all.
    timeout : float | None
        Seconds to wait for the server (default :func:`net_timeout`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DataUnavailableError
        When every attempt fails.
    HashMismatchError
        When the downloaded file has another digest.
    """
    dest = Path(dest)
    timeout = net_timeout() if timeout is None else timeout
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest)
    last_error: Exception | None = None
    for attempt in range(retries):
        if progress:
            say(f"Downloading {url} (attempt {attempt + 1} of {retries}, giving up after {timeout:.0f} s without an answer)...")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
            for algorithm, expected in (("md5", md5), ("sha256", sha256)):
                if expected:
                    try:
                        verify(tmp, expected, algorithm)
                    except HashMismatchError as err:
                        raise HashMismatchError(
                            f"Downloaded {url} but its {algorithm} does not match; the file was deleted. {err}"
                        ) from None
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            return dest
        except HashMismatchError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            last_error = err
            reason = getattr(err, "reason", err)
            if "resolve" in str(reason).lower() or "name or service" in str(reason).lower():
                break
            if attempt + 1 < retries:
                time.sleep(min(2**attempt, 4))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    raise DataUnavailableError(f"Could not download {url}: {type(last_error).__name__}: {last_error}")


def remove_tree(path: Path) -> None:
    """Delete a cache folder (used when a cached copy fails its hash check).

    Parameters
    ----------
    path : Path
        The folder.
    """
    shutil.rmtree(path, ignore_errors=True)
