"""Douyin's webcast IM protobuf: frames and responses decoded into the messages push.py reads.

The frames come from the sandbox's own encoder (``sandbox/douyin/im.py``, written apart
from ``spiders/douyin/wire.py``), plus byte strings published by public clients."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from sandbox.douyin import im as IM
from sandbox.douyin.world import DouyinWorld
from spiders.douyin import push, wire
from tests.crawl_helpers import ROOT

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> DouyinWorld:
    return DouyinWorld(seed=7, n_streamers=40, faults=False)


def _live_room(world: DouyinWorld):
    minute = world.start_minute
    for room in world.rooms:
        st = world.state(room, minute)
        if st.live and world.cart(room, minute) and st.explaining:
            return room, st, minute
    raise AssertionError("no live room with a cart in the world")


def _frame(world: DouyinWorld) -> tuple[bytes, object, int]:
    room, st, minute = _live_room(world)
    envelopes = IM.RoomChannel(world, room).messages(minute, None, 1_780_000_000_000)
    payload = IM.response(envelopes, cursor="t-1780000000000_r-1_d-1_u-1_h-1", now_ms=1_780_000_000_000,
                          internal_ext="internal_src:dim", need_ack=True)
    return IM.push_frame(payload, log_id=123456789, seq_id=1), st, minute


def test_the_published_heartbeat_frame_is_a_push_frame_of_type_hb():
    # biliup crates/danmaku/src/protocols/douyin.rs HEARTBEAT: PushFrame{payloadType: "hb"} = 3a 02 68 62
    frame = wire.decode_frame(bytes.fromhex("3a026862"))
    assert frame["payload_type"] == "hb" and "response" not in frame


def test_a_frame_decodes_to_exact_counts_the_presented_product_and_the_cart(world):
    body, st, minute = _frame(world)
    frame = wire.decode_frame(body)
    assert frame["headers"]["compress_type"] == "gzip" and frame["log_id"] == "123456789"
    response = frame["response"]
    assert response["need_ack"] is True and response["cursor"].startswith("t-1780000000000")
    by_method = {m["method"]: m for m in response["messages"]}
    seq = by_method["WebcastRoomUserSeqMessage"]
    assert seq["total"] == st.user_count and seq["total_user"] == st.total_user
    assert seq["common"]["room_id"] == str(st.room_id) and seq["common"]["create_time"] == 1_780_000_000_000
    assert by_method["WebcastLikeMessage"]["total"] == st.like_count
    assert by_method["WebcastLiveShoppingMessage"] == {**by_method["WebcastLiveShoppingMessage"], "msg_type": 2,
                                                       "promotion_id": str(st.explaining)}
    room = next(r for r in world.rooms if world.state(r, minute).room_id == st.room_id)
    cart = [str(i.product.promotion_id) for i in world.cart(room, minute)]
    change = by_method["WebcastProductChangeMessage"]
    assert [p["promotion_id"] for p in change["update_product_info"]] == cart and change["total"] == len(cart)
    # the chat and member messages are named, never read
    assert by_method["WebcastChatMessage"].keys() == {"method", "msg_id"}


def test_no_viewer_identity_survives_decoding_or_parsing(world):
    body, st, minute = _frame(world)
    room = next(r for r in world.rooms if world.state(r, minute).room_id == st.room_id)
    people = IM.viewers_of(world.seed, room, minute)
    decoded = json.dumps(wire.load_binary(body), ensure_ascii=False, default=str)
    result = push.parse(body, fetched_at=AT)
    parsed = json.dumps([r.model_dump(mode="json") for r in result.records]
                        + [e.to_json_dict() for e in result.events], ensure_ascii=False)
    raw = gzip.decompress(_payload(body))
    for person in people:
        assert person.nickname.encode() in raw, "the frame does carry viewers..."
        for text in (decoded, parsed):
            assert person.nickname not in text and str(person.uid) not in text and person.avatar not in text


def _payload(body: bytes) -> bytes:
    return next(v for n, _, v in wire.fields(body) if n == 8)  # type: ignore[return-value]


def test_the_records_of_a_frame_and_of_a_fetch_response_are_the_same(world):
    body, st, _ = _frame(world)
    response = gzip.decompress(_payload(body))
    from_frame = push.parse(body, fetched_at=AT)
    from_fetch = push.parse(response, fetched_at=AT)
    assert [r.model_dump() for r in from_frame.records] == [r.model_dump() for r in from_fetch.records]
    viewers = {r.viewers_now for r in from_frame.records if r.viewers_now is not None}
    assert viewers == {st.user_count}
    assert any(r.current_product_id == str(st.explaining) for r in from_frame.records)
    assert {e.event for e in from_frame.events} >= {"explained"}


def test_an_ended_broadcast_says_so_with_a_control_message(world):
    room = next(r for r in world.rooms if not world.state(r, world.start_minute).live)
    envelopes = IM.RoomChannel(world, room).messages(world.start_minute, None, 1_780_000_000_000)
    body = IM.response(envelopes, cursor="", now_ms=1_780_000_000_000, internal_ext="", need_ack=False)
    records = push.parse(body, fetched_at=AT).records
    assert [r.status for r in records] == ["ended"]


@pytest.mark.parametrize("body", [b"", b"{}", b"[1, 2]", b"<html></html>", b"\x00\x01\x02garbage",
                                  bytes.fromhex("3a026862"), b"\x0a\x05hello"])
def test_what_is_not_a_frame_of_messages_is_not_taken_for_one(body):
    assert wire.load_binary(body) is None


def test_a_truncated_frame_is_an_error_not_a_guess(world):
    body, _, _ = _frame(world)
    with pytest.raises(wire.WireError):
        wire.decode_frame(body[: len(body) // 2])
    assert wire.load_binary(body[: len(body) // 2]) is None


def test_livefleet_parse_recognises_a_binary_frame_by_its_content(world, tmp_path):
    body, st, _ = _frame(world)
    path = tmp_path / "capture.bin"  # the name says nothing
    path.write_bytes(body)
    shown = subprocess.run([sys.executable, "-m", "crawlers", "parse", "--platform", "douyin", "--explain",
                            str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "push" in shown.stderr + shown.stdout
    rows = [json.loads(line) for line in shown.stdout.splitlines() if line.startswith("{")]
    assert any(row.get("viewers_now") == st.user_count for row in rows), rows[:3]
