"""``livefleet sessions run|rebuild|list|show``: the session builder (``crawlers/sessions``).

    livefleet sessions run [--consumer NAME]           build live_sessions from the feeds (Ctrl-C stops)
    livefleet sessions rebuild --since 24h [--platform P]   recompute stored sessions from the snapshots
    livefleet sessions list [--platform P] [--since 24h] [--live] [--json]
    livefleet sessions show PLATFORM SESSION_ID [--json]   one session: what it sold, presented, changed
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from crawlers.api.documents import utc_ready
from crawlers.cli.output import add_row, show, table
from crawlers.reports.ranking import gmv_cell, money, parse_since, units_cell
from crawlers.services.lifecycle import ensure_services
from pipelines.p300_store import close_store, open_store
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("sessions", help="live sessions (直播场次): run the builder, rebuild, list, show")
    p.add_argument("action", choices=["run", "rebuild", "list", "show"])
    p.add_argument("session", nargs="*", metavar="PLATFORM SESSION_ID", help="show: the session's key")
    p.add_argument("--consumer", help="run: this builder's name in the consumer group (default: host name)")
    p.add_argument("--batch", type=int, default=2000, help="run: messages read per stream and round (default 2000)")
    p.add_argument("--since", default="24h", help="rebuild/list: window start: 30m, 24h, 7d or an ISO time")
    p.add_argument("--platform", help="rebuild/list: one platform")
    p.add_argument("--live", action="store_true", help="list: only sessions still live")
    p.add_argument("--limit", type=int, default=50, help="list: rows; show: products per list (default 50)")
    p.add_argument("--json", action="store_true", help="list/rebuild/show: JSON")


def run(args: argparse.Namespace, config: Config) -> int:
    since = parse_since(args.since)  # a bad --since is refused before any server starts
    if (args.action == "show") != bool(args.session) or (args.session and len(args.session) != 2):
        raise ValueError("sessions show takes PLATFORM SESSION_ID (and only show takes them), e.g. "
                         "livefleet sessions show douyin 7646392915574630465")
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
        if args.action == "show":
            return _show(db, args)
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


def _when(value: Any) -> str:
    return "-" if value is None else utc_ready(value, "seconds").replace("+00:00", "Z")


def _show(db: Any, args: argparse.Namespace) -> int:
    """One session whole: its times and audience, its sales with their bounds, then what sold (by GMV),
    what was presented and how the shelf changed, products named by their stored titles."""
    platform, session_id = args.session
    doc = db.live_sessions.find_one({"platform": platform, "session_id": session_id}, {"_id": 0, "inputs": 0})
    if doc is None:
        print(f"no session {session_id} on {platform} (livefleet sessions list shows the stored ones)",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(utc_ready(doc), ensure_ascii=False))
        return 0
    ids = {p["product_id"] for p in doc.get("products_sold") or []} | {
        p["product_id"] for key in ("products_presented", "shelf_events") for p in doc.get(key) or []}
    titles = {d["product_id"]: d.get("title") or "" for d in db.products.find(
        {"platform": platform, "product_id": {"$in": sorted(ids)}}, {"_id": 0, "product_id": 1, "title": 1})}
    head = table(["", ""], title=f"{platform} session {session_id} ({doc['status']})")
    facts = [
        ("room", f"{doc['room_id']}" + (f" (web {doc['web_rid']})" if doc.get("web_rid") else "")),
        ("streamer", doc.get("streamer_id") or "-"), ("title", doc.get("title") or "-"),
        ("started / ended (platform)", f"{_when(doc.get('started_at'))} / {_when(doc.get('ended_at'))}"),
        ("first / last seen live", f"{_when(doc['first_seen_live_at'])} / {_when(doc['last_seen_live_at'])}"),
        ("start latency, duration", f"{_seconds(doc.get('start_latency_s'))}, {_seconds(doc.get('duration_s'))}"),
        ("snapshots, coverage", f"{doc['samples']}, {_share(doc.get('coverage'))}"),
        ("viewers peak / avg / total", f"{_count(doc.get('viewers_peak'))} / {_count(_int(doc.get('viewers_avg')))}"
                                       f" / {_count(doc.get('viewers_total'))}"),
        ("units sold", (units_cell(doc.get("units_sold"), doc.get("units_low"), doc.get("units_high")) or "-")
         + (" (from rounded counts)" if doc.get("units_sold_is_lower_bound") else "")),
        ("GMV estimate", (gmv_cell(doc.get("gmv_estimate"), doc.get("gmv_low"), doc.get("gmv_high")) or "-")
         + (f"; {money(doc.get('gmv_observed'))} over {doc['shelf_samples']} shelf readings"
            if doc.get("gmv_observed") is not None else "")),
        ("客单价, UV value, conversion", f"{money(doc.get('avg_order_value'))}, {money(doc.get('uv_value'))}, "
                                       f"{_share(doc.get('conversion'), 3)}"),
        ("estimator", f"{doc['estimator_version']} (computed {_when(doc['computed_at'])})"),
    ]
    for name, value in facts:
        add_row(head, [name, value])
    shown: list[Any] = [head]
    sold = (doc.get("products_sold") or [])[: args.limit]
    if sold:
        grid = table(["product", "units [low, high]", "GMV [low, high]", "price", "readings", "title"],
                     right=[3, 4], title=f"what sold (top {len(sold)} of {len(doc['products_sold'])} by GMV)")
        for p in sold:
            add_row(grid, [p["product_id"], units_cell(p["units"], p["units_low"], p.get("units_high")),
                           gmv_cell(p.get("gmv"), p.get("gmv_low"), p.get("gmv_high")) or "-", money(p.get("price")),
                           p["readings"], titles.get(p["product_id"], "")])
        shown.append(grid)
    presented = (doc.get("products_presented") or [])[: args.limit]
    if presented:
        grid = table(["from", "to", "product", "sales from -> to", "title"], title="presented (讲解)")
        for p in presented:
            add_row(grid, [_when(p["from"]), _when(p["to"]), p["product_id"],
                           f"{_count(p.get('sales_from'))} -> {_count(p.get('sales_to'))}",
                           titles.get(p["product_id"], "")])
        shown.append(grid)
    events = (doc.get("shelf_events") or [])[: args.limit]
    if events:
        grid = table(["at", "event", "product", "price before -> after", "title"], title="shelf changes")
        for e in events:
            add_row(grid, [_when(e["at"]), e["event"], e["product_id"],
                           f"{money(e.get('price_before'))} -> {money(e.get('price_after'))}",
                           titles.get(e["product_id"], "")])
        shown.append(grid)
    show(*shown)
    return 0


def _int(value: Any) -> int | None:
    return None if value is None else int(round(value))


def _share(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s" if minutes >= 60 else f"{minutes}m{seconds:02d}s"
