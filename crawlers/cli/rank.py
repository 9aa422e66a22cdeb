"""``livefleet rank ENTITY --by FIELD``: a reference ranking job (``crawlers/reports/ranking.py``).

The ``--by`` choices depend on the entity (``ranking.BY_CHOICES``); a combination that makes no sense is
refused with the reason and what to rank instead."""

from __future__ import annotations

import argparse
from typing import Any

from crawlers.reports.ranking import ALL_ENTITIES, ALL_METRICS, BY_CHOICES, parse_since, pipeline_for, run_rank
from crawlers.services.lifecycle import ensure_services
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("rank", help="rank streamers, rooms, products or live sessions by MongoDB aggregation")
    p.add_argument("entity", choices=list(ALL_ENTITIES))
    p.add_argument("--platform", required=True)
    p.add_argument("--by", required=True, choices=list(ALL_METRICS), metavar="BY",
                   help="; ".join(f"{entity}: {' | '.join(BY_CHOICES[entity])}" for entity in ALL_ENTITIES))
    p.add_argument("--since", default="24h", help="window start: 30m, 24h, 7d or an ISO time (default 24h)")
    p.add_argument("--limit", type=int, default=20, help="rows (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON document")


def run(args: argparse.Namespace, config: Config) -> int:
    # A question that makes no sense is refused before any server starts.
    pipeline_for(args.entity, args.by, args.platform, parse_since(args.since), args.limit)
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    return run_rank(services.mongo_uri, config.mongo_db, args.entity, args.by, platform=args.platform,
                    since=args.since, limit=args.limit, as_json=args.json)
