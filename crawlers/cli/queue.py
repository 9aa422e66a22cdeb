"""``livefleet queue dead|retry-dead``: look at and replay the fleet's dead letters.

A dead letter is a request that failed for good: its download failed after
Scrapy's retries, the spider gave up on its page, its callback kept raising,
or it kept killing its worker (its lease expired ``LIVEFLEET_MAX_FAILURES``
times). Each keeps the request, the last error, the attempts and the worker.
``retry-dead`` puts them back into the queue (with their priority) for any
worker to take; it starts no service: it uses ``REDIS_URL`` or the embedded
Redis that is running; without one it says so and exits with status 3.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import redis

from crawlers.health.status import redis_to_watch
from crawlers.queue.lease_queue import dead_letters, retry_dead
from crawlers.redis.connection import redact
from crawlers.redis.keys import SpiderKeys
from settings.config import Config
from spiders.platforms import PLATFORMS

#: Exit status when there is no Redis to read (``crawlers.cli.main.EXIT_UNREACHABLE``).
_UNREACHABLE = 3


def run_queue(config: Config, action: str, spiders: list[str] | None, *, limit: int, as_json: bool) -> int:
    url, origin = redis_to_watch(config)
    if url is None:
        print(f"livefleet queue: {origin}", file=sys.stderr)
        return _UNREACHABLE
    names = spiders or [info.spider for info in PLATFORMS.values()]
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=15)
    try:
        if action == "retry-dead":
            moved = {name: retry_dead(client, SpiderKeys(config.key_prefix, name), limit) for name in names}
            if as_json:
                print(json.dumps({"requeued": moved}))
            else:
                for name, count in moved.items():
                    print(f"{name}: {count} dead letters back in the queue")
            return 0
        letters = {name: dead_letters(client, SpiderKeys(config.key_prefix, name), limit) for name in names}
        totals = {name: int(client.llen(SpiderKeys(config.key_prefix, name).dead)) for name in names}
    except redis.RedisError as exc:
        print(f"livefleet queue: Redis ({origin}) does not answer: {redact(exc)}", file=sys.stderr)
        return _UNREACHABLE
    finally:
        client.close()
    if as_json:
        print(json.dumps({"dead": letters, "total": totals}, ensure_ascii=False))
        return 0
    for name in names:
        print(f"{name}: {totals[name]} dead letters")
        for letter in letters[name]:
            at = datetime.fromtimestamp(letter["at"], UTC).isoformat(timespec="seconds") if letter["at"] else "?"
            print(f"  {at}  x{letter['attempts']}  {letter['url']}\n      {letter['error']}  ({letter['worker']})")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("queue", help="dead letters: list them, or put them back into the queue")
    p.add_argument("action", choices=["dead", "retry-dead"])
    p.add_argument("--spider", action="append", help="only this spider (repeatable; default: all)")
    p.add_argument("--limit", type=int, default=1_000_000, help="at most this many per spider")
    p.add_argument("--json", action="store_true", help="one JSON object")


def run(args: Any, config: Config) -> int:
    limit = args.limit if args.action == "retry-dead" else min(args.limit, 20)
    return run_queue(config, args.action, args.spider, limit=limit, as_json=args.json)
