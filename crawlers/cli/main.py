"""``livefleet``: the command line of the fleet (also ``python -m crawlers``).

    livefleet parse --platform bilibili FILE...     parse saved payloads, print JSON lines
    livefleet crawl bilibili --areas                 push seeds to the shared queue
    livefleet worker [--spider bilibili]             run a worker of the fleet
    livefleet sandbox [--streamers N ...]            serve the platform replicas locally
    livefleet demo                                   a short campaign on embedded services
    livefleet summary                                counts of what is in MongoDB
    livefleet status [--json]                        workers, queues, leases, dead letters, rates
    livefleet monitor add douyin URL|ID --every 30s --for 6h   watch a room; monitor list|stop
    livefleet campaign validate|run|runs             campaign files: check, run one now, list runs
    livefleet scheduler [--dir DIR] [--once]         every campaign of a folder on its schedule
    livefleet queue dead|retry-dead                  dead letters: list, or put back into the queue
    livefleet spool replay|status                    write spooled records back to MongoDB
    livefleet services start|status|stop             the embedded Redis / MongoDB
    livefleet feed read COLLECTION --group G [--follow]   stored changes as JSON lines; feed info
    livefleet webhooks [add|list|remove|failures|replay]  deliver changes to webhooks (default: run)
    livefleet api [--host H] [--port P]              the same operations over HTTP (LIVEFLEET_API_TOKEN)
    livefleet stop                                   stop everything livefleet left running
    livefleet rank rooms --platform P --by peak_viewers --since 24h   a reference ranking (crawlers/reports/ranking.py)
    livefleet export rooms --platform P --since 24h --format csv --out F   a collection to JSONL or CSV
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from settings.config import Config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livefleet", description="A crawler fleet for live-commerce data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("parse", help="parse saved payload files, print one JSON object per record")
    p.add_argument("--platform", required=True)
    p.add_argument("--kind", help="payload kind (default: recognised from the file itself)")
    p.add_argument("--url", help="the URL the payload came from (helps recognition)")
    p.add_argument("--fetched-at", type=datetime.fromisoformat, help="ISO time (default: file mtime)")
    p.add_argument("files", nargs="+", metavar="FILE")

    p = sub.add_parser("crawl", help="push seeds for a platform to the shared queue")
    p.add_argument("platform")
    p.add_argument("--areas", action="store_true", help="every area of the area tree")
    p.add_argument("--area", action="append", default=[], metavar="PARENT[:AREA]",
                   help="one area (AREA 0 or omitted: the whole parent area); repeatable")
    p.add_argument("--room", action="append", default=[], metavar="ID",
                   help="a room: Bilibili room id, Douyin web_rid, Kuaishou principalId, Taobao liveId")
    p.add_argument("--streamer", action="append", default=[], metavar="ID",
                   help="a streamer: Bilibili uid, Douyin sec_uid")
    p.add_argument("--seed", action="append", default=[], metavar="JSON",
                   help="any seed the platform's spider takes, as a JSON object (see its module docstring)")
    p.add_argument("--max-pages", type=int, default=5, help="list pages per area (default 5)")
    p.add_argument("--follow", default="rooms,streamers",
                   help="how deep to go from lists: comma list of rooms,streamers,products (default: the spider's)")

    p = sub.add_parser("worker", help="run a worker of the fleet until stopped (or idle)")
    p.add_argument("--spider", action="append", default=[], help="spider to run (default: all)")
    p.add_argument("--idle-close", type=float, default=0,
                   help="exit after this many seconds with nothing to do fleet-wide (default: never)")
    p.add_argument("--stats-file", type=Path, help="write the final Scrapy stats here as JSON")

    sub.add_parser("sandbox", help="serve the platform replicas (options: livefleet sandbox --help)",
                   add_help=False)

    p = sub.add_parser("demo", help="run a short demo campaign on embedded services")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--streamers", type=int, default=300)
    p.add_argument("--timeout", type=float, default=900)

    p = sub.add_parser("summary", help="print counts per collection (and per platform)")
    p.add_argument("--json", action="store_true", help="one JSON object")

    p = sub.add_parser("spool", help="records spooled while MongoDB was down")
    p.add_argument("action", choices=["replay", "status"])

    p = sub.add_parser("services", help="the embedded Redis and MongoDB-compatible servers")
    p.add_argument("action", choices=["start", "status", "stop"])

    sub.add_parser("stop", help="stop every background process livefleet started")

    p = sub.add_parser("queue", help="dead letters: list them, or put them back into the queue")
    p.add_argument("action", choices=["dead", "retry-dead"])
    p.add_argument("--spider", action="append", help="only this spider (repeatable; default: all)")
    p.add_argument("--limit", type=int, default=1_000_000, help="at most this many per spider")
    p.add_argument("--json", action="store_true", help="one JSON object")

    # -- monitors (crawlers/monitor): add, list, stop --
    from crawlers.cli.monitor import add_parser as add_monitor_parser

    add_monitor_parser(sub)

    # -- campaigns (crawlers/campaigns): campaign validate|run|runs, scheduler --
    from crawlers.cli.campaign import add_parsers as add_campaign_parsers

    add_campaign_parsers(sub)

    # -- feeds and webhooks (crawlers/feeds): feed read|info, webhooks [run|add|list|remove|failures|replay] --
    from crawlers.cli.feed import add_parsers as add_feed_parsers

    add_feed_parsers(sub)

    # -- fleet status (crawlers/health/status.py): reads Redis, starts nothing --
    p = sub.add_parser("status", help="workers (live or stale), queues, leases, dead letters, items/min, rates")
    p.add_argument("--json", action="store_true", help="print the same as one JSON document")

    # -- the HTTP API (crawlers/api/app.py): token from LIVEFLEET_API_TOKEN --
    p = sub.add_parser("api", help="serve monitors, campaign runs and status over HTTP (FastAPI, token required)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8800, help="port (default 8800)")
    p.add_argument("--campaigns-dir", type=Path, default=Path("settings/campaigns"),
                   help="the campaign files it can run (default: settings/campaigns)")

    # -- ranking jobs and export (crawlers/reports/ranking.py, crawlers/reports/export.py): read MongoDB --
    p = sub.add_parser("rank", help="rank streamers, rooms or products by MongoDB aggregation")
    p.add_argument("entity", choices=["streamers", "rooms", "products"])
    p.add_argument("--platform", required=True)
    p.add_argument("--by", required=True,
                   choices=["followers", "peak_viewers", "viewers_total", "sales", "sales_growth"])
    p.add_argument("--since", default="24h", help="window start: 30m, 24h, 7d or an ISO time (default 24h)")
    p.add_argument("--limit", type=int, default=20, help="rows (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON document")

    p = sub.add_parser("export", help="write a collection to JSONL or CSV, filtered by platform and time")
    p.add_argument("collection", choices=["streamers", "rooms", "room_snapshots", "products", "product_snapshots",
                                          "quarantine"])
    p.add_argument("--platform", help="only this platform (default: all)")
    p.add_argument("--since", help="from: 30m, 24h, 7d back or an ISO time (default: the beginning)")
    p.add_argument("--until", help="before: same forms as --since (default: now)")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--out", required=True, help="file to write, - for stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sandbox"]:  # the sandbox has its own option parser
        from sandbox.server import main as sandbox_main

        return sandbox_main(args_list[1:]) or 0
    args = _parser().parse_args(args_list)
    config = Config.from_env()
    if args.command != "worker":  # a worker's logging is Scrapy's (LOG_LEVEL), configured once
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args, config)
    except (ValueError, RuntimeError) as exc:
        print(f"livefleet {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    command = args.command
    if command == "parse":
        from crawlers.cli.parse import parse_files

        return parse_files(args.platform, args.files, url=args.url, kind=args.kind, fetched_at=args.fetched_at)
    if command == "crawl":
        return _crawl(args, config)
    if command == "worker":
        from crawlers.cli.worker import run_worker
        from spiders.platforms import PLATFORMS

        spiders = args.spider or [info.spider for info in PLATFORMS.values()]
        return run_worker(config, spiders, idle_close=args.idle_close, stats_file=args.stats_file)
    if command == "demo":
        from crawlers.cli.demo import run_demo

        # `make demo` may be stopped with SIGTERM: unwind like Ctrl-C so what it started is stopped.
        signal.signal(signal.SIGTERM, _interrupt)
        return run_demo(config, workers=args.workers, streamers=args.streamers, timeout=args.timeout)
    if command == "summary":
        return _summary(args, config)
    if command == "spool":
        return _spool(args, config)
    if command in ("services", "stop"):
        return _services("stop" if command == "stop" else args.action, config)
    if command == "queue":
        from crawlers.cli.queue import run_queue

        limit = args.limit if args.action == "retry-dead" else min(args.limit, 20)
        return run_queue(config, args.action, args.spider, limit=limit, as_json=args.json)
    if command == "monitor":
        from crawlers.cli.monitor import run_monitor

        return run_monitor(args, config)
    if command in ("campaign", "scheduler"):
        from crawlers.cli.campaign import run_command

        return run_command(args, config)
    if command in ("feed", "webhooks"):
        from crawlers.cli.feed import run_feed, run_webhooks

        return (run_feed if command == "feed" else run_webhooks)(args, config)
    if command == "status":
        from crawlers.health.status import run_status

        return run_status(config, as_json=args.json)
    if command in ("rank", "export"):
        return _rank_export(args, config)
    if command == "api":
        from crawlers.api.app import run_api

        return run_api(config, host=args.host, port=args.port, campaigns_dir=args.campaigns_dir)
    raise AssertionError(command)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _crawl(args: argparse.Namespace, config: Config) -> int:
    from crawlers.queue.feeder import push_seeds
    from crawlers.redis.connection import get_redis
    from crawlers.redis.keys import SpiderKeys
    from crawlers.services.registry import ensure_services
    from spiders.platforms import platform as get_platform

    info = get_platform(args.platform)
    follow = [f for f in args.follow.split(",") if f]
    seeds: list[dict[str, object]] = []
    if (args.areas or args.area) and info.name != "bilibili":
        raise ValueError("--areas/--area are Bilibili's; other platforms take --seed")
    if args.room and not info.room_key or args.streamer and not info.streamer_key:
        raise ValueError(f"{info.name} takes no --room/--streamer of that kind; use --seed")
    for raw in args.seed:
        try:
            seed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--seed is not JSON ({exc}): {raw!r}") from None
        if not isinstance(seed, dict) or "kind" not in seed:
            raise ValueError(f"--seed must be a JSON object with a kind: {raw!r}")
        seeds.append(seed)
    if args.areas:
        seeds.append({"kind": "areas", "max_pages": args.max_pages, "follow": follow})
    for area in args.area:
        parent, _, sub_area = area.partition(":")
        if not parent.isdigit() or (sub_area and not sub_area.isdigit()):
            raise ValueError(f"--area takes PARENT[:AREA] numbers, got {area!r}")
        seeds.append({"kind": "area", "parent_area_id": int(parent), "area_id": int(sub_area or 0),
                      "max_pages": args.max_pages, "follow": follow})
    seeds += [{"kind": "room", str(info.room_key): room} for room in args.room]
    seeds += [{"kind": "streamer", str(info.streamer_key): uid} for uid in args.streamer]
    if args.follow != "rooms,streamers":
        for seed in seeds:
            seed.setdefault("follow", follow)
    if not seeds:
        raise ValueError("nothing to crawl: give --seed, --room, --streamer (or Bilibili's --areas/--area)")
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    pushed = push_seeds(get_redis(services.redis_url), SpiderKeys(config.key_prefix, info.spider), seeds)
    print(f"pushed {pushed} seeds for {info.spider} to {services.redis_url}")
    return 0


def _summary(args: argparse.Namespace, config: Config) -> int:
    from crawlers.reports.summary import collection_counts, platform_counts
    from crawlers.services.registry import ensure_services

    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    counts = collection_counts(services.mongo_uri, config.mongo_db)
    if not args.json:
        for platform, per in sorted(platform_counts(services.mongo_uri, config.mongo_db).items()):
            print(f"{platform:9s} " + " ".join(f"{k}={v}" for k, v in per.items()))
    print(json.dumps(counts))
    return 0


def _rank_export(args: argparse.Namespace, config: Config) -> int:
    from crawlers.reports.ranking import parse_since, pipeline_for
    from crawlers.services.registry import ensure_services

    if args.command == "rank":  # a question that makes no sense is refused before any server starts
        pipeline_for(args.entity, args.by, args.platform, parse_since(args.since), args.limit)
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    if args.command == "rank":
        from crawlers.reports.ranking import run_rank

        return run_rank(services.mongo_uri, config.mongo_db, args.entity, args.by, platform=args.platform,
                        since=args.since, limit=args.limit, as_json=args.json)
    from crawlers.reports.export import run_export

    return run_export(services.mongo_uri, config.mongo_db, args.collection, platform=args.platform,
                      since=args.since, until=args.until, fmt=args.format, out=args.out, quiet=args.quiet)


def _spool(args: argparse.Namespace, config: Config) -> int:
    from crawlers.services.registry import ensure_services
    from pipelines.p300_store import close_store, ensure_indexes, open_store
    from pipelines.store.spool import Spool
    from pipelines.store.writer import BulkWriter

    spool = Spool(config.var_dir / "spool")
    if args.action == "status":
        print(f"{len(spool.pending())} spool files, {spool.count_records()} records in {spool.directory}")
        return 0
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        if not ensure_indexes():
            raise RuntimeError(f"MongoDB at {services.mongo_uri} is unreachable; the spool is kept")
        result = spool.replay(BulkWriter(db).write)
    finally:
        close_store(client)
    print(f"replayed {result.records} records from {result.files} files"
          + (f" ({result.bad_lines} unreadable lines kept aside)" if result.bad_lines else ""))
    return 0


def _services(action: str, config: Config) -> int:
    from crawlers.services.base import pid_alive
    from crawlers.services.registry import SERVICE_NAMES, ensure_services, read_record, stop_services

    if action == "stop":
        stopped = stop_services(config.var_dir)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if action == "status":  # look, start nothing
        configured = {"redis": config.redis_url, "mongo": config.mongo_uri}
        for name in SERVICE_NAMES:
            record = read_record(config.var_dir, name)
            if configured[name]:
                print(f"{name:7s} {configured[name]} (from the environment)")
            elif record and pid_alive(int(str(record["pid"]))):
                print(f"{name:7s} {record['url']} (embedded, pid {record['pid']})")
            else:
                print(f"{name:7s} not running (the next livefleet command starts it)")
        return 0
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    print(f"redis   {services.redis_url}\nmongodb {services.mongo_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
