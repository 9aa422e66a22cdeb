"""Egress identities: do more identities carry more pages, each at its rate? And what a page costs.

The sandbox judges clients by address, as the platforms do: ``--address-rate-limit R``
(``RATE``, 8 requests/s on Bilibili) per client address, anything faster refused with
Bilibili's own over-rate answer. ``IDENTITIES`` real proxies (``sandbox/proxies.py``:
Debian's tinyproxy, proxy k leaving from 127.0.0.(11+k)) are the fleet's egress
identities. Two ``livefleet worker`` processes (``WORKERS``) crawl Bilibili room seeds
through them (each seed is exactly three requests: ``room_init``, ``get_info``,
``getInfoByRoom``; the same rooms in both runs, far more than either run gets through),
with the fleet's bucket per (platform, identity) at R
(``LIVEFLEET_IDENTITY_RATE_BILIBILI=R``) and no per-worker rate
(``LIVEFLEET_RATE_BILIBILI=0``): first through all four proxies, then through one.
Everything else is livefleet's defaults (concurrency 16, heartbeats every 5 s, the
identity health records, the monitor extension polling): a fleet as deployed.

A run's steady window starts ``LEAD_S`` after both workers have opened their spider and
every proxy's address has had a request accepted, and lasts ``STEADY_S`` (20 s, ``--quick``
8 s); then the workers are stopped (SIGTERM: they finish what they hold and store it). At
both ends of the window the bench reads the sandbox's per-address counters
(``SandboxProcess.address_stats``: accepted requests ``ok`` and the sandbox's monotonic time
``last`` of the latest one), Redis's ``INFO all`` and SecantusDB's ``serverStatus``; a thread
samples every process's CPU. Nothing else of the bench touches Redis in the window.

* An identity's rate is what the sandbox accepted from its address in the window:
  ``(ok_end - ok_start) / (last_end - last_start)``, i.e. ``(n - 1) / (last - first)`` of the
  accepted requests from the one just before the window to the last one in it.
* ``egress_scaling_4_vs_1``: pages/s (the sum of the identities' rates: every accepted
  platform request, session warm-ups included) with four identities over pages/s with one
  (target >= 3.6). Beside it ``egress_blocked_share``: requests the sandbox refused (``limited``)
  over all it received from the proxies, over the whole four-identity run (target <= 0.005).
* ``identity_rate_error``: the largest ``|rate - R| / R`` of the four identities in the
  four-identity run's window (target <= 0.1). Taken from the same run as the scaling figure:
  that is sound because the run is checked to keep every identity saturated (work left in the
  queue at the end of the window, each identity's share of the requests printed with the
  identity health records ``livefleet status`` shows).
* Sizing coefficients (``docs/sizing.md``), in the four-identity window (the fleet at work:
  egress on, rate-limited, 2 workers), per accepted page:
  ``sizing_worker_cpu_ms_per_page`` (both workers' CPU, user + system),
  ``sizing_redis_round_trips_per_page`` (Redis's ``total_reads_processed``: one per
  request a client sends, a pipeline or a Lua script being one; the commands executed,
  those inside scripts included, are printed beside it), ``sizing_store_cpu_ms_per_page``
  (SecantusDB's CPU), and over the whole run ``sizing_mongo_writes_per_page`` (records the
  workers' store wrote, ``livefleet/store/written/*``: each one document inserted or upserted;
  the documents left in the database and SecantusDB's write commands are printed beside it).
  A worker also costs CPU and Redis traffic when idle (heartbeats, health sync, monitor
  polls); the two runs (8 and 32 pages/s, same workers) split each cost into a part per page
  and a part per worker-second (a line through the two points), printed beside.
* ``sizing_requests_per_room_tick``: one worker (all four spiders; no rate limit, the
  sandbox's address limit lifted), ``MONITOR_ROOMS`` live rooms per platform monitored every
  ``MONITOR_EVERY_S``. Once every monitor has had two ticks (sessions warm, Douyin's signer
  page and browser contexts open) the bench takes the sandbox's requests per endpoint and the
  registry's tick counts at a quiet moment late in an interval, lets ``MONITOR_INTERVALS`` more
  intervals pass, stops the monitors, waits for the sandbox to fall quiet and takes both again:
  requests per tick = requests / ticks between the two, per platform. The figure is Douyin's
  (rendered room page, the enter API its script calls, the shelf pages: their number follows
  the room's shelf, so the monitored rooms' shelf sizes are printed with the world's mean).
"""

