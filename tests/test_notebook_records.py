"""record(): per-size JSON files, paper-size records in the committed results/paper/ folder."""

import json

from xrec_helpers.notebook import record


def test_record_paths_by_size(tmp_path, monkeypatch):
    monkeypatch.setenv("XREC_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("XREC_SIZE", "smoke")
    p = record("x", 1.5, notebook="99_demo")
    assert p == tmp_path / "99_demo.smoke.json"
    monkeypatch.setenv("XREC_SIZE", "paper")
    p = record("x", {"a": 2}, notebook="99_demo")
    record("y", [1, 2], notebook="99_demo")
    assert p == tmp_path / "paper" / "99_demo.json"
    data = json.loads(p.read_text())
    assert data["x"] == {"a": 2} and data["y"] == [1, 2]
    assert data["_meta"]["size"] == "paper" and data["_meta"]["cores"] >= 1 and data["_meta"]["cpu"]
    # Atomicity under failure and concurrency is tested in test_hardening_records.py.
