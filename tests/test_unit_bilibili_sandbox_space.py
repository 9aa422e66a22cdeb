"""The sandbox's api.bilibili.com user side, in process: nav, WBI-checked space acc/info, relation/stat.

The sandbox checks WBI with its own code and the spider signs with its own (spiders/bilibili/wbi.py):
each is held to the published vectors, and here to each other. Shapes are compared, key for key
and type for type, with the real payloads in tests/fixtures/bilibili (PROVENANCE.tsv).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from models.entities import Room, Streamer
from models.errors import BlockedError
from sandbox.bilibili import space
from sandbox.server import SandboxConfig, build_app
from sandbox.world import DEFAULT_START, WorldClock
from spiders.bilibili import pages, wbi
from tests.test_integration_sandbox_bilibili import shape_errors

FIXTURES = Path(__file__).parent / "fixtures" / "bilibili"
MAIN = "/api.bilibili.com"
COOKIES = {"buvid3": "TEST-BUVID3-0000infoc"}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def real(kind: str, case: str) -> Any:
    (path,) = (FIXTURES / kind / case / "inputs").iterdir()
    return json.loads(path.read_text(encoding="utf-8"))


class Wall:
    """A wall clock the test moves by hand (the world runs at 1 world second per wall second)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Sandbox:
    """The Bilibili sandbox app, driven from synchronous tests."""

    def __init__(self) -> None:
        self.wall = Wall()
        self.clock = WorldClock(DEFAULT_START, 1.0, wall=self.wall)
        config = SandboxConfig(streamers=40, rate_limit=0, error_rate=0, slow_rate=0, block_rate=0,
                               platforms=("bilibili",))
        self.loop = asyncio.new_event_loop()
        self.client = TestClient(TestServer(build_app(config, clock=self.clock)), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())
        try:
            self.truth = self.get_json("/__sandbox__/truth?platform=bilibili")
        except BaseException:
            self.close()
            raise

    def get(self, path: str, **kwargs: Any) -> tuple[int, bytes]:
        async def go() -> tuple[int, bytes]:
            async with self.client.get(path, **kwargs) as response:
                return response.status, await response.read()

        return self.loop.run_until_complete(go())

    def get_json(self, path: str, **kwargs: Any) -> Any:
        status, body = self.get(path, **kwargs)
        assert status == 200, body[:300]
        return json.loads(body)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox()
    yield sandbox
    sandbox.close()


def _keys(sb: Sandbox) -> wbi.WbiKeys:
    return wbi.keys_from_nav(sb.get_json(f"{MAIN}/x/web-interface/nav"))


def _acc_info_url(sb: Sandbox, mid: int, *, keys: wbi.WbiKeys | None = None, wts: int | None = None) -> str:
    url = f"{MAIN}/x/space/wbi/acc/info?mid={mid}"
    return wbi.sign_url(url, keys or _keys(sb), int(time.time()) if wts is None else wts)


def _streamer(sb: Sandbox, live_status: int) -> tuple[dict[str, Any], dict[str, Any]]:
    room = next(r for r in sb.truth["rooms"] if r["live_status"] == live_status)
    return room, next(s for s in sb.truth["streamers"] if s["uid"] == room["uid"])


def test_nav_is_the_logged_out_answer_with_the_day_keys(sb: Sandbox) -> None:
    got = sb.get_json(f"{MAIN}/x/web-interface/nav")
    assert shape_errors(real("nav", "logged_out"), got) == []
    assert got["code"] == -101 and got["data"]["isLogin"] is False
    assert pages.parse(json.dumps(got).encode(), fetched_at=T0) == []  # recognised by content, no records


def test_signed_acc_info_has_the_real_shape_and_the_world_values(sb: Sandbox) -> None:
    room, streamer = _streamer(sb, 1)
    got = sb.get_json(_acc_info_url(sb, room["uid"]), cookies=COOKIES)
    assert got["code"] == 0, got
    assert shape_errors(real("acc_info", "mid_2"), got) == []
    records = pages.parse(json.dumps(got, ensure_ascii=False).encode(), fetched_at=T0)  # by content alone
    (parsed_room,) = [r for r in records if isinstance(r, Room)]
    (person,) = [r for r in records if isinstance(r, Streamer)]
    assert (parsed_room.room_id, parsed_room.streamer_id) == (str(room["room_id"]), str(room["uid"]))
    assert (parsed_room.title, parsed_room.status, parsed_room.cover_url) == (room["title"], "live", room["user_cover"])
    assert (person.nickname, person.avatar_url, person.bio) == (streamer["uname"], streamer["face"], streamer["sign"])
    assert person.verified is (streamer["official_type"] >= 0)
    assert (person.room_id, person.is_live) == (str(room["room_id"]), True)


