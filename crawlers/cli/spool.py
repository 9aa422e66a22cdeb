"""``livefleet spool replay|status``: records the store spooled to disk while MongoDB was down."""

from __future__ import annotations

import argparse
from typing import Any

from crawlers.services.lifecycle import ensure_services
from pipelines.p300_store import close_store, ensure_indexes, open_store
from pipelines.store.spool import Spool
from pipelines.store.writer import BulkWriter
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("spool", help="records spooled while MongoDB was down")
    p.add_argument("action", choices=["replay", "status"])


def run(args: argparse.Namespace, config: Config) -> int:
    spool = Spool(config.var_dir / "spool")
    if args.action == "status":
        print(f"{len(spool.pending())} spool files, {spool.count_records()} records in {spool.directory}")
        return 0
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        if not ensure_indexes(db):
            raise RuntimeError(f"MongoDB at {services.mongo_uri} is unreachable; the spool is kept")
        result = spool.replay(BulkWriter(db).write)
    finally:
        close_store(client)
    print(f"replayed {result.records} records from {result.files} files"
          + (f" ({result.bad_lines} unreadable lines kept aside)" if result.bad_lines else ""))
    return 0
