"""``livefleet status [--json]``: the fleet as Redis sees it (``crawlers/health/status.py``); starts nothing."""

from __future__ import annotations

import argparse
from typing import Any

from crawlers.health.status import run_status
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("status", help="workers (live or stale), queues, leases, dead letters, items/min, rates")
    p.add_argument("--json", action="store_true", help="print the same as one JSON document")


def run(args: argparse.Namespace, config: Config) -> int:
    return run_status(config, as_json=args.json)
