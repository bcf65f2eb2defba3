# edge-agent: `make demo` and `make test` set everything up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests and the demo need: a real MQTT broker, openssl for test
# certificates, ffmpeg to cut fixture clips, GStreamer's RTSP server (run by Debian's python3)
# for live-camera tests, Chromium for the zone page tests, shellcheck and systemd-analyze for
# the install script and unit, PostgreSQL for the town console's tests.
APT_PACKAGES := mosquitto mosquitto-clients openssl ffmpeg \
	python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	chromium shellcheck systemd postgresql
SETUP_STAMP := $(VENV)/.setup-done
# The town console's browser libraries (chart.js, leaflet) from npm, by its lock file; the
# console serves them itself, so a town server needs no CDN (docs/console.md).
CONSOLE_ASSETS := edge_agent/console/assets
ASSETS_STAMP := $(CONSOLE_ASSETS)/node_modules/.ci-done
# Every Python package comes from a lock file with hashes (requirements/README.md): the same
# versions on every machine, whatever PyPI has released since. `make lock` makes them again.
LOCKS := requirements/build.lock requirements/runtime.lock requirements/console.lock requirements/dev.lock
PIP_LOCKED := $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps
UV_COMPILE := UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv pip compile --quiet --universal \
	--python-version 3.10 --generate-hashes --custom-compile-command 'make lock'

.PHONY: setup demo test lint bench fixtures clean apt model lock upgrade-check goldens asyncapi-check

setup: $(SETUP_STAMP) apt model $(ASSETS_STAMP)

$(ASSETS_STAMP): $(CONSOLE_ASSETS)/package.json $(CONSOLE_ASSETS)/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: nodejs npm"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; \
	  else echo "npm is missing; run: sudo apt-get install -y nodejs npm"; exit 1; fi; }
	npm ci --prefix $(CONSOLE_ASSETS) --no-audit --no-fund --ignore-scripts --silent
	@touch $@

$(SETUP_STAMP): pyproject.toml $(LOCKS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r requirements/build.lock
	$(PIP_LOCKED) -r requirements/dev.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $@

# Re-resolve the locks from pyproject.toml and requirements/build.in (newest allowed versions).
lock: $(SETUP_STAMP)
	$(UV_COMPILE) pyproject.toml -o requirements/runtime.lock
	$(UV_COMPILE) pyproject.toml --extra console -o requirements/console.lock
	$(UV_COMPILE) pyproject.toml --extra dev -o requirements/dev.lock
	$(UV_COMPILE) requirements/build.in -o requirements/build.lock

# The newest allowed versions in a scratch venv, and the whole test suite there; the lock is untouched.
upgrade-check: $(SETUP_STAMP) apt model
	@bash scripts/upgrade_check.sh

# Golden event files and reference snapshots made again from this tree; watch out/goldens/*.mp4 after.
goldens: setup
	EDGE_AGENT_UPDATE_GOLDEN=1 $(VENV)/bin/pytest -q tests/test_golden_replay.py tests/test_scenarios.py -k matches_golden
	@echo "now watch the annotated videos in out/goldens/ and check fixtures/README.md (docs/maintaining.md)"

# The official AsyncAPI validator on mqtt/asyncapi.yaml, failing on warnings too. Not in `make test`:
# the CLI is 1.5 GB from npm and wants a newer Node.js than Debian's.
ASYNCAPI_CLI := 6.2.0
asyncapi-check:
	@test -x build/asyncapi/node_modules/.bin/asyncapi || \
	  npm install --prefix build/asyncapi --no-audit --no-fund --silent @asyncapi/cli@$(ASYNCAPI_CLI)
	build/asyncapi/node_modules/.bin/asyncapi validate mqtt/asyncapi.yaml --fail-severity warn

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

model: $(SETUP_STAMP)
	@$(VENV)/bin/edge-agent models fetch yolox-nano

demo: setup
	@bash scripts/demo.sh

test: setup
	$(VENV)/bin/pytest -q

lint: $(SETUP_STAMP)
	$(VENV)/bin/ruff check edge_agent tests bench fixtures scripts
	$(VENV)/bin/ruff format --check edge_agent tests bench fixtures scripts
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/run_all.py

fixtures: setup
	$(PY) fixtures/make_fixtures.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
