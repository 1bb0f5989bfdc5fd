"""Build reveal.js slide decks from the course notebooks, for presenting offline (``make slides``).

The decks are made by nbconvert's reveal.js exporter (a maintained tool) from the notebooks as they are:
this script only chooses the sections, marks where slides start, optionally executes the notebooks first
(so the slides show this machine's real tables and plots, code hidden), and points every script and style
at local copies. The reveal.js, RequireJS, jQuery and MathJax files come from the npm registry once
(``npm pack``, pinned versions, integrity checked by npm) into ``<out>/assets``; every later build, and
showing the slides, needs no network.

    python tools/build_slides.py                      # the 20-minute talk deck, executed at workshop size
    python tools/build_slides.py --no-execute         # same deck from the stripped notebooks (code shown)
    python tools/build_slides.py --deck 09_attention_reviews --size smoke   # one notebook's deck

Outputs (``_slides/`` by default, git-ignored): ``<deck>.slides.html``, ``assets/``, and ``timings.json``
with the measured execution time of every executed notebook, in total and per section (from the cell
timestamps nbclient records): the presenter's guide takes its timings from it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# npm package -> pinned version; the files the reveal template loads are checked after unpacking.
ASSETS = {"reveal.js": "4.6.1", "requirejs": "2.3.7", "jquery": "3.7.1", "mathjax": "2.7.9"}
NEEDED = ["reveal.js/dist/reveal.js", "reveal.js/dist/reveal.css", "reveal.js/dist/theme/white.css",
          "reveal.js/plugin/notes/notes.js", "requirejs/require.js", "jquery/dist/jquery.min.js",
          "mathjax/MathJax.js"]
# The 20-minute talk: (notebook, sections kept by their number; None = every numbered section).
TALK = [("00_introduction", None), ("05_lxr", [3, 4, 5, 8]), ("11_comparing_explainers", [4, 5, 6, 9])]
DROP = re.compile(r"^##\s+(Checks|Exercises|Setup)\b", re.IGNORECASE)


def fetch_assets(assets: Path) -> None:
    """Unpack the pinned npm packages into ``assets`` unless they are there already (then: no network)."""
    if all((assets / f).exists() for f in NEEDED):
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(f"The slide assets are not in {assets} and npm is not installed: install Node.js/npm once "
                 "(apt-get install npm), or copy an assets/ folder from a machine that built the slides.")
    assets.mkdir(parents=True, exist_ok=True)
    # one fetch at a time: two processes (parallel test workers, two `make slides`) would unpack over each other
    with FileLock(str(assets) + ".lock", timeout=600):
        if not all((assets / f).exists() for f in NEEDED):  # another process may have fetched them meanwhile
            _fetch(npm, assets)


def _fetch(npm: str, assets: Path) -> None:
    """``npm pack`` the pinned packages and unpack them into ``assets`` (under fetch_assets' lock)."""
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in ASSETS.items()]
        print(f"Fetching {', '.join(specs)} from the npm registry (once)…", flush=True)
        result = subprocess.run([npm, "pack", "--silent", *specs], cwd=tmp, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            sys.exit(f"npm pack failed ({result.returncode}): {result.stderr.strip()[-800:]}\n"
                     "Check the network or the npm registry setting (npm config get registry).")
        for name in ASSETS:
            (tarball,) = Path(tmp).glob(f"{name}-*.tgz")
            target = assets / name
            shutil.rmtree(target, ignore_errors=True)
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp + "/x-" + name, filter="data")
            shutil.move(tmp + "/x-" + name + "/package", target)
    missing = [f for f in NEEDED if not (assets / f).exists()]
    if missing:
        sys.exit(f"The unpacked assets lack {missing}: the pinned versions changed layout.")
    (assets / "VERSIONS.json").write_text(json.dumps(ASSETS, indent=1))


