"""Unit tests of the Taobao part of the sandbox: world, tokens, payload builders, gateway in-process.

The gateway is exercised through an in-process app (aiohttp's test server); signatures are
computed here with hashlib from the published rule, not with ``spiders/taobao/sign.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox.server import SandboxConfig, build_app
from sandbox.taobao import items as items
from sandbox.taobao import payloads as payloads
from sandbox.taobao.gateway import Tokens
from sandbox.taobao.world import FAULT_KINDS, ITEM_FAULT_KINDS, TaoWorld
from sandbox.world import DEFAULT_START

MINUTE0 = int(DEFAULT_START // 60)
H5 = "/h5api.m.taobao.com/h5"
LIVEDETAIL = "mtop.mediaplatform.live.livedetail"


@pytest.fixture(scope="module")
def world() -> TaoWorld:
    return TaoWorld(seed=7, n_streamers=300)


class FakeWall:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


# --- the world ---------------------------------------------------------------------------------------


def test_same_seed_same_world_other_seed_differs() -> None:
    assert TaoWorld(7, 50).truth(DEFAULT_START) == TaoWorld(7, 50).truth(DEFAULT_START)
    assert [a.live_id for a in TaoWorld(8, 50).anchors] != [a.live_id for a in TaoWorld(7, 50).anchors]


def test_world_size_ids_and_faults(world: TaoWorld) -> None:
    assert len(world.anchors) == 300
    assert len({a.live_id for a in world.anchors}) == len({a.account_id for a in world.anchors}) == 300
    assert len({a.topic for a in world.anchors}) == 300
    assert all(len(str(i.item_id)) == 12 for i in world.items)
    assert len(world.item_by_id) == len(world.items)
    assert set(world.faults) == set(FAULT_KINDS + ITEM_FAULT_KINDS)
    assert all(ids for ids in world.faults.values())
    for kind in FAULT_KINDS:  # fault rooms are always live, so crawls meet them
        for live_id in world.faults[kind]:
            assert world.state(world.anchor_by_live[live_id], MINUTE0 + 500).room_status == 1
    assert not any(TaoWorld(7, 300, faults=False).faults.values())


def test_rooms_go_live_and_end(world: TaoWorld) -> None:
    statuses = {world.state(a, m).room_status for a in world.anchors[:40] for m in range(MINUTE0, MINUTE0 + 600, 30)}
    assert {1, 2} <= statuses
    for anchor in world.anchors[:60]:
        st = world.state(anchor, MINUTE0)
        if st.room_status == 1:
            assert st.stream_status == 1 and st.join_count > 0 and st.start_ms
        else:
            assert st.stream_status == 0 and st.join_count == 0


def test_cumulative_counts_never_go_down_within_a_session(world: TaoWorld) -> None:
    anchor = next(a for a in world.anchors if world.state(a, MINUTE0).room_status == 1 and not a.fault)
    start = anchor.schedule.session_start(MINUTE0)
    last = None
    for minute in range(MINUTE0, MINUTE0 + 240):
        st = world.state(anchor, minute)
        if anchor.schedule.session_start(minute) != start:
            # Ended (or a new session): the ended state keeps the session's final counts.
            if st.room_status == 2 and last is not None:
                assert (st.view_count, st.praise_count) >= (last.view_count, last.praise_count)
                assert world.state(anchor, minute + 5).view_count == st.view_count
            break
        if last is not None:
            assert st.view_count >= last.view_count and st.praise_count >= last.praise_count
            assert st.visit_num >= st.view_count > st.join_count
        last = st


def test_shelf_newest_first_growing_while_live(world: TaoWorld) -> None:
    anchor = next(a for a in world.anchors if world.state(a, MINUTE0).room_status == 1 and len(a.shelf) > 10)
    shelf = world.shelf(anchor, MINUTE0)
    assert [e.goods_index for e in shelf] == list(range(len(shelf), 0, -1))
    assert len(shelf) == world.state(anchor, MINUTE0).shelf_size <= len(anchor.shelf)
    later = world.shelf(anchor, MINUTE0 + 40)
    if world.state(anchor, MINUTE0 + 40).room_status == 1:
        assert len(later) >= len(shelf)
    for entry in shelf:
        assert entry.price_fen <= entry.item.price_fen  # live prices are discounts
        assert world.sales(entry.item, MINUTE0 + 600) >= entry.sales


def test_truth_uses_taobao_names(world: TaoWorld) -> None:
    truth = world.truth(DEFAULT_START)
    assert truth["platform"] == "taobao"
    live = truth["lives"][0]
    assert {"liveId", "accountId", "topic", "roomStatus", "streamStatus", "joinCount", "viewCount", "totalNum",
            "visitNum", "praiseCount", "startTime", "curItemNum", "items"} <= set(live)  # fmt: skip
    assert live["viewCount"] == live["totalNum"] and live["curItemNum"] == len(live["items"])
    assert {"itemId", "goodsIndex", "itemPrice", "price", "buyCount"} == set(live["items"][0])
    assert all(isinstance(i, str) for ids in truth["faults"].values() for i in ids)


# --- tokens and payload builders --------------------------------------------------------------------


def test_tokens_issue_check_expire() -> None:
    wall = FakeWall()
    tokens = Tokens(7, wall=wall)
    tk, enc = tokens.issue()
    token, _, expiry = tk.partition("_")
    assert len(token) == 32 and int(expiry) == int((wall.t + tokens.lifetime) * 1000)
    assert tokens.check(tk, enc) == ("ok", token)
    assert tokens.check(None, None) == ("empty", "")
    assert tokens.check(tk, None)[0] == "expired"  # the pair travels together
    assert tokens.check(f"{'0' * 32}_{expiry}", enc)[0] == "expired"  # not issued here
    wall.t += tokens.lifetime + 1
    assert tokens.check(tk, enc)[0] == "expired"
    fresh = tokens.issue()
    assert tokens.check(*fresh)[0] == "ok"
    tokens.expire_all()
    assert tokens.check(*fresh)[0] == "expired"
    assert tokens.check(*tokens.issue())[0] == "ok"


@pytest.mark.parametrize(
    ("sales", "text"), [(0, "0"), (105, "105"), (9999, "9999"), (10000, "1万+"), (12999, "1.2万+"), (150000, "15万+")]
)
def test_sales_text(sales: int, text: str) -> None:
    assert items.sales_text(sales) == text


def test_getdetail_api_stack_value_is_a_json_string(world: TaoWorld) -> None:
    item = world.items[0]
    data = items.getdetail(item, 1980, 12345)
    value = json.loads(data["apiStack"][0]["value"])
    assert value["price"]["price"] == {"priceMoney": "1980", "priceText": "19.8", "type": "1"}
    assert value["item"]["sellCount"] == "1.2万+"
    broken = items.getdetail(item, 1980, 12345, broken=True)["apiStack"][0]["value"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)


def test_mtop_livedetail_sends_strings(world: TaoWorld) -> None:
    anchor = world.anchors[0]
    data = payloads.livedetail_mtop(7, anchor, world.state(anchor, MINUTE0))
    assert list(data) == sorted(data)
    assert data["liveId"] == str(anchor.live_id) and data["broadCaster"]["fansNum"] == str(anchor.fans_num)
    assert isinstance(data["landScape"], bool)


def test_tmall_page_scripts_are_json(world: TaoWorld) -> None:
    page = items.tmall_page(world.items[0], 1980).decode()
    for name in ("_DATA_Detail", "_DATA_Mdskip"):
        start = page.index(f"var {name} = ") + len(f"var {name} = ")
        obj, _ = json.JSONDecoder().raw_decode(page, start)
        assert obj["item"]["itemId"] == world.items[0].item_id


# --- the gateway, in process ----------------------------------------------------------------------


def _sign(token: str, t: str, app_key: str, data: str) -> str:
    return hashlib.md5(f"{token}&{t}&{app_key}&{data}".encode()).hexdigest()


def _url(api: str, v: str, data: str, *, token: str, t: str = "1700000000000", kind: str = "jsonp",
         sign: str | None = None) -> str:  # fmt: skip
    sign = sign if sign is not None else _sign(token, t, "12574478", data)
    return (
        f"{H5}/{api}/{v}/?jsv=2.7.2&appKey=12574478&t={t}&sign={sign}&api={api}&v={v}&type={kind}"
        f"&dataType={kind}&callback=mtopjsonp1&data={quote(data, safe='')}"
    )


def _decode(body: bytes) -> Any:
    text = body.decode()
    if text.startswith("mtopjsonp1("):
        text = text[len("mtopjsonp1(") : -1]
    return json.loads(text)


def _with_app(check: Callable[[TestClient], Awaitable[None]]) -> None:
    config = SandboxConfig(streamers=30, rate_limit=0, error_rate=0, slow_rate=0, block_rate=0, time_scale=0,
                           platforms=("taobao",))  # fmt: skip

    async def run() -> None:
        async with TestClient(TestServer(build_app(config))) as client:
            await check(client)

    asyncio.run(run())


def test_gateway_token_bootstrap_then_signed_call() -> None:
    async def check(client: TestClient) -> None:
        truth = await (await client.get("/__sandbox__/truth")).json()
        live_id = truth["lives"][0]["liveId"]
        data = json.dumps({"liveId": live_id}, separators=(",", ":"))
        first = await client.get(_url(LIVEDETAIL, "4.0", data, token="none"))
        assert first.status == 200 and first.content_type == "application/javascript"
        assert _decode(await first.read())["ret"] == ["FAIL_SYS_TOKEN_EMPTY::令牌为空"]
        tk = first.cookies["_m_h5_tk"].value
        assert first.cookies["_m_h5_tk_enc"].value
        token = tk.split("_")[0]
        ok = _decode(await (await client.get(_url(LIVEDETAIL, "4.0", data, token=token))).read())
        assert ok["ret"] == ["SUCCESS::调用成功"] and ok["data"]["liveId"] == live_id
        plain = await client.get(_url(LIVEDETAIL, "4.0", data, token=token, kind="originaljson"))
        assert plain.content_type == "application/json"
        assert json.loads(await plain.read())["api"] == LIVEDETAIL
        bad = _decode(await (await client.get(_url(LIVEDETAIL, "4.0", data, token=token, sign="0" * 32))).read())
        assert bad["ret"] == ["FAIL_SYS_ILEGEL_SIGN::非法签名"]
        # Data changed after signing: refused too.
        tampered = _url(LIVEDETAIL, "4.0", data, token=token).replace(quote(live_id), quote(live_id[:-1] + "0"))
        assert _decode(await (await client.get(tampered)).read())["ret"] == ["FAIL_SYS_ILEGEL_SIGN::非法签名"]
        # Expire every token: the refresh path.
        control = await client.post("/__sandbox__/taobao/tokens", json={"expire_now": True})
        assert (await control.json())["generation"] == 1
        stale = await client.get(_url(LIVEDETAIL, "4.0", data, token=token))
        assert _decode(await stale.read())["ret"] == ["FAIL_SYS_TOKEN_EXOIRED::令牌过期"]
        assert stale.cookies["_m_h5_tk"].value != tk

    _with_app(check)


def test_gateway_unknown_api_bad_data_and_control_validation() -> None:
    async def check(client: TestClient) -> None:
        first = await client.get(_url(LIVEDETAIL, "4.0", "{}", token="x"))
        token = first.cookies["_m_h5_tk"].value.split("_")[0]
        unknown = _decode(await (await client.get(_url("mtop.unknown.api", "1.0", "{}", token=token))).read())
        assert unknown["ret"] == ["FAIL_SYS_API_NOT_FOUNDED::请求API不存在"]
        wrong_v = _decode(await (await client.get(_url(LIVEDETAIL, "9.0", "{}", token=token))).read())
        assert wrong_v["ret"] == ["FAIL_SYS_API_NOT_FOUNDED::请求API不存在"]
        bad = _decode(await (await client.get(_url(LIVEDETAIL, "4.0", "[1]", token=token))).read())
        assert bad["ret"] == ["FAIL_SYS_PARAM_ERROR::参数错误"]
        gone = _decode(await (await client.get(_url(LIVEDETAIL, "4.0", '{"liveId":"1"}', token=token))).read())
        assert gone["ret"] == ["FAIL_BIZ_LIVE_NOT_EXIST::直播不存在"]
        for body in ({"lifetime_seconds": 0}, {"lifetime_seconds": True}, {"nope": 1}, [1]):
            assert (await client.post("/__sandbox__/taobao/tokens", json=body)).status == 400
        settings = await (await client.post("/__sandbox__/taobao/tokens", json={"lifetime_seconds": 5})).json()
        assert settings == {"lifetime_seconds": 5.0, "generation": 0}

    _with_app(check)
