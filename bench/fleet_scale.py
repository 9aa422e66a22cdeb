"""``two_workers_vs_one``: how much faster is a fleet of two worker processes than one?

The same Bilibili crawl runs with one ``livefleet worker`` process, then with
two, each time from a fresh key prefix into a fresh database, through the whole
worker path (shared Redis queue with leases and background prefetch, validate ->
quarantine -> store pipelines into SecantusDB), against one sandbox process
(frozen world, no chaos, no fault rooms). Neither the per-worker nor the
fleet-wide rate limit binds (``LIVEFLEET_RATE_BILIBILI=0`` and
``LIVEFLEET_FLEET_RATE_BILIBILI=0``: unlimited).

Pages are counted where a platform would see them: a thread of the bench reads
the sandbox's request counter (``GET /__sandbox__/stats``) every ``SAMPLE_S``
seconds. (The sandbox's served log cannot time them here: in a frozen world every
row carries the same world time.) Items are counted where they land: the same
thread reads the fleet's ``item_scraped_count`` in Redis, which the workers'
heartbeats add to every ``HEARTBEAT_S``; in the full stack an item is scraped
only once the store has written it. (Counting MongoDB's documents instead would
slow the store under test: SecantusDB's count walks every document under its
storage lock, 0.2-0.3 s for 15,000.) MongoDB's documents are counted once, at
the end, to check that both runs stored the same (every collection within 1%).

The steady window runs from the moment ``WINDOW[0]`` of the crawl's pages were
served (or ``LEAD_S`` after the last worker opened its spider, if later) to the
moment ``WINDOW[1]`` were: start-up and the tail, where the queue runs dry and
concurrency cannot be filled, are left out. Pages/s and items/s are the growth of
the two counters across the window (linear between samples) over its length.

``two_workers_vs_one`` is two workers' pages/s over one worker's (target >= 1.6).
On a 2-core machine the sandbox, SecantusDB and Redis share the cores with the
workers, so the cores each kind of process used in the window are printed beside
it, with the CPU per page, the ceiling the machine's cores put on the ratio and the
efficiency (``two_workers_vs_one_efficiency``: the ratio over that ceiling).
``two_workers_vs_one_latency_bound`` repeats both runs with the sandbox answering
every request after a fixed ``LATENCY_S`` (``slow_rate=1``), as a real platform
does across the network: a worker is then bound by latency x concurrency rather
than by CPU, which is how a fleet meets the real sites. Its crawl is smaller
(the sub-areas of ``LATENCY_PARENTS``) to keep the bench short.
"""

from __future__ import annotations

import json
import subprocess
import threading
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
from pymongo import MongoClient

from bench.crawl import CpuSampler, service_processes
from bench.machine import QUIET_CORES, wait_for_quiet
from crawlers.cli.worker import read_worker_stats, worker_command
from crawlers.queue.feeder import push_seeds
from crawlers.redis.keys import SpiderKeys
from crawlers.services.lifecycle import owned_services
from sandbox.process import SandboxProcess, start_sandbox
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]
SPIDER = "bilibili"
#: The CPU-bound crawl: every sub-area, up to ten list pages each, each room's details and its streamer.
SEEDS: list[dict[str, Any]] = [{"kind": "areas", "max_pages": 10}]
#: Parent areas whose sub-areas seed the latency-bound crawl (about 480 of 1,515 live rooms at 3000 streamers).
LATENCY_PARENTS = frozenset({2, 3})
LIVE_HOST = "api.live.bilibili.com"
#: Sandbox size, full and --quick.
STREAMERS = {False: 3000, True: 1500}
#: Seconds the sandbox waits before every answer in the latency-bound variant.
LATENCY_S = 0.3
#: Share of the crawl's pages served at the start and at the end of the steady window.
WINDOW = (0.1, 0.9)
#: Seconds after the last worker opened its spider before the window may start.
LEAD_S = 1.0
#: Seconds between reads of the sandbox's page counter and the fleet's item counter.
SAMPLE_S = 0.2
#: Seconds between a worker's stats flushes to Redis (livefleet's default is 5: too coarse for a window).
HEARTBEAT_S = 1.0
#: Largest relative difference of the two runs' document counts (per collection) still "the same crawl".
DOC_TOLERANCE = 0.01
#: Seconds a worker waits with nothing to do fleet-wide before it exits.
IDLE_CLOSE_S = 2.0


class FleetScaleError(RuntimeError):
    """A run failed, measured no steady window, or the two runs stored different documents."""


