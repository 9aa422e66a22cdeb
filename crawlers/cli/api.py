"""``livefleet api``: serve the fleet's operations over HTTP (``crawlers/api/app.py``; LIVEFLEET_API_TOKEN)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("api", help="serve monitors, campaign runs and status over HTTP (FastAPI, token required)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8800, help="port (default 8800)")
    p.add_argument("--campaigns-dir", type=Path, default=Path("settings/campaigns"),
                   help="the campaign files it can run (default: settings/campaigns)")


def run(args: argparse.Namespace, config: Config) -> int:
    from crawlers.api.app import run_api  # FastAPI is imported only by the command that serves it

    return run_api(config, host=args.host, port=args.port, campaigns_dir=args.campaigns_dir)
