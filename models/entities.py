"""Pydantic models, one per collection of the data contract (SCHEMA.md).

Parsers build these; pipelines validate and store them. A field the payload
does not carry stays ``None`` and is never written over a known value.

Conventions shared by every model:

* IDs are non-empty strings (Douyin IDs exceed 2**53).
* Counts are non-negative ints. A count the platform showed only as text keeps
  that text in ``<field>_text`` and, when the text ended in ``+``,
  ``<field>_is_lower_bound = True``.
* Money is yuan as a float; datetimes are timezone-aware and stored as UTC.
* ``kind`` (class attribute) is the ``type`` printed by ``livefleet parse``;
  ``collection`` and ``key_fields`` tell the store where and how to upsert.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator

# The one platform list (models/platforms.py), re-exported for the records' users.
from models.platforms import PLATFORMS as PLATFORMS
from models.platforms import Platform as Platform

RoomStatus = Literal["live", "ended", "offline", "replay", "unknown"]

#: A platform ID: always a string, never empty.
PlatformId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
#: A count: an int (bools and numeric strings are refused), never negative.
Count = Annotated[int, Field(ge=0, strict=True)]
#: Yuan.
Money = Annotated[float, Field(ge=0)]
Text = Annotated[str, StringConstraints(strip_whitespace=True)]


def utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC (it must be timezone-aware)."""
    return value.astimezone(UTC)


