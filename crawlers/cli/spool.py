"""``livefleet spool replay|status``: records the store spooled to disk while MongoDB was down.

Neither ends in a traceback: a file that cannot be replayed is kept and named (exit status 1), an
unreachable MongoDB is one line and exit status 3. ``status`` counts every file, the ones another process is
replaying too, and names the database each belongs to; ``replay`` writes only the files of this
configuration's database (``LIVEFLEET_MONGO_DB`` on ``MONGO_URI``'s server) and says how many it left.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from crawlers.redis.connection import redact
from crawlers.services.lifecycle import ensure_services
from models.errors import StoreUnavailableError
from pipelines.p300_store import close_store, ensure_indexes, open_store
from pipelines.store.spool import Spool, SpoolTarget
from pipelines.store.writer import BulkWriter
from settings.config import Config

#: Exit status when MongoDB cannot be reached (``crawlers.cli.main.EXIT_UNREACHABLE``).
_UNREACHABLE = 3


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("spool", help="records spooled while MongoDB was down")
    p.add_argument("action", choices=["replay", "status"])


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "status":
        return _status(Spool(config.var_dir / "spool"))
    try:
        services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    except Exception as exc:  # noqa: BLE001 - a command line, not a traceback
        print(f"spool replay: cannot reach the services ({type(exc).__name__}: {redact(exc)}); the spool is kept",
              file=sys.stderr)
        return _UNREACHABLE
    spool = Spool(config.var_dir / "spool", name="replay", target=SpoolTarget.of(services.mongo_uri, config.mongo_db))
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        if not ensure_indexes(db):
            print(f"spool replay: MongoDB ({spool.target}) is unreachable; the spool is kept", file=sys.stderr)
            return _UNREACHABLE
        result = spool.replay(BulkWriter(db, reject=spool.reject).write)
    except (StoreUnavailableError, OSError) as exc:
        print(f"spool replay: stopped, the rest is kept ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    finally:
        close_store(client)
    print(f"replayed {result.records} records from {result.files} files"
          + (f" ({result.bad_lines} unreadable lines kept aside)" if result.bad_lines else ""))
    if result.foreign:
        print(f"{result.foreign} files belong to another database and were left alone (see `spool status`)")
    for error in result.errors:
        print(f"not replayed, kept: {error}", file=sys.stderr)
    return 1 if result.errors else 0


def _status(spool: Spool) -> int:
    try:
        rows = spool.status()
    except OSError as exc:
        print(f"spool status: cannot read {spool.directory}: {exc}", file=sys.stderr)
        return 1
    records = sum(count for _, count, _ in rows)
    busy = sum(1 for entry, _, _ in rows if entry.claimed_by is not None)
    print(f"{len(rows)} spool files, {records} records in {spool.directory}"
          + (f" ({busy} being replayed now)" if busy else ""))
    by_target: Counter[str] = Counter()
    for _, count, target in rows:
        by_target[str(target) if target is not None else "any database (no target recorded)"] += count
    if len(by_target) > 1 or (by_target and None not in [t for _, _, t in rows]):
        for target, count in sorted(by_target.items()):
            print(f"  {count} records for {target}")
    return 0
