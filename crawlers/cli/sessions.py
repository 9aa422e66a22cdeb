"""``livefleet sessions run|rebuild|list``: the session builder (``crawlers/sessions``).

    livefleet sessions run [--consumer NAME]           build live_sessions from the feeds (Ctrl-C stops)
    livefleet sessions rebuild --since 24h [--platform P]   recompute stored sessions from the snapshots
    livefleet sessions list [--platform P] [--since 24h] [--live] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from crawlers.cli.output import add_row, show, table
from crawlers.reports.ranking import parse_since
from crawlers.services.lifecycle import ensure_services
from pipelines.p300_store import close_store, open_store
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("sessions", help="live sessions (直播场次): run the builder, rebuild, list")
    p.add_argument("action", choices=["run", "rebuild", "list"])
    p.add_argument("--consumer", help="run: this builder's name in the consumer group (default: host name)")
    p.add_argument("--batch", type=int, default=2000, help="run: messages read per stream and round (default 2000)")
    p.add_argument("--since", default="24h", help="rebuild/list: window start: 30m, 24h, 7d or an ISO time")
    p.add_argument("--platform", help="rebuild/list: one platform")
    p.add_argument("--live", action="store_true", help="list: only sessions still live")
    p.add_argument("--limit", type=int, default=50, help="list: rows (default 50)")
    p.add_argument("--json", action="store_true", help="list/rebuild: JSON")


def run(args: argparse.Namespace, config: Config) -> int:
    since = parse_since(args.since)  # a bad --since is refused before any server starts
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        if args.action == "rebuild":
            from crawlers.sessions.service import rebuild_since

            stats = rebuild_since(db, since, platform=args.platform)
            out = {"rooms": stats.rooms, "sessions": stats.sessions_written, "by_platform": dict(stats.by_platform)}
            print(json.dumps(out) if args.json else
                  f"rebuilt {stats.sessions_written} sessions of {stats.rooms} rooms since {since.isoformat()}")
            return 0
        if args.action == "list":
            return _list(db, args, since)
        return _run(db, services.redis_url, config, args)
    finally:
        close_store(client)


def _run(db: Any, redis_url: str, config: Config, args: argparse.Namespace) -> int:
    from crawlers.redis.connection import get_redis
    from crawlers.sessions.service import SessionBuilder

    builder = SessionBuilder(db, get_redis(redis_url), config.key_prefix, consumer=args.consumer)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"building live sessions from the feeds (key prefix {config.key_prefix!r}); Ctrl-C stops", flush=True)
    stats = builder.run(stop, count=max(1, args.batch))
    print(f"handled {stats.messages} messages, wrote {stats.sessions_written} session builds")
    return 0


def _list(db: Any, args: argparse.Namespace, since: Any) -> int:
    query: dict[str, Any] = {"last_seen_live_at": {"$gte": since}}
    if args.platform:
        query["platform"] = args.platform
    if args.live:
        query["status"] = "live"
    rows = list(db.live_sessions.find(query, {"_id": 0}).sort("last_seen_live_at", -1).limit(args.limit))
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False))
        return 0
    if not rows:
        print("no sessions")
        return 0
    grid = table(["platform", "session", "status", "peak", "units", "gmv [low, high]", "title"], right=[3, 4])
    for r in rows:
        gmv = "-" if r.get("gmv_estimate") is None else (
            f"{r['gmv_estimate']:.2f} [{r.get('gmv_low')}, {r.get('gmv_high')}]")
        add_row(grid, [r["platform"], r["session_id"], r["status"], _count(r.get("viewers_peak")),
                       _count(r.get("units_sold")), gmv, r.get("title") or ""])
    show(grid)
    return 0


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"