from __future__ import annotations

import math
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis
from pymongo import MongoClient

from bench.crawl import CpuSampler, service_processes
from bench.fleet_scale import collection_counts, spawn_workers
from bench.machine import QUIET_CORES, wait_for_quiet
from crawlers.cli.worker import read_worker_stats, stop_worker, worker_command
from crawlers.download.egress_health import identity_report
from crawlers.monitor.registry import Registry
from crawlers.queue.feeder import push_seeds
from crawlers.redis.keys import SpiderKeys
from crawlers.services.lifecycle import owned_services
from sandbox.process import SandboxProcess, start_sandbox
from sandbox.proxies import ProxyProcess, start_proxies
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]
SPIDER = "bilibili"
#: R: requests/s the sandbox grants one address, and the fleet's bucket per identity.
RATE = 8.0
IDENTITIES = 4
WORKERS = 2
#: Requests one room seed (``follow: ["rooms"]``) costs: room_init, get_info, getInfoByRoom.
REQUESTS_PER_SEED = 3
#: Seconds between "both workers opened, every identity answered" and the window's start.
LEAD_S = 2.0
#: Seconds of steady window per run, full and --quick.
STEADY_S = {False: 20.0, True: 8.0}
#: Seconds of work at the four identities' full rate beyond start-up, lead and window (so the
#: queue never runs dry inside the window); the one-identity run is stopped long before.
SPARE_S = 12.0
#: Seconds of work counted for the workers' start-up (they send from their first second, once open).
STARTUP_S = 10.0
#: Seconds the workers get to open their spiders and send through every identity.
STARTUP_TIMEOUT_S = 90.0
#: Sandbox size (rooms to seed from: the seeds are different rooms).
STREAMERS = 1000
POLL_S = 0.2

MONITOR_PLATFORMS = ("douyin", "taobao", "bilibili", "kuaishou")
#: The platform whose requests per tick is the headline figure (docs/sizing.md's example).
MONITOR_HEADLINE = "douyin"
MONITOR_EVERY_S = 3.0
MONITOR_ROOMS = {False: 5, True: 2}
MONITOR_INTERVALS = {False: 5, True: 3}
#: Seconds without a sandbox request that count as "the ticks in flight are served".
MONITOR_QUIET_S = 0.8
DOUYIN_SHELF_PAGE = 20


def douyin_tick_requests(products: int) -> int:
    """Requests of one Douyin room tick as the monitor run measures them: the rendered room page, the enter
    API its script calls, and shelf pages of 20 until one says there is no more (``n // 20 + 1``)."""
    return 2 + products // DOUYIN_SHELF_PAGE + 1


Row = tuple[str, object, int]


class EgressBenchError(RuntimeError):
    """A run failed, or could not measure what it must (work ran out, a worker did not start)."""


@dataclass(frozen=True)
class Snapshot:
    """The counters read at one end of a window."""

    at: float
    addresses: dict[str, dict[str, Any]]
    redis: dict[str, Any]
    mongo_ops: dict[str, int]


@dataclass
class EgressRun:
    """One run: ``identities`` proxies, ``WORKERS`` workers, measured in its steady window."""

    identities: int
    sources: tuple[str, ...]
    window_s: float
    #: Per identity (proxy source address): requests accepted in the window and their rate.
    window_ok: dict[str, int]
    rates: dict[str, float]
    #: Whole run, per address: the sandbox's counters after the workers stopped.
    final: dict[str, dict[str, Any]]
    cores: dict[str, float]
    redis_reads: int
    redis_commands: int
    commandstats: Counter[str]
    mongo_write_commands: int
    records_written: int
    docs: dict[str, int]
    health: list[dict[str, Any]]
    #: Proxy label (``http://127.0.0.1:PORT``, as the health records name it) -> its source address.
    labels: dict[str, str]
    start_spread_s: float
    queue_left: int
    run_s: float
    stats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pages_per_s(self) -> float:
        return sum(self.rates.values())

    @property
    def window_pages(self) -> int:
        return sum(self.window_ok.values())

    @property
    def run_pages(self) -> int:
        return sum(int(c.get("ok", 0)) for c in self.final.values())

    def blocked(self) -> tuple[int, int]:
        """(refused, received) over the whole run, at the proxies' addresses."""
        rows = [self.final.get(s, {}) for s in self.sources]
        return sum(int(r.get("limited", 0)) for r in rows), sum(int(r.get("requests", 0)) for r in rows)

    def leaked(self) -> dict[str, int]:
        """Requests the sandbox got from addresses that are not this run's proxies (direct traffic)."""
        return {a: int(c.get("requests", 0)) for a, c in self.final.items()
                if a not in self.sources and int(c.get("requests", 0))}

    def per_page_ms(self, name: str) -> float:
        return self.cores.get(name, 0.0) * 1000 / self.pages_per_s if self.pages_per_s else 0.0