class Record(BaseModel):
    """Base of every stored record."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: ClassVar[str] = ""
    collection: ClassVar[str] = ""
    #: The natural key; snapshots include their capture time.
    key_fields: ClassVar[tuple[str, ...]] = ()

    platform: Platform
    #: Which crawl / monitor asked for the page (``crawlers.queue.origin``); never stored.
    _origin: dict[str, str] | None = PrivateAttr(default=None)

    @field_validator("*", mode="after")
    @classmethod
    def _datetimes_in_utc(cls, value: Any) -> Any:
        return utc(value) if isinstance(value, datetime) else value

    def key(self) -> dict[str, Any]:
        """The natural-key filter of this record, e.g. ``{"platform": .., "room_id": ..}``."""
        return {f: getattr(self, f) for f in self.key_fields}

    def to_json_dict(self) -> dict[str, Any]:
        """``{"type": kind, ...fields}`` with JSON types and ``None`` fields left out."""
        return {"type": self.kind, **self.model_dump(mode="json", exclude_none=True)}


class Fetched(Record):
    """A record taken from one fetched payload."""

    fetched_at: AwareDatetime
    source_url: str | None = None


class Streamer(Fetched):
    """A streamer (主播/达人). Key: (platform, streamer_id)."""

    kind: ClassVar[str] = "streamer"
    collection: ClassVar[str] = "streamers"
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "streamer_id")

    streamer_id: PlatformId
    #: Second platform ID where one exists (Douyin sec_uid, Kuaishou eid).
    sec_id: PlatformId | None = None
    #: Public short ID (Douyin unique_id, Kuaishou kwaiId; never a Kuaishou principalId).
    handle: Text | None = None
    nickname: Text | None = None
    avatar_url: str | None = None
    bio: str | None = None
    verified: bool | None = None
    verify_text: Text | None = None
    followers: Count | None = None
    followers_text: str | None = None
    followers_is_lower_bound: bool | None = None
    following: Count | None = None
    likes_total: Count | None = None
    likes_total_text: str | None = None
    likes_total_is_lower_bound: bool | None = None
    works_count: Count | None = None
    is_live: bool | None = None
    #: Current or last room of this streamer.
    room_id: PlatformId | None = None
    #: Streamer level as the platform shows it (Bilibili master level).
    level: Count | None = None


class Room(Fetched):
    """A live room (直播间). Key: (platform, room_id)."""

    kind: ClassVar[str] = "room"
    collection: ClassVar[str] = "rooms"
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "room_id")

    room_id: PlatformId
    streamer_id: PlatformId | None = None
    #: The ID in the public room URL where it differs (Douyin web_rid, Bilibili short_id, Kuaishou principalId).
    web_rid: PlatformId | None = None
    title: Text | None = None
    status: RoomStatus | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    viewers_now: Count | None = None
    viewers_now_text: str | None = None
    viewers_now_is_lower_bound: bool | None = None
    #: Cumulative viewers of this session.
    viewers_total: Count | None = None
    viewers_total_text: str | None = None
    viewers_total_is_lower_bound: bool | None = None
    likes: Count | None = None
    likes_text: str | None = None
    likes_is_lower_bound: bool | None = None
    #: Max of viewers_now over this room's snapshots (maintained by the store).
    peak_viewers: Count | None = None
    category: Text | None = None
    #: The parent of ``category`` where the platform has a two-level tree (Bilibili).
    parent_category: Text | None = None
    cover_url: str | None = None
    product_count: Count | None = None
    #: Bilibili 人气 (popularity), a different number from viewers; kept apart on purpose.
    popularity: Count | None = None
    description: str | None = None
    #: The first monitored capture that saw this room live after a capture (or none) that did not
    #: (``crawlers.monitor``); the platform's own ``started_at`` is left as it says.
    stream_started_seen_at: AwareDatetime | None = None
    #: The first monitored capture that saw this room no longer live after one that saw it live.
    stream_ended_seen_at: AwareDatetime | None = None


class RoomSnapshot(Record):
    """One observation of a room. Key: (platform, room_id, captured_at)."""

    kind: ClassVar[str] = "room_snapshot"
    collection: ClassVar[str] = "room_snapshots"
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "room_id", "captured_at")

    room_id: PlatformId
    captured_at: AwareDatetime
    status: RoomStatus | None = None
    viewers_now: Count | None = None
    viewers_total: Count | None = None
    likes: Count | None = None
    product_count: Count | None = None
    #: The product being presented at capture time.
    current_product_id: PlatformId | None = None
    #: The broadcast this observation belongs to, where the room key does not say it: Kuaishou's
    #: liveStreamId, Bilibili's ``<room_id>:<live start epoch seconds>`` (``live_sessions.session_id``).
    #: Douyin's and Taobao's room ids are per broadcast already: None there.
    session_id: PlatformId | None = None
    source_url: str | None = None


class Product(Fetched):
    """A product (商品). Key: (platform, product_id)."""

    kind: ClassVar[str] = "product"
    collection: ClassVar[str] = "products"
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "product_id")

    product_id: PlatformId
    title: Text | None = None
    price: Money | None = None
    original_price: Money | None = None
    #: Cumulative units sold as shown; None when the platform hides it. The store keeps the
    #: best-known count: the largest seen, exact or lower bound (with that one's text and flag).
    sales: Count | None = None
    sales_text: str | None = None
    #: False for an exact count (an int, a plain number), True for a floor (``6.6万+``).
    sales_is_lower_bound: bool | None = None
    #: A rolling count that can go down (Taobao's 月销: units in the last 30 days), never in ``sales``.
    sales_30d: Count | None = None
    sales_30d_text: str | None = None
    shop_id: PlatformId | None = None
    shop_name: Text | None = None
    category: Text | None = None
    image_url: str | None = None
    url: str | None = None
    #: Douyin: the ID of the product's listing (promotion) in a room or showcase, which the
    #: product detail API is keyed by; it may differ from ``product_id``.
    promotion_id: PlatformId | None = None


class ProductSnapshot(Record):
    """One observation of a product. Key: (platform, product_id, captured_at)."""

    kind: ClassVar[str] = "product_snapshot"
    collection: ClassVar[str] = "product_snapshots"
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "product_id", "captured_at")

    product_id: PlatformId
    captured_at: AwareDatetime
    price: Money | None = None
    #: Cumulative units as this observation showed them, with their text and whether they are a
    #: lower bound (``6.6万+``: True; an exact shelf count: False), as for ``Product``.
    sales: Count | None = None
    sales_text: str | None = None
    sales_is_lower_bound: bool | None = None
    #: A rolling count (月销, units in the last 30 days): not cumulative, never in ``sales``.
    sales_30d: Count | None = None
    sales_30d_text: str | None = None
    #: When seen on a live room's shelf: the room and the position on it (1-based).
    room_id: PlatformId | None = None
    rank_in_room: Count | None = None
    source_url: str | None = None


class QuarantineRecord(BaseModel):
    """What could not be used, kept so it can be inspected and replayed.

    ``payload`` is the raw payload as text (``payload_encoding="utf-8"``) or, for
    bytes that are not UTF-8, base64 (``payload_encoding="base64"``). Payloads are
    bounded (:meth:`bounded`, applied by the quarantine and store pipelines): a
    body of any size must still fit one MongoDB document (16 MB) and one spool
    line, so a longer one keeps its first bytes only, with ``payload_truncated``,
    and ``payload_size``/``payload_sha256`` of the whole raw payload, which tell
    it apart from another body that starts the same way.
    """

    model_config = ConfigDict(extra="forbid")

    kind: ClassVar[str] = "quarantine"
    collection: ClassVar[str] = "quarantine"
    #: The record this one stands for when the store refused it for good (never stored).
    _refused: Any = PrivateAttr(default=None)

    platform: str | None = None
    spider: str | None = None
    url: str | None = None
    reason: str
    payload: str | None = None
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    #: Bytes of the whole raw payload (``payload`` may hold only its first bytes).
    payload_size: int | None = None
    #: Hex sha256 of the whole raw payload.
    payload_sha256: str | None = None
    #: True when ``payload`` is a prefix of a longer raw payload.
    payload_truncated: bool | None = None
    fetched_at: AwareDatetime | None = None
    quarantined_at: AwareDatetime
    replayed_at: AwareDatetime | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **self.model_dump(mode="json", exclude_none=True)}

    def raw_payload(self) -> bytes | None:
        """The payload's bytes as kept (text that UTF-8 cannot hold keeps its code points)."""
        if self.payload is None:
            return None
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8", errors="surrogatepass")

    def bounded(self, limit: int) -> QuarantineRecord:
        """This record with at most ``limit`` bytes of payload, its size and sha256, and text
        fields any store can hold (lone surrogates escaped). Idempotent; ``self`` when nothing changes."""
        update: dict[str, Any] = {
            name: _storable_text(getattr(self, name)) for name in ("platform", "spider", "url", "reason")
            if getattr(self, name) is not None and not _is_utf8(getattr(self, name))
        }
        raw = self.raw_payload()
        if raw is not None and (self.payload_sha256 is None or len(raw) > limit or not _is_utf8(self.payload)):
            update.update(payload_fields(raw, limit, size=self.payload_size, sha256=self.payload_sha256))
        if not update:
            return self
        bounded = self.model_copy(update=update)
        bounded._refused = self._refused
        return bounded


