"""One worker process runs one crawler per spider, each with its own store pipeline: the stores share
nothing, so one crawler closing never takes another's connection (real MongoDB-compatible server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from models.entities import RoomSnapshot
from pipelines.p300_store import StorePipeline
from tests.plugins.store import store_pipeline

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _pipeline(tmp_path, spider: str, uri: str, db_name: str) -> StorePipeline:
    return store_pipeline(tmp_path / spider, spider, LIVEFLEET_MONGO_URI=uri, LIVEFLEET_MONGO_DB=db_name,
                          LIVEFLEET_STORE_FLUSH_SECONDS=0.05, LIVEFLEET_STORE_RETRIES=1,
                          LIVEFLEET_STORE_COOLDOWN_SECONDS=0.1, LIVEFLEET_MONGO_TIMEOUT_MS=300)


def test_a_crawler_closing_leaves_the_other_crawlers_store_working(tmp_path, mongo_server, mongo_db):
    """Both stores start while MongoDB is away (no indexes yet); the first closes; the second creates
    the indexes once MongoDB is back, and stores its items."""
    items = [RoomSnapshot(platform="bilibili", room_id="5", captured_at=T0 + timedelta(seconds=i), viewers_now=i)
             for i in range(20)]

    async def scenario() -> list:
        first = _pipeline(tmp_path, "first", mongo_server.url, mongo_db.name)
        second = _pipeline(tmp_path, "second", mongo_server.url, mongo_db.name)
        await asyncio.to_thread(mongo_server.stop)
        try:
            await first.open_spider()
            await second.open_spider()
        finally:
            await asyncio.to_thread(mongo_server.restart)
        await first.close_spider()
        results = await asyncio.wait_for(
            asyncio.gather(*(second.process_item(item) for item in items), return_exceptions=True), 30)
        await second.close_spider()
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        if not mongo_server.running:
            mongo_server.restart()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert mongo_db.room_snapshots.count_documents({"room_id": "5"}) == 20
    unique = [v["key"] for v in mongo_db.room_snapshots.index_information().values() if v.get("unique")]
    assert [("platform", 1), ("room_id", 1), ("captured_at", 1)] in unique
