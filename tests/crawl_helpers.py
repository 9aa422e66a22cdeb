"""Run real worker processes against a sandbox, as the integration tests' common step."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import redis as redis_lib

from crawlers.queue.keys import SpiderKeys
from crawlers.queue.seeds import push_seeds
from crawlers.sandbox_process import SandboxProcess
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]


def run_crawl(tmp_path: Path, sandbox: SandboxProcess, redis_url: str, mongo_uri: str, *, spider: str,
              seeds: list[dict[str, Any]], workers: int = 1, rate: float = 0, timeout: float = 300,
              **env: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Push ``seeds`` for ``spider``, run ``workers`` worker processes until the fleet is idle.

    Returns (key prefix, database name, the final Scrapy stats of each worker).
    """
    prefix, db_name = f"t{uuid.uuid4().hex[:8]}", f"crawl_{uuid.uuid4().hex[:8]}"
    client = redis_lib.Redis.from_url(redis_url)
    push_seeds(client, SpiderKeys(prefix, spider), seeds)
    client.close()
    environment = child_environment(
        REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url, LIVEFLEET_KEY_PREFIX=prefix,
        LIVEFLEET_MONGO_DB=db_name, LIVEFLEET_VAR_DIR=str(tmp_path), LIVEFLEET_LOG_LEVEL="INFO",
        **{f"LIVEFLEET_RATE_{spider.upper()}": str(rate)}, **env)
    procs = []
    for n in range(workers):
        log = (tmp_path / f"worker-{n}.log").open("wb")
        cmd = [sys.executable, "-m", "crawlers", "worker", "--spider", spider, "--idle-close", "2",
               "--stats-file", str(tmp_path / f"stats-{n}.json")]
        procs.append((subprocess.Popen(cmd, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log))
    for proc, log in procs:
        try:
            proc.wait(timeout=timeout)
        finally:
            log.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for n, (proc, _) in enumerate(procs):
        tail = (tmp_path / f"worker-{n}.log").read_text(errors="replace")[-4000:]
        assert proc.returncode == 0, f"worker {n} failed:\n{tail}"
    stats = [json.loads((tmp_path / f"stats-{n}.json").read_text())["spiders"][spider] for n in range(workers)]
    return prefix, db_name, stats


class Fleet:
    """Worker processes started in the background, for tests that act on a crawl while it runs."""

    def __init__(self, tmp_path: Path, sandbox: SandboxProcess, redis_url: str, mongo_uri: str, *, spider: str,
                 rate: float = 0, **env: str) -> None:
        self.tmp_path, self.spider = tmp_path, spider
        self.prefix, self.db_name = f"t{uuid.uuid4().hex[:8]}", f"drill_{uuid.uuid4().hex[:8]}"
        self.keys = SpiderKeys(self.prefix, spider)
        self.environment = child_environment(
            REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_SANDBOX_URL=sandbox.url,
            LIVEFLEET_KEY_PREFIX=self.prefix, LIVEFLEET_MONGO_DB=self.db_name, LIVEFLEET_VAR_DIR=str(tmp_path),
            LIVEFLEET_LOG_LEVEL="INFO", **{f"LIVEFLEET_RATE_{spider.upper()}": str(rate)}, **env)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, idle_close: float = 2) -> None:
        for _ in range(count):
            n = len(self.procs)
            with (self.tmp_path / f"worker-{n}.log").open("wb") as log:
                cmd = [sys.executable, "-m", "crawlers", "worker", "--spider", self.spider,
                       "--idle-close", str(idle_close), "--stats-file", str(self.tmp_path / f"stats-{n}.json")]
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
            stats.append(json.loads((self.tmp_path / f"stats-{n}.json").read_text())["spiders"][self.spider])
        return stats

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def stat_sum(stats: list[dict[str, Any]], key: str) -> int:
    """A counter summed over workers."""
    return sum(int(s.get(key, 0)) for s in stats)
