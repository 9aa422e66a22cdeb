"""One feed message: how a stored record becomes stream fields, and how they are read back.

Stream fields (all strings):

``doc``      the record as SCHEMA.md documents it (``record.to_json_dict()``), as JSON
``op``       ``insert`` (a new streamer, room or product; a snapshot), ``update`` (a stored
             streamer, room or product updated by this observation), ``upsert`` (inserted or
             updated, not known which), ``quarantine`` (a quarantine record)
``at``       when the store published the change (ISO 8601, UTC)
``crawl``    the crawl (campaign run) whose page produced the record, when there is one
``monitor``  the monitor whose page produced the record, when there is one
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any

from crawlers.queue.origin import origin_of
from models.entities import QuarantineRecord, Record

#: Collections that have a feed, in the order ``livefleet feed info`` lists them.
COLLECTIONS = ("streamers", "rooms", "room_snapshots", "products", "product_snapshots", "quarantine")

#: The ``op`` of each collection's messages.
OPS = {"streamers": "upsert", "rooms": "upsert", "products": "upsert", "room_snapshots": "insert",
       "product_snapshots": "insert", "quarantine": "quarantine"}


def op_of(record: Record | QuarantineRecord, created: Set[int] | None = None) -> str:
    """The message's ``op``; ``created`` (ids of records whose write inserted their entity) tells
    an entity's insert from its update."""
    op = OPS.get(record.collection, "upsert")
    if op == "upsert" and created is not None:
        return "insert" if id(record) in created else "update"
    return op


def message_fields(record: Record | QuarantineRecord, at: str, created: Set[int] | None = None) -> dict[str, str]:
    """The stream fields publishing ``record`` at ``at`` (ISO time)."""
    fields = {
        "doc": json.dumps(record.to_json_dict(), ensure_ascii=False, separators=(",", ":")),
        "op": op_of(record, created),
        "at": at,
    }
    fields.update(origin_of(record))
    return fields


@dataclass(frozen=True)
class FeedMessage:
    """A message read from a feed: its stream entry id, its collection and its fields."""

    id: str
    collection: str
    op: str
    at: str
    doc: dict[str, Any]
    crawl: str | None = None
    monitor: str | None = None

    @classmethod
    def from_entry(cls, collection: str, entry_id: bytes | str, fields: Mapping[Any, Any]) -> FeedMessage:
        text = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            id=_text(entry_id),
            collection=collection,
            op=text.get("op", ""),
            at=text.get("at", ""),
            doc=json.loads(text.get("doc") or "{}"),
            crawl=text.get("crawl"),
            monitor=text.get("monitor"),
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The message as one JSON object (``livefleet feed read`` lines, webhook events)."""
        out: dict[str, Any] = {"id": self.id, "collection": self.collection, "op": self.op, "at": self.at}
        if self.crawl:
            out["crawl"] = self.crawl
        if self.monitor:
            out["monitor"] = self.monitor
        out["doc"] = self.doc
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
