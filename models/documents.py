"""mongoengine documents for the collections of the data contract.

The fields are derived from the pydantic records in :mod:`models.entities`,
so the two cannot drift apart; what the documents add is the storage side:
collection names, unique keys and indexes (SCHEMA.md), and the store-kept
``first_seen_at``/``last_seen_at``. The hot write path uses pymongo bulk
writes (see ``pipelines.store``); these documents declare the indexes, and
serve admin work and readers who prefer mongoengine.

Indexes are created with pymongo on the caller's own database
(:func:`ensure_indexes`), not through mongoengine's connection: that
connection is one global per process, and a worker process runs several
crawlers, each with its own store; one closing must not cut the others off.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import mongoengine as me
from pydantic import AwareDatetime
from pydantic.fields import FieldInfo
from pymongo import IndexModel
from pymongo.database import Database

from models.entities import (
    Product,
    ProductSnapshot,
    QuarantineRecord,
    Record,
    Room,
    RoomSnapshot,
    Streamer,
)

#: The mongoengine connection alias livefleet registers.
ALIAS = "livefleet"


def _base_type(annotation: Any) -> Any:
    """Strip Optional/Annotated/Literal down to the Python type stored."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _base_type(inner[0])
    if origin is Literal:
        return type(get_args(annotation)[0])
    metadata_origin = getattr(annotation, "__origin__", None)
    if metadata_origin is not None and hasattr(annotation, "__metadata__"):
        return _base_type(metadata_origin)
    return annotation


_FIELD_TYPES: dict[Any, type[me.BaseField]] = {
    str: me.StringField,
    int: me.IntField,
    float: me.FloatField,
    bool: me.BooleanField,
    datetime: me.DateTimeField,
    AwareDatetime: me.DateTimeField,
}


def _mongo_field(name: str, info: FieldInfo, key_fields: tuple[str, ...]) -> me.BaseField:
    field_cls = _FIELD_TYPES[_base_type(info.annotation)]
    return field_cls(required=name in key_fields)


def _document(record: type[Record] | type[QuarantineRecord], *, indexes: list[dict[str, Any]],
              entity: bool) -> type[me.Document]:
    key_fields = getattr(record, "key_fields", ())
    attrs: dict[str, Any] = {
        name: _mongo_field(name, info, key_fields) for name, info in record.model_fields.items()
    }
    if entity:
        attrs["first_seen_at"] = me.DateTimeField()
        attrs["last_seen_at"] = me.DateTimeField()
    attrs["meta"] = {
        "collection": record.collection,
        "db_alias": ALIAS,
        "indexes": indexes,
        # Documents written by newer versions may carry fields this one does not know.
        "strict": False,
        "auto_create_index": False,
    }
    attrs["__doc__"] = f"The ``{record.collection}`` collection ({record.__name__} records)."
    return type(f"{record.__name__}Document", (me.Document,), attrs)


def _unique(*fields: str) -> dict[str, Any]:
    return {"fields": list(fields), "unique": True}


StreamerDocument = _document(
    Streamer,
    indexes=[_unique("platform", "streamer_id"), {"fields": ["platform", "-followers"]}],
    entity=True,
)
RoomDocument = _document(Room, indexes=[_unique("platform", "room_id"), {"fields": ["platform", "status"]}],
                         entity=True)
RoomSnapshotDocument = _document(RoomSnapshot, indexes=[_unique("platform", "room_id", "captured_at")],
                                 entity=False)
ProductDocument = _document(Product, indexes=[_unique("platform", "product_id")], entity=True)
ProductSnapshotDocument = _document(
    ProductSnapshot, indexes=[_unique("platform", "product_id", "captured_at")], entity=False
)
QuarantineDocument = _document(
    QuarantineRecord,
    indexes=[_unique("platform", "spider", "url", "fetched_at", "reason"), {"fields": ["quarantined_at"]}],
    entity=False,
)

DOCUMENTS: tuple[type[me.Document], ...] = (
    StreamerDocument,
    RoomDocument,
    RoomSnapshotDocument,
    ProductDocument,
    ProductSnapshotDocument,
    QuarantineDocument,
)

#: The collection names, in the order the demo summary prints them.
COLLECTIONS: tuple[str, ...] = tuple(doc._meta["collection"] for doc in DOCUMENTS)


def connect(uri: str, db: str, *, timeout_ms: int = 30000) -> None:
    """Register livefleet's mongoengine connection (replacing an earlier one).

    For mongoengine queries (the store benchmark, admin scripts), never for the store:
    the registration is global to the process."""
    me.disconnect(alias=ALIAS)
    me.connect(db=db, host=uri, alias=ALIAS, tz_aware=True, uuidRepresentation="standard",
               serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)


def disconnect() -> None:
    me.disconnect(alias=ALIAS)


def index_models(document: type[me.Document]) -> list[IndexModel]:
    """The pymongo indexes ``document`` declares (mongoengine's parsed ``index_specs``)."""
    models = []
    for spec in document._meta["index_specs"]:
        options = {name: option for name, option in spec.items() if name != "fields"}
        models.append(IndexModel(spec["fields"], **options))
    return models


def ensure_indexes(db: Database) -> None:
    """Create every index of the contract in ``db`` (safe to call on every start).

    Raises pymongo's errors (``PyMongoError``) when the store cannot be reached."""
    for document in DOCUMENTS:
        db[document._meta["collection"]].create_indexes(index_models(document))
