"""Hand-written tests of the Taobao parsers: mtop envelopes, blocks, detection, variants, robustness.

The field-by-field expectations on the real payloads are generated from the fixture
tree (test_unit_parsers.py); this file covers what a fixture cannot: the answers the
gateway sends instead of data, the page shapes no capture shows, and drifted payloads.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from models.entities import Product, ProductSnapshot, Room, RoomSnapshot, Streamer, merge_records
from models.errors import (
    BlockedError,
    GoneError,
    PermanentPageError,
    RetryablePageError,
    UnknownPayloadError,
)
from spiders.taobao import pages
from spiders.taobao.detect import KINDS, detect, kind_from_url, request_data
from tests.fixture_cases import Case, iter_cases, run
from tests.fixture_cases import key_paths as _key_paths
from tests.fixture_cases import value_at as _at

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H5 = "https://h5api.m.taobao.com/h5"

CASES = iter_cases(platform="taobao")
VALID = [case for case in CASES if not case.is_error]
SINGLE = [case for case in VALID if not case.is_multi]
BY_ID = {case.id: case for case in CASES}
CDN = "taobao/live_detail/cdn_523417747786_ended"
STATS = "taobao/live_stats/no_url"
SHELF = "taobao/item_list/zhongkong_liveId_219968464906"
WDETAIL = "taobao/item_detail/wdetail_v6_reconstructed_543714768771"
PROCESSED = "taobao/item_detail/wdetail_v6_processed_546416107509"
PAIR = "taobao/tmall_detail/pair_with_mdskip_583789686010"


def _body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _payload(case_id: str) -> Any:
    return json.loads(BY_ID[case_id].body)


def _gateway(api: str, v: str, data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":"))
    return f"{H5}/{api}/{v}/?appKey=12574478&t=1&sign=x&api={api}&v={v}&data={quote(text, safe='')}"


def _envelope(ret: list[str], data: Any = None, api: str = "mtop.mediaplatform.live.livedetail") -> bytes:
    return _body({"api": api, "data": {} if data is None else data, "ret": ret, "v": "4.0"})


def _dicts(records: list[Any]) -> list[dict[str, Any]]:
    return [record.to_json_dict() for record in records]


def test_every_kind_has_a_real_fixture_but_the_page() -> None:
    # The Tmall page itself was never captured: its two data objects were (tmall_page below).
    assert {case.kind for case in VALID} == set(KINDS) - {"tmall_page"}
    assert set(pages.PARSERS) == set(KINDS)


# --- the mtop envelope ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ret",
    [
        ["FAIL_SYS_TOKEN_EMPTY::令牌为空"],
        ["FAIL_SYS_TOKEN_EXOIRED::令牌过期"],
        ["FAIL_SYS_ILEGEL_SIGN::非法签名"],
    ],
)
def test_token_codes_are_retryable_not_blocks(ret: list[str]) -> None:
    with pytest.raises(pages.TokenExpiredError) as raised:
        pages.parse(_envelope(ret), url=_gateway("mtop.mediaplatform.live.livedetail", "4.0", {}), fetched_at=T0)
    assert isinstance(raised.value, RetryablePageError) and not isinstance(raised.value, BlockedError)
    assert raised.value.code == ret[0].split("::")[0]
    assert raised.value.platform == "taobao"


@pytest.mark.parametrize(
    ("ret", "data", "code", "reason"),
    [
        (
            ["FAIL_SYS_USER_VALIDATE", "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"],
            {"url": "https://h5api.m.taobao.com:443/h5/x/1.0/_____tmd_____/punish?x5secdata=abc&x5step=1"},
            "FAIL_SYS_USER_VALIDATE",
            "slider at data.url",
        ),
        (["RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"], None, "RGV587_ERROR", "被挤爆啦"),
        (["FAIL_SYS_SESSION_EXPIRED::Session过期"], None, "FAIL_SYS_SESSION_EXPIRED", "Session过期"),
        (["FAIL_SYS_TRAFFIC_LIMIT::哎哟喂,被挤爆啦,请稍后重试"], None, "FAIL_SYS_TRAFFIC_LIMIT", "挤爆"),
    ],
)
def test_risk_control_and_limits_are_blocks(ret: list[str], data: Any, code: str, reason: str) -> None:
    with pytest.raises(BlockedError) as raised:
        pages.parse(_envelope(ret, data), fetched_at=T0, kind="live_detail")
    assert raised.value.code == code
    assert reason in raised.value.reason


@pytest.mark.parametrize(
    ("ret", "error", "reason"),
    [
        (["ERRCODE_QUERY_DETAIL_FAIL::宝贝不存在"], GoneError, "宝贝不存在"),
        (["FAIL_BIZ_LIVE_NOT_EXIST::直播间不存在"], GoneError, "直播间不存在"),
        (["FAIL_SYS_API_NOT_FOUNDED::请求API不存在"], PermanentPageError, "FAIL_SYS_API_NOT_FOUNDED"),
        (["FAIL_SYS_BADARGUMENT_T::参数错误"], PermanentPageError, "参数错误"),
        ([], PermanentPageError, "(empty ret)"),
        ("SUCCESS::调用成功", PermanentPageError, "ret must be a list"),
    ],
)
def test_other_codes(ret: Any, error: type[Exception], reason: str) -> None:
    api = "mtop.taobao.detail.getdetail"
    with pytest.raises(error) as raised:
        pages.parse(_envelope(ret, api=api), fetched_at=T0)
    assert type(raised.value) is error
    assert reason in raised.value.reason


def test_jsonp_and_json_answers_parse_alike() -> None:
    case = BY_ID[WDETAIL]
    expected = case.expected
    for body in (case.body, b"mtopjsonp1(" + case.body + b")", b" mtopjsonp12(" + case.body + b");"):
        assert _dicts(pages.parse(body, fetched_at=T0, kind="item_detail")) == expected


# --- inputs that are not data -----------------------------------------------------------------------

PUNISH = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title></title></head><body>'
    '<script>window._config_={"action":"captcha"};var x5referer="https://h5api.m.taobao.com/";'
    'location.href = "https://h5api.m.taobao.com//_____tmd_____/punish?x5secdata=xyz";</script>'
    '<div id="nocaptcha"></div></body></html>'
)


@pytest.mark.parametrize("kind", [None, "live_detail", "item_list", "tmall_page"])
def test_punish_page_is_a_block(kind: str | None) -> None:
    with pytest.raises(BlockedError):
        pages.parse(PUNISH.encode(), url=None, fetched_at=T0, kind=kind)


@pytest.mark.parametrize("body", [b"", b"  \n", b"\xef\xbb\xbf"])
def test_empty_body_is_retryable(body: bytes) -> None:
    with pytest.raises(RetryablePageError, match="empty body") as raised:
        pages.parse(body, url=_gateway("mtop.mediaplatform.live.livedetail", "4.0", {}), fetched_at=T0)
    assert not isinstance(raised.value, BlockedError)


def test_truncated_json_is_permanent() -> None:
    body = BY_ID[CDN].body
    with pytest.raises(PermanentPageError, match="malformed JSON"):
        pages.parse(body[: len(body) // 2], fetched_at=T0, kind="live_detail")


def test_unknown_payloads_and_kinds() -> None:
    with pytest.raises(UnknownPayloadError):
        pages.parse(_body({"api": "mtop.unknown", "data": {"x": 1}, "ret": ["SUCCESS::调用成功"]}), fetched_at=T0)
    with pytest.raises(UnknownPayloadError):
        pages.parse(b'{"hello": "world"}', fetched_at=T0)
    with pytest.raises(UnknownPayloadError, match="nope"):
        pages.parse(b"{}", fetched_at=T0, kind="nope")


# --- live room -----------------------------------------------------------------------------------------


def test_mtop_live_detail_with_string_counts() -> None:
    # The gateway's livedetail sends every scalar as a string, and the counts the CDN lacks.
    data = _payload(CDN)
    data.update(streamStatus="1", roomStatus="1", joinCount="540", praiseCount="1.2万", viewCount="155236",
                startTime="1717236000000", curItemNum="12", liveId="523417747786")  # fmt: skip
    data["broadCaster"].update(accountId="2215846556688", fansNum="3.4万")
    url = _gateway("mtop.mediaplatform.live.livedetail", "4.0", {"liveId": "523417747786", "creatorId": None})
    room, snapshot, streamer = pages.parse(_envelope(["SUCCESS::调用成功"], data), url=url, fetched_at=T0)
    assert isinstance(room, Room) and isinstance(snapshot, RoomSnapshot) and isinstance(streamer, Streamer)
    assert (room.status, room.viewers_now, room.viewers_total, room.product_count) == ("live", 540, 155236, 12)
    assert (room.likes, room.likes_text, room.likes_is_lower_bound) == (12000, "1.2万", False)
    assert room.started_at == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert (snapshot.viewers_now, snapshot.likes, snapshot.product_count) == (540, 12000, 12)
    assert (streamer.followers, streamer.followers_text, streamer.is_live) == (34000, "3.4万", True)
    assert room.source_url == url


@pytest.mark.parametrize(
    ("room_status", "stream_status", "expected"),
    [
        (2, 0, "ended"),
        ("2", "1", "ended"),
        (1, 1, "live"),
        (None, "1", "live"),
        (1, 0, "live"),  # in session, the push interrupted
        (0, 0, "offline"),
        (None, 0, "offline"),
        (5, None, "unknown"),
        ("x", None, "unknown"),
        (None, None, None),
    ],
)
def test_status_mapping(room_status: Any, stream_status: Any, expected: str | None) -> None:
    data = {"liveId": 1, "roomStatus": room_status, "streamStatus": stream_status}
    records = pages.parse(_body(data), fetched_at=T0, kind="live_detail")
    assert records[0].status == expected
    assert len(records) == (1 if expected is None else 2)  # no snapshot when nothing is observed


def test_live_stats_needs_the_room_from_the_request() -> None:
    body = BY_ID[STATS].body
    url = _gateway("mtop.mediaplatform.live.pulltopicstat", "1.0", {"topic": "a2ca633b", "liveId": "523417747786"})
    (snapshot,) = pages.parse(body, url=url, fetched_at=T0)
    assert snapshot.model_dump(exclude_none=True) == {
        "platform": "taobao", "room_id": "523417747786", "captured_at": T0,
        "viewers_now": 540, "viewers_total": 28933, "likes": 23924, "source_url": url,
    }  # fmt: skip
    topic_only = _gateway("mtop.mediaplatform.live.pulltopicstat", "1.0", {"topic": "a2ca633b"})
    assert pages.parse(body, url=topic_only, fetched_at=T0) == []


# --- shelves and items ---------------------------------------------------------------------------------


def _shelf(items: list[dict[str, Any]]) -> bytes:
    api = "mtop.mediaplatform.video.livedetail.itemlist.withpagination"
    return _envelope(["SUCCESS::调用成功"], {"itemListv1": items, "totalNum": str(len(items))}, api=api)


def test_itemlistv1_shape_with_live_item_do() -> None:
    extend = {"buyCount": "1000+", "categoryLevelLeaf": "50012940", "categoryLevelOneName": "运动/瑜伽/健身/球迷用品"}
    items = [
        {"liveItemDO": {"itemId": "600000000001", "itemName": "乒乓球拍", "itemPrice": "99.00", "goodsIndex": "2",
                        "itemPic": "//gw.alicdn.com/a.jpg", "extendVal": json.dumps(extend, ensure_ascii=False)}},
        {"liveItemDO": {"itemId": "600000000002", "itemName": "球", "itemPrice": "9.90",
                        "extendVal": {"buyCount": "12"}}},
    ]  # fmt: skip
    url = _gateway(
        "mtop.mediaplatform.video.livedetail.itemlist.withpagination",
        "2.0",
        {"liveId": "523417747786", "creatorId": "1", "n": 20, "groupNum": 1},
    )
    first, snap1, second, snap2 = pages.parse(_shelf(items), url=url, fetched_at=T0)
    assert isinstance(first, Product) and isinstance(snap1, ProductSnapshot)
    assert (first.price, first.sales, first.sales_text, first.sales_is_lower_bound) == (99.0, 1000, "1000+", True)
    assert (first.category, first.image_url) == ("50012940", "https://gw.alicdn.com/a.jpg")
    assert (snap1.room_id, snap1.rank_in_room, snap1.price, snap1.sales) == ("523417747786", 2, 99.0, 1000)
    # No shelf number: the position on the page, after the 20 items of page 0.
    assert (second.sales, second.sales_text, snap2.rank_in_room) == (12, None, 22)


def test_shelf_item_without_id_names_the_path() -> None:
    items = [{"liveItemDO": {"itemId": "600000000001", "itemName": "a"}}, {"liveItemDO": {"itemName": "b"}}]
    with pytest.raises(PermanentPageError, match="ValidationError: product_id: Field required"):
        pages.parse(_shelf(items), fetched_at=T0, kind="item_list")


def test_bad_price_names_the_path() -> None:
    payload = _payload(SHELF)
    payload[3]["goodsList"][0]["itemPrice"] = "面议"
    with pytest.raises(PermanentPageError, match=r"data\.3\.goodsList\.0\.itemPrice: not a price"):
        pages.parse(_body(payload), fetched_at=T0, kind="item_list")


def test_api_stack_value_truncated_is_permanent() -> None:
    payload = _payload(WDETAIL)
    value = payload["data"]["apiStack"][0]["value"]
    payload["data"]["apiStack"][0]["value"] = value[: len(value) // 2]
    with pytest.raises(PermanentPageError, match=r"malformed JSON in data\.apiStack\.0\.value"):
        pages.parse(_body(payload), fetched_at=T0, kind="item_detail")


@pytest.mark.parametrize(
    ("sell_count", "expected"),
    [
        ("月销1000+", (None, None, None)),  # rolling: sales_30d (tests/test_unit_product_sales.py)
        ("已售1.2万", (12000, "已售1.2万", False)),
        ("2000+人付款", (2000, "2000+人付款", True)),
        ("105", (105, None, False)),  # a plain number is exact
        (None, (None, None, None)),  # hidden (sellCountAntiCreep): None, never 0
    ],
)
def test_item_detail_sales_texts(sell_count: str | None, expected: tuple[Any, ...]) -> None:
    payload = _payload(PROCESSED)
    item = payload["data"]["apiStack"][0]["value"]["item"]
    item.pop("vagueSellCount")
    item["sellCount"] = sell_count
    product = pages.parse(_body(payload), fetched_at=T0, kind="item_detail")[0]
    assert (product.sales, product.sales_text, product.sales_is_lower_bound) == expected


def test_price_falls_back_to_fen() -> None:
    payload = _payload(WDETAIL)
    value = json.loads(payload["data"]["apiStack"][0]["value"])
    del value["price"]["price"]["priceText"]
    payload["data"]["apiStack"][0]["value"] = json.dumps(value, ensure_ascii=False)
    assert pages.parse(_body(payload), fetched_at=T0, kind="item_detail")[0].price == 19.8  # 1980 fen


# --- the Tmall page ------------------------------------------------------------------------------------


def _tmall_html(detail: str, mdskip: str) -> bytes:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>商品详情-tmall.com天猫</title></head><body>'
        f'<div id="s-showcase"></div><script>var _DATA_Detail = {detail};\n</script>'
        f"<script>var _DATA_Mdskip = {mdskip}  ;</script></body></html>"
    ).encode()


def test_tmall_page_reads_both_objects_and_merges() -> None:
    pair = BY_ID[PAIR]
    detail, mdskip = (path.read_text(encoding="utf-8") for path in pair.input_paths)
    url = "https://detail.m.tmall.com/item.htm?id=583789686010"
    records = pages.parse(_tmall_html(detail, mdskip), url=url, fetched_at=T0)
    expected = [{**record, "source_url": url} for record in pair.expected]
    for record in expected:
        record.pop("fetched_at" if record["type"] == "product_snapshot" else "", None)
    assert _dicts(records) == expected
    # Without a URL the page is still recognised by its scripts.
    assert len(pages.parse(_tmall_html(detail, mdskip), fetched_at=T0)) == 2


@pytest.mark.parametrize(
    ("html", "error", "reason"),
    [
        (PUNISH, BlockedError, "punish"),
        ("<html><body><p>很抱歉，您查看的宝贝不存在，可能已下架或者被转移。</p></body></html>", GoneError, "not exist"),
        ("<html><body>Hello</body></html>", PermanentPageError, "no _DATA_Detail or _DATA_Mdskip"),
        ('<script>var _DATA_Detail = {"item": {"itemId": 1,</script>', PermanentPageError, "malformed JSON in"),
    ],
)
def test_tmall_page_errors(html: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as raised:
        pages.parse(html.encode(), url="https://detail.m.tmall.com/item.htm?id=1", fetched_at=T0)
    assert type(raised.value) is error and reason in raised.value.reason


# --- kinds: by URL, by shape -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (f"{H5}/mtop.mediaplatform.live.livedetail/4.0/?data=%7B%7D", "live_detail"),
        ("http://127.0.0.1:9/h5api.m.taobao.com/h5/mtop.mediaplatform.live.livedetail/4.0/", "live_detail"),
        (f"{H5}/mtop.mediaplatform.live.pulltopicstat/1.0/", "live_stats"),
        (f"{H5}/mtop.taobao.powermsg.h5.msg.pulltopicstat/1.0/", "live_stats"),
        (f"{H5}/mtop.mediaplatform.video.livedetail.itemlist.withpagination/2.0/", "item_list"),
        (f"{H5}/mtop.mediaplatform.video.livedetail.itemlist/1.0/", "item_list"),
        ("https://acs.m.taobao.com/gw/mtop.mediaplatform.video.livedetail.itemlist.withpaginationv5/1.0/", "item_list"),
        (f"{H5}/mtop.taobao.detail.getdetail/6.0/?data=%7B%22itemNumId%22%3A%221%22%7D", "item_detail"),
        (f"{H5}/mtop.taobao.idlemtopsearch.pc.search/1.0/", "xianyu_search"),
        ("https://alive-interact.alicdn.com/livedetail/common/523417747786", "live_detail"),
        ("http://127.0.0.1:9/alive-interact.alicdn.com/livedetail/common/523417747786", "live_detail"),
        ("https://detail.m.tmall.com/item.htm?id=583789686010", "tmall_page"),
        ("https://mdskip.m.tmall.com/mobile/queryH5Detail.htm?itemId=1", "tmall_mdskip"),
        (f"{H5}/mtop.user.getusersimple/1.0/", None),
        ("https://tbzb.taobao.com/live?liveId=1", None),
        ("", None),
        (None, None),
    ],
)
def test_kind_from_url(url: str | None, kind: str | None) -> None:
    assert kind_from_url(url) == kind


def test_request_data() -> None:
    assert request_data(_gateway("x", "1.0", {"liveId": "7", "n": 20})) == {"liveId": "7", "n": 20}
    assert request_data(f"{H5}/x/1.0/?data=%5B1%5D") == {}
    assert request_data(f"{H5}/x/1.0/?data=%7B") == {}
    assert request_data(f"{H5}/x/1.0/") == {} == request_data(None)


@pytest.mark.parametrize("case", [c for c in VALID if c.url], ids=lambda c: c.id)
def test_kind_from_fixture_url(case: Case) -> None:
    assert kind_from_url(case.url) == case.kind


@pytest.mark.parametrize("case", SINGLE, ids=lambda c: c.id)
def test_detect_each_kind_without_url(case: Case) -> None:
    assert detect(json.loads(case.body)) == case.kind


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_parse_without_kind_matches_fixture(case: Case) -> None:
    assert _dicts(run(case, with_kind=False)) == case.expected


def test_pair_merges_like_the_cli() -> None:
    pair = BY_ID[PAIR]
    detail, mdskip = (path.read_bytes() for path in pair.input_paths)
    records = merge_records(
        pages.PARSERS["tmall_detail"](detail, fetched_at=T0) + pages.PARSERS["tmall_mdskip"](mdskip, fetched_at=T0)
    )
    assert _dicts(records) == pair.expected


# --- robustness: drifted payloads ---------------------------------------------------------------------

# Keys that carry a record's identity, and the mtop envelope itself.
ID_KEYS = frozenset({"liveId", "accountId", "itemId", "id", "ret", "api", "v", "data"})
PRIMARY = {"room": Room, "product": Product}
ROBUST = [case for case in SINGLE if case.expected]


def _count(records: list[Any], case: Case) -> int:
    primary = PRIMARY[case.expected[0]["type"]]
    return sum(isinstance(r, primary) for r in records)


@pytest.mark.parametrize("case", ROBUST, ids=lambda c: c.id)
def test_dropping_or_nulling_any_optional_leaf_keeps_the_records(case: Case) -> None:
    payload = json.loads(case.body)
    expected = sum(1 for r in case.expected if r["type"] == case.expected[0]["type"])
    problems = []
    for path in _key_paths(payload):
        parent, key = _at(payload, path[:-1]), path[-1]
        if key in ID_KEYS or isinstance(parent[key], dict | list):
            continue
        for drop in (True, False):
            mutated = copy.deepcopy(payload)
            target = _at(mutated, path[:-1])
            if drop:
                del target[key]
            else:
                target[key] = None
            try:
                records = pages.parse(_body(mutated), url=case.url, fetched_at=T0, kind=case.kind)
            except PermanentPageError as exc:
                problems.append(f"{path} {'dropped' if drop else 'null'}: {exc.reason}")
                continue
            if _count(records, case) != expected:
                problems.append(f"{path}: {_count(records, case)} records instead of {expected}")
    assert not problems


def _add_unknown_keys(obj: Any) -> None:
    if isinstance(obj, dict):
        for value in list(obj.values()):
            _add_unknown_keys(value)
        if obj and not all(key.isdigit() for key in obj):
            obj["x_new_field"] = {"nested": [1, "two", None], "price": "not a price"}
    elif isinstance(obj, list):
        for value in obj:
            _add_unknown_keys(value)


@pytest.mark.parametrize("case", [c for c in SINGLE if c.kind != "xianyu_search"], ids=lambda c: c.id)
def test_unknown_keys_change_nothing(case: Case) -> None:
    payload = json.loads(case.body)
    _add_unknown_keys(payload)
    records = pages.parse(_body(payload), url=case.url, fetched_at=case.fetched_at, kind=case.kind)
    assert _dicts(records) == case.expected
