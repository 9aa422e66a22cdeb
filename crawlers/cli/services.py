"""``livefleet services start|status|stop`` and ``livefleet stop``: the embedded Redis and MongoDB."""

from __future__ import annotations

import argparse
from typing import Any

from crawlers.redis.connection import redact
from crawlers.services.lifecycle import SERVICE_NAMES, ensure_services, read_record, stop_services
from pipelines.store.spool import pid_alive
from settings.config import Config


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("services", help="the embedded Redis and MongoDB-compatible servers")
    p.add_argument("action", choices=["start", "status", "stop"])
    sub.add_parser("stop", help="stop every background process livefleet started")


def run(args: argparse.Namespace, config: Config) -> int:
    action = "stop" if args.command == "stop" else args.action
    if action == "stop":
        stopped = stop_services(config.var_dir)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if action == "status":  # look, start nothing
        configured = {"redis": config.redis_url, "mongo": config.mongo_uri}
        for name in SERVICE_NAMES:
            record = read_record(config.var_dir, name)
            if configured[name]:
                print(f"{name:7s} {redact(configured[name])} (from the environment)")
            elif record and pid_alive(int(str(record["pid"]))):
                print(f"{name:7s} {redact(record['url'])} (embedded, pid {record['pid']})")
            else:
                print(f"{name:7s} not running (the next livefleet command starts it)")
        return 0
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    print(f"redis   {redact(services.redis_url)}\nmongodb {redact(services.mongo_uri)}")
    return 0
