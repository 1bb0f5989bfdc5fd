"""The served configuration of the demo: ``make demo``'s own command (needs the ``ui`` extra, like the browser test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from xrec_helpers.app.server import APPS, demo_command

ROOT = Path(__file__).resolve().parents[2]


def test_demo_command_is_what_make_demo_runs():
    cmd = demo_command(8899, "tok-1")
    assert "--Voila.ip=127.0.0.1" in cmd and "--token=tok-1" in cmd and f"--Voila.config_file_paths={APPS}" in cmd
    assert (APPS / "voila.py").read_text().count("configure(c)") == 1
    for bad in ("", "a b", "x;rm"):
        with pytest.raises(ValueError, match="token"):
            demo_command(8899, bad)
    with pytest.raises(ValueError, match="port"):
        demo_command(0, "t")
    dry = subprocess.run(["make", "-n", "-W", "pyproject.toml", "demo"], cwd=ROOT, capture_output=True, text=True)
    assert "-m xrec_helpers.app.server" in dry.stdout, dry.stdout + dry.stderr
    assert Path(cmd[1]).name == "why_this_recommendation.ipynb"
