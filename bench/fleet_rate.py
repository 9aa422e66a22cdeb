"""``fleet_rate_error``: does the fleet-wide rate limit hold, however many workers run?

With Bilibili's fleet rate set to R (``LIVEFLEET_FLEET_RATE_BILIBILI``) and no
per-worker rate (``LIVEFLEET_RATE_BILIBILI=0``: only the fleet limit can hold the
rate down, and the slot spends no reactor turn per request on a delay), 1, 2 and
then 4 ``livefleet worker`` processes crawl the same kind of pages from a fresh
queue. The rate is measured where the platform would see it: the sandbox logs
every request it serves with its time (the world runs at ``--time-scale 1``, so
served times are the server's clock). The seeds are room seeds that follow rooms
only (``{"kind": "room", "follow": ["rooms"]}``), each of a different room: each
is exactly three requests (``room_init``, then ``get_info`` and ``getInfoByRoom``)
and three rows in the served log. (Seeds of one request each would measure the
seed feeder instead: a lone worker takes 16 seeds at a time and runs dry between.)

The steady window of a run starts ``LEAD_S`` after the last worker opened its
spider (Scrapy's ``start_time`` in each worker's stats, put on the sandbox's clock:
by then every worker has warmed its sessions and is competing for the bucket) and
ends at the last request; its rate is (requests in it - 1) / (last - first).
``fleet_rate_error`` is the largest ``|rate - R| / R`` of the three runs (target
<= 0.1). Beside it, per run: the rate, the window, how the requests split between
the workers (``livefleet/ratelimit/reserved/bilibili`` of each: all of them took
part, so the limit held across processes, not inside one; the count includes
session warm-ups and new send times taken after a late wake-up, see
``crawlers/download/ratelimit.py``), the busiest second of the whole run (start-up
included), and the cores the rest of the machine used. On a busy machine the
workers stall: sends they miss are not made up for (that would be a burst), so
the rate comes out below R, never above.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.machine import busy_cpu_seconds, wait_for_quiet
from crawlers.cli.worker import read_worker_stats, worker_command
from crawlers.queue.feeder import push_seeds
from crawlers.redis.keys import SpiderKeys
from crawlers.services.lifecycle import owned_services
from sandbox.process import SandboxProcess, start_sandbox
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]
SPIDER = "bilibili"
#: Fleet-wide requests/s under test, and a per-worker rate that never binds.
RATE = 40.0
PER_WORKER_RATE = 0.0
#: The endpoints a room seed reaches, one served row per request.
ENDPOINTS = frozenset({"room_init", "get_info", "getInfoByRoom"})
WORKER_COUNTS = (1, 2, 4)
#: Seconds after the last worker opened its spider before the window starts.
LEAD_S = 5.0
#: Seconds of steady window per run, full and --quick.
STEADY_S = {False: 25.0, True: 10.0}
#: Time the workers get to start, per worker (they start together and share the cores).
STARTUP_S_PER_WORKER = 2.0


class FleetRateError(RuntimeError):
    """A run failed, or did not crawl what it was given."""


@dataclass(frozen=True)
class FleetRun:
    """One run: N workers, one rate measured at the sandbox."""

    workers: int
    rate: float
    requests: int
    window_s: float
    window_requests: int
    per_s: float
    peak_1s: int
    reserved: tuple[int, ...]
    fallback: int
    late: int
    start_spread_s: float
    other_cores: float

    @property
    def error(self) -> float:
        return abs(self.per_s - self.rate) / self.rate


def steady_rate(served_at: list[float], window_start: float) -> tuple[int, float, float]:
    """(requests, seconds, requests/s) of the sends from ``window_start`` on: (n - 1) / (last - first)."""
    window = sorted(t for t in served_at if t >= window_start)
    if len(window) < 2 or window[-1] <= window[0]:
        return len(window), 0.0, 0.0
    span = window[-1] - window[0]
    return len(window), span, (len(window) - 1) / span


def peak(served_at: list[float], seconds: float = 1.0) -> int:
    """The most sends in any window of ``seconds``."""
    times = sorted(served_at)
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def room_seeds(sandbox: SandboxProcess, count: int) -> list[dict[str, Any]]:
    """``count`` seeds of different rooms (a room's follow-ups are crawled once per crawl)."""
    rooms = [str(room["room_id"]) for room in sandbox.truth(SPIDER)["rooms"]]
    if count > len(rooms):
        raise FleetRateError(f"{count} room seeds wanted, the sandbox has {len(rooms)} rooms")
    return [{"kind": "room", "room_id": room, "follow": ["rooms"]} for room in rooms[:count]]


def _world_offset(sandbox: SandboxProcess) -> float:
    """Sandbox world time minus this machine's epoch time (the world runs at 1x)."""
    before = time.time()
    world = float(sandbox.clock()["world_time"])
    after = time.time()
    return world - (before + after) / 2


class _OwnCpu:
    """CPU seconds of this process, its reaped children (the workers) and its live servers."""

    def __init__(self) -> None:
        self.me = psutil.Process(os.getpid())
        self.servers = self.me.children(recursive=True)

    def seconds(self) -> float:
        t = self.me.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for proc in self.servers:
            try:
                s = proc.cpu_times()
                total += s.user + s.system
            except psutil.Error:
                pass
        return total


def run_fleet(sandbox: SandboxProcess, redis_url: str, mongo_uri: str, var_dir: Path, workers: int,
              requests: int, rate: float = RATE, timeout: float = 300) -> FleetRun:
    """Push seeds for ``requests`` requests, run ``workers`` workers until the fleet is idle, measure."""
    run_dir = var_dir / f"fleet-{workers}"
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix, db = f"fr{uuid.uuid4().hex[:8]}", f"fleet_rate_{uuid.uuid4().hex[:8]}"
    requests -= requests % len(ENDPOINTS)
    client = redis.Redis.from_url(redis_url)
    try:
        push_seeds(client, SpiderKeys(prefix, SPIDER), room_seeds(sandbox, requests // len(ENDPOINTS)))
    finally:
        client.close()
    sandbox.clear_served(SPIDER)
    offset = _world_offset(sandbox)
    env = child_environment(
        REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url, LIVEFLEET_KEY_PREFIX=prefix,
        LIVEFLEET_MONGO_DB=db, LIVEFLEET_VAR_DIR=str(run_dir), LIVEFLEET_LOG_LEVEL="INFO",
        LIVEFLEET_RATE_BILIBILI=str(PER_WORKER_RATE), LIVEFLEET_FLEET_RATE_BILIBILI=str(rate))
    own = _OwnCpu()
    own_before, all_before, started = own.seconds(), busy_cpu_seconds(), time.monotonic()
    with ExitStack() as stack:
        procs = []
        for n in range(workers):
            log = stack.enter_context((run_dir / f"worker-{n}.log").open("wb"))
            cmd = worker_command([SPIDER], idle_close=2, stats_file=run_dir / f"stats-{n}.json")
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            stack.callback(_reap, proc)
            procs.append(proc)
        deadline = time.monotonic() + timeout
        for n, proc in enumerate(procs):
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise FleetRateError(f"{workers} workers: worker {n} still running after {timeout:.0f}s "
                                     f"(logs in {run_dir})") from None
            if proc.returncode != 0:
                tail = (run_dir / f"worker-{n}.log").read_text(errors="replace")[-3000:]
                raise FleetRateError(f"{workers} workers: worker {n} exited {proc.returncode}:\n{tail}")
    elapsed = time.monotonic() - started
    other_cores = max(0.0, (busy_cpu_seconds() - all_before) - (own.seconds() - own_before)) / elapsed
    stats = [read_worker_stats(run_dir / f"stats-{n}.json")[SPIDER] for n in range(workers)]
    starts = [datetime.fromisoformat(s["start_time"]).timestamp() + offset for s in stats]
    served = [row["served_at"] for row in sandbox.served(SPIDER) if row["endpoint"] in ENDPOINTS]
    if len(served) != requests:
        raise FleetRateError(f"{workers} workers: the sandbox served {len(served)} room pages of {requests} "
                             f"(logs in {run_dir})")
    count, span, per_s = steady_rate(served, max(starts) + LEAD_S)
    return FleetRun(
        workers=workers, rate=rate, requests=len(served), window_s=span, window_requests=count, per_s=per_s,
        peak_1s=peak(served),
        reserved=tuple(int(s.get(f"livefleet/ratelimit/reserved/{SPIDER}", 0)) for s in stats),
        fallback=sum(int(s.get(f"livefleet/ratelimit/fallback/{SPIDER}", 0)) for s in stats),
        late=sum(int(s.get(f"livefleet/ratelimit/late/{SPIDER}", 0)) for s in stats),
        start_spread_s=max(starts) - min(starts), other_cores=other_cores)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def run(quick: bool, var_dir: Path, quiet_timeout: float = 120,
        say: Callable[[str], None] | None = None) -> tuple[float, list[tuple[str, object, int]]]:
    """Start Redis, SecantusDB and a real-time sandbox, run 1, 2 and 4 workers; return
    ``fleet_rate_error`` and the ``(name, value, indent)`` rows to print, that figure first.

    Raises :class:`FleetRateError` when a run failed or its window came out too short to measure.
    """
    steady = STEADY_S[quick]
    runs: list[FleetRun] = []
    var_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        services = stack.enter_context(owned_services(var_dir / "services"))
        sandbox = stack.enter_context(start_sandbox(
            "--time-scale", "1", "--no-chaos", "--no-faults", "--streamers", "1000",
            log_path=var_dir / "sandbox.log"))
        for workers in WORKER_COUNTS:
            requests = round(RATE * (steady + LEAD_S + STARTUP_S_PER_WORKER * workers))
            wait_for_quiet(quiet_timeout, f"the fleet rate run with {workers} worker(s)")
            if say is not None:
                say(f"fleet_rate: {workers} worker(s), {requests} requests, fleet rate {RATE:g}/s")
            result = run_fleet(sandbox, services.redis_url, services.mongo_uri, var_dir, workers, requests)
            if result.window_s < steady / 2:
                raise FleetRateError(f"{workers} workers: steady window only {result.window_s:.1f}s "
                                     f"(workers took {result.start_spread_s:.1f}s to start)")
            runs.append(result)
    error = max(r.error for r in runs)
    rows: list[tuple[str, object, int]] = [("fleet_rate_error", round(error, 4), 0)]
    rows += [(f"fleet_rate_{r.workers}_workers_per_s", round(r.per_s, 2), 1) for r in runs]
    rows.append(("fleet_rate_target_per_s", RATE, 1))
    for r in runs:
        detail = (f"{r.window_requests} of {r.requests} requests in {r.window_s:.1f}s; sends reserved per "
                  f"worker {' '.join(map(str, r.reserved))} ({r.late} again after a late wake-up); workers "
                  f"opened within {r.start_spread_s:.1f}s; busiest second {r.peak_1s}; "
                  f"other load {r.other_cores:.2f} cores")
        if r.fallback:
            detail += f"; {r.fallback} sent without the limit (Redis unreachable)"
        rows.append((f"fleet_rate_{r.workers}_workers_window", detail, 1))
    return error, rows
