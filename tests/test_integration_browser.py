"""The browser handler with real Chromium: JS-built pages render in pages that are reused
(within bounds, replaced after their uses or when idle, gone with a recycled browser), heavy
resources are never downloaded, and the browser is recycled after a bounded number of pages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crawlers.download.browser import playwright_disabled_features
from crawlers.download.memory import process_tree_rss
from crawlers.download.page_pool import abort_heavy_resources
from settings.browser import DISABLED_FEATURES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]

PAGE = b"""<!doctype html><html><head><title>probe</title>
<style>@font-face { font-family: probe; src: url(/font.woff2); } body { font-family: probe; }</style>
</head><body><div id="out">empty</div><div id="late"></div>
<img src="/pixel.png"><video src="/movie.mp4" autoplay muted></video>
<script>
const n = new URLSearchParams(location.search).get("n");
document.getElementById("out").textContent = "rendered " + n;
document.fonts.load("16px probe");
setTimeout(() => {
  document.getElementById("late").textContent = "late " + n;
  document.body.dataset.ready = "yes";
}, 150);
</script></body></html>"""
HEAVY = ("/pixel.png", "/movie.mp4", "/font.woff2")


class _Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).hits.append(self.path)
        body = PAGE if self.path.startswith("/page") else b"x"
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.startswith("/page") else "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page"
    server.shutdown()
    server.server_close()


def _probe(url: str, *args: str, **settings: object) -> dict:
    _Handler.hits.clear()
    sets = [arg for name, value in settings.items() for arg in ("--set", f"{name}={json.dumps(value)}")]
    result = subprocess.run([sys.executable, "-m", "tests.browser_probe", url, *args, *sets], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _heavy_hits() -> list[str]:
    return [hit for hit in _Handler.hits if hit.startswith(HEAVY)]


def test_pages_render_in_reused_pages_and_the_browser_is_recycled(page_server):
    out = _probe(page_server, "--pages", "7", "--recycle", "3", CONCURRENT_REQUESTS=1)
    assert out["seen"] == [f"rendered {n}" for n in range(7)], "the page's own script built the content"
    stats = out["stats"]
    assert stats["livefleet/browser/recycled"] == 2  # after pages 3 and 6
    assert stats["playwright/browser_count"] == 3
    # One page per browser, navigated again for the next request; a recycled browser takes its pages along.
    assert stats["livefleet/browser/pages_opened"] == 3
    assert stats["livefleet/browser/pages_reused"] == 4
    assert stats["livefleet/browser/rss_peak_mb"] > 10
    assert sum(hit.startswith("/page") for hit in _Handler.hits) == 7
    assert not _heavy_hits(), "images, media and fonts are never downloaded"
    # Images are not even asked for; media and fonts are asked for and failed inside the browser.
    assert stats["livefleet/browser/heavy_blocked"] >= 7


def test_the_pool_is_bounded_by_the_pages_per_context(page_server):
    out = _probe(page_server, "--pages", "24", CONCURRENT_REQUESTS=16)
    stats = out["stats"]
    assert out["seen"] == sorted(f"rendered {n}" for n in range(24))
    assert stats["livefleet/browser/pages_opened"] <= 4  # PLAYWRIGHT_MAX_PAGES_PER_CONTEXT, one context
    assert stats["livefleet/browser/pages_opened"] + stats["livefleet/browser/pages_reused"] == 24
    assert not _heavy_hits()


def test_a_page_is_replaced_after_its_uses_and_closed_when_idle_and_garbage_is_collected(page_server):
    stats = _probe(page_server, "--pages", "7", CONCURRENT_REQUESTS=1, LIVEFLEET_BROWSER_PAGE_USES=2,
                   LIVEFLEET_BROWSER_GC_PAGES=3)["stats"]
    assert stats["livefleet/browser/pages_opened"] == 4  # 2 + 2 + 2 + 1 renders
    assert stats["livefleet/browser/pages_reused"] == 3
    assert stats["livefleet/browser/garbage_collections"] == 2  # after renders 3 and 6 in the context

    # Requests further apart than the idle limit: each page is closed before the next request comes.
    stats = _probe(page_server, "--pages", "3", CONCURRENT_REQUESTS=1, DOWNLOAD_DELAY=1.5,
                   RANDOMIZE_DOWNLOAD_DELAY=False, LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS=0.1)["stats"]
    assert stats["livefleet/browser/pages_opened"] == 3
    assert "livefleet/browser/pages_reused" not in stats
    assert stats["playwright/page_count/closed"] >= 2


def test_render_requests_wait_for_the_page_script_in_reused_pages(page_server):
    out = _probe(page_server, "--pages", "6", "--render", CONCURRENT_REQUESTS=2)
    assert out["late"] == [f"late {n}" for n in range(6)], "the handler waited for data-ready"
    assert out["stats"]["livefleet/browser/pages_reused"] >= 4
    assert not _heavy_hits()


def test_scrapy_playwrights_own_path_still_blocks_heavy_resources(page_server):
    # No reuse: every request takes scrapy-playwright's path (a new page, a route aborting heavy requests).
    out = _probe(page_server, "--pages", "3", CONCURRENT_REQUESTS=1, LIVEFLEET_BROWSER_PAGE_USES=0)
    stats = out["stats"]
    assert out["seen"] == [f"rendered {n}" for n in range(3)]
    assert "livefleet/browser/pages_opened" not in stats and stats["playwright/page_count"] == 3
    assert stats["playwright/request_count/aborted"] >= 3
    assert not _heavy_hits()


def test_chromium_runs_with_playwrights_disabled_features_and_ours(page_server):
    # Chromium keeps the last --disable-features only: ours must repeat Playwright's list.
    theirs = playwright_disabled_features()
    assert theirs and "PaintHolding" in theirs
    switches = _probe(page_server, "--pages", "1")["disable_features"]
    assert len(switches) == 2, "Playwright's switch, then ours"
    first, last = (set(value.split(",")) for value in switches)
    assert first == set(theirs)
    assert last == first | set(DISABLED_FEATURES)


def test_abort_rule_and_process_memory_helper():
    class _Req:
        def __init__(self, kind: str) -> None:
            self.resource_type = kind

    assert abort_heavy_resources(_Req("image")) and abort_heavy_resources(_Req("font"))
    assert not abort_heavy_resources(_Req("document")) and not abort_heavy_resources(_Req("xhr"))
    import os

    assert process_tree_rss(os.getpid()) > 1024 * 1024
