"""``python -m bench`` (``make bench``): run the benchmarks side by side and print ``name: value`` lines.

Starts its own embedded Redis and SecantusDB (``owned_services``) and a frozen,
chaos-free, fault-free sandbox, measures, prints, and stops everything it
started, also on errors and Ctrl-C. Progress goes to stderr, figures to
stdout. Exit status 0 when the figures were measured (targets met or not),
1 on an error (a crawl failed, the two crawls scraped different item counts).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import TARGETS
from bench.crawl import CrawlError, CrawlResult, run_crawl, service_processes
from bench.store import StoreRate, build_records, bulk_plain_set_rate, bulk_rate, single_rate
from crawlers.queue.connection import get_redis
from crawlers.queue.keys import SpiderKeys
from crawlers.queue.seeds import push_seeds
from crawlers.sandbox_process import start_sandbox
from crawlers.services.registry import owned_services

#: Largest relative difference of the two crawls' item counts still called "the same crawl".
ITEM_TOLERANCE = 0.01


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is."""

    streamers: int
    max_pages: int
    records: int


FULL = Sizes(streamers=3000, max_pages=10, records=3000)
QUICK = Sizes(streamers=400, max_pages=10, records=600)


class BenchError(RuntimeError):
    """The figures could not be measured."""


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def line(name: str, value: object, indent: int = 0) -> None:
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    print(f"{'  ' * indent}{name}: {value}", flush=True)


def cores(busy: dict[str, float]) -> str:
    return " ".join(f"{name}={share:.2f}" for name, share in sorted(busy.items()))


def crawl_pair(args: argparse.Namespace, sizes: Sizes, var_dir: Path, redis_url: str, mongo_uri: str,
               sandbox_url: str, sandbox_pid: int) -> tuple[CrawlResult, CrawlResult]:
    """The plain Scrapy crawl, then the full-stack crawl, of the same seeds against the same sandbox."""
    seeds = [{"kind": "areas", "max_pages": sizes.max_pages}]
    common = ["--sandbox-url", sandbox_url, "--concurrency", str(args.concurrency)]
    procs = service_processes(sandbox_pid)
    profile = (lambda mode: ["--profile", str(Path(args.profile).absolute() / f"{mode}.prof")]) if args.profile \
        else (lambda mode: [])
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    say(f"plain Scrapy crawl: {json.dumps(seeds)}, {sizes.streamers} streamers, concurrency {args.concurrency}")
    plain = run_crawl(["--mode", "plain", *common, "--seeds", json.dumps(seeds), *profile("plain")],
                      log_path=var_dir / "crawl-plain.log", services=procs)
    prefix, db_name = f"bench{uuid.uuid4().hex[:8]}", f"bench_crawl_{uuid.uuid4().hex[:8]}"
    redis = get_redis(redis_url)
    keys = SpiderKeys(prefix, "bilibili")
    push_seeds(redis, keys, seeds)
    say(f"full-stack crawl: Redis prefix {prefix}, database {db_name}")
    try:
        full = run_crawl(["--mode", "full", *common, "--redis-url", redis_url, "--mongo-uri", mongo_uri,
                          "--prefix", prefix, "--db", db_name, "--var-dir", str(var_dir / "worker"),
                          *profile("full")],
                         log_path=var_dir / "crawl-full.log", services=procs)
    finally:
        redis.delete(*keys.all())
        from pymongo import MongoClient

        with MongoClient(mongo_uri) as client:
            client.drop_database(db_name)
    return plain, full


def report_crawls(plain: CrawlResult, full: CrawlResult, store: StoreRate) -> float:
    ratio = full.items_per_s / plain.items_per_s
    line("full_stack_vs_plain_scrapy", round(ratio, 3))
    line("plain_scrapy_items_per_s", plain.items_per_s, 1)
    line("full_stack_items_per_s", full.items_per_s, 1)
    line("store_bulk_upserts_per_s", store.per_s, 1)
    line("plain_scrapy_items", plain.items, 1)
    line("full_stack_items", full.items, 1)
    line("plain_scrapy_window_s", plain.window_s, 1)
    line("full_stack_window_s", full.window_s, 1)
    for label, result in (("plain_scrapy", plain), ("full_stack", full)):
        crawler = result.cpu_busy.get("crawler")
        if crawler is not None:
            line(f"{label}_crawler_cpu_ms_per_item", crawler * result.window_s * 1000 / result.items, 1)
        line(f"{label}_cpu_cores", cores(result.cpu_busy), 1)
    return ratio


