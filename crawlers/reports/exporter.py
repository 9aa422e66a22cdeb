"""``livefleet export``: one collection, filtered by platform and time, to JSONL or CSV.

Documents are streamed from a MongoDB cursor in batches and written as they come, so an
export of any size runs in constant memory. Both formats leave out ``_id`` and write
datetimes as ISO 8601 (UTC, ``+00:00``).

* JSONL: one JSON object per line, every field the document has.
* CSV: a header, then one row per document, with a column order fixed by the data
  contract (the fields of the collection's model in ``models.entities``, then the
  store-kept ``first_seen_at``/``last_seen_at``), so two exports line up column for
  column (``live_sessions``: the fields of ``models.sessions.LiveSession``). A missing
  field is an empty cell, booleans are ``true``/``false``, nested values (a session's
  ``products_presented``, ``shelf_events`` and ``products_sold`` lists) are JSON, one column each. Fields
  outside the contract are in the JSONL export only.

The time filter applies to when the document was last observed: ``captured_at`` for
snapshots, ``last_seen_at`` for streamers, rooms and products, ``last_seen_live_at`` for
live sessions (live in the window), ``quarantined_at`` for the quarantine. A progress
bar (documents written of the estimated total) goes to stderr when it is a terminal,
unless ``--quiet``. A file is written beside its name first and
renamed into place once complete, so a failed export never leaves half a file behind.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from pymongo.database import Database

from models.entities import RECORD_TYPES, QuarantineRecord
from models.sessions import LiveSession

#: The field each collection's time filter applies to.
TIME_FIELDS: dict[str, str] = {
    "streamers": "last_seen_at",
    "rooms": "last_seen_at",
    "products": "last_seen_at",
    "room_snapshots": "captured_at",
    "product_snapshots": "captured_at",
    "live_sessions": "last_seen_live_at",
    "quarantine": "quarantined_at",
}
FORMATS = ("jsonl", "csv")
#: Documents per cursor batch: what the export holds in memory at once.
BATCH = 500


def columns(collection: str) -> list[str]:
    """The CSV columns of ``collection``, in the contract's order."""
    models = {cls.collection: cls for cls in RECORD_TYPES.values()}
    if collection == "quarantine":
        return list(QuarantineRecord.model_fields)
    if collection == LiveSession.collection:  # first_seen_at/last_seen_at are fields of the model itself
        return list(LiveSession.model_fields)
    if collection not in models:
        raise ValueError(f"unknown collection {collection!r}: choose one of {', '.join(TIME_FIELDS)}")
    names = list(models[collection].model_fields)
    if TIME_FIELDS[collection] == "last_seen_at":  # entities: the store keeps these beside the record's fields
        names += ["first_seen_at", "last_seen_at"]
    return names


def export_filter(collection: str, platform: str | None, since: datetime | None,
                  until: datetime | None) -> dict[str, Any]:
    """The find filter of one export."""
    query: dict[str, Any] = {}
    if platform:
        query["platform"] = platform
    bounds = {op: at for op, at in (("$gte", since), ("$lt", until)) if at is not None}
    if bounds:
        query[TIME_FIELDS[collection]] = bounds
    return query


def documents(db: Database[Any], collection: str, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The matching documents without ``_id``, a batch at a time."""
    with db[collection].find(query, {"_id": 0}, batch_size=BATCH) as cursor:
        yield from cursor


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # ObjectId, Decimal128, ... in fields outside the contract


def jsonl_line(doc: dict[str, Any]) -> str:
    """One document as a JSONL line (without the newline)."""
    return json.dumps(doc, ensure_ascii=False, default=_json_default)


def csv_cell(value: Any) -> str:
    """One value as a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return str(value)


def write(docs: Iterable[dict[str, Any]], out: IO[str], fmt: str, collection: str,
          advance: Callable[[int], None] | None = None) -> int:
    """Write ``docs`` to ``out`` as ``fmt``; returns how many. ``advance(1)`` is called per document written
    (the command's progress bar)."""
    count = 0
    if fmt == "csv":
        names = columns(collection)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for doc in docs:
            writer.writerow([csv_cell(doc.get(name)) for name in names])
            count += 1
            if advance:
                advance(1)
    else:
        for doc in docs:
            out.write(jsonl_line(doc) + "\n")
            count += 1
            if advance:
                advance(1)
    return count
