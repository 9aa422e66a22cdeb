"""``livefleet feed read|info`` and ``livefleet webhooks add|list|remove`` on the real Redis."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crawlers.cli.main import main
from crawlers.feeds.publish import FeedPublisher, publisher_client
from crawlers.queue.origin import set_origin
from models.entities import Room

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def prefix(monkeypatch, tmp_path, redis_server, mongo_server) -> str:
    value = f"cli{uuid.uuid4().hex[:6]}"
    for name, setting in {"REDIS_URL": redis_server.url, "MONGO_URI": mongo_server.url,
                          "LIVEFLEET_VAR_DIR": str(tmp_path), "LIVEFLEET_KEY_PREFIX": value}.items():
        monkeypatch.setenv(name, setting)
    rooms = [Room(platform="kuaishou", room_id=f"r{i}", fetched_at=T0 + timedelta(seconds=i), viewers_now=i)
             for i in range(7)]
    for room in rooms:
        set_origin(room, {"crawl": "top-20261101T1200Z"})
    publisher = FeedPublisher(publisher_client(redis_server.url), value)
    publisher.publish(rooms)
    publisher.close()
    return value


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_feed_read_prints_each_message_once_per_group(prefix, capsys):
    assert main(["feed", "read", "rooms", "--group", "g1", "--count", "5"]) == 0
    first = _lines(capsys)
    assert [m["doc"]["room_id"] for m in first] == ["r0", "r1", "r2", "r3", "r4"]
    assert first[0]["op"] == "upsert" and first[0]["crawl"] == "top-20261101T1200Z"
    assert set(first[0]) == {"id", "collection", "op", "at", "crawl", "doc"}
    assert main(["feed", "read", "rooms", "--group", "g1"]) == 0
    assert [m["doc"]["room_id"] for m in _lines(capsys)] == ["r5", "r6"]
    assert main(["feed", "read", "rooms", "--group", "g1"]) == 0
    assert _lines(capsys) == []
    assert main(["feed", "read", "rooms", "--group", "g2", "--consumer", "other"]) == 0
    assert len(_lines(capsys)) == 7


def test_feed_info_and_refusals(prefix, capsys):
    assert main(["feed", "read", "rooms", "--group", "g1", "--count", "2"]) == 0
    capsys.readouterr()
    assert main(["feed", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rooms"]["length"] == 7 and info["rooms"]["groups"][0]["name"] == "g1"
    assert main(["feed", "info"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("rooms "))
    assert row.split()[:3] == ["rooms", "7", "g1"]
    assert main(["feed", "read", "shops", "--group", "g"]) == 2
    assert "no feed named 'shops'" in capsys.readouterr().err
    assert main(["feed", "read", "rooms"]) == 2


def test_webhooks_add_list_remove(prefix, capsys, monkeypatch):
    assert main(["webhooks", "add", "--campaign", "top", "--url", "https://hooks.example.com/lf",
                 "--secret", "s3"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["campaign"] == "top" and "secret" not in added
    assert main(["webhooks", "list"]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [added["id"]]
    for url in ("file:///etc/passwd", "ftp://x/y", "javascript:alert(1)", "http:///nohost"):
        assert main(["webhooks", "add", "--monitor", "m1", "--url", url, "--secret", "s"]) == 2
        assert "http:// or https://" in capsys.readouterr().err
    for url, reason in (("http://127.0.0.1:6379/", "loopback address 127.0.0.1"),
                        ("http://169.254.169.254/", "link-local address 169.254.169.254"),
                        ("http://2130706433/", "four decimal numbers"), ("http://a.example/a b", "a space")):
        assert main(["webhooks", "add", "--monitor", "m1", "--url", url, "--secret", "s"]) == 2
        assert reason in capsys.readouterr().err
    monkeypatch.setenv("LIVEFLEET_WEBHOOK_ALLOW", "127.0.0.1:8765")  # the operator allows one local receiver
    assert main(["webhooks", "add", "--monitor", "m1", "--url", "http://127.0.0.1:8765/h", "--secret", "s"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["webhooks", "remove", "--id", local["id"]]) == 0
    assert main(["webhooks", "enable"]) == 2
    capsys.readouterr()
    assert main(["webhooks", "add", "--url", "https://a.example/", "--secret", "s"]) == 2
    assert "either a campaign or a monitor" in capsys.readouterr().err
    assert main(["webhooks", "remove", "--id", added["id"]]) == 0
    capsys.readouterr()
    assert main(["webhooks", "list"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["webhooks", "failures"]) == 0
    assert capsys.readouterr().out == ""
