# The two commands in README.md: `make tutorial` (the main job) and `make test` (every test).
# Both create or reuse the virtual environment in .venv by themselves.
# Any Python >= 3.11 on the PATH (newest first), unless PYTHON=... is given.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3 python; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

# Read the shared copy of the data when this checkout sits next to one (CI, course machines);
# otherwise rqvae_lib downloads the files on first use.
ifneq ($(wildcard ../shared/data/amazon-beauty),)
export RQVAE_SHARED_DATA ?= $(abspath ../shared/data)
endif
export HF_HUB_OFFLINE ?= 1
export RQVAE_DATA_ROOT ?= $(abspath data)
export PYTHONHASHSEED ?= 0
# pip says only what went wrong: no version nag, no warning when a course machine runs as root.
export PIP_DISABLE_PIP_VERSION_CHECK ?= 1
export PIP_ROOT_USER_ACTION ?= ignore

.PHONY: venv tutorial figures test test-fast unit notebooks lint clean site student

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  if [ -z "$(PYTHON)" ]; then \
	    echo "No Python >= 3.11 found on the PATH (tried python3.13, 3.12, 3.11, python3, python)."; \
	    echo "Install one, or run: make PYTHON=/path/to/python3.11 $(MAKECMDGOALS)"; exit 1; fi; \
	  echo "Creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version 2>&1))"; \
	  $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## tutorial: run every notebook headless in full mode; trains the model, writes semantic IDs and figures/
tutorial: $(STAMP)
	RQVAE_FAST=0 $(PY) -m rqvae_lib.course.tutorial $(NOTEBOOKS)

## figures: the same run; every figure lands in figures/ as PNG
figures: tutorial

## test: unit tests, then every notebook under nbval (fast mode)
test: unit notebooks

## test-fast: the unit tests not marked slow (no training runs of more than a few seconds)
test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow"

unit: $(STAMP)
	@start=$$(date +%s); \
	$(PY) -m pytest tests -q; status=$$?; \
	echo "unit tests took $$(( $$(date +%s) - start )) s"; exit $$status

# Figures and models of the test run go to a scratch folder, not over the committed full-mode ones.
notebooks: $(STAMP)
	@start=$$(date +%s); scratch=$$(mktemp -d); \
	RQVAE_FIGURES=$$scratch/figures RQVAE_ARTIFACTS=$$scratch/artifacts \
	RQVAE_FAST=$${RQVAE_FAST:-1} $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(NOTEBOOKS); status=$$?; rm -rf $$scratch; \
	echo "notebooks took $$(( $$(date +%s) - start )) s"; exit $$status

lint: $(STAMP)
	$(PY) -m ruff check rqvae_lib tests benchmarks notebooks
	$(PY) -m ruff format --check rqvae_lib tests benchmarks

clean:
	rm -rf $(VENV) artifacts lightning_logs .pytest_cache

## student: the student edition in student/notebooks/: the notebooks without their solution cells
## (and without exercise outputs other than "not done yet"), ready to hand out; nothing is run
student: $(STAMP)
	$(PY) -m rqvae_lib.course.student --out student

## site: the course site from the committed notebooks (saved outputs, nothing re-run), built
## offline into _build/site/html; sources in site/ (see site/CONVENTIONS.md)
site: $(STAMP)
	@start=$$(date +%s); \
	$(PY) -m sphinx -b html -E -q -W --keep-going -d _build/site/doctrees site _build/site/html; \
	status=$$?; echo "site took $$(( $$(date +%s) - start )) s: open _build/site/html/index.html"; \
	exit $$status
