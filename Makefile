# Two commands do all set-up on a fresh machine with Python 3.10+:
#   make demo   - the main job on its embedded default (bundled model, phantom scanner, emulated display)
#   make test   - the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test test-stress lint venv-runtime venv-dev demo-bundle clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Device runtime only: no TensorFlow.
$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# Runtime plus the host-side converter (TensorFlow) and the test tools.
$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[convert,dev]"
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/tlf-edge run

# Two pytest workers (pytest-xdist), each taking whole test files, so that a file's models are
# trained once per run. TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The linter and the type checker, configured in pyproject.toml ([tool.ruff], [tool.mypy]).
lint: $(VENV)/.dev
	$(BIN)/ruff check edge convert firmware_bridge
	$(BIN)/ruff format --check edge convert firmware_bridge
	$(BIN)/mypy

# The suite on a machine made slow and different on purpose: a CPU burner on every core, and
# numpy and OpenCV kept off their AVX-512 code paths (tests/stress.py says how).
test-stress: $(VENV)/.dev
	$(BIN)/python tests/stress.py --simd avx2 -- $(PYTEST_ARGS)

# Rebuilds the committed demo bundle from phantom data (host PC, 64 epochs of about 3 minutes on 2 cores).
demo-bundle: $(VENV)/.dev
	$(BIN)/tlf-convert demo-bundle --out edge/models/demo

clean:
	rm -rf $(VENV) runs .pytest_cache
