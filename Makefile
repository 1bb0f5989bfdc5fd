# xrec: two commands do all the set-up.  `make lab` opens the course, `make test` checks it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build of torch. On Linux without a GPU you may prefer the CPU index:
#   make lab TORCH_SPEC='torch --index-url https://download.pytorch.org/whl/cpu'
TORCH_SPEC ?= torch==2.13.0
WORKERS ?= 2
NB_TIMEOUT ?= 600
DEMO_PORT ?= 8866
SLIDES_SIZE ?= workshop
# Extra JupyterLab flags, e.g. LAB_ARGS='--no-browser --port 8899'. Root (containers) needs --allow-root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

# Tests run WORKERS processes side by side: one BLAS/OpenMP thread each avoids oversubscribing the cores
# (torch's small-batch training slows down ~10x when threads outnumber cores).
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

.PHONY: install install-ui lab demo slides test test-unit test-notebooks test-fast test-lowest test-ui bench book book-site data paper clean lint colab-check binder-check

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-ui: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,ui]'
	touch $@

install-ui: $(VENV)/.installed-ui

data: install  ## fetch ML-100K into the cache once (all later loads are offline)
	$(PY) -c "from xrec_helpers.data import load_movielens; print(load_movielens('ml-100k'))"

lab: install data
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

demo: install-ui data  ## the demo as a local web app: 127.0.0.1 only, token URL printed (set DEMO_PORT to move it)
	$(TEST_ENV) $(PY) -m xrec_helpers.app.server --port $(DEMO_PORT)

slides: install data  ## the 20-minute talk as reveal.js slides in _slides/ (offline; assets from npm once). SLIDES_ARGS='--deck 09_attention_reviews' for one notebook
	$(TEST_ENV) $(PY) tools/build_slides.py --size $(SLIDES_SIZE) --out _slides $(SLIDES_ARGS)

test: install data test-unit test-notebooks

test-unit: install
	$(TEST_ENV) $(PY) -m pytest -q -n $(WORKERS) --ignore=tests/ui tests

test-notebooks: install data
	$(TEST_ENV) XREC_SIZE=workshop $(PY) -m pytest -q -n $(WORKERS) --durations=0 --nbmake --nbmake-timeout=$(NB_TIMEOUT) notebooks/*.ipynb notebooks/solutions/*.ipynb apps/*.ipynb

test-fast: install data
	$(TEST_ENV) $(PY) -m pytest -q -n $(WORKERS) --ignore=tests/ui tests
	$(TEST_ENV) XREC_SIZE=smoke $(PY) -m pytest -q -n $(WORKERS) --durations=0 --nbmake --nbmake-timeout=$(NB_TIMEOUT) notebooks/*.ipynb notebooks/solutions/*.ipynb apps/*.ipynb

# The unit tests against the LOWEST versions pyproject.toml allows (uv's lowest-direct resolution: every
# direct dependency at its floor), in a separate .venv-lowest, so a floor that does not work fails CI.
LOWEST_VENV := .venv-lowest
test-lowest: data
	test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q --disable-pip-version-check 'uv>=0.4'
	$(LOWEST_VENV)/bin/python -m uv pip install -q --python $(LOWEST_VENV)/bin/python --resolution lowest-direct -e '.[dev]'
	$(LOWEST_VENV)/bin/python -m uv pip list --python $(LOWEST_VENV)/bin/python 2>/dev/null | grep -E -i '^(torch|numpy|pandas|scipy|scikit-learn|matplotlib|shap|mlxtend|implicit|filelock) '
	$(TEST_ENV) XREC_SLOW_TESTS=1 $(LOWEST_VENV)/bin/python -m pytest -q -n $(WORKERS) -p no:cacheprovider --ignore=tests/ui tests

test-ui: install-ui data  ## drives the Voila app in headless Debian chromium (apt-get install chromium)
	$(TEST_ENV) $(PY) -m pytest -q tests/ui

# The book: every notebook executed (at BOOK_SIZE) into $(BOOK_DIR)/src/, then MkDocs (Material theme, search,
# mkdocs-jupyter) renders $(BOOK_DIR)/site/. Make's own timestamps are the execution cache: a notebook is
# re-executed only when it, or the package, changed since its executed copy. A notebook that fails stops the
# build (nbconvert names the cell and the error) and leaves no executed copy, so no stale page is published;
# `make -k book` executes the others anyway.
BOOK_NOTEBOOKS ?= notebooks
BOOK_DIR ?= _book
BOOK_SIZE ?= workshop
BOOK_SOURCES := $(wildcard $(BOOK_NOTEBOOKS)/*.ipynb $(BOOK_NOTEBOOKS)/solutions/*.ipynb)
BOOK_EXECUTED := $(patsubst $(BOOK_NOTEBOOKS)/%,$(BOOK_DIR)/src/%,$(BOOK_SOURCES))
PKG_SOURCES := $(wildcard xrec_helpers/*.py xrec_helpers/*/*.py)

$(BOOK_DIR)/src/%.ipynb: $(BOOK_NOTEBOOKS)/%.ipynb $(PKG_SOURCES)
	@mkdir -p $(@D)
	$(TEST_ENV) XREC_SIZE=$(BOOK_SIZE) $(PY) -m jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=$(NB_TIMEOUT) --output-dir $(@D) $<

book-site: $(BOOK_EXECUTED)  ## render the executed notebooks (no install step: the tests call this)
	@test -n "$(BOOK_SOURCES)" || (echo "No notebooks in $(BOOK_NOTEBOOKS)/" && exit 2)
	cp book/index.md $(BOOK_DIR)/src/index.md
	printf 'INHERIT: %s/book/mkdocs.yml\ndocs_dir: src\nsite_dir: site\n' "$(CURDIR)" > $(BOOK_DIR)/mkdocs.yml
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --quiet --strict --config-file $(BOOK_DIR)/mkdocs.yml
	@echo "The book: $(BOOK_DIR)/site/index.html ($(words $(BOOK_EXECUTED)) notebooks at XREC_SIZE=$(BOOK_SIZE))"

book: install data  ## execute every notebook at workshop size into an HTML site in _book/site/ (git-ignored)
	$(MAKE) book-site

# Lint: ruff on the package, tests, tools, benchmarks and the notebooks (tools/lint_notebooks.py fixes them).
lint: install
	$(PY) -m ruff check xrec_helpers tests tools benchmarks
	$(PY) tools/lint_notebooks.py --check notebooks apps
	$(PY) tools/colab_cell.py --check
	$(PY) tools/course_line.py --check

# Colab-like: a fresh venv with Colab's preinstalled versions, the course installed next to them, smoke notebooks.
colab-check: install data
	PYTHON=$(PY) TORCH_SPEC='$(TORCH_SPEC)' bash tools/colab_like_check.sh

# Binder: the .binder/ files parse and their install steps run in a fresh venv (offline: torch from TORCH_SPEC).
binder-check: install data
	PYTHON=$(PY) TORCH_SPEC='$(TORCH_SPEC)' bash tools/binder_check.sh

bench: install data
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

paper: install data  ## one notebook at paper size, e.g. make paper NB=06_accent (records in results/paper/, executed copy in _paper/)
	@test -n "$(NB)" || (echo "Name the notebook: make paper NB=06_accent" && exit 2)
	mkdir -p _paper
	$(TEST_ENV) XREC_SIZE=paper $(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
		notebooks/$(NB).ipynb --output-dir _paper

clean:
	rm -rf figures/*.png results/*.json .pytest_cache