def payload_fields(raw: bytes, limit: int, *, size: int | None = None, sha256: str | None = None) -> dict[str, Any]:
    """``payload``, ``payload_encoding``, ``payload_size``, ``payload_sha256`` and ``payload_truncated``
    of a raw payload kept to its first ``limit`` bytes (``size``/``sha256``: of the original whole,
    when ``raw`` is already a prefix)."""
    limit = max(0, limit)
    prefix = raw[:limit]
    text: str | None = None
    for cut in range(4 if len(raw) > limit else 1):  # a cut may split one UTF-8 character
        try:
            text = prefix[: len(prefix) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    truncated = len(raw) > limit or bool(size and size > len(raw))
    return {
        "payload": text if text is not None else base64.b64encode(prefix).decode("ascii"),
        "payload_encoding": "utf-8" if text is not None else "base64",
        "payload_size": size if size is not None else len(raw),
        "payload_sha256": sha256 or hashlib.sha256(raw).hexdigest(),
        "payload_truncated": truncated or None,
    }


def _is_utf8(text: str | None) -> bool:
    if text is None:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_text(text: str) -> str:
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


#: Every stored record type, by its ``kind``.
RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls for cls in (Streamer, Room, RoomSnapshot, Product, ProductSnapshot)
}


def present_fields(record: BaseModel) -> dict[str, Any]:
    """The fields ``record`` carries (not ``None``), by name.

    The same dict as ``model_dump(exclude_none=True)`` for these flat models (no
    nested models, no custom serializers), read straight from the validated
    instance: a few times cheaper, which counts on the store's hot path.
    """
    return {name: value for name, value in record.__dict__.items() if value is not None}


def entity_key(record: BaseModel) -> tuple[Any, ...] | None:
    """``(type, *natural key)`` of an entity record (streamer, room, product).

    ``None`` for what is never merged: snapshots (each one is its own
    observation) and records without a natural key (quarantine records).
    """
    if not isinstance(record, Record) or not record.key_fields or isinstance(record, (RoomSnapshot, ProductSnapshot)):
        return None
    return (type(record), *(getattr(record, name) for name in record.key_fields))


_R = TypeVar("_R", bound=BaseModel)


def group_same_entity(records: Iterable[_R]) -> list[list[_R]]:
    """``records`` grouped by entity: one list per entity, in the order each entity first
    appears, its records in their own order; every snapshot (or keyless record) alone."""
    groups: list[list[_R]] = []
    index: dict[tuple[Any, ...], int] = {}
    for record in records:
        key = entity_key(record)
        if key is None:
            groups.append([record])
        elif key in index:
            groups[index[key]].append(record)
        else:
            index[key] = len(groups)
            groups.append([record])
    return groups


def merge_records(records: list[Record]) -> list[Record]:
    """Merge entity records that describe the same thing (same type and key).

    Some platforms split one entity over several payloads (Tmall's item page:
    ``_DATA_Detail`` has the title and shop, ``_DATA_Mdskip`` the price and
    sales). Parsed together, their records become one: later records fill the
    fields earlier ones left ``None``; a field both carry keeps the first value.
    Snapshots and records without a key are kept as they are, in order.
    (The store merges observations fetched at different times differently:
    the newest wins, see :func:`newest_fields`.)
    """
    merged: list[Record] = []
    for first, *rest in group_same_entity(records):
        extra: dict[str, Any] = {}
        for record in rest:
            for name, value in present_fields(record).items():
                if getattr(first, name) is None:
                    extra.setdefault(name, value)
        merged.append(first.model_copy(update=extra) if extra else first)
    return merged


def newest_fields(records: Sequence[Fetched]) -> dict[str, tuple[Any, datetime]]:
    """Observations of one entity folded field by field: the newest value wins.

    For every field at least one of ``records`` carries: the value of the most
    recently fetched record that carries it, and that record's ``fetched_at``
    (the store needs it per field: a stored document fetched between two
    observations must keep its values against the older one). A field no record
    carries is absent, so a partial record never erases anything. Of records
    fetched at the same instant, the later in ``records`` wins, as it would if
    they were written one after the other.
    """
    fields: dict[str, tuple[Any, datetime]] = {}
    for record in sorted(records, key=lambda r: r.fetched_at):  # stable: ties keep their order
        at = record.fetched_at
        for name, value in present_fields(record).items():
            fields[name] = (value, at)
    return fields
