"""``livefleet worker``: one worker process of the fleet.

A worker runs one Scrapy crawler per platform spider in one process, all fed
from the shared Redis queue and writing to the shared store. Start as many as
you like, on as many machines as you like, against the same Redis and MongoDB.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawlers.cli.logs import hand_over_to_scrapy
from crawlers.services.lifecycle import Services, ensure_services
from settings.config import Config

logger = logging.getLogger(__name__)


def build_settings(config: Config, services: Services, **overrides: Any) -> Settings:
    """livefleet's Scrapy settings pointed at ``services``, plus ``overrides`` (setting name: value)."""
    settings = Settings()
    settings.setmodule("settings.scrapy_settings", priority="project")
    settings.set("LIVEFLEET_REDIS_URL", services.redis_url, priority="cmdline")
    settings.set("LIVEFLEET_MONGO_URI", services.mongo_uri, priority="cmdline")
    settings.set("LIVEFLEET_VAR_DIR", str(config.var_dir), priority="cmdline")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    return settings


def run_worker(
    config: Config,
    spiders: Sequence[str],
    *,
    idle_close: float = 0,
    stats_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    sessions: bool = False,
    watch: bool = False,
) -> int:
    """Run the spiders until they close; return 0 when every one finished cleanly.

    ``sessions``: also run the session builder (``crawlers/sessions``) in a thread of this process,
    for small deployments and the demo; it stops with the spiders, after a last round. ``watch``: also run
    the watcher (``crawlers/watch``) for the platforms of ``spiders``, in a thread."""
    overrides = {"LIVEFLEET_IDLE_CLOSE_SECONDS": idle_close, **(overrides or {})}  # an -s value wins
    services = ensure_worker_services(config, overrides)
    builder = _start_session_builder(config, services) if sessions else None
    watcher = _WatchThread(config, services, spiders) if watch else None
    settings = build_settings(config, services, **overrides)
    hand_over_to_scrapy(settings, json_lines=config.log_format == "json")  # from here on, LOG_LEVEL and co.
    process = CrawlerProcess(settings)
    crawlers = [process.create_crawler(name) for name in spiders]
    for crawler in crawlers:
        process.crawl(crawler)
    # Items wait in the store's batches until they are written, so the heap holds many live
    # objects; full collections every few hundred allocations then cost a third of the
    # crawl's CPU (see bench/README.md). Collect the old generation less often.
    gc.set_threshold(700, 10, 100)
    process.start()
    if watcher is not None:
        watcher.stop()
    if builder is not None:
        builder.stop()
    report = {
        crawler.spider.name if crawler.spider else name: _jsonable(crawler.stats.get_stats())
        for name, crawler in zip(spiders, crawlers, strict=True)
    }
    if stats_file is not None:
        stats_file.parent.mkdir(parents=True, exist_ok=True)
        stats_file.write_text(json.dumps({"pid": os.getpid(), "spiders": report}, indent=1), encoding="utf-8")
    reasons = {stats.get("finish_reason") for stats in report.values()}
    return 0 if reasons <= {"finished", "shutdown"} else 1


def ensure_worker_services(config: Config, overrides: dict[str, Any]) -> Services:
    """The Redis and MongoDB a worker with these ``-s`` settings uses, embedded ones started if needed.

    REDIS_URL / MONGO_URI given as settings (-s) mean what the environment variables mean, as in a plain
    `scrapy crawl` (crawlers/services/addon.py); an explicit LIVEFLEET_ setting is more specific."""
    redis_url = overrides.get("LIVEFLEET_REDIS_URL") or overrides.get("REDIS_URL") or config.redis_url
    mongo_uri = overrides.get("LIVEFLEET_MONGO_URI") or overrides.get("MONGO_URI") or config.mongo_uri
    return ensure_services(config.var_dir, redis_url=redis_url, mongo_uri=mongo_uri)


def worker_command(spiders: Sequence[str], *, idle_close: float = 0, stats_file: Path | None = None,
                   sessions: bool = False, watch: bool = False, settings: dict[str, str] | None = None) -> list[str]:
    """The command line of a ``livefleet worker`` child process (demo, tests, benchmarks)."""
    cmd = [sys.executable, "-m", "crawlers", "worker", "--idle-close", str(idle_close)]
    for name, setting in (settings or {}).items():
        cmd += ["-s", f"{name}={setting}"]
    if sessions:
        cmd.append("--sessions")
    if watch:
        cmd.append("--watch")
    for spider in spiders:
        cmd += ["--spider", spider]
    if stats_file is not None:
        cmd += ["--stats-file", str(stats_file)]
    return cmd


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop a worker child started from :func:`worker_command`: SIGTERM lets it finish its requests in
    flight and store what it holds; killed when it has not ended ``timeout`` seconds later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_worker_stats(stats_file: Path) -> dict[str, dict[str, Any]]:
    """The final stats per spider that a worker wrote to its ``--stats-file``."""
    return json.loads(stats_file.read_text(encoding="utf-8"))["spiders"]


