"""Seeds: JSON objects pushed by ``livefleet crawl`` and turned into requests by a spider.

A seed says *what* to crawl in the platform's own terms (``{"kind": "area",
"parent_area_id": 2}``, ``{"kind": "room", "room_id": "5440"}``); the
spider's ``requests_from_seed(seed)`` says *how*. Seeds wait in the list
``<prefix>:<spider>:seeds``; :class:`SeedFeeder` (a Scrapy extension) pops
them when its worker has nothing to do, so any worker of the fleet can take
any seed and each seed is taken once (LPOP is atomic).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any, Self

import redis
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider, NotConfigured
from twisted.internet.base import DelayedCall

from crawlers.redis.connection import get_redis, redis_url_from_settings
from crawlers.redis.keys import SpiderKeys
from settings.defaults import value
from spiders.meta import CRAWL_META, PRIORITY_META

logger = logging.getLogger(__name__)


def push_seeds(server: redis.Redis, keys: SpiderKeys, seeds: Iterable[dict[str, Any]]) -> int:
    """Append seeds to the spider's seed list; returns how many were pushed."""
    payloads = [json.dumps(seed, ensure_ascii=False, sort_keys=True) for seed in seeds]
    if payloads:
        server.rpush(keys.seeds, *payloads)
    return len(payloads)


class SeedFeeder:
    """Feeds a spider from its Redis seed list, wakes it when the shared queue has work,
    and closes it after a quiet spell.

    Scrapy looks at an idle worker's scheduler only every 5 seconds, so a worker
    that ran dry would miss work other workers add meanwhile. The feeder polls
    Redis while its worker has nothing in hand (every ``LIVEFLEET_POLL_SECONDS``,
    backing off to ``LIVEFLEET_POLL_MAX_SECONDS`` while the fleet is quiet) and
    wakes the engine as soon as there is a queued request or a seed.

    Settings (their defaults: ``settings/defaults.py``): ``LIVEFLEET_SEEDS_ENABLED``,
    ``LIVEFLEET_SEED_BATCH`` (seeds taken at once),
    ``LIVEFLEET_IDLE_CLOSE_SECONDS`` (close the spider after this long with no
    seed, no queued request and nothing in flight; 0 keeps it open forever).
    """

    def __init__(self, crawler: Crawler, server: redis.Redis, prefix: str, batch: int, idle_close: float,
                 poll: float, poll_max: float):
        self.crawler = crawler
        self.server = server
        self.prefix = prefix
        self.batch = batch
        self.idle_close = idle_close
        self.poll = poll
        self.poll_max = poll_max
        self._interval = poll
        self._idle_since: float | None = None
        self._call: DelayedCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not value(settings, "LIVEFLEET_SEEDS_ENABLED"):
            raise NotConfigured("LIVEFLEET_SEEDS_ENABLED is off")
        feeder = cls(
            crawler,
            get_redis(redis_url_from_settings(settings)),
            prefix=value(settings, "LIVEFLEET_KEY_PREFIX"),
            batch=value(settings, "LIVEFLEET_SEED_BATCH"),
            idle_close=value(settings, "LIVEFLEET_IDLE_CLOSE_SECONDS"),
            poll=value(settings, "LIVEFLEET_POLL_SECONDS"),
            poll_max=value(settings, "LIVEFLEET_POLL_MAX_SECONDS"),
        )
        crawler.signals.connect(feeder.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(feeder._busy, signal=signals.response_received)
        crawler.signals.connect(feeder._opened, signal=signals.spider_opened)
        crawler.signals.connect(feeder._closed, signal=signals.spider_closed)
        return feeder

    def _busy(self, **_: Any) -> None:
        self._idle_since = None

    def _opened(self, spider: Spider) -> None:
        self._schedule_poll(spider)

    def _closed(self, spider: Spider) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule_poll(self, spider: Spider) -> None:
        from twisted.internet import reactor

        self._call = reactor.callLater(self._interval, self._poll, spider)  # type: ignore[attr-defined]

    def _poll(self, spider: Spider) -> None:
        """While this worker has nothing in hand, look for fleet work and wake the engine."""
        engine = self.crawler.engine
        slot = getattr(engine, "_slot", None)  # Scrapy's engine slot: its nextcall pulls from the scheduler
        try:
            if slot is not None and not engine.downloader.active and not getattr(slot.scheduler, "prefetched", 1):
                keys = SpiderKeys(self.prefix, spider.name)
                if self.server.zcard(keys.requests):
                    slot.nextcall.schedule()
                    self._interval = self.poll
                elif self.server.llen(keys.seeds):
                    self._take_seeds(spider)
                    self._interval = self.poll
                else:
                    self._interval = min(self._interval * 2, self.poll_max)
            else:
                self._interval = self.poll
        except redis.RedisError as exc:  # Redis away for a moment: keep polling, slower
            logger.warning("Polling Redis failed: %s", exc)
            self._interval = self.poll_max
        self._schedule_poll(spider)

    def spider_idle(self, spider: Spider) -> None:
        scheduled = self._take_seeds(spider)
        if scheduled:
            self._idle_since = None
            raise DontCloseSpider
        if self.idle_close <= 0:
            raise DontCloseSpider
        if self._fleet_busy():  # other workers hold leases that may still come back (or add work)
            self._idle_since = None
            raise DontCloseSpider
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.idle_close:
            raise DontCloseSpider
        logger.info("Nothing to do for %.0fs fleet-wide: closing %s", now - self._idle_since, spider.name)

    def _fleet_busy(self) -> bool:
        scheduler = getattr(getattr(self.crawler.engine, "_slot", None), "scheduler", None)
        try:
            return bool(scheduler.fleet_busy()) if hasattr(scheduler, "fleet_busy") else False
        except redis.RedisError as exc:  # cannot tell: stay open
            logger.warning("Checking the fleet's queue failed: %s", exc)
            return True

    def _take_seeds(self, spider: Spider) -> int:
        """Turn up to ``batch`` seeds into requests; returns how many requests were scheduled."""
        keys = SpiderKeys(self.prefix, spider.name)
        raw = self.server.lpop(keys.seeds, self.batch) or []
        scheduled = 0
        for item in raw:
            try:
                seed = json.loads(item)
                requests = seed_requests(spider, seed)
            except Exception as exc:  # a bad seed is reported and kept aside, never silently lost
                self.server.rpush(f"{keys.seeds}:rejected", item)
                logger.error("Seed rejected (%s): %r", exc, item)
                self.crawler.stats.inc_value("livefleet/seeds/rejected")
                continue
            offset = int(seed.get("priority") or 0)
            for request in requests:
                if seed.get("crawl"):  # the crawl (dedup namespace) the seed belongs to
                    request.meta.setdefault(CRAWL_META, str(seed["crawl"]))
                if offset and PRIORITY_META not in request.meta:  # the crawl's priority, for it and its children
                    request.meta[PRIORITY_META] = offset
                    request.priority += offset
                self.crawler.engine.crawl(request)
                scheduled += 1
            self.crawler.stats.inc_value("livefleet/seeds/taken")
        return scheduled


def seed_requests(spider: Any, seed: dict[str, Any]) -> list[Any]:
    """The requests of ``seed``: a livefleet spider's ``seed_requests`` (what every seed may say, such as
    ``"snapshots": false``), else any spider's ``requests_from_seed``."""
    make = getattr(spider, "seed_requests", None)
    return list(make(seed)) if make is not None else list(spider.requests_from_seed(seed))
