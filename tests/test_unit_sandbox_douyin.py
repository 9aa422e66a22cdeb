"""Unit tests of the Douyin replica: the signature (Python side), the world, the formats,
and the endpoints' refusals, in process (the signature clock is injected, so staleness is
tested without waiting)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sandbox.douyin import pages as H
from sandbox.douyin import payloads as P
from sandbox.douyin import sign as sig
from sandbox.douyin.entities import STATUS_ENDED, STATUS_LIVE
from sandbox.douyin.routes import DouyinPlatform
from sandbox.douyin.world import FAULT_KINDS, DouyinWorld
from sandbox.world import DEFAULT_START, WorldClock

MINUTE0 = int(DEFAULT_START // 60)
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
WALL = 1_800_000_000


@pytest.fixture(scope="module")
def world() -> DouyinWorld:
    return DouyinWorld(seed=7, n_streamers=300)


# -- the signature ------------------------------------------------------------------------------
def test_signature_matches_the_x_bogus_construction() -> None:
    # Expected value computed independently, by a re-derivation of the public X-Bogus steps
    # (f2's xbogus.py flow: interleave, permutation, RC4 0xff, custom base64): third-party
    # X-Bogus signers are accepted too.
    query = "device_platform=webapp&aid=6383&channel=channel_pc_web&sec_user_id=MS4wLjABAAAAW9FW&count=18"
    ua = UA.replace("125.0.0.0", "122.0.0.0")
    assert sig.sign(query, ua, ts=1_780_000_000) == "DFSzswVYUVbANxu0C5Ji-e9WX7rq"
    assert sig.signed_at(sig.sign(query, ua, ts=1_780_000_000)) == 1_780_000_000


def test_signature_binds_query_body_user_agent_and_time() -> None:
    query = "aid=6383&room_id=7646376107435079915&offset=0&limit=20"
    body = b"ec_promotion_id=3650033106897976316&room_id=7646376107435079915"
    good = sig.sign(query, UA, body, ts=WALL)
    assert len(good) == 28 and set(good) <= set(sig.ALPHABET)
    assert sig.verify(good, query, UA, body, now=WALL + 10) is None
    assert sig.verify(good, query.replace("offset=0", "offset=20"), UA, body, now=WALL) == "query mismatch"
    assert sig.verify(good, query, UA, body + b"&x=1", now=WALL) == "body mismatch"
    assert sig.verify(good, query, UA + " Edg/125.0", body, now=WALL) == "user-agent mismatch"
    assert sig.verify(good, query, UA, body, now=WALL + sig.MAX_AGE + 1) == "stale"
    assert sig.verify(good, query, UA, body, now=WALL + sig.MAX_AGE) is None
    assert sig.verify(good, query, UA, body, now=WALL - sig.MAX_AHEAD - 1) == "from the future"
    assert sig.verify("x" * 28, query, UA, body, now=WALL) == "malformed"
    assert sig.verify(good[:-1], query, UA, body, now=WALL) == "malformed"
    # Flipping the 10th char changes a hashed byte and breaks the checksum; the 1st breaks the prefix.
    flipped = good[:9] + ("D" if good[9] != "D" else "k") + good[10:]
    assert sig.verify(flipped, query, UA, body, now=WALL) is not None
    assert sig.verify("k" + good[1:], query, UA, body, now=WALL) == "malformed"
    # Strings are hashed as UTF-8, the same bytes as str or bytes bodies.
    assert sig.sign("keyword=好物", UA, "a=好", ts=WALL) == sig.sign("keyword=好物", UA, "a=好".encode(), ts=WALL)


def test_split_query_removes_only_the_signature_and_keeps_the_encoding() -> None:
    raw = "aid=6383&keyword=%E5%A5%BD+%E7%89%A9&a_bogus=Dk%2Fd%3D&msToken=&web_rid=1"
    assert sig.split_query(raw) == ("aid=6383&keyword=%E5%A5%BD+%E7%89%A9&msToken=&web_rid=1", "Dk/d=")
    assert sig.split_query("X-Bogus=abc&aid=1") == ("aid=1", "abc")
    assert sig.split_query("aid=1") == ("aid=1", None)
    assert sig.split_query("") == ("", None)


# -- the world -----------------------------------------------------------------------------------
def test_same_seed_same_world_and_other_seed_differs() -> None:
    a, b, c = DouyinWorld(7, 120), DouyinWorld(7, 120), DouyinWorld(8, 120)
    assert a.truth(DEFAULT_START) == b.truth(DEFAULT_START)
    assert [s.uid for s in a.streamers] != [s.uid for s in c.streamers]


def test_ids_have_the_real_shapes(world: DouyinWorld) -> None:
    assert len(world.streamers) == len(world.rooms) == 300
    assert len({s.uid for s in world.streamers}) == 300
    assert all(s.uid > 2**53 for s in world.streamers), "uids must not survive a float round trip"
    assert all(len(s.sec_uid) == 76 and s.sec_uid.startswith("MS4wLjABAAAA") for s in world.streamers)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", s.sec_uid) for s in world.streamers)
    assert all(11 <= len(str(r.web_rid)) <= 12 for r in world.rooms)
    assert len({r.web_rid for r in world.rooms}) == 300
    products = [p for r in world.rooms for p in r.shelf]
    assert products and all(len(str(p.product_id)) == 19 == len(str(p.promotion_id)) for p in products)
    assert len({p.product_id for p in products}) == len(products)
    assert len({p.promotion_id for p in products}) == len(products)
    for room in world.rooms[:50]:
        st = world.state(room, MINUTE0)
        assert len(str(st.room_id)) == 19 and st.room_id > 2**53
        found = world.session_of(st.room_id, MINUTE0)
        assert found is not None and found[0] is room and found[2] == st.live


def test_each_session_gets_a_new_room_id(world: DouyinWorld) -> None:
    room = next(r for r in world.rooms if r.schedule.always_since is None)
    ids, minute = [], MINUTE0
    while len(set(ids)) < 3 and minute < MINUTE0 + 20 * 1440:
        st = world.state(room, minute)
        if st.live:
            ids.append(st.room_id)
        minute += 30
    assert len(set(ids)) == 3
    old = ids[0]
    found = world.session_of(old, minute)
    assert found is not None and found[0] is room and found[2] is False, "an old session id is not the current one"


def test_faults_are_listed_live_and_absent_when_off(world: DouyinWorld) -> None:
    faults = world.faults
    assert set(faults) == set(FAULT_KINDS) and all(faults[k] for k in FAULT_KINDS)
    for kind in ("truncated_json", "html_page"):
        for web_rid in faults[kind]:
            room = world.room_by_web_rid[int(web_rid)]
            assert room.fault == kind and world.state(room, MINUTE0 + 5000).live
    broken = [p for r in world.rooms for p in r.shelf if p.fault]
    assert [str(p.product_id) for p in broken] == faults["missing_id"]
    clean = DouyinWorld(7, 300, faults=False)
    assert not any(clean.faults.values())


def test_live_values_evolve_and_freeze_offline(world: DouyinWorld) -> None:
    room = next(r for r in world.rooms if r.shelf and not r.fault and r.schedule.always_since is None)
    seen_live = seen_ended = False
    last_sales: list[int | None] = [None] * len(room.shelf)
    viewers, prices = set(), set()
    for minute in range(MINUTE0, MINUTE0 + 3 * 1440, 7):
        st = world.state(room, minute)
        items = world.shelf(room, minute, st.live)
        assert [i.index for i in items] == list(range(1, len(room.shelf) + 1))
        for k, item in enumerate(items):
            assert item.min_price <= item.max_price
            if item.sale_num is not None:
                assert last_sales[k] is None or item.sale_num >= last_sales[k], "sales never go down"
                last_sales[k] = item.sale_num
        if st.live:
            seen_live = True
            viewers.add(st.user_count)
            prices.update(i.min_price for i in items)
            assert st.user_count > 0 and st.total_user >= st.user_count
        else:
            seen_ended = True
            assert st.status == STATUS_ENDED and st.user_count == st.like_count == 0 and st.explaining is None
            assert all(i.min_price == i.product.base_price for i in items), "no flash prices offline"
    assert seen_live and seen_ended and len(viewers) > 5 and len(prices) > len(room.shelf)
    # Sales grow only with live minutes.
    start = next(m for m in range(MINUTE0, MINUTE0 + 3 * 1440) if world.state(room, m).live)
    hidden = [i.sale_num is None for i in world.shelf(room, start, True)]
    before = world.shelf(room, start, True)
    after = world.shelf(room, start + 20, True) if world.state(room, start + 20).live else before
    grew = [
        b.sale_num is not None and a.sale_num is not None and a.sale_num > b.sale_num
        for a, b in zip(after, before, strict=True)
    ]
    assert any(grew) or all(hidden)


def test_truth_uses_platform_names_and_string_ids(world: DouyinWorld) -> None:
    truth = world.truth(DEFAULT_START)
    assert json.loads(json.dumps(truth)) == truth
    room = truth["rooms"][0]
    assert {"web_rid", "id_str", "owner_user_id_str", "status", "user_count", "product_count"} <= set(room)
    assert all(isinstance(r["id_str"], str) and isinstance(r["web_rid"], str) for r in truth["rooms"])
    assert all(isinstance(s["uid"], str) for s in truth["streamers"])
    web_rid, items = next(iter(truth["shelves"].items()))
    assert [i["index"] for i in items] == list(range(1, len(items) + 1))
    assert all(isinstance(i["min_price"], int) and isinstance(i["product_id"], str) for i in items)
    assert truth["categories"][0]["partition"] == {"id_str": "10000", "type": 3, "title": "娱乐天地"}


# -- formats -------------------------------------------------------------------------------------
def test_counts_are_printed_like_the_real_payloads() -> None:
    # Pairs seen in the real fixtures: root user_count_str, stats strings, room_view_stats.
    assert [P.room_user_count_str(n) for n in (999, 1266, 3603, 15245)] == ["999", "1000+", "3000+", "1w+"]
    assert [P.wan_plus(n) for n in (1266, 15245)] == ["1266", "1万+"]
    assert [P.wan_plus(n, 100_000) for n in (8572, 100_000, 234_567)] == ["8572", "10万+", "23万+"]
    assert P.wan(15245, False) == "1万" and P.wan(15245, True) == "1.5万"
    assert P.wan(20_010, True) == "2万" and P.wan(3603, True) == "3603"


def test_room_objects_live_and_ended(world: DouyinWorld) -> None:
    live = next(r for r in world.rooms if r.shelf and world.state(r, MINUTE0).live)
    ended = next(r for r in world.rooms if not world.state(r, MINUTE0).live)
    for room in (live, ended):
        st = world.state(room, MINUTE0)
        s = world.streamer_by_uid[room.uid]
        body = P.enter(room, s, st, len(room.shelf) if st.live else 0, 1)
        obj = body["data"]["data"][0]
        assert obj["id_str"] == body["data"]["enter_room_id"] == str(st.room_id)
        assert obj["owner"]["id_str"] == str(s.uid) and obj["owner"]["sec_uid"] == s.sec_uid
        if st.live:
            assert obj["status"] == STATUS_LIVE and body["data"]["room_status"] == 0 and "prompts" not in body["data"]
            assert obj["room_view_stats"]["display_value"] == st.user_count and obj["like_count"] == st.like_count
            assert obj["room_cart"]["total"] == len(room.shelf)
            stream = json.loads(obj["stream_url"]["live_core_sdk_data"]["pull_data"]["stream_data"])
            assert set(stream["data"]) == {"origin", "uhd", "hd", "sd", "ld"}
        else:
            assert obj["status"] == STATUS_ENDED and body["data"]["room_status"] == 2
            assert body["data"]["prompts"] == "直播已结束" and "stream_url" not in obj


def test_pages_embed_rsc_lines_safely() -> None:
    literal = H.chunk("a", {"title": "</script><b>x", "n": 1})
    assert "<" not in literal
    assert json.loads(json.loads(literal)[2:]) == {"title": "</script><b>x", "n": 1}
    odin = {"user_id": "7", "user_type": 12, "user_is_auth": 0, "user_is_login": 0, "user_unique_id": "7"}
    home = H.home_page("n0nce", odin, P.category_data()).decode()
    # dart_simple_live's category regex, verbatim in spirit: the escaped blob from pathname "/".
    blob = re.search(r'\{\\"pathname\\":\\"/\\",\\"categoryData.*?\]\\n', home)
    assert blob is not None
    assert "bdms = {init: {_v:" in home and home.count('<script nonce="n0nce">') >= 4
    shell = H.room_shell("n0nce", odin, "123456789012").decode()
    # No room data in the embedded lines: only the visitor block and the web_rid of the URL.
    assert '\\"roomInfo\\"' not in shell and '\\"id_str\\"' not in shell and "webcast/room/web/enter/" in shell
    assert '\\"webrid\\":\\"123456789012\\"' in shell and '\\"user_unique_id\\":\\"7\\"' in shell


# -- endpoints, in process -------------------------------------------------------------------------
class Wall:
    """The signature clock, moved by hand."""

    def __init__(self) -> None:
        self.t = float(WALL)

    def __call__(self) -> float:
        return self.t


def _run(check: Any) -> Any:
    async def go() -> Any:
        wall = Wall()
        platform = DouyinPlatform(7, 60, True, WorldClock(DEFAULT_START, 0), 1000, wall=wall)
        app = web.Application()
        platform.add_routes(app)
        async with TestClient(TestServer(app)) as client:
            return await check(client, platform, wall)

    return asyncio.run(go())


def _signed(query: dict[str, Any], body: bytes = b"", ts: int = WALL, ua: str = UA) -> str:
    raw = urlencode(query)
    return raw + "&a_bogus=" + quote(sig.sign(raw, ua, body, ts=ts), safe="")


def test_apis_refuse_unsigned_altered_stale_and_cookieless_requests() -> None:
    async def check(client: TestClient, platform: DouyinPlatform, wall: Wall) -> None:
        room = next(r for r in platform.world.rooms if not r.fault)
        q = {"aid": 6383, "app_name": "douyin_web", "web_rid": room.web_rid, "msToken": ""}
        path = "/live.douyin.com/webcast/room/web/enter/"
        headers = {"User-Agent": UA, "Cookie": "ttwid=1%7Cabc"}

        async def body_of(query: str, **kw: Any) -> tuple[bytes, str | None]:
            resp = await client.get(f"{path}?{query}", headers=kw.get("headers", headers))
            assert resp.status == 200
            return await resp.read(), resp.headers.get("X-Sandbox-Reject")

        ok, _ = await body_of(_signed(q))
        assert json.loads(ok)["status_code"] == 0
        assert await body_of(urlencode(q)) == (b"", "unsigned")
        assert await body_of(_signed(q), headers={"User-Agent": UA}) == (b"", "no ttwid")
        assert await body_of(_signed(q).replace("aid=6383", "aid=6384")) == (b"", "query mismatch")
        assert await body_of(_signed(q, ua=UA + "x")) == (b"", "user-agent mismatch")
        assert await body_of(_signed(q, ts=WALL - 301)) == (b"", "stale")
        wall.t += 301  # the same signature, five minutes later
        assert (await body_of(_signed(q)))[0] == b""
        x_bogus = _signed(q, ts=int(wall.t)).replace("a_bogus=", "X-Bogus=")
        assert json.loads((await body_of(x_bogus))[0])["status_code"] == 0

    _run(check)


def test_pages_cookies_and_post_bodies() -> None:
    async def check(client: TestClient, platform: DouyinPlatform, wall: Wall) -> None:
        room = next(r for r in platform.world.rooms if r.shelf and not r.fault)
        resp = await client.get(f"/live.douyin.com/{room.web_rid}")
        text = await resp.text()
        assert resp.status == 200 and "<title>验证码中间页</title>" in text and 'id="captcha_container"' in text
        assert "ttwid" in resp.cookies and "__ac_nonce" in resp.cookies
        assert len(resp.cookies["__ac_nonce"].value) == 21
        resp = await client.get(f"/live.douyin.com/{room.web_rid}")  # the client kept the cookies
        shell = await resp.text()
        assert "验证码" not in shell and room.title not in shell and "window.bdms" in shell
        # POST binds the body: the detail call with its form signed, then with a changed form.
        st = platform.world.state(room, MINUTE0)
        pid = room.shelf[0].promotion_id
        form = urlencode({"bff_type": 2, "ec_promotion_id": pid, "promotion_ids": pid, "room_id": st.room_id})
        query = {"device_platform": "webapp", "aid": 6383, "is_h5": 1}
        url = "/live.douyin.com/ecom/product/detail/saas/pc/?" + _signed(query, form.encode())
        headers = {"User-Agent": UA, "Content-Type": "application/x-www-form-urlencoded"}
        resp = await client.post(url, data=form, headers=headers)
        detail = json.loads(await resp.read())
        assert detail["promotions"][0]["base_info"]["promotion_id"] == str(pid)
        resp = await client.post(url, data=form + "&x=1", headers=headers)
        assert await resp.read() == b"" and resp.headers["X-Sandbox-Reject"] == "body mismatch"

    _run(check)
