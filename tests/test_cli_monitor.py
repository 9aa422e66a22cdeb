"""``livefleet monitor add|list|stop`` and the registry's claims (real Redis, no worker)."""

from __future__ import annotations

import json
import os
import time

import pytest

from crawlers.cli.main import main
from crawlers.feeds.webhooks import list_webhooks
from crawlers.monitor.registry import Registry, parse_duration
from tests.crawl_helpers import wait_for

pytestmark = pytest.mark.integration


def test_add_list_stop(cli_env, capsys):
    assert main(["monitor", "add", "douyin", "https://live.douyin.com/604946797621", "--every", "30s",
                 "--for", "6h", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["target"] == {"platform": "douyin", "kind": "room", "id": "604946797621",
                               "url": "https://live.douyin.com/604946797621"}
    assert added["seed"] == {"kind": "room", "web_rid": "604946797621", "follow": ["products"]}
    assert added["every_s"] == 30 and added["state"] == "active" and added["webhook"] is None
    assert cli_env.zscore("clitest:monitors:due:douyin", added["id"]) is not None  # due at once

    hook = ["monitor", "add", "bilibili", "5440", "--every", "1m", "--for", "1d", "--webhook", "https://hooks.example.com/x"]
    assert main(hook) == 2  # a webhook needs the secret its deliveries are signed with
    assert "LIVEFLEET_WEBHOOK_SECRET" in capsys.readouterr().err
    os.environ["LIVEFLEET_WEBHOOK_SECRET"] = "shh"
    try:
        assert main(hook) == 0
    finally:
        del os.environ["LIVEFLEET_WEBHOOK_SECRET"]
    assert "every 60s" in capsys.readouterr().out
    (subscription,) = list_webhooks(cli_env, "clitest")  # the webhook follows that monitor, signed with the secret
    assert subscription.url == "https://hooks.example.com/x" and subscription.secret == "shh"
    assert subscription.monitor == Registry(cli_env, "clitest").list()[-1].id
    assert main(["monitor", "list"]) == 0
    table = capsys.readouterr().out
    assert added["id"] in table and "room:604946797621" in table and "room:5440" in table

    assert main(["monitor", "stop", added["id"]]) == 0
    assert capsys.readouterr().out == f"monitor {added['id']}: stopped\n"
    assert main(["monitor", "list", "--json"]) == 0
    listed = {m["id"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed[added["id"]]["state"] == "stopped" and len(listed) == 2
    assert cli_env.zscore("clitest:monitors:due:douyin", added["id"]) is None


@pytest.mark.parametrize(("args", "message"), [
    (["douyin", "https://v.douyin.com/iRNBho6u/"], "short link"),
    (["douyin", "http://127.0.0.1/604946797621"], "local or IP address"),
    (["douyin", "file:///etc/passwd"], "not file: URLs"),
    (["douyin", "https://douyin.com.evil.io/604946797621"], "not a douyin host"),
    (["douyin", "604946797621", "--every", "0.1s"], "at least 1s"),
    (["douyin", "604946797621", "--every", "soon"], "not a duration"),
    (["douyin", "604946797621", "--for", "0s"], "must be positive"),
    (["douyin", "604946797621", "--webhook", "ftp://x/y"], "--webhook must be an http(s) URL"),
])
def test_refused_adds_store_nothing(cli_env, capsys, args, message):
    assert main(["monitor", "add", *args]) == 2
    assert message in capsys.readouterr().err
    assert cli_env.keys("clitest:*") == []


def test_stop_unknown(cli_env, capsys):
    assert main(["monitor", "stop", "mnope"]) == 2
    assert "no monitor 'mnope'" in capsys.readouterr().err


def test_durations():
    assert [parse_duration(t) for t in ("30s", "5m", "6h", "1d", "1h30m", "2.5", "0.5m")] == [
        30, 300, 21600, 86400, 5400, 2.5, 30]
    for bad in ("", "h", "5x", "1h 30m", "-"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_claims_are_atomic_late_ticks_reported_and_expired_monitors_stop(redis_client):
    registry = Registry(redis_client, "claimtest")
    monitor = registry.add("taobao", "523417747786", every=2, for_=10)  # margins of 1s+
    first = registry.claim("taobao")
    assert [(c["id"], c["tick"], c["send"], c["reason"]) for c in first] == [(monitor.id, 1, True, False)]
    assert first[0]["seed"] == {"kind": "room", "live_id": "523417747786", "follow": ["products"]}
    assert registry.claim("taobao") == [] and registry.claim("douyin") == []  # claimed once, by its platform

    # The next slot comes while tick 1 is unanswered: late, reported, skipped (not piled on).
    time.sleep(2.1)
    second = registry.claim("taobao")
    assert second[0]["send"] is False and second[0]["reason"] == "previous tick unanswered"
    registry.answer(monitor.id, 1)
    # Claimed over an interval late after an answer: late, one slot skipped, sent.
    time.sleep(4.4)
    third = registry.claim("taobao")
    assert third[0]["send"] is True and third[0]["skipped"] == 1 and "late" in third[0]["reason"]
    state = registry.get(monitor.id)
    assert (state.ticks, state.late) == (2, 2) and state.last_late_reason == third[0]["reason"]
    assert [e["event"] for e in state.events] == ["late", "late"]
    assert "LATE 2 of 2 ticks" in _table(registry)

    wait_for("the monitor's end", lambda: registry.get(monitor.id).state == "expired", 10, interval=0.05)
    assert registry.claim("taobao") == [{"id": monitor.id, "expired": True}]
    assert registry.get(monitor.id).state == "expired"
    assert redis_client.zcard("claimtest:monitors:due:taobao") == 0


def test_status_changes_are_ordered_by_capture_time(redis_client):
    from datetime import UTC, datetime, timedelta

    registry = Registry(redis_client, "statustest")
    monitor = registry.add("bilibili", "5440", every=5, for_=60)
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    assert registry.observe_status(monitor.id, "offline", t0) == ""
    assert registry.observe_status(monitor.id, "live", t0 + timedelta(seconds=5)) == "offline"
    assert registry.observe_status(monitor.id, "offline", t0 + timedelta(seconds=2)) is None  # out of order
    assert registry.observe_status(monitor.id, "live", t0 + timedelta(seconds=10)) == "live"
    assert registry.observe_status(monitor.id, "ended", t0 + timedelta(seconds=15)) == "live"
    events = registry.get(monitor.id).events
    assert [(e["event"], e["previous"]) for e in events] == [("stream_ended", "live"), ("stream_started", "offline")]


def _table(registry: Registry) -> str:
    from crawlers.cli.monitor import format_table

    return format_table(registry.list())
