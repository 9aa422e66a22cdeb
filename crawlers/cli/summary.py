"""``livefleet summary``: what is in MongoDB, counted per collection (and per platform)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crawlers.reports.summary import collection_counts, platform_counts
from crawlers.services.lifecycle import ensure_services
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("summary", help="print counts per collection (and per platform)")
    p.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace, config: Config) -> int:
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    counts = collection_counts(services.mongo_uri, config.mongo_db)
    if not args.json:
        for platform, per in sorted(platform_counts(services.mongo_uri, config.mongo_db).items()):
            print(f"{platform:9s} " + " ".join(f"{k}={v}" for k, v in per.items()))
    print(json.dumps(counts))
    return 0
