"""Pytest plugin: the store's bulk writer on a per-test database of the real MongoDB-compatible server.

- ``writer``: a :class:`BulkWriter` on ``mongo_db`` with the contract's indexes created.
- :func:`store_pipeline` and :func:`run_store`: the real store pipeline from settings, and a run of it
  over some items (the store and feeds tests).
- :func:`store_and_feeds`: the store and the feeds stage of one crawler, run as Scrapy runs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from crawlers.feeds.pipeline import FeedPipeline
from crawlers.feeds.publish import FeedPublisher
from pipelines.p300_store import StorePipeline, close_store, ensure_indexes, open_store
from pipelines.store.writer import BulkWriter


@pytest.fixture
def writer(mongo_server, mongo_db) -> Iterator[BulkWriter]:
    client, db = open_store(mongo_server.url, mongo_db.name)
    assert ensure_indexes(db)
    yield BulkWriter(db, retries=2, backoff=0.01)
    close_store(client)


def _crawler(tmp_path: Path, spider: str, settings: dict[str, Any]) -> Crawler:
    crawler = get_crawler(Spider, {"LIVEFLEET_VAR_DIR": str(tmp_path), **settings})
    crawler.spider = Spider(name=spider)
    return crawler


def store_pipeline(tmp_path: Path, spider: str, **settings: Any) -> StorePipeline:
    """The store pipeline a crawler with these settings builds, its var dir (spools) in ``tmp_path``."""
    return StorePipeline.from_crawler(_crawler(tmp_path, spider, settings))


class StoreAndFeeds:
    """The store (300) and the feeds stage (400) of one crawler, driven like Scrapy's pipeline manager.

    Items go through the store (the feeds stage passes them on untouched); ``open_spider`` opens the
    pipelines, then sends ``spider_opened``; ``close_spider`` closes them, then sends ``spider_closed``,
    as the engine does (Scrapy's core stats fail a close that was never opened)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.store = build_from_crawler(StorePipeline, crawler)
        self.feeds = build_from_crawler(FeedPipeline, crawler)

    @property
    def publisher(self) -> FeedPublisher:
        return self.feeds.publisher

    async def open_spider(self) -> None:
        await asyncio.gather(self.store.open_spider(), self.feeds.open_spider())
        await self.crawler.signals.send_catch_log_async(signals.spider_opened, spider=self.crawler.spider)

    async def process_item(self, item: Any) -> Any:
        return await self.store.process_item(item)

    async def close_spider(self) -> None:
        await self.store.close_spider()
        await self.crawler.signals.send_catch_log_async(signals.spider_closed, spider=self.crawler.spider,
                                                         reason="finished")


def store_and_feeds(tmp_path: Path, spider: str, **settings: Any) -> StoreAndFeeds:
    """The store and feeds stages a crawler with these settings builds, its var dir in ``tmp_path``."""
    return StoreAndFeeds(_crawler(tmp_path, spider, settings))


def run_store(pipeline: StorePipeline | StoreAndFeeds, items: Iterable[Any]) -> list[Any]:
    """Open the pipeline, give it every item at once, close it: each item's result or exception."""

    async def run() -> list[Any]:
        await pipeline.open_spider()
        results = await asyncio.gather(*(pipeline.process_item(item) for item in items), return_exceptions=True)
        await pipeline.close_spider()
        return results

    return asyncio.run(run())
