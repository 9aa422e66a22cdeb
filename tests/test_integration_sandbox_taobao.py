"""The Taobao part of the sandbox, run as a subprocess and checked over HTTP.

* The gateway's token dance as a client meets it: no cookie -> ``FAIL_SYS_TOKEN_EMPTY`` with
  fresh cookies -> a signed call succeeds; every token expired -> ``FAIL_SYS_TOKEN_EXOIRED``
  -> the request re-signed with the new token succeeds; a wrong sign is refused; risk
  control and the rate limit answer HTTP 200 with ``FAIL_SYS_USER_VALIDATE``.
* Every answer's shape against the real captures in ``tests/fixtures/sandbox_shapes/taobao``.
* Values against the ground truth, read through the real parsers and signer (the sandbox and
  the spider code never import each other: this is where one checks the other).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from models.entities import Product, ProductSnapshot, Room, RoomSnapshot, Streamer
from models.errors import BlockedError, GoneError, PageError, PermanentPageError
from spiders.taobao import pages
from spiders.taobao.sign import mtop_url, resign_url, token_from_cookie
from tests.plugins.sandbox import SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

SHAPES = Path(__file__).parent / "fixtures" / "sandbox_shapes" / "taobao"
H5 = "/h5api.m.taobao.com"
LIVEDETAIL = ("mtop.mediaplatform.live.livedetail", "4.0")
ITEMLIST = ("mtop.mediaplatform.video.livedetail.itemlist.withpagination", "2.0")
GETDETAIL = ("mtop.taobao.detail.getdetail", "6.0")
STATS = ("mtop.mediaplatform.live.pulltopicstat", "1.0")


def real(name: str) -> Any:
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))


def shape_errors(want: Any, got: Any, path: str = "$") -> list[str]:
    """Differences in keys (and their order) and value types between a real payload and ours."""
    if want is None or got is None:
        return [] if want is got else [f"{path}: {type(want).__name__} vs {type(got).__name__}"]
    if type(want) is not type(got):
        return [f"{path}: {type(want).__name__} vs {type(got).__name__}"]
    errors: list[str] = []
    if isinstance(want, dict):
        if list(want) != list(got):
            errors.append(f"{path}: keys {list(want)} vs {list(got)}")
        for key in want.keys() & got.keys():
            errors += shape_errors(want[key], got[key], f"{path}.{key}")
    elif isinstance(want, list) and want and got:
        for i, item in enumerate(got):
            candidates = [shape_errors(example, item, f"{path}[{i}]") for example in want]
            errors += min(candidates, key=len)
    return errors


def keys_in_order(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Keys of ``want`` missing from ``got``, or in another order there (``got`` may have more)."""
    missing = [key for key in want if key not in got]
    shared = [key for key in got if key in want]
    return missing + ([f"order {shared} vs {list(want)}"] if shared != [k for k in want if k in got] else [])


