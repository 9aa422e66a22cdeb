"""Watching thousands of streamers: how soon a start is noticed and alerted, what a check costs, and how
many live rooms one worker keeps sampling.

* ``live_discovery_p95_s`` (target <= 70) and its median: ``WATCHED`` Bilibili streamers (2,000) in one
  watchlist, one ``livefleet worker --watch`` checking them every 60 world seconds against a sandbox
  whose world runs ``SCALE`` times faster than the wall clock (so a 60 s interval is ``60 / SCALE`` wall
  seconds and a run of ``RUN_WORLD_MIN`` world minutes takes a few wall minutes). For every broadcast
  that starts during the run (from the sandbox's own deterministic world), the latency is the first
  room_snapshot of its room stored (the feed message's Redis time, written after MongoDB took it)
  minus the moment the platform first shows the room live, in world seconds. Starts the fleet never
  noticed are counted (``live_discovery_missed``). The sandbox's rooms turn live on a minute boundary
  while their ``live_time`` names a second up to 59 s earlier (real starts are not on minute
  boundaries); the figure measured from ``live_time`` is printed beside it.
* ``alert_latency_p95_s`` (target <= 75) and its median: from the same moment to the arrival of the
  ``stream_started`` alert at a local webhook receiver.
* ``watch_requests_per_account_hour_<platform>``: requests the platform sees per watched account and
  hour while the account is offline, at a 60 s interval (Bilibili from the run above; Douyin, Kuaishou
  and Taobao from ``COST_ACCOUNTS`` offline accounts checked ``COST_ROUNDS`` times, frozen world).
* ``monitors_per_worker`` (target >= 1,000): the most monitors at a 60 s cadence one worker keeps with
  ``monitor_interval_jitter`` <= 0.1 (the RMS relative deviation of each room's snapshot intervals from
  60 s), Taobao rooms, platform rate limits off (``LIVEFLEET_RATE_TAOBAO=0``: not what is measured).
  Each level adds its monitors spread over one interval (as starts arrive), waits one interval, and
  measures ``LEVEL_MEASURE_S``; the levels stop at the first that fails.

In the discovery run the monitors the watcher starts are not served (``LIVEFLEET_MONITORS_ENABLED=0``):
the first snapshot of a start is the check's own, which is what discovery means; serving a thousand
monitors is the third figure's subject.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
from pymongo import MongoClient

from bench.machine import wait_for_quiet
from crawlers.cli.worker import stop_worker, worker_command
from crawlers.monitor.registry import Registry
from crawlers.redis.keys import FleetKeys
from crawlers.services.lifecycle import owned_services
from crawlers.watch import lists, subscribing
from sandbox.bilibili.world import BiliWorld
from sandbox.process import SandboxProcess, start_sandbox
from sandbox.world import DEFAULT_START
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
Row = tuple[str, object, int]
Say = Callable[[str], None]
Emit = Callable[[list[Row]], None]

#: Watched streamers, world seconds per wall second, world minutes run (full, quick).
WATCHED = {False: 2000, True: 600}
SCALE = {False: 3.0, True: 6.0}
RUN_WORLD_MIN = {False: 20, True: 8}
INTERVAL_WORLD_S = 60.0
COST_ACCOUNTS = 20
COST_ROUNDS = 3
COST_INTERVAL_S = 4.0
#: monitors_per_worker: the levels tried, the cadence, and the seconds measured per level.
LEVELS = {False: (500, 1000, 1500), True: (100, 200)}
MONITOR_EVERY_S = {False: 60.0, True: 20.0}
LEVEL_MEASURE_S = {False: 120.0, True: 45.0}
JITTER_LIMIT = 0.1


def run(quick: bool, var_dir: Path, quiet_timeout: float, say: Say, emit: Emit) -> dict[str, float]:
    """Measure the three phases; each phase's rows go to ``emit`` as soon as they are measured (a full run
    takes half an hour, and a later phase's failure must not lose an earlier phase's figures)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    wait_for_quiet(quiet_timeout, "the live discovery run")
    found, rows = _discovery(quick, var_dir / "discovery", say)
    figures.update(found)
    emit(rows)
    wait_for_quiet(quiet_timeout, "the check costs")
    emit(_check_costs(var_dir / "costs", say))
    wait_for_quiet(quiet_timeout, "the monitors per worker levels")
    found, rows = _monitors_per_worker(quick, var_dir / "monitors", say)
    figures.update(found)
    emit(rows)
    return figures


# -- a webhook receiver ---------------------------------------------------------------------------------------


