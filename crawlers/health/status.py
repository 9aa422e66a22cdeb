"""``livefleet status``: the fleet as Redis sees it, read without writing anything.

:func:`collect_status` gathers, with a bounded number of reads (never a walk
over the queue itself):

- **workers**: the live workers of ``FleetKeys.workers`` with their last heartbeat:
  those whose heartbeat key exists and whose last beat is at most three of
  their intervals old. The others are **stale** (stopped without leaving:
  killed, crashed, hung, cut off from Redis; a ``scrapy shell`` closed without
  closing its spider): they are not listed, only summarised under ``stale`` as
  ``{"count": n, "newest_seen": <epoch seconds of the latest beat among them, or
  None>}`` (and ``fleet.workers_stale``). A worker silent for longer than
  ``FORGET_AFTER_SECONDS`` is not counted at all: it is forgotten, and the
  beating workers remove it from the sorted set (``crawlers/health/heartbeat.py``),
  so neither the set nor this read grows with every worker that ever ran;
- **per platform**: requests queued, in total and per priority (one
  ``ZRANGEBYSCORE ... LIMIT 0 1`` and one ``ZCOUNT`` per priority present),
  requests leased and leases past their deadline, dead letters, seeds waiting
  and rejected, items per minute (average of the last five whole minutes, or of
  those since the first items when they came later), and
  the fleet-wide counters the workers flushed (:mod:`crawlers.health.heartbeat`);
- **fleet**: the same added up over platforms;
- **state**: the fleet's epoch in this Redis and the records of every time a process found
  it gone or changed (``crawlers/redis/epoch.py``): the Redis lost the fleet's state then.
  The table puts it first, in capitals; the JSON has it under ``state``
  (``lost_count`` > 0).

Block and error rates are **per page attempt**: a page the spider parsed,
found blocked, retryable, gone or unparsable, or a request that failed for
good. ``block_rate`` = blocked / attempts; ``error_rate`` = (retryable +
unparsable + failed) / attempts. Retries are attempts too.

:mod:`crawlers.cli.status` draws it as tables (``livefleet status``); the API serves it as JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import redis

from crawlers.download.egress_health import identity_report
from crawlers.health.heartbeat import (
    FORGET_AFTER_SECONDS,
    STALE_AFTER_BEATS,
    items_minute_key,
    server_time,
    summarize,
)
from crawlers.redis.epoch import current_epoch, lost_records
from crawlers.redis.keys import FleetKeys, SpiderKeys
from crawlers.services.lifecycle import read_record, record_path
from pipelines.store.spool import pid_alive
from settings.config import Config
from settings.defaults import DEFAULTS
from spiders.platforms import PLATFORMS

#: Scores of one priority span this much (score = -priority * 2**32 + arrival sequence).
PRIORITY_BAND = 2**32
#: Items per minute is the average over (at most) this many whole minutes before the current one.
IPM_MINUTES = 5
#: At most this many priorities are counted one by one; the rest are reported together.
MAX_PRIORITIES = 64

_OUTCOMES = ("pages", "blocked", "retryable", "gone", "unparsable", "failed")


def queue_depth(server: redis.Redis, key: str, *, max_priorities: int = MAX_PRIORITIES) -> dict[str, Any]:
    """Requests in the queue ``key``: total and per priority (highest first).

    Two reads per priority present, however long the queue; requests beyond
    ``max_priorities`` priorities are counted under ``other``.
    """
    total = int(server.zcard(key))
    by_priority: list[dict[str, int]] = []
    low: int | str = "-inf"
    counted = 0
    while counted < total and len(by_priority) < max_priorities:
        first = server.zrangebyscore(key, low, "+inf", start=0, num=1, withscores=True)
        if not first:
            break
        priority = -math.floor(first[0][1] / PRIORITY_BAND)
        band_low = -priority * PRIORITY_BAND
        count = int(server.zcount(key, band_low, f"({band_low + PRIORITY_BAND}"))
        by_priority.append({"priority": priority, "requests": count})
        counted += count
        low = band_low + PRIORITY_BAND
    return {"total": total, "by_priority": by_priority, "other": max(0, total - counted)}


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _number(raw: bytes | str) -> int | float:
    text = _text(raw)
    try:
        return int(text)
    except ValueError:
        return float(text)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rates(counters: dict[str, int]) -> dict[str, Any]:
    attempts = sum(counters[name] for name in _OUTCOMES)
    return {"attempts": attempts, "block_rate": _rate(counters["blocked"], attempts),
            "error_rate": _rate(counters["errors"], attempts)}


def _workers(server: redis.Redis, fleet: FleetKeys, now: float,
             default_interval: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The live workers, and the summary of the stale ones (see the module docstring).

    Only workers seen within ``FORGET_AFTER_SECONDS`` are read: entries older than that are
    left for the heartbeats to remove (status writes nothing)."""
    entries = server.zrangebyscore(fleet.workers, now - FORGET_AFTER_SECONDS, "+inf", withscores=True)
    ids = [_text(raw) for raw, _ in entries]
    documents = server.mget([fleet.worker(worker_id) for worker_id in ids]) if ids else []
    live: list[dict[str, Any]] = []
    stale_seen: list[float] = []
    for worker_id, (_, beat_at), raw in zip(ids, entries, documents, strict=True):
        document: dict[str, Any] = {}
        if raw is not None:
            try:
                document = json.loads(raw)
            except ValueError:
                document = {}
        interval = float(document.get("interval") or default_interval)
        age = max(0.0, now - beat_at)
        if raw is None or age > interval * STALE_AFTER_BEATS:
            stale_seen.append(beat_at)
            continue
        live.append({**document, "worker": worker_id, "state": "live", "beat_at": beat_at,
                     "beat_age": round(age, 1), "interval": interval})
    live.sort(key=lambda w: (w.get("spider") or "", w["worker"]))
    return live, {"count": len(stale_seen), "newest_seen": max(stale_seen, default=None)}


