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
  ``products_presented`` and ``shelf_events`` lists) are JSON, one column each. Fields
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
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pymongo import MongoClient
from pymongo.database import Database

from crawlers.reports.ranking import parse_since
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


class Progress:
    """``export rooms  1,200/3,400 [=======>            ] 35%`` redrawn in place on a terminal."""

    WIDTH = 30

    def __init__(self, label: str, total: int, stream: IO[str] | None) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.count = 0
        self._drawn = 0.0

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if self.stream is not None and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw()

    def _draw(self) -> None:
        assert self.stream is not None
        total = max(self.total, self.count)  # an estimate: documents may arrive while exporting
        share = self.count / total if total else 1.0
        filled = int(share * self.WIDTH)
        bar = "=" * filled + (">" if filled < self.WIDTH else "") + " " * (self.WIDTH - filled - 1)
        self.stream.write(f"\r{self.label} {self.count:,}/{total:,} [{bar[:self.WIDTH]}] {share:4.0%}")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def write(docs: Iterable[dict[str, Any]], out: IO[str], fmt: str, collection: str,
          progress: Progress | None = None) -> int:
    """Write ``docs`` to ``out`` as ``fmt``; returns how many."""
    count = 0
    if fmt == "csv":
        names = columns(collection)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for doc in docs:
            writer.writerow([csv_cell(doc.get(name)) for name in names])
            count += 1
            if progress:
                progress.advance()
    else:
        for doc in docs:
            out.write(jsonl_line(doc) + "\n")
            count += 1
            if progress:
                progress.advance()
    return count


def run_export(mongo_uri: str, db_name: str, collection: str, *, platform: str | None, since: str | None,
               until: str | None, fmt: str, out: str, quiet: bool = False) -> int:
    """``livefleet export``: write the collection to ``out`` (``-``: stdout); prints the count to stderr."""
    if collection not in TIME_FIELDS:
        raise ValueError(f"unknown collection {collection!r}: choose one of {', '.join(TIME_FIELDS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose jsonl or csv")
    query = export_filter(collection, platform, parse_since(since) if since else None,
                          parse_since(until) if until else None)
    show = not quiet and sys.stderr.isatty()
    with MongoClient(mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10_000) as client:
        db = client[db_name]
        progress = Progress(f"export {collection}", db[collection].count_documents(query), sys.stderr) if show \
            else None
        if out == "-":
            count = write(documents(db, collection, query), sys.stdout, fmt, collection, progress)
            sys.stdout.flush()
        else:
            path = Path(out)
            part = path.with_name(path.name + ".part")
            try:
                with part.open("w", encoding="utf-8", newline="") as handle:
                    count = write(documents(db, collection, query), handle, fmt, collection, progress)
                part.replace(path)
            finally:
                part.unlink(missing_ok=True)
        if progress:
            progress.close()
    if not quiet:
        print(f"exported {count} {collection} documents to {'stdout' if out == '-' else out}", file=sys.stderr)
    return 0
