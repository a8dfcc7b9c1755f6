# Two entry points for a fresh machine; each sets itself up:
#   make all   - train, evaluate, report and package on the bundled WNUT-17 data
#   make test  - run the test suite
# Set-up: a venv in .venv, torch==2.13.0 first, then this package, installed the way users
# install it. Plain PyPI serves Linux a multi-GB CUDA build of torch; for the CPU build
# pass TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (left empty by default: the
# machines we test on install torch from a local CPU wheel and reach PyPI only).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
SOURCES := $(shell find spacy_bilstm_crf -name '*.py' -o -name 'py.typed') setup.cfg pyproject.toml
PYTEST_ARGS ?=
TORCH_INDEX_URL ?=
# torch's small LSTM matrices gain nothing from a second thread, and on a shared 2-core
# machine a second thread was seen to slow training and tests down 10x: default to one.
export OMP_NUM_THREADS ?= 1

.PHONY: all test test-slow install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.deps: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install -q ".[dev,transformers,vectors]"
	touch $@

# (re)install the package itself, not editable, whenever its sources change
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/python -m pip install -q --no-deps --force-reinstall .
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(BIN)/pytest tests -q -ra $(PYTEST_ARGS)

test-slow: $(VENV)/.installed
	$(BIN)/pytest tests -q -ra --runslow $(PYTEST_ARGS)

all: $(VENV)/.installed
	$(BIN)/python -m spacy project run all . $(PROJECT_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
