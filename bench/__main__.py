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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import AT_MOST, TARGETS
from bench.crawl import CrawlError, CrawlResult, CrawlSetup, crawl_pair, service_processes
from bench.machine import QUIET_CORES, wait_for_quiet
from bench.store import StoreRate, build_records, bulk_plain_set_rate, bulk_rate, single_rate
from crawlers.services.lifecycle import owned_services
from sandbox.process import start_sandbox

#: Largest relative difference of the two crawls' item counts still called "the same crawl".
ITEM_TOLERANCE = 0.01
#: The figures :func:`run` measures (the others have modules of their own: render, dedup, fleet_rate).
STORE_AND_CRAWL = frozenset({"full_stack_vs_plain_scrapy", "bulk_vs_single_store"})
#: ``--only`` names of the fleet rate benchmark.
FLEET_RATE = frozenset({"fleet_rate", "fleet_rate_error"})
#: ``--only`` names of the dedup benchmark (Bloom filter vs Redis set, bench/dedup.py).
DEDUP = frozenset({"dedup", "dedup_bytes_per_fingerprint"})
#: ``--only`` names of the fleet scaling benchmark (two workers over one, bench/fleet_scale.py).
FLEET_SCALE = frozenset({"fleet_scale", "two_workers_vs_one"})
#: ``--only`` names of the monitor benchmark (bench/monitor.py).
MONITOR = frozenset({"monitor", "monitor_first_snapshot_s", "monitor_interval_jitter"})
#: ``--only`` names of the egress benchmark and the sizing coefficients it measures (bench/egress.py).
EGRESS_FIGURES = frozenset({"egress_scaling_4_vs_1", "egress_blocked_share", "identity_rate_error"})
SIZING = frozenset({"sizing", "sizing_requests_per_room_tick", "sizing_worker_cpu_ms_per_page",
                    "sizing_redis_round_trips_per_page", "sizing_mongo_writes_per_page",
                    "sizing_store_cpu_ms_per_page"})
