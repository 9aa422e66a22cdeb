"""Hostile records against the store and its spool: each case names the bound it must meet.

Nothing the store cannot write (larger than BSON's 16 MB, not BSON: lone surrogates, an int
beyond 64 bits) may block the store, the spool or a worker's start: it is quarantined with its
reason, bounded, and the rest of its batch is written. Spool files belong to one database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler

from models.entities import QuarantineRecord, Room, RoomSnapshot
from pipelines.p200_quarantine import QuarantinePipeline
from pipelines.store.spool import Spool, SpoolTarget
from pipelines.store.writer import BulkWriter
from tests.plugins.store import run_store, store_pipeline

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
MB = 1024 * 1024
PAGE = "https://api.live.bilibili.com/room/v1/Area/getList?page=1"


def _room(room_id: str, **extra) -> Room:
    return Room(platform="bilibili", room_id=room_id, fetched_at=T0, status="live", source_url=PAGE, **extra)


def _snapshot(room_id: str, viewers: int, seconds: int = 0) -> RoomSnapshot:
    return RoomSnapshot(platform="bilibili", room_id=room_id, captured_at=T0 + timedelta(seconds=seconds),
                        status="live", viewers_now=viewers)


def _bomb_quarantine(size: int) -> QuarantineRecord:
    return QuarantineRecord(platform="bilibili", spider="bilibili", url=PAGE, reason="PermanentPageError: bad JSON",
                            payload="{" * size, fetched_at=T0, quarantined_at=T0)


def test_quarantine_pipeline_keeps_a_bounded_prefix_with_size_and_sha256():
    """Bound: a 60 MB body leaves the quarantine stage as <= LIVEFLEET_QUARANTINE_PAYLOAD_BYTES of
    payload (256 KiB) with the full size and sha256, in under 2 s."""
    crawler = get_crawler(Spider)
    pipeline = QuarantinePipeline.from_crawler(crawler)
    record = _bomb_quarantine(60 * MB)
    started = time.monotonic()
    out = pipeline.process_item(record)
    assert time.monotonic() - started < 2.0
    assert len(out.payload.encode()) == 256 * 1024 and out.payload_truncated is True
    assert out.payload_size == 60 * MB
    assert out.payload_sha256 == hashlib.sha256(b"{" * (60 * MB)).hexdigest()
    assert crawler.stats.get_value("livefleet/quarantine/truncated") == 1
    again = out.bounded(256 * 1024)  # idempotent: the store bounds again
    assert again.payload_size == 60 * MB and again.payload_sha256 == out.payload_sha256
    # Text no store can hold (a lone surrogate) is kept as its bytes, base64.
    odd = QuarantineRecord(reason="x\udc80", payload="a\udc80b", quarantined_at=T0).bounded(1024)
    assert odd.payload_encoding == "base64" and odd.reason == "x\\udc80"


@pytest.mark.integration
def test_unstorable_records_are_quarantined_and_their_batch_flows(writer, mongo_db):
    """Bound: one write of a batch with a 17 MB room, a quarantine record with a lone surrogate, a 2**70
    count and 50 good snapshots takes under 20 s; the 50 are stored, each bad one is one quarantine record."""
    writer.quarantine_bytes = 4096
    surrogate = QuarantineRecord(platform="bilibili", url=PAGE, reason="PermanentPageError: surrogate",
                                 payload="a\udc80", quarantined_at=T0)
    bad = [_room("big", title="x" * (17 * MB)), surrogate, _snapshot("huge", 2**70)]
    good = [_snapshot("ok", i, i) for i in range(50)]
    started = time.monotonic()
    result = writer.write([bad[0], *good[:25], bad[1], *good[25:], bad[2]])
    assert time.monotonic() - started < 20
    assert mongo_db.room_snapshots.count_documents({"room_id": "ok"}) == 50
    assert result.written["room_snapshots"] == 50 and result.written["quarantine"] == 3
    reasons = sorted(q["reason"] for q in mongo_db.quarantine.find({}))
    assert len(reasons) == 3
    # Refused by the client (DocumentTooLarge) or by the server (code 17420: exceeds max size).
    assert any(("DocumentTooLarge" in r or "larger than 16777216" in r) and '"room_id": "big"' in r for r in reasons)
    assert "PermanentPageError: surrogate" in reasons
    assert any("not BSON" in r and "8-byte ints" in r for r in reasons)
    big = mongo_db.quarantine.find_one({"reason": {"$regex": "big"}})
    assert big["payload_truncated"] is True and big["payload_size"] > 17 * MB and len(big["payload"]) <= 4096


@pytest.mark.integration
def test_two_records_of_one_page_refused_alike_are_two_quarantine_records(writer, mongo_db):
    """Bound: no refused record is dropped as a duplicate of another (same page, time, reason)."""
    writer.write([_room("a", title="x" * (17 * MB)), _room("b", title="x" * (17 * MB))])
    assert mongo_db.quarantine.count_documents({}) == 2


def _pipeline(tmp_path, mongo_server, db_name, **settings):
    return store_pipeline(tmp_path, "hostile", LIVEFLEET_MONGO_URI=mongo_server.url, LIVEFLEET_MONGO_DB=db_name,
                          LIVEFLEET_STORE_FLUSH_SECONDS=0.05, LIVEFLEET_STORE_RETRIES=2, **settings)


@pytest.mark.integration
def test_a_worker_starts_and_replays_a_spool_holding_an_unstorable_record(tmp_path, mongo_server, mongo_db):
    """Bound: a spool file with a 20 MB quarantine record (spooled before bodies were bounded) between
    good records is replayed at the next start in under 30 s: the good ones stored, the big one
    quarantined bounded, the spool empty; the start never fails."""
    target = SpoolTarget.of(mongo_server.url, mongo_db.name)
    spool = Spool(tmp_path / "spool", target=target)
    big = _bomb_quarantine(20 * MB)
    spool.write([target.to_line(), *(json.dumps(_snapshot("s", i, i).to_json_dict()) for i in range(10)),
                 json.dumps(big.to_json_dict()), json.dumps(_snapshot("s", 10, 10).to_json_dict())])
    pipeline = _pipeline(tmp_path, mongo_server, mongo_db.name)
    started = time.monotonic()
    run_store(pipeline, [])
    assert time.monotonic() - started < 30
    assert mongo_db.room_snapshots.count_documents({"room_id": "s"}) == 11
    stored = mongo_db.quarantine.find_one({"url": PAGE})
    assert stored["payload_size"] == 20 * MB and stored["payload_truncated"] is True
    assert len(stored["payload"]) <= 256 * 1024
    assert spool.pending() == []


@pytest.mark.integration
def test_spool_files_are_replayed_only_into_their_own_database(tmp_path, mongo_server, mongo_client, mongo_db,
                                                               caplog):
    """Bound: a worker of database B leaves database A's spool file alone, and says so once."""
    caplog.set_level(logging.INFO, logger="pipelines.store.spool")
    other = f"{mongo_db.name}_b"
    try:
        Spool(tmp_path / "spool", target=SpoolTarget.of(mongo_server.url, mongo_db.name)).spill(
            [_snapshot("mine", i, i) for i in range(5)])
        run_store(_pipeline(tmp_path, mongo_server, other), [])
        assert mongo_client[other].room_snapshots.count_documents({}) == 0
        assert len(Spool(tmp_path / "spool").pending()) == 1
        assert sum("left for that database's workers" in r.message for r in caplog.records) == 1
        run_store(_pipeline(tmp_path, mongo_server, mongo_db.name), [])
        assert mongo_db.room_snapshots.count_documents({"room_id": "mine"}) == 5
        assert Spool(tmp_path / "spool").pending() == []
    finally:
        mongo_client.drop_database(other)


