# livefleet: `make demo` and `make test` do all set-up on a fresh machine (Python 3.11+).
PYTHON ?= python3
# Debian's Chromium, for the few pages that need a browser (Playwright drives it; nothing is downloaded).
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench stop lint clean

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "livefleet needs Chromium at $(CHROMIUM) (set CHROMIUM=...)"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

install: $(STAMP) $(CHROMIUM)

demo: install
	$(BIN)/livefleet demo

test: install
	$(BIN)/python -m pytest

# Each crawl figure is the fastest of 3 rounds (one round's ratio moves by +-0.1 with the machine).
bench: install
	$(BIN)/python -m bench --repeat 3

stop:
	@if [ -x $(BIN)/livefleet ]; then $(BIN)/livefleet stop; else echo "nothing to stop (not installed)"; fi

lint: install
	$(BIN)/ruff check crawlers spiders pipelines models settings sandbox tests bench

clean: stop
	rm -rf var .pytest_cache
