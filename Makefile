# Optimization Dynamics: every command sets up .venv from scratch if needed.
#   make book    execute every chapter once and build the static site into _build/html
#   make test    set up and run the whole suite (lint, unit and slow tests, notebooks under the device audit,
#                site build, course and browser tests); each chapter is executed once, plus once as a student notebook
#   make execute CHAPTERS="stability drift"   execute only those chapters (into _stage), e.g. with DEVICE_AUDIT=1
#   make lab     open JupyterLab on book/ with live widgets
#   make serve   serve _build/html on http://127.0.0.1:$(PORT)
#   make student     student notebooks (solutions stubbed), lessons_lib and a README in _build/student, and the
#                    nbgrader course (one assignment per chapter, code exercises autograded) in _build/nbgrader
#   make instructor  the executed notebooks with solutions, lessons_lib and a README in _build/instructor
#   make book HIDE_SOLUTIONS=1   the site with every solution removed (for a course during term)
#   make book REPOSITORY_URL=https://github.com/<owner>/<repo>   the site with Binder and Colab launch buttons
#   make pdf     print the built site to _build/pdf: book.pdf and one handout per chapter (headless Chromium)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COURSE_STAMP := $(VENV)/.course-installed
HIDE_SOLUTIONS ?=
HIDE := $(filter 1 yes true,$(HIDE_SOLUTIONS))
# launch buttons (tools/publish.py): off unless REPOSITORY_URL is set; JUPYTERHUB_URL adds a JupyterHub button
REPOSITORY_URL ?=
REPOSITORY_BRANCH ?= main
JUPYTERHUB_URL ?=
JOBS ?= 2
PORT ?= 8000
STAGE := _stage
# chapters (notebook stems) for `make execute`; empty means every chapter in book/
CHAPTERS ?=
# DEVICE_AUDIT=1 (make test's default) runs the device audit inside the notebook execution: each kernel starts
# with tests/audit_kernel's IPython startup file, which switches tests/device_audit.py on, and computes on
# LESSONS_DEVICE=cpu:0 (the CPU, labelled as if it were a GPU). The numbers, figures and site are unchanged.
AUDIT_ENV = $(if $(filter 1 yes true,$(DEVICE_AUDIT)),LESSONS_DEVICE_AUDIT=1 LESSONS_DEVICE=cpu:0 IPYTHONDIR=$(CURDIR)/tests/audit_kernel)
test: DEVICE_AUDIT ?= 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PYTHONHASHSEED := 0

.PHONY: setup book html execute stage test lint unit slow site-test chromium poppler pdf lab serve clean course-setup \
	student instructor course-test bench

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

setup: $(STAMP)

# nbgrader for the course kit (requirements-course.txt, on top of the pins): its ClearSolutions preprocessor
# stubs the student notebooks, and its CLI and gradebook grade the nbgrader course that make student writes
# (tests/test_nbgrader.py). Its Jupyter server and lab extensions are switched off again, so make lab looks as
# before; an instructor who wants the formgrader enables it (book/how-to-use.md).
$(COURSE_STAMP): requirements-course.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-course.txt
	$(BIN)/jupyter server extension disable --sys-prefix nbgrader.server_extensions.formgrader \
	    nbgrader.server_extensions.assignment_list nbgrader.server_extensions.course_list \
	    nbgrader.server_extensions.validate_assignment >/dev/null 2>&1
	$(BIN)/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null 2>&1
	@touch $@

course-setup: $(COURSE_STAMP)

# Copy the sources to $(STAGE) and switch execution off there: the notebooks are executed exactly
# once, by nbmake (which writes the outputs back into the staged copy), then built as they are.
stage: setup
	@rm -rf $(STAGE) && mkdir -p $(STAGE)
	@cp _config.yml _toc.yml $(STAGE)/
	@cp -r book $(STAGE)/ && find $(STAGE) -name '.ipynb_checkpoints' -prune -exec rm -rf {} +
	@sed -i 's/^\(  execute_notebooks:\).*/\1 "off"/' $(STAGE)/_config.yml
	@$(BIN)/python tools/course.py teaching $(STAGE)   # the "Teaching with this book" page, from the notebooks
	@$(BIN)/python tools/course.py intro $(STAGE)      # the intro's list of chapters, from _toc.yml
	@$(BIN)/python tools/planning.py $(STAGE)          # planning and projects pages, from the chapters

