"""Pure parsers of Douyin's live push messages (webcast im push), as decoders print them.

The room's websocket sends protobuf ``Message{method, payload}`` frames
(PLATFORMS.md §1.6). Public decoders turn one into a dict, and they name fields
differently: f2 prints camelCase (``totalUser``, ``common.createTime``) next to
snake_case (``update_product_info``), protobuf-js adds ``List`` to repeated fields
(``updateProductInfoList``), and relays wrap the payload as
``{"method", "msg_id", "payload": {...}}`` inside ``{"code": 200, "data": {"messages": [...]}}``.
Fields are looked up by meaning (``_get``): snake_case, camelCase, with or without
the ``List`` suffix.

``load_messages(body)`` accepts one message, a list, JSON lines, a relay
envelope, or the platform's own binary protobuf (a websocket ``PushFrame`` or the
``im/fetch`` ``Response``, decoded by ``wire.py``), and returns ``None`` when the
body is not push messages at all.
``parse(body, url=, fetched_at=)`` -> ``PushResult(records, events)``:

* ``WebcastRoomUserSeqMessage`` -> RoomSnapshot: ``viewers_now`` = ``total`` (current
  online, int64), ``viewers_total`` = ``total_user`` (int64), else
  ``total_pv_for_anchor`` when it is an exact number (it is a string, often "10万+").
* ``WebcastRoomStatsMessage`` -> RoomSnapshot ``viewers_now`` = ``total``, else
  ``display_value``: the exact ints. The display texts ("1.2万") are never read as
  counts here: the page already gives the rounded text; this message is the exact one.
* ``WebcastLikeMessage`` -> RoomSnapshot ``likes`` = ``total`` (the room's cumulative
  likes; ``count`` is only this batch and is not stored).
* ``WebcastControlMessage`` with ``status`` 3 -> RoomSnapshot ``status`` ``ended``
  (saermart ``_parseControlMsg``); other statuses are not read.
* ``WebcastProductChangeMessage`` (the anchor changed the shelf) -> RoomSnapshot
  ``product_count`` = ``total``; a ``ProductEvent`` ``explained`` for each
  ``update_product_info`` entry carrying an ``explain_type``; and, between two such
  messages of one room in the same input, ``listed`` / ``delisted`` for the
  promotion IDs of the ``update_product_info`` list that appeared / disappeared.
* ``WebcastLiveShoppingMessage`` -> the Products it names (``shop.ws_shopping``) and a
  ``ProductEvent`` per ``updated_product_ids`` entry: ``sold_out`` when
  ``sold_out`` is true, else ``updated``; ``msg_type``/``update_type`` are kept raw.
  The protobuf form carries ``msg_type`` and ``promotion_id`` only: ``msg_type`` 2
  (``SET_CURRENT_PROMOTION`` in the app's enum) -> an ``explained`` event and a
  RoomSnapshot ``current_product_id`` (the promotion id, as the shelf's
  ``current_promotion_id``); 3 (``CANCEL_CURRENT_PROMOTION``) -> ``explain_ended``.

Times: ``common.create_time`` (ms), else the message's ``update_timestamp`` (s),
else ``fetched_at``. The room: ``common.room_id``, else the payload's ``room_id``,
else the request URL's ``room_id``; a message with no room gives no records.

Viewers are never kept: the parsers read a whitelist of fields, so ``user``,
``ranks``/``seats``, nicknames, IDs and avatars of chat, member, gift, social and
rank messages never reach the output; such messages yield nothing.

The messages of one frame share their time: their RoomSnapshots are merged into one per
room and time (a snapshot is keyed by its time), each message adding its fields.

``ProductEvent`` is a plain dataclass: livefleet has no product-event record yet
(the CLI prints events; ``pages.parse`` keeps the records only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from models.entities import Record, RoomSnapshot
from models.errors import PageError
from spiders.douyin import shop, wire
from spiders.payload import Page

__all__ = ["METHODS", "ProductEvent", "PushResult", "load_messages", "method_of", "parse", "parse_messages"]

PLATFORM = "douyin"
#: Message types that carry room metrics or shelf changes (others yield nothing).
METHODS = (
    "WebcastRoomUserSeqMessage",
    "WebcastRoomStatsMessage",
    "WebcastLikeMessage",
    "WebcastControlMessage",
    "WebcastProductChangeMessage",
    "WebcastLiveShoppingMessage",
)
_METHOD_RE = re.compile(r"^Webcast[A-Za-z]+$")
_ENDED_STATUS = 3

EventName = Literal["listed", "delisted", "explained", "explain_ended", "sold_out", "updated"]
#: ``LiveShoppingMessage.msg_type`` values with a published meaning (the app's ``MsgType`` enum).
_SET_CURRENT, _CANCEL_CURRENT = 2, 3


@dataclass(frozen=True)
class ProductEvent:
    """A change on a live room's shelf, seen in a push message (no model exists for it yet)."""

    room_id: str
    at: datetime
    event: EventName
    promotion_id: str | None = None
    product_id: str | None = None
    rank_in_room: int | None = None
    explain_type: str | None = None
    msg_type: str | None = None
    update_type: str | None = None
    platform: str = PLATFORM
    kind = "product_event"

    def to_json_dict(self) -> dict[str, Any]:
        values = {k: v for k, v in asdict(self).items() if v is not None}
        values["at"] = self.at.isoformat().replace("+00:00", "Z")
        return {"type": self.kind, **values}


