# The README's two set-up commands: `make demo` and `make test`. Each creates .venv when missing and
# installs jaxgen (CPU JAX from PyPI) with what it needs; nothing else is downloaded at run time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.jaxgen-installed
PYTEST_ARGS ?=

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jaxgen demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) workdirs *.egg-info .pytest_cache
