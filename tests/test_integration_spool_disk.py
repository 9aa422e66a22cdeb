"""The spools on a full disk (a real 64 KiB tmpfs): nothing acknowledged is lost, nothing partial is left.

Bounds: with MongoDB down and the store's spool on a 64 KiB filesystem, every item either lands in
a whole spool file or fails with ``StoreUnavailableError`` (its request goes back to the queue, no
dead letter); no ``.tmp`` file remains; once MongoDB is back every spooled record is replayed. The
feed publisher's spill keeps its backlog in memory when its disk is full.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.entities import RoomSnapshot
from models.errors import StoreUnavailableError
from pipelines.store.spool import Spool
from tests.plugins.store import run_store, store_pipeline

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 64 KiB tmpfs at ``tmp_path/spool`` (the tests run as root, here and in CI)."""
    mount = tmp_path / "spool"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _snapshot(i: int) -> RoomSnapshot:
    return RoomSnapshot(platform="bilibili", room_id=f"disk{i % 7}", captured_at=T0 + timedelta(seconds=i),
                        status="live", viewers_now=i, likes=i * 1000)


def test_store_spool_on_a_full_disk_fails_items_back_to_the_queue_and_leaves_no_partial_file(
        tmp_path, tiny_disk, mongo_server, mongo_db):
    items = [_snapshot(i) for i in range(1200)]
    mongo_server.stop()
    try:
        pipeline = store_pipeline(tmp_path, "disk", LIVEFLEET_MONGO_URI=mongo_server.url,
                                  LIVEFLEET_MONGO_DB=mongo_db.name, LIVEFLEET_STORE_BATCH=100,
                                  LIVEFLEET_STORE_FLUSH_SECONDS=0.05, LIVEFLEET_STORE_RETRIES=1,
                                  LIVEFLEET_MONGO_TIMEOUT_MS=200, LIVEFLEET_STORE_HOLD_SECONDS=0.5)
        results = run_store(pipeline, items)
    finally:
        mongo_server.restart()
    # Every item failed with the store's own error: requeued, never a dead letter for a full disk.
    assert all(isinstance(r, StoreUnavailableError) for r in results), {type(r).__name__ for r in results}
    assert not list(tiny_disk.glob(".*.tmp")), "no partial file left"
    spooled = Spool(tiny_disk).count_records()
    stats = pipeline.crawler.stats
    assert stats.get_value("livefleet/store/spool_failed") > 0  # the disk did fill up
    assert spooled == (stats.get_value("livefleet/store/spooled") or 0) > 0
    assert spooled + stats.get_value("livefleet/store/spool_failed") == 1200
    # Back online: what was acknowledged as spooled is all replayed.
    run_store(store_pipeline(tmp_path, "disk", LIVEFLEET_MONGO_URI=mongo_server.url,
                             LIVEFLEET_MONGO_DB=mongo_db.name), [])
    assert mongo_db.room_snapshots.count_documents({}) == spooled
    assert Spool(tiny_disk).pending() == []


def test_stale_tmp_files_of_dead_processes_are_removed(tiny_disk):
    dead = 2**22 + 12345  # beyond pid_max: never alive
    (tiny_disk / f".store-{dead}-1.tmp").write_text("{", "utf-8")
    Spool(tiny_disk).pending()
    assert not list(tiny_disk.glob(".*.tmp"))


def test_feed_spill_on_a_full_disk_keeps_the_backlog_in_memory(tiny_disk):
    from crawlers.feeds.publish import FeedPublisher, publisher_client

    publisher = FeedPublisher(publisher_client("redis://127.0.0.1:1/0", timeout=0.2), "lf", buffer_limit=10,
                              spill_dir=tiny_disk / "feeds", attempts=1)
    records = [_snapshot(i) for i in range(2000)]
    for start in range(0, len(records), 50):
        publisher.publish(records[start : start + 50])
    assert not list((tiny_disk / "feeds").glob(".*.tmp")), "no partial file left"
    for path in (tiny_disk / "feeds").glob("*.jsonl"):  # what is on disk is whole
        assert all(json.loads(line) for line in path.read_text("utf-8").splitlines())
    assert publisher.backlog_size() > 0  # what the disk refused is still held, not lost