@dataclass(frozen=True)
class ScaleRun:
    """One crawl by ``workers`` worker processes, measured at the sandbox, in Redis and in MongoDB."""

    workers: int
    pages: int
    docs: dict[str, int]
    window_s: float
    pages_per_s: float
    items_per_s: float
    items: int
    cores: dict[str, float]
    responses: tuple[int, ...]
    start_spread_s: float
    crawl_s: float


class _Watch:
    """Reads the sandbox's page counter and the fleet's stored items on a thread, as (time, count) samples."""

    def __init__(self, sandbox: SandboxProcess, client: redis.Redis, keys: SpiderKeys) -> None:
        self.sandbox = sandbox
        self.client = client
        self.keys = keys
        self.pages: list[tuple[float, int]] = []
        self.items: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-fleet-watch", daemon=True)

    def served(self) -> int:
        endpoints = self.sandbox.stats()["endpoints"]
        return sum(n for name, n in endpoints.items() if name != "unknown")

    def stored(self) -> int:
        return int(self.client.hget(self.keys.stats, "item_scraped_count") or 0)

    def sample(self) -> None:
        self.pages.append((time.monotonic(), self.served()))
        self.items.append((time.monotonic(), self.stored()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def time_of(samples: list[tuple[float, int]], value: float) -> float:
    """When a rising counter reached ``value`` (linear between the samples around it)."""
    for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
        if v1 >= value:
            return t1 if v1 == v0 else t0 + (t1 - t0) * max(0.0, value - v0) / (v1 - v0)
    return samples[-1][0]


def value_at(samples: list[tuple[float, int]], at: float) -> float:
    """A rising counter's value at time ``at`` (linear between the samples around it)."""
    if at <= samples[0][0]:
        return float(samples[0][1])
    for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
        if t1 >= at:
            return v0 + (v1 - v0) * (at - t0) / (t1 - t0) if t1 > t0 else float(v1)
    return float(samples[-1][1])


def collection_counts(mongo_uri: str, db: str) -> dict[str, int]:
    with MongoClient(mongo_uri) as client:
        return {name: client[db][name].count_documents({}) for name in sorted(client[db].list_collection_names())}


def run_workers(sandbox: SandboxProcess, services: dict[str, psutil.Process], redis_url: str, mongo_uri: str,
                var_dir: Path, workers: int, seeds: list[dict[str, Any]], concurrency: int,
                timeout: float = 400) -> ScaleRun:
    """Push ``seeds`` under a fresh prefix, run ``workers`` workers until the fleet is idle, measure."""
    run_dir = var_dir / f"workers-{workers}-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir(parents=True)
    prefix, db = f"fs{uuid.uuid4().hex[:8]}", f"fleet_scale_{uuid.uuid4().hex[:8]}"
    keys = SpiderKeys(prefix, SPIDER)
    client = redis.Redis.from_url(redis_url)
    env = child_environment(
        REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url, LIVEFLEET_KEY_PREFIX=prefix,
        LIVEFLEET_MONGO_DB=db, LIVEFLEET_VAR_DIR=str(run_dir), LIVEFLEET_LOG_LEVEL="INFO",
        LIVEFLEET_RATE_BILIBILI="0", LIVEFLEET_FLEET_RATE_BILIBILI="0", LIVEFLEET_CONCURRENCY=str(concurrency),
        LIVEFLEET_HEARTBEAT_SECONDS=str(HEARTBEAT_S))
    try:
        push_seeds(client, keys, seeds)
        wall_offset = time.time() - time.monotonic()
        with ExitStack() as stack:
            watch = stack.enter_context(_Watch(sandbox, client, keys))
            popens = spawn_workers(stack, run_dir, env, workers)
            procs = {f"worker-{n}": psutil.Process(proc.pid) for n, proc in enumerate(popens)}
            sampler = stack.enter_context(CpuSampler({**services, **procs, "bench": psutil.Process()}))
            deadline = time.monotonic() + timeout
            for n, proc in enumerate(popens):
                try:
                    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise FleetScaleError(f"{workers} worker(s): worker {n} still running after {timeout:.0f}s "
                                          f"(logs in {run_dir})") from None
                if proc.returncode != 0:
                    tail = (run_dir / f"worker-{n}.log").read_text(errors="replace")[-3000:]
                    raise FleetScaleError(f"{workers} worker(s): worker {n} exited {proc.returncode}:\n{tail}")
        stats = [read_worker_stats(run_dir / f"stats-{n}.json")[SPIDER] for n in range(workers)]
        (run_dir / "timeline.json").write_text(json.dumps({"pages": watch.pages, "items": watch.items}))
        docs = collection_counts(mongo_uri, db)
    finally:
        stale = list(client.scan_iter(f"{prefix}:*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
        with MongoClient(mongo_uri) as mongo:
            mongo.drop_database(db)
    return _measure(workers, watch, sampler, stats, docs, wall_offset)


def steady(samples: list[tuple[float, int]], not_before: float) -> tuple[float, float, float]:
    """(start, end, per second) of a rising counter between ``WINDOW[0]`` and ``WINDOW[1]`` of its final value."""
    total = samples[-1][1]
    start = max(time_of(samples, WINDOW[0] * total), not_before)
    end = time_of(samples, WINDOW[1] * total)
    if total == 0 or end - start < 2.0:
        return start, end, 0.0
    return start, end, (value_at(samples, end) - value_at(samples, start)) / (end - start)


def _measure(workers: int, watch: _Watch, sampler: CpuSampler, stats: list[dict[str, Any]],
             docs: dict[str, int], wall_offset: float) -> ScaleRun:
    base = watch.pages[0][1]
    pages = [(t, v - base) for t, v in watch.pages]
    total = pages[-1][1]
    opened = [datetime.fromisoformat(s["start_time"]).timestamp() - wall_offset for s in stats]
    start, end, pages_per_s = steady(pages, max(opened) + LEAD_S)
    if not pages_per_s:
        raise FleetScaleError(f"{workers} worker(s): no steady window ({total} pages, {end - start:.1f}s)")
    # Items come in bursts (a list page brings ~90 records, a detail page one or two; the store writes
    # batches), so a window cut by pages would catch a burst or miss it by chance: items get their own.
    _, _, items_per_s = steady(watch.items, max(opened) + LEAD_S)
    busy = sampler.busy(start, end)
    cores = {"workers": sum(v for k, v in busy.items() if k.startswith("worker-"))}
    cores |= {k: v for k, v in busy.items() if not k.startswith("worker-")}
    return ScaleRun(
        workers=workers, pages=total, docs=docs, window_s=end - start, pages_per_s=pages_per_s,
        items_per_s=items_per_s, items=sum(int(s.get("item_scraped_count", 0)) for s in stats), cores=cores,
        responses=tuple(int(s.get("response_received_count", 0)) for s in stats),
        start_spread_s=max(opened) - min(opened), crawl_s=time_of(pages, total) - time_of(pages, 1))


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def spawn_workers(stack: ExitStack, run_dir: Path, env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` ``livefleet worker`` processes of the bench's spider, logging to ``run_dir/worker-N.log``
    with their final stats in ``stats-N.json``; killed when ``stack`` closes if still running."""
    procs = []
    for n in range(count):
        log = stack.enter_context((run_dir / f"worker-{n}.log").open("wb"))
        cmd = worker_command([SPIDER], idle_close=IDLE_CLOSE_S, stats_file=run_dir / f"stats-{n}.json")
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(_reap, proc)
        procs.append(proc)
    return procs


def same_documents(one: ScaleRun, two: ScaleRun) -> str | None:
    """Why the two runs do not count as the same crawl, or None."""
    for name in sorted(set(one.docs) | set(two.docs)):
        a, b = one.docs.get(name, 0), two.docs.get(name, 0)
        if abs(a - b) > DOC_TOLERANCE * max(a, b, 1):
            return f"{name}: {a} documents with one worker, {b} with two"
    return None


def _ours(run: ScaleRun) -> float:
    """Cores the fleet and its servers used in the window (everything but the rest of the machine)."""
    return sum(v for k, v in run.cores.items() if k != "other")


def _rows(name: str, one: ScaleRun, two: ScaleRun, latency: float,
          concurrency: int) -> list[tuple[str, object, int]]:
    rows: list[tuple[str, object, int]] = [(name, round(two.pages_per_s / one.pages_per_s, 3), 0)]
    rows.append((f"{name}_items_ratio", round(two.items_per_s / one.items_per_s, 3) if one.items_per_s else "n/a", 1))
    if latency:
        rows.append((f"{name}_sandbox_latency_s", latency, 1))
        rows.append((f"{name}_bound_per_worker_pages_per_s", round(concurrency / latency, 1), 1))
    else:
        # One worker is bound by its own core (a Scrapy process runs on one); two share the machine's cores with
        # the servers. If every page costs what it cost with one worker, two can reach at most this over one.
        ours = _ours(one)
        share = one.cores.get("workers", 0.0) / ours if ours else 0.0
        ceiling = min(2.0, (psutil.cpu_count() or 1) * share)
        rows.append((f"{name}_cpu_ceiling", round(ceiling, 2), 1))
        # How much of what the cores allow two workers reach (1.0: all of it; the figure itself can then only
        # grow with more cores or cheaper pages).
        rows.append((f"{name}_efficiency", round(two.pages_per_s / one.pages_per_s / ceiling, 3) if ceiling else "n/a",
                     1))
    for run in (one, two):
        label = f"{name}_{run.workers}w"
        rows += [
            (f"{label}_pages_per_s", round(run.pages_per_s, 1), 1),
            (f"{label}_items_per_s", round(run.items_per_s, 1), 1),
            (f"{label}_cpu_cores", " ".join(f"{k}={v:.2f}" for k, v in run.cores.items()), 1),
            (f"{label}_cpu_ms_per_page", " ".join(
                f"{k}={v * 1000 / run.pages_per_s:.2f}" for k, v in run.cores.items() if k != "other"), 1),
            (f"{label}_window", f"{run.window_s:.1f}s of a {run.crawl_s:.1f}s crawl; {run.pages} pages; "
                                f"{run.items} items, {sum(run.docs.values())} documents; responses per worker "
                                f"{' '.join(map(str, run.responses))}; workers opened within "
                                f"{run.start_spread_s:.1f}s", 1),
        ]
    return rows


def latency_seeds(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    """One seed per sub-area of the ``LATENCY_PARENTS`` (about a third of the live rooms), from the area list."""
    tree = sandbox.get(f"/{LIVE_HOST}/room/v1/Area/getList").json()["data"]
    return [{"kind": "area", "parent_area_id": int(parent["id"]), "area_id": int(area["id"]), "max_pages": 10}
            for parent in tree if int(parent["id"]) in LATENCY_PARENTS for area in parent["list"]]


def run(quick: bool, var_dir: Path, quiet_timeout: float = 120, concurrency: int = 16, streamers: int | None = None,
        repeat: int = 1, say: Callable[[str], None] | None = None,
        ) -> tuple[dict[str, float], list[tuple[str, object, int]]]:
    """Both variants, one worker then two (``repeat`` times, alternately, keeping the fastest run of each);
    return the figures by name and the ``(name, value, indent)`` rows to print (each figure, then its details).

    Raises :class:`FleetScaleError` when a run failed or the two runs of a variant stored different documents.
    """
    def note(text: str) -> None:
        if say is not None:
            say(text)

    var_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    rows: list[tuple[str, object, int]] = []
    others: list[float] = []
    size = streamers or STREAMERS[quick]
    with ExitStack() as stack:
        services = stack.enter_context(owned_services(var_dir / "services"))
        sandbox = stack.enter_context(start_sandbox(
            "--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", str(size),
            log_path=var_dir / "sandbox.log"))
        processes = service_processes(sandbox.proc.pid)
        variants = (("two_workers_vs_one", SEEDS, 0.0),
                    ("two_workers_vs_one_latency_bound", latency_seeds(sandbox), LATENCY_S))
        for name, seeds, latency in variants:
            sandbox.set_config(slow_rate=1.0 if latency else 0.0, slow_seconds=latency)
            runs: dict[int, list[ScaleRun]] = {1: [], 2: []}
            for round_ in range(1, max(1, repeat) + 1):
                for workers in (1, 2):
                    wait_for_quiet(quiet_timeout, f"{name} with {workers} worker(s)")
                    note(f"fleet_scale: {name} round {round_}, {workers} worker(s), {len(seeds)} seed(s), "
                         f"{size} streamers, concurrency {concurrency}, sandbox latency {latency:g}s")
                    runs[workers].append(run_workers(sandbox, processes, services.redis_url, services.mongo_uri,
                                                     var_dir, workers, seeds, concurrency))
            for other in runs[1][1:] + runs[2]:
                problem = same_documents(runs[1][0], other)
                if problem is not None:
                    raise FleetScaleError(f"{name} is invalid: two runs stored different documents ({problem})")
            one, two = (max(runs[n], key=lambda r: r.pages_per_s) for n in (1, 2))
            others += [one.cores.get("other", 0.0), two.cores.get("other", 0.0)]
            figures[name] = two.pages_per_s / one.pages_per_s
            rows += _rows(name, one, two, latency, concurrency)
        sandbox.set_config(slow_rate=0.0)
    busiest = max(others, default=0.0)
    rows.append(("fleet_scale_other_load_max_cores", round(busiest, 2), 1))
    if busiest > QUIET_CORES:
        note(f"WARNING: the rest of the machine used up to {busiest:.2f} cores during a fleet_scale run: "
             "its figures are disturbed")
    return figures, rows
