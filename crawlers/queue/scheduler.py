"""Scrapy scheduler backed by the shared Redis queue.

A worker takes requests from Redis in small batches (``LIVEFLEET_PREFETCH``,
default 8) to save round trips; requests it has taken but not started are put
back when it stops cleanly. Nothing a worker does on shutdown deletes the
fleet's queue or seen-set.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Self

from scrapy import Request, Spider
from scrapy.core.scheduler import BaseScheduler
from scrapy.crawler import Crawler

from crawlers.queue.connection import get_redis, redis_url_from_settings
from crawlers.queue.dupefilter import FleetDupeFilter
from crawlers.queue.keys import SpiderKeys
from crawlers.queue.queue import RequestQueue

logger = logging.getLogger(__name__)


class RedisScheduler(BaseScheduler):
    """Schedules through ``<prefix>:<spider>:requests`` with dedup in ``...:dupefilter``."""

    def __init__(
        self, crawler: Crawler, redis_url: str, prefix: str, prefetch: int, seen_ttl: int = 0
    ) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.server = get_redis(redis_url)
        self.prefix = prefix
        self.prefetch = max(1, prefetch)
        self.seen_ttl = seen_ttl
        self._buffer: deque[Request] = deque()
        self.queue: RequestQueue | None = None
        self.df: FleetDupeFilter | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        return cls(
            crawler,
            redis_url=redis_url_from_settings(settings),
            prefix=settings.get("LIVEFLEET_KEY_PREFIX") or "livefleet",
            prefetch=settings.getint("LIVEFLEET_PREFETCH", 8),
            seen_ttl=settings.getint("LIVEFLEET_SEEN_TTL_SECONDS", 12 * 3600),
        )

    def open(self, spider: Spider) -> None:
        keys = SpiderKeys(self.prefix, spider.name)
        self.server.ping()
        self.queue = RequestQueue(self.server, spider, keys, seen_ttl=self.seen_ttl)
        self.df = FleetDupeFilter(
            self.server,
            key=keys.dupefilter,
            fingerprinter=self.crawler.request_fingerprinter,
            debug=self.crawler.settings.getbool("DUPEFILTER_DEBUG"),
        )
        pending = len(self.queue)
        if pending:
            logger.info("Joining a crawl in progress: %d requests queued in %s", pending, keys.requests)

    def close(self, reason: str) -> None:
        if self.queue is not None and self._buffer:
            returned = self.queue.push_back(self._buffer)
            self._buffer.clear()
            logger.info("Returned %d prefetched requests to the shared queue", returned)

    def enqueue_request(self, request: Request) -> bool:
        assert self.queue is not None and self.df is not None, "scheduler not opened"
        fingerprint = None if request.dont_filter else self.df.request_fingerprint(request)
        if not self.queue.push(request, fingerprint):
            self.stats.inc_value("livefleet/queue/duplicate")
            return False
        self.stats.inc_value("livefleet/queue/enqueued")
        return True

    def next_request(self) -> Request | None:
        if not self._buffer and self.queue is not None:
            self._buffer.extend(self.queue.pop_many(self.prefetch))
        if not self._buffer:
            return None
        self.stats.inc_value("livefleet/queue/dequeued")
        return self._buffer.popleft()

    @property
    def prefetched(self) -> int:
        """Requests this worker has taken from Redis but not started yet."""
        return len(self._buffer)

    def has_pending_requests(self) -> bool:
        return bool(self._buffer) or (self.queue is not None and len(self.queue) > 0)

    def __len__(self) -> int:
        return len(self._buffer) + (len(self.queue) if self.queue is not None else 0)
