"""Seeds: JSON objects pushed by ``livefleet crawl`` and turned into requests by a spider.

A seed says *what* to crawl in the platform's own terms (``{"kind": "area",
"parent_area_id": 2}``, ``{"kind": "room", "room_id": "5440"}``); the
spider's ``requests_from_seed(seed)`` says *how*. Seeds wait in the list
``<prefix>:<spider>:seeds``; :class:`SeedFeeder` (a Scrapy extension) pops
them when its worker has nothing to do, so any worker of the fleet can take
any seed and each seed is taken once (LPOP is atomic).

The feeder also reads what scrapy-redis producers push: the spider's start-URL
key (``<spider>:start_urls``, no livefleet prefix; scrapy-redis's
``REDIS_START_URLS_KEY``, ``REDIS_START_URLS_AS_SET`` and ``..._AS_ZSET`` are
honoured). An entry whose URL is a room or profile page of the spider's platform
becomes that target's seed (``crawlers.queue.start_urls``); any other is logged
with the reason and moved, unchanged, to ``<key>:rejected``, so nothing stays in
the list unread or disappears unsaid.
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

from crawlers.queue.start_urls import Refusal, StartUrl, StartUrlsConfig, read_entry, shown
from crawlers.redis.connection import get_redis, redis_url_from_settings
from crawlers.redis.keys import SpiderKeys, StartUrlsKeys
from models.platforms import PLATFORMS
from settings.config import scrapy_check_running
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
    Start URLs (:class:`crawlers.queue.start_urls.StartUrlsConfig`): scrapy-redis's
    ``REDIS_START_URLS_KEY``, ``REDIS_START_URLS_AS_SET``, ``REDIS_START_URLS_AS_ZSET``;
    they are taken ``LIVEFLEET_SEED_BATCH`` at a time too.
    """

    def __init__(self, crawler: Crawler, server: redis.Redis, prefix: str, batch: int, idle_close: float,
                 poll: float, poll_max: float, start_urls: StartUrlsConfig | None = None):
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
        self.start_urls = start_urls or StartUrlsConfig()
        self._wrong_type_logged = False
        self._start_keys: dict[str, StartUrlsKeys | None] = {}  # per spider name, made on first use

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not value(settings, "LIVEFLEET_SEEDS_ENABLED"):
            raise NotConfigured("LIVEFLEET_SEEDS_ENABLED is off")
        if scrapy_check_running():  # contracts run on their own requests: the fleet's seeds are not taken
            raise NotConfigured("scrapy check")
        feeder = cls(
            crawler,
            get_redis(redis_url_from_settings(settings)),
            prefix=value(settings, "LIVEFLEET_KEY_PREFIX"),
            batch=value(settings, "LIVEFLEET_SEED_BATCH"),
            idle_close=value(settings, "LIVEFLEET_IDLE_CLOSE_SECONDS"),
            poll=value(settings, "LIVEFLEET_POLL_SECONDS"),
            poll_max=value(settings, "LIVEFLEET_POLL_MAX_SECONDS"),
            start_urls=StartUrlsConfig.from_settings(settings),
        )
        _note_scrapy_redis_settings(settings)
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
                elif self.server.llen(keys.seeds) or self._start_urls_waiting(spider):
                    self._take_seeds(spider)
                    self._take_start_urls(spider)
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
        scheduled = self._take_seeds(spider) + self._take_start_urls(spider)
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
            scheduled += self._schedule(seed, requests)
            self.crawler.stats.inc_value("livefleet/seeds/taken")
        return scheduled

    def _schedule(self, seed: dict[str, Any], requests: list[Any]) -> int:
        """Hand a seed's requests to the engine, with the seed's crawl and priority; returns how many."""
        offset = int(seed.get("priority") or 0)
        for request in requests:
            if seed.get("crawl"):  # the crawl (dedup namespace) the seed belongs to
                request.meta.setdefault(CRAWL_META, str(seed["crawl"]))
            if offset and PRIORITY_META not in request.meta:  # the crawl's priority, for it and its children
                request.meta[PRIORITY_META] = offset
                request.priority += offset
            self.crawler.engine.crawl(request)
        return len(requests)

    # -- scrapy-redis start URLs ---------------------------------------------------------------------

    def _start_url_keys(self, spider: Spider) -> StartUrlsKeys | None:
        """The spider's start-URL keys; None for a spider of no platform (its entries could not be mapped)
        or whose ``redis_key`` makes no key (said once)."""
        if spider.name not in self._start_keys:
            keys = None
            if getattr(spider, "platform", None) in PLATFORMS:
                try:
                    keys = self.start_urls.keys(spider.name, getattr(spider, "redis_key", None))
                except ValueError as exc:
                    logger.error("Not reading scrapy-redis start URLs for %s: %s", spider.name, exc)
            self._start_keys[spider.name] = keys
        return self._start_keys[spider.name]

    def _start_urls_waiting(self, spider: Spider) -> int:
        keys = self._start_url_keys(spider)
        if keys is None:
            return 0
        count = {"list": self.server.llen, "set": self.server.scard, "zset": self.server.zcard}[self.start_urls.kind]
        try:
            return int(count(keys.key))
        except redis.ResponseError as exc:  # WRONGTYPE: the key is not what the settings say
            self._wrong_type(keys, exc)
            return 0

    def _pop_start_urls(self, keys: StartUrlsKeys) -> list[bytes]:
        if self.start_urls.kind == "set":
            return list(self.server.spop(keys.key, self.batch) or [])
        if self.start_urls.kind == "zset":
            return [member for member, _score in self.server.zpopmax(keys.key, self.batch)]
        return list(self.server.lpop(keys.key, self.batch) or [])

    def _wrong_type(self, keys: StartUrlsKeys, exc: redis.ResponseError) -> None:
        if self._wrong_type_logged:
            return
        self._wrong_type_logged = True
        logger.error("Cannot read start URLs from %s as a %s (%s): set REDIS_START_URLS_AS_SET or "
                     "REDIS_START_URLS_AS_ZSET to match the key's type (%s)", keys.key, self.start_urls.kind, exc,
                     _redis_type(self.server, keys.key))

    def _take_start_urls(self, spider: Spider) -> int:
        """Turn up to ``batch`` scrapy-redis start URLs into seeds and their requests; move the refused ones
        to ``<key>:rejected``. Returns how many requests were scheduled."""
        keys = self._start_url_keys(spider)
        if keys is None:
            return 0
        try:
            raw = self._pop_start_urls(keys)
        except redis.ResponseError as exc:
            self._wrong_type(keys, exc)
            return 0
        stats = self.crawler.stats
        scheduled = 0
        taken: list[str] = []  # "room 21452505", for the batch's one INFO line
        rejected: list[bytes] = []
        unused: set[str] = set()
        for entry in raw:
            result: StartUrl | Refusal = read_entry(getattr(spider, "platform", ""), entry)
            requests: list[Any] = []
            if isinstance(result, StartUrl):
                try:
                    requests = seed_requests(spider, result.seed)
                except Exception as exc:  # the mapping and the spider disagree: refused aloud, never lost
                    result = Refusal("no_seed", f"the {spider.name} spider takes no seed {result.seed}: {exc}")
            if isinstance(result, Refusal):
                rejected.append(entry)
                logger.warning("Start URL refused and moved to %s: %s: %s", keys.rejected, result.reason,
                               shown(entry))
                stats.inc_value("livefleet/start_urls/rejected")
                stats.inc_value(f"livefleet/start_urls/rejected/{result.code}")
                continue
            scheduled += self._schedule(result.seed, requests)
            taken.append(f"{result.target.kind} {result.target.id}")
            unused.update(result.unused)
            stats.inc_value("livefleet/start_urls/taken")
        if rejected:
            self.server.rpush(keys.rejected, *rejected)
        if taken:
            logger.info("Took %d start URLs from %s as %s seeds: %s", len(taken), keys.key, spider.name,
                        ", ".join(taken))
        if unused:  # livefleet makes its own requests for a page: say what scrapy-redis would have used
            stats.inc_value("livefleet/start_urls/fields_unused", len(unused))
            logger.warning("Start URLs of %s taken without what livefleet cannot apply to its own requests "
                           "(meta, method, form fields): %s", keys.key, ", ".join(sorted(unused)))
        return scheduled


