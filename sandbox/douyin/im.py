"""The Douyin replica's live-room message channel (webcast IM): protobuf over a websocket, and polling.

What the real site serves (PLATFORMS.md §1.6), byte for byte in format:

* ``GET /live.douyin.com/webcast/im/fetch/?room_id=...&resp_content_type=protobuf&cursor=...``
  (signed like every webcast API: ``a_bogus`` plus the ``ttwid`` cookie) answers one
  protobuf ``Response`` (uncompressed) with the room's messages since ``cursor``;
* ``GET /webcast{N}-ws-web-{lq|hl|lf}.douyin.com/webcast/im/push/v2/?room_id=...&signature=...``
  upgrades to a websocket that sends binary ``PushFrame`` s, each carrying a
  gzip-compressed ``Response`` (headers ``compress_type: gzip``), one every
  ``push_interval`` seconds while the room is live, and a ``WebcastControlMessage``
  with ``status`` 3 when the broadcast ends (then it closes). A client answers frames
  with ``needAck`` by an ``ack`` frame and sends ``hb`` heartbeats; a client that says
  nothing for ``idle_timeout`` seconds is dropped, as the real server drops silent ones.

The push ``signature``: the real page feeds ``frontierSign`` with ``X-MS-STUB``, the MD5
of ``live_id=1,aid=6383,version_code=…,webcast_sdk_version=…,room_id=…,sub_room_id=,
sub_channel_id=,did_rule=3,user_unique_id=…,device_platform=web,device_type=,ac=,
identity=audience`` (values from the URL, in this order). The replica checks the MD5
the same way and, standing in for ``frontierSign``, the same X-Bogus construction its
APIs use over the query ``X-MS-STUB=<md5>`` (``sign.py``), so a client signs a stub
with the page's own script exactly as it signs API queries. A refused handshake is
Douyin's risk-control answer: HTTP 200, empty body, no upgrade.

Each ``Response`` holds, per room and world minute, what the room's real channel
carries: ``WebcastRoomUserSeqMessage`` (exact viewers now and cumulative, the rounded
texts, and the top-3 viewers' ``ranksList`` with their users), ``WebcastRoomStatsMessage``,
``WebcastLikeMessage`` (cumulative likes, and the liking viewer), a chat and a member
message (viewers' names and ids: a client must drop them), ``WebcastProductChangeMessage``
when the cart changed (the whole cart's promotion ids and positions) and
``WebcastLiveShoppingMessage`` ``msg_type`` 2 when the presented product changed.

Field numbers are those of the published ``douyin.proto`` (saermart/DouyinLiveWebFetcher).
The encoder below is the replica's own: it shares nothing with livefleet's decoder.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sandbox.douyin.entities import Room
from sandbox.douyin.world import DouyinWorld, LiveState
from sandbox.world import mix

#: Push URL parameters that make up ``X-MS-STUB``, in the order the page joins them.
STUB_PARAMS = ("live_id", "aid", "version_code", "webcast_sdk_version", "room_id", "sub_room_id",
               "sub_channel_id", "did_rule", "user_unique_id", "device_platform", "device_type", "ac",
               "identity")
#: The websocket hosts the real site hands out (``webcast{N}-ws-web-{lq|hl|lf}.douyin.com``).
PUSH_HOSTS = tuple(f"webcast{n}-ws-web-{dc}.douyin.com" for n in (3, 5, 100) for dc in ("lq", "hl", "lf"))
#: ``LiveShoppingMessage.MsgType.SET_CURRENT_PROMOTION``.
SET_CURRENT_PROMOTION = 2
STATUS_ENDED = 3


def ms_stub(query: dict[str, str]) -> str:
    """The hex MD5 of the push URL's stub string (``X-MS-STUB``)."""
    text = ",".join(f"{name}={query.get(name, '')}" for name in STUB_PARAMS)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


# --- a small protobuf writer ---------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64 negatives are ten-byte varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def num(field: int, value: int | bool | None) -> bytes:
    """A varint field (proto3: zero and None are not written)."""
    if value is None or value is False or value == 0:
        return b""
    return _varint(field << 3) + _varint(int(value))