class _SessionThread:
    """The session builder on a thread of the worker (``--sessions``)."""

    def __init__(self, config: Config, services: Services) -> None:
        from crawlers.redis.connection import get_redis
        from crawlers.sessions.service import SessionBuilder
        from pipelines.p300_store import open_store

        self.client, db = open_store(services.mongo_uri, config.mongo_db)
        self.builder = SessionBuilder(db, get_redis(services.redis_url), config.key_prefix,
                                      consumer=f"{os.uname().nodename}-{os.getpid()}-sessions")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.builder.run, args=(self.stopping,), name="session-builder",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        from pipelines.p300_store import close_store

        self.stopping.set()
        self.thread.join(timeout=30)
        try:
            self.builder.drain()  # what the spiders stored last
        except Exception:  # noqa: BLE001 - a builder that cannot finish leaves its messages pending
            logger.exception("session builder: last round failed; its messages stay pending for the next builder")
        close_store(self.client)


class _WatchThread:
    """The watcher on a thread of the worker (``--watch``): the worker's platforms' watched accounts."""

    def __init__(self, config: Config, services: Services, spiders: Sequence[str]) -> None:
        from crawlers.redis.connection import get_redis
        from crawlers.watch.service import Watcher
        from pipelines.p300_store import open_store
        from spiders.platforms import PLATFORMS

        platforms = [p for p, info in PLATFORMS.items() if info.spider in spiders]
        self.client, db = open_store(services.mongo_uri, config.mongo_db)
        self.watcher = Watcher(get_redis(services.redis_url), config.key_prefix, db, platforms=platforms,
                               check_interval=config.watch_interval,
                               consumer=f"{os.uname().nodename}-{os.getpid()}-watch", allow=config.webhook_allow)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stopping,), name="watcher", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        from pipelines.p300_store import close_store

        self.stopping.set()
        self.thread.join(timeout=40)
        close_store(self.client)


def _start_session_builder(config: Config, services: Services) -> _SessionThread:
    return _SessionThread(config, services)


def _jsonable(stats: dict[str, Any]) -> dict[str, Any]:
    return {key: (value.isoformat() if hasattr(value, "isoformat") else value) for key, value in stats.items()}


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a worker of the fleet until stopped (or idle)")
    p.add_argument("--spider", action="append", default=[], help="spider to run (default: all)")
    p.add_argument("--idle-close", type=float, default=0,
                   help="exit after this many seconds with nothing to do fleet-wide (default: never)")
    p.add_argument("--stats-file", type=Path, help="write the final Scrapy stats here as JSON")
    p.add_argument("--sessions", action="store_true",
                   help="also build live_sessions from the feeds in this process (small deployments, the demo)")
    p.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a Scrapy or LIVEFLEET_* setting of settings/defaults.py for this worker (repeatable)")
    p.add_argument("--watch", action="store_true",
                   help="also run the watcher for this worker's platforms: watched accounts going live start "
                        "monitors, alerts are sent (any number of workers may)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run N worker processes with these options and keep them running: a crashed one is "
                        "restarted, SIGTERM stops them all; 0: one per core (crawlers/cli/supervise.py). With "
                        "--stats-file, worker K writes NAME-K.json")


def spider_names() -> list[str]:
    """The spiders a worker can run: what Scrapy's spider loader finds in ``SPIDER_MODULES``."""
    from scrapy.spiderloader import get_spider_loader

    settings = Settings()
    settings.setmodule("settings.scrapy_settings", priority="project")
    return sorted(get_spider_loader(settings).list())


def run(args: Any, config: Config) -> int:
    from spiders.platforms import PLATFORMS

    spiders = args.spider or [info.spider for info in PLATFORMS.values()]
    known = spider_names()
    unknown = [name for name in spiders if name not in known]
    if unknown:  # before any server starts
        raise ValueError(f"no spider {', '.join(map(repr, unknown))}; the spiders are: {', '.join(known)}")
    overrides = {}
    for item in args.set:
        name, sep, setting = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"-s takes NAME=VALUE, got {item!r}")
        overrides[name.strip()] = setting
    if getattr(args, "processes", 1) != 1:
        from crawlers.cli.supervise import supervise_workers

        return supervise_workers(config, args, spiders, overrides)
    return run_worker(config, spiders, idle_close=args.idle_close, stats_file=args.stats_file,
                      sessions=args.sessions, watch=args.watch, overrides=overrides)