def test_an_offline_streamer_space_says_offline(sb: Sandbox) -> None:
    room, _ = _streamer(sb, 0)
    got = sb.get_json(_acc_info_url(sb, room["uid"]), cookies=COOKIES)
    records = pages.parse(json.dumps(got).encode(), url=f"https://api.bilibili.com{MAIN}", fetched_at=T0,
                          kind="acc_info")
    assert {r.status for r in records if isinstance(r, Room)} == {"offline"}


@pytest.mark.parametrize("how", ["unsigned", "wrong w_rid", "stale wts", "future wts", "no buvid3", "tampered"])
def test_acc_info_refuses_what_the_site_refuses_with_352(sb: Sandbox, how: str) -> None:
    room, _ = _streamer(sb, 1)
    mid = room["uid"]
    now = int(time.time())
    url = {
        "unsigned": f"{MAIN}/x/space/wbi/acc/info?mid={mid}",
        "wrong w_rid": re.sub(r"w_rid=[0-9a-f]{32}", "w_rid=" + "0" * 32, _acc_info_url(sb, mid)),
        "stale wts": _acc_info_url(sb, mid, wts=now - space.WTS_TOLERANCE - 60),
        "future wts": _acc_info_url(sb, mid, wts=now + space.WTS_TOLERANCE + 60),
        "no buvid3": _acc_info_url(sb, mid),
        "tampered": _acc_info_url(sb, mid).replace(f"mid={mid}", f"mid={mid + 1}"),
    }[how]
    status, body = sb.get(url, cookies=None if how == "no buvid3" else COOKIES)
    assert status == 200
    payload = json.loads(body)
    assert payload["code"] == -352 and payload["data"]["v_voucher"].startswith("voucher_")
    with pytest.raises(BlockedError) as raised:
        pages.parse(body, url=f"https://api.bilibili.com/x/space/wbi/acc/info?mid={mid}", fetched_at=T0)
    assert raised.value.code == -352


def test_keys_rotate_daily_and_yesterdays_are_refused() -> None:
    sb = Sandbox()
    try:
        room, _ = _streamer(sb, 1)
        old = _keys(sb)
        sb.wall.t += 86400  # a world day later
        new = _keys(sb)
        assert new != old
        status, body = sb.get(_acc_info_url(sb, room["uid"], keys=old), cookies=COOKIES)
        assert json.loads(body)["code"] == -352
        assert json.loads(sb.get(_acc_info_url(sb, room["uid"], keys=new), cookies=COOKIES)[1])["code"] == 0
    finally:
        sb.close()


def test_relation_stat_has_the_real_shape_and_the_world_counts(sb: Sandbox) -> None:
    _, streamer = _streamer(sb, 1)
    got = sb.get_json(f"{MAIN}/x/relation/stat?vmid={streamer['uid']}")
    assert shape_errors(real("relation_stat", "vmid_332704117"), got) == []
    (person,) = pages.parse(json.dumps(got).encode(), fetched_at=T0)
    assert (person.streamer_id, person.followers, person.following) == (
        str(streamer["uid"]), streamer["fans"], streamer["attention"])
    assert json.loads(sb.get(f"{MAIN}/x/relation/stat?vmid=1")[1])["code"] == -404


def test_the_sandbox_check_agrees_with_the_published_vector() -> None:
    # wbi.md @ cfc5fddc: its keys and params give 8f6f2b5b3d485fe1886cec6a0be8c5d4 (as in test_unit_bilibili_wbi).
    keys = ("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
    pairs = [("foo", "114"), ("bar", "514"), ("zab", "1919810")]
    assert space.expected_w_rid(pairs, "1702204169", keys) == "8f6f2b5b3d485fe1886cec6a0be8c5d4"
