"""``livefleet``: the command line of the fleet (also ``python -m crawlers``).

Each command is one module of this package with ``add_parsers(sub)`` and
``run(args, config)``; this module only builds the parser and dispatches.

    livefleet parse --platform bilibili FILE...     parse saved payloads, print JSON lines
    livefleet crawl bilibili --areas                 push seeds to the shared queue
    livefleet worker [--spider bilibili]             run a worker of the fleet
    livefleet sandbox [--streamers N ...]            serve the platform replicas locally
    livefleet demo                                   a short campaign on embedded services
    livefleet summary                                counts of what is in MongoDB
    livefleet status [--json]                        workers, queues, leases, dead letters, rates
    livefleet monitor add douyin URL|ID --every 30s --for 6h   watch a room; monitor list|stop
    livefleet watch add NAME --platform P URL|ID... [--tier hot]   watchlists: import|list|remove|stop|alert
    livefleet campaign validate|run|runs             campaign files: check, run one now, list runs
    livefleet scheduler [--dir DIR] [--once]         every campaign of a folder on its schedule
    livefleet queue dead|retry-dead                  dead letters: list, or put back into the queue
    livefleet spool replay|status                    write spooled records back to MongoDB
    livefleet migrate kuaishou-ids [--dry-run]       re-key stored Kuaishou documents by user id
    livefleet services start|status|stop             the embedded Redis / MongoDB
    livefleet feed read COLLECTION --group G [--follow]   stored changes as JSON lines; feed info
    livefleet webhooks [add|list|remove|failures|replay]  deliver changes to webhooks (default: run)
    livefleet api [--host H] [--port P]              the same operations over HTTP (LIVEFLEET_API_TOKEN)
    livefleet stop                                   stop everything livefleet left running
    livefleet rank rooms --platform P --by peak_viewers --since 24h   a reference ranking (crawlers/reports/ranking.py)
    livefleet export rooms --platform P --since 24h --format csv --out F   a collection to JSONL or CSV
    livefleet sessions run|rebuild|list              live sessions (直播场次) from the feeds
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from settings.config import Config

#: Every command, and the module of ``crawlers.cli`` that adds its parser and runs it.
COMMANDS: dict[str, str] = {
    "parse": "parse", "crawl": "crawl", "worker": "worker", "sandbox": "sandbox", "demo": "demo",
    "summary": "summary", "status": "status", "monitor": "monitor", "campaign": "campaign",
    "scheduler": "campaign", "queue": "queue", "spool": "spool", "services": "services", "stop": "services",
    "feed": "feed", "webhooks": "feed", "api": "api", "rank": "rank", "export": "export",
    "migrate": "migrate", "sessions": "sessions", "watch": "watch",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"crawlers.cli.{name}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livefleet", description="A crawler fleet for live-commerce data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in dict.fromkeys(COMMANDS.values()):  # each module once, in the order above
        _module(name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sandbox"]:  # the sandbox has its own option parser
        return _module("sandbox").run_sandbox(args_list[1:])
    args = _parser().parse_args(args_list)
    config = Config.from_env()
    if args.command != "worker":  # a worker's logging is Scrapy's (LOG_LEVEL), configured once
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(_module(COMMANDS[args.command]).run(args, config))
    except (ValueError, RuntimeError) as exc:
        print(f"livefleet {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