def room_seeds(sandbox: SandboxProcess, count: int) -> list[dict[str, Any]]:
    """``count`` seeds of different Bilibili rooms, each three requests (as bench/fleet_rate.py's)."""
    rooms = [str(room["room_id"]) for room in sandbox.truth(SPIDER)["rooms"]]
    if count > len(rooms):
        raise EgressBenchError(f"{count} room seeds wanted, the sandbox has {len(rooms)} rooms")
    return [{"kind": "room", "room_id": room, "follow": ["rooms"]} for room in rooms[:count]]


def _snapshot(sandbox: SandboxProcess, client: redis.Redis, mongo: MongoClient[dict[str, Any]]) -> Snapshot:
    addresses = sandbox.address_stats()
    at = time.monotonic()
    info = client.info("all")
    ops = mongo.admin.command("serverStatus").get("opcounters", {})
    return Snapshot(at, addresses, dict(info), {k: int(v) for k, v in ops.items()})


def _commandstats(info: dict[str, Any]) -> Counter[str]:
    return Counter({k[len("cmdstat_"):]: int(v["calls"]) for k, v in info.items()
                    if k.startswith("cmdstat_") and isinstance(v, dict)})


def _opened(log: Path) -> bool:
    try:
        return "Spider opened" in log.read_text(errors="replace")
    except FileNotFoundError:
        return False


def _check_alive(procs: list[subprocess.Popen[bytes]], run_dir: Path, what: str) -> None:
    for n, proc in enumerate(procs):
        if proc.poll() is not None:
            tail = (run_dir / f"worker-{n}.log").read_text(errors="replace")[-3000:]
            raise EgressBenchError(f"{what}: worker {n} exited {proc.returncode} before the window ended:\n{tail}")