class Client:
    """A browser-like mtop client: a cookie jar, signing with ``spiders.taobao.sign``."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        self.sandbox = sandbox
        self.cookies: dict[str, str] = {}

    def get(self, path: str) -> Any:
        reply = self.sandbox.get(path, cookies=self.cookies or None)
        for header in reply.set_cookies:
            self.cookies.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
        return reply

    def token(self) -> str:
        return token_from_cookie(self.cookies["_m_h5_tk"])[0] if "_m_h5_tk" in self.cookies else ""

    def url(self, api: tuple[str, str], data: dict[str, Any], *, jsonp: bool = True) -> str:
        t = str(int(time.time() * 1000))
        full = mtop_url(self.sandbox.url + H5, *api, data, token=self.token(), t=t, jsonp=jsonp)
        return full[len(self.sandbox.url) :]

    def call(self, api: tuple[str, str], data: dict[str, Any], *, jsonp: bool = True) -> tuple[str, Any]:
        """Sign and send; on a token answer, re-sign with the fresh cookie and send once more."""
        path = self.url(api, data, jsonp=jsonp)
        reply = self.get(path)
        try:
            pages.check_envelope(mtop(reply.body), path)
        except pages.TokenExpiredError:
            path = resign_url(path, token=self.token(), t=str(int(time.time() * 1000)))
            reply = self.get(path)
        except (PageError, ValueError):
            pass  # not a token answer: the test reads it
        return self.sandbox.url + path, reply


def mtop(body: bytes) -> Any:
    text = body.decode("utf-8")
    if not text.startswith("{"):
        text = text[text.index("(") + 1 : text.rindex(")")]
    return json.loads(text)


def parse(url: str, body: bytes) -> list[Any]:
    return pages.parse(body, url=url, fetched_at=datetime.now(UTC))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    process = start_sandbox("--platforms", "taobao", "--time-scale", "0", "--no-chaos", "--streamers", "150")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def truth(sandbox: SandboxProcess) -> dict[str, Any]:
    return sandbox.truth("taobao")


@pytest.fixture(scope="module")
def faulty(truth: dict[str, Any]) -> set[str]:
    return {i for ids in truth["faults"].values() for i in ids}


@pytest.fixture(scope="module")
def live(truth: dict[str, Any], faulty: set[str]) -> dict[str, Any]:
    return next(r for r in truth["lives"] if r["roomStatus"] == 1 and r["liveId"] not in faulty and r["items"])


@pytest.fixture
def client(sandbox: SandboxProcess) -> Client:
    return Client(sandbox)


# -- the token dance ------------------------------------------------------------------------------------


def test_token_empty_then_cookie_then_signed_call(client: Client, live: dict[str, Any]) -> None:
    path = client.url(LIVEDETAIL, {"liveId": live["liveId"]})
    first = client.get(path)
    assert first.status == 200 and first.body.startswith(b"mtopjsonp1(")
    assert mtop(first.body)["ret"] == ["FAIL_SYS_TOKEN_EMPTY::令牌为空"]
    assert {"_m_h5_tk", "_m_h5_tk_enc"} <= set(client.cookies)
    with pytest.raises(pages.TokenExpiredError):
        parse(path, first.body)
    url, reply = client.call(LIVEDETAIL, {"liveId": live["liveId"]})
    answer = mtop(reply.body)
    assert answer["ret"] == ["SUCCESS::调用成功"] and answer["data"]["liveId"] == live["liveId"]


def test_expired_tokens_are_refreshed(sandbox: SandboxProcess, client: Client, live: dict[str, Any]) -> None:
    client.call(LIVEDETAIL, {"liveId": live["liveId"]})
    old = client.cookies["_m_h5_tk"]
    sandbox.control("taobao/tokens", {"expire_now": True})
    path = client.url(LIVEDETAIL, {"liveId": live["liveId"]})
    stale = client.get(path)
    assert mtop(stale.body)["ret"] == ["FAIL_SYS_TOKEN_EXOIRED::令牌过期"]
    assert client.cookies["_m_h5_tk"] != old
    again = client.get(resign_url(path, token=client.token(), t=str(int(time.time() * 1000))))
    assert mtop(again.body)["ret"] == ["SUCCESS::调用成功"]


def test_wrong_sign_is_refused(client: Client, live: dict[str, Any]) -> None:
    client.call(LIVEDETAIL, {"liveId": live["liveId"]})
    path = client.url(LIVEDETAIL, {"liveId": live["liveId"]})
    forged = resign_url(path, token="0" * 32, t="1")
    reply = client.get(forged)
    assert mtop(reply.body)["ret"] == ["FAIL_SYS_ILEGEL_SIGN::非法签名"]
    with pytest.raises(pages.TokenExpiredError):
        parse(forged, reply.body)


def test_risk_control_and_rate_limit_answers(sandbox: SandboxProcess, client: Client, live: dict[str, Any]) -> None:
    client.call(LIVEDETAIL, {"liveId": live["liveId"]})
    sandbox.set_config(block_rate=1.0)
    try:
        url, reply = client.call(LIVEDETAIL, {"liveId": live["liveId"]})
        answer = mtop(reply.body)
        assert reply.status == 200 and reply.headers.get("bxpunish") == "1"
        assert answer["ret"] == ["FAIL_SYS_USER_VALIDATE", "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"]
        assert "_____tmd_____/punish" in answer["data"]["url"]
        with pytest.raises(BlockedError) as raised:
            parse(url, reply.body)
        assert raised.value.code == "FAIL_SYS_USER_VALIDATE"
        page = client.get(f"/detail.m.tmall.com/item.htm?id={live['items'][0]['itemId']}")
        assert page.status == 200 and b"x5referer" in page.body
        with pytest.raises(BlockedError):
            parse(sandbox.url + "/detail.m.tmall.com/item.htm?id=1", page.body)
    finally:
        sandbox.set_config(block_rate=0.0)
    sandbox.set_config(rate_limit=2.0)
    try:
        replies = [client.get(f"/alive-interact.alicdn.com/livedetail/common/{live['liveId']}") for _ in range(8)]
        limited = [r for r in replies if b"x5referer" in r.body]
        assert limited and all(r.status == 200 for r in replies)
    finally:
        sandbox.set_config(rate_limit=0.0)


# -- shapes -------------------------------------------------------------------------------------------


def test_live_shapes(client: Client, live: dict[str, Any]) -> None:
    cdn = real("taolive_alive-interact_livedetail_common_523417747786.json")
    got = client.get(f"/alive-interact.alicdn.com/livedetail/common/{live['liveId']}")
    assert got.headers["content-type"].startswith("application/json")
    assert shape_errors(cdn, got.json()) == []

    _, reply = client.call(LIVEDETAIL, {"liveId": live["liveId"], "creatorId": None})
    data = mtop(reply.body)["data"]
    assert set(cdn) <= set(data) and list(data) == sorted(data)
    assert {"praiseCount", "joinCount", "startTime", "curItemNum"} <= set(data)
    assert all(isinstance(v, str | bool | list | dict) for v in data.values())

    stats = real("mtop_mediaplatform_live_pulltopicstat.json")
    _, reply = client.call(STATS, {"topic": live["topic"]})
    assert shape_errors(stats, mtop(reply.body)) == []

    goods = real("taolive_zhongkong_live_item_list_goodsList_liveId_219968464906_2019.json")[0]["goodsList"][0]
    _, reply = client.call(ITEMLIST, {"liveId": live["liveId"], "creatorId": live["accountId"], "n": 5, "groupNum": 0})
    answer = mtop(reply.body)
    assert list(answer["data"]) == ["itemListv1", "totalNum"] and answer["data"]["totalNum"] == str(len(live["items"]))
    for entry in answer["data"]["itemListv1"]:
        do = entry["liveItemDO"]
        assert keys_in_order(goods, do) == [] and keys_in_order(goods["extendVal"], do["extendVal"]) == []
        assert all(isinstance(do[key], type(goods[key])) for key in goods)


def test_item_shapes(client: Client, live: dict[str, Any]) -> None:
    want = real("mtop_wdetail_v6_TBDetailResultV6.reconstructed.json")["data"]
    _, reply = client.call(GETDETAIL, {"itemNumId": live["items"][0]["itemId"]})
    got = mtop(reply.body)["data"]
    assert list(got) == list(want)
    for key in ("item", "seller"):
        assert list(got[key]) == list(want[key]), key
    assert isinstance(got["apiStack"][0]["value"], str) and isinstance(got["mockData"], str)
    value, want_value = json.loads(got["apiStack"][0]["value"]), json.loads(want["apiStack"][0]["value"])
    assert list(value) == list(want_value)
    for path in ("price", "item"):
        assert shape_errors(want_value[path], value[path]) == [], path
    assert shape_errors(want_value["skuCore"]["sku2info"]["0"], value["skuCore"]["sku2info"]["0"]) == []

    page = client.get(f"/detail.m.tmall.com/item.htm?id={live['items'][0]['itemId']}")
    assert page.headers["content-type"].startswith("text/html")
    text = page.body.decode()
    objects = {}
    for name in ("_DATA_Detail", "_DATA_Mdskip"):
        start = text.index(f"var {name} = ") + len(f"var {name} = ")
        objects[name], _ = json.JSONDecoder().raw_decode(text, start)
    detail = real("tmall_m_detail_item-data__DATA_Detail.json")
    mdskip = real("tmall_m_detail_item-data__DATA_Mdskip.json")
    assert list(objects["_DATA_Detail"]) == list(detail) and list(objects["_DATA_Mdskip"]) == list(mdskip)
    for key in ("seller", "item"):
        assert shape_errors(detail[key], objects["_DATA_Detail"][key]) == [], key
    assert list(objects["_DATA_Mdskip"]["price"]) == list(mdskip["price"])
    assert shape_errors(mdskip["price"]["price"], objects["_DATA_Mdskip"]["price"]["price"]) == []
    assert keys_in_order(objects["_DATA_Mdskip"]["item"], mdskip["item"]) == []


# -- values against the truth, through the parsers ------------------------------------------------------


def test_live_room_values(sandbox: SandboxProcess, client: Client, live: dict[str, Any], truth: dict[str, Any]) -> None:
    anchor = next(a for a in truth["anchors"] if a["liveId"] == live["liveId"])
    url, reply = client.call(LIVEDETAIL, {"liveId": live["liveId"]})
    room, snapshot, streamer = parse(url, reply.body)
    assert isinstance(room, Room) and isinstance(snapshot, RoomSnapshot) and isinstance(streamer, Streamer)
    assert (room.room_id, room.streamer_id, room.title, room.status) == (
        live["liveId"], live["accountId"], live["title"], "live",
    )  # fmt: skip
    assert (room.viewers_now, room.viewers_total, room.likes, room.product_count) == (
        live["joinCount"], live["viewCount"], live["praiseCount"], live["curItemNum"],
    )  # fmt: skip
    assert int(room.started_at.timestamp() * 1000) == live["startTime"]
    assert (streamer.nickname, streamer.followers, streamer.avatar_url) == (
        anchor["accountName"], anchor["fansNum"], anchor["headImg"],
    )  # fmt: skip
    url, reply = client.call(STATS, {"topic": live["topic"], "liveId": live["liveId"]})
    (stats,) = parse(url, reply.body)
    assert (stats.room_id, stats.viewers_now, stats.viewers_total, stats.likes) == (
        live["liveId"], live["joinCount"], live["totalNum"], live["praiseCount"],
    )  # fmt: skip
    cdn_url = f"{sandbox.url}/alive-interact.alicdn.com/livedetail/common/{live['liveId']}"
    cdn_room = parse(cdn_url, client.get(cdn_url[len(sandbox.url) :]).body)[0]
    assert (cdn_room.status, cdn_room.viewers_total) == ("live", live["viewCount"])
    served = sandbox.served("taobao", room_id=live["liveId"])
    assert {row["endpoint"] for row in served} >= {"livedetail", "pulltopicstat", "cdn_livedetail"}
    assert all(row["online"] == live["joinCount"] for row in served if row["endpoint"] == "livedetail")


def test_shelf_pages_and_item_values(sandbox: SandboxProcess, client: Client, live: dict[str, Any],
                                     truth: dict[str, Any]) -> None:  # fmt: skip
    size = 4
    products: list[Product] = []
    snapshots: list[ProductSnapshot] = []
    for group in range((len(live["items"]) + size - 1) // size):
        data = {"liveId": live["liveId"], "creatorId": live["accountId"], "n": size, "groupNum": group}
        url, reply = client.call(ITEMLIST, data)
        records = parse(url, reply.body)
        products += [r for r in records if isinstance(r, Product)]
        snapshots += [r for r in records if isinstance(r, ProductSnapshot)]
    assert [p.product_id for p in products] == [i["itemId"] for i in live["items"]]
    for snap, item in zip(snapshots, live["items"], strict=True):
        assert (snap.room_id, snap.rank_in_room, snap.price, snap.sales) == (
            live["liveId"], item["goodsIndex"], item["price"], item["buyCount"],
        )  # fmt: skip
    rows = [r for r in sandbox.served("taobao", room_id=live["liveId"]) if r["endpoint"] == "itemlist"]
    assert {r["item_id"] for r in rows} == {i["itemId"] for i in live["items"]}

    by_id = {i["itemId"]: i for i in truth["items"]}
    item = by_id[live["items"][0]["itemId"]]
    url, reply = client.call(GETDETAIL, {"itemNumId": item["itemId"]})
    product, snapshot = parse(url, reply.body)
    assert (product.product_id, product.title, product.price, product.original_price) == (
        item["itemId"], item["title"], item["price"], item["originalPrice"],
    )  # fmt: skip
    shop = (product.shop_id, product.shop_name, product.category)
    assert shop == (item["shopId"], item["shopName"], item["categoryId"])
    assert product.sales is not None and product.sales <= item["sellCount"]  # shown floored ("1.2万+")
    page_url = f"{sandbox.url}/detail.m.tmall.com/item.htm?id={item['itemId']}"
    tmall, tmall_snapshot = parse(page_url, client.get(page_url[len(sandbox.url) :]).body)
    assert (tmall.product_id, tmall.price, tmall.original_price, tmall.shop_id) == (
        item["itemId"], item["price"], item["originalPrice"], item["shopId"],
    )  # fmt: skip
    assert tmall.sales is None  # Tmall hides sales (sellCountAntiCreep)


# -- faults and unknown entities ----------------------------------------------------------------------------


def test_faults_break_the_way_real_sites_break(client: Client, truth: dict[str, Any]) -> None:
    faults = truth["faults"]
    url, reply = client.call(LIVEDETAIL, {"liveId": faults["truncated_json"][0]})
    with pytest.raises(PermanentPageError, match="malformed JSON"):
        parse(url, reply.body)
    url, reply = client.call(ITEMLIST, {"liveId": faults["html_page"][0], "n": 20, "groupNum": 0})
    assert reply.headers["content-type"].startswith("text/html")
    with pytest.raises(PermanentPageError, match="HTML page instead of JSON"):
        parse(url, reply.body)
    url, reply = client.call(ITEMLIST, {"liveId": faults["missing_item_id"][0], "n": 20, "groupNum": 0})
    with pytest.raises(PermanentPageError, match="product_id: Field required"):
        parse(url, reply.body)
    url, reply = client.call(GETDETAIL, {"itemNumId": faults["broken_api_stack"][0]})
    with pytest.raises(PermanentPageError, match=r"data\.apiStack\.0\.value"):
        parse(url, reply.body)


def test_unknown_entities_are_gone(sandbox: SandboxProcess, client: Client) -> None:
    for api, data in ((LIVEDETAIL, {"liveId": "1"}), (GETDETAIL, {"itemNumId": "1"}), (ITEMLIST, {"liveId": "1"})):
        url, reply = client.call(api, data)
        with pytest.raises(GoneError):
            parse(url, reply.body)
    page = client.get("/detail.m.tmall.com/item.htm?id=1")
    with pytest.raises(GoneError):
        parse(sandbox.url + "/detail.m.tmall.com/item.htm?id=1", page.body)
    assert client.get("/alive-interact.alicdn.com/livedetail/common/1").status == 404
