# The two commands in README.md: `make tutorial` (the main job) and `make test` (every test).
# Both create or reuse the virtual environment in .venv by themselves.
PYTHON ?= python3.11
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

.PHONY: venv tutorial figures test unit notebooks lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## tutorial: run every notebook headless in full mode; trains the model, writes semantic IDs and figures/
tutorial: $(STAMP)
	RQVAE_FAST=0 $(PY) -m rqvae_lib.tutorial $(NOTEBOOKS)

## figures: the same run; every figure lands in figures/ as PNG
figures: tutorial

## test: unit tests, then every notebook under nbval (fast mode)
test: unit notebooks

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
