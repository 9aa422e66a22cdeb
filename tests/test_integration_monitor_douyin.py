"""A monitor of a live Douyin streamer's *profile* stores their room's snapshots and shelf, and the end.

Douyin's profile names the session's 19-digit room_id, not the web_rid of the
room page; the spider reaches the room at ``live.douyin.com/<unique_id>`` (the
streamer's handle), rendered in Chromium as every room page, then its shelf. A
real ``livefleet worker`` serves a 2-second monitor against a frozen sandbox.
Then the sandbox clock jumps to the end of the stream: the profile, no longer
live, leads to no room page, and its capture alone records the end on the room.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import pytest
import redis as redis_lib
from pymongo import MongoClient

from crawlers.monitor.registry import Registry
from sandbox.process import SandboxProcess, start_sandbox
from tests.crawl_helpers import Fleet, wait_for

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]

#: World minutes between looks at the sandbox while looking for a stream's end (sessions are whole
#: slots of 60 minutes or more, so no offline gap is stepped over).
STEP_MIN = 15


def _live_streamer(sandbox: SandboxProcess) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], int]:
    """A live streamer with a shelf of one page (the smallest) whose stream ends within three world days:
    the streamer, their room, its shelf, and the first world minute at which that session is over."""
    truth = sandbox.truth("douyin")
    streamers = {s["uid"]: s for s in truth["streamers"]}
    rooms = {r["web_rid"]: r for r in truth["rooms"]
             if r["status"] == 2 and 0 < len(truth["shelves"].get(r["web_rid"], [])) <= 20}
    assert rooms, "the sandbox has no live room with a short shelf"
    ends: dict[str, int] = {}
    minute = 0
    try:
        while minute < 3 * 1440 and len(ends) < len(rooms):
            sandbox.clock(advance_seconds=STEP_MIN * 60)
            minute += STEP_MIN
            for later in sandbox.truth("douyin")["rooms"]:
                if later["web_rid"] in rooms and later["web_rid"] not in ends and later["status"] != 2:
                    assert later["id_str"] == rooms[later["web_rid"]]["id_str"], "a new session began unseen"
                    ends[later["web_rid"]] = minute
    finally:
        sandbox.clock(advance_seconds=-minute * 60)  # back to the start
    assert ends, "no live room with a short shelf ends within three world days"
    room = min((rooms[w] for w in ends), key=lambda r: (len(truth["shelves"][r["web_rid"]]), ends[r["web_rid"]]))
    return streamers[room["owner_user_id_str"]], room, truth["shelves"][room["web_rid"]], ends[room["web_rid"]]


def _paused_between_ticks(sandbox: SandboxProcess, worker: subprocess.Popen[bytes], fleet: Fleet,
                          timeout: float = 30) -> dict[str, int]:
    """Stop ``worker`` (SIGSTOP) at a moment when every profile it fetched has had its room page's
    state (the enter API) served, so no room page of a live profile is still to come; the sandbox's
    endpoint counts then. The caller sends SIGCONT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(0.3)  # requests already on the wire land
        endpoints = sandbox.stats()["endpoints"]
        if endpoints.get("douyin:profile", 0) == endpoints.get("douyin:enter", 0):
            return endpoints
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.2)
    raise AssertionError(f"no moment between ticks\n{sandbox.stats()['endpoints']}\n{fleet.log(0)[-4000:]}")


def test_a_profile_monitor_stores_the_live_room_and_its_shelf(tmp_path, redis_server, mongo_server):
    with start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos", "--no-faults",
                       "--streamers", "8") as sandbox:
        streamer, room, shelf, end_minute = _live_streamer(sandbox)
        fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="douyin")
        client = redis_lib.Redis.from_url(redis_server.url)
        mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
        db = mongo[fleet.db_name]
        registry = Registry(client, fleet.prefix)

        def log() -> str:
            return fleet.log(0)[-4000:]

        try:
            monitor = registry.add("douyin", f"https://www.douyin.com/user/{streamer['sec_uid']}", "2s", "10m")
            assert monitor.seed["follow"] == ["rooms", "products"]
            fleet.start(1, idle_close=0)
            key = {"platform": "douyin", "room_id": room["id_str"]}
            items = {item["product_id"] for item in shelf}

            wait_for("two live snapshots of the streamer's room",
                     lambda: db.room_snapshots.count_documents({**key, "status": "live"}) >= 2, 90, detail=log)
            wait_for("the shelf seen on two ticks", lambda: all(
                db.product_snapshots.count_documents({**key, "product_id": p}) >= 2 for p in items), 90, detail=log)

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
            started = stored["stream_started_seen_at"]
            assert started and "stream_ended_seen_at" not in stored

            # The stream ends. Between ticks, the world jumps to the end: the profile (room_id 0) leads to no
            # room page, and its capture alone records the end on the room the monitor last saw live.
            worker = fleet.procs[0]
            at_end = _paused_between_ticks(sandbox, worker, fleet)
            try:
                before = db.rooms.find_one(key, {"_id": 0})
                sandbox.clock(advance_seconds=end_minute * 60)
            finally:
                os.kill(worker.pid, signal.SIGCONT)
            ended = wait_for("the stream end on the room",
                             lambda: (db.rooms.find_one(key) or {}).get("stream_ended_seen_at"), 30, detail=log)
            after = db.rooms.find_one(key, {"_id": 0})
            endpoints = sandbox.stats()["endpoints"]
            assert endpoints["douyin:profile"] > at_end["douyin:profile"], endpoints
            assert endpoints.get("douyin:enter", 0) == at_end.get("douyin:enter", 0), "a room page said it"
            assert ended > started and after["stream_started_seen_at"] == started
            # The partial Room set the end and its capture time, nothing else: status is what the room page said.
            moved = {"stream_ended_seen_at", "fetched_at", "last_seen_at"}
            assert {k: v for k, v in after.items() if k not in moved} == \
                   {k: v for k, v in before.items() if k not in moved}
            assert after["status"] == "live" and after["fetched_at"] == ended
            events = [e["event"] for e in registry.get(monitor.id).events]
            assert events.count("stream_started") == 1 and events.count("stream_ended") == 1, events
            assert registry.get(monitor.id).last_status == "offline"
            wait_for("the profile stored as not live", lambda: db.streamers.find_one(
                {"platform": "douyin", "streamer_id": streamer["uid"], "is_live": False}), 10, detail=log)
        finally:
            fleet.stop()
            client.close()
            mongo.close()
