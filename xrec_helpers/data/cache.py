"""The download cache: fetch with retries and a progress bar, verify a hash, write atomically.

Taught in 01_eda (where the data comes from). Nothing half-written is ever left in the cache:
downloads go to a temporary file in the same folder and are renamed into place only after the
hash matches; a mismatch deletes the temporary file and says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from xrec_helpers._paths import data_dir


class DataUnavailableError(RuntimeError):
    """Raised when a dataset is neither cached nor obtainable; the message says what to do."""


class HashMismatchError(RuntimeError):
    """Raised when a downloaded or cached file does not have the expected hash."""


def file_hash(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path | str, expected: str, algorithm: str = "sha256") -> None:
    """Raise :class:`HashMismatchError` unless ``path`` has the ``expected`` digest."""
    actual = file_hash(path, algorithm)
    if actual != expected.lower():
        raise HashMismatchError(
            f"{path} has {algorithm} {actual}, expected {expected}. The file is corrupt or is a "
            "different version; delete it and run again to re-fetch it."
        )


def verify_or_delete(path: Path | str, expected: str, algorithm: str = "sha256") -> None:
    """Like :func:`verify`, but a cached file that fails is deleted so the next run fetches it again."""
    try:
        verify(path, expected, algorithm)
    except HashMismatchError as err:
        Path(path).unlink(missing_ok=True)
        raise HashMismatchError(f"{err} (the corrupt cached file was deleted)") from None


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """An inter-process lock in the cache folder, so parallel test workers fetch a file once."""
    lock_path = data_dir() / f".{name}.lock"
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file in the same folder and a rename."""
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
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5`` or ``sha256`` when given.

    Retries transient failures with exponential back-off; a name-resolution failure (no network)
    is not retried, because waiting does not bring a network back.
    """
    dest = Path(dest)
    last_error: Exception | None = None
    for attempt in range(retries):
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
            time.sleep(min(2**attempt, 8))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    raise DataUnavailableError(f"Could not download {url}: {last_error}")


def remove_tree(path: Path) -> None:
    """Delete a cache folder (used when a cached copy fails its hash check)."""
    shutil.rmtree(path, ignore_errors=True)
