"""The talk deck runs in headless Chromium with every network request refused (offline, as on the day)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_slides import build  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def test_talk_deck_runs_offline(tmp_path):
    if not Path(CHROMIUM).exists():
        (pytest.fail if IN_CI else pytest.skip)(f"{CHROMIUM} is needed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    out = build(tmp_path, "--no-execute")
    requested, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("requestfailed", lambda r: errors.append(r.url))
            page.route("http*://**", lambda route: route.abort())  # nothing may come from the network
            page.goto((out / "talk.slides.html").as_uri())
            # reveal.js marks its root "ready" once initialised (it is loaded through RequireJS, so no global).
            page.wait_for_selector(".reveal.ready", timeout=30_000)
            assert page.locator(".slides > section").count() >= 10
            first = page.locator("section.present h1").first.inner_text()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("(t) => !document.querySelector('section.present h1') || "
                                   "document.querySelector('section.present h1').innerText !== t", arg=first,
                                   timeout=10_000)
            page.screenshot(path=str(ROOT / "figures" / "slides_talk.png"))
        finally:
            browser.close()
    assert not [u for u in requested if u.startswith("http")], requested
    assert not errors, errors  # every local file it asked for was there
