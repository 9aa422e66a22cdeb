"""The HTTP API served by a real uvicorn on 127.0.0.1, over the real Redis and MongoDB-compatible server."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from crawlers.api import ApiContext, create_app

TOKEN = "s3cret-token"
PREFIX = "lfapi"


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api(redis_client, mongo_db, tmp_path: Path) -> Iterator[Api]:
    context = ApiContext(token=TOKEN, redis=redis_client, db=mongo_db, prefix=PREFIX, campaigns_dir=tmp_path)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield Api(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_every_v1_route_needs_the_token(api):
    spec = api.call("GET", "/openapi.json", token=None)[1]
    routes = [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops if path.startswith("/v1")]
    assert ("GET", "/v1/status") in routes
    for method, path in routes:
        path = path.replace("{monitor_id}", "m1").replace("{name}", "c1")
        for token in (None, "wrong", TOKEN + "x"):
            code, body = api.call(method, path, body={} if method == "POST" else None, token=token)
            assert code == 401, (method, path, token, body)
    assert api.call("GET", "/healthz", token=None) == (200, {"status": "ok"})


def test_status_is_what_livefleet_status_reports(api, redis_client):
    from crawlers.status import collect_status

    code, body = api.call("GET", "/v1/status")
    assert code == 200
    expected = collect_status(redis_client, PREFIX)
    assert body["fleet"] == expected["fleet"] and body["prefix"] == PREFIX


def test_the_openapi_document_names_the_bearer_scheme(api):
    code, spec = api.call("GET", "/openapi.json", token=None)
    assert code == 200
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())


def test_an_api_without_a_token_refuses_to_start(redis_client, mongo_db, tmp_path):
    with pytest.raises(ValueError, match="LIVEFLEET_API_TOKEN"):
        create_app(ApiContext(token="", redis=redis_client, db=mongo_db, prefix=PREFIX, campaigns_dir=tmp_path))
