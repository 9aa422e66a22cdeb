"""The feeds stage: publishes what the store got into MongoDB, after the store (``ITEM_PIPELINES`` 400).

The store (``pipelines.p300_store``) knows nothing of the feeds: it announces
every batch it wrote, a new one or one written back from its spool, with the
:data:`pipelines.signals.batch_stored` signal, on its own thread, right after
the write and before the batch's items complete. :class:`FeedPipeline`
listens and hands the :class:`~pipelines.store.writer.WriteResult` (the
records as stored, and which upserts created their document) to a
:class:`~crawlers.feeds.publish.FeedPublisher`, so, as before the split, a
change is published only once it is in MongoDB, and a request is acknowledged
only once its items are published (or held by the publisher).

The pipeline owns the publisher's lifecycle: a periodic retry of the backlog
while no batch comes (Redis was away), and the close (the backlog goes to
``<var>/feed-spool``) on ``spider_closed``, which Scrapy sends after every
pipeline's ``close_spider``, i.e. once the store has written its last batch.
The publisher is not thread-safe and is called from two threads (the store's,
and this stage's own for retries and the close), so every call holds one lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawlers.feeds.publish import FeedPublisher, publisher_client
from crawlers.redis.connection import redact
from pipelines.signals import batch_stored
from pipelines.store.writer import WriteResult
from settings.defaults import value

logger = logging.getLogger(__name__)


def feed_publisher(crawler: Crawler) -> FeedPublisher | None:
    """The publisher to the feeds and per-crawl counters, when the crawler has a Redis.

    A fleet worker always has one (``LIVEFLEET_REDIS_URL``). Without it (a bare
    Scrapy crawler, a store test) there is nothing to publish to: None."""
    s = crawler.settings
    url = value(s, "LIVEFLEET_REDIS_URL")
    if not url:
        return None
    return FeedPublisher(
        publisher_client(str(url)),
        value(s, "LIVEFLEET_KEY_PREFIX"),
        streams=value(s, "LIVEFLEET_FEEDS_ENABLED"),
        maxlen=value(s, "LIVEFLEET_FEED_MAXLEN"),
        buffer_limit=value(s, "LIVEFLEET_FEED_BUFFER"),
        spill_dir=Path(value(s, "LIVEFLEET_VAR_DIR")) / "feed-spool",
        cooldown=value(s, "LIVEFLEET_FEED_COOLDOWN_SECONDS"),
        name=crawler.spider.name if crawler.spider else "store",
        stats=crawler.stats,
    )


class FeedPipeline:
    """Publishes every stored batch (see the module docstring); items pass through untouched."""

    def __init__(self, crawler: Crawler, publisher: FeedPublisher, *, retry_seconds: float) -> None:
        self.crawler = crawler
        self.publisher = publisher
        #: How often a waiting backlog is looked at while no batch comes (the store's flush interval:
        #: the publisher's own cooldown decides whether Redis is tried).
        self.retry_seconds = max(0.01, retry_seconds)
        self._lock = threading.Lock()  # every call into the publisher holds it
        self._closed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="livefleet-feeds")
        self._timer: asyncio.Task[None] | None = None
        crawler.signals.connect(self.batch_stored, signal=batch_stored)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        publisher = feed_publisher(crawler)
        if publisher is None:
            raise NotConfigured("LIVEFLEET_REDIS_URL is not set: no Redis to publish the feeds to")
        # Which Redis gets the feeds is decided before the crawl (the environment, a REDIS_URL setting, or the
        # embedded server of LIVEFLEET_VAR_DIR, which differs per working directory under Scrapyd): say it, since
        # a reader of another Redis would otherwise see no feed and no error.
        logger.info("Feeds: stored records are %s in Redis %s",
                    f"published to {publisher.keys.feed('<collection>')}" if publisher.streams
                    else "counted per crawl, not published (LIVEFLEET_FEEDS_ENABLED is off),",
                    redact(value(crawler.settings, "LIVEFLEET_REDIS_URL")))
        return cls(crawler, publisher, retry_seconds=value(crawler.settings, "LIVEFLEET_STORE_FLUSH_SECONDS"))

    async def open_spider(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self._retry_periodically())

    def batch_stored(self, result: WriteResult) -> None:
        """The store's signal, on the store's thread: publish before the batch's items complete."""
        with self._lock:
            if self._closed:
                logger.error("Feeds: %d records stored after the publisher closed are not published",
                             len(result.stored))
                return
            self.publisher.publish(result.stored, created=result.created)

    async def spider_closed(self) -> None:
        """After every pipeline closed (the store wrote its last batch): keep the backlog on disk."""
        if self._timer is not None:
            self._timer.cancel()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    async def _retry_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.retry_seconds)
            await loop.run_in_executor(self._executor, self._retry)

    def _retry(self) -> None:
        # A publish in progress on the store thread tries the backlog itself: no need to wait for it.
        if not self._lock.acquire(blocking=False):
            return
        try:
            if not self._closed and self.publisher.retry_due():
                self.publisher.retry_backlog()
        finally:
            self._lock.release()

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.publisher.close()
