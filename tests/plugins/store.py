"""Pytest plugin: the store's bulk writer on a per-test database of the real MongoDB-compatible server.

- ``writer``: a :class:`BulkWriter` on ``mongo_db`` with the contract's indexes created.
- :func:`store_pipeline` and :func:`run_store`: the real store pipeline from settings, and a run of it
  over some items (the store and feeds tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler

from pipelines.p300_store import StorePipeline, close_store, ensure_indexes, open_store
from pipelines.store.writer import BulkWriter


@pytest.fixture
def writer(mongo_server, mongo_db) -> Iterator[BulkWriter]:
    client, db = open_store(mongo_server.url, mongo_db.name)
    assert ensure_indexes()
    yield BulkWriter(db, retries=2, backoff=0.01)
    close_store(client)


def store_pipeline(tmp_path: Path, spider: str, **settings: Any) -> StorePipeline:
    """The store pipeline a crawler with these settings builds, its var dir (spools) in ``tmp_path``."""
    crawler = get_crawler(Spider, {"LIVEFLEET_VAR_DIR": str(tmp_path), **settings})
    crawler.spider = Spider(name=spider)
    return StorePipeline.from_crawler(crawler)


def run_store(pipeline: StorePipeline, items: Iterable[Any]) -> list[Any]:
    """Open the pipeline, give it every item at once, close it: each item's result or exception."""

    async def run() -> list[Any]:
        await pipeline.open_spider()
        results = await asyncio.gather(*(pipeline.process_item(item) for item in items), return_exceptions=True)
        await pipeline.close_spider()
        return results

    return asyncio.run(run())