def _seconds(cell) -> float:
    """A cell's execution time from the timestamps nbclient records (0 when it did not run)."""
    from datetime import datetime

    stamps = cell.get("metadata", {}).get("execution", {})
    start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def section_times(nb) -> dict[str, float]:
    """Seconds of execution per section of an executed notebook ("setup" before the first numbered section)."""
    out: dict[str, float] = {}
    current = "setup"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    current = line[3:].strip()
        elif cell.cell_type == "code":
            out[current] = round(out.get(current, 0.0) + _seconds(cell), 1)
    return out


def execute(nb, name: str, size: str, timings: dict):
    """Run the notebook in ``notebooks/`` at ``size`` (as a learner would) and record how long it took."""
    from nbclient import NotebookClient

    env_size = os.environ.get("XREC_SIZE")
    os.environ["XREC_SIZE"] = size
    try:
        started = time.perf_counter()
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
        try:
            client.execute()
        except Exception as err:  # a failing cell or a dead kernel: name the notebook and the way out
            sys.exit(f"Executing {name} at {size} size failed ({type(err).__name__}: {str(err)[-600:]}).\n"
                     "Try `make slides SLIDES_SIZE=smoke`, close other programs (a dead kernel is usually memory), "
                     "or build the deck from the stripped notebooks with SLIDES_ARGS=--no-execute.")
        timings[name] = {"total_s": round(time.perf_counter() - started, 1), "sections_s": section_times(nb)}
    finally:
        if env_size is None:
            os.environ.pop("XREC_SIZE", None)
        else:
            os.environ["XREC_SIZE"] = env_size
    print(f"  executed {name} at {size} size in {timings[name]['total_s']} s", flush=True)
    return nb


def split_headings(cells: list) -> list:
    """A markdown cell holding several headings becomes one cell per heading (one slide each)."""
    out = []
    for cell in cells:
        if cell.cell_type != "markdown":
            out.append(cell)
            continue
        parts = re.split(r"(?m)^(?=#{1,2} )", cell.source)
        parts = [p for p in parts if p.strip()]
        for i, part in enumerate(parts):
            piece = copy.deepcopy(cell)
            piece.source = part.rstrip("\n")
            piece["id"] = f"{cell.get('id', 'md')}-{i}"
            out.append(piece)
    return out


def sections(nb, keep: list[int] | None) -> list:
    """The title cell, then the numbered sections in ``keep`` (all numbered ones when None); no setup cells."""
    cells, current, title_done = [], None, False
    for cell in split_headings(nb.cells):
        src = cell.source.lstrip()
        if cell.cell_type == "markdown" and src.startswith("# ") and not title_done:
            title_done = True
            cells.append(cell)
            current = "title"
            continue
        if cell.cell_type == "markdown" and src.startswith("## "):
            number = re.match(r"##\s+(\d+)\.", src)
            current = int(number.group(1)) if number else ("drop" if DROP.match(src) else "other")
        if current == "title" or current == "drop" or current is None:
            continue
        if isinstance(current, int) and (keep is None or current in keep):
            cells.append(cell)
        elif current == "other" and keep is None and not DROP.match(src):
            cells.append(cell)  # e.g. References in a full deck
    return cells


def mark_slides(cells: list, show_code: bool) -> list:
    """Headings start slides; a code cell's output is a sub-slide below its section; the rest joins."""
    out = []
    for cell in cells:
        cell = copy.deepcopy(cell)
        src = cell.source.lstrip()
        if cell.cell_type == "markdown" and (src.startswith("# ") or src.startswith("## ")):
            kind = "slide"
        elif cell.cell_type == "code":
            if not show_code and not cell.get("outputs"):
                continue
            kind = "subslide"
        else:
            kind = "-"
        cell.metadata["slideshow"] = {"slide_type": kind}
        out.append(cell)
    return out


