# Course tasks. The two a newcomer needs:
#   make book         set up .venv and build the HTML book into _build/html/index.html
#   make pdf          the book as one PDF, _build/pdf/gated-recurrence.pdf (needs Chromium)
#   make test         set up .venv and run everything: lint, unit tests, nbval, the strict book
#                     build and the browser tests, the assignments, and nbval again on another
#                     numerical path
# Day to day:   make test-fast (unit tests, under a minute) | execute [NB=notebooks/X.ipynb]
# Instructors:  make assignments | grade ASSIGNMENT=<name> SUBMISSIONS=<folder> (Linux, bubblewrap) | student-book
# Hindi:        make book-hi (into _build/hi/html) | student-book-hi | translations (update the .po
#               files in locales/hi after the English changed) | translation-coverage
# Others:       make env | test-main | test-book | test-book-hi | test-portable | test-oldest | sync | check | bench | clean | clean-env
# Another Python: make PYTHON=python3.12 test (3.10-3.13; .venv is rebuilt when it changes)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch: a CPU build by default (small, works everywhere). It is chosen when .venv is
# created; for an NVIDIA GPU, recreate it with the CUDA index that matches your driver:
#   make clean-env env TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.lstm_lab-env
BOOK_FLAGS ?= -W -n --keep-going

# The book's one-page build printed by the system's Chromium (tools/browser.py): sidebars
# left out, code wrapped rather than cut, solutions printed open, maths typeset.
PDF := _build/pdf/gated-recurrence.pdf

.PHONY: help env book pdf test test-main test-book test-portable-then-book test-fast test-portable test-oldest lint execute sync check bench clean \
	clean-env assignments grade student-book test-book-hi book-hi student-book-hi translations translation-coverage

help:
	@sed -n '/^#/!q;p' Makefile

env: $(STAMP)

# One virtual environment for everything: lstm_lab (editable), the book and the tests.
# PyTorch is installed first and alone from TORCH_INDEX, so pip never reaches for the CUDA
# build that a plain `torch` requirement gets on Linux; the second step adds its dependencies
# and everything else from PyPI.
# tools/check_python.py stops early, naming the fix, when $(PYTHON) is not a supported Python,
# and removes a .venv made by a broken or unsupported Python (or by another one than an explicit
# PYTHON=), so a failed first attempt is never reused.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.10-3.13 and run make PYTHON=<it>"; exit 1; }
	@$(PYTHON) tools/check_python.py --venv $(VENV) $(if $(filter command line environment,$(origin PYTHON)),--explicit)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps "torch==$(TORCH_VERSION)" --extra-index-url $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@
	@$(BIN)/python -c "import torch, lstm_lab; print('environment ready: lstm_lab', lstm_lab.__version__, '| torch', torch.__version__, '| device', lstm_lab.get_device())"

book: env
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo "book: $(CURDIR)/_build/html/index.html"

pdf: env
	$(BIN)/jupyter-book build . --builder singlehtml $(BOOK_FLAGS)
	$(BIN)/python -m tools.browser pdf _build/singlehtml $(PDF)

# Two lanes side by side, one per core (each is mostly one thread: the notebooks set torch to
# one thread): the main pass in one; the portable pass, then the book, in the other. -O prints
# each lane's output whole when it ends; make test fails if either fails. In two lanes on 2 cores
# it took 23 minutes on a clean clone (main lane with the Hindi book 21, portable then book 21).
test: env lint
	@$(MAKE) --no-print-directory -j2 -O test-main test-portable-then-book

# Unit tests, nbval over every notebook, the assignments graded in their sandbox (attacks too),
# and the Hindi book (marker book_hi: about 4 minutes, which this lane has room for and the
# other has not). One thread per library: the tests' matrices are small, and the other lane has
# the second core (two threads each on two cores made both lanes several minutes slower).
test-main: env
	env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -m "not book"

# The book: the strict build (-W -n), its pages, the student edition, and the browser tests.
test-book: env
	$(BIN)/python -m pytest tests -m book

