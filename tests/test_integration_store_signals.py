"""The store announces what it stored (``batch_stored``) and knows nothing of who listens: the feeds are a
stage of their own after it (real MongoDB-compatible server, real Redis, real store and feeds stages)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawlers.feeds.pipeline import FeedPipeline
from models.entities import Room, RoomSnapshot
from pipelines.p300_store import StorePipeline
from pipelines.signals import batch_stored
from pipelines.store.spool import Spool
from pipelines.store.writer import WriteResult
from tests.plugins.store import run_store, store_and_feeds, store_pipeline

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _snapshots(room_id: str, n: int) -> list[RoomSnapshot]:
    return [RoomSnapshot(platform="bilibili", room_id=room_id, captured_at=T0 + timedelta(seconds=i), viewers_now=i)
            for i in range(n)]


def _pipeline(tmp_path, uri: str, db_name: str) -> StorePipeline:
    return store_pipeline(tmp_path, "signaltest", LIVEFLEET_MONGO_URI=uri, LIVEFLEET_MONGO_DB=db_name,
                          LIVEFLEET_STORE_BATCH=25, LIVEFLEET_STORE_FLUSH_SECONDS=0.05)


def test_each_batch_is_announced_on_the_store_thread_once_in_mongodb_before_its_items_complete(
        tmp_path, mongo_server, mongo_db):
    pipeline = _pipeline(tmp_path, mongo_server.url, mongo_db.name)
    items = _snapshots("1", 60)
    seen: list[tuple[WriteResult, str, int, int]] = []
    tasks: list[asyncio.Future] = []

    def receiver(result: WriteResult) -> None:
        done = sum(task.done() for task in tasks)
        seen.append((result, threading.current_thread().name, mongo_db.room_snapshots.count_documents({}), done))

    pipeline.crawler.signals.connect(receiver, signal=batch_stored)

    async def scenario() -> None:
        await pipeline.open_spider()
        tasks.extend(asyncio.ensure_future(pipeline.process_item(item)) for item in items)
        await asyncio.gather(*tasks)
        await pipeline.close_spider()

    asyncio.run(scenario())
    assert [len(result.stored) for result, *_ in seen] == [25, 25, 10]
    assert [dict(result) for result, *_ in seen] == [{"room_snapshots": n} for n in (25, 25, 10)]
    assert [r for result, *_ in seen for r in result.stored] == items
    assert {thread.startswith("livefleet-store") for _, thread, _, _ in seen} == {True}
    assert [stored for _, _, stored, _ in seen] == [25, 50, 60]  # already in MongoDB
    # ... and its own items not complete yet: at most the earlier batches' items are (the event loop
    # completes those when it gets to them, which on a loaded machine can be after the next announcement)
    done = [done for *_, done in seen]
    assert all(n <= before for n, before in zip(done, (0, 25, 50), strict=True)), done


def test_batches_written_back_from_the_spool_are_announced(tmp_path, mongo_server, mongo_db):
    spooled = [*_snapshots("2", 3), Room(platform="bilibili", room_id="2", viewers_now=2, fetched_at=T0)]
    Spool(tmp_path / "spool").spill(spooled)
    pipeline = _pipeline(tmp_path, mongo_server.url, mongo_db.name)
    seen: list[WriteResult] = []

    def receiver(result: WriteResult) -> None:
        seen.append(result)

    pipeline.crawler.signals.connect(receiver, signal=batch_stored)
    run_store(pipeline, [])  # the start writes the spool back
    assert [dict(result) for result in seen] == [{"room_snapshots": 3, "rooms": 1}]
    assert [r.to_json_dict() for r in seen[0].stored] == [r.to_json_dict() for r in spooled]
    assert [r.collection for r in seen[0].stored if id(r) in seen[0].created] == ["rooms"]


def test_a_failing_listener_does_not_fail_the_batch(tmp_path, mongo_server, mongo_db, caplog):
    pipeline = _pipeline(tmp_path, mongo_server.url, mongo_db.name)

    def broken(result: WriteResult) -> None:
        raise RuntimeError("listener bug")

    pipeline.crawler.signals.connect(broken, signal=batch_stored)
    results = run_store(pipeline, _snapshots("3", 5))
    assert results == _snapshots("3", 5)
    assert mongo_db.room_snapshots.count_documents({"room_id": "3"}) == 5
    assert "listener bug" in caplog.text


def test_the_feeds_stage_is_off_without_redis(tmp_path):
    crawler = get_crawler(Spider, {"LIVEFLEET_VAR_DIR": str(tmp_path)})
    with pytest.raises(NotConfigured, match="LIVEFLEET_REDIS_URL is not set"):
        FeedPipeline.from_crawler(crawler)


def test_the_feeds_stage_closes_its_publisher_after_the_store_closed(tmp_path, redis_server, mongo_server,
                                                                     mongo_db):
    stages = store_and_feeds(tmp_path, "signaltest", LIVEFLEET_MONGO_URI=mongo_server.url,
                             LIVEFLEET_MONGO_DB=mongo_db.name, LIVEFLEET_REDIS_URL=redis_server.url,
                             LIVEFLEET_KEY_PREFIX="signaltest", LIVEFLEET_STORE_BATCH=1000)
    order: list[str] = []
    publish, close = stages.publisher.publish, stages.publisher.close
    stages.publisher.publish = lambda *a, **k: order.append("publish") or publish(*a, **k)  # type: ignore[method-assign]
    stages.publisher.close = lambda: order.append("close") or close()  # type: ignore[method-assign]
    run_store(stages, _snapshots("4", 10))  # one batch, written when the store closes
    assert order == ["publish", "close"]
    assert stages.crawler.stats.get_value("livefleet/feeds/published") == 10


def test_the_store_imports_nothing_of_the_fleet():
    code = ("import sys, pipelines.p300_store, pipelines.store.config, pipelines.signals; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'crawlers'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
