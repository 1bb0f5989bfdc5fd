"""Hardening of the notebook plumbing: records survive concurrency and failures; one validated size.

Two processes recording into one notebook's file used to lose keys (and sometimes leave invalid
JSON); ``XREC_SIZE=Workshop`` made 06_accent take its paper branch while ``get_size()`` said
"workshop". These tests reproduce both and check the fixed behaviour.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from xrec_helpers import notebook as nb_module
from xrec_helpers.notebook import SIZES, get_size, record

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))


_WRITER = """
import os, sys, time
from pathlib import Path
from xrec_helpers.notebook import record
go, tag = Path(sys.argv[1]), sys.argv[2]
while not go.exists():  # both children start recording at once, like two notebooks
    time.sleep(0.01)
for i in range(int(sys.argv[3])):
    record(f"{tag}-{i}", i, notebook="99_race")
"""


def test_two_processes_recording_at_once_lose_nothing(tmp_path):
    # two fresh interpreters, like two notebooks: nothing inherited from this test process (a forked child once
    # died with exit code 1 before reaching the test's code), and each child's stderr is shown when it fails
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XREC_RESULTS_DIR": str(tmp_path), "XREC_SIZE": "smoke"}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(go), tag, "100"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(err for _, err in outs)
    data = json.loads((tmp_path / "99_race.smoke.json").read_text())  # valid JSON ...
    assert {k for k in data if k != "_meta"} == {f"{t}-{i}" for t in "ab" for i in range(100)}  # ... all 200 keys
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_write_keeps_the_old_record_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XREC_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("XREC_SIZE", "smoke")
    path = record("kept", 1, notebook="99_fail")
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(nb_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        record("lost", 2, notebook="99_fail")
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["99_fail.smoke.json"]


def test_an_invalid_record_file_is_named_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.setenv("XREC_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("XREC_SIZE", "smoke")
    path = tmp_path / "99_bad.smoke.json"
    path.write_text('{"half": ')
    with pytest.raises(ValueError, match=r"99_bad\.smoke\.json is not valid JSON.*Delete it"):
        record("x", 1, notebook="99_bad")
    assert path.read_text() == '{"half": '


@pytest.mark.parametrize("raw, expected", [("Workshop", "workshop"), (" workshop ", "workshop"), ("SMOKE", "smoke"),
                                           ("paper\n", "paper"), ("", "workshop")])
def test_get_size_normalises_case_and_spaces(monkeypatch, raw, expected):
    monkeypatch.setenv("XREC_SIZE", raw)
    assert get_size() == expected


@pytest.mark.parametrize("raw", ["workshp", "full", "work shop"])
def test_a_size_typo_names_the_variable_and_the_allowed_values(monkeypatch, raw):
    monkeypatch.setenv("XREC_SIZE", raw)
    with pytest.raises(ValueError) as err:
        get_size()
    assert f"XREC_SIZE={raw!r}" in str(err.value) and all(size in str(err.value) for size in SIZES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_gets_its_size_from_get_size(path, monkeypatch):
    """The parameters cell sets SIZE only through get_size(), so the notebook and the records agree."""
    notebook = nbformat.read(path, as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert not re.search(r"environ(\.get)?[\[(]\s*['\"]XREC_SIZE", sources), "reads XREC_SIZE itself"
    (params,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assignments = [line.strip() for line in params.source.splitlines() if re.match(r"\s*SIZE\s*=", line)]
    assert len(assignments) == 1 and assignments[0].startswith("SIZE = get_size()")
    # Run the import and the assignment, as the notebook does, with a mistyped-case size.
    lines = [line for line in params.source.splitlines()
             if "import get_size" in line or re.match(r"\s*SIZE\s*=", line)]
    monkeypatch.setenv("XREC_SIZE", " Workshop ")
    namespace: dict = {}
    exec("\n".join(lines), namespace)  # noqa: S102 - the notebook's own two lines
    assert namespace["SIZE"] == "workshop"