@dataclass
class PushResult:
    records: list[Record] = field(default_factory=list)
    events: list[ProductEvent] = field(default_factory=list)


# --- field access by meaning -----------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _get(obj: Any, name: str) -> Any:
    """``obj``'s field ``name`` (snake_case) under any decoder's spelling; ``None`` if absent."""
    if not isinstance(obj, dict):
        return None
    camel = _camel(name)
    for key in (name, camel, f"{name}_list", f"{camel}List"):
        if obj.get(key) is not None:
            return obj[key]
    return None


def method_of(message: Any) -> str | None:
    """The message type (``WebcastXxxMessage``), from ``method`` or ``common.method``."""
    if not isinstance(message, dict):
        return None
    method = message.get("method") or _get(message.get("common"), "method")
    return method if isinstance(method, str) and _METHOD_RE.match(method) else None


def _body(message: dict[str, Any]) -> dict[str, Any]:
    """The payload fields: the message itself, or a relay's ``payload`` object."""
    payload = message.get("payload")
    return payload if isinstance(payload, dict) else message


def _exact(value: Any) -> int | None:
    """An exact count: an int, or a string of digits only ("2252"); never "1.2万" or "10万+"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --- loading ---------------------------------------------------------------------------------------


def _messages_in(obj: Any) -> list[dict[str, Any]] | None:
    if isinstance(obj, dict) and method_of(obj) is None:
        data = obj.get("data")
        inner = _get(data, "messages") if isinstance(data, dict) else _get(obj, "messages")
        if isinstance(inner, list):
            obj = inner
    items = obj if isinstance(obj, list) else [obj]
    if not items or any(method_of(item) is None for item in items):
        return None
    return items


def load_messages(body: bytes | str) -> list[dict[str, Any]] | None:
    """The decoded push messages in ``body`` (one, a list, JSON lines, a relay envelope, or the
    binary protobuf ``PushFrame``/``Response`` the platform sends: ``wire.py``); else ``None``."""
    if isinstance(body, bytes | bytearray):
        binary = wire.load_binary(bytes(body))
        if binary is not None:
            return binary
    text = body.decode("utf-8-sig", "replace") if isinstance(body, bytes | bytearray) else body
    text = text.strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        return _messages_in(json.loads(text))
    except ValueError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        items = [json.loads(line) for line in lines]
    except ValueError:
        return None
    return _messages_in(items)


# --- parsing ---------------------------------------------------------------------------------------


def _room_id(page: Page, message: dict[str, Any], body: dict[str, Any]) -> str | None:
    common = message.get("common")
    value = _get(common, "room_id") or _get(body, "room_id")
    return page.id(value, "common.roomId") or page.id(page.query("room_id"), "url.room_id")


def _when(page: Page, message: dict[str, Any], body: dict[str, Any]) -> datetime:
    created = _get(message.get("common"), "create_time")
    if created is not None:
        return page.time(created, "common.createTime") or page.fetched_at
    stamp = _get(body, "update_timestamp")
    return (page.time(stamp, "update_timestamp") if stamp is not None else None) or page.fetched_at


def _snapshot(page: Page, room_id: str, at: datetime, **fields: Any) -> list[Record]:
    values = {name: value for name, value in fields.items() if value is not None}
    if not values:
        return []
    return [page.build(RoomSnapshot, room_id=room_id, captured_at=at, **values)]


def _text_id(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value)


def _shelf(body: dict[str, Any]) -> list[tuple[str, int | None, str | None]]:
    """(promotion_id, index, explain_type) per ``update_product_info`` entry."""
    entries = _get(body, "update_product_info")
    out = []
    for entry in entries if isinstance(entries, list) else []:
        promotion = _text_id(_get(entry, "promotion_id"))
        if promotion:
            out.append((promotion, _exact(_get(entry, "index")), _text_id(_get(entry, "explain_type"))))
    return out


class _Parser:
    """One input's messages in order; remembers each room's last shelf to see listings change."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.shelves: dict[str, list[str]] = {}
        self.result = PushResult()

    def message(self, message: dict[str, Any]) -> None:
        method = method_of(message)
        body = _body(message)
        room_id = _room_id(self.page, message, body)
        if method not in METHODS or room_id is None:
            return  # chat, member, gift, social, rank...: viewers' messages, never read
        at = _when(self.page, message, body)
        page, records = self.page, self.result.records
        if method == "WebcastRoomUserSeqMessage":
            total_pv = _exact(_get(body, "total_pv_for_anchor"))
            records += _snapshot(page, room_id, at, viewers_now=_exact(_get(body, "total")),
                                 viewers_total=_exact(_get(body, "total_user")) or total_pv)  # fmt: skip
        elif method == "WebcastRoomStatsMessage":
            viewers = _exact(_get(body, "total"))
            records += _snapshot(page, room_id, at, viewers_now=viewers or _exact(_get(body, "display_value")))
        elif method == "WebcastLikeMessage":
            records += _snapshot(page, room_id, at, likes=_exact(_get(body, "total")))
        elif method == "WebcastControlMessage":
            ended = _exact(_get(body, "status")) == _ENDED_STATUS
            records += _snapshot(page, room_id, at, status="ended" if ended else None)
        elif method == "WebcastProductChangeMessage":
            records += _snapshot(page, room_id, at, product_count=_exact(_get(body, "total")))
            self.product_change(room_id, at, body)
        elif method == "WebcastLiveShoppingMessage":
            self.live_shopping(room_id, at, body)

    def product_change(self, room_id: str, at: datetime, body: dict[str, Any]) -> None:
        shelf = _shelf(body)
        events = self.result.events
        explained: dict[str, tuple[int | None, list[str]]] = {}
        for promotion, index, explain_type in shelf:
            if explain_type:  # one event per promotion; every explain_type it was listed with, in order
                explained.setdefault(promotion, (index, []))[1].append(explain_type)
        for promotion, (index, types) in explained.items():
            events.append(ProductEvent(room_id, at, "explained", promotion_id=promotion, rank_in_room=index,
                                       explain_type=",".join(types)))  # fmt: skip
        ids = list(dict.fromkeys(promotion for promotion, _, _ in shelf))
        before = self.shelves.get(room_id)
        if before is not None:
            ranks = {promotion: index for promotion, index, _ in shelf}
            events += [ProductEvent(room_id, at, "listed", promotion_id=p, rank_in_room=ranks.get(p))
                       for p in ids if p not in before]  # fmt: skip
            events += [ProductEvent(room_id, at, "delisted", promotion_id=p) for p in before if p not in ids]
        if ids:
            self.shelves[room_id] = ids

    def live_shopping(self, room_id: str, at: datetime, body: dict[str, Any]) -> None:
        snake = {name: _get(body, name) for name in ("updated_product_ids", "updated_product_info")}
        self.result.records += shop.ws_shopping(self.page, {k: v for k, v in snake.items() if v is not None})
        ids = snake["updated_product_ids"] if isinstance(snake["updated_product_ids"], list) else []
        promotion, msg_type = _text_id(_get(body, "promotion_id")), _exact(_get(body, "msg_type"))
        if promotion and promotion != "0" and msg_type in (_SET_CURRENT, _CANCEL_CURRENT):
            # the anchor starts (2) or stops (3) presenting this product
            started = msg_type == _SET_CURRENT
            self.result.events.append(ProductEvent(room_id, at, "explained" if started else "explain_ended",
                                                   promotion_id=promotion, msg_type=str(msg_type)))
            if started:
                self.result.records += _snapshot(self.page, room_id, at, current_product_id=promotion)
        event: EventName = "sold_out" if _get(body, "sold_out") is True else "updated"
        raw = {name: _text_id(_get(body, name)) for name in ("msg_type", "update_type")}
        for value in ids:
            self.result.events.append(ProductEvent(room_id, at, event, product_id=_text_id(value), **raw))


