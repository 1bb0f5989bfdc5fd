#!/usr/bin/env bash
# The Colab-like job: does the course install next to Colab's preinstalled packages without replacing them,
# and do the notebooks run there?
#
# 1. A fresh venv is pre-seeded with Colab's versions of the big packages (COLAB_SEED below).
# 2. The course is installed from the checkout as Colab's first cell installs it (no extras), with the seed as a
#    pip constraint: an incompatible floor makes pip fail loudly instead of upgrading silently.
# 3. `pip freeze` must still show exactly the seeded versions.
# 4. A few notebooks run at smoke size in that venv (default: COLAB_NOTEBOOKS below, chosen to touch torch, shap,
#    implicit, the own-data loader and the ipywidgets panel; a subset keeps CI short; pass paths to override).
#
# Deviations from Colab, stated: Colab runs Python 3.13 with torch 2.11; this job uses the machine's Python and
# torch==2.13.0 (the CPU build the course installs; a different torch from PyPI would be a multi-GB CUDA
# download). Offline, the guarded first cell's own `pip install` (from the repository) is not exercised: off
# Colab the cell does nothing, and this job installs the same package from the checkout instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${COLAB_VENV:-_colab_venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
COLAB_SEED=${COLAB_SEED:-"numpy==2.1.3 pandas==2.2.3 ipywidgets==7.7.1"}
COLAB_NOTEBOOKS=${COLAB_NOTEBOOKS:-"notebooks/00_introduction.ipynb notebooks/03_fm_lime.ipynb notebooks/08_als_item_style.ipynb notebooks/13_your_own_data.ipynb apps/why_this_recommendation.ipynb"}
notebooks=("$@")
[ ${#notebooks[@]} -gt 0 ] || read -r -a notebooks <<<"$COLAB_NOTEBOOKS"

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
echo "== seeding $VENV with $TORCH_SPEC $COLAB_SEED"
# shellcheck disable=SC2086
"${PIP[@]}" install $TORCH_SPEC $COLAB_SEED
"${PIP[@]}" freeze | grep -iE '^(torch|numpy|pandas|ipywidgets)==' | sort >"$VENV/seeded.txt"
echo "== installing the course (no extras) with the seed as a constraint"
"${PIP[@]}" install --constraint "$VENV/seeded.txt" .
# Colab has its own Jupyter kernel; nbmake and pytest are what this job needs to run the notebooks.
"${PIP[@]}" install --constraint "$VENV/seeded.txt" 'nbmake>=1.5' 'pytest>=7.4'
"${PIP[@]}" freeze | grep -iE '^(torch|numpy|pandas|ipywidgets)==' | sort >"$VENV/after.txt"
if ! diff -u "$VENV/seeded.txt" "$VENV/after.txt"; then
  echo "FAIL: installing the course replaced Colab's preinstalled packages (diff above)" >&2
  exit 1
fi
echo "== seeded versions unchanged: $(tr '\n' ' ' <"$VENV/after.txt")"
# A first notebook asserts that the kernel nbmake starts is this venv's, with the seeded versions (so the smoke
# notebooks below really run against Colab's versions, not whatever else is installed on the machine).
"$VENV/bin/python" - "$VENV" <<'PY'
import sys
from pathlib import Path

import nbformat

venv = Path(sys.argv[1]).resolve()
seeded = dict(line.strip().split("==") for line in (venv / "seeded.txt").read_text().splitlines())
code = ["import sys, importlib.metadata as md", f"assert sys.prefix == {str(venv)!r}, sys.prefix"]
code += [f"assert md.version({name!r}) == {version!r}, md.version({name!r})" for name, version in seeded.items()]
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell("\n".join(code))]
nbformat.write(nb, venv / "kernel_versions_check.ipynb")
PY
notebooks=("$VENV/kernel_versions_check.ipynb" "${notebooks[@]}")
echo "== running ${notebooks[*]} at smoke size"
# From the repository root, so the installed package (not the checkout's folder) is what the notebooks import:
# nbmake runs each notebook in its own folder, where there is no xrec_helpers/ to shadow it.
env -u PYTHONPATH OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 XREC_SIZE=smoke \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=600 "${notebooks[@]}"