#: scrapy-redis settings the seed feeder does not read -> what to use instead.
SCRAPY_REDIS_INSTEAD = {
    "SCHEDULER_IDLE_BEFORE_CLOSE": "LIVEFLEET_IDLE_CLOSE_SECONDS (`livefleet worker --idle-close`)",
    "MAX_IDLE_TIME_BEFORE_CLOSE": "LIVEFLEET_IDLE_CLOSE_SECONDS (`livefleet worker --idle-close`)",
    "REDIS_START_URLS_BATCH_SIZE": "LIVEFLEET_SEED_BATCH",
}


def _note_scrapy_redis_settings(settings: Any) -> None:
    """A scrapy-redis setting given that means nothing here is said so once, with livefleet's equivalent."""
    for name, instead in SCRAPY_REDIS_INSTEAD.items():
        if settings.get(name) is not None:
            logger.warning("%s is a scrapy-redis setting livefleet does not read: use %s (docs/scrapy-redis.md)",
                           name, instead)
    encoding = settings.get("REDIS_ENCODING")
    if encoding is not None and str(encoding).lower().replace("-", "") != "utf8":
        logger.warning("REDIS_ENCODING %r is not read: start URLs are read as UTF-8, and others are refused "
                       "(docs/scrapy-redis.md)", encoding)


def _redis_type(server: redis.Redis, key: str) -> str:
    try:
        kind = server.type(key)
    except redis.RedisError:
        return "its type is unknown"
    return f"it is a {kind.decode() if isinstance(kind, bytes) else kind}"


def seed_requests(spider: Any, seed: dict[str, Any]) -> list[Any]:
    """The requests of ``seed``: a livefleet spider's ``seed_requests`` (what every seed may say, such as
    ``"snapshots": false``), else any spider's ``requests_from_seed``."""
    make = getattr(spider, "seed_requests", None)
    return list(make(seed)) if make is not None else list(spider.requests_from_seed(seed))
