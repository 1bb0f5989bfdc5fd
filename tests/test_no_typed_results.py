"""No measured result is typed by hand into a notebook's Markdown: results are printed or rendered from the run.

A decimal with two or more digits after the point ("AUC 0.61", "RMSE 0.253") in a Markdown cell is a result
someone copied from an earlier run, and it goes stale the next time the notebook runs with other data or code.
Lines that quote papers (their Table 1, "reported", references, the instructor notes on where a notebook came
from) are exempt, and so are the few constants listed below, each with its reason. Anything else fails here:
print the number from the run, or render the sentence with ``display(Markdown(f"..."))``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
DECIMAL = re.compile(r"(?<![\w.=^/-])\d+\.\d{2,}(?![\w])")
QUOTES = re.compile(r"(?i)paper|reported|reference|instructor|table 1|et al\.|\(20\d\d\)")
#: Constants, not results: each is fixed by the method or a setting, so it cannot go stale.
CONSTANTS = {
    "02_association_rules.ipynb": {"0.05", "0.005"},  # mining supports, set in the parameters cell
    "05_lxr.ipynb": {"0.14"},  # a λ_neg value the exercise asks to try
    "09_attention_reviews.ipynb": {"1.96", "0.625"},  # the normal quantile; 0.5 + 0.5 × 1/4 from the generator
    "13_your_own_data.ipynb": {"0.29", "0.0005", "0.000"},  # 1/log2(11); label-formatting thresholds
    "03_fm_lime_solutions.ipynb": {"0.999"},  # a bound derived in the text
}


def typed_numbers(path: Path) -> list[str]:
    """Decimals in Markdown cells outside paper quotes and the listed constants: ``"line: number"`` each."""
    found, section = [], ""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("#"):
                section = line
            if QUOTES.search(line) or QUOTES.search(section):
                continue
            found += [f"{line.strip()[:90]!r}: {n}" for n in DECIMAL.findall(line)
                      if n not in CONSTANTS.get(path.name, set())]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_hand_typed_results_in_markdown(path):
    assert not typed_numbers(path), f"{path.name}: numbers typed into Markdown (print or render them):\n" + "\n".join(
        typed_numbers(path))


def test_the_check_finds_a_typed_result(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["LOO reaches AUC 0.61 here.\n"]},
                    {"cell_type": "markdown", "metadata": {}, "source": ["The paper reports 0.77.\n"]}]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    assert typed_numbers(path) == ["'LOO reaches AUC 0.61 here.': 0.61"]
