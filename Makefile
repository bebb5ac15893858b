# The two commands of the README: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# npm from Debian only where no npm is on the PATH already (some images ship Node's own).
NPM_DEB := $(if $(shell command -v npm),,npm)
RUN_DEBS := python3-venv ffmpeg $(NPM_DEB)
TEST_DEBS := $(RUN_DEBS) chromium postgresql redis-server nginx libnginx-mod-http-lua gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly

# The player's hls.js comes from the npm registry at a pinned version, never committed.
# The full build, not hls.light: the light one cannot play an alternate audio group
# (EXT-X-MEDIA:TYPE=AUDIO), which the CMAF ladder's video rungs rely on.
HLS_JS_VERSION := 1.6.15
# hls-parser checks our playlists in strict mode in the tests (tests/support/hls_validator.py).
HLS_PARSER_VERSION := 0.16.1
# One npm install for every package: a later `npm install --no-save` into the same prefix
# removes what an earlier one put there.
NPM_PACKAGES := hls.js@$(HLS_JS_VERSION) hls-parser@$(HLS_PARSER_VERSION)
# Every Python package at an exact version: `make lock` refreshes the file.
CONSTRAINTS := config/constraints.txt
VENDOR := control/web/static/vendor

.PHONY: run test lint typecheck pytest system-run system-test assets lock clean

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

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(VENV)/bin/python
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(VENV)/bin/python
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[test]'
	touch $(VENV)/.installed $@

assets: $(VENDOR)/hls.min.js

var/npm/.installed: Makefile
	npm install --silent --no-save --no-audit --no-fund --prefix var/npm $(NPM_PACKAGES)
	touch $@

$(VENDOR)/hls.min.js: var/npm/.installed
	mkdir -p $(VENDOR)
	cp var/npm/node_modules/hls.js/dist/hls.min.js var/npm/node_modules/hls.js/LICENSE $(VENDOR)/
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest -q

# The newest releases pyproject.toml allows, resolved in a throwaway virtualenv.
lock:
	rm -rf var/lock-venv
	$(PYTHON) -m venv var/lock-venv
	var/lock-venv/bin/pip install -q --upgrade pip
	var/lock-venv/bin/pip install -q -e '.[test]'
	{ echo "# Exact versions of every Python package make run and make test install (pip -c)."; \
	  echo "# Made by 'make lock' from a fresh virtualenv; refresh it with that command, then run make test."; \
	  var/lock-venv/bin/pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf var/lock-venv

clean:
	rm -rf $(VENV) var $(VENDOR) test-artifacts .pytest_cache .mypy_cache .ruff_cache
