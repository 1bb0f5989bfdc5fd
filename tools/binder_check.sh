#!/usr/bin/env bash
# The Binder check, as far as it can run offline: the .binder/ files parse and say what repo2docker needs, and
# postBuild's install steps run in a fresh venv (torch from TORCH_SPEC, default the registry's CPU build, since
# download.pytorch.org cannot be reached here), after which the course imports and loads ML-100K.
# Not checked offline: repo2docker itself and the conda-forge solve of .binder/environment.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${BINDER_VENV:-_binder_venv}
"$PYTHON" - <<'PY'
import os, re, sys
import yaml
env = yaml.safe_load(open(".binder/environment.yml"))
deps = env["dependencies"]
assert any(re.fullmatch(r"python=3\.\d+", str(d)) for d in deps), "pin a Python version in .binder/environment.yml"
pip_lines = [x for d in deps if isinstance(d, dict) for x in d.get("pip", [])]
assert not any("-e" in x.split() or x.strip().startswith(".") for x in pip_lines), \
    "environment.yml is built before the source is copied: install the course in postBuild, not there"
assert os.access(".binder/postBuild", os.X_OK), ".binder/postBuild must be executable"
print("binder files: ok")
PY
bash -n .binder/postBuild
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
# postBuild calls `python`: the fresh venv's, first on PATH.
PATH="$PWD/$VENV/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_QUIET=1 TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}" \
  bash .binder/postBuild
"$VENV/bin/python" - <<'PY'
import torch, xrec_helpers
assert "cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__
print(f"binder install: ok (torch {torch.__version__}, xrec_helpers from {xrec_helpers.__file__})")
PY