def _platform(server: redis.Redis, keys: SpiderKeys, now: float) -> dict[str, Any]:
    minute = int(now // 60)
    with server.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.leases)
        pipe.zcount(keys.leases, "-inf", f"({int(now * 1000)}")
        pipe.llen(keys.dead)
        pipe.llen(keys.seeds)
        pipe.llen(f"{keys.seeds}:rejected")
        pipe.hgetall(keys.stats)
        pipe.mget([items_minute_key(keys, m) for m in range(minute - IPM_MINUTES, minute)])
        leased, expired, dead, seeds, rejected, raw_stats, minutes = pipe.execute()
    stats = {_text(name): _number(value) for name, value in raw_stats.items()}
    counters = summarize(stats)
    per_minute = [int(m) if m is not None else 0 for m in minutes]
    # Minutes before the first items are not averaged in: a crawl that began two minutes ago
    # shows its rate, not two fifths of it.
    first = next((i for i, n in enumerate(per_minute) if n), len(per_minute) - 1)
    return {
        "queue": queue_depth(server, keys.requests),
        "leased": int(leased),
        "leases_expired": int(expired),
        "dead_letters": int(dead),
        "seeds": int(seeds),
        "seeds_rejected": int(rejected),
        "items_per_minute": round(sum(per_minute) / (len(per_minute) - first), 1),
        "items_by_minute": per_minute,
        "counters": counters,
        **_rates(counters),
        "stats": stats,
    }


def collect_status(server: redis.Redis, prefix: str, *, interval: float = DEFAULTS["LIVEFLEET_HEARTBEAT_SECONDS"],
                   spiders: Iterable[str] | None = None, now: float | None = None) -> dict[str, Any]:
    """The fleet's state under key ``prefix``; pure reads.

    ``interval`` is the heartbeat interval assumed for workers whose heartbeat
    (which carries its own) has expired. ``spiders`` defaults to every platform's.
    ``now`` (epoch seconds) is the Redis server's clock unless given: the rates
    are per whole minute, so a reader that wrote the counters pins the minute.
    """
    now = server_time(server) if now is None else now
    names = list(spiders) if spiders is not None else [info.spider for info in PLATFORMS.values()]
    workers, stale = _workers(server, FleetKeys(prefix), now, interval)
    platforms = {name: _platform(server, SpiderKeys(prefix, name), now) for name in names}
    counters = {key: sum(p["counters"][key] for p in platforms.values())
                for key in summarize({})}
    fleet = {
        "workers_live": len(workers),
        "workers_stale": stale["count"],
        "queued": sum(p["queue"]["total"] for p in platforms.values()),
        "leased": sum(p["leased"] for p in platforms.values()),
        "leases_expired": sum(p["leases_expired"] for p in platforms.values()),
        "dead_letters": sum(p["dead_letters"] for p in platforms.values()),
        "seeds": sum(p["seeds"] for p in platforms.values()),
        "items_per_minute": round(sum(p["items_per_minute"] for p in platforms.values()), 1),
        "counters": counters,
        **_rates(counters),
    }
    epoch = current_epoch(server, prefix)
    lost_count, lost = lost_records(server, prefix)
    state = {"epoch": None if epoch is None else {"id": epoch.id, "created_at": epoch.created_at},
             "lost_count": lost_count, "lost": lost}
    return {"prefix": prefix, "at": now, "state": state, "workers": workers, "stale": stale, "platforms": platforms,
            "fleet": fleet, "identities": identity_report(server, prefix), "rates_per": "page attempt"}


#: Identities the text output lists (all of them are in ``--json``): the unhealthy first.
IDENTITY_ROWS = 40


def redis_to_watch(config: Config) -> tuple[str | None, str]:
    """The Redis ``status`` reads, starting nothing: REDIS_URL, else the running embedded one.

    Returns (URL or None, where it comes from / why there is none).
    """
    if config.redis_url:
        return config.redis_url, "REDIS_URL"
    record = read_record(config.var_dir, "redis")
    if record is not None and pid_alive(int(str(record["pid"]))):
        return str(record["url"]), f"embedded, pid {record['pid']}"
    return None, (f"no Redis is running: REDIS_URL is unset and no embedded Redis runs for "
                  f"{record_path(config.var_dir, 'redis')} (any livefleet worker, crawl or `services start` "
                  "starts one)")
