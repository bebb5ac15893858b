# The two commands of the README: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_DEBS := python3-venv ffmpeg
TEST_DEBS := $(RUN_DEBS) postgresql gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly

.PHONY: run test lint typecheck pytest system-run system-test clean

run: system-run $(VENV)/.installed
	$(BIN)/academia serve

test: system-test $(VENV)/.installed-test lint typecheck pytest

system-run:
	@scripts/install-system-packages.sh $(RUN_DEBS)

system-test:
	@scripts/install-system-packages.sh $(TEST_DEBS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
