# One-command set-up on a fresh machine: `make demo` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Without an NVIDIA GPU, pin the CPU build of PyTorch (a bare `torch` pulls GBs of CUDA wheels).
CONSTRAINTS := $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "-c constraints/cpu.txt")
XVFB_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
	libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-cursor0 libgl1 libegl1 \
	libfontconfig1 libdbus-1-3
DEMO_DIR ?= demo_project

.PHONY: help venv system-deps demo test screenshots lint clean

help:
	@echo "make demo   build .venv, create a demo project from bundled sample data, run the loop, print a summary"
	@echo "make test   build .venv (and Xvfb when missing) and run the test suite"
	@echo "make screenshots   refresh the README's docs/images/*.png from a real loop in the plugin"

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -n "$(CONSTRAINTS)" ]; then $(BIN)/python -m pip install --quiet $(CONSTRAINTS) torch; fi
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[dev,napari,connectomics,bench,share]"
	touch $(STAMP)

venv: $(STAMP)

# Xvfb for the napari/Qt tests; installed only when missing (needs root and apt-get).
system-deps:
	@if ! command -v xvfb-run >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(XVFB_PACKAGES) >/dev/null; \
		else echo "xvfb-run is missing: install Xvfb (Debian: apt-get install xvfb) for the Qt tests" >&2; fi; \
	fi

demo: venv
	$(BIN)/nta demo --dir $(DEMO_DIR)

test: venv system-deps
	$(BIN)/lint-imports --no-cache
	@if [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null 2>&1; then \
		xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else $(BIN)/python -m pytest $(PYTEST_ARGS); fi

# The screenshot test writes to a temporary folder under `make test`; here it refreshes docs/images/
# (the test recipe above, run on that test alone with NTA_SCREENSHOT_DIR set).
screenshots: export NTA_SCREENSHOT_DIR := $(CURDIR)/docs/images
screenshots: PYTEST_ARGS := tests/napari/test_screenshots.py
screenshots: test

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