EGRESS = frozenset({"egress"}) | EGRESS_FIGURES | SIZING
#: ``--only`` names of the live-session benchmark (bench/sessions.py).
WATCH = frozenset({"watch", "live_discovery_p95_s", "alert_latency_p95_s", "monitors_per_worker"})
SESSIONS = frozenset({"sessions", "gmv_estimate_error_60s", "gmv_bounds_coverage", "explanation_timeline_recall",
                      "session_builder_vs_store"})


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is."""

    streamers: int
    max_pages: int
    records: int


FULL = Sizes(streamers=3000, max_pages=10, records=3000)
QUICK = Sizes(streamers=400, max_pages=10, records=600)


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def line(name: str, value: object, indent: int = 0) -> None:
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    print(f"{'  ' * indent}{name}: {value}", flush=True)


def lines(rows: list[tuple[str, object, int]]) -> None:
    for name, value, indent in rows:
        line(name, value, indent)


def cores(busy: dict[str, float]) -> str:
    return " ".join(f"{name}={share:.2f}" for name, share in sorted(busy.items()))


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
        gc_s, gc_n = result.data.get("gc_seconds", [0, 0, 0]), result.data.get("gc_collections", [0, 0, 0])
        line(f"{label}_gc_full_collections_s", f"{gc_s[2]:.2f} ({gc_n[2]} runs; all generations {sum(gc_s):.2f})", 1)
    return ratio


def report_store(bulk: StoreRate, single: StoreRate, plain_set: StoreRate | None) -> float:
    ratio = bulk.per_s / single.per_s
    line("bulk_vs_single_store", round(ratio, 3))
    line("bulk_docs_per_s", bulk.per_s, 1)
    line("single_docs_per_s", single.per_s, 1)
    if plain_set is not None:
        line("bulk_plain_set_docs_per_s", plain_set.per_s, 1)
    line("store_records", f"{bulk.docs} ({' '.join(f'{k}={v}' for k, v in bulk.counts.items())} stored)", 1)
    if bulk.operations is not None:
        line("bulk_operations", f"{bulk.operations} (records of one entity in a batch share one upsert)", 1)
    line("same_documents_stored", "yes" if bulk.counts == single.counts else f"NO: single {single.counts}", 1)
    for label, rate in (("bulk", bulk), ("single", single)):
        line(f"{label}_client_cpu_ms_per_doc", rate.client_cpu_s * 1000 / rate.docs, 1)
        if rate.server_cpu_s is not None:
            line(f"{label}_server_cpu_ms_per_doc", rate.server_cpu_s * 1000 / rate.docs, 1)
        line(f"{label}_other_load_cores", rate.other_cores, 1)
        line(f"{label}_docs_per_s_by_500", " ".join(f"{x:.0f}" for x in rate.chunks_per_s), 1)
    return ratio


def run(args: argparse.Namespace, sizes: Sizes, var_dir: Path) -> tuple[dict[str, float], list[str], float]:
    """Measure, print; return the ratios, the problems that make a figure invalid, the most other load seen."""
    wanted = set(args.only or TARGETS)
    ratios: dict[str, float] = {}
    problems: list[str] = []
    others: list[float] = []
    if not wanted & STORE_AND_CRAWL:  # e.g. --only render: nothing of ours to measure
        return ratios, problems, 0.0
    with ExitStack() as stack:
        say(f"starting embedded Redis + SecantusDB and the sandbox under {var_dir}")
        services = stack.enter_context(owned_services(var_dir / "services"))
        sandbox = stack.enter_context(start_sandbox(
            "--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", str(sizes.streamers),
            log_path=var_dir / "sandbox.log"))
        processes = service_processes(sandbox.proc.pid)
        mongo = processes.get("mongo")
        say(f"store: building {sizes.records} records from sandbox pages with the spider's parser")
        records = build_records(sandbox, sizes.records)
        say("store: warming the server up (one untimed batch of each kind of write)")
        bulk_rate(services.mongo_uri, "bench_store_warmup", records[:500], mongo)
        single_rate(services.mongo_uri, "bench_store_warmup", records[:100], mongo)
        say("store: BulkWriter.write, batches of 500")
        wait_for_quiet(args.quiet_timeout, "the bulk store writes")
        bulk = bulk_rate(services.mongo_uri, "bench_store_bulk", records, mongo)
        single = plain_set = None
        if "bulk_vs_single_store" in wanted:
            say("store: the same records saved one by one through mongoengine")
            wait_for_quiet(args.quiet_timeout, "the one-by-one store writes")
            single = single_rate(services.mongo_uri, "bench_store_single", records, mongo)
            say("store: the same batches as plain $set upserts (diagnostic)")
            wait_for_quiet(args.quiet_timeout, "the plain $set bulk writes")
            plain_set = bulk_plain_set_rate(services.mongo_uri, "bench_store_plain_set", records, mongo)
        if "full_stack_vs_plain_scrapy" in wanted:
            setup = CrawlSetup(
                sandbox_url=sandbox.url, redis_url=services.redis_url, mongo_uri=services.mongo_uri,
                seeds=[{"kind": "areas", "max_pages": sizes.max_pages}], concurrency=args.concurrency,
                var_dir=var_dir, services=processes, quiet_timeout=args.quiet_timeout,
                profile_dir=Path(args.profile) if args.profile else None)
            say(f"crawls: {json.dumps(setup.seeds)}, {sizes.streamers} streamers, concurrency {args.concurrency}")
            plain, full = crawl_pair(setup, args.repeat)
            others += [plain.cpu_busy.get("other", 0.0), full.cpu_busy.get("other", 0.0)]
            ratios["full_stack_vs_plain_scrapy"] = report_crawls(plain, full, bulk)
            low, high = sorted((plain.items, full.items))
            if high - low > ITEM_TOLERANCE * high:
                problems.append(f"full_stack_vs_plain_scrapy is invalid: plain Scrapy scraped {plain.items} items, "
                                f"the full stack {full.items}")
        if single is not None:
            others += [bulk.other_cores, single.other_cores]
            ratios["bulk_vs_single_store"] = report_store(bulk, single, plain_set)
            if bulk.counts != single.counts:
                problems.append("bulk_vs_single_store is invalid: the two sides stored different documents")
        say("stopping everything the bench started")
    busiest = max(others, default=0.0)
    line("other_load_max_cores", round(busiest, 2))
    if busiest > QUIET_CORES:
        say(f"WARNING: the rest of the machine used up to {busiest:.2f} cores during a measurement: "
            "the figures are disturbed; rerun on a quiet machine (or with --repeat 2)")
    return ratios, problems, busiest


def summary(ratios: dict[str, float], problems: list[str], busiest: float) -> str:
    parts = []
    for name, ratio in ratios.items():
        target = TARGETS[name]
        at_most = name in AT_MOST
        verdict = "met" if (ratio <= target if at_most else ratio >= target) else "MISSED"
        if any(problem.startswith(name) for problem in problems):
            verdict = "INVALID"
        shown = f"{ratio:.2f}" if abs(ratio) >= 0.1 else f"{ratio:.2g}"  # a share of 0.003 is not "0.00"
        parts.append(f"{name} {shown} (target {'<=' if at_most else '>='} {target:g}) {verdict}")
    text = "; ".join(parts) or "(no crawl or store benchmark run)"
    if busiest > QUIET_CORES:
        text += f" [disturbed: other load up to {busiest:.2f} cores]"
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--only", action="append",
                   choices=sorted({*TARGETS, "render", "dedup", "fleet_rate", "fleet_scale", "monitor", *EGRESS,
                                   *SESSIONS, *WATCH}),
                   help="run only this benchmark (repeatable)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent requests of both crawls (default 16)")
    p.add_argument("--streamers", type=int, help="sandbox size (default 3000, --quick 400)")
    p.add_argument("--records", type=int, help="records of the store benchmark (default 3000, --quick 600)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run both crawls N times, alternately, and keep the fastest of each (default 1)")
    p.add_argument("--profile", metavar="DIR", help="write cProfile stats of both crawl processes to DIR")
    p.add_argument("--quiet-timeout", type=float, default=120, metavar="SECONDS",
                   help="before each measurement wait up to this long for other load to stop (default 120)")
    p.add_argument("--keep", action="store_true", help="keep the bench's var dir (logs) after the run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(args.streamers or base.streamers, base.max_pages, args.records or base.records)
    var_dir = Path(tempfile.mkdtemp(prefix="livefleet-bench-"))
    keep = args.keep
    try:
        ratios, problems, busiest = run(args, sizes, var_dir)
        if not args.only or DEDUP & set(args.only):
            from bench.dedup import run as dedup_run

            for name, value, indent in dedup_run(args.quick, var_dir / "dedup", say=say):
                line(name, value, indent)
                if indent == 0:
                    ratios[name] = float(value)  # type: ignore[arg-type]
        if not args.only or "render" in args.only:
            from bench.render import run as render_run

            say("render: Douyin room pages in Chromium, tuned vs scrapy-playwright's defaults; memory over 500 pages")
            for name, value in render_run(args.quick, log_dir=var_dir / "render", quiet_timeout=args.quiet_timeout):
                line(name, value)
        if not args.only or FLEET_RATE & set(args.only):
            from bench.fleet_rate import run as fleet_rate_run

            say("fleet_rate: Bilibili at a fleet-wide rate, 1, 2 and 4 workers, rate measured at the sandbox")
            error, rows = fleet_rate_run(args.quick, var_dir / "fleet_rate", args.quiet_timeout, say)
            ratios["fleet_rate_error"] = error
            lines(rows)
        if not args.only or FLEET_SCALE & set(args.only):
            from bench.fleet_scale import run as fleet_scale_run

            say("fleet_scale: the same Bilibili crawl by one worker, then two; CPU-bound, then latency-bound")
            figures, rows = fleet_scale_run(args.quick, var_dir / "fleet_scale", args.quiet_timeout,
                                            args.concurrency, args.streamers, args.repeat, say)
            ratios["two_workers_vs_one"] = figures["two_workers_vs_one"]
            lines(rows)
        if not args.only or MONITOR & set(args.only):
            from bench.monitor import run as monitor_run

            say("monitor: first snapshot after monitor add, then 50 monitors' interval jitter (Taobao, one worker)")
            figures, rows = monitor_run(args.quick, var_dir / "monitor", args.quiet_timeout, say)
            ratios.update(figures)
            lines(rows)
        if not args.only or EGRESS & set(args.only):
            from bench.egress import run as egress_run

            say("egress: Bilibili through 4 proxies, then 1, each at the rate the sandbox grants an address; "
                "then the sizing coefficients (monitor ticks on every platform)")
            figures, rows = egress_run(args.quick, var_dir / "egress", args.quiet_timeout, say)
            ratios.update(figures)
            lines(rows)
        if not args.only or WATCH & set(args.only):
            from bench.watch import run as watch_run

            say("watch: 2,000 watched streamers (discovery and alert latency), check costs, monitors per worker")
            ratios.update(watch_run(args.quick, var_dir / "watch", args.quiet_timeout, say, lines))
        if not args.only or SESSIONS & set(args.only):
            from bench.sessions import main as sessions_run

            wait_for_quiet(args.quiet_timeout, "the session benchmarks")
            ratios.update(sessions_run(line, say, streamers=sizes.streamers, var_dir=var_dir, quick=args.quick))
        keep = keep or bool(problems)
    except (CrawlError, RuntimeError) as exc:  # RenderBenchError is a RuntimeError
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
    line("targets", summary(ratios, problems, busiest))
    for problem in problems:
        print(f"bench error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
