"""``livefleet rank ENTITY --by FIELD``: a reference ranking job (``crawlers/reports/ranking.py``).

The ``--by`` choices depend on the entity (``ranking.BY_CHOICES``); a combination that makes no sense is
refused with the reason and what to rank instead."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crawlers.cli.output import add_row, show, table
from crawlers.reports.ranking import (
    ALL_ENTITIES,
    ALL_METRICS,
    BY_CHOICES,
    ID_FIELDS,
    display_rows,
    parse_since,
    pipeline_for,
    rank_from,
    table_cells,
)
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
    since = parse_since(args.since)
    pipeline_for(args.entity, args.by, args.platform, since, args.limit)
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    ranking = rank_from(services.mongo_uri, config.mongo_db, args.entity, args.by, platform=args.platform,
                        since=since, limit=args.limit)
    if args.json:
        print(json.dumps(ranking.as_json(), ensure_ascii=False, default=str))
        return 0
    print(f"{args.entity} on {args.platform} by {args.by} since {since:%Y-%m-%d %H:%M:%S} UTC (top {args.limit})")
    rows = display_rows(args.entity, args.by, ranking.rows)
    if not rows:
        print("(no rows)")
        return 0
    columns, cells, numeric = table_cells(rows, ("rank", ID_FIELDS[args.entity], "nickname", "title", args.by))
    grid = table(columns, right=[i for i, right in enumerate(numeric) if right])
    for line in cells:
        add_row(grid, line)
    show(grid)
    return 0