def build_deck(name: str, parts: list[tuple[str, list[int] | None]], out: Path, execute_size: str | None,
               timings: dict) -> Path:
    """One deck from ``parts`` (notebook, sections) written to ``out/<name>.slides.html``."""
    from nbconvert import SlidesExporter

    deck = nbformat.v4.new_notebook()
    deck.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "title": name}
    for notebook, keep in parts:
        nb = nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4)
        if execute_size:
            nb = execute(nb, notebook, execute_size, timings)
        cells = mark_slides(sections(nb, keep), show_code=not execute_size)
        for i, cell in enumerate(cells):
            cell["id"] = f"{notebook[:2]}-{i:03d}"  # unique across the notebooks of one deck
        deck.cells += cells
    exporter = SlidesExporter(
        reveal_url_prefix="assets/reveal.js", reveal_theme="white", reveal_transition="none", reveal_scroll=True, reveal_number="c/t",
        require_js_url="assets/requirejs/require.js", jquery_url="assets/jquery/dist/jquery.min.js",
        mathjax_url="assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        # A module script cannot be loaded from file://; a data: URL can (the course has no diagrams).
        mermaid_js_url="data:text/javascript,export default {initialize() {}};", exclude_input=bool(execute_size), exclude_input_prompt=True,
        exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(deck)
    target = out / f"{name}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


class _Fetches(HTMLParser):
    """Collects what a browser would fetch on its own: scripts, style sheets, images, frames, module imports."""

    FETCHING = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
                ("video", "src"), ("audio", "src"), ("embed", "src")}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for attr, value in attrs:
            if (tag, attr) in self.FETCHING and value:
                self.urls.append(value)

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.urls += re.findall(r"""\bimport\b[^'"]*?from\s*["']([^"']+)["']""", data)
            self.urls += re.findall(r"""@import\s+url\(["']?([^"')]+)""", data)


CSS_URL = re.compile(r"""(?:@import\s+(?:url\()?|url\()\s*["']?([^"')\s;]+)""")


def remote_references(html: str, base: Path | None = None) -> list[str]:
    """Every script, style sheet, font, image or module the page would fetch from the network.

    Hyperlinks are not fetched and are allowed. With ``base`` (the page's folder), the local style sheets it
    loads are read too, since a style sheet can import fonts from the network.
    """
    parser = _Fetches()
    parser.feed(html)
    urls = list(parser.urls) + CSS_URL.findall(" ".join(re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)))
    if base is not None:
        for ref in parser.urls:
            local = base / ref.split("?")[0].split("#")[0]
            if ref.endswith(".css") and not re.match(r"^(https?:)?//", ref) and local.is_file():
                urls += CSS_URL.findall(local.read_text(encoding="utf-8", errors="replace"))
    return [u for u in urls if re.match(r"^(https?:)?//", u.strip(), re.IGNORECASE)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "_slides"))
    parser.add_argument("--size", default="workshop", choices=["smoke", "workshop", "paper"])
    parser.add_argument("--no-execute", action="store_true", help="build from the stripped notebooks (code shown)")
    parser.add_argument("--deck", action="append", default=[],
                        help="a notebook name for its own full deck (repeatable); default: the talk deck")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fetch_assets(out / "assets")
    timings: dict = {}
    decks = {name: [(name, None)] for name in args.deck} or {"talk": TALK}
    for name, parts in decks.items():
        missing = [nb for nb, _ in parts if not (NOTEBOOKS / f"{nb}.ipynb").exists()]
        if missing:
            sys.exit(f"No notebook {missing[0]}.ipynb in {NOTEBOOKS}: use a name like 09_attention_reviews.")
        path = build_deck(name, parts, out, None if args.no_execute else args.size, timings)
        remote = remote_references(path.read_text(encoding="utf-8"), base=out)
        if remote:
            sys.exit(f"{path} would fetch {remote[:3]} from the network: the offline build is broken.")
        print(f"wrote {path} (offline: every script and style is under {out / 'assets'})")
    if timings:
        record = out / "timings.json"
        old = json.loads(record.read_text()) if record.exists() else {}
        old.update({f"{k} ({args.size})": v for k, v in timings.items()})
        record.write_text(json.dumps(old, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