def parse_messages(messages: Iterable[dict[str, Any]], *, url: str | None = None, fetched_at: datetime) -> PushResult:
    """Records and product events from decoded push messages, in their order."""
    page = Page(PLATFORM, url, fetched_at)
    parser = _Parser(page)
    for i, message in enumerate(messages):
        try:
            parser.message(message)
        except PageError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            raise page.fail(f"push message {i}: unexpected shape: {type(exc).__name__}: {exc}") from None
    parser.result.records = _merged(parser.result.records)
    return parser.result


def _merged(records: list[Record]) -> list[Record]:
    """One RoomSnapshot per (room, time): the messages of one frame share their ``create_time``, and a
    snapshot is keyed by it, so each message's fields (viewers, likes, presented product) are united;
    where two messages give one field, the later one's value is kept."""
    out: list[Record] = []
    at: dict[tuple[str, datetime], int] = {}
    for record in records:
        if not isinstance(record, RoomSnapshot):
            out.append(record)
            continue
        key = (record.room_id, record.captured_at)
        if key not in at:
            at[key] = len(out)
            out.append(record)
            continue
        earlier = out[at[key]]
        assert isinstance(earlier, RoomSnapshot)
        out[at[key]] = earlier.model_copy(update=record.model_dump(exclude_unset=True, exclude_none=True))
    return out


def parse(body: bytes | str, *, url: str | None = None, fetched_at: datetime) -> PushResult:
    """Parse a file of push messages; not push messages -> ``PermanentPageError``."""
    messages = load_messages(body)
    if messages is None:
        raise Page(PLATFORM, url, fetched_at).fail("not Douyin push messages (no Webcast* method)")
    return parse_messages(messages, url=url, fetched_at=fetched_at)