@pytest.mark.integration
def test_spool_status_counts_claimed_files_and_replay_never_tracebacks(tmp_path, monkeypatch, capsys, mongo_server,
                                                                        mongo_db, redis_server):
    """Bound: ``spool status`` counts a file another live process is replaying; ``spool replay`` of
    a spool with an unreadable (not UTF-8) file ends with a line, not a traceback."""
    from crawlers.cli.main import main

    for name, value in {"MONGO_URI": mongo_server.url, "REDIS_URL": redis_server.url,
                        "LIVEFLEET_MONGO_DB": mongo_db.name, "LIVEFLEET_VAR_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    spool = Spool(tmp_path / "spool", target=SpoolTarget.of(mongo_server.url, mongo_db.name))
    path = spool.spill([_snapshot("c", i, i) for i in range(7)])
    claimed = path.with_name(path.name + f".replaying-{os.getppid()}")  # a live process holds it
    path.rename(claimed)
    assert main(["spool", "status"]) == 0
    assert "1 spool files, 7 records" in capsys.readouterr().out
    claimed.rename(path)
    (tmp_path / "spool" / "binary.jsonl").write_bytes(b'{"type": "room", "title": "\xff\xfe"}\n')
    assert main(["spool", "replay"]) == 0
    out = capsys.readouterr().out
    assert "replayed 7 records from 2 files (1 unreadable lines kept aside)" in out
    assert mongo_db.room_snapshots.count_documents({"room_id": "c"}) == 7


def test_a_writer_without_a_store_reachable_never_raises_encoding_errors():
    """Bound: the writer's per-operation check names the cause without a server (pure)."""
    from pymongo import InsertOne

    from pipelines.store.writer import unstorable_reason

    assert "DocumentTooLarge" in unstorable_reason(InsertOne({"a": "x" * (17 * MB)}))
    assert "not BSON" in unstorable_reason(InsertOne({"a": 2**64}))
    assert unstorable_reason(InsertOne({"a": 1})) is None
    assert BulkWriter  # the writer module imports cleanly without a server
