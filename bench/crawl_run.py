"""Subprocess entry point: run ONE Bilibili crawl and print one JSON line of results.

``python -m bench.crawl_run --mode plain|full --sandbox-url URL --concurrency C ...``

* ``plain``: :class:`BilibiliSpider` under plain Scrapy, seeds given as the
  spider argument ``seeds``, livefleet's settings overridden with the
  in-memory scheduler, no item pipelines and no Redis seed feeder. Items are
  discarded: this is what Scrapy alone does with the same spider and sandbox.
* ``full``: the real worker path: :func:`crawlers.cli.worker.run_worker` itself,
  as ``livefleet worker`` calls it (settings from ``build_settings``: Redis
  scheduler and seen-set, SeedFeeder taking the seeds the parent pushed under
  ``--prefix``, validate -> quarantine -> store pipelines into ``--db``), with
  ``idle_close=1``; its stats come back through the worker's ``--stats-file``.
  Whatever the worker does around the crawl is measured too.

Both runs use the same concurrency, no rate limit, and the timing extension
(:mod:`bench.extension`). The last stdout line is ``BENCH_RESULT {json}``.
With ``--profile FILE`` the crawl runs under cProfile and the stats go to FILE;
``--set NAME=JSON`` (repeatable) overrides one more setting, for what-if runs
when looking for a bottleneck (``make bench`` itself never uses it); so does
``--gc-threshold A,B,C``, which puts the collector's thresholds in place of
the worker's own ``gc.set_threshold`` (``700,10,10`` is Python's default).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from bench.extension import FIRST_RESPONSE, ITEMS, LAST_ITEM

RESULT_PREFIX = "BENCH_RESULT "
TIMING_EXTENSION = "bench.extension.TimingExtension"


def common_overrides(sandbox_url: str, concurrency: int) -> dict[str, Any]:
    """Settings both modes share: same concurrency, no rate limit, quiet logs, the sandbox.

    Only ``spiders.bilibili`` is scanned for spiders: the bench crawls Bilibili, and a
    half-written spider of another platform must not stop it (no effect on the crawl).
    """
    return {
        "SPIDER_MODULES": ["spiders.bilibili"],
        "CONCURRENT_REQUESTS": concurrency,
        "DOWNLOAD_SLOTS": {"bilibili": {"concurrency": concurrency, "delay": 0, "jitter": 0}},
        "LIVEFLEET_IDENTITY_RATES": {},  # nor a fleet-wide one per egress identity
        "LIVEFLEET_FLEET_RATES": {},  # nor a ceiling over all identities
        "LOG_LEVEL": "WARNING",
        "LIVEFLEET_SANDBOX_URL": sandbox_url,
    }


def _with_timing(extensions: dict[str, Any]) -> dict[str, Any]:
    return {**extensions, TIMING_EXTENSION: 900}


def plain_settings(sandbox_url: str, concurrency: int) -> Settings:
    """livefleet's settings turned into plain Scrapy: in-memory scheduler, no pipelines, no Redis
    (no seed feeder, no heartbeat or fleet stats: nothing that would start an embedded server)."""
    settings = Settings()
    settings.setmodule("settings.scrapy_settings", priority="project")
    overrides = common_overrides(sandbox_url, concurrency) | {
        "SCHEDULER": "scrapy.core.scheduler.Scheduler",
        "ITEM_PIPELINES": {},
        "LIVEFLEET_SEEDS_ENABLED": False,
        "LIVEFLEET_HEARTBEAT_SECONDS": 0,
        "LIVEFLEET_EMBEDDED_SERVICES": False,  # the services add-on would start (and leave) Redis and SecantusDB
        "EXTENSIONS": _with_timing(settings.getdict("EXTENSIONS")),
    }
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    return settings


def full_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What the bench sets on top of the worker's own settings (same as the plain run's, plus its keys)."""
    base = Settings()
    base.setmodule("settings.scrapy_settings")
    return common_overrides(args.sandbox_url, args.concurrency) | {
        "LIVEFLEET_KEY_PREFIX": args.prefix,
        "LIVEFLEET_MONGO_DB": args.db,
        "EXTENSIONS": _with_timing(base.getdict("EXTENSIONS")),
    }


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    """Plain Scrapy in this process; returns the crawler's stats."""
    from spiders.bilibili.spider import BilibiliSpider

    settings = plain_settings(args.sandbox_url, args.concurrency)
    for name, value in extra_settings(args.set).items():
        settings.set(name, value, priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(BilibiliSpider)
    process.crawl(crawler, seeds=args.seeds)
    process.start()
    assert crawler.stats is not None
    return crawler.stats.get_stats()


def run_full(args: argparse.Namespace) -> dict[str, Any]:
    """``crawlers.cli.worker.run_worker`` in this process; returns the spider's stats from its stats file."""
    from crawlers.cli.worker import read_worker_stats, run_worker
    from settings.config import Config

    var_dir = Path(args.var_dir)
    config = Config(redis_url=args.redis_url, mongo_uri=args.mongo_uri, mongo_db=args.db, var_dir=var_dir,
                    key_prefix=args.prefix, sandbox_url=args.sandbox_url, concurrency=args.concurrency)
    stats_file = var_dir / f"worker-stats-{args.prefix}.json"
    run_worker(config, ["bilibili"], idle_close=args.idle_close, stats_file=stats_file,
               overrides=full_overrides(args) | extra_settings(args.set))
    stats: dict[str, Any] = read_worker_stats(stats_file)["bilibili"]
    return stats


class GcTimer:
    """CPU seconds the cyclic garbage collector spends, per generation (via ``gc.callbacks``).

    A crawler holding many items in memory (waiting for a slow store) pays for it in
    full (generation 2) collections, each walking every live object.
    """

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.thread_time() - self._started
            self.collections[generation] += 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the crawl to its end; return the figures the parent needs."""
    started = time.monotonic()
    if args.gc_threshold:
        gc.set_threshold(*(int(n) for n in args.gc_threshold.split(",")))
        gc.set_threshold = lambda *_: None  # what-if: the worker's own threshold is the one replaced
    gc_timer = GcTimer()
    gc.callbacks.append(gc_timer)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    stats = run_plain(args) if args.mode == "plain" else run_full(args)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    first, last = stats.get(FIRST_RESPONSE), stats.get(LAST_ITEM)
    return {
        "mode": args.mode,
        "items": int(stats.get("item_scraped_count", 0)),
        "items_signalled": int(stats.get(ITEMS, 0)),
        "first_response": first,
        "last_item": last,
        "window_s": (last - first) if first is not None and last is not None else None,
        "process_wall_s": time.monotonic() - started,
        "process_cpu_s": usage.ru_utime + usage.ru_stime,
        "finish_reason": stats.get("finish_reason"),
        "responses": int(stats.get("response_received_count", 0)),
        "item_dropped": int(stats.get("item_dropped_count", 0)),
        "gc_seconds": gc_timer.seconds,
        "gc_collections": gc_timer.collections,
        "gc_threshold": gc.get_threshold(),
        "stats": {k: v for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)},
    }


def extra_settings(pairs: list[str]) -> dict[str, Any]:
    """``--set NAME=JSON`` pairs as settings (a value that is not JSON is taken as a string)."""
    extra: dict[str, Any] = {}
    for pair in pairs:
        name, _, raw = pair.partition("=")
        try:
            extra[name] = json.loads(raw)
        except ValueError:
            extra[name] = raw
    return extra


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.crawl_run", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("plain", "full"), required=True)
    p.add_argument("--sandbox-url", required=True)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seeds", default="[]", help="plain mode: JSON list of seeds (spider argument)")
    p.add_argument("--redis-url", help="full mode")
    p.add_argument("--mongo-uri", help="full mode")
    p.add_argument("--prefix", help="full mode: Redis key prefix (seeds already pushed there)")
    p.add_argument("--db", help="full mode: MongoDB database name")
    p.add_argument("--var-dir", default="var", help="full mode: livefleet var dir (spool, worker stats file)")
    p.add_argument("--idle-close", type=float, default=1.0, help="full mode: LIVEFLEET_IDLE_CLOSE_SECONDS")
    p.add_argument("--profile", help="write cProfile stats of the crawl to this file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=JSON", help="override one more setting")
    p.add_argument("--gc-threshold", metavar="A,B,C", help="what-if: these GC thresholds instead of the worker's")
    args = p.parse_args(argv)
    if args.mode == "full" and not all((args.redis_url, args.mongo_uri, args.prefix, args.db)):
        p.error("--mode full needs --redis-url, --mongo-uri, --prefix and --db")
    return args


def main(argv: list[str] | None = None) -> int:
    result = run(parse_args(argv))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0 if result["finish_reason"] == "finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
