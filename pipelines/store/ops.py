"""Turn records into idempotent MongoDB bulk operations (pure functions).

* Entities (streamers, rooms, products) are upserted on their natural key
  with a one-stage update pipeline. Only fields the payload carried are set,
  so a partial record (a streamer seen in a room list, with just a nickname)
  never erases what a full profile wrote. A field is overwritten only by a
  record fetched at least as late as the stored one (or when it is missing),
  so an old spooled batch replayed late, or a slow worker, cannot roll the
  current state back. ``first_seen_at``/``last_seen_at`` are the min/max of
  ``fetched_at``; rooms keep ``peak_viewers`` as the max of every
  ``viewers_now`` seen; products keep ``sales`` as the best-known cumulative
  count, the largest seen whatever its time, with that observation's
  ``sales_text``/``sales_is_lower_bound`` (a second ``$set`` stage in the same
  update: a rounded ``6.6万+`` never replaces an exact 66910 already stored).
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
A product whose observations carry ``sales`` gets a second stage, a ``$set`` of
three ``$cond`` (:func:`_sales_stage`): it must be able to remove the stored
``sales_text`` (``$$REMOVE``), which ``$mergeObjects`` cannot.
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
#: A product's cumulative sales, kept as the best-known count (:func:`_sales_stage`), not the newest.
_SALES = ("sales", "sales_text", "sales_is_lower_bound")


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
    is_product = isinstance(observations[0], Product)
    by_time: dict[datetime, dict[str, Any]] = {}
    for name, (value, at) in newest_fields(observations).items():
        if name not in key and name not in _STORE_KEPT and not (is_product and name in _SALES):
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
    pipeline: list[dict[str, Any]] = [{"$replaceWith": {"$mergeObjects": [*fill, "$$ROOT", *overwrite, kept]}}]
    if is_product and (stage := _sales_stage(observations)) is not None:
        pipeline.append(stage)
    return UpdateOne(key, pipeline, upsert=True)


def best_sales(observations: Sequence[Product]) -> Product | None:
    """The observation with the best-known cumulative count: the largest ``sales``; of equal
    counts an exact one (``sales_is_lower_bound`` not True) over a lower bound, then the newest."""
    seen = [o for o in observations if o.sales is not None]
    if not seen:
        return None
    # Newest first (of equal times, the later in the batch first): max() keeps the first of equals.
    newest_first = reversed(sorted(seen, key=lambda o: o.fetched_at))
    return max(newest_first, key=lambda o: (o.sales, o.sales_is_lower_bound is not True))


def _sales_stage(observations: Sequence[Product]) -> dict[str, Any] | None:
    """The stage that keeps ``products.sales`` the best-known count (SCHEMA.md, ``products``).

    The best observation's ``sales`` replaces the stored one only when it is larger, or equal
    and exact where the stored one is a lower bound; it then brings its own ``sales_text`` and
    ``sales_is_lower_bound`` (removed when it has none), else all three stay as stored. So a
    rounded ``6.6万+`` (66000) seen after an exact 66910 leaves 66910, its text and flag. One
    ``$set`` evaluated against the stored document in the same atomic update as the rest (a
    ``$replaceWith`` cannot remove a field; ``$$REMOVE`` in ``$set`` can, on SecantusDB too).
    """
    best = best_sales(observations)
    if best is None:
        return None
    value = best.sales
    better = {"$or": [
        {"$not": [{"$isNumber": "$sales"}]},
        {"$gt": [value, "$sales"]},
        *([{"$and": [{"$eq": [value, "$sales"]}, {"$eq": ["$sales_is_lower_bound", True]}]}]
          if best.sales_is_lower_bound is not True else []),
    ]}
    new = {"sales": value, "sales_text": best.sales_text, "sales_is_lower_bound": best.sales_is_lower_bound}
    return {"$set": {
        name: {"$cond": [better, "$$REMOVE" if new[name] is None else {"$literal": new[name]}, f"${name}"]}
        for name in _SALES
    }}


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
