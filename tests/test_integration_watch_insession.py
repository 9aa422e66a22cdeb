"""Alerts during a watched broadcast, from its live session: listed, delisted, price cuts, viewers; and
``stream_ended`` waiting for the session builder's summary."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crawlers.redis.keys import FleetKeys
from crawlers.watch import lists, subscribing
from crawlers.watch.service import Watcher

pytestmark = pytest.mark.integration

SECRET = "insession-secret"


def _publish(client, prefix: str, collection: str, doc: dict[str, Any]) -> None:
    client.xadd(FleetKeys(prefix).feed(collection),
                {"doc": json.dumps(doc), "op": "update", "at": datetime.now(UTC).isoformat()})


def _room(status: str, at: datetime, started: datetime | None) -> dict[str, Any]:
    return {"type": "room", "platform": "bilibili", "room_id": "5001", "streamer_id": "1001", "status": status,
            "started_at": started.isoformat() if started else None, "fetched_at": at.isoformat(),
            "viewers_now": 100}


def _drain(watcher: Watcher) -> None:
    for _ in range(5):
        watcher.sync()
        watcher.observe(count=50)


def _events(client, prefix: str, sub: str) -> list[tuple[str, Any]]:
    out = []
    for raw in client.lrange(FleetKeys(prefix).alert_outbox(sub), 0, -1):
        alert = json.loads(raw)["alert"]
        out.append((alert["event"], alert["data"].get("product_id") or alert["data"].get("threshold")))
    return out


@pytest.fixture
def live(redis_client, mongo_db):
    """A watched Bilibili streamer seen live; two subscribers with different filters."""
    prefix = f"wi{uuid.uuid4().hex[:8]}"
    lists.add_entries(redis_client, prefix, "evening", ["https://space.bilibili.com/1001"], platform="bilibili")
    every = subscribing.add_subscriber(redis_client, prefix, "evening", "webhook", "http://127.0.0.1:9/hook", SECRET,
                                       viewers_thresholds="1000,5000", allow="127.0.0.1")
    picky = subscribing.add_subscriber(redis_client, prefix, "evening", "webhook", "http://127.0.0.1:9/other", SECRET,
                                       events="price_cut,stream_ended", price_cut_pct=30, allow="127.0.0.1")
    watcher = Watcher(redis_client, prefix, mongo_db, platforms=["bilibili"], check_interval=5, consumer="w0",
                      deliver=False)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    _publish(redis_client, prefix, "rooms", _room("live", datetime.now(UTC), start))
    _drain(watcher)
    record = json.loads(redis_client.get(FleetKeys(prefix).watch_live("bilibili:streamer:1001")))
    assert record["phase"] == "live"
    return {"prefix": prefix, "watcher": watcher, "every": every, "picky": picky, "record": record, "start": start}


def _session(record: dict[str, Any], start: datetime, **changes: Any) -> dict[str, Any]:
    doc = {"platform": "bilibili", "session_id": record["session_id"], "room_id": "5001", "streamer_id": "1001",
           "status": "live", "viewers_peak": 1200, "last_seen_live_at": start + timedelta(minutes=9),
           "estimator_version": "1.0.0",
           "shelf_events": [
               {"at": start + timedelta(minutes=2), "product_id": "p1", "event": "listed", "price_after": 59.9},
               {"at": start + timedelta(minutes=3), "product_id": "p2", "event": "price_changed",
                "price_before": 100.0, "price_after": 79.0},
           ]}
    doc.update(changes)
    return doc


def test_shelf_and_viewer_alerts_reach_each_subscriber_once_as_it_asked(live, redis_client, mongo_db):
    prefix, watcher, record, start = live["prefix"], live["watcher"], live["record"], live["start"]
    mongo_db.live_sessions.insert_one(_session(record, start))
    mongo_db.products.insert_one({"platform": "bilibili", "product_id": "p1", "title": "保温杯"})
    watcher.session_alerts()
    watcher.session_alerts()  # again: nothing new
    assert _events(redis_client, prefix, live["every"]) == [
        ("stream_started", None), ("product_listed", "p1"), ("price_cut", "p2"), ("viewers_crossed", 1000)]
    assert _events(redis_client, prefix, live["picky"]) == [], "a 21% cut is below its 30%"
    listed = json.loads(redis_client.lrange(FleetKeys(prefix).alert_outbox(live["every"]), 1, 1)[0])
    assert listed["alert"]["data"]["title"] == "保温杯"
    # the session goes on: a deeper cut, a delisting, a bigger audience
    events = _session(record, start)["shelf_events"] + [
        {"at": start + timedelta(minutes=8), "product_id": "p3", "event": "price_changed", "price_before": 100.0,
         "price_after": 50.0},
        {"at": start + timedelta(minutes=9), "product_id": "p1", "event": "delisted", "price_before": 59.9}]
    mongo_db.live_sessions.update_one({"session_id": record["session_id"]},
                                      {"$set": {"shelf_events": events, "viewers_peak": 6000}})
    watcher.session_alerts()
    assert _events(redis_client, prefix, live["every"])[4:] == [
        ("price_cut", "p3"), ("product_delisted", "p1"), ("viewers_crossed", 5000)]
    assert _events(redis_client, prefix, live["picky"]) == [("price_cut", "p3")]


def test_stream_ended_waits_for_the_session_builder_to_close_the_session(live, redis_client, mongo_db):
    prefix, watcher, record, start = live["prefix"], live["watcher"], live["record"], live["start"]
    mongo_db.live_sessions.insert_one(_session(record, start, shelf_events=[]))
    _publish(redis_client, prefix, "rooms", _room("offline", datetime.now(UTC) + timedelta(seconds=1), None))
    _drain(watcher)
    keys = FleetKeys(prefix)
    waiting = json.loads(redis_client.get(keys.watch_live("bilibili:streamer:1001")))
    assert waiting["phase"] == "ending" and waiting["awaiting"] is True
    assert [e for e, _ in _events(redis_client, prefix, live["every"])] == ["stream_started"]
    mongo_db.live_sessions.update_one({"session_id": record["session_id"]},
                                      {"$set": {"status": "ended", "duration_s": 600.0, "gmv_estimate": 1234.5,
                                                "gmv_low": 1000.0, "gmv_high": 1500.0}})
    redis_client.set(keys.watch_live("bilibili:streamer:1001"), json.dumps({**waiting, "phase_ms": 0}))
    watcher.sweep()
    assert redis_client.get(keys.watch_live("bilibili:streamer:1001")) is None
    outbox = [json.loads(x)["alert"] for x in redis_client.lrange(keys.alert_outbox(live["picky"]), 0, -1)]
    (ended,) = [a for a in outbox if a["event"] == "stream_ended"]
    assert ended["data"]["duration_s"] == 600.0 and ended["data"]["gmv_estimate"] == 1234.5
    assert ended["data"]["gmv_low"] == 1000.0 and ended["data"]["peak_viewers"] == 1200


def test_a_tier_changed_while_live_changes_the_monitors_interval(live, redis_client):
    from crawlers.monitor.registry import Registry

    prefix, watcher, record = live["prefix"], live["watcher"], live["record"]
    registry = Registry(redis_client, prefix)
    assert registry.get(record["monitor_id"]).every_s == 60.0  # normal
    lists.add_entries(redis_client, prefix, "evening", ["https://space.bilibili.com/1001"], tier="hot")
    watcher.sync()
    watcher.sweep()
    assert registry.get(record["monitor_id"]).every_s == 30.0
    assert json.loads(redis_client.get(FleetKeys(prefix).watch_live("bilibili:streamer:1001")))["every_s"] == 30.0
