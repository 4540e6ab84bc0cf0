# One-command set-up for a fresh Debian machine with Python 3.11 (see README "Quick start").
#   make demo   install everything, then run `galseg demo` on the synthetic field
#   make test   install everything, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Headless napari needs an X server (Xvfb) and the xcb libraries Qt loads.
APT_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 \
	libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 \
	libxcb-cursor0 libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 \
	source-extractor
# The torch pair that lies on this machine's disk; pinned here, not in the package metadata.
TORCH := torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= demo-out

.PHONY: install system-deps demo test lint bench docs clean
install: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[all,pyqt6,testing]"
	touch $@

demo: install
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/galseg demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/run_all.py

docs: install
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/make_screenshots.py
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/make_preprocess_figures.py --screenshot

clean:
	rm -rf $(VENV) build dist src/*.egg-info
