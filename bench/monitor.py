"""Monitors: how soon the first snapshot lands, and how evenly 50 monitors keep their interval.

One ``livefleet worker`` process (Taobao's spider: plain HTTP, every tick is a
live_detail page, its counts and its shelf) runs against a frozen, chaos-free,
fault-free sandbox, with its own embedded Redis and SecantusDB. The fleet's
rate limits for Taobao are off (``LIVEFLEET_RATE_TAOBAO=0``,
``LIVEFLEET_FLEET_RATE_TAOBAO=0``), so what is measured is the monitor's own
scheduling, not the politeness the fleet adds for the real site.

* ``monitor_first_snapshot_s``: from ``Registry.add`` (what ``livefleet monitor
  add`` calls) to the monitor's first room_snapshot stored in MongoDB, with the
  worker already running; the largest of ``FIRST_RUNS`` monitors on different
  rooms, each one alone (target <= 5). MongoDB is polled every 50 ms.
* ``monitor_interval_jitter``: 50 monitors added at once, every ``EVERY_S``
  seconds, for ``JITTER_S`` seconds. For each monitor, the captured_at of its
  room's live_detail snapshots (the page the tick asked for) give the intervals
  ``dt``; the figure is the root mean square of ``(dt - every) / every`` over all
  intervals of all monitors (so a monitor that drifts slower counts, not only
  one that wobbles) (target <= 0.1). Beside it: the largest ``|dt - every| / every``,
  the intervals measured and the late ticks the registry counted.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from pymongo import MongoClient

from bench.machine import wait_for_quiet
from crawlers.cli.worker import worker_command
from crawlers.monitor.registry import Registry
from crawlers.services.lifecycle import owned_services
from sandbox.process import start_sandbox
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]
SPIDER = "taobao"
MONITORS = 50
EVERY_S = 3.0
JITTER_S = {False: 45.0, True: 24.0}
FIRST_RUNS = 3

Row = tuple[str, object, int]


def run(quick: bool, var_dir: Path, quiet_timeout: float, say: Callable[[str], None]) -> tuple[dict[str, float],
                                                                                                list[Row]]:
    var_dir.mkdir(parents=True, exist_ok=True)
    prefix, db_name = f"bm{uuid.uuid4().hex[:6]}", f"bench_monitor_{uuid.uuid4().hex[:6]}"
    with owned_services(var_dir / "services") as services, start_sandbox(
            "--platforms", SPIDER, "--time-scale", "0", "--no-chaos", "--no-faults",
            "--streamers", str(MONITORS + FIRST_RUNS + 2), log_path=var_dir / "sandbox.log") as sandbox:
        client = redis.Redis.from_url(services.redis_url)
        mongo: MongoClient[dict[str, Any]] = MongoClient(services.mongo_uri)
        db = mongo[db_name]
        registry = Registry(client, prefix)
        rooms = [live["liveId"] for live in sandbox.truth(SPIDER)["lives"]]
        env = child_environment(
            REDIS_URL=services.redis_url, MONGO_URI=services.mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url,
            LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_MONGO_DB=db_name, LIVEFLEET_VAR_DIR=str(var_dir),
            LIVEFLEET_LOG_LEVEL="INFO", LIVEFLEET_RATE_TAOBAO="0", LIVEFLEET_FLEET_RATE_TAOBAO="0")
        with (var_dir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(worker_command([SPIDER]), env=env, cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT)
        try:
            say("monitor: worker starting; a warm-up monitor until its first snapshot")
            warm = registry.add(SPIDER, rooms[-1], EVERY_S, 30)
            _first_snapshot(db, rooms[-1], 60, worker)
            registry.stop(warm.id)
            wait_for_quiet(quiet_timeout, "the first-snapshot runs")
            firsts = []
            for room in rooms[-1 - FIRST_RUNS:-1]:
                started = time.monotonic()
                monitor = registry.add(SPIDER, room, 30, 60)
                firsts.append(_first_snapshot(db, room, 30, worker) - started)
                registry.stop(monitor.id)
            say(f"monitor: {MONITORS} monitors every {EVERY_S:g}s for {JITTER_S[quick]:g}s")
            watched = rooms[:MONITORS]
            monitors = [registry.add(SPIDER, room, EVERY_S, JITTER_S[quick] + 5) for room in watched]
            time.sleep(JITTER_S[quick])
            for monitor in monitors:
                registry.stop(monitor.id)
            time.sleep(2)  # the last ticks' pages reach the store
            deviations = list(_deviations(db, watched, EVERY_S))
            late = sum(registry.get(m.id).late for m in monitors)  # type: ignore[union-attr]
            ticks = sum(registry.get(m.id).ticks for m in monitors)  # type: ignore[union-attr]
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            client.close()
            mongo.close()
    if not deviations:
        raise RuntimeError(f"monitor bench: no snapshot intervals measured (see {var_dir / 'worker.log'})")
    jitter = math.sqrt(statistics.fmean(d * d for d in deviations))
    figures = {"monitor_first_snapshot_s": max(firsts), "monitor_interval_jitter": jitter}
    rows: list[Row] = [
        ("monitor_first_snapshot_s", round(max(firsts), 2), 0),
        ("first_snapshot_s_each", " ".join(f"{x:.2f}" for x in firsts), 1),
        ("monitor_interval_jitter", round(jitter, 3), 0),
        ("interval_max_relative_deviation", round(max(abs(d) for d in deviations), 3), 1),
        ("interval_mean_s", round(EVERY_S * (1 + statistics.fmean(deviations)), 3), 1),
        ("intervals_measured", f"{len(deviations)} ({MONITORS} monitors every {EVERY_S:g}s)", 1),
        ("late_ticks", f"{late} of {ticks}", 1),
    ]
    return figures, rows


def _first_snapshot(db: Any, room: str, timeout: float, worker: subprocess.Popen[bytes]) -> float:
    """The monotonic time at which a room_snapshot of ``room`` is first seen in MongoDB."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.room_snapshots.find_one({"platform": SPIDER, "room_id": room}, {"_id": 1}):
            return time.monotonic()
        if worker.poll() is not None:
            raise RuntimeError(f"monitor bench: the worker exited ({worker.returncode})")
        time.sleep(0.05)
    raise RuntimeError(f"monitor bench: no snapshot of room {room} after {timeout:g}s")


def _deviations(db: Any, rooms: list[str], every: float) -> Iterator[float]:
    """``(dt - every) / every`` of each interval between a room's live_detail snapshots."""
    for room in rooms:
        times = sorted(doc["captured_at"] for doc in db.room_snapshots.find(
            {"platform": SPIDER, "room_id": room, "status": {"$exists": True}}, {"captured_at": 1}))
        for before, after in zip(times, times[1:], strict=False):
            yield ((after - before).total_seconds() - every) / every
