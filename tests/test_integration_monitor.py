"""A monitor follows a sandbox room through going live, a growing shelf and its end, across a worker restart.

Taobao's sandbox world is moved on demand with its clock (frozen, then jumped
forward): the test first walks the world to find a room that is off, then
live, then live with more items on its shelf, then ended, rewinds, and replays
those moments while a real ``livefleet worker`` serves a 1-second monitor.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from pymongo import MongoClient

from crawlers.monitor.registry import Registry
from sandbox.process import SandboxProcess, start_sandbox
from tests.crawl_helpers import Fleet, wait_for

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]

STEP_MIN = 5


@dataclass(frozen=True)
class Plan:
    """World minutes (from the sandbox's start) at which one room changes."""

    live_id: str
    off: int
    live: int
    more: int
    ended: int
    shelf_live: int
    shelf_more: int


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SandboxProcess, Plan]]:
    with start_sandbox("--platforms", "taobao", "--time-scale", "0", "--no-chaos", "--no-faults",
                       "--streamers", "8") as sandbox:
        yield sandbox, _plan(sandbox)


def _plan(sandbox: SandboxProcess) -> Plan:
    """Walk the world forward in STEP_MIN steps until one room goes off -> live -> more items -> ended."""
    history: dict[str, list[tuple[int, int, int]]] = {}
    minute = 0
    try:
        while minute < 3000:
            for live in sandbox.truth("taobao")["lives"]:
                rows = history.setdefault(live["liveId"], [])
                rows.append((minute, live["roomStatus"], live["curItemNum"]))
                plan = _find(live["liveId"], rows)
                if plan is not None:
                    return plan
            sandbox.clock(advance_seconds=STEP_MIN * 60)
            minute += STEP_MIN
        raise AssertionError("no room of the sandbox went live, grew its shelf and ended")
    finally:
        sandbox.clock(advance_seconds=-minute * 60)  # back to the start


def _find(live_id: str, rows: list[tuple[int, int, int]]) -> Plan | None:
    for i in range(1, len(rows)):
        if rows[i][1] == 1 and rows[i - 1][1] != 1:
            live = rows[i]
            more = next((r for r in rows[i:] if r[1] == 1 and r[2] > live[2]), None)
            end = next((r for r in rows[i:] if r[1] != 1), None)
            if more is not None and end is not None and more[0] < end[0]:
                return Plan(live_id, rows[i - 1][0], live[0], more[0], end[0], live[2], more[2])
    return None


def _at(sandbox: SandboxProcess, now: list[int], minute: int) -> None:
    sandbox.clock(advance_seconds=(minute - now[0]) * 60)
    now[0] = minute


def test_monitor_follows_a_room_live_shelf_end_across_a_restart(tmp_path, world, redis_server, mongo_server):
    sandbox, plan = world
    now = [0]
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="taobao")
    client = redis_lib.Redis.from_url(redis_server.url)
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    db = mongo[fleet.db_name]
    registry = Registry(client, fleet.prefix)
    try:
        _at(sandbox, now, plan.off)
        monitor = registry.add("taobao", f"https://tbzb.taobao.com/live?liveId={plan.live_id}", "1s", "10m")
        fleet.start(1, idle_close=0)
        room = {"platform": "taobao", "room_id": plan.live_id}

        # Off: snapshots of a room that is not live, no stream seen yet.
        wait_for("two snapshots of the room while off", lambda: db.room_snapshots.count_documents(room) >= 2)
        assert {s.get("status") for s in db.room_snapshots.find(room)} - {None} <= {"ended", "offline"}
        assert not db.rooms.find_one(room).get("stream_started_seen_at")

        # Live: the monitor notices the start; the shelf is stored with the room's snapshots.
        _at(sandbox, now, plan.live)
        started = wait_for("the stream start", lambda: (db.rooms.find_one(room) or {}).get("stream_started_seen_at"))
        wait_for("the live shelf", lambda: len(_shelf(db, plan.live_id)) >= plan.shelf_live)
        assert db.room_snapshots.count_documents({**room, "status": "live"}) >= 1
        assert db.products.count_documents({"platform": "taobao"}) >= plan.shelf_live

        # A worker restart loses nothing: a new worker serves the same monitor.
        os.kill(fleet.procs[0].pid, signal.SIGKILL)
        fleet.procs[0].wait()
        ticks_before = registry.get(monitor.id).ticks
        _at(sandbox, now, plan.more)
        fleet.start(1, idle_close=0)
        wait_for("the grown shelf", lambda: len(_shelf(db, plan.live_id)) >= plan.shelf_more)
        wait_for("ticks served by the new worker", lambda: registry.get(monitor.id).ticks > ticks_before + 2)

        # The end: noticed once, the start kept as it was seen.
        _at(sandbox, now, plan.ended)
        ended = wait_for("the stream end", lambda: (db.rooms.find_one(room) or {}).get("stream_ended_seen_at"))
        doc = db.rooms.find_one(room)
        assert ended > started and doc["stream_started_seen_at"] == started
        events = [e["event"] for e in registry.get(monitor.id).events]
        assert events.count("stream_started") == 1 and events.count("stream_ended") == 1
        assert registry.get(monitor.id).last_status in ("ended", "offline")

        # Only the room, its counts and its shelf were fetched: no product detail pages.
        endpoints = " ".join(sandbox.stats()["endpoints"])
        assert "itemlist" in endpoints and "getdetail" not in endpoints, endpoints

        # Stopped: no more ticks.
        registry.stop(monitor.id)
        time.sleep(1.5)
        ticks = registry.get(monitor.id).ticks
        time.sleep(2.5)
        assert registry.get(monitor.id).ticks == ticks
        assert registry.get(monitor.id).state == "stopped"
    finally:
        fleet.stop()
        _at(sandbox, now, 0)
        client.close()
        mongo.close()


def _shelf(db: Any, live_id: str) -> set[str]:
    """Products seen on the room's shelf in its snapshots."""
    return {s["product_id"] for s in db.product_snapshots.find({"platform": "taobao", "room_id": live_id})}
