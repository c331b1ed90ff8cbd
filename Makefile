# Course tasks. The two a newcomer needs:
#   make book   set up .venv and build the HTML book into _build/html/index.html
#   make test   set up .venv and run the whole test suite (lint, unit tests, nbval, strict book build)
# Instructors: make assignments | grade ASSIGNMENT=<name> SUBMISSIONS=<folder> | student-book
# Others: make env | execute | sync | check | bench | clean | clean-env

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

.PHONY: help env book test lint execute sync check bench clean clean-env assignments grade student-book

help:
	@sed -n '1,7p' Makefile

env: $(STAMP)

# One virtual environment for everything: lstm_lab (editable), the book and the tests.
# PyTorch is installed first and alone from TORCH_INDEX, so pip never reaches for the CUDA
# build that a plain `torch` requirement gets on Linux; the second step adds its dependencies
# and everything else from PyPI.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps "torch==$(TORCH_VERSION)" --extra-index-url $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@
	@$(BIN)/python -c "import torch, lstm_lab; print('environment ready: lstm_lab', lstm_lab.__version__, '| torch', torch.__version__, '| device', lstm_lab.get_device())"

book: env
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo "book: $(CURDIR)/_build/html/index.html"

test: env lint
	$(BIN)/python -m pytest

lint: env
	$(BIN)/ruff check lstm_lab tests tools benchmarks

execute: env
	$(BIN)/python -m tools.course execute

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
