"""``livefleet feed read|info`` and ``livefleet webhooks [run|add|list|enable|remove|failures|replay]``."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

import redis

from settings.config import Config


def add_parsers(sub: Any) -> None:
    """The ``feed`` and ``webhooks`` subcommands (called by ``crawlers.cli.main``)."""
    p = sub.add_parser("feed", help="read the feeds of stored changes (Redis Streams, consumer groups)")
    p.add_argument("action", choices=["read", "info"])
    p.add_argument("collection", nargs="?", help="read: streamers, rooms, room_snapshots, products, "
                   "product_snapshots or quarantine")
    p.add_argument("--group", help="read: the consumer group (each group reads every message once)")
    p.add_argument("--consumer", help="read: this consumer's name in the group (default: the host name)")
    p.add_argument("--count", type=int, help="read: stop after this many messages")
    p.add_argument("--follow", action="store_true", help="read: keep waiting for new messages")
    p.add_argument("--json", action="store_true", help="info: one JSON document")

    p = sub.add_parser("webhooks", help="deliver feed changes to webhooks (default: run the dispatcher)")
    p.add_argument("action", nargs="?", default="run",
                   choices=["run", "add", "list", "enable", "remove", "failures", "replay"])
    p.add_argument("--campaign", help="add: follow this campaign's crawls")
    p.add_argument("--monitor", help="add: follow this monitor's records")
    p.add_argument("--url", help="add: where to POST (http or https; a public address, or one "
                   "LIVEFLEET_WEBHOOK_ALLOW names)")
    p.add_argument("--secret", help="add: the shared secret that signs each delivery")
    p.add_argument("--id", help="remove, enable: the subscription id (enable: deliver to a parked one again)")
    p.add_argument("--limit", type=int, default=100, help="failures/replay: at most this many")
    p.add_argument("--attempts", type=int, default=5, help="attempts per delivery (default 5)")
    p.add_argument("--consumer", help="run: this dispatcher's name in the consumer group (default: the host name)")


def _server(config: Config) -> redis.Redis:
    from crawlers.redis.connection import get_redis
    from crawlers.services.lifecycle import ensure_services

    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    return get_redis(services.redis_url)


def run_feed(args: argparse.Namespace, config: Config) -> int:
    from crawlers.feeds.streams import default_consumer, run_feed_info, run_feed_read

    if args.action == "info":
        return run_feed_info(_server(config), config.key_prefix, as_json=args.json)
    if not args.collection or not args.group:
        raise ValueError("feed read takes a COLLECTION and --group")
    return run_feed_read(_server(config), config.key_prefix, args.collection, args.group,
                         args.consumer or default_consumer(), count=args.count, follow=args.follow)


def run_webhooks(args: argparse.Namespace, config: Config) -> int:
    from crawlers.feeds import webhooks

    server, prefix = _server(config), config.key_prefix
    if args.action == "add":
        if not args.url or not args.secret:
            raise ValueError("webhooks add takes --url and --secret, and --campaign or --monitor")
        sub = webhooks.register_webhook(server, prefix, campaign=args.campaign, monitor=args.monitor,
                                        url=args.url, secret=args.secret, allow=config.webhook_allow)
        print(json.dumps(sub.public()))
        return 0
    if args.action == "list":
        for sub in webhooks.list_webhooks(server, prefix):
            print(json.dumps(sub.public()))
        return 0
    if args.action == "enable":
        if not args.id:
            raise ValueError("webhooks enable takes --id")
        print(json.dumps(webhooks.enable_webhook(server, prefix, args.id, config.webhook_allow).public()))
        return 0
    if args.action == "remove":
        if not args.id:
            raise ValueError("webhooks remove takes --id")
        if not webhooks.remove_webhook(server, prefix, args.id):
            raise ValueError(f"no webhook subscription {args.id!r}")
        print(f"removed {args.id}")
        return 0
    if args.action == "failures":
        for entry in webhooks.webhook_failures(server, prefix, args.limit):
            print(json.dumps(entry, ensure_ascii=False))
        return 0
    if args.action == "replay":
        counts = webhooks.replay_failures(server, prefix, limit=args.limit, attempts=args.attempts,
                                           allow=config.webhook_allow)
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        return 0 if not counts["failed"] else 1
    dispatcher = webhooks.WebhookDispatcher(server, prefix, consumer=args.consumer, attempts=args.attempts,
                                            allow=config.webhook_allow)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"delivering webhooks (key prefix {prefix!r}); Ctrl-C stops", flush=True)
    try:
        dispatcher.run(stop)
    finally:
        dispatcher.close(drain=False)  # what waits stays queued in Redis, for the next start
    print(f"delivered {dispatcher.delivered}, failed {dispatcher.failed}, parked {dispatcher.parked}")
    return 0


def run(args: argparse.Namespace, config: Config) -> int:
    return (run_feed if args.command == "feed" else run_webhooks)(args, config)