@contextmanager
def _receiver() -> Iterator[tuple[str, list[tuple[float, dict[str, Any]]]]]:
    """A local webhook receiver recording each alert with its arrival (wall) time."""
    got: list[tuple[float, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append((time.time(), json.loads(body or b"{}")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def _worker(spider: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A ``livefleet worker --watch`` that serves no monitor (``-s LIVEFLEET_MONITORS_ENABLED=0``)."""
    with log.open("wb") as out:
        return subprocess.Popen(worker_command([spider], watch=True, settings={"LIVEFLEET_MONITORS_ENABLED": "0"}),
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _wait(what: str, check: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise RuntimeError(f"watch bench: the worker exited ({proc.returncode}) waiting for {what}")
        time.sleep(0.5)
    raise RuntimeError(f"watch bench: no {what} after {timeout:g}s")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# -- live discovery and alert latency ---------------------------------------------------------------------------


def _discovery(quick: bool, var_dir: Path, say: Say) -> tuple[dict[str, float], list[Row]]:
    var_dir.mkdir(parents=True, exist_ok=True)
    n, scale, run_min = WATCHED[quick], SCALE[quick], RUN_WORLD_MIN[quick]
    interval_wall = INTERVAL_WORLD_S / scale
    prefix, db_name = f"bw{uuid.uuid4().hex[:6]}", f"bench_watch_{uuid.uuid4().hex[:6]}"
    with owned_services(var_dir / "services") as services, start_sandbox(
            "--platforms", "bilibili", "--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", str(n),
            log_path=var_dir / "sandbox.log") as sandbox, _receiver() as (hook, alerts):
        client = redis.Redis.from_url(services.redis_url)
        mongo: MongoClient[dict[str, Any]] = MongoClient(services.mongo_uri)
        uids = sorted({str(r["uid"]) for r in sandbox.truth("bilibili")["rooms"]}, key=int)
        lists.import_file(client, prefix, "bench", [f"https://space.bilibili.com/{u}" for u in uids],
                          source_name="bench", platform="bilibili")
        subscribing.add_subscriber(client, prefix, "bench", "webhook", hook, "bench-secret", events="stream_started",
                                   allow="127.0.0.0/8")
        env = child_environment(
            REDIS_URL=services.redis_url, MONGO_URI=services.mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url,
            LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_MONGO_DB=db_name, LIVEFLEET_VAR_DIR=str(var_dir),
            LIVEFLEET_LOG_LEVEL="INFO", LIVEFLEET_WATCH_INTERVAL_SECONDS=str(interval_wall),
            LIVEFLEET_WEBHOOK_ALLOW="127.0.0.0/8")
        say(f"watch: {n} Bilibili streamers watched, one worker --watch, checks every {INTERVAL_WORLD_S:g} "
            f"world s ({interval_wall:g} wall s at {scale:g}x)")
        worker = _worker("bilibili", env, var_dir / "worker.log")
        try:
            db = mongo[db_name]
            _wait("first round of checks", lambda: db.rooms.count_documents({}) >= len(uids), 180, worker)
            # the streams live before the run: their alerts go out first (not measured)
            settled = [-1]

            def quiet() -> bool:
                before, settled[0] = settled[0], len(alerts)
                return before == settled[0]

            _wait("the first alerts to go out", quiet, 300, worker)
            start_requests = _status_requests(sandbox)
            t0 = time.time()
            world0 = float(sandbox.clock(time_scale=scale)["world_time"])
            t0 = (t0 + time.time()) / 2
            say(f"watch: world running at {scale:g}x for {run_min} world minutes")
            time.sleep(run_min * 60 / scale)
            world_end = float(sandbox.clock(time_scale=0)["world_time"])
            end_requests = _status_requests(sandbox)
            time.sleep(3 * interval_wall)  # the last checks, stores and alerts
        finally:
            stop_worker(worker, 30)
        stored = _first_live_snapshots(client, prefix)
        client.close()
        mongo.drop_database(db_name)
        mongo.close()
    world = BiliWorld(SEED, n, False, start=DEFAULT_START)
    first_minute, last_minute = int(world0 // 60) + 1, int(world_end // 60) - 2  # each start had an interval
    discovery, from_live_time, alert_latency, missed = [], [], [], 0
    firsts_alert: dict[str, float] = {}
    for at, body in alerts:
        alert = body.get("alert") or {}
        if alert.get("event") == "stream_started" and alert.get("room_id"):
            firsts_alert.setdefault(str(alert["room_id"]), at)
    starts = 0
    for room in world.rooms:
        for minute in room.schedule.starts_between(first_minute, last_minute):
            starts += 1
            visible_wall = t0 + (minute * 60 - world0) / scale
            seen = [t for t in stored.get(str(room.room_id), []) if t >= visible_wall - 0.05]
            if not seen:
                missed += 1
                continue
            discovery.append((min(seen) - visible_wall) * scale)
            from_live_time.append(discovery[-1] + minute * 60 - world._live_time(room, minute))
            arrived = firsts_alert.get(str(room.room_id))
            if arrived is not None and arrived >= visible_wall - 0.05:
                alert_latency.append((arrived - visible_wall) * scale)
    if not discovery:
        raise RuntimeError(f"watch bench: no start was measured (see {var_dir / 'worker.log'})")
    hours = (world_end - world0) / 3600
    per_hour = (end_requests - start_requests) / len(uids) / hours * (INTERVAL_WORLD_S / 60) if hours else 0.0
    p95, median = _percentile(discovery, 0.95), statistics.median(discovery)
    figures = {"live_discovery_p95_s": p95}
    rows: list[Row] = [("live_discovery_p95_s", round(p95, 1), 0),
                       ("live_discovery_median_s", round(median, 1), 1),
                       ("live_discovery_starts", f"{len(discovery)} measured, {missed} missed of {starts} "
                                                 f"({n} watched, {scale:g}x world)", 1),
                       ("live_discovery_p95_from_live_time_s", round(_percentile(from_live_time, 0.95), 1), 1)]
    if alert_latency:
        figures["alert_latency_p95_s"] = _percentile(alert_latency, 0.95)
        rows += [("alert_latency_p95_s", round(figures["alert_latency_p95_s"], 1), 0),
                 ("alert_latency_median_s", round(statistics.median(alert_latency), 1), 1),
                 ("alert_latency_alerts", f"{len(alert_latency)} of {len(discovery)} starts", 1)]
    rows.append(("watch_requests_per_account_hour_bilibili", round(per_hour, 2), 0))
    return figures, rows


def _status_requests(sandbox: SandboxProcess) -> int:
    return sum(n for name, n in sandbox.stats()["endpoints"].items() if "status" in name.lower())


def _first_live_snapshots(client: redis.Redis, prefix: str) -> dict[str, list[float]]:
    """Per room, the Redis times (wall seconds) of its stored snapshots that showed it live."""
    out: dict[str, list[float]] = {}
    key = FleetKeys(prefix).feed("room_snapshots")
    last = "-"
    while True:
        batch = client.xrange(key, min=last, count=5000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return out
        for message_id, fields in batch:
            doc = json.loads(fields[b"doc"])
            if doc.get("status") == "live":
                out.setdefault(str(doc["room_id"]), []).append(int(message_id.split(b"-")[0]) / 1000)
        last = batch[-1][0].decode()


# -- what a check costs, per platform -----------------------------------------------------------------------------


def _offline_targets(sandbox: SandboxProcess, platform: str) -> list[str]:
    truth = sandbox.truth(platform)
    if platform == "douyin":
        return [s["sec_uid"] for s in truth["streamers"] if s.get("live_status") != 1]
    if platform == "kuaishou":
        return [f"https://live.kuaishou.com/u/{r['principalId']}" for r in truth["rooms"] if not r.get("isLiving")]
    live = {str(s["room_id"]) for s in truth["sessions"] if s["status"] == "live"}
    return [str(r["liveId"]) for r in truth["lives"] if str(r["liveId"]) not in live]


def _check_costs(var_dir: Path, say: Say) -> list[Row]:
    var_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with owned_services(var_dir / "services") as services, start_sandbox(
            "--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", "120",
            log_path=var_dir / "sandbox.log") as sandbox:
        client = redis.Redis.from_url(services.redis_url)
        for platform, spider in (("douyin", "douyin"), ("kuaishou", "kuaishou"), ("taobao", "taobao")):
            prefix, db_name = f"bc{uuid.uuid4().hex[:6]}", f"bench_cost_{uuid.uuid4().hex[:6]}"
            targets = _offline_targets(sandbox, platform)[:COST_ACCOUNTS]
            lists.add_entries(client, prefix, "cost", targets, platform=platform, notify_only=True)
            env = child_environment(
                REDIS_URL=services.redis_url, MONGO_URI=services.mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url,
                LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_MONGO_DB=db_name, LIVEFLEET_VAR_DIR=str(var_dir),
                LIVEFLEET_WATCH_INTERVAL_SECONDS=str(COST_INTERVAL_S),
                **{f"LIVEFLEET_RATE_{platform.upper()}": "0"})
            say(f"watch: what checking {len(targets)} offline {platform} accounts costs")
            worker = _worker(spider, env, var_dir / f"worker-{platform}.log")
            try:
                _wait(f"{platform}'s first checks", lambda p=platform: _platform_requests(sandbox, p) > 0, 120,
                      worker)
                time.sleep(2 * COST_INTERVAL_S)  # warm-ups (cookies, the signer page) are done
                before = _platform_requests(sandbox, platform)
                time.sleep(COST_ROUNDS * COST_INTERVAL_S)
                spent = _platform_requests(sandbox, platform) - before
            finally:
                stop_worker(worker, 30)
            per_check = spent / (len(targets) * COST_ROUNDS)
            rows.append((f"watch_requests_per_account_hour_{platform}", round(per_check * 60, 1), 0))
            rows.append((f"watch_requests_per_check_{platform}", round(per_check, 2), 1))
        client.close()
    return rows


def _platform_requests(sandbox: SandboxProcess, platform: str) -> int:
    return sum(n for name, n in sandbox.stats()["endpoints"].items() if name.startswith(f"{platform}:"))


# -- monitors per worker ----------------------------------------------------------------------------------------


def _monitors_per_worker(quick: bool, var_dir: Path, say: Say) -> tuple[dict[str, float], list[Row]]:
    var_dir.mkdir(parents=True, exist_ok=True)
    levels, every, measure = LEVELS[quick], MONITOR_EVERY_S[quick], LEVEL_MEASURE_S[quick]
    prefix, db_name = f"bm{uuid.uuid4().hex[:6]}", f"bench_mpw_{uuid.uuid4().hex[:6]}"
    kept, rows = 0, []
    with owned_services(var_dir / "services") as services, start_sandbox(
            "--platforms", "taobao", "--time-scale", "0", "--no-chaos", "--no-faults",
            "--streamers", str(max(levels) * 3), log_path=var_dir / "sandbox.log") as sandbox:
        truth = sandbox.truth("taobao")
        live = [str(s["room_id"]) for s in truth["sessions"] if s["status"] == "live"]
        client = redis.Redis.from_url(services.redis_url)
        mongo: MongoClient[dict[str, Any]] = MongoClient(services.mongo_uri, tz_aware=True)
        registry = Registry(client, prefix)
        env = child_environment(
            REDIS_URL=services.redis_url, MONGO_URI=services.mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url,
            LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_MONGO_DB=db_name, LIVEFLEET_VAR_DIR=str(var_dir),
            LIVEFLEET_RATE_TAOBAO="0", LIVEFLEET_FLEET_RATE_TAOBAO="0", LIVEFLEET_IDENTITY_RATE_TAOBAO="0")
        with (var_dir / "worker.log").open("wb") as out:
            worker = subprocess.Popen(worker_command(["taobao"]), env=env, cwd=ROOT, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            db = mongo[db_name]
            for level in levels:
                if level > len(live):
                    rows.append((f"monitors_{level}", f"skipped: {len(live)} live rooms", 1))
                    break
                rooms = live[:level]
                say(f"watch: {level} monitors every {every:g}s on one worker (added over one interval)")
                monitors = []
                added_from = time.monotonic()
                for i, room in enumerate(rooms):  # spread over one interval, as starts arrive
                    due = added_from + every * i / level
                    monitors.append(registry.add("taobao", room, every, 3600))
                    time.sleep(max(0.0, due - time.monotonic()))
                time.sleep(every)
                begin = time.time()
                time.sleep(measure)
                end = time.time()
                for monitor in monitors:
                    registry.stop(monitor.id)
                if worker.poll() is not None:
                    raise RuntimeError(f"watch bench: the worker exited (see {var_dir / 'worker.log'})")
                deviations = list(_deviations(db, rooms, every, begin, end))
                jitter = math.sqrt(statistics.fmean(d * d for d in deviations)) if deviations else math.inf
                late = sum(registry.get(m.id).late for m in monitors)  # type: ignore[union-attr]
                ticks = sum(registry.get(m.id).ticks for m in monitors)  # type: ignore[union-attr]
                rows.append((f"monitors_{level}_jitter", round(jitter, 3), 1))
                rows.append((f"monitors_{level}_late_ticks", f"{late} of {ticks}", 1))
                if jitter > JITTER_LIMIT:
                    break
                kept = level
                time.sleep(every)  # the stopped monitors' last pages
        finally:
            stop_worker(worker, 30)
            client.close()
            mongo.drop_database(db_name)
            mongo.close()
    rows.insert(0, ("monitors_per_worker", kept, 0))
    rows.insert(1, ("monitors_per_worker_levels", " ".join(str(x) for x in levels) + f" at {every:g}s", 1))
    return {"monitors_per_worker": float(kept)}, rows


def _deviations(db: Any, rooms: list[str], every: float, begin: float, end: float) -> Iterator[float]:
    """``(dt - every) / every`` of each interval between a room's live_detail snapshots within the window
    (one query for every room: a query per room takes minutes at 1,500 rooms)."""
    times: dict[str, list[float]] = {}
    for doc in db.room_snapshots.find({"platform": "taobao", "room_id": {"$in": rooms}, "status": {"$exists": True}},
                                      {"room_id": 1, "captured_at": 1}):
        at = doc["captured_at"].timestamp()
        if begin <= at <= end:
            times.setdefault(doc["room_id"], []).append(at)
    for room_times in times.values():
        ordered = sorted(room_times)
        for before, after in zip(ordered, ordered[1:], strict=False):
            yield (after - before - every) / every
