"""A monitor of a live Douyin streamer's *profile* stores their room's snapshots and shelf.

Douyin's profile names the session's 19-digit room_id, not the web_rid of the
room page; the spider reaches the room at ``live.douyin.com/<unique_id>`` (the
streamer's handle), rendered in Chromium as every room page, then its shelf. A
real ``livefleet worker`` serves a 2-second monitor against a frozen sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis as redis_lib
from pymongo import MongoClient

from crawlers.monitor.registry import Registry
from crawlers.sandbox_process import start_sandbox
from tests.crawl_helpers import Fleet


def _wait(what: str, check: Callable[[], Any], fleet: Fleet, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{fleet.log(0)[-4000:]}")


def _live_streamer(truth: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """A live streamer with a shelf of one page (the smallest), their room and shelf."""
    streamers = {s["uid"]: s for s in truth["streamers"]}
    rooms = [r for r in truth["rooms"] if r["status"] == 2 and 0 < len(truth["shelves"].get(r["web_rid"], [])) <= 20]
    assert rooms, "the sandbox has no live room with a short shelf"
    room = min(rooms, key=lambda r: len(truth["shelves"][r["web_rid"]]))
    return streamers[room["owner_user_id_str"]], room, truth["shelves"][room["web_rid"]]


def test_a_profile_monitor_stores_the_live_room_and_its_shelf(tmp_path, redis_server, mongo_server):
    with start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos", "--no-faults",
                       "--streamers", "8") as sandbox:
        streamer, room, shelf = _live_streamer(sandbox.truth("douyin"))
        fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="douyin")
        client = redis_lib.Redis.from_url(redis_server.url)
        mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
        db = mongo[fleet.db_name]
        registry = Registry(client, fleet.prefix)
        try:
            monitor = registry.add("douyin", f"https://www.douyin.com/user/{streamer['sec_uid']}", "2s", "10m")
            assert monitor.seed["follow"] == ["rooms", "products"]
            fleet.start(1, idle_close=0)
            key = {"platform": "douyin", "room_id": room["id_str"]}
            items = {item["product_id"] for item in shelf}

            _wait("two live snapshots of the streamer's room",
                  lambda: db.room_snapshots.count_documents({**key, "status": "live"}) >= 2, fleet)
            _wait("the shelf seen on two ticks", lambda: all(
                db.product_snapshots.count_documents({**key, "product_id": p}) >= 2 for p in items), fleet)

            # Reached by handle: the page echoes the handle where a web_rid would be, and that is not kept.
            stored = db.rooms.find_one(key)
            assert stored["streamer_id"] == streamer["uid"] and stored["status"] == "live"
            assert "web_rid" not in stored, stored.get("web_rid")
            profile = db.streamers.find_one({"platform": "douyin", "streamer_id": streamer["uid"]})
            assert profile["handle"] == streamer["unique_id"] and profile["is_live"] is True
            assert {p["product_id"] for p in db.products.find({"platform": "douyin"})} == items

            # Nothing beyond the profile, the room and its shelf was fetched (no product details).
            endpoints = sandbox.stats()["endpoints"]
            assert endpoints["douyin:room_page"] >= 2 and endpoints["douyin:promotions"] >= 2, endpoints
            assert not any("product_detail" in name for name in endpoints), endpoints
            assert registry.get(monitor.id).last_status == "live"
        finally:
            fleet.stop()
            client.close()
            mongo.close()
