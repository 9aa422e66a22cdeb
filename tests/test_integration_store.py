"""The store against the real MongoDB-compatible server: idempotent upserts, snapshots,
batching through the pipeline, and an outage that spools and replays without loss."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler

from models.entities import QuarantineRecord, Room, RoomSnapshot, Streamer
from models.errors import StoreUnavailableError
from pipelines.p100_validate import ValidatePipeline
from pipelines.p300_store import StorePipeline, open_store
from pipelines.store.spool import Spool
from pipelines.store.writer import BulkWriter
from tests.plugins.store import run_store, store_pipeline

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _room(room_id: str, viewers: int, at: datetime, **extra) -> Room:
    return Room(platform="bilibili", room_id=room_id, viewers_now=viewers, fetched_at=at, status="live",
                source_url=f"https://api.live.bilibili.com/room/v1/Room/get_info?room_id={room_id}", **extra)


def _snapshot(room_id: str, viewers: int, at: datetime) -> RoomSnapshot:
    return RoomSnapshot(platform="bilibili", room_id=room_id, captured_at=at, status="live", viewers_now=viewers)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_upserts_are_idempotent_and_keep_peaks_and_first_last_seen(writer, mongo_db):
    batch = [
        _room("1", 100, T0, title="first"),
        _room("1", 300, T0 + timedelta(minutes=1), title="second"),
        _room("1", 200, T0 + timedelta(minutes=2)),  # no title: must not erase it
        _snapshot("1", 100, T0),
        _snapshot("1", 300, T0 + timedelta(minutes=1)),
    ]
    writer.write(batch)
    writer.write(batch)  # the same batch again (at-least-once delivery) changes nothing
    writer.write([_room("1", 50, T0 - timedelta(hours=1))])  # an old record replayed late
    rooms = list(mongo_db.rooms.find({}))
    assert len(rooms) == 1
    room = rooms[0]
    assert room["peak_viewers"] == 300
    assert room["title"] == "second"
    assert room["viewers_now"] == 200  # the newest observation, not the late replay's 50
    assert _utc(room["first_seen_at"]) == T0 - timedelta(hours=1)
    assert _utc(room["last_seen_at"]) == T0 + timedelta(minutes=2)
    assert mongo_db.room_snapshots.count_documents({}) == 2


def test_partial_records_never_erase_known_fields(writer, mongo_db):
    writer.write([Streamer(platform="bilibili", streamer_id="9", nickname="主播", followers=1200,
                           fetched_at=T0)])
    writer.write([Streamer(platform="bilibili", streamer_id="9", avatar_url="https://i0.hdslb.com/x.jpg",
                           fetched_at=T0 + timedelta(seconds=5))])
    doc = mongo_db.streamers.find_one({"platform": "bilibili", "streamer_id": "9"})
    assert doc["nickname"] == "主播" and doc["followers"] == 1200
    assert doc["avatar_url"] == "https://i0.hdslb.com/x.jpg"


def test_two_writers_racing_on_new_keys_leave_one_document_each(writer, mongo_db, mongo_server):
    client, db = open_store(mongo_server.url, mongo_db.name)
    other = BulkWriter(db, retries=3, backoff=0.01)
    records = [_room(str(i), i, T0) for i in range(200)]
    errors: list[BaseException] = []

    def run(w: BulkWriter) -> None:
        try:
            w.write(records)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in (writer, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert not errors
    assert mongo_db.rooms.count_documents({}) == 200


def test_unique_indexes_of_the_contract_exist(writer, mongo_db):
    info = mongo_db.rooms.index_information()
    unique = [v["key"] for v in info.values() if v.get("unique")]
    assert [("platform", 1), ("room_id", 1)] in unique
    snap = [v["key"] for v in mongo_db.room_snapshots.index_information().values() if v.get("unique")]
    assert [("platform", 1), ("room_id", 1), ("captured_at", 1)] in snap


def _pipeline(tmp_path, uri, db_name, **settings) -> StorePipeline:
    return store_pipeline(tmp_path, "storetest", LIVEFLEET_MONGO_URI=uri, LIVEFLEET_MONGO_DB=db_name,
                          LIVEFLEET_STORE_BATCH=50, LIVEFLEET_STORE_FLUSH_SECONDS=0.05, LIVEFLEET_STORE_RETRIES=2,
                          LIVEFLEET_STORE_COOLDOWN_SECONDS=0.5, **settings)


def test_pipeline_batches_and_completes_items_only_once_stored(tmp_path, mongo_server, mongo_db):
    pipeline = _pipeline(tmp_path, mongo_server.url, mongo_db.name)
    items = [_snapshot(str(i % 10), i, T0 + timedelta(seconds=i)) for i in range(230)]
    run_store(pipeline, items)
    assert mongo_db.room_snapshots.count_documents({}) == 230
    stats = pipeline.crawler.stats.get_stats()
    assert stats["livefleet/store/written/room_snapshots"] == 230
    assert "livefleet/store/spooled" not in stats


def test_store_outage_spools_then_replays_with_nothing_lost(tmp_path, mongo_server, mongo_db):
    mongo_server.stop()
    try:
        pipeline = _pipeline(tmp_path, mongo_server.url, mongo_db.name, LIVEFLEET_MONGO_TIMEOUT_MS=300,
                             LIVEFLEET_STORE_HOLD_SECONDS=1)
        items = [_snapshot("7", i, T0 + timedelta(seconds=i)) for i in range(120)]
        items.append(_room("7", 119, T0 + timedelta(seconds=119)))
        results = run_store(pipeline, items)
        # Durable on disk, but not stored: after the hold each item fails, so its request is not acknowledged.
        assert all(isinstance(r, StoreUnavailableError) for r in results)
        assert pipeline.crawler.stats.get_value("livefleet/store/spooled") == 121
        spool = Spool(tmp_path / "spool")
        assert spool.count_records() == 121
    finally:
        mongo_server.restart()
    # The next start of a worker replays the spool before anything else.
    again = _pipeline(tmp_path, mongo_server.url, mongo_db.name)
    run_store(again, [])
    assert mongo_db.room_snapshots.count_documents({"room_id": "7"}) == 120
    assert mongo_db.rooms.find_one({"room_id": "7"})["peak_viewers"] == 119
    assert Spool(tmp_path / "spool").pending() == []
    assert again.crawler.stats.get_value("livefleet/store/replayed") == 121


def test_items_spooled_in_an_outage_complete_once_written_back(tmp_path, mongo_server, mongo_db):
    items = [_snapshot("8", i, T0 + timedelta(seconds=i)) for i in range(60)]

    async def scenario() -> list:
        pipeline = _pipeline(tmp_path, mongo_server.url, mongo_db.name, LIVEFLEET_MONGO_TIMEOUT_MS=300)
        await pipeline.open_spider()
        await asyncio.to_thread(mongo_server.stop)
        tasks = [asyncio.ensure_future(pipeline.process_item(item)) for item in items]
        await asyncio.sleep(2.0)
        assert not any(task.done() for task in tasks), "spooled items wait for MongoDB"
        assert pipeline.crawler.stats.get_value("livefleet/store/spooled") == 60
        await asyncio.to_thread(mongo_server.restart)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await pipeline.close_spider()
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        if not mongo_server.running:
            mongo_server.restart()
    assert not [r for r in results if isinstance(r, BaseException)]
    assert mongo_db.room_snapshots.count_documents({"room_id": "8"}) == 60


def test_invalid_item_goes_to_quarantine_with_reason_and_payload():
    crawler = get_crawler(Spider)
    crawler.spider = Spider(name="bilibili")
    crawler.spider.platform = "bilibili"
    validate = ValidatePipeline.from_crawler(crawler)
    bad = {"type": "room", "platform": "bilibili", "fetched_at": T0.isoformat(), "title": "no id"}
    out = validate.process_item(bad)
    assert isinstance(out, QuarantineRecord)
    assert out.reason == "ValidationError: room_id: Field required"
    assert '"title": "no id"' in out.payload
    wrong_platform = _room("1", 1, T0).model_copy(update={"platform": "douyin"})
    assert "ContractError: platform" in validate.process_item(wrong_platform).reason
    good = _room("1", 1, T0)
    assert validate.process_item(good) is good


def test_spool_replay_command_writes_spooled_records_back(tmp_path, monkeypatch, capsys, mongo_server, mongo_db,
                                                          redis_server):
    from crawlers.cli.main import main

    spool = Spool(tmp_path / "spool")
    spool.spill([_snapshot("9", i, T0 + timedelta(seconds=i)) for i in range(30)])
    spool.spill([_room("9", 29, T0 + timedelta(seconds=29))])
    (tmp_path / "spool" / "half-written.jsonl").write_text('{"type": "room", "platform": "bilibili"}\n{"type', "utf-8")
    for name, value in {"MONGO_URI": mongo_server.url, "REDIS_URL": redis_server.url,
                        "LIVEFLEET_MONGO_DB": mongo_db.name, "LIVEFLEET_VAR_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    assert main(["spool", "status"]) == 0
    assert "3 spool files, 33 records" in capsys.readouterr().out
    assert main(["spool", "replay"]) == 0
    out = capsys.readouterr().out
    assert "replayed 31 records from 3 files (2 unreadable lines kept aside)" in out
    assert mongo_db.room_snapshots.count_documents({"room_id": "9"}) == 30
    assert mongo_db.rooms.count_documents({"room_id": "9"}) == 1
    assert spool.pending() == []
    assert (tmp_path / "spool" / "half-written.jsonl.bad").read_text("utf-8").count("\n") == 1
