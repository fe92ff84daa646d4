# Optimization Dynamics: every command sets up .venv from scratch if needed.
#   make book    execute every chapter once and build the static site into _build/html
#   make test    set up and run the whole suite (unit tests, notebooks, site build, browser)
#   make lab     open JupyterLab on book/ with live widgets
#   make serve   serve _build/html on http://127.0.0.1:$(PORT)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 2
PORT ?= 8000
STAGE := _stage
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PYTHONHASHSEED := 0

.PHONY: setup book html execute stage test unit site-test chromium lab serve clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

setup: $(STAMP)

# Copy the sources to $(STAGE) and switch execution off there: the notebooks are executed exactly
# once, by nbmake (which writes the outputs back into the staged copy), then built as they are.
stage: setup
	@rm -rf $(STAGE) && mkdir -p $(STAGE)
	@cp _config.yml _toc.yml $(STAGE)/
	@cp -r book $(STAGE)/ && find $(STAGE) -name '.ipynb_checkpoints' -prune -exec rm -rf {} +
	@sed -i 's/^\(  execute_notebooks:\).*/\1 "off"/' $(STAGE)/_config.yml

# Execute every chapter in parallel with nbmake. LESSONS_STATIC=1 makes explorers precompute their
# frames and keeps progress bars quiet. One thread per process: two workers on two cores each using
# torch's default thread pool run small models 5-8x slower.
execute: stage
	LESSONS_STATIC=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbmake --overwrite -n $(JOBS) --nbmake-timeout=300 --durations=0 \
	    -p no:cacheprovider --rootdir=$(STAGE) $(STAGE)/book

html: execute
	$(BIN)/jupyter-book build $(STAGE) --path-output . -W -n --keep-going
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html (or run: make serve)"

book: html

serve:
	@test -f _build/html/index.html || { echo "No site yet: run 'make book' first"; exit 1; }
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lab: setup
	$(BIN)/jupyter lab --notebook-dir=book

# Debian's chromium for the browser test (Playwright's own browser download is not reachable).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

unit: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) -m "not site" tests

site-test: chromium
	$(BIN)/python -m pytest -m site tests

test: unit html site-test

clean:
	rm -rf _build _stage