def blob(field: int, value: bytes | str | None) -> bytes:
    """A length-delimited field (text, bytes or an encoded message)."""
    if value is None:
        return b""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def message(*parts: bytes) -> bytes:
    return b"".join(parts)


# --- messages --------------------------------------------------------------------------------------------


def _rounded(n: int) -> str:
    """Douyin's display text of a count: 9999, 1.2万, 10万+."""
    if n < 10_000:
        return str(n)
    if n < 100_000:
        return f"{n / 10_000:.1f}".rstrip("0").rstrip(".") + "万"
    return f"{n // 100_000 * 10}万+"


@dataclass(frozen=True)
class Viewer:
    """A person in the room (what a client must never keep)."""

    uid: int
    nickname: str
    avatar: str

    def encode(self) -> bytes:
        avatar = message(blob(1, self.avatar), blob(2, self.avatar.rsplit("/", 1)[-1]))
        return message(num(1, self.uid), blob(3, self.nickname), blob(9, avatar), blob(1028, str(self.uid)),
                       blob(46, f"MS4wLjABAAAA{self.uid:x}"))


def viewers_of(seed: int, room: Room, minute: int, n: int = 3) -> list[Viewer]:
    """``n`` viewers of ``room`` at ``minute`` (deterministic)."""
    out = []
    for i in range(n):
        uid = 10**15 + mix(seed, room.web_rid, minute, i, 0x1E) % 10**15
        out.append(Viewer(uid, f"观众{uid % 100000:05d}", f"https://p3.douyinpic.com/aweme/100x100/{uid:x}.jpeg"))
    return out


def _common(method: str, msg_id: int, room_id: int, create_ms: int, user: Viewer | None = None) -> bytes:
    return message(blob(1, method), num(2, msg_id), num(3, room_id), num(4, create_ms),
                   blob(15, user.encode()) if user else b"")


@dataclass
class Envelope:
    method: str
    payload: bytes
    msg_id: int


def _msg(method: str, msg_id: int, room_id: int, create_ms: int, body: bytes, user: Viewer | None = None
         ) -> Envelope:
    return Envelope(method, blob(1, _common(method, msg_id, room_id, create_ms, user)) + body, msg_id)


