"""Worker health: heartbeats in Redis, and the fleet's stats added up there.

Every ``LIVEFLEET_HEARTBEAT_SECONDS`` (``settings/defaults.py``) the :class:`Heartbeat` of
each spider of each worker

- writes ``FleetKeys.worker(id)``, a JSON document (worker, host, pid, spider,
  started_at, beat_at, interval, leases, prefetched, counters) that expires
  after three intervals, and sets the worker's score in ``FleetKeys.workers``
  to ``beat_at``; ``livefleet status`` calls a worker stale when its key has
  expired or its last beat is older than three intervals, and summarises the
  stale ones instead of listing them. Every beat and every leave also removes
  the workers silent for more than ``FORGET_AFTER_SECONDS`` from that sorted
  set, so it holds the workers of the last hour, not every worker that ever ran
  (killed ones, ``scrapy shell`` sessions closed without closing their spider);
- adds what its Scrapy stats grew by since the last flush to the spider's
  fleet-wide hash ``SpiderKeys.stats`` (HINCRBY / HINCRBYFLOAT), and the items
  among them to ``<stats>:items:<epoch minute>`` (kept two hours), from which
  ``livefleet status`` computes items per minute.

A flush is one MULTI/EXEC transaction: workers flushing at the same moment
only ever add, nobody reads and writes back, so no increment is lost. It is
also applied once: each flush is numbered, the transaction stores the number
in a per-worker marker key it WATCHes, and a flush whose reply was lost (a
Redis restart in the middle of EXEC) is sent again under the same number and
skipped if it had landed. Newer growth waits for the next flush.

Each beat also checks the fleet's epoch (``crawlers/redis/epoch.py``): a Redis that
came back without livefleet's state (no persistence, flushed, replaced) is reported at
ERROR, counted in ``livefleet/health/state_lost``, and recorded in Redis for
``livefleet status``, instead of the crawl ending "finished" in silence.

Times are Redis server time (``TIME``), so workers on machines with skewed
clocks still compare. Writes run on one dedicated thread: the reactor never
waits for Redis, and a Redis outage is logged once and ridden out. On close a
worker flushes a last time and removes its heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Self

import redis
from redis.exceptions import WatchError
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawlers.redis.connection import get_redis, redis_url_from_settings
from crawlers.redis.epoch import EpochWatch, loss_message
from crawlers.redis.keys import FleetKeys, SpiderKeys
from pipelines.store.config import spool_dir
from pipelines.store.spool import Spool
from settings.defaults import value

logger = logging.getLogger(__name__)

#: A worker is stale once this many intervals passed without a beat; its key expires then too.
STALE_AFTER_BEATS = 3
#: Workers silent for this long are forgotten: ``livefleet status`` no longer counts them as stale, and
#: the beating and leaving ones drop them from ``FleetKeys.workers``. Long enough for a person to notice
#: a worker that died; short enough that the set stays the size of the fleet.
FORGET_AFTER_SECONDS = 3600
#: How long a per-minute items counter is kept.
ITEMS_MINUTE_TTL_SECONDS = 2 * 3600
#: How long a worker's flush marker outlives its last flush.
MARKER_TTL_SECONDS = 24 * 3600

# Numbers in Scrapy's stats that are levels or peaks, not counters: adding them up over
# workers means nothing, so they stay out of the fleet's hash.
_NOT_COUNTERS = ("elapsed_time_seconds", "memusage/", "_per_minute", "_peak", "/max")


def items_minute_key(keys: SpiderKeys, minute: int) -> str:
    """The counter of items flushed during epoch minute ``minute`` (``int(time // 60)``)."""
    return f"{keys.stats}:items:{minute}"


def server_time(server: redis.Redis) -> float:
    """Redis server time, epoch seconds: the one clock every worker and ``status`` share."""
    seconds, micros = server.time()
    return seconds + micros / 1e6


def counter_values(stats: Mapping[str, Any]) -> dict[str, int | float]:
    """The counters among Scrapy stats: numbers that only grow (levels and peaks left out)."""
    return {
        name: value
        for name, value in stats.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and not any(part in name for part in _NOT_COUNTERS)
    }


def summarize(stats: Mapping[str, Any]) -> dict[str, int]:
    """What a person watching the fleet reads, from one worker's or the fleet's counters.

    ``pages`` are pages parsed; ``blocked``, ``retryable``, ``unparsable``,
    ``gone`` and ``failed`` (transport errors that outlived the retries) are the
    other outcomes of a page attempt; ``errors`` = retryable + unparsable + failed.
    """
    def total(prefix: str) -> int:
        return int(sum(float(v) for k, v in stats.items() if k.startswith(prefix)))

    out = {
        "items": total("item_scraped_count"),
        "dropped": total("item_dropped_count"),
        "responses": total("downloader/response_count"),
        "pages": total("livefleet/spider/pages/"),
        "blocked": total("livefleet/spider/blocked/"),
        "retryable": total("livefleet/spider/retryable/"),
        "unparsable": total("livefleet/spider/unparsable/"),
        "gone": total("livefleet/spider/gone/"),
        "failed": total("livefleet/spider/failed/"),
        "log_errors": total("log_count/ERROR"),
    }
    out["errors"] = out["retryable"] + out["unparsable"] + out["failed"]
    return out


@dataclass(frozen=True)
class Flush:
    """One numbered flush: what to add, and the counter values it brings the fleet up to."""

    marker: str
    deltas: dict[str, int | float]
    values: dict[str, int | float]
    items: int


class StatsFlusher:
    """Adds one worker's stats growth to the fleet's stats hash, atomically and once.

    Thread-safe. :meth:`flush` raises :class:`redis.RedisError` when Redis is
    unreachable; the growth is then sent with the next call.
    """

    def __init__(self, server: redis.Redis, keys: SpiderKeys, worker_id: str, *, attempts: int = 5) -> None:
        self.server = server
        self.keys = keys
        self.worker_id = worker_id
        self.attempts = attempts
        # Another run with the same worker id (a restarted container, pid 1 again) gets other markers.
        self._run = secrets.token_hex(4)
        self._seq = 0
        self._flushed: dict[str, int | float] = {}
        self._pending: Flush | None = None
        self._lock = threading.Lock()

    @property
    def marker_key(self) -> str:
        return f"{self.keys.stats}:flushed:{self.worker_id}"

    def flush(self, stats: Mapping[str, Any], now: float) -> int:
        """Send the growth of ``stats`` since the last acknowledged flush; returns the fields sent.

        A flush that failed is sent again, unchanged, before any newer growth.
        """
        with self._lock:
            if self._pending is None:
                values = counter_values(stats)
                deltas: dict[str, int | float] = {}
                for name, value in values.items():
                    delta = value - self._flushed.get(name, 0)
                    if delta > 0:  # a number that went down is a level, not a counter
                        deltas[name] = delta
                if not deltas:
                    return 0
                self._seq += 1
                self._pending = Flush(f"{self._run}:{self._seq}", deltas,
                                      {name: values[name] for name in deltas},
                                      int(deltas.get("item_scraped_count", 0)))
            flush = self._pending
            self.send(flush, now)
            self._flushed.update(flush.values)
            self._pending = None
            return len(flush.deltas)

    def send(self, flush: Flush, now: float) -> bool:
        """Apply ``flush`` in one MULTI/EXEC unless it was applied before; True if applied now."""
        marker = self.marker_key
        minute = items_minute_key(self.keys, int(now // 60))
        for _ in range(self.attempts):
            with self.server.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(marker)
                    if pipe.get(marker) == flush.marker.encode():
                        return False  # it landed; only its reply was lost
                    pipe.multi()
                    for name, delta in flush.deltas.items():
                        if isinstance(delta, float):
                            pipe.hincrbyfloat(self.keys.stats, name, delta)
                        else:
                            pipe.hincrby(self.keys.stats, name, delta)
                    if flush.items:
                        pipe.incrby(minute, flush.items)
                        pipe.expire(minute, ITEMS_MINUTE_TTL_SECONDS)
                    pipe.set(marker, flush.marker, ex=MARKER_TTL_SECONDS)
                    pipe.execute()
                    return True
                except WatchError:  # the connection broke while watching: look at the marker again
                    continue
        raise redis.RedisError(f"stats flush {flush.marker} of {self.worker_id} aborted {self.attempts} times")

    def forget(self) -> None:
        """Remove this worker's marker (after its last flush was acknowledged)."""
        self.server.delete(self.marker_key)


class Heartbeat:
    """Scrapy extension: the worker's heartbeat and stats flush, every ``LIVEFLEET_HEARTBEAT_SECONDS``.

    The worker id is the scheduler's ``worker_id`` when it has one, else
    ``<host>:<pid>:<spider>``. ``leases`` and ``prefetched`` are read from the
    scheduler (0 when it keeps none).
    """

    def __init__(self, crawler: Crawler, server: redis.Redis, prefix: str, interval: float) -> None:
        self.crawler = crawler
        self.server = server
        self.prefix = prefix
        self.interval = interval
        self.fleet = FleetKeys(prefix)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.spider_name: str | None = None
        self.worker_id: str | None = None
        self.flusher: StatsFlusher | None = None
        self.started_at: float | None = None
        self.epoch: EpochWatch | None = None
        #: This worker's store spool (shared by the workers of its machine and var dir), sized at each beat.
        self.spool = Spool(spool_dir(crawler.settings))
        self.failures = 0
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        interval = value(settings, "LIVEFLEET_HEARTBEAT_SECONDS")
        if interval <= 0:
            raise NotConfigured("LIVEFLEET_HEARTBEAT_SECONDS is 0")
        heartbeat = cls(crawler, get_redis(redis_url_from_settings(settings)),
                        value(settings, "LIVEFLEET_KEY_PREFIX"), interval)
        crawler.signals.connect(heartbeat.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(heartbeat.spider_closed, signal=signals.spider_closed)
        return heartbeat

    # -- lifecycle (reactor thread) -------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        self.open(spider.name)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="livefleet-heartbeat")
        self._task = asyncio.get_running_loop().create_task(self._beat_periodically())

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._executor is None:
            return
        stats = dict(self.crawler.stats.get_stats())
        await asyncio.get_running_loop().run_in_executor(self._executor, self.leave, stats)  # after any beat
        self._executor.shutdown(wait=True)

    async def _beat_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                document, stats = self.document(), dict(self.crawler.stats.get_stats())
                await loop.run_in_executor(self._executor, self.beat, document, stats)
            except Exception:  # a bug here must not end the heartbeat silently, nor the crawl
                logger.exception("Heartbeat of %s failed", self.worker_id)
            await asyncio.sleep(self.interval)

    def open(self, spider_name: str) -> None:
        """Name this worker (called when the spider opens, or directly by tests)."""
        self.spider_name = spider_name
        scheduler = self._scheduler()
        self.worker_id = str(getattr(scheduler, "worker_id", None) or f"{self.host}:{self.pid}:{spider_name}")
        self.flusher = StatsFlusher(self.server, SpiderKeys(self.prefix, spider_name), self.worker_id)
        self.epoch = EpochWatch(self.server, self.prefix, self.worker_id)

    def _scheduler(self) -> Any:
        try:
            engine = self.crawler.engine
        except RuntimeError:  # no crawl running (the extension driven by hand)
            return None
        return getattr(getattr(engine, "_slot", None), "scheduler", None)

    def document(self) -> dict[str, Any]:
        """The heartbeat as of now, without its times (read on the reactor thread)."""
        scheduler = self._scheduler()
        return {
            "worker": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "spider": self.spider_name,
            "interval": self.interval,
            "leases": int(getattr(scheduler, "leased", 0) or 0),
            "prefetched": int(getattr(scheduler, "prefetched", 0) or 0),
            "counters": summarize(counter_values(self.crawler.stats.get_stats())),
            "spool": self._spool(),
        }

    def _spool(self) -> dict[str, Any]:
        """What waits in the store's spool: its directory (``/metrics`` counts one directory of a host once),
        files and bytes."""
        try:
            files, size = self.spool.size()
        except OSError:  # unreadable: said as unknown, not as empty
            return {"dir": str(self.spool.directory.absolute()), "files": None, "bytes": None}
        return {"dir": str(self.spool.directory.absolute()), "files": files, "bytes": size}

    # -- Redis (the heartbeat thread) ----------------------------------------------------------

    def beat(self, document: Mapping[str, Any], stats: Mapping[str, Any]) -> bool:
        """Flush the stats and write the heartbeat; False (logged) when Redis is away."""
        assert self.flusher is not None and self.worker_id is not None, "heartbeat not opened"
        try:
            now = server_time(self.server)
            self._check_epoch()
            self.flusher.flush(stats, now)
            if self.started_at is None:
                self.started_at = now
            epoch = self.epoch.known.id if self.epoch is not None and self.epoch.known is not None else None
            body = json.dumps({**document, "started_at": self.started_at, "beat_at": now, "epoch": epoch},
                              sort_keys=True)
            with self.server.pipeline(transaction=True) as pipe:
                pipe.set(self.fleet.worker(self.worker_id), body, px=int(self.interval * STALE_AFTER_BEATS * 1000))
                pipe.zadd(self.fleet.workers, {self.worker_id: now})
                pipe.zremrangebyscore(self.fleet.workers, "-inf", now - FORGET_AFTER_SECONDS)
                pipe.execute()
        except redis.RedisError as exc:
            if not self.failures:
                logger.warning("Heartbeat of %s could not reach Redis (%s); the worker goes on and retries",
                               self.worker_id, exc)
            self.failures += 1
            return False
        if self.failures:
            logger.info("Heartbeat of %s reached Redis again after %d failed beats", self.worker_id, self.failures)
            self.failures = 0
        return True

    def _check_epoch(self) -> None:
        """Remember the fleet's epoch on the first beat; on a later one, report it gone or changed."""
        if self.epoch is None:
            return
        loss = self.epoch.check()
        if loss is not None:
            logger.error("%s", loss_message(loss, self.prefix))
            self.crawler.stats.inc_value("livefleet/health/state_lost")

    def leave(self, stats: Mapping[str, Any]) -> bool:
        """The last flush, then the worker leaves the fleet's view; False (logged) when Redis is away."""
        assert self.flusher is not None and self.worker_id is not None, "heartbeat not opened"
        try:
            now = server_time(self.server)
            self.flusher.flush(stats, now)
            with self.server.pipeline(transaction=True) as pipe:
                pipe.delete(self.fleet.worker(self.worker_id))
                pipe.zrem(self.fleet.workers, self.worker_id)
                pipe.zremrangebyscore(self.fleet.workers, "-inf", now - FORGET_AFTER_SECONDS)
                pipe.execute()
            self.flusher.forget()
        except redis.RedisError as exc:
            logger.error("Last stats flush of %s failed, its latest counters are missing from the fleet's: %s",
                         self.worker_id, exc)
            return False
        return True
