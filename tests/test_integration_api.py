"""The HTTP API served by a real uvicorn on 127.0.0.1, over the real Redis and MongoDB-compatible server."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from crawlers.api.app import ApiContext, create_app
from tests.crawl_helpers import wait_for

pytestmark = pytest.mark.integration

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
    wait_for("the API to start", lambda: server.started, 20, interval=0.05)
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
    from crawlers.health.status import collect_status

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


# -- monitors -----------------------------------------------------------------------------------

DOUYIN_ROOM = "https://live.douyin.com/604946797621"


def test_monitors_are_added_listed_read_and_stopped_as_on_the_command_line(api, redis_client):
    from crawlers.monitor.registry import Registry

    code, added = api.call("POST", "/v1/monitors", {"platform": "douyin", "target": DOUYIN_ROOM, "every": "30s",
                                                     "for": "6h"})
    assert code == 201 and added["target"]["id"] == "604946797621" and added["every_s"] == 30
    assert [m.id for m in Registry(redis_client, PREFIX).list()] == [added["id"]]
    assert [m["id"] for m in api.call("GET", "/v1/monitors")[1]] == [added["id"]]
    assert api.call("GET", f"/v1/monitors/{added['id']}")[1]["state"] == "active"
    code, stopped = api.call("DELETE", f"/v1/monitors/{added['id']}")
    assert code == 200 and stopped["state"] == "stopped"
    assert Registry(redis_client, PREFIX).get(added["id"]).state == "stopped"
    assert api.call("GET", "/v1/monitors/nope")[0] == 404
    assert api.call("DELETE", "/v1/monitors/nope")[0] == 404


@pytest.mark.parametrize("body, says", [
    ({"platform": "douyin", "target": "https://live.douyin.com.evil.io/604946797621"}, "live.douyin.com"),
    ({"platform": "douyin", "target": "http://127.0.0.1/604946797621"}, "127.0.0.1"),
    ({"platform": "douyin", "target": "file:///etc/passwd"}, "file"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "every": "0s"}, "every"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "webhook": "ftp://x.example/h"}, "webhook"),
])
def test_refused_monitor_targets_get_422_with_the_reason_and_nothing_is_registered(api, redis_client, body, says):
    from crawlers.monitor.registry import Registry

    code, answer = api.call("POST", "/v1/monitors", body)
    assert code == 422 and says in answer["detail"], answer
    assert Registry(redis_client, PREFIX).list() == []


@pytest.mark.parametrize("body, field", [
    ({"platform": "youtube", "target": "x"}, "platform"),
    ({"platform": "douyin"}, "target"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "colour": "red"}, "colour"),
])
def test_bodies_that_do_not_fit_the_schema_get_422_naming_the_field(api, body, field):
    code, answer = api.call("POST", "/v1/monitors", body)
    assert code == 422 and any(field in error["loc"] for error in answer["detail"]), answer


# -- campaigns ----------------------------------------------------------------------------------

CAMPAIGN = """\
name: api-demo
priority: 3
caps: {pages: 50}
platforms:
  bilibili:
    rooms: [5440]
"""


def test_a_campaign_run_through_the_api_queues_its_seeds_and_is_recorded(api, redis_client, mongo_db, tmp_path):
    from crawlers.redis.keys import SpiderKeys

    (tmp_path / "api-demo.yaml").write_text(CAMPAIGN)
    (tmp_path / "broken.yaml").write_text("name: broken\nplatforms: {}\nsurprise: 1\n")
    code, listed = api.call("GET", "/v1/campaigns")
    assert code == 200 and [c["name"] for c in listed["campaigns"]] == ["api-demo"]
    assert any("broken.yaml:3" in p and "surprise" in p for p in listed["problems"]), listed["problems"]
    code, run = api.call("POST", "/v1/campaigns/api-demo/runs")
    assert code == 202 and run["run_id"].startswith("api-demo-")
    seeds = [json.loads(s) for s in redis_client.lrange(SpiderKeys(PREFIX, "bilibili").seeds, 0, -1)]
    assert seeds and all(s["crawl"] == run["run_id"] and s["priority"] == 3 for s in seeds)
    stored = api.call("GET", f"/v1/campaigns/runs/{run['run_id']}")[1]
    assert stored["campaign"] == "api-demo" and stored["trigger"] == "manual"
    assert [r["run_id"] for r in api.call("GET", "/v1/campaigns/runs?campaign=api-demo")[1]] == [run["run_id"]]
    assert mongo_db["campaign_runs"].count_documents({"_id": run["run_id"]}) == 1
    assert api.call("POST", "/v1/campaigns/broken/runs")[0] == 404
    assert api.call("GET", "/v1/campaigns/runs/nope")[0] == 404


def test_livefleet_api_serves_with_the_configured_token_and_refuses_to_start_without_one(
        redis_server, mongo_server, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "REDIS_URL": redis_server.url, "MONGO_URI": mongo_server.url,
           "LIVEFLEET_VAR_DIR": str(tmp_path), "LIVEFLEET_KEY_PREFIX": PREFIX}
    env.pop("LIVEFLEET_API_TOKEN", None)
    refused = subprocess.run([sys.executable, "-m", "crawlers", "api"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "LIVEFLEET_API_TOKEN" in refused.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "crawlers", "api", "--port", str(port)],
                            env={**env, "LIVEFLEET_API_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        client = Api(f"http://127.0.0.1:{port}")

        def healthy() -> bool:
            try:
                assert client.call("GET", "/healthz", token=None)[0] == 200
                return True
            except OSError:
                assert proc.poll() is None, "livefleet api did not start"
                return False

        wait_for("livefleet api to start", healthy, 30)
        assert client.call("GET", "/v1/status", token=None)[0] == 401
        code, body = client.call("GET", "/v1/status")
        assert code == 200 and body["prefix"] == PREFIX
    finally:
        proc.terminate()
        proc.wait(timeout=20)
