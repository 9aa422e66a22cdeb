"""``livefleet export COLLECTION``: a collection to JSONL or CSV (``crawlers/reports/exporter.py``).

The exporter module writes the documents; this command adds what a person at a terminal sees: a progress
bar on stderr (documents written of the estimated total, :mod:`crawlers.cli.output`) when stderr is a
terminal and ``--quiet`` is not given, and the count at the end. A file is written beside its name first and
renamed into place once complete, so a failed export never leaves half a file behind.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from crawlers.cli.output import progress
from crawlers.reports import exporter
from crawlers.reports.ranking import parse_since
from crawlers.services.lifecycle import ensure_services
from settings.config import Config

#: Seconds MongoDB has to answer before the export gives up (the exit status of an unreachable service).
SERVER_SELECTION_MS = 10_000


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
    collection, fmt, out = args.collection, args.format, args.out
    # A bad --since/--until is refused before any server starts.
    query = exporter.export_filter(collection, args.platform, parse_since(args.since) if args.since else None,
                                   parse_since(args.until) if args.until else None)
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    with MongoClient(services.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=SERVER_SELECTION_MS) as client:
        db = client[config.mongo_db]
        bar = progress(enabled=not args.quiet)
        advance: Callable[[int], None] | None = None
        if bar is not None:
            bar.start()
            advance = partial(bar.advance, bar.add_task(f"export {collection}",
                                                        total=db[collection].count_documents(query), detail=""))
        try:
            count = _write(db, collection, query, fmt, out, advance)
        finally:
            if bar is not None:
                bar.stop()
    if not args.quiet:
        print(f"exported {count} {collection} documents to {'stdout' if out == '-' else out}", file=sys.stderr)
    return 0


def _write(db: Any, collection: str, query: dict[str, Any], fmt: str, out: str,
           advance: Callable[[int], None] | None) -> int:
    if out == "-":
        count = exporter.write(exporter.documents(db, collection, query), sys.stdout, fmt, collection, advance)
        sys.stdout.flush()
        return count
    path = Path(out)
    part = path.with_name(path.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="") as handle:
            count = exporter.write(exporter.documents(db, collection, query), handle, fmt, collection, advance)
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
    return count
