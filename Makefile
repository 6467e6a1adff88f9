# mixclust: `make demo` and `make test` set everything up from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# torch first, pinned: this version is a CPU build available locally; an unpinned
# torch would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: help venv demo test test-all bench suite lint docs reports clean

help:
	@echo "make demo    create .venv, install, cluster scikit-learn's digits with every model (report in runs/demo)"
	@echo "make test    create/use .venv and run the fast test suite"
	@echo "make bench   GMM speed vs scikit-learn (NumPy, torch array API) and pomegranate; needs an idle machine"
	@echo "make suite   every clusterer with its defaults on many data sets (reports/suite; WHOLE=1 adds whole MNIST/Fashion)"
	@echo "make lint    ruff"
	@echo "make docs    the documentation site, built offline into site/ (warnings are errors)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev,audio,tables]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mixclust demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The bench extra (pomegranate, a peer) on top of the dev install; torch is already pinned by $(STAMP).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

# mixclust vs scikit-learn (NumPy and torch array API) and pomegranate; refuses to time on a loaded
# machine (exit 3). The NumPy peer runs at its best: OPENBLAS_CORETYPE/L2_SIZE unset for this command only.
bench: $(BENCH_STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/bench_gmm.py \
		--json reports/benchmarks/gmm.json --out reports/benchmarks/gmm.txt

# Resumes from reports/suite/.runs; SUITE_ARGS e.g. "--sets digits,iris --models vade,kmeans".
WHOLE ?=
SUITE_ARGS ?=
suite: $(STAMP)
	$(VENV)/bin/mixclust benchmark --report --readme README.md $(if $(WHOLE),--whole) $(SUITE_ARGS)

DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

# Sphinx: the docstrings are reStructuredText (:math:, :func:), which it renders as written.
docs: $(DOCS_STAMP)
	rm -rf site
	$(PY) -m sphinx -E -W --keep-going -q -b html docs site
	@echo "documentation: site/index.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache src/*.egg-info
