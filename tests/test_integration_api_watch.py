"""The watchlists over HTTP: the same store as ``livefleet watch``, errors as 404/422, secrets never shown."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawlers.watch import lists as W
from tests.plugins.api import Api, serve_api

pytestmark = pytest.mark.integration

TOKEN = "watch-api-token"


@pytest.fixture
def api(redis_client, mongo_db, tmp_path: Path, monkeypatch) -> Iterator[tuple[Api, str]]:
    from crawlers.api.app import ApiContext

    monkeypatch.setenv("LIVEFLEET_WEBHOOK_ALLOW", "127.0.0.0/8")
    prefix = f"lfwatchapi{secrets.token_hex(3)}"
    context = ApiContext(token=TOKEN, redis=redis_client, db=mongo_db, prefix=prefix, campaigns_dir=tmp_path)
    with serve_api(context) as client:
        yield client, prefix


def test_a_list_is_created_filled_retiered_and_listed_over_http(api, redis_client):
    client, prefix = api
    code, made = client.call("POST", "/v1/watchlists", {"name": "rivals", "platform": "bilibili",
                                                        "windows": "19:00-24:00"})
    assert code == 201 and made["platform"] == "bilibili" and made["state"] == "active", made
    code, added = client.call("POST", "/v1/watchlists/rivals/entries",
                              {"targets": ["https://space.bilibili.com/12345", "https://live.bilibili.com/678"],
                               "tier": "tail"})
    assert code == 200 and added["new"] == 2, added
    code, refused = client.call("POST", "/v1/watchlists/rivals/entries",
                                {"targets": ["https://space.bilibili.com/12345", "file:///etc/passwd"], "tier": "hot"})
    assert code == 422, "one refused target: nothing written, not even the good one's tier"
    assert {e.target["id"]: e.tier for e in W.watched(redis_client, prefix, "bilibili")}["12345"] == "tail"
    code, changed = client.call("POST", "/v1/watchlists/rivals/entries",
                                {"targets": ["https://space.bilibili.com/12345"], "tier": "hot"})
    assert code == 200 and changed["updated"] == 1
    code, shown = client.get("/v1/watchlists/rivals")
    tiers = {item["target"]["id"]: item["tier"] for item in shown["items"]}
    assert code == 200 and tiers == {"12345": "hot", "678": "tail"}, shown
    # the store the workers read says the same
    assert {e.target["id"]: e.tier for e in W.watched(redis_client, prefix, "bilibili")} == tiers
    code, rows = client.get("/v1/watchlists")
    assert code == 200 and [r["name"] for r in rows] == ["rivals"] and rows[0]["entries"] == 2
    assert client.call("POST", "/v1/watchlists/rivals/stop")[1]["state"] == "stopped"
    assert W.watched(redis_client, prefix, "bilibili") == [], "a stopped list is not watched"
    code, removed = client.call("POST", "/v1/watchlists/rivals/entries/remove",
                                {"targets": ["https://live.bilibili.com/678"]})
    assert code == 200 and len(removed["removed"]) == 1
    assert client.call("DELETE", "/v1/watchlists/rivals")[0] == 200
    assert client.get("/v1/watchlists/rivals")[0] == 404


def test_an_import_with_a_bad_line_writes_nothing_and_names_the_line(api, redis_client):
    client, prefix = api
    client.call("POST", "/v1/watchlists", {"name": "tail-list", "platform": "douyin"})
    lines = ["# competitors", "https://live.douyin.com/604946797621 tier=hot", "not a room at all",
             "https://live.douyin.com/604946797622", "ftp://live.douyin.com/1"]
    code, refused = client.call("POST", "/v1/watchlists/tail-list/import", {"lines": lines})
    assert code == 422
    assert [r["line"] for r in refused["detail"]["refused"]] == [3, 5], refused
    assert W.entries(redis_client, prefix, "tail-list") == [], "nothing half-imported"
    code, done = client.call("POST", "/v1/watchlists/tail-list/import", {"lines": lines[:2] + lines[3:4]})
    assert code == 200 and done["new"] == 2


def test_subscriber_secrets_and_url_tokens_never_come_back(api):
    client, _ = api
    client.call("POST", "/v1/watchlists", {"name": "evening", "platform": "taobao"})
    secret = "SECabcdef0123456789"
    code, sub = client.call("POST", "/v1/watchlists/evening/subscribers",
                            {"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=tok123456",
                             "secret": secret, "events": ["stream_started", "stream_ended"]})
    assert code == 201, sub
    code, subs = client.get("/v1/watchlists/evening/subscribers")
    text = json.dumps(subs) + json.dumps(sub) + json.dumps(client.get("/v1/watchlists/evening")[1])
    assert code == 200 and subs[0]["signed"] is True and "access_token=***" in subs[0]["url"]
    assert secret not in text and "tok123456" not in text
    bad = client.call("POST", "/v1/watchlists/evening/subscribers", {"kind": "dingtalk", "url": "http://10.0.0.1/x"})
    assert bad[0] == 422, bad
    assert client.call("DELETE", f"/v1/watchlists/evening/subscribers/{sub['id']}")[0] == 200
    assert client.get("/v1/watchlists/nosuch/subscribers")[0] == 404
    assert client.get("/v1/watchlists", token=None)[0] == 401
