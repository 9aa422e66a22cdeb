"""One crawl (a campaign run, a ``livefleet crawl`` push) across the fleet: its progress, and stopping it.

A crawl is the dedup namespace its seeds name (``"crawl"`` in a seed, request
meta ``livefleet_crawl`` inherited by every child). Everything about it is
already in Redis, per spider:

* seeds waiting in the seed list whose ``"crawl"`` is this one;
* ``dedup:<crawl>:queued``: fingerprints queued or leased, not yet handled;
* ``dedup:<crawl>:seen``: fingerprints handled (pages);
* dead letters whose entry names the crawl;
* ``crawl:<crawl>:items``: records stored for it, per collection (the store's
  feed publisher counts them).

``stop_crawl`` is how a cap ends a crawl: it marks the crawl stopped, takes
its waiting seeds and queued requests out of the queue, and workers drop the
crawl's requests they already leased or are about to queue (they look the
mark up every couple of seconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from crawlers.queue import serialize
from crawlers.queue.scripts import REMOVE_QUEUED
from crawlers.redis.keys import FleetKeys, SpiderKeys

#: How long a crawl stays marked as stopped (a week: far longer than any crawl's requests live).
STOPPED_TTL_SECONDS = 7 * 24 * 3600
_SCAN_BATCH = 500


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _seed_crawl(raw: bytes | str) -> str | None:
    try:
        seed = json.loads(raw)
    except ValueError:
        return None
    return str(seed["crawl"]) if isinstance(seed, dict) and seed.get("crawl") else None


def _entry(member: bytes | str) -> dict[str, Any] | None:
    """The JSON entry of a queue member ``"<seq>|<failures>|<json>"``."""
    parts = _text(member).split("|", 2)
    if len(parts) != 3:
        return None
    try:
        entry = serialize.loads(parts[2])
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _dead_crawl(raw: bytes | str) -> str | None:
    try:
        letter = json.loads(raw)
        entry = serialize.loads(letter["entry"])
    except (ValueError, KeyError, TypeError):
        return None
    return entry.get("c") if isinstance(entry, dict) else None


def _seeds_of(server: redis.Redis, keys: SpiderKeys, crawl: str) -> list[bytes | str]:
    return [raw for raw in server.lrange(keys.seeds, 0, -1) if _seed_crawl(raw) == crawl]


def crawl_progress(server: redis.Redis, prefix: str, spiders: Iterable[str], crawl: str) -> dict[str, Any]:
    """Where a crawl stands, fleet-wide.

    ``done`` means nothing of it is waiting, queued or leased. A seed a worker
    has just taken is turned into queued requests within about a second, so a
    caller deciding that a crawl has ended should see ``done`` twice, a few
    seconds apart. ``pages`` is None when a Bloom filter (no count) holds the
    crawl's handled pages.
    """
    fleet = FleetKeys(prefix)
    seeds = pending = dead = 0
    pages: int | None = 0
    for spider in spiders:
        keys = SpiderKeys(prefix, spider)
        seeds += len(_seeds_of(server, keys, crawl))
        with server.pipeline(transaction=False) as pipe:
            pipe.scard(keys.queued(crawl))
            pipe.scard(keys.seen(crawl))
            pipe.exists(keys.bloom(crawl))
            queued, seen, bloom = pipe.execute()
        pending += int(queued)
        if bloom:
            pages = None
        elif pages is not None:
            pages += int(seen)
        dead += sum(1 for raw in server.lrange(keys.dead, 0, -1) if _dead_crawl(raw) == crawl)
    items = {_text(k): int(v) for k, v in server.hgetall(fleet.crawl_items(crawl)).items()}
    stopped = bool(server.exists(fleet.crawl_stopped(crawl)))
    return {"crawl": crawl, "seeds": seeds, "pending": pending, "pages": pages, "items": items, "dead": dead,
            "stopped": stopped, "done": seeds == 0 and pending == 0}


def stop_crawl(server: redis.Redis, prefix: str, spiders: Iterable[str], crawl: str, *,
               reason: str = "stopped") -> dict[str, int]:
    """Stop a crawl fleet-wide; returns how many waiting seeds and queued requests were removed."""
    server.set(FleetKeys(prefix).crawl_stopped(crawl), reason, ex=STOPPED_TTL_SECONDS)
    removed_seeds = removed_requests = 0
    for spider in spiders:
        keys = SpiderKeys(prefix, spider)
        for raw in _seeds_of(server, keys, crawl):
            removed_seeds += int(server.lrem(keys.seeds, 1, raw))
        remove = server.register_script(REMOVE_QUEUED)
        cursor = 0
        while True:
            cursor, members = server.zscan(keys.requests, cursor, count=_SCAN_BATCH)
            mine = []
            for member, _score in members:
                entry = _entry(member)
                if entry is not None and entry.get("c") == crawl:
                    mine.append((member, entry.get("fp")))
            if mine:
                args = [part for member, fp in mine for part in (member, fp or "")]
                removed_requests += int(remove(keys=[keys.requests, keys.queued(crawl)], args=args))
            if cursor == 0:
                break
    return {"seeds": removed_seeds, "requests": removed_requests}


def stopped_crawls(server: redis.Redis, prefix: str, crawls: Iterable[str]) -> set[str]:
    """Which of ``crawls`` are stopped (one round trip)."""
    names = [c for c in crawls]
    if not names:
        return set()
    fleet = FleetKeys(prefix)
    with server.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(fleet.crawl_stopped(name))
        found = pipe.execute()
    return {name for name, hit in zip(names, found, strict=True) if hit}
