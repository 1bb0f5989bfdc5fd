"""The served configuration of the demo (``make demo``): loopback only, Host-checked, token, culled, capped.

Part of the demo (apps/why_this_recommendation). Voilà starts one kernel per page load. Served as-is it would accept
any ``Host`` header (weak against DNS rebinding), ask for no token, keep every kernel forever and start as
many as pages are opened. :func:`configure` (read by ``apps/voila.py``) and :func:`demo_command` fix each:

* listen on 127.0.0.1 only, and refuse requests (pages and WebSockets) whose ``Host`` is not a loopback
  address or ``localhost``;
* a token: the page opens only at the printed ``…/?token=…`` URL (then a cookie keeps the session);
* kernels idle for ``XREC_DEMO_CULL_S`` seconds (default 1800) are shut down, checked every minute;
* at most ``XREC_DEMO_MAX_KERNELS`` kernels (default 4) run at once; one more page load gets a clear
  "503: the demo is full" page instead of a new kernel.

Voilà's own refusal to execute code sent by the browser (only widget messages reach the kernel) is kept:
nothing here widens the allowed message types, and tracebacks are not shown to viewers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"
APP = APPS / "why_this_recommendation.ipynb"
DEFAULT_PORT = 8866


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be a whole number (e.g. {name}={default}).") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}.")
    return value


class KernelCap:
    """A Voilà ``prelaunch_hook`` that refuses a new kernel when ``max_kernels`` are already running.

    Parameters
    ----------
    max_kernels : int
        Most kernels running at once.
    """

    def __init__(self, max_kernels: int):
        if max_kernels < 1:
            raise ValueError(f"max_kernels={max_kernels} must be at least 1.")
        self.max_kernels = max_kernels

    def __call__(self, request, notebook, cwd) -> None:
        from tornado.web import HTTPError

        running = len(request.application.settings["kernel_manager"].list_kernel_ids())
        if running >= self.max_kernels:
            raise HTTPError(503, reason=f"The demo is full: {running} sessions are open (the cap is "
                                        f"{self.max_kernels}). Close a tab, or wait for idle sessions to end.")


def configure(c: Config, max_kernels: int | None = None, cull_idle_s: int | None = None) -> None:
    """Apply the served configuration to a traitlets config object ``c`` (``apps/voila.py`` calls this).

    Parameters
    ----------
    c : Config
        The config object of ``apps/voila.py``.
    max_kernels : int | None
        Most kernels at once (default: ``XREC_DEMO_MAX_KERNELS``).
    cull_idle_s : int | None
        Seconds before an idle kernel is shut down (default: ``XREC_DEMO_CULL_S``).
    """
    max_kernels = _env_int("XREC_DEMO_MAX_KERNELS", 4, 1) if max_kernels is None else max_kernels
    cull_idle_s = _env_int("XREC_DEMO_CULL_S", 1800, 60) if cull_idle_s is None else cull_idle_s
    # Voilà sets allow_remote_access=True and then applies tornado_settings: this turns jupyter_server's
    # Host check back on for every handler, pages and kernel WebSockets alike.
    c.Voila.tornado_settings = {"allow_remote_access": False, "local_hostnames": ["localhost"]}
    c.MappingKernelManager.cull_idle_timeout = cull_idle_s
    c.MappingKernelManager.cull_interval = 60
    c.MappingKernelManager.cull_connected = True  # a tab left open and idle also ends: the cap frees up
    c.VoilaConfiguration.prelaunch_hook = KernelCap(max_kernels)
    c.VoilaConfiguration.show_tracebacks = False


def voila_executable() -> str:
    """The ``voila`` next to this Python (the project's virtual environment), else the one on PATH."""
    found = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    if found is None:
        raise FileNotFoundError("voila is not installed in this environment: run `make install-ui` "
                                "(pip install -e '.[ui]').")
    return found


def demo_command(port: int = DEFAULT_PORT, token: str | None = None) -> list[str]:
    """The exact command ``make demo`` runs (the browser test serves the app with it too).

    Parameters
    ----------
    port : int
        Loopback port.
    token : str | None
        Access token: letters, digits, '-' and '_'.

    Returns
    -------
    list[str]
        The argument list.

    Raises
    ------
    ValueError
        For a port outside 1-65535, or a missing or malformed token.
    """
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port={port!r} must be a TCP port number (1-65535).")
    if not token or not all(ch.isalnum() or ch in "-_" for ch in token):
        raise ValueError("The token must be a non-empty string of letters, digits, '-' and '_'.")
    return [voila_executable(), str(APP), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
            f"--Voila.config_file_paths={APPS}", f"--token={token}"]


def main(argv: list[str] | None = None) -> int:
    """``python -m xrec_helpers.app.server [--port N]``: print the URL with its token and serve.

    Parameters
    ----------
    argv : list[str] | None
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(description="Serve the xrec demo on 127.0.0.1 with a token.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    token = os.environ.get("XREC_DEMO_TOKEN") or secrets.token_urlsafe(16)
    command = demo_command(args.port, token)
    print(f"The demo will be at http://127.0.0.1:{args.port}/?token={token}\n"
          "(this machine only; the first start trains the models for about a minute, later starts are quick)",
          flush=True)
    return subprocess.call(command, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
