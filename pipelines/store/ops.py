"""Turn records into idempotent MongoDB bulk operations (pure functions).

* Entities (streamers, rooms, products) are upserted on their natural key
  with a one-stage update pipeline. Only fields the payload carried are set,
  so a partial record (a streamer seen in a room list, with just a nickname)
  never erases what a full profile wrote. A field is overwritten only by a
  record fetched at least as late as the stored one (or when it is missing),
  so an old spooled batch replayed late, or a slow worker, cannot roll the
  current state back. ``first_seen_at``/``last_seen_at`` are the min/max of
  ``fetched_at``; rooms keep ``peak_viewers`` as the max of every
  ``viewers_now`` seen.
* Records of one entity within a batch (a room from a list page and from its
  own page, a streamer from four pages) become ONE upsert with the same result
  as writing them one by one: each field takes the newest value that carries
  it (:func:`models.entities.newest_fields`) and is guarded by the time of the
  record it came from.
* Snapshots are append-only with a unique key (platform, id, captured_at):
  they are plain inserts, and a duplicate-key error on one means it is already
  stored (a replayed batch, a retried write). Quarantine records likewise, on
  (platform, spider, url, fetched_at, reason).

The update pipeline is one ``$replaceWith`` of ``$mergeObjects``: for the
fields of each observation time ``t``, ``{fields}`` is merged *before* the
stored document when the stored one is newer than ``t`` (it only fills what
is missing) and *after* it otherwise (it overwrites). On SecantusDB this costs
the server about half of the equivalent ``$set`` of one ``$cond`` per field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import InsertOne, UpdateOne

from models.entities import (
    RECORD_TYPES,
    Fetched,
    Product,
    ProductSnapshot,
    QuarantineRecord,
    Record,
    Room,
    RoomSnapshot,
    Streamer,
    group_same_entity,
    newest_fields,
    present_fields,
)

StoredRecord = Record | QuarantineRecord
Operation = InsertOne | UpdateOne

#: Fields the store keeps itself, never copied from a record.
_STORE_KEPT = frozenset({"peak_viewers", "first_seen_at", "last_seen_at"})


@dataclass(frozen=True, slots=True)
class Write:
    """One bulk operation and the records it stores."""

    op: Operation
    records: tuple[StoredRecord, ...]
    #: An insert: a duplicate-key error on it means the document is already stored.
    append_only: bool


def collection_of(record: StoredRecord) -> str:
    return record.collection


def writes(records: Sequence[StoredRecord]) -> list[Write]:
    """The bulk operations that store ``records`` (of one collection) idempotently.

    Entity records with the same key are merged into one operation; the rest
    get one each, in order.
    """
    return [_write(group) for group in group_same_entity(records)]


def _write(group: list[StoredRecord]) -> Write:
    first = group[0]
    if isinstance(first, (RoomSnapshot, ProductSnapshot, QuarantineRecord)):
        return Write(InsertOne(present_fields(first)), (first,), append_only=True)
    if isinstance(first, (Streamer, Room, Product)):
        return Write(entity_update(group), tuple(group), append_only=False)  # type: ignore[arg-type]
    raise TypeError(f"no store operation for {type(first).__name__}")


def entity_update(observations: Sequence[Fetched]) -> UpdateOne:
    """One upsert storing ``observations`` of one entity, as if written one by one."""
    key = observations[0].key()
    by_time: dict[datetime, dict[str, Any]] = {}
    for name, (value, at) in newest_fields(observations).items():
        if name not in key and name not in _STORE_KEPT:
            by_time.setdefault(at, {})[name] = value
    fill: list[Any] = []
    overwrite: list[Any] = []
    for at, fields in by_time.items():
        # A missing fetched_at compares below any date: the record is newer.
        newer = {"$lte": ["$fetched_at", at]}
        # $literal: a title that starts with "$" is text, not a field path.
        fill.append({"$cond": [newer, {}, {"$literal": fields}]})
        overwrite.append({"$cond": [newer, {"$literal": fields}, {}]})
    times = [o.fetched_at for o in observations]
    kept: dict[str, Any] = {
        "first_seen_at": {"$min": ["$first_seen_at", min(times)]},
        "last_seen_at": {"$max": ["$last_seen_at", max(times)]},
    }
    viewers = [o.viewers_now for o in observations if isinstance(o, Room) and o.viewers_now is not None]
    if viewers:
        kept["peak_viewers"] = {"$max": ["$peak_viewers", max(viewers)]}
    return UpdateOne(key, [{"$replaceWith": {"$mergeObjects": [*fill, "$$ROOT", *overwrite, kept]}}], upsert=True)


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
