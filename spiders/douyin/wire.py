"""Douyin's webcast IM messages on the wire: protobuf frames decoded into the dicts ``push.py`` reads.

The live room's channel (PLATFORMS.md §1.6) speaks protobuf, in two envelopes:

* the websocket (``wss://webcast{N}-ws-web-{lq|hl|lf}.douyin.com/webcast/im/push/v2/``)
  sends binary ``PushFrame`` s: ``seqId=1, logId=2, service=3, method=4,
  headersList=5 ({key=1, value=2}), payloadEncoding=6, payloadType=7, payload=8``; a
  frame whose ``payloadType`` is ``msg`` carries a ``Response``, gzip-compressed when
  its headers say ``compress_type: gzip`` (always, in practice);
* the polling endpoint ``live.douyin.com/webcast/im/fetch/?resp_content_type=protobuf``
  answers the ``Response`` itself, uncompressed.

``Response``: ``messagesList=1 (Message), cursor=2, fetchInterval=3, now=4,
internalExt=5, fetchType=6, routeParams=7, heartbeatDuration=8, needAck=9,
pushServer=10, liveCursor=11, historyNoMore=12``; each ``Message``: ``method=1,
payload=2 (the message's own protobuf), msgId=3, msgType=4, offset=5``.

Only the payloads of the message types that carry room metrics or shelf changes
(``push.METHODS``) are decoded, and in them only the fields below: a schema is a
whitelist, so a viewer's ``User`` (``user``, ``ranksList``/``seatsList`` entries,
``Common.user``, ``targetFlashUidsList``) is skipped as bytes, never decoded; other
messages (chat, member, gift, social, ...) keep their ``method`` and ``msg_id`` only.
Field numbers follow the published ``douyin.proto`` (saermart/DouyinLiveWebFetcher)
and, for ``LiveShoppingMessage.promotion_id``, also the older app's tag 3 (the
decompiled ``com.bytedance.android.livesdk.message.proto.LiveShoppingMessage``);
``msg_type`` there is an enum: 0 ``HAS_PROMOTIONS``, 1 ``NO_PROMOTIONS``,
2 ``SET_CURRENT_PROMOTION``, 3 ``CANCEL_CURRENT_PROMOTION``.

Decoded names are snake_case (``total_user``, ``update_product_info``); 64-bit ids
(``room_id``, ``promotion_id``) are kept as strings, as the JSON decoders print them.
Every function is pure; malformed input raises :class:`WireError`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any

__all__ = ["WireError", "decode_frame", "decode_message", "decode_response", "load_binary"]


class WireError(ValueError):
    """Bytes that are not the protobuf message they were read as."""


# --- the protobuf wire format (varints, length-delimited fields, fixed 32/64 bits) ----------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field in ``data``, in order."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise WireError(f"field {number}: {size} bytes announced, {len(data) - pos} left")
            value, pos = bytes(data[pos : pos + size]), pos + size
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise WireError(f"field {number}: wire type {wire} (groups are not used by these messages)")
        if pos > len(data):
            raise WireError(f"field {number}: truncated")
        yield number, wire, value


# --- schemas: field number -> (name, type); types: int, sint (signed 64), bool, str, bytes, id (64-bit
# number kept as a string), a nested schema's name; a name ending in [] is repeated ---------------------

_SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "PushFrame": {1: ("seq_id", "int"), 2: ("log_id", "id"), 3: ("service", "int"), 4: ("method", "int"),
                  5: ("headers[]", "Header"), 6: ("payload_encoding", "str"), 7: ("payload_type", "str"),
                  8: ("payload", "bytes")},
    "Header": {1: ("key", "str"), 2: ("value", "str")},
    "Response": {1: ("messages[]", "Message"), 2: ("cursor", "str"), 3: ("fetch_interval", "int"),
                 4: ("now", "int"), 5: ("internal_ext", "str"), 6: ("fetch_type", "int"),
                 8: ("heartbeat_duration", "int"), 9: ("need_ack", "bool"), 10: ("push_server", "str"),
                 11: ("live_cursor", "str"), 12: ("history_no_more", "bool")},
    "Message": {1: ("method", "str"), 2: ("payload", "bytes"), 3: ("msg_id", "id"), 4: ("msg_type", "int"),
                5: ("offset", "int")},
    # Common: the message's own identity; its user (15) is a viewer's, never decoded.
    "Common": {1: ("method", "str"), 2: ("msg_id", "id"), 3: ("room_id", "id"), 4: ("create_time", "int")},
    "WebcastRoomUserSeqMessage": {1: ("common", "Common"), 3: ("total", "sint"), 4: ("pop_str", "str"),
                                  6: ("popularity", "sint"), 7: ("total_user", "sint"),
                                  8: ("total_user_str", "str"), 9: ("total_str", "str"),
                                  10: ("online_user_for_anchor", "str"), 11: ("total_pv_for_anchor", "str")},
    "WebcastRoomStatsMessage": {1: ("common", "Common"), 2: ("display_short", "str"),
                                3: ("display_middle", "str"), 4: ("display_long", "str"),
                                5: ("display_value", "sint"), 6: ("display_version", "sint"),
                                7: ("incremental", "bool"), 8: ("is_hidden", "bool"), 9: ("total", "sint"),
                                10: ("display_type", "sint")},
    "WebcastLikeMessage": {1: ("common", "Common"), 2: ("count", "int"), 3: ("total", "int")},
    "WebcastControlMessage": {1: ("common", "Common"), 2: ("status", "sint")},
    "WebcastLiveShoppingMessage": {1: ("common", "Common"), 2: ("msg_type", "sint"), 3: ("promotion_id", "id"),
                                   4: ("promotion_id", "id")},
    "WebcastProductChangeMessage": {1: ("common", "Common"), 2: ("update_timestamp", "sint"),
                                    3: ("update_toast", "str"), 4: ("update_product_info[]", "ProductInfo"),
                                    5: ("total", "sint"), 8: ("update_category_info[]", "CategoryInfo")},
    # ProductInfo.targetFlashUidsList (3) names users: skipped.
    "ProductInfo": {1: ("promotion_id", "id"), 2: ("index", "sint"), 4: ("explain_type", "sint")},
    "CategoryInfo": {1: ("id", "sint"), 2: ("name", "str"), 3: ("promotion_ids[]", "id"), 4: ("type", "str"),
                     5: ("unique_index", "str")},
}


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, wire: int, value: int | bytes, where: str) -> Any:
    if kind in ("int", "sint", "bool", "id"):
        if wire not in (0, 1, 5):
            raise WireError(f"{where}: a number was expected, found wire type {wire}")
        assert isinstance(value, int)
        if kind == "bool":
            return bool(value)
        if kind == "id":
            return str(value)
        return _signed(value) if kind == "sint" else value
    if wire != 2:
        raise WireError(f"{where}: bytes were expected, found wire type {wire}")
    assert isinstance(value, bytes)
    if kind == "bytes":
        return value
    if kind == "str":
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"{where}: not UTF-8 text ({exc.reason})") from None
    return _decode(kind, value)


def _decode(schema_name: str, data: bytes) -> dict[str, Any]:
    schema = _SCHEMAS[schema_name]
    out: dict[str, Any] = {}
    for number, wire, value in fields(data):
        spec = schema.get(number)
        if spec is None:
            continue  # unknown, or deliberately not read (a viewer's user)
        name, kind = spec
        where = f"{schema_name}.{name.removesuffix('[]')}"
        if name.endswith("[]"):
            name = name[:-2]
            if wire == 2 and kind in ("int", "sint", "id"):  # a packed repeated number
                assert isinstance(value, bytes)
                pos, values = 0, []
                while pos < len(value):
                    number_value, pos = _varint(value, pos)
                    values.append(_scalar(kind, 0, number_value, where))
                out.setdefault(name, []).extend(values)
            else:
                out.setdefault(name, []).append(_scalar(kind, wire, value, where))
        else:
            out[name] = _scalar(kind, wire, value, where)
    return out


# --- frames, responses, messages ------------------------------------------------------------------------


def decode_message(message: dict[str, Any]) -> dict[str, Any]:
    """A ``Message`` (method, payload bytes, ids) as the dict ``push.py`` reads: the method, its ids,
    and the decoded payload fields of the message types that carry metrics or shelf changes."""
    method = message.get("method")
    out: dict[str, Any] = {"method": method}
    if message.get("msg_id") is not None:
        out["msg_id"] = message["msg_id"]
    if isinstance(method, str) and method in _SCHEMAS and method.startswith("Webcast"):
        out.update(_decode(method, message.get("payload", b"")))
    return out


def decode_response(data: bytes) -> dict[str, Any]:
    """A ``Response``: its envelope fields and ``messages`` decoded by :func:`decode_message`."""
    response = _decode("Response", data)
    response["messages"] = [decode_message(m) for m in response.get("messages", [])]
    return response


def _inflate(payload: bytes) -> bytes:
    if payload[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise WireError(f"payload: bad gzip ({exc})") from None
    return payload


def decode_frame(data: bytes) -> dict[str, Any]:
    """A websocket ``PushFrame``: headers as a dict, and ``response`` (decoded) when it carries messages."""
    frame = _decode("PushFrame", data)
    frame["headers"] = {h.get("key", ""): h.get("value", "") for h in frame.get("headers", [])}
    payload = frame.pop("payload", b"")
    if frame.get("payload_type") == "msg":
        compressed = frame["headers"].get("compress_type") == "gzip" or payload[:2] == b"\x1f\x8b"
        frame["response"] = decode_response(_inflate(payload) if compressed else payload)
    else:
        frame["payload"] = payload
    return frame


def _is_messages(response: dict[str, Any]) -> bool:
    messages = response.get("messages")
    return bool(messages) and all(
        isinstance(m.get("method"), str) and m["method"].startswith("Webcast") for m in messages
    )


def load_binary(body: bytes) -> list[dict[str, Any]] | None:
    """The decoded messages of a binary ``PushFrame`` or ``Response``; ``None`` if ``body`` is neither.

    Recognised by content alone: a frame is a ``PushFrame`` whose ``payload_type`` is ``msg``
    and whose payload is a ``Response``; a response holds at least one ``Message`` and every
    message's method names a ``Webcast*Message``."""
    if not body or body[:1] in (b"{", b"[", b"<") or body.lstrip()[:1] in (b"{", b"["):
        return None
    for reader in (_frame_messages, _response_messages):
        try:
            messages = reader(body)
        except (WireError, KeyError, UnicodeDecodeError):
            continue
        if messages is not None:
            return messages
    return None


def _frame_messages(body: bytes) -> list[dict[str, Any]] | None:
    frame = decode_frame(body)
    response = frame.get("response")
    return response["messages"] if response is not None and _is_messages(response) else None


def _response_messages(body: bytes) -> list[dict[str, Any]] | None:
    response = decode_response(body)
    return response["messages"] if _is_messages(response) else None
