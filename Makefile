# eventfx: `make demo` and `make test` work on a fresh machine (they run `make setup` first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.eventfx-requirements.sha
# Every process that talks DDS stays on loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(abspath $(VENV))

.PHONY: setup test demo bench clean

setup:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@sum=$$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1); \
	if [ ! -f $(STAMP) ] || [ "$$(cat $(STAMP))" != "$$sum" ]; then \
	  echo "installing requirements into $(VENV) (torch 2.13.0 CPU first, so nothing pulls another torch)"; \
	  $(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "is ignored" || true; \
	  $(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 -r requirements.txt 2>&1 | grep -v "is ignored"; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	  rm -f $(VENV)/.eventfx-installed; echo "$$sum" > $(STAMP); \
	fi
	@scripts/build_msgs.sh $(VENV)
	@if [ ! -f $(VENV)/.eventfx-installed ]; then \
	  $(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored"; \
	  scripts/install_ros_files.sh $(VENV) && touch $(VENV)/.eventfx-installed; \
	fi
	@scripts/install_ros_files.sh $(VENV)
	@scripts/warm_caches.sh $(VENV)

test: setup
	ROS_DOMAIN_ID=$$(( RANDOM % 100 + 100 )) $(PY) -m pytest -q test

# The bundled recording through the real node over DDS (loopback): cleaned bag, summary, PNG.
demo: setup
	rm -rf out/demo
	$(VENV)/bin/eventfx replay data/demo/emlb_demo_evt3 --out out/demo/cleaned_bag \
	  --config config/denoise.yaml --summary-dir out/demo --preview out/demo/before_after.png

bench: setup
	$(VENV)/bin/eventfx bench

clean:
	rm -rf $(VENV) build out *.egg-info