class RoomChannel:
    """The messages of one room's channel, minute by minute, from the world's values."""

    def __init__(self, world: DouyinWorld, room: Room) -> None:
        self.world, self.room = world, room

    def _msg_id(self, minute: int, kind: int) -> int:
        return 7_300_000_000_000_000_000 + mix(self.world.seed, self.room.web_rid, minute, kind) % 10**18

    def messages(self, minute: int, since: int | None, now_ms: int) -> list[Envelope]:
        """What the channel says at ``minute`` to a client last served at ``since`` (None: first time)."""
        st = self.world.state(self.room, minute)
        if not st.live:
            ended = message(num(2, STATUS_ENDED))
            return [_msg("WebcastControlMessage", self._msg_id(minute, 9), st.room_id, now_ms, ended)]
        rid, seed = st.room_id, self.world.seed
        people = viewers_of(seed, self.room, minute)
        ranks = [message(num(1, 1000 - 100 * i), blob(2, v.encode()), num(3, i + 1)) for i, v in enumerate(people)]
        seq = message(*(blob(2, r) for r in ranks), num(3, st.user_count), blob(4, _rounded(st.user_count)),
                      num(7, st.total_user), blob(8, _rounded(st.total_user)), blob(9, _rounded(st.user_count)),
                      blob(11, _rounded(st.total_user)))
        stats = message(blob(2, _rounded(st.user_count)), blob(3, _rounded(st.user_count)),
                        blob(4, f"{_rounded(st.user_count)}在线观众"), num(5, st.user_count), num(9, st.user_count),
                        num(10, 1))
        batch = 1 + mix(seed, self.room.web_rid, minute, 0x11) % 30
        like = message(num(2, batch), num(3, st.like_count), blob(5, people[0].encode()))
        chat = message(blob(2, people[1].encode()), blob(3, "主播好！"))
        member = message(blob(2, people[2].encode()), num(3, st.user_count), num(10, 1))
        out = [
            _msg("WebcastRoomUserSeqMessage", self._msg_id(minute, 1), rid, now_ms, seq),
            _msg("WebcastRoomStatsMessage", self._msg_id(minute, 2), rid, now_ms, stats),
            _msg("WebcastLikeMessage", self._msg_id(minute, 3), rid, now_ms, like),
            _msg("WebcastChatMessage", self._msg_id(minute, 4), rid, now_ms, chat),
            _msg("WebcastMemberMessage", self._msg_id(minute, 5), rid, now_ms, member),
        ]
        cart = self.world.cart(self.room, minute)
        ids = [i.product.promotion_id for i in cart]
        before_ids = [i.product.promotion_id for i in self.world.cart(self.room, since)] if since is not None else []
        if (since is None and ids) or (since is not None and before_ids != ids):  # a room without a cart: none
            infos = [message(num(1, i.product.promotion_id), num(2, i.index),
                             num(4, 1 if i.product.promotion_id == st.explaining else 0)) for i in cart]
            change = message(num(2, now_ms // 1000), blob(3, "商品已更新"), *(blob(4, info) for info in infos),
                             num(5, len(cart)))
            out.append(_msg("WebcastProductChangeMessage", self._msg_id(minute, 6), rid, now_ms, change))
        before = self.world.state(self.room, since).explaining if since is not None else None
        if st.explaining is not None and (since is None or before != st.explaining):
            shopping = message(num(2, SET_CURRENT_PROMOTION), num(4, st.explaining))
            out.append(_msg("WebcastLiveShoppingMessage", self._msg_id(minute, 7), rid, now_ms, shopping))
        return out


def response(envelopes: Iterable[Envelope], *, cursor: str, now_ms: int, internal_ext: str, need_ack: bool,
             fetch_interval: int = 1000, heartbeat_ms: int = 10_000) -> bytes:
    """A ``Response`` of ``envelopes``."""
    encoded = [message(blob(1, e.method), blob(2, e.payload), num(3, e.msg_id)) for e in envelopes]
    return message(*(blob(1, m) for m in encoded), blob(2, cursor), num(3, fetch_interval), num(4, now_ms),
                   blob(5, internal_ext), num(6, 1), num(8, heartbeat_ms), num(9, need_ack))


def push_frame(payload: bytes, *, log_id: int, seq_id: int, payload_type: str = "msg",
               headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """A ``PushFrame``; a ``msg`` payload is gzip-compressed, as the real channel sends it."""
    heads = [("compress_type", "gzip"), *headers] if payload_type == "msg" else list(headers)
    body = gzip.compress(payload, mtime=0) if payload_type == "msg" else payload
    return message(num(1, seq_id), num(2, log_id), num(3, 5), *(blob(5, message(blob(1, k), blob(2, v)))
                                                                  for k, v in heads),
                   blob(6, "pb"), blob(7, payload_type), blob(8, body))


def read_client_frame(data: bytes) -> tuple[str, bytes, int]:
    """``(payloadType, payload, logId)`` of a frame a client sent (``hb`` or ``ack``); ValueError if malformed."""
    pos, found = 0, {7: b"", 8: b"", 2: 0}
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            found[field] = value
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated frame")
            found[field] = data[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unexpected wire type {wire}")
    kind = found[7]
    log_id = found[2]
    return (kind.decode("utf-8", "replace") if isinstance(kind, bytes) else "",
            found[8] if isinstance(found[8], bytes) else b"", log_id if isinstance(log_id, int) else 0)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("truncated varint")


__all__ = ["PUSH_HOSTS", "STUB_PARAMS", "LiveState", "RoomChannel", "Viewer", "blob", "message", "ms_stub", "num",
           "push_frame", "read_client_frame", "response", "viewers_of"]
