"""Douyin's live-room message channel end to end: the sandbox serves protobuf as the real site does,
the fleet polls it through the queue and stores exact counts, a websocket client reads the same
frames, and no viewer's identity lands anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from pymongo import MongoClient

from sandbox.douyin import im as IM
from sandbox.douyin.sign import sign
from sandbox.process import SandboxProcess, start_sandbox
from spiders.douyin import push, wire
from tests.crawl_helpers import run_crawl

pytestmark = pytest.mark.integration

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos", "--no-faults",
                       "--streamers", "40") as sandbox:
        yield sandbox


def _live(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    return [r for r in sandbox.truth("douyin")["rooms"] if r["status"] == 2]


def test_polled_channels_land_as_exact_counts_and_no_viewer_lands(tmp_path, sandbox, redis_server, mongo_server):
    rooms = _live(sandbox)[:8]
    assert len(rooms) >= 4
    _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="douyin",
                                  seeds=[{"kind": "push", "room_id": r["id_str"]} for r in rooms])
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    try:
        db = client[db_name]
        for room in rooms:
            snaps = list(db.room_snapshots.find({"platform": "douyin", "room_id": room["id_str"]}))
            assert {s.get("viewers_now") for s in snaps} - {None} == {room["user_count"]}, room["id_str"]
            assert {s.get("viewers_total") for s in snaps} - {None} == {room["total_user"]}
            assert {s.get("likes") for s in snaps} - {None} == {room["like_count"]}
            if room["current_promotion_id"]:
                assert {s.get("current_product_id") for s in snaps} - {None} == {str(room["current_promotion_id"])}
        stored = json.dumps([list(db[name].find({}, {"_id": 0})) for name in db.list_collection_names()],
                            default=str, ensure_ascii=False)
        assert "观众" not in stored and "douyinpic.com/aweme/100x100" not in stored, "no viewer's name or avatar"
        assert db.quarantine.count_documents({}) == 0
    finally:
        client.drop_database(db_name)
        client.close()


async def _read_push(base: str, room_id: str, frames: int, *, tamper: bool = False, cookie: bool = True
                     ) -> list[bytes]:
    jar = aiohttp.CookieJar(unsafe=True)  # the sandbox is an IP address
    async with aiohttp.ClientSession(headers={"User-Agent": UA}, cookie_jar=jar) as session:
        if cookie:
            async with session.get(f"{base}/live.douyin.com/") as home:  # hands out ttwid
                await home.read()
        query = {"app_name": "douyin_web", "version_code": "180800", "webcast_sdk_version": "1.0.14-beta.0",
                 "update_version_code": "1.0.14-beta.0", "compress": "gzip", "device_platform": "web",
                 "host": "https://live.douyin.com", "aid": "6383", "live_id": "1", "did_rule": "3",
                 "endpoint": "live_pc", "support_wrds": "1", "user_unique_id": "730129018456",
                 "im_path": "/webcast/im/fetch/", "identity": "audience", "need_persist_msg_count": "15",
                 "room_id": room_id, "heartbeatDuration": "0", "sub_room_id": "", "sub_channel_id": "",
                 "device_type": "", "ac": ""}
        query["signature"] = sign(f"X-MS-STUB={IM.ms_stub(query)}", UA)
        if tamper:
            query["user_unique_id"] = "730129018457"  # the stub no longer matches what was signed
        url = f"{base}/webcast5-ws-web-lq.douyin.com/webcast/im/push/v2/?{urlencode(query)}"
        out = []
        async with session.ws_connect(url) as ws:
            while len(out) < frames:
                got = await ws.receive(timeout=10)
                if got.type != aiohttp.WSMsgType.BINARY:
                    break
                out.append(got.data)
                frame = wire.decode_frame(got.data)
                if frame["response"]["need_ack"]:  # ack with the frame's log id and internal_ext
                    ack = IM.message(IM.num(2, int(frame["log_id"])), IM.blob(7, "ack"),
                                     IM.blob(8, frame["response"]["internal_ext"]))
                    await ws.send_bytes(ack)
                await ws.send_bytes(bytes.fromhex("3a026862"))  # heartbeat
        return out


def test_the_push_websocket_sends_protobuf_frames_with_the_rooms_exact_counts(sandbox):
    room = next(r for r in _live(sandbox) if r["product_count"])
    frames = asyncio.run(_read_push(sandbox.url, room["id_str"], 3))
    assert len(frames) == 3
    for body in frames:
        frame = wire.decode_frame(body)
        assert frame["payload_type"] == "msg" and frame["headers"]["compress_type"] == "gzip"
    records = [r for body in frames for r in push.parse(body, fetched_at=_now()).records]
    assert {r.viewers_now for r in records} - {None} == {room["user_count"]}
    assert {r.viewers_total for r in records} - {None} == {room["total_user"]}
    first = push.parse(frames[0], fetched_at=_now())
    assert {r.product_count for r in first.records} - {None} == {room["product_count"]}
    assert not any(r.product_count for body in frames[1:] for r in push.parse(body, fetched_at=_now()).records), \
        "the cart is sent again only when it changes"


def test_a_push_handshake_without_a_valid_signature_or_cookie_is_refused(sandbox):
    room = _live(sandbox)[0]
    for kwargs in ({"tamper": True}, {"cookie": False}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            asyncio.run(_read_push(sandbox.url, room["id_str"], 1, **kwargs))
        assert refused.value.status == 200, "Douyin's risk-control answer: 200, empty, no upgrade"


def test_an_ended_broadcast_closes_its_channel_with_a_control_message(sandbox):
    ended = next(r for r in sandbox.truth("douyin")["rooms"] if r["status"] != 2)
    frames = asyncio.run(_read_push(sandbox.url, ended["id_str"], 5))
    assert len(frames) == 1, "said once, then closed"
    assert [r.status for r in push.parse(frames[0], fetched_at=_now()).records] == ["ended"]


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
