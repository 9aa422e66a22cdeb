"""The store benchmark: batched upserts (``BulkWriter``) against one-by-one mongoengine saves.

Records are built the way the Bilibili spider builds them: the sandbox's own
pages (area room lists, then each room's ``get_info``, its streamer's card and
master info, in crawl order) go through the spider's pure parser, and every
record with a collection is kept. The mix is therefore the crawl's: rooms,
room snapshots and streamers (partial ones from lists, full ones from cards),
with the same keys written more than once, as in a real crawl.

* bulk: :meth:`pipelines.store.writer.BulkWriter.write` on batches of 500, the
  exact operations the store pipeline sends: the records of one entity within
  a batch merged into one idempotent upsert (an update pipeline), snapshots as
  unordered inserts. Its rate counts records, as the crawl does: a merged
  upsert stores every record it carries.
* single: each record saved on its own through mongoengine: entities as an
  upsert by key (``update_one(upsert=True, set__...)``, plus min/max of the
  first/last seen times), snapshots as ``Document(**fields).save()``.
* bulk with plain ``$set`` (diagnostic only): the same batches as plain
  ``$set``/``$setOnInsert`` upserts, one per record, to tell the cost of batching
  from what merging and the update pipelines ``BulkWriter`` uses add or save.

Each side writes to a fresh database with the contract's indexes, on the same
server; the databases are dropped afterwards. Each chunk of 500 records is timed
too: SecantusDB scans its table of retryable writes (one entry per write
command, kept 30 minutes) on every write, so one-by-one saves slow down as they
accumulate, and the per-chunk rates show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psutil
from mongoengine.errors import NotUniqueError
from pymongo import MongoClient, UpdateOne

from bench.machine import busy_cpu_seconds
from models import documents
from models.entities import Record, Room, RoomSnapshot, Streamer
from pipelines.store.ops import StoredRecord, writes
from pipelines.store.writer import BulkWriter
from sandbox.process import SandboxProcess
from spiders.bilibili import pages

BATCH = 500
LIVE = "/api.live.bilibili.com"
MAIN = "/api.bilibili.com"

#: Record type -> its mongoengine document.
DOCUMENT_OF: dict[type[Record], Any] = {
    Room: documents.RoomDocument,
    RoomSnapshot: documents.RoomSnapshotDocument,
    Streamer: documents.StreamerDocument,
}


def _parse(sandbox: SandboxProcess, path: str, kind: str) -> list[Record]:
    reply = sandbox.get(path)
    records = pages.parse(reply.body, url=sandbox.url + path, fetched_at=datetime.now(UTC), kind=kind)
    return [r for r in records if isinstance(r, Record) and r.collection]


def build_records(sandbox: SandboxProcess, count: int) -> list[StoredRecord]:
    """At least ``count`` records, in crawl order, parsed from the sandbox's pages by the spider's parser."""
    records: list[StoredRecord] = []
    page = 1
    while len(records) < count:
        path = f"{LIVE}/room/v1/Area/getRoomList?parent_area_id=0&area_id=0&page={page}&page_size=30&sort_type=online"
        listed = _parse(sandbox, path, "area_room_list")
        if not listed:
            raise RuntimeError(f"the sandbox ran out of rooms at {len(records)} records; use more streamers")
        records.extend(listed)
        for room in (r for r in listed if isinstance(r, Room)):
            records.extend(_parse(sandbox, f"{LIVE}/room/v1/Room/get_info?room_id={room.room_id}", "room_info"))
            uid = room.streamer_id
            records.extend(_parse(sandbox, f"{MAIN}/x/web-interface/card?mid={uid}", "user_card"))
            records.extend(_parse(sandbox, f"{LIVE}/live_user/v1/Master/info?uid={uid}", "master_info"))
            if len(records) >= count:
                break
        page += 1
    return records[:count]


@dataclass(frozen=True)
class StoreRate:
    """Documents written, seconds taken, CPU seconds of this client and of the server, final counts."""

    docs: int
    seconds: float
    counts: dict[str, int]
    client_cpu_s: float
    server_cpu_s: float | None
    #: Cores the rest of the machine used meanwhile (above ~0.3, the figure is disturbed).
    other_cores: float
    #: Docs/s of each successive chunk of 500 records (a drift shows the server slowing down).
    chunks_per_s: tuple[float, ...] = ()
    #: Bulk operations sent for the records (fewer when records of one entity are merged), if known.
    operations: int | None = None

    @property
    def per_s(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def _timed(uri: str, db_name: str, records: Sequence[StoredRecord],
           write: Callable[[Any, Sequence[StoredRecord]], None], server: psutil.Process | None) -> StoreRate:
    """Fresh database with indexes; time ``write(db, chunk)`` over chunks of 500; count; drop the database.

    ``server`` (the store's process, if known) also gives the server's CPU seconds.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    try:
        client.drop_database(db_name)
        db = client[db_name]
        documents.ensure_indexes(db)
        documents.connect(uri, db_name)  # for the one-by-one mongoengine saves
        machine, server_cpu, client_cpu = busy_cpu_seconds(), _cpu(server), time.process_time()
        started = time.perf_counter()
        chunks = []
        for start in range(0, len(records), BATCH):
            chunk = records[start:start + BATCH]
            chunk_started = time.perf_counter()
            write(db, chunk)
            chunks.append(len(chunk) / (time.perf_counter() - chunk_started))
        seconds = time.perf_counter() - started
        client_cpu, server_cpu = time.process_time() - client_cpu, _cpu(server) - server_cpu
        other = max(0.0, (busy_cpu_seconds() - machine - client_cpu - server_cpu) / seconds)
        counts = {name: db[name].count_documents({}) for name in sorted({r.collection for r in records})}
        client.drop_database(db_name)
        return StoreRate(len(records), seconds, counts, client_cpu, server_cpu if server else None, other,
                         tuple(chunks))
    finally:
        documents.disconnect()
        client.close()


def _bulk(db: Any, batch: Sequence[StoredRecord]) -> None:
    BulkWriter(db).write(batch)


def _bulk_plain_set(db: Any, batch: Sequence[StoredRecord]) -> None:
    by_collection: dict[str, list[UpdateOne]] = {}
    for record in batch:
        assert isinstance(record, Record)
        doc = record.model_dump(exclude_none=True)
        op = "$setOnInsert" if isinstance(record, RoomSnapshot) else "$set"
        by_collection.setdefault(record.collection, []).append(UpdateOne(record.key(), {op: doc}, upsert=True))
    for name, ops in by_collection.items():
        db[name].bulk_write(ops, ordered=False)


def save_one(record: StoredRecord) -> None:
    """Store one record through mongoengine, one round trip per record."""
    assert isinstance(record, Record)
    document = DOCUMENT_OF[type(record)]
    fields = record.model_dump(exclude_none=True)
    if isinstance(record, RoomSnapshot):
        try:
            document(**fields).save()
        except NotUniqueError:  # the same snapshot twice: one document, as the bulk path keeps it
            pass
        return
    key = record.key()
    updates = {f"set__{name}": value for name, value in fields.items() if name not in key}
    seen = record.fetched_at  # type: ignore[attr-defined]
    document.objects(**key).update_one(upsert=True, min__first_seen_at=seen, max__last_seen_at=seen, **updates)


def _single(db: Any, chunk: Sequence[StoredRecord]) -> None:
    for record in chunk:
        save_one(record)


def bulk_rate(uri: str, db_name: str, records: Sequence[StoredRecord],
              server: psutil.Process | None = None) -> StoreRate:
    """Docs/s of ``BulkWriter.write`` on batches of 500 (what the store pipeline does)."""
    rate = _timed(uri, db_name, records, _bulk, server)
    return replace(rate, operations=bulk_operations(records))


def bulk_operations(records: Sequence[StoredRecord]) -> int:
    """How many operations ``BulkWriter`` sends for ``records`` in batches of 500."""
    count = 0
    for start in range(0, len(records), BATCH):
        by_collection: dict[str, list[StoredRecord]] = {}
        for record in records[start:start + BATCH]:
            by_collection.setdefault(record.collection, []).append(record)
        count += sum(len(writes(group)) for group in by_collection.values())
    return count


def bulk_plain_set_rate(uri: str, db_name: str, records: Sequence[StoredRecord],
                        server: psutil.Process | None = None) -> StoreRate:
    """Docs/s of batches of 500 plain ``$set`` upserts (no update pipeline): a diagnostic."""
    return _timed(uri, db_name, records, _bulk_plain_set, server)


def single_rate(uri: str, db_name: str, records: Sequence[StoredRecord],
                server: psutil.Process | None = None) -> StoreRate:
    """Docs/s of one mongoengine save per record."""
    return _timed(uri, db_name, records, _single, server)
