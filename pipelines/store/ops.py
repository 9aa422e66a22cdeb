"""Turn records into idempotent MongoDB bulk operations (pure functions).

* Entities (streamers, rooms, products) are upserted on their natural key
  with an update pipeline. Only fields the payload carried are set, so a
  partial record (a streamer seen in a room list, with just a nickname) never
  erases what a full profile wrote. A field is overwritten only by a record
  fetched at least as late as the stored one (or when it is missing), so an
  old spooled batch replayed late, or a slow worker, cannot roll the current
  state back. ``first_seen_at``/``last_seen_at`` are the min/max of
  ``fetched_at``; rooms keep ``peak_viewers`` as the max of every
  ``viewers_now`` seen.
* Snapshots are appended: $setOnInsert on (platform, id, captured_at), so
  writing the same snapshot twice leaves one document.
* Quarantine records are inserted once per (platform, spider, url,
  fetched_at, reason).
"""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne

from models.entities import (
    RECORD_TYPES,
    Product,
    ProductSnapshot,
    QuarantineRecord,
    Record,
    Room,
    RoomSnapshot,
    Streamer,
)

StoredRecord = Record | QuarantineRecord

_QUARANTINE_KEY = ("platform", "spider", "url", "fetched_at", "reason")


def collection_of(record: StoredRecord) -> str:
    return record.collection


def operation(record: StoredRecord) -> UpdateOne:
    """The bulk operation that stores ``record`` idempotently."""
    doc = record.model_dump(exclude_none=True)
    if isinstance(record, QuarantineRecord):
        key = {name: doc.get(name) for name in _QUARANTINE_KEY}
        return UpdateOne(key, {"$setOnInsert": doc}, upsert=True)
    key = record.key()
    if isinstance(record, (RoomSnapshot, ProductSnapshot)):
        return UpdateOne(key, {"$setOnInsert": doc}, upsert=True)
    if isinstance(record, (Streamer, Room, Product)):
        fetched_at = record.fetched_at
        newer = {"$lte": [{"$ifNull": ["$fetched_at", None]}, fetched_at]}
        stages: dict[str, Any] = {}
        for name, value in doc.items():
            if name in key or name == "peak_viewers":
                continue
            missing = {"$eq": [{"$type": f"${name}"}, "missing"]}
            # $literal: a title that starts with "$" is text, not a field path.
            stages[name] = {"$cond": [{"$or": [newer, missing]}, {"$literal": value}, f"${name}"]}
        stages["first_seen_at"] = {"$min": ["$first_seen_at", fetched_at]}
        stages["last_seen_at"] = {"$max": ["$last_seen_at", fetched_at]}
        if isinstance(record, Room) and record.viewers_now is not None:
            stages["peak_viewers"] = {"$max": ["$peak_viewers", record.viewers_now]}
        return UpdateOne(key, [{"$set": stages}], upsert=True)
    raise TypeError(f"no store operation for {type(record).__name__}")


def record_from_json(data: dict[str, Any]) -> StoredRecord:
    """Rebuild a record from its ``to_json_dict()`` form (spool files, replays)."""
    data = dict(data)
    kind = data.pop("type", None)
    if kind == QuarantineRecord.kind:
        return QuarantineRecord.model_validate(data)
    cls = RECORD_TYPES.get(kind or "")
    if cls is None:
        raise ValueError(f"unknown record type {kind!r}")
    return cls.model_validate(data)