# Execute every chapter (or CHAPTERS) in parallel with nbmake. LESSONS_STATIC=1 makes explorers precompute their
# frames and keeps progress bars quiet. One thread per process: two workers on two cores each using
# torch's default thread pool run small models 5-8x slower. In make test the device audit runs here too.
execute: stage
	@echo "Executing the chapters; device audit: $(if $(AUDIT_ENV),on,off)"
	$(AUDIT_ENV) LESSONS_STATIC=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbmake --overwrite -n $(JOBS) \
	    --nbmake-timeout=300 --durations=0 -p no:cacheprovider --rootdir=$(STAGE) --junitxml=$(STAGE)/execute.xml \
	    $(if $(strip $(CHAPTERS)),$(patsubst %,$(STAGE)/book/%.ipynb,$(CHAPTERS)),$(STAGE)/book)

# HIDE_SOLUTIONS=1: stub the code solutions and drop the solution directives in the executed copy, and
# switch on sphinx-exercise's hide_solutions, before building. REPOSITORY_URL switches the launch buttons on.
html: execute $(if $(HIDE),$(COURSE_STAMP))
	$(if $(HIDE),$(BIN)/python tools/course.py hide $(STAGE))
	REPOSITORY_URL="$(REPOSITORY_URL)" REPOSITORY_BRANCH="$(REPOSITORY_BRANCH)" JUPYTERHUB_URL="$(JUPYTERHUB_URL)" \
	    $(BIN)/python tools/publish.py launch $(STAGE)
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

# Debian's poppler-utils: pdfunite joins the PDF pages, pdftotext reads them back in the PDF test.
poppler:
	@command -v pdftotext >/dev/null && command -v pdfunite >/dev/null || { \
	  echo "Installing Debian's poppler-utils for the PDF"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq poppler-utils >/dev/null; }

# Print the built site (built first if there is none) with headless Chromium: _build/pdf/book.pdf and _build/pdf/chapters/*.pdf
pdf: chromium poppler $(STAMP)
	@test -f _build/html/index.html || $(MAKE) html
	$(BIN)/python tools/pdf.py _build/html _build/pdf

# The course kit: student notebooks from book/, instructor notebooks from the executed copy.
student: $(COURSE_STAMP)
	$(BIN)/python tools/course.py student _build/student _build/nbgrader

instructor: execute
	$(BIN)/python tools/course.py instructor $(STAGE)/book _build/instructor

# ruff, with the rules in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check lessons_lib tests tools benchmarks

# tests of a few seconds each; `slow` ones (over 5 s) run in `make slow`
unit: $(COURSE_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) -m "not site and not course and not slow" tests

# the slow tests, except those that execute a whole chapter (`notebook`): make execute already runs each chapter
# once, under the device audit; `pytest tests/test_device_audit.py -k <chapter>` audits one chapter on its own
slow: $(COURSE_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) -m "slow and not notebook and not site and not course" tests

# runs every student notebook (errors only in exercise cells) and reads _build/instructor
course-test: $(COURSE_STAMP) instructor
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) -m course tests

# two workers, a test file each (--dist loadfile): a file's module fixtures (the PDF print, the launch-button and
# hidden-solution site builds, the JupyterLab server) are built once, and two of them at a time
site-test: chromium poppler $(COURSE_STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile -m site tests

test: lint unit slow html course-test site-test

# Benchmarks, not a test: chapter times, explorer latency, page weight, build time, peers and scaling,
# written to benchmarks/results.md (minutes). Options go in BENCH_ARGS, e.g.
#   make bench BENCH_ARGS="--chapters learning-rate-and-curvature --tiny"   or   BENCH_ARGS=--skip-build
BENCH_ARGS ?=
bench: setup
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf _build _stage
