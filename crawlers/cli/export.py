"""``livefleet export COLLECTION``: a collection to JSONL or CSV (``crawlers/reports/exporter.py``)."""

from __future__ import annotations

import argparse
from typing import Any

from crawlers.reports.exporter import run_export
from crawlers.services.lifecycle import ensure_services
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("export", help="write a collection to JSONL or CSV, filtered by platform and time")
    p.add_argument("collection", choices=["streamers", "rooms", "room_snapshots", "products", "product_snapshots",
                                          "live_sessions", "quarantine"])
    p.add_argument("--platform", help="only this platform (default: all)")
    p.add_argument("--since", help="from: 30m, 24h, 7d back or an ISO time (default: the beginning); the time a "
                                   "document was last observed (live_sessions: last_seen_live_at)")
    p.add_argument("--until", help="before: same forms as --since (default: now)")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--out", required=True, help="file to write, - for stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")


def run(args: argparse.Namespace, config: Config) -> int:
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    return run_export(services.mongo_uri, config.mongo_db, args.collection, platform=args.platform,
                      since=args.since, until=args.until, fmt=args.format, out=args.out, quiet=args.quiet)
