"""The browser handler with real Chromium: JS-built pages render, heavy resources are
blocked, and the browser is recycled after a bounded number of pages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crawlers.browser import abort_heavy_resources, process_tree_rss

ROOT = Path(__file__).resolve().parents[1]

PAGE = b"""<!doctype html><html><head><title>probe</title>
</head><body><div id="out">empty</div>
<img src="/pixel.png"><video src="/movie.mp4" autoplay muted></video>
<script>
const n = new URLSearchParams(location.search).get("n");
document.getElementById("out").textContent = "rendered " + n;
</script></body></html>"""


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


def _probe(url: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "tests.browser_probe", url, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pages_render_in_chromium_and_the_browser_is_recycled(page_server):
    _Handler.hits.clear()
    out = _probe(page_server, "--pages", "7", "--recycle", "3")
    assert out["seen"] == [f"rendered {n}" for n in range(7)], "the page's own script built the content"
    stats = out["stats"]
    assert stats["livefleet/browser/recycled"] == 2  # after pages 3 and 6
    assert stats["playwright/browser_count"] == 3
    assert stats["livefleet/browser/rss_peak_mb"] > 10
    assert not any(hit.startswith(("/pixel.png", "/movie.mp4")) for hit in _Handler.hits), "images, media blocked"


def test_abort_rule_and_process_memory_helper():
    class _Req:
        def __init__(self, kind: str) -> None:
            self.resource_type = kind

    assert abort_heavy_resources(_Req("image")) and abort_heavy_resources(_Req("font"))
    assert not abort_heavy_resources(_Req("document")) and not abort_heavy_resources(_Req("xhr"))
    import os

    assert process_tree_rss(os.getpid()) > 1024 * 1024
