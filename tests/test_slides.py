"""`make slides` builds the talk deck with nbconvert's reveal.js exporter, and the deck fetches nothing online.

The reveal.js/RequireJS/jQuery/MathJax files come from the npm registry once into ``_slides/assets``; when they
are absent and npm cannot fetch them the test skips (fails when ``CI`` is set). The browser half of the check
(the deck runs with the network blocked) is in tests/ui/test_slides_ui.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_slides  # noqa: E402

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_assets() -> Path:
    """``_slides/assets`` of the checkout, fetched once (skip when that is impossible here)."""
    assets = ROOT / "_slides" / "assets"
    if not all((assets / f).exists() for f in build_slides.NEEDED):
        if shutil.which("npm") is None:
            (pytest.fail if IN_CI else pytest.skip)("npm is needed once to fetch the slide assets (apt-get install npm)")
        try:
            build_slides.fetch_assets(assets)
        except SystemExit as err:
            (pytest.fail if IN_CI else pytest.skip)(f"could not fetch the slide assets: {err}")
    return assets


def build(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "slides"
    out.mkdir()
    (out / "assets").symlink_to(shared_assets(), target_is_directory=True)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_slides.py"), "--out", str(out), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


def test_talk_deck_builds_with_only_local_references(tmp_path):
    out = build(tmp_path, "--no-execute")
    html = (out / "talk.slides.html").read_text(encoding="utf-8")
    assert build_slides.remote_references(html, base=out) == []
    local = re.findall(r"""(?:src|href)=["'](assets/[^"'?#]+)""", html)
    assert {"assets/reveal.js/dist/reveal.css", "assets/requirejs/require.js"} <= set(local)
    assert all((out / ref).exists() for ref in local), [ref for ref in local if not (out / ref).exists()]
    assert '"assets/reveal.js/dist/reveal.js"' in html
    # One slide per kept section heading: the three notebooks' titles and their chosen sections.
    assert html.count('<section') >= 1 + 5 + 4 + 4
    assert "Plausible is not faithful" in html and "The benchmark: one table" in html
    assert "## Exercises" not in html and "Exercises</h2>" not in html


def test_remote_references_catches_what_a_page_would_fetch():
    page = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/y.css">'
            '<a href="https://doi.org/10.1/x">a reference</a><script type="module">import m from "https://e/m.mjs";</script>')
    assert build_slides.remote_references(page) == ["https://cdn.example/x.js", "//cdn.example/y.css", "https://e/m.mjs"]
    assert build_slides.remote_references("<style>@import url(https://fonts.example/css?family=Lato);</style>") == [
        "https://fonts.example/css?family=Lato"]


def test_unknown_deck_is_a_clear_error(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "assets").symlink_to(shared_assets(), target_is_directory=True)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_slides.py"), "--out", str(out),
                             "--no-execute", "--deck", "99_nothing"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "No notebook 99_nothing.ipynb" in result.stderr


def test_concurrent_fetches_unpack_once(tmp_path, monkeypatch):
    """Two processes (parallel test workers) fetching at once: one unpacks, the other waits and finds the files."""
    import threading
    import time

    calls = []

    def fake_fetch(npm, assets):  # a slow unpack that writes every needed file
        calls.append(npm)
        time.sleep(0.3)
        for f in build_slides.NEEDED:
            (assets / f).parent.mkdir(parents=True, exist_ok=True)
            (assets / f).write_text("x")

    monkeypatch.setattr(build_slides, "_fetch", fake_fetch)
    monkeypatch.setattr(build_slides.shutil, "which", lambda _: "npm")
    threads = [threading.Thread(target=build_slides.fetch_assets, args=(tmp_path / "assets",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all((tmp_path / "assets" / f).exists() for f in build_slides.NEEDED)
