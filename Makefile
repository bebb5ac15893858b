# The two commands of the README: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# npm from Debian only where no npm is on the PATH already (some images ship Node's own).
NPM_DEB := $(if $(shell command -v npm),,npm)
RUN_DEBS := python3-venv ffmpeg $(NPM_DEB)
TEST_DEBS := $(RUN_DEBS) chromium postgresql redis-server gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly

# The player's hls.js comes from the npm registry at a pinned version, never committed.
HLS_JS_VERSION := 1.6.15
VENDOR := control/web/static/vendor

.PHONY: run test lint typecheck pytest system-run system-test assets clean

run: system-run $(VENV)/.installed assets
	$(BIN)/academia serve

test: system-test $(VENV)/.installed-test assets lint typecheck pytest

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

assets: $(VENDOR)/hls.light.min.js

$(VENDOR)/hls.light.min.js: Makefile
	npm install --silent --no-save --no-audit --no-fund --prefix var/npm hls.js@$(HLS_JS_VERSION)
	mkdir -p $(VENDOR)
	cp var/npm/node_modules/hls.js/dist/hls.light.min.js var/npm/node_modules/hls.js/LICENSE $(VENDOR)/
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var $(VENDOR) test-artifacts .pytest_cache .mypy_cache .ruff_cache
