"""The HTTP API served by a real uvicorn on 127.0.0.1, over the real Redis and MongoDB-compatible server."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlers.api.app import ApiContext, create_app
from tests.crawl_helpers import wait_for
from tests.plugins.api import Api, free_port, serve_api

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
PREFIX = "lfapi"


@pytest.fixture
def api(redis_client, mongo_db, tmp_path: Path) -> Iterator[Api]:
    context = ApiContext(token=TOKEN, redis=redis_client, db=mongo_db, prefix=PREFIX, campaigns_dir=tmp_path)
    with serve_api(context) as client:
        yield client


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
    # Non-finite or overflowing intervals: NaN ran at 1 ms; the others ended in a 500 with a traceback.
    ({"platform": "douyin", "target": DOUYIN_ROOM, "every": float("nan")}, "--every must be a finite"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "every": "NaN"}, "--every must be a finite"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "for": float("inf")}, "--for must be a finite"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "for": 1e300}, "--for must be at most 30d"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "for": "10000000d"}, "--for must be at most 30d"),
    ({"platform": "douyin", "target": DOUYIN_ROOM, "webhook": "ftp://x.example/h"}, "webhook"),
    # Refused before the monitor is stored (it once was stored, then its webhook refused).
    ({"platform": "douyin", "target": DOUYIN_ROOM, "webhook": "http://169.254.169.254/latest/meta-data"},
     "link-local"),
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


# -- hostile requests (the catalogue: tests/test_hostile_inputs.py) ---------------------------------

def _raw(api: Api, head: str, body: bytes = b"", *, wait: float = 5.0) -> tuple[int, bytes, float]:
    """Send ``head`` (and ``body``) on a bare socket; the status, the answer and how long it took."""
    host, port = api.base.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + 20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer, time.perf_counter() - started


def _post_head(length: int | None, token: str | None) -> str:
    lines = ["POST /v1/monitors HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}"] if length is not None else ["Transfer-Encoding: chunked"]
    lines += [f"Authorization: Bearer {token}"] if token else []
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_body_without_a_valid_token_gets_401_before_it_is_read(api, token):
    """400 MB without a token were read and parsed (3.4 s, 1.3 GB) before the 401. Now the 401
    comes in < 1 s while the client has sent only the headers of its 400 MB."""
    code, answer, took = _raw(api, _post_head(400_000_000, token))
    assert code == 401 and b"bearer token" in answer and took < 1.0


def test_an_announced_large_body_gets_413_before_it_is_read(api):
    """With the token, Content-Length over LIVEFLEET_API_MAX_BODY_BYTES (64 KiB): 413 in < 1 s,
    the body never sent."""
    code, answer, took = _raw(api, _post_head(400_000_000, TOKEN))
    assert code == 413 and b"larger than 65536 bytes" in answer and took < 1.0


def test_a_streamed_large_body_gets_413_after_the_limit(api):
    """Chunked, with no Content-Length: the bytes are counted, 413 once past 64 KiB."""
    chunk = b"x" * 32768
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 4 + b"0\r\n\r\n"
    code, answer, _took = _raw(api, _post_head(None, TOKEN), body)
    assert code == 413 and b"larger than 65536 bytes" in answer


def test_a_422_never_echoes_a_large_input(api):
    """A 422 echoed the whole input back; a 60 KB bad field now comes back as its first 120
    characters and its length: the answer stays under 2 KB."""
    request = urllib.request.Request(api.base + "/v1/monitors", method="POST",
                                     data=json.dumps({"platform": "douyin", "target": "x" * 3000,
                                                      "webhook": "y" * 60_000}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=20)
    answer = error.value.read()
    assert error.value.code == 422 and len(answer) < 2000, answer[:300]
    assert b"characters)" in answer


def test_campaigns_list_the_good_files_and_report_the_bad_one(api, tmp_path):
    """One overflowing file broke GET /v1/campaigns for the whole folder (a 500)."""
    (tmp_path / "good.yaml").write_text(CAMPAIGN)
    (tmp_path / "bad.yaml").write_text(CAMPAIGN.replace("api-demo", "bad") + "schedule: {cron: '* * 31 2 *'}\n")
    code, answer = api.call("GET", "/v1/campaigns")
    assert code == 200 and [c["name"] for c in answer["campaigns"]] == ["api-demo"]
    (problem,) = answer["problems"]
    assert "bad.yaml" in problem and "never fires" in problem


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
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "crawlers", "api", "--port", str(port)],
                            env={**env, "LIVEFLEET_API_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        client = Api(f"http://127.0.0.1:{port}", TOKEN)

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