def run_egress(sandbox: SandboxProcess, services: dict[str, psutil.Process], redis_url: str, mongo_uri: str,
               proxies: list[ProxyProcess], seeds: list[dict[str, Any]], var_dir: Path, steady_s: float,
               say: Callable[[str], None]) -> EgressRun:
    """Push ``seeds`` under a fresh prefix, run ``WORKERS`` workers through ``proxies``, measure a window."""
    k = len(proxies)
    run_dir = var_dir / f"identities-{k}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    prefix, db = f"eg{uuid.uuid4().hex[:8]}", f"egress_{uuid.uuid4().hex[:8]}"
    keys = SpiderKeys(prefix, SPIDER)
    sources = tuple(p.source for p in proxies)
    client = redis.Redis.from_url(redis_url)
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    env = child_environment(
        REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url, LIVEFLEET_KEY_PREFIX=prefix,
        LIVEFLEET_MONGO_DB=db, LIVEFLEET_VAR_DIR=str(run_dir), LIVEFLEET_LOG_LEVEL="INFO",
        LIVEFLEET_RATE_BILIBILI="0", LIVEFLEET_IDENTITY_RATE_BILIBILI=f"{RATE:g}", LIVEFLEET_FLEET_RATE_BILIBILI="0",
        LIVEFLEET_PROXIES=",".join(p.url for p in proxies))
    started = time.monotonic()
    try:
        push_seeds(client, keys, seeds)
        sandbox.reset_stats()
        with ExitStack() as stack:
            procs = spawn_workers(stack, run_dir, env, WORKERS)
            watched: dict[str, psutil.Process] = dict(services)
            watched.update((f"worker-{n}", psutil.Process(proc.pid)) for n, proc in enumerate(procs))
            for n, proxy in enumerate(proxies):
                watched[f"proxy-{n}"] = psutil.Process(proxy.proc.pid)
            watched["bench"] = psutil.Process()
            sampler = stack.enter_context(CpuSampler(watched))
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                _check_alive(procs, run_dir, f"{k} identities")
                seen = sandbox.address_stats()
                if (all(_opened(run_dir / f"worker-{n}.log") for n in range(WORKERS))
                        and all(int(seen.get(s, {}).get("ok", 0)) > 0 for s in sources)):
                    break
                if time.monotonic() > deadline:
                    raise EgressBenchError(f"{k} identities: the workers did not open and send through every "
                                           f"proxy within {STARTUP_TIMEOUT_S:.0f}s (logs in {run_dir})")
                time.sleep(POLL_S)
            say(f"egress: {k} identit{'ies' if k > 1 else 'y'}: both workers sending; {LEAD_S:g}s lead, "
                f"then a {steady_s:g}s window")
            time.sleep(LEAD_S)
            first = _snapshot(sandbox, client, mongo)
            time.sleep(steady_s)
            last = _snapshot(sandbox, client, mongo)
            _check_alive(procs, run_dir, f"{k} identities")
            queue_left = int(client.llen(keys.seeds))
            if not queue_left:
                raise EgressBenchError(f"{k} identities: the seeds ran out inside the window (the identities "
                                       "may have waited for work): more seeds needed")
            _stop_all(procs, timeout=60)
            for n, proc in enumerate(procs):
                if proc.returncode != 0:
                    tail = (run_dir / f"worker-{n}.log").read_text(errors="replace")[-3000:]
                    raise EgressBenchError(f"{k} identities: worker {n} exited {proc.returncode}:\n{tail}")
        final = sandbox.address_stats()
        stats = [read_worker_stats(run_dir / f"stats-{n}.json")[SPIDER] for n in range(WORKERS)]
        health = [row for row in identity_report(client, prefix) if row["platform"] == SPIDER]
        docs = collection_counts(mongo_uri, db)
    finally:
        stale = list(client.scan_iter(f"{prefix}:*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
        mongo.drop_database(db)
        mongo.close()
    labels = {f"http://{p.address}": p.source for p in proxies}
    return _measure(k, sources, labels, first, last, final, sampler, stats, health, docs, queue_left,
                    time.monotonic() - started)


def _measure(k: int, sources: tuple[str, ...], labels: dict[str, str], first: Snapshot, last: Snapshot,
             final: dict[str, dict[str, Any]], sampler: CpuSampler, stats: list[dict[str, Any]],
             health: list[dict[str, Any]], docs: dict[str, int], queue_left: int, run_s: float) -> EgressRun:
    window_ok: dict[str, int] = {}
    rates: dict[str, float] = {}
    for source in sources:
        a, b = first.addresses.get(source, {}), last.addresses.get(source, {})
        n = int(b.get("ok", 0)) - int(a.get("ok", 0))
        span = float(b.get("last") or 0.0) - float(a.get("last") or 0.0)
        window_ok[source] = n
        rates[source] = n / span if n > 0 and span > 0 else 0.0
    busy = sampler.busy(first.at, last.at)
    cores = {"workers": sum(v for name, v in busy.items() if name.startswith("worker-")),
             "proxies": sum(v for name, v in busy.items() if name.startswith("proxy-"))}
    cores |= {name: v for name, v in busy.items() if not name.startswith(("worker-", "proxy-"))}
    # The bench's own INFO at the window's end is counted in it (one read, one command).
    reads = int(last.redis["total_reads_processed"]) - int(first.redis["total_reads_processed"]) - 1
    commands = int(last.redis["total_commands_processed"]) - int(first.redis["total_commands_processed"]) - 1
    calls = _commandstats(last.redis)
    calls.subtract(_commandstats(first.redis))
    calls["info"] -= 1
    mongo_writes = sum(last.mongo_ops.get(op, 0) - first.mongo_ops.get(op, 0) for op in ("insert", "update"))
    written = sum(int(v) for s in stats for key, v in s.items() if key.startswith("livefleet/store/written/"))
    opened = [datetime.fromisoformat(s["start_time"]).timestamp() for s in stats if s.get("start_time")]
    return EgressRun(
        identities=k, sources=sources, window_s=last.at - first.at, window_ok=window_ok, rates=rates, final=final,
        cores=cores, redis_reads=reads, redis_commands=commands, commandstats=+calls,
        mongo_write_commands=mongo_writes, records_written=written, docs=docs, health=health,
        labels=labels, start_spread_s=(max(opened) - min(opened)) if opened else 0.0,
        queue_left=queue_left, run_s=run_s, stats=stats)


def _stop_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM to every worker at once (each finishes what it holds and stores it), then wait; kill after
    ``timeout``. Never a second SIGTERM: Scrapy takes that as "shut down uncleanly now"."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- monitors: requests per room tick ------------------------------------------------------------


@dataclass(frozen=True)
class MonitorSizing:
    """Requests per tick per platform, from the sandbox's endpoint counts and the registry's ticks."""

    per_tick: dict[str, float]
    endpoints_per_tick: dict[str, dict[str, float]]
    ticks: dict[str, int]
    late: int
    shelf_sizes: list[int]
    world_shelf_mean: float
    #: Requests per tick :func:`douyin_tick_requests` predicts for the monitored rooms and for every live room.
    predicted_sample: float
    predicted_world: float


def _live_rooms(sandbox: SandboxProcess, platform: str) -> list[str]:
    truth = sandbox.truth(platform)
    if platform == "douyin":
        return [r["web_rid"] for r in truth["rooms"] if r["status"] == 2]
    if platform == "taobao":
        return [str(live["liveId"]) for live in truth["lives"] if live["streamStatus"] == 1]
    if platform == "bilibili":
        return [str(r["room_id"]) for r in truth["rooms"] if r["live_status"] == 1]
    return [r["principalId"] for r in truth["rooms"] if r["isLiving"]]


def _spread(items: list[str], n: int) -> list[str]:
    """``n`` items spread evenly over ``items`` (not the first n: the world's generator orders them)."""
    if len(items) < n:
        raise EgressBenchError(f"{n} live rooms wanted, the sandbox has {len(items)}")
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _endpoint_counts(sandbox: SandboxProcess) -> Counter[str]:
    return Counter({name: int(n) for name, n in sandbox.stats()["endpoints"].items() if name != "unknown"})


def _wait_quiet(sandbox: SandboxProcess, quiet_s: float, timeout: float) -> Counter[str]:
    """The endpoint counts once none has changed for ``quiet_s`` seconds (raises after ``timeout``)."""
    deadline = time.monotonic() + timeout
    counts, since = _endpoint_counts(sandbox), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _endpoint_counts(sandbox)
        if now != counts:
            counts, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return counts
    raise EgressBenchError(f"monitor sizing: the sandbox never fell quiet for {quiet_s:g}s within {timeout:g}s")


def monitor_sizing(sandbox: SandboxProcess, redis_url: str, mongo_uri: str, var_dir: Path, quick: bool,
                   say: Callable[[str], None]) -> MonitorSizing:
    """One worker (all four spiders, no rate limits), monitors on live rooms: requests per tick per platform."""
    run_dir = var_dir / "monitors"
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix, db = f"em{uuid.uuid4().hex[:6]}", f"egress_monitor_{uuid.uuid4().hex[:6]}"
    rooms = {p: _spread(_live_rooms(sandbox, p), MONITOR_ROOMS[quick]) for p in MONITOR_PLATFORMS}
    zero = {f"LIVEFLEET_RATE_{p.upper()}": "0" for p in MONITOR_PLATFORMS}
    env = child_environment(
        REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url, LIVEFLEET_KEY_PREFIX=prefix,
        LIVEFLEET_MONGO_DB=db, LIVEFLEET_VAR_DIR=str(run_dir), LIVEFLEET_LOG_LEVEL="INFO", **zero)
    client = redis.Redis.from_url(redis_url)
    registry = Registry(client, prefix)
    intervals = MONITOR_INTERVALS[quick]
    every = MONITOR_EVERY_S
    with (run_dir / "worker.log").open("wb") as log:
        worker = subprocess.Popen(worker_command(list(MONITOR_PLATFORMS)), env=env, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        added = time.monotonic()
        monitors = {p: [registry.add(p, room, every, 600).id for room in rooms[p]] for p in MONITOR_PLATFORMS}
        everyone = [m for ids in monitors.values() for m in ids]

        def ticks() -> dict[str, int]:
            return {p: sum(registry.get(m).ticks for m in ids) for p, ids in monitors.items()}  # type: ignore[union-attr]

        deadline = time.monotonic() + 90
        while min(registry.get(m).ticks for m in everyone) < 2:  # type: ignore[union-attr]
            if worker.poll() is not None:
                raise EgressBenchError(f"monitor sizing: the worker exited ({worker.returncode}); "
                                       f"see {run_dir / 'worker.log'}")
            if time.monotonic() > deadline:
                raise EgressBenchError(f"monitor sizing: monitors not ticking twice within 90s "
                                       f"(see {run_dir / 'worker.log'})")
            time.sleep(0.2)
        # A quiet moment late in an interval: every tick claimed so far has been served, the next not yet due.
        for _attempt in range(4):
            phase = (time.monotonic() - added) % every
            time.sleep((0.9 * every - MONITOR_QUIET_S - phase) % every)
            before = _endpoint_counts(sandbox)
            time.sleep(MONITOR_QUIET_S)
            t0 = ticks()
            late0 = sum(registry.get(m).late for m in everyone)  # type: ignore[union-attr]
            c0 = _endpoint_counts(sandbox)
            if c0 == before:
                break
        else:
            raise EgressBenchError("monitor sizing: no quiet moment between ticks (ticks take longer than "
                                   f"{every:g}s to serve?)")
        say(f"monitor sizing: baseline taken; {intervals} intervals of {every:g}s")
        time.sleep(intervals * every)
        for m in everyone:
            registry.stop(m)
        c1 = _wait_quiet(sandbox, 2.0, 60)
        t1 = ticks()
        late = sum(registry.get(m).late for m in everyone) - late0  # type: ignore[union-attr]
    finally:
        stop_worker(worker, timeout=30)
        stale = list(client.scan_iter(f"{prefix}:*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
        with MongoClient(mongo_uri) as mongo:
            mongo.drop_database(db)
    delta = c1 - c0
    per_tick: dict[str, float] = {}
    endpoints: dict[str, dict[str, float]] = {}
    tick_counts: dict[str, int] = {}
    for p in MONITOR_PLATFORMS:
        n = t1[p] - t0[p]
        tick_counts[p] = n
        mine = {name.split(":", 1)[1]: v for name, v in delta.items() if name.startswith(f"{p}:") and v > 0}
        per_tick[p] = sum(mine.values()) / n if n else math.nan
        endpoints[p] = {name: v / n for name, v in sorted(mine.items())} if n else {}
    truth = sandbox.truth("douyin")
    shelves = truth["shelves"]
    by_rid = {r["web_rid"]: r for r in truth["rooms"]}
    shelf_sizes = [len(shelves.get(rid, [])) for rid in rooms["douyin"]]
    live_sizes = [len(shelves.get(r["web_rid"], [])) for r in by_rid.values() if r["status"] == 2]
    return MonitorSizing(
        per_tick=per_tick, endpoints_per_tick=endpoints, ticks=tick_counts, late=late, shelf_sizes=shelf_sizes,
        world_shelf_mean=statistics.fmean(live_sizes),
        predicted_sample=statistics.fmean(douyin_tick_requests(n) for n in shelf_sizes),
        predicted_world=statistics.fmean(douyin_tick_requests(n) for n in live_sizes))


# -- the benchmark --------------------------------------------------------------------------------


def run(quick: bool, var_dir: Path, quiet_timeout: float = 120,
        say: Callable[[str], None] | None = None) -> tuple[dict[str, float], list[Row]]:
    """Start Redis, SecantusDB, the sandbox (address limit R) and four proxies; run four identities, then
    one; then the monitor sizing run. Return the figures with targets and the ``(name, value, indent)`` rows.

    Raises :class:`EgressBenchError` when a run failed or could not measure.
    """
    def note(text: str) -> None:
        if say is not None:
            say(text)

    steady = STEADY_S[quick]
    var_dir.mkdir(parents=True, exist_ok=True)
    # Enough work for start-up, the lead, the window and SPARE_S more at the four identities' full rate.
    requests = round(RATE * IDENTITIES * (STARTUP_S + LEAD_S + steady + SPARE_S))
    with ExitStack() as stack:
        services = stack.enter_context(owned_services(var_dir / "services"))
        sandbox = stack.enter_context(start_sandbox(
            "--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", str(STREAMERS),
            "--address-rate-limit", f"{RATE:g}", log_path=var_dir / "sandbox.log"))
        proxies = start_proxies(IDENTITIES, workdir=var_dir / "proxies")
        for proxy in proxies:
            stack.callback(proxy.stop)
        processes = service_processes(sandbox.proc.pid)
        seeds = room_seeds(sandbox, math.ceil(requests / REQUESTS_PER_SEED))
        runs: dict[int, EgressRun] = {}
        for k in (IDENTITIES, 1):
            wait_for_quiet(quiet_timeout, f"the egress run with {k} identit{'ies' if k > 1 else 'y'}")
            note(f"egress: {WORKERS} workers, {k} of {IDENTITIES} proxies at {RATE:g} requests/s each "
                 f"(sandbox: {RATE:g}/s per address), {len(seeds)} room seeds")
            runs[k] = run_egress(sandbox, processes, services.redis_url, services.mongo_uri, proxies[:k], seeds,
                                 var_dir, steady, note)
        sandbox.set_config(address_rate_limit=0.0)
        wait_for_quiet(quiet_timeout, "the monitor sizing run")
        note(f"monitor sizing: one worker, {MONITOR_ROOMS[quick]} live rooms per platform every "
             f"{MONITOR_EVERY_S:g}s ({', '.join(MONITOR_PLATFORMS)})")
        monitors = monitor_sizing(sandbox, services.redis_url, services.mongo_uri, var_dir, quick, note)
    for k, run_ in runs.items():
        refused, received = run_.blocked()
        if refused:
            note(f"WARNING: the sandbox refused {refused} of {received} requests in the run with {k} identit"
                 f"{'ies' if k > 1 else 'y'}: sends arrived closer than the address limit tolerates (a busy "
                 "machine delays some sends); a refused send still used its identity's slot, so that run's "
                 "pages/s is low")
    busiest = max(run.cores.get("other", 0.0) for run in runs.values())
    if busiest > QUIET_CORES:
        note(f"WARNING: the rest of the machine used up to {busiest:.2f} cores during an egress run: "
             "its figures are disturbed")
    return report(runs[IDENTITIES], runs[1], monitors)


def _health_line(run: EgressRun) -> str:
    parts = []
    for row in run.health:
        parts.append(f"{run.labels.get(row['label'], row['label'])}: {row['requests']} req, {row['ok']} ok, "
                     f"{row['blocks']} blocks, {row['errors']} errors, {row['state']}")
    return "; ".join(parts) or "(no health records)"


def _line_through(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float]:
    """(slope, intercept) of the line through two points."""
    slope = (y2 - y1) / (x2 - x1) if x2 != x1 else math.nan
    return slope, y2 - slope * x2


def report(four: EgressRun, one: EgressRun, monitors: MonitorSizing) -> tuple[dict[str, float], list[Row]]:
    """The figures and rows to print from the two runs and the monitor run."""
    if not one.pages_per_s or not four.pages_per_s:
        raise EgressBenchError(f"no pages measured (1 identity: {one.pages_per_s:.2f}/s, "
                               f"{IDENTITIES}: {four.pages_per_s:.2f}/s)")
    scaling = four.pages_per_s / one.pages_per_s
    refused, received = four.blocked()
    blocked_share = refused / received if received else math.nan
    errors = {s: abs(r - RATE) / RATE for s, r in four.rates.items()}
    rate_error = max(errors.values())
    figures = {"egress_scaling_4_vs_1": scaling, "egress_blocked_share": blocked_share,
               "identity_rate_error": rate_error}
    rows: list[Row] = [("egress_scaling_4_vs_1", round(scaling, 3), 0)]
    rows.append(("egress_blocked_share", round(blocked_share, 4), 1))
    rows.append((f"egress_{IDENTITIES}_identities_pages_per_s", round(four.pages_per_s, 2), 1))
    rows.append(("egress_1_identity_pages_per_s", round(one.pages_per_s, 2), 1))
    rows.append(("egress_rate_per_identity", f"{RATE:g} requests/s (sandbox per address and fleet bucket per "
                                             f"identity); {WORKERS} workers", 1))
    for run in (four, one):
        label = f"egress_{run.identities}_identit{'ies' if run.identities > 1 else 'y'}"
        r_refused, r_received = run.blocked()
        rows.append((f"{label}_window",
                     f"{run.window_pages} pages in {run.window_s:.1f}s; whole run {run.run_pages} pages, "
                     f"{r_refused} of {r_received} requests refused; {run.queue_left} seeds still queued at the "
                     f"window's end; workers opened within {run.start_spread_s:.1f}s; run {run.run_s:.0f}s; "
                     f"other load {run.cores.get('other', 0.0):.2f} cores", 1))
        rows.append((f"{label}_health", _health_line(run), 1))
        leaked = run.leaked()
        if leaked:
            rows.append((f"{label}_direct_requests", f"{leaked} (not through a proxy!)", 1))
    rows.append(("identity_rate_error", round(rate_error, 4), 0))
    for source in four.sources:
        rows.append((f"identity_{source}_per_s", f"{four.rates[source]:.3f} ({four.window_ok[source]} accepted "
                                                 f"in the window)", 1))
    rows.append(("identity_rate_target_per_s", RATE, 1))

    # Sizing: per page in the four-identity window; per worker-second from the two runs together.
    pages = four.window_pages
    rows.append(("sizing_requests_per_room_tick", round(monitors.per_tick[MONITOR_HEADLINE], 2), 0))
    for p in MONITOR_PLATFORMS:
        detail = " ".join(f"{name}={v:.2f}" for name, v in monitors.endpoints_per_tick[p].items())
        rows.append((f"sizing_requests_per_room_tick_{p}",
                     f"{monitors.per_tick[p]:.2f} over {monitors.ticks[p]} ticks ({detail})", 1))
    rows.append(("sizing_monitor_douyin_shelves",
                 f"monitored rooms' shelves {' '.join(map(str, monitors.shelf_sizes))} products (mean "
                 f"{statistics.fmean(monitors.shelf_sizes):.1f}): 2 + (products // {DOUYIN_SHELF_PAGE} + 1) "
                 f"requests per tick predicts {monitors.predicted_sample:.2f} for them; for the world's live rooms "
                 f"(mean {monitors.world_shelf_mean:.1f} products) it predicts {monitors.predicted_world:.2f}; "
                 f"{monitors.late} late ticks in the measured intervals", 1))
    rows.append(("sizing_worker_cpu_ms_per_page", round(four.per_page_ms("workers"), 2), 0))
    cpu_slope, cpu_fixed = _line_through(one.pages_per_s, one.cores.get("workers", 0.0) * 1000,
                                         four.pages_per_s, four.cores.get("workers", 0.0) * 1000)
    rows.append(("sizing_worker_cpu_split", f"{cpu_slope:.2f} ms per page + {cpu_fixed / WORKERS:.0f} ms per "
                                            f"worker-second (1 identity: "
                                            f"{one.per_page_ms('workers'):.2f} ms per page)", 1))
    rows.append(("sizing_cpu_ms_per_page_by_process", " ".join(
        f"{name}={four.per_page_ms(name):.2f}" for name in sorted(four.cores) if name != "other"), 1))
    rows.append(("sizing_redis_round_trips_per_page", round(four.redis_reads / pages, 2), 0))
    rows.append(("sizing_redis_commands_per_page", f"{four.redis_commands / pages:.2f} (Lua scripts' own "
                                                  "commands included)", 1))
    q_slope, q_fixed = _line_through(one.pages_per_s, one.redis_reads / one.window_s,
                                     four.pages_per_s, four.redis_reads / four.window_s)
    rows.append(("sizing_redis_round_trips_split", f"{q_slope:.2f} per page + {q_fixed / WORKERS:.2f} per "
                                                   f"worker-second (1 identity: "
                                                   f"{one.redis_reads / one.window_pages:.2f} per page)", 1))
    top = four.commandstats.most_common(12)
    rows.append(("sizing_redis_commands_by_name", " ".join(f"{name}={n / pages:.2f}" for name, n in top), 1))
    rows.append(("sizing_redis_cpu_ms_per_page", round(four.per_page_ms("redis"), 3), 1))
    run_pages = four.run_pages
    rows.append(("sizing_mongo_writes_per_page", round(four.records_written / run_pages, 3), 0))
    rows.append(("sizing_mongo_writes_detail",
                 f"{four.records_written} records written for {run_pages} pages (whole run); documents left: "
                 f"{' '.join(f'{k}={v}' for k, v in four.docs.items())} ({sum(four.docs.values()) / run_pages:.2f} "
                 f"per page); SecantusDB write commands in the window {four.mongo_write_commands / pages:.3f} "
                 "per page (bulk batches)", 1))
    rows.append(("sizing_store_cpu_ms_per_page", round(four.per_page_ms("mongo"), 2), 0))
    busiest = max(four.cores.get("other", 0.0), one.cores.get("other", 0.0))
    rows.append(("egress_other_load_max_cores", round(busiest, 2), 1))
    return figures, rows