def report_store(bulk: StoreRate, single: StoreRate, plain_set: StoreRate | None) -> float:
    ratio = bulk.per_s / single.per_s
    line("bulk_vs_single_store", round(ratio, 3))
    line("bulk_docs_per_s", bulk.per_s, 1)
    line("single_docs_per_s", single.per_s, 1)
    if plain_set is not None:
        line("bulk_plain_set_docs_per_s", plain_set.per_s, 1)
    line("store_records", f"{bulk.docs} ({' '.join(f'{k}={v}' for k, v in bulk.counts.items())} stored)", 1)
    line("same_documents_stored", "yes" if bulk.counts == single.counts else f"NO: single {single.counts}", 1)
    for label, rate in (("bulk", bulk), ("single", single)):
        line(f"{label}_client_cpu_ms_per_doc", rate.client_cpu_s * 1000 / rate.docs, 1)
        if rate.server_cpu_s is not None:
            line(f"{label}_server_cpu_ms_per_doc", rate.server_cpu_s * 1000 / rate.docs, 1)
    return ratio


def run(args: argparse.Namespace, sizes: Sizes, var_dir: Path) -> dict[str, float]:
    wanted = set(args.only or TARGETS)
    ratios: dict[str, float] = {}
    with ExitStack() as stack:
        say(f"starting embedded Redis + SecantusDB and the sandbox under {var_dir}")
        services = stack.enter_context(owned_services(var_dir / "services"))
        sandbox = stack.enter_context(start_sandbox(
            "--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", str(sizes.streamers),
            log_path=var_dir / "sandbox.log"))
        mongo = service_processes(sandbox.proc.pid).get("mongo")
        say(f"store: building {sizes.records} records from sandbox pages with the spider's parser")
        records = build_records(sandbox, sizes.records)
        say("store: BulkWriter.write, batches of 500")
        bulk = bulk_rate(services.mongo_uri, "bench_store_bulk", records, mongo)
        if "full_stack_vs_plain_scrapy" in wanted:
            plain, full = crawl_pair(args, sizes, var_dir, services.redis_url, services.mongo_uri, sandbox.url,
                                     sandbox.proc.pid)
            ratios["full_stack_vs_plain_scrapy"] = report_crawls(plain, full, bulk)
            low, high = sorted((plain.items, full.items))
            if high - low > ITEM_TOLERANCE * high:
                raise BenchError(f"the two crawls differ: plain scraped {plain.items} items, full {full.items}")
        if "bulk_vs_single_store" in wanted:
            say("store: the same records saved one by one through mongoengine")
            single = single_rate(services.mongo_uri, "bench_store_single", records, mongo)
            plain_set = bulk_plain_set_rate(services.mongo_uri, "bench_store_plain_set", records, mongo)
            ratios["bulk_vs_single_store"] = report_store(bulk, single, plain_set)
        say("stopping everything the bench started")
    return ratios


def summary(ratios: dict[str, float]) -> str:
    parts = []
    for name, ratio in ratios.items():
        target = TARGETS[name]
        verdict = "met" if ratio >= target else "MISSED"
        parts.append(f"{name} {ratio:.2f} (target >= {target:g}) {verdict}")
    return "; ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--only", action="append", choices=sorted(TARGETS), help="run only this benchmark (repeatable)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent requests of both crawls (default 16)")
    p.add_argument("--streamers", type=int, help="sandbox size (default 3000, --quick 400)")
    p.add_argument("--records", type=int, help="records of the store benchmark (default 3000, --quick 600)")
    p.add_argument("--profile", metavar="DIR", help="write cProfile stats of both crawl processes to DIR")
    p.add_argument("--keep", action="store_true", help="keep the bench's var dir (logs) after the run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(args.streamers or base.streamers, base.max_pages, args.records or base.records)
    var_dir = Path(tempfile.mkdtemp(prefix="livefleet-bench-"))
    keep = args.keep
    try:
        ratios = run(args, sizes, var_dir)
    except (BenchError, CrawlError) as exc:
        keep = True
        print(f"bench error: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            say(f"logs kept in {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
    line("targets", summary(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
