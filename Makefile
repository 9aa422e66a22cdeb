# livefleet: `make demo` and `make test` do all set-up on a fresh machine (Python 3.11+).
PYTHON ?= python3
# Debian's Chromium, for the few pages that need a browser (Playwright drives it; nothing is downloaded).
CHROMIUM ?= /usr/bin/chromium
# Debian's tinyproxy: real HTTP proxies (one per loopback source address) for the egress tests and benchmarks.
TINYPROXY ?= /usr/bin/tinyproxy
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench stop lint clean

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "livefleet needs Chromium at $(CHROMIUM) (set CHROMIUM=...)"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# Only the binary (tinyproxy-bin): the `tinyproxy` package adds a system daemon on 127.0.0.1:8888 that
# its postinst may start. sandbox/proxies.py starts its own, each on a free port with its own configuration;
# should that daemon be installed and running anyway, it is stopped by its pid file (nothing relies on 8888).
$(TINYPROXY):
	@command -v apt-get >/dev/null || { echo "livefleet needs tinyproxy at $(TINYPROXY) (set TINYPROXY=...)"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tinyproxy-bin
	@pid=$$(cat /run/tinyproxy/tinyproxy.pid 2>/dev/null); [ -z "$$pid" ] || $(SUDO) kill "$$pid" 2>/dev/null || true

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

install: $(STAMP) $(CHROMIUM) $(TINYPROXY)

demo: install
	$(BIN)/livefleet demo

# Two at a time (pytest-xdist, a test file per worker), then the tests that measure rates, leases or
# cadences alone (marked serial): half the wall time of one at a time on 2 cores, same checks.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -m serial
	@if [ -d var/test-artifacts/console ]; then echo "screenshots of the web console's pages: \
	$$(ls var/test-artifacts/console | wc -l) files in $(CURDIR)/var/test-artifacts/console/"; fi

# Each crawl figure is the fastest of 3 rounds (one round's ratio moves by +-0.1 with the machine).
bench: install
	$(BIN)/python -m bench --repeat 3

stop:
	@if [ -x $(BIN)/livefleet ]; then $(BIN)/livefleet stop; else echo "nothing to stop (not installed)"; fi

lint: install
	$(BIN)/ruff check crawlers spiders pipelines models settings sandbox tests bench

clean: stop
	rm -rf var .pytest_cache
