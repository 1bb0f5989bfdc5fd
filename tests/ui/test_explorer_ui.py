"""Browser test of the demo exactly as ``make demo`` serves it, driven in headless Debian Chromium.

The server is started with :func:`xrec_helpers.app.server.demo_command` — the command ``make demo`` runs (a unit
test checks the Makefile calls it) — so the served configuration is the one under test: 127.0.0.1 only, Host
check, token, kernel culling and cap. Needs Debian's chromium (``apt-get install -y chromium``) and the
``voila`` and ``playwright`` packages (``pip install -e '.[ui]'``); Playwright only drives the system browser
(never ``playwright install``). Without chromium the test skips, unless ``CI`` is set: then it fails.

The app runs at ``XREC_UI_SIZE`` (default ``workshop``, what ``make demo`` serves). The cache is warmed first
(the first start trains), then the first page load is timed and reported (not asserted: shared machines are
noisy). Screenshots go to ``figures/`` (git-ignored). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = os.environ.get("XREC_UI_SIZE", "workshop")
TOKEN = "xrec-ui-test-token"
SERVER_START_S = 30
WARM_S = 300  # a cold cache trains the models once (about half a minute at workshop size)
APP_READY_MS = 90_000
ACTION_MS = 30_000
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _requirements() -> None:
    """Skip (locally) or fail (in CI) with a reason that says how to install what is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        from xrec_helpers.app.server import voila_executable

        voila_executable()
    except FileNotFoundError:
        missing.append("voila (pip install -e '.[ui]')")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[ui]')")
    if missing:
        reason = "browser test needs " + ", ".join(missing)
        if IN_CI:
            pytest.fail(reason + " — CI is set, so a missing browser is a failure, not a skip.")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return dict(os.environ, XREC_SIZE=SIZE, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _requirements()
    from xrec_helpers.app.server import demo_command

    tmp = tmp_path_factory.mktemp("voila")
    warm = subprocess.run([sys.executable, "-c", f"from xrec_helpers.app.demo import load_demo; load_demo({SIZE!r})"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=WARM_S)
    assert warm.returncode == 0, warm.stderr[-3000:]
    port = _free_port()
    log_path = tmp / "voila.log"
    log = log_path.open("w")
    proc = subprocess.Popen(demo_command(port, TOKEN), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"voila did not listen on 127.0.0.1:{port} within {SERVER_START_S} s")
                time.sleep(0.3)
        yield port, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _status(url: str, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_served_configuration_refuses_missing_token_and_foreign_host(server):
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    assert _status(f"{base}/") in (302, 403)  # no token: sent to the login page, no kernel started
    assert _status(f"{base}/?token={TOKEN}", host=f"rebind.example:{port}") == 403
    assert _status(f"{base}/api/kernels/00000000-0000-0000-0000-000000000000/channels?token={TOKEN}",
                   host=f"rebind.example:{port}") == 403  # the kernel WebSocket route checks Host too
    assert _status(f"{base}/voila/static/voila.js?token={TOKEN}", host=f"localhost:{port}") != 403


def _ranks(page) -> dict[str, tuple[int, int]]:
    out = {}
    for col in page.locator(".xrec-col").all():
        name = col.locator(".xrec-name").inner_text().strip()
        out[name] = (int(col.locator(".xrec-rank-before").inner_text()), int(col.locator(".xrec-rank-after").inner_text()))
    return out


def test_the_demo_in_the_browser(server):
    from playwright.sync_api import sync_playwright

    port, log = server
    figures = ROOT / "figures"
    figures.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(ACTION_MS)
            started = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}", timeout=APP_READY_MS)
            try:
                page.wait_for_selector(".xrec-col ol.xrec-blamed li", timeout=APP_READY_MS)
            except Exception:
                pytest.fail(f"the side-by-side view never appeared; voila log:\n{log.read_text()[-3000:]}")
            first_load_s = time.monotonic() - started
            print(f"\nfirst load (cache warm, size {SIZE}): {first_load_s:.1f} s")
            (figures / "demo_first_load.json").write_text(json.dumps({"size": SIZE, "first_load_s": round(first_load_s, 2)}))

            top = page.locator("ol.xrec-top10 li").all_inner_texts()
            assert len(top) == 10 and not any(t.strip().isdigit() for t in top)  # titles, never ids
            names = [n.strip() for n in page.locator(".xrec-col .xrec-name").all_inner_texts()]
            faithful = [n for n in names if "reads the model" in n]
            plausible = [n for n in names if "data only" in n]
            assert faithful and plausible, names
            choice = page.locator(".xrec-choice").inner_text()
            n_remove = int(re.search(r"removal count (\d+)", choice).group(1))
            assert all(len(page.locator(".xrec-col").nth(i).locator("ol.xrec-blamed li").all()) == n_remove
                       for i in range(len(names)))

            # One press checks every explanation; the page shows ranks before -> after.
            page.locator("button.xrec-remove").click()
            page.wait_for_selector(".xrec-rank-after", timeout=ACTION_MS)
            ranks = _ranks(page)
            before = {b for b, _ in ranks.values()}
            assert before == {1}, ranks  # the top pick is explained
            assert ranks[faithful[0]][1] > 1, ranks  # the faithful explanation moves it ...
            assert ranks[faithful[0]][1] > max(ranks[p][1] for p in plausible), ranks  # ... more than the plausible ones
            assert all(len(page.locator(".xrec-col").nth(i).locator("ol.xrec-after10 li").all()) == 10
                       for i in range(len(names)))
            page.screenshot(path=str(figures / "demo_which_explanation.png"), full_page=True)

            # Change user: the list and the blame follow, the old results are cleared, remove works again.
            old_top = top
            page.locator(".xrec-user select").select_option(index=5)
            page.wait_for_function("(old) => document.querySelector('ol.xrec-top10').innerText !== old",
                                   arg="\n".join(old_top), timeout=ACTION_MS)
            # The widgets update one message at a time: wait until the old results are gone.
            page.wait_for_function("() => document.querySelectorAll('.xrec-rank-after').length === 0",
                                   timeout=ACTION_MS)
            page.wait_for_selector(".xrec-col .xrec-pending", timeout=ACTION_MS)
            page.locator("button.xrec-remove").click()
            page.wait_for_selector(".xrec-rank-after", timeout=ACTION_MS)
            assert len(_ranks(page)) == len(names)
            assert page.locator(".xrec-error").count() == 0

            # The review tab: three picks, the planted truth on demand, then hide them.
            page.locator(".lm-TabBar-tabLabel", has_text="Top reviews for you").click()
            page.wait_for_selector(".xrec-review-col li.xrec-review", state="visible", timeout=ACTION_MS)
            cols = page.locator(".xrec-review-col")
            assert cols.count() == 3
            assert all(cols.nth(i).locator("li.xrec-review").count() == 3 for i in range(3))
            assert page.locator(".xrec-top-aspect").count() == 0
            page.locator(".xrec-truth button, button.xrec-truth").first.click()
            page.wait_for_selector(".xrec-top-aspect", timeout=ACTION_MS)
            marks = page.locator(".xrec-review-col .xrec-relevant, .xrec-review-col .xrec-irrelevant").count()
            assert marks == 9
            page.locator("button.xrec-hide").click()
            page.wait_for_selector(".xrec-pred-after", timeout=ACTION_MS)
            after = [float(t) for t in page.locator(".xrec-pred-after").all_inner_texts()]
            assert len(after) == 3 and all(0.0 < a < 7.0 for a in after)
            page.screenshot(path=str(figures / "demo_top_reviews.png"), full_page=True)
        finally:
            browser.close()


def test_the_page_cannot_run_code_in_its_kernel(server):
    """Voilà forwards only widget and info messages to the kernel: an execute_request sent over the page's own
    kernel WebSocket (with the token) is dropped, while a kernel_info_request on the same socket is answered."""
    import asyncio
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    port, log = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={TOKEN}", timeout=APP_READY_MS / 1000) as response:
        page = response.read().decode()
    kernel = re.search(r'"kernelId":\s*"([^"]+)"', page).group(1)
    marker = ROOT / "figures" / f"code-ran-{uuid.uuid4().hex}"

    def message(kind: str, content: dict) -> str:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": kind, "username": "test", "session": uuid.uuid4().hex,
                  "date": "", "version": "5.3"}
        return json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"})

    async def talk() -> list[str]:
        ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?token={TOKEN}"))
        await ws.write_message(message("execute_request", {
            "code": f"open({str(marker)!r}, 'w').write('ran')", "silent": False, "store_history": False,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}))
        await ws.write_message(message("kernel_info_request", {}))
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while "kernel_info_reply" not in seen and time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.read_message(), 5)
            except asyncio.TimeoutError:
                break
            if isinstance(raw, str):
                seen.append(json.loads(raw)["header"]["msg_type"])
        await asyncio.sleep(2)  # time for an execution, had it been accepted, to write the marker
        ws.close()
        return seen

    seen = asyncio.run(talk())
    assert "kernel_info_reply" in seen, seen  # the socket works ...
    assert "execute_reply" not in seen and not marker.exists(), seen  # ... and code sent over it does not run
    assert 'Received message of type "execute_request", which is not allowed' in log.read_text()
