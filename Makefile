# edge-agent: `make demo` and `make test` set everything up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests and the demo need: a real MQTT broker, openssl for test
# certificates, ffmpeg to cut fixture clips, GStreamer's RTSP server (run by Debian's python3)
# for live-camera tests, Chromium for the zone page tests, shellcheck and systemd-analyze for
# the install script and unit.
APT_PACKAGES := mosquitto mosquitto-clients openssl ffmpeg \
	python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	chromium shellcheck systemd
SETUP_STAMP := $(VENV)/.setup-done

.PHONY: setup demo test lint bench fixtures clean apt model

setup: $(SETUP_STAMP) apt model

$(SETUP_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

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
	$(VENV)/bin/ruff check edge_agent tests bench fixtures
	$(VENV)/bin/ruff format --check edge_agent tests bench fixtures
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/run_all.py

fixtures: setup
	$(PY) fixtures/make_fixtures.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
