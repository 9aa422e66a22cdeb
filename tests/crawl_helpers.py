"""Run real worker processes against a sandbox, as the integration tests' common step."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis as redis_lib

from crawlers.cli.worker import read_worker_stats, worker_command
from crawlers.queue.feeder import push_seeds
from crawlers.redis.keys import SpiderKeys
from sandbox.process import SandboxProcess
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]


class Fleet:
    """Worker processes started in the background, for tests that act on a crawl while it runs."""

    def __init__(self, tmp_path: Path, sandbox: SandboxProcess, redis_url: str, mongo_uri: str, *, spider: str,
                 rate: float = 0, **env: str) -> None:
        self.tmp_path, self.spider = tmp_path, spider
        self.prefix, self.db_name = f"t{uuid.uuid4().hex[:8]}", f"crawl_{uuid.uuid4().hex[:8]}"
        self.redis_url = redis_url
        self.keys = SpiderKeys(self.prefix, spider)
        self.environment = child_environment(
            REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url,
            LIVEFLEET_KEY_PREFIX=self.prefix, LIVEFLEET_MONGO_DB=self.db_name, LIVEFLEET_VAR_DIR=str(tmp_path),
            LIVEFLEET_LOG_LEVEL="INFO", **{f"LIVEFLEET_RATE_{spider.upper()}": str(rate)}, **env)
        self.procs: list[subprocess.Popen[bytes]] = []

    def push_seeds(self, seeds: list[dict[str, Any]]) -> None:
        client = redis_lib.Redis.from_url(self.redis_url)
        try:
            push_seeds(client, self.keys, seeds)
        finally:
            client.close()

    def start(self, count: int = 1, idle_close: float = 2, *, watch: bool = False, sessions: bool = False) -> None:
        for _ in range(count):
            n = len(self.procs)
            with (self.tmp_path / f"worker-{n}.log").open("wb") as log:
                cmd = worker_command([self.spider], idle_close=idle_close, watch=watch, sessions=sessions,
                                     stats_file=self.tmp_path / f"stats-{n}.json")
                self.procs.append(subprocess.Popen(cmd, env=self.environment, cwd=ROOT, stdout=log,
                                                   stderr=subprocess.STDOUT))

    def log(self, n: int) -> str:
        return (self.tmp_path / f"worker-{n}.log").read_text(errors="replace")

    def wait(self, timeout: float = 300) -> list[dict[str, Any] | None]:
        """Wait for every worker; the final stats of each one that exited by itself (None for a killed one)."""
        stats: list[dict[str, Any] | None] = []
        for n, proc in enumerate(self.procs):
            try:
                code = proc.wait(timeout=timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if code < 0:  # killed by a signal, on purpose
                stats.append(None)
                continue
            assert code == 0, f"worker {n} failed:\n{self.log(n)[-4000:]}"
            stats.append(read_worker_stats(self.tmp_path / f"stats-{n}.json")[self.spider])
        return stats

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_crawl(tmp_path: Path, sandbox: SandboxProcess, redis_url: str, mongo_uri: str, *, spider: str,
              seeds: list[dict[str, Any]], workers: int = 1, rate: float = 0, timeout: float = 300,
              **env: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Push ``seeds`` for ``spider``, run ``workers`` worker processes until the fleet is idle.

    Returns (key prefix, database name, the final Scrapy stats of each worker).
    """
    fleet = Fleet(tmp_path, sandbox, redis_url, mongo_uri, spider=spider, rate=rate, **env)
    fleet.push_seeds(seeds)
    fleet.start(workers)
    try:
        stats = fleet.wait(timeout)
    finally:
        fleet.stop()
    assert all(s is not None for s in stats), "a worker was killed"
    return fleet.prefix, fleet.db_name, [s for s in stats if s is not None]


def stat_sum(stats: list[dict[str, Any]], key: str) -> int:
    """A counter summed over workers."""
    return sum(int(s.get(key, 0)) for s in stats)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, *, interval: float = 0.2,
             detail: Callable[[], str] | None = None) -> Any:
    """Poll ``check`` until it returns something true (returned); fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{detail()}" if detail is not None else ""))