# The Hindi book alone: its strict build, its pages and student edition, and the browser tests.
test-book-hi: env
	$(BIN)/python -m pytest tests -m book_hi

test-portable-then-book: env
	@status=0; $(MAKE) --no-print-directory test-portable || status=1; \
	$(MAKE) --no-print-directory test-book || status=1; exit $$status

# Unit tests only: no notebooks, no book build, no grading of assignments.
test-fast: env
	$(BIN)/python -m pytest tests -m "not book" --ignore=tests/test_assignments.py --ignore=tests/test_grading_attacks.py -q

# The stored outputs must not depend on the kernels of the machine that produced them: run
# every notebook again through other numerical code paths (ATen's unvectorised kernels, MKL's
# compatible code path, oneDNN limited to SSE4.1, one BLAS thread). Training runs then differ
# in their last bits, as they do between an AMD and an Intel CPU; every checked output must not.
PORTABLE_ENV := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41 \
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
test-portable: env
	env $(PORTABLE_ENV) $(BIN)/python -m pytest notebooks -p no:cacheprovider -q

lint: env
	$(BIN)/ruff check lstm_lab tests tools benchmarks

# The oldest versions pyproject.toml allows: a separate environment built with OLDEST_PYTHON and
# every ">=" bound installed exactly (pip constraints from `tools.course lower-bounds`), then
# the unit tests. Not part of `make test` (it downloads a second PyTorch); run it when a bound moves.
OLDEST_PYTHON ?= python3.10
OLDEST_VENV ?= .venv-oldest
test-oldest: env
	@mkdir -p _build
	$(BIN)/python -m tools.course lower-bounds > _build/lower-bounds.txt
	@cat _build/lower-bounds.txt | tr '\n' ' '; echo
	@command -v $(OLDEST_PYTHON) >/dev/null 2>&1 || { echo "$(OLDEST_PYTHON) not found: install Python 3.10, the oldest the course supports, or name one with OLDEST_PYTHON=<python>"; exit 1; }
	$(OLDEST_PYTHON) tools/check_python.py
	rm -rf $(OLDEST_VENV)
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-deps -c _build/lower-bounds.txt torch --extra-index-url $(TORCH_INDEX)
	$(OLDEST_VENV)/bin/python -m pip install --quiet -c _build/lower-bounds.txt -e ".[test]"
	$(OLDEST_VENV)/bin/python -m pytest tests -m "not book" -q

execute: env
	$(BIN)/python -m tools.course execute $(NB)

# Instructors. Student notebooks and autograders for every master in assignments/, into
# _build/assignments/<name>/{student,autograder}; grading a folder of submitted notebooks into
# <folder>/scores.csv, locally, without Docker; and the book without any exercise solution.
assignments: env
	$(BIN)/python -m tools.assignments generate

grade: env
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade ASSIGNMENT=a1_rnn_bptt SUBMISSIONS=path/to/folder"; exit 2; }
	$(BIN)/python -m tools.assignments grade $(ASSIGNMENT) $(SUBMISSIONS)

student-book: env
	$(BIN)/python -m tools.course student-book $(BOOK_FLAGS)

# The Hindi edition (tools/translation.py): the same sources, the prose from locales/hi/LC_MESSAGES.
# book-hi and student-book-hi link every page to its English twin in _build/html (build both).
book-hi: env
	$(BIN)/python -m tools.translation build $(BOOK_FLAGS)

student-book-hi: env
	$(BIN)/python -m tools.translation student $(BOOK_FLAGS)

translations: env
	$(BIN)/python -m tools.translation update
	$(BIN)/python -m tools.translation check
	-$(BIN)/python -m tools.translation coverage

translation-coverage: env
	$(BIN)/python -m tools.translation coverage

sync: env
	$(BIN)/python -m tools.course sync

check: env
	$(BIN)/python -m tools.course check

bench: env
	@for f in benchmarks/*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(BIN)/python "$$f"; done

clean:
	rm -rf _build .pytest_cache

clean-env:
	rm -rf $(VENV)
