"""The API on a real uvicorn in a thread, and a small client of it (the API tests' shared helper)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.crawl_helpers import wait_for


class Api:
    """A client of the API at ``base`` sending ``token`` as its bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: Any = None, token: str | None = "") -> tuple[int, Any]:
        """``(status, JSON answer)``; ``token`` "" is the client's own, None sends none."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        token = self.token if token == "" else token
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str, token: str | None = "", **params: Any) -> tuple[int, Any]:
        """``GET path?params`` (None values left out)."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self.call("GET", path + (f"?{query}" if query else ""), token=token)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_api(context: Any) -> Iterator[Api]:
    """``create_app(context)`` on uvicorn at a free loopback port until the block ends."""
    import uvicorn

    from crawlers.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("the API to start", lambda: server.started, 20, interval=0.05)
    try:
        yield Api(f"http://127.0.0.1:{port}", context.token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
