"""Hand-written tests of the Douyin parsers: blocks, envelopes, page formats, decisions, robustness.

The field-by-field expectations on the real payloads are generated from the fixture
tree (test_unit_parsers.py); this file covers what a fixture cannot: the answers
Douyin sends instead of data, page variants (legacy RENDER_DATA, browser-saved
pages, offline rooms), the mapping decisions on values no fixture shows, and
payloads that drift.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from models.entities import Product, ProductSnapshot, Room, RoomSnapshot, Streamer
from models.errors import (
    BlockedError,
    GoneError,
    PermanentPageError,
    RetryablePageError,
    UnknownPayloadError,
)
from spiders.douyin import pages
from spiders.douyin.detect import KINDS, detect, kind_from_url, unwrap
from tests.fixture_cases import Case, iter_cases, run
from tests.fixture_cases import key_paths as _key_paths
from tests.fixture_cases import value_at as _at

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LIVE = "https://live.douyin.com"
ENTER_URL = f"{LIVE}/webcast/room/web/enter/?aid=6383&app_name=douyin_web&live_id=1&web_rid=604946797621"
ROOM_URL = f"{LIVE}/604946797621"

CASES = iter_cases(platform="douyin")
VALID = [case for case in CASES if not case.is_error]
BY_ID = {case.id: case for case in CASES}
PAGE = BY_ID["douyin/room_page/webrid_604946797621_2023-09-22"]


def _body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _payload(case_id: str) -> Any:
    return json.loads(BY_ID[case_id].body)


def _dicts(records: list[Any]) -> list[dict[str, Any]]:
    return [record.to_json_dict() for record in records]


def test_every_kind_has_a_real_fixture() -> None:
    assert {case.kind for case in VALID} == set(KINDS)
    assert set(pages.PARSERS) == set(KINDS)


def test_fixture_inputs_are_real_or_marked() -> None:
    # Every input is a byte-for-byte copy, or its meta says it was repaired or assembled.
    for case in CASES:
        assert case.meta["source"].startswith("douyin/"), case.id
        assert case.meta.get("notes"), case.id


# --- blocks: what Douyin sends instead of data --------------------------------------------------

CAPTCHA_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>验证码中间页</title></head><body>"
    "<div id='captcha_container'><img id='captcha-verify-image' src='x.png'>"
    "<a class='secsdk_captcha_refresh'>刷新</a></div></body></html>"
)


@pytest.mark.parametrize("url", [ROOM_URL, "http://127.0.0.1:8080/live.douyin.com/604946797621", None])
def test_captcha_page_is_a_block(url: str | None) -> None:
    with pytest.raises(BlockedError, match="captcha") as raised:
        pages.parse(CAPTCHA_PAGE.encode(), url=url, fetched_at=T0)
    assert raised.value.platform == "douyin"
    assert raised.value.url == url


def test_captcha_markers_without_the_title_are_a_block() -> None:
    page = "<html><head><title>抖音直播</title></head><body><div id=\"captcha_container\"></div></body></html>"
    with pytest.raises(BlockedError):
        pages.parse(page.encode(), url=ROOM_URL, fetched_at=T0)


def test_captcha_page_where_json_was_expected_is_a_block() -> None:
    with pytest.raises(BlockedError):
        pages.parse(CAPTCHA_PAGE.encode(), url=ENTER_URL, fetched_at=T0)


def test_the_word_captcha_in_a_real_page_is_no_block() -> None:
    # The real page lists '/captcha/*' among the paths its security SDK signs.
    assert b"/captcha/*" in PAGE.body
    assert len(pages.parse(PAGE.body, url=ROOM_URL, fetched_at=T0)) == 3


@pytest.mark.parametrize("kind", [None, *KINDS])
@pytest.mark.parametrize("body", [b"", b"  \n", b"\xef\xbb\xbf", b"blocked", b" blocked\n"])
def test_empty_or_blocked_body_is_risk_control(kind: str | None, body: bytes) -> None:
    # Douyin answers an unsigned or risk-controlled request with HTTP 200 and nothing in it.
    with pytest.raises(BlockedError, match="risk-control"):
        pages.parse(body, url=ENTER_URL, fetched_at=T0, kind=kind)


@pytest.mark.parametrize(
    ("payload", "error", "code"),
    [
        ({"status_code": 10011, "status_msg": "请求太频繁，请稍后再试"}, BlockedError, 10011),
        ({"status_code": 2154, "status_msg": "", "data": {"prompts": "请完成验证"}}, BlockedError, 2154),
        ({"status_code": 4001, "status_msg": "直播间不存在"}, GoneError, None),
        ({"status_code": 2053, "status_msg": "用户不存在"}, GoneError, None),
        ({"status_code": "8", "status_msg": "访问频繁"}, BlockedError, 8),
        ({"status_code": 9, "status_msg": "系统繁忙"}, RetryablePageError, None),
        ({"status_code": 5, "status_msg": "参数错误"}, RetryablePageError, None),
        ({"st": 1, "code": 10008, "msg": "登录过期"}, RetryablePageError, None),
    ],
)
def test_non_zero_status_codes(payload: dict[str, Any], error: type[Exception], code: int | None) -> None:
    with pytest.raises(error) as raised:
        pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)
    assert type(raised.value) is error
    assert "Douyin status_code" in raised.value.reason
    if code is not None:
        assert raised.value.code == code  # type: ignore[attr-defined]


def test_status_code_that_is_not_a_number_is_permanent() -> None:
    with pytest.raises(PermanentPageError, match="envelope code is not a number"):
        pages.parse(_body({"status_code": "oops", "data": {}}), fetched_at=T0, kind="room_enter")


def test_relay_wrapper_is_unwrapped() -> None:
    case = BY_ID["douyin/room_info/app_room_6843198199583378191_ended"]
    raw = unwrap(json.loads(case.body))
    assert raw["status_code"] == 0
    assert _dicts(pages.parse(_body(raw), fetched_at=case.fetched_at, kind="room_info")) == case.expected
    # A relay's failure carries no Douyin data: the raw error inside is classified.
    wrapped = {"code": 200, "msg": "success", "data": {"status_code": 10011, "status_msg": "请求太频繁"}}
    with pytest.raises(BlockedError):
        pages.parse(_body(wrapped), fetched_at=T0, kind="room_info")


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", RetryablePageError),
        ("<html><head><title>抖音直播</title></head><body><div id='root'></div></body></html>", PermanentPageError),
    ],
    ids=["502", "shell-without-state"],
)
def test_room_page_without_state(html: str, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        pages.parse(html.encode(), url=ROOM_URL, fetched_at=T0)
    assert type(raised.value) is error


def test_malformed_json_and_bad_bytes_are_permanent() -> None:
    with pytest.raises(PermanentPageError, match="malformed JSON"):
        pages.parse(b'{"status_code": 0, "data": {', url=ENTER_URL, fetched_at=T0)
    with pytest.raises(PermanentPageError, match="not UTF-8"):
        pages.parse(b"\xff\xfe{}", url=ENTER_URL, fetched_at=T0)


# --- the room page: formats and variants ---------------------------------------------------------


def _page_text() -> str:
    return PAGE.body.decode("utf-8")


def _push_strings(text: str) -> list[str]:
    decoder = json.JSONDecoder()
    out = []
    for match in re.finditer(r"self\.__pace_f\.push\(", text):
        value, _ = decoder.raw_decode(text, text.index("[", match.end()))
        if value[0] == 1:
            out.append(value[1])
    return out


def _rechunked_page(stream: str, size: int, *, head: str = "") -> str:
    """The page's Flight stream re-pushed in chunks of ``size`` characters, as a browser saves it."""
    push = '<script nonce="n" type="text/javascript">self.__pace_f.push({});</script>'
    scripts = "".join(push.format(json.dumps([1, stream[i : i + size]])) for i in range(0, len(stream), size))
    return f"<!DOCTYPE html><html>{head}<body><div id='root'></div>{scripts}</body></html>"


@pytest.mark.parametrize("size", [7, 100, 4096, 10**7])
def test_page_saved_by_a_browser_with_other_chunking(size: int) -> None:
    # Rows split anywhere (mid-number, mid-CJK character, inside a T row), other script
    # attributes, a trailing ';', no <head>: the same records.
    stream = "".join(_push_strings(_page_text()))
    html = _rechunked_page(stream, size)
    assert _dicts(pages.parse(html.encode(), url=ROOM_URL, fetched_at=PAGE.fetched_at)) == PAGE.expected


def test_legacy_render_data_page() -> None:
    case = BY_ID["douyin/room_state/render_data_webrid_139902822326_2023-03-07"]
    decoded = json.loads(case.body)["result"]  # the tool's wrapper is not part of the page
    html = (
        "<!DOCTYPE html><html><head><title>龙十五的抖音直播间</title></head><body>"
        f'<script id="RENDER_DATA" type="application/json">{quote(json.dumps(decoded, ensure_ascii=False))}</script>'
        '<script type="text/javascript">window.x=1</script></body></html>'
    )
    url = f"{LIVE}/139902822326"
    records = _dicts(pages.parse(html.encode(), url=url, fetched_at=case.fetched_at))
    assert records == [{**record, "source_url": url} for record in case.expected]
    assert detect(html) == "room_page"


def _state_payload() -> dict[str, Any]:
    return json.loads(BY_ID["douyin/room_state/render_data_webrid_139902822326_2023-03-07"].body)


def test_offline_page_without_room_object() -> None:
    payload = _state_payload()
    info = payload["result"]["app"]["initialState"]["roomStore"]["roomInfo"]
    del info["room"]
    room, snapshot, streamer = pages.parse(_body(payload), fetched_at=T0, kind="room_state")
    assert room.model_dump(exclude_none=True) == {
        "platform": "douyin", "room_id": "7207750554766920451", "streamer_id": "85218558949",
        "web_rid": "139902822326", "status": "offline", "fetched_at": T0,
    }  # fmt: skip
    assert (snapshot.status, snapshot.viewers_now) == ("offline", None)
    assert (streamer.streamer_id, streamer.nickname, streamer.is_live) == ("85218558949", "龙十五", False)


def test_offline_page_saying_ended() -> None:
    payload = _state_payload()
    del payload["result"]["app"]["initialState"]["roomStore"]["roomInfo"]["room"]
    payload["result"]["e0b226782b4c5bc7d1a6f87a8e245e4f"]["errorPrompts"] = "直播已结束"
    room, snapshot, _ = pages.parse(_body(payload), fetched_at=T0, kind="room_state")
    assert room.status == snapshot.status == "ended"


def test_offline_page_with_only_an_anchor() -> None:
    payload = _state_payload()
    info = payload["result"]["app"]["initialState"]["roomStore"]["roomInfo"]
    for key in ("room", "roomId"):
        del info[key]
    (streamer,) = pages.parse(_body(payload), fetched_at=T0, kind="room_state")
    assert (streamer.streamer_id, streamer.is_live, streamer.room_id) == ("85218558949", False, None)


def test_page_saying_the_room_does_not_exist_is_gone() -> None:
    payload = _state_payload()
    info = payload["result"]["app"]["initialState"]["roomStore"]["roomInfo"]
    for key in ("room", "roomId", "anchor"):
        del info[key]
    payload["result"]["e0b226782b4c5bc7d1a6f87a8e245e4f"]["errorPrompts"] = "直播间不存在"
    with pytest.raises(GoneError, match="不存在"):
        pages.parse(_body(payload), fetched_at=T0, kind="room_state")


def test_viewer_data_on_the_page_is_never_read() -> None:
    # userStore.odin is the logged-in visitor; req_user / follow_status are the visitor's too.
    text = _page_text()
    assert '\\"user_id\\":\\"100774921845\\"' in text
    dumped = json.dumps(_dicts(pages.parse(PAGE.body, url=ROOM_URL, fetched_at=T0)))
    assert "100774921845" not in dumped and "7279403063450076732" not in dumped


# --- enter API -------------------------------------------------------------------------------------


def _enter() -> dict[str, Any]:
    return _payload("douyin/room_enter/tikhub_room_7542418868329827091_2025-08-25")


def test_enter_web_rid_comes_from_the_request() -> None:
    room, _, _ = pages.parse(_body(_enter()), url=ENTER_URL, fetched_at=T0)
    assert room.web_rid == "604946797621"


def test_enter_room_status_when_the_room_has_none() -> None:
    payload = _enter()
    del payload["data"]["data"][0]["status"]
    del payload["data"]["data"][0]["status_str"]
    payload["data"]["room_status"] = 2
    room, snapshot, streamer = pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)
    assert (room.status, snapshot.status, streamer.is_live) == ("ended", "ended", False)
    payload["data"]["room_status"] = "0"
    room, _, streamer = pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)
    assert (room.status, streamer.is_live) == ("live", True)


def test_enter_prompts_ended() -> None:
    payload = _enter()
    payload["data"]["data"][0].pop("status")
    payload["data"]["prompts"] = "直播已结束"
    room, _, _ = pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)
    assert room.status == "ended"


def test_enter_without_room_but_with_user() -> None:
    payload = _enter()
    payload["data"]["data"] = []
    payload["data"]["room_status"] = 2
    payload["data"]["prompts"] = "直播已结束"
    room, snapshot, streamer = pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)
    assert (room.room_id, room.status, room.web_rid) == ("7542418868329827091", "ended", "604946797621")
    assert snapshot.status == "ended"
    assert (streamer.streamer_id, streamer.is_live) == ("2809975984364120", False)


def test_enter_without_room_and_user_is_risk_control() -> None:
    payload = {"status_code": 0, "data": {"data": [], "prompts": "当前访问人数过多"}}
    with pytest.raises(BlockedError, match="risk control"):
        pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)


def test_enter_gone_prompt() -> None:
    payload = {"status_code": 0, "data": {"data": [], "prompts": "直播间不存在"}}
    with pytest.raises(GoneError):
        pages.parse(_body(payload), url=ENTER_URL, fetched_at=T0)


# --- counts, IDs, prices ---------------------------------------------------------------------------


def _room_object() -> dict[str, Any]:
    return _payload("douyin/room_object/room_7384780141332876032_2024-06-26")


@pytest.mark.parametrize(
    ("text", "value", "lower_bound"),
    [("1000+", 1000, True), ("1.2万", 12000, False), ("1万+", 10000, True), ("3603", 3603, None)],
)
def test_text_viewer_counts(text: str, value: int, lower_bound: bool | None) -> None:
    payload = _room_object()
    del payload["room_view_stats"]  # no exact count: the texts are read
    payload["stats"]["user_count_str"] = text
    room, snapshot, _ = pages.parse(_body(payload), fetched_at=T0, kind="room_object")
    assert (room.viewers_now, snapshot.viewers_now) == (value, value)
    assert room.viewers_now_is_lower_bound is lower_bound
    assert room.viewers_now_text == (text if lower_bound is not None else None)


def test_hidden_display_value_falls_back_to_text() -> None:
    payload = _room_object()
    payload["room_view_stats"]["is_hidden"] = True
    room, _, _ = pages.parse(_body(payload), fetched_at=T0, kind="room_object")
    assert (room.viewers_now, room.viewers_now_text) == (10000, "1万+")


def test_likes_text_and_placeholder_zero() -> None:
    payload = _room_object()
    room, _, _ = pages.parse(_body(payload), fetched_at=T0, kind="room_object")
    assert room.likes is None  # stats.like_count 0 is a placeholder
    payload["stats"]["like_count_str"] = "2.3万"
    room, snapshot, _ = pages.parse(_body(payload), fetched_at=T0, kind="room_object")
    assert (room.likes, room.likes_text, snapshot.likes) == (23000, "2.3万", 23000)


def test_big_ids_stay_exact_strings() -> None:
    payload = _room_object()
    del payload["id_str"]
    body = _body(payload).replace(b'"status": 2', b'"id": 7384780141332876032, "status": 2', 1)
    room, snapshot, _ = pages.parse(body, fetched_at=T0, kind="room_object")
    assert room.room_id == snapshot.room_id == "7384780141332876032"  # > 2**53, not 7384780141332876000


def test_id_str_wins_over_a_mangled_number() -> None:
    case = BY_ID["douyin/user_profile/webcast_user_cctvnews"]
    payload = json.loads(case.body)
    assert payload["data"]["data"]["own_room"]["room_ids"] == [6872336845759090000]
    (streamer,) = pages.parse(case.body, fetched_at=T0, kind="user_profile")
    assert streamer.room_id == "6872336845759089421"


def _web_shelf() -> dict[str, Any]:
    """A /live/promotions/page/ answer in the shape PLATFORMS.md documents (Jakesoso's cart_info.json)."""
    item = {
        "promotion_id": "3609608911004523625", "product_id": "3609608911004523625",
        "title": "Lexar/雷克沙ARES固态硬盘", "elastic_title": "2TB只要五百多", "cover": "https://p3.example/c.webp",
        "detail_url": "https://ecom.douyin.com/ecommerce/trade/detail/index.html?id=3609608911004523625",
        "min_price": 34900, "max_price": 64800, "regular_price": 56900, "in_stock": True, "index": 1,
        "shop_id": 48525476, "status": 2, "leaf_category": "数码存储设备",
        "campaign_info": {"price": 34900, "regular_price": 56900},
    }  # fmt: skip
    other = {**item, "product_id": "3553939119094795053", "promotion_id": "3553939119094795053", "index": 2,
             "shop_id": 777, "min_price": 1990, "regular_price": 6990, "leaf_category": ""}  # fmt: skip
    no_shop = {k: v for k, v in item.items() if k != "shop_id"} | {"product_id": "1", "index": 3}
    return {
        "next_offset": 20,
        "page_header": {"author_shop_info": {"name": "Lexar雷克沙旗舰店", "shop_id": "48525476"}},
        "promotions": [item, other, no_shop],
    }


def test_web_shelf_fen_prices_ranks_and_shop() -> None:
    url = f"{LIVE}/live/promotions/page/?room_id=7274130150554536704&author_id=1&offset=0&limit=20"
    records = pages.parse(_body(_web_shelf()), url=url, fetched_at=T0)
    products = [r for r in records if isinstance(r, Product)]
    snapshots = [r for r in records if isinstance(r, ProductSnapshot)]
    assert [(p.price, p.original_price) for p in products] == [(349.0, 569.0), (19.9, 69.9), (349.0, 569.0)]
    assert [(p.shop_id, p.shop_name) for p in products] == [
        ("48525476", "Lexar雷克沙旗舰店"),  # same shop as the header's
        ("777", None),  # another shop's goods: not the header's name
        ("48525476", "Lexar雷克沙旗舰店"),  # no shop of its own: the header's
    ]
    assert [p.sales for p in products] == [None, None, None]  # the web shelf hides sales
    assert products[0].category == "数码存储设备" and products[1].category is None
    assert products[0].url.startswith("https://ecom.douyin.com/")
    assert [(s.room_id, s.rank_in_room) for s in snapshots] == [("7274130150554536704", i) for i in (1, 2, 3)]


def test_shelf_rank_falls_back_to_position_after_offset() -> None:
    payload = _web_shelf()
    for item in payload["promotions"]:
        item["index"] = 0
    url = f"{LIVE}/live/promotions/page/?room_id=7&offset=20&limit=20"
    snapshots = [r for r in pages.parse(_body(payload), url=url, fetched_at=T0) if isinstance(r, ProductSnapshot)]
    assert [s.rank_in_room for s in snapshots] == [21, 22, 23]


@pytest.mark.parametrize(
    ("field", "value", "sales", "text", "lower_bound"),
    [
        ("sales", "已售1.2万", 12000, "已售1.2万", False),
        ("sales", "1000+", 1000, "1000+", True),
        ("sold_num", "已售 300件", 300, "已售 300件", False),
        ("sales", "300", 300, None, False),  # a plain number is exact
        ("sales", 0, 0, None, False),
        ("sale_num", 0, None, None, None),  # the app lists' "not shown"
        ("sale_num", 57, 57, None, False),
    ],
)
def test_sales_texts(field: str, value: Any, sales: int | None, text: str | None, lower_bound: bool | None) -> None:
    payload = _web_shelf()
    payload["promotions"][0][field] = value
    product, snapshot = pages.parse(_body(payload), fetched_at=T0, kind="shelf")[:2]
    assert (product.sales, product.sales_text, product.sales_is_lower_bound) == (sales, text, lower_bound)
    assert (snapshot.sales, snapshot.sales_text, snapshot.sales_is_lower_bound) == (sales, text, lower_bound)


def test_unreadable_price_names_its_path() -> None:
    payload = _web_shelf()
    payload["promotions"][1]["min_price"] = "cheap"
    with pytest.raises(PermanentPageError, match=r"promotions\.1\.min_price: not a price"):
        pages.parse(_body(payload), fetched_at=T0, kind="shelf")


def test_missing_product_id_names_its_path() -> None:
    payload = _web_shelf()
    del payload["promotions"][1]["product_id"]
    with pytest.raises(PermanentPageError, match=r"promotions\.1\.product_id: missing"):
        pages.parse(_body(payload), fetched_at=T0, kind="shelf")


def test_app_shelf_with_room_gives_current_product_and_count() -> None:
    case = BY_ID["douyin/shelf/app_promotions_list_repaired"]
    url = "https://webcast.amemv.com/x/?room_id=6872323400263797518"
    records = pages.parse(case.body, url=url, fetched_at=T0, kind="shelf")
    snapshot = records[-1]
    assert isinstance(snapshot, RoomSnapshot)
    assert (snapshot.room_id, snapshot.current_product_id, snapshot.product_count) == (
        "6872323400263797518", "3436129527946972390", 31,
    )  # fmt: skip
    assert records[1].room_id == "6872323400263797518"


def test_current_product_with_room() -> None:
    case = BY_ID["douyin/current_product/app_current_explaining_2020-11-20"]
    url = f"{LIVE}/live/promotions/pop/v3/?device_platform=webapp&aid=6383&room_id=6897142693735238407"
    product, psnap, rsnap = pages.parse(case.body, url=url, fetched_at=T0)
    assert (rsnap.room_id, rsnap.current_product_id) == ("6897142693735238407", product.product_id)
    assert psnap.room_id == "6897142693735238407" and psnap.rank_in_room is None


def test_current_product_nothing_presented() -> None:
    assert pages.parse(_body({"status_code": 0, "promotions": []}), fetched_at=T0, kind="current_product") == []


# --- people ---------------------------------------------------------------------------------------


def test_user_info_with_uid_in_url() -> None:
    case = BY_ID["douyin/user_profile/iesdouyin_user_info_without_uid"]
    url = "https://www.iesdouyin.com/web/api/v2/user/info/?sec_uid=MS4w&user_id=3523867404451693"
    (streamer,) = pages.parse(case.body, url=url, fetched_at=T0)
    assert streamer.model_dump(exclude_none=True, exclude={"avatar_url", "bio", "fetched_at"}) == {
        "platform": "douyin", "streamer_id": "3523867404451693", "source_url": url,
        "sec_id": "MS4wLjABAAAAl6JYmBWwiAwBFL_0NeoxwIjLD43oCae8gi0jeh3xRVVVHP5TPEQ2Zhut8OFZ2BSk",
        "handle": "ElephantNews", "nickname": "大象新闻", "verified": True,
        "verify_text": "河南广播电视台大象新闻官方抖音号", "followers": 27242000, "following": 1000,
        "likes_total": 2743452015, "works_count": 45761,
    }  # fmt: skip


def test_profile_live_status_and_short_id_handle() -> None:
    case = BY_ID["douyin/user_profile/app_profile_cctvnews_repaired"]
    payload = json.loads(case.body)
    user = payload["data"]["user"]
    user.update(unique_id="", short_id="653421556", live_status=0, room_id=0)
    (streamer,) = pages.parse(_body(payload), fetched_at=T0, kind="user_profile")
    assert (streamer.handle, streamer.is_live, streamer.room_id) == ("653421556", False, None)


def test_unverified_profile() -> None:
    case = BY_ID["douyin/user_profile/app_profile_cctvnews_repaired"]
    payload = json.loads(case.body)
    payload["data"]["user"].update(custom_verify="", enterprise_verify_reason="")
    (streamer,) = pages.parse(_body(payload), fetched_at=T0, kind="user_profile")
    assert (streamer.verified, streamer.verify_text) == (False, None)


def test_audience_rank_gives_a_count_only_for_a_known_room() -> None:
    case = BY_ID["douyin/audience_rank/app_yinlang_ranklist"]
    payload = json.loads(case.body)
    for rank in payload["data"]["data"]["ranks"]:
        rank["user"] = {"id": "not-an-id", "nickname": None}  # would break any parser that read viewers
    url = f"{LIVE}/webcast/ranklist/audience/?room_id=6994259511469247263&rank_type=30"
    (snapshot,) = pages.parse(_body(payload), url=url, fetched_at=T0)
    assert snapshot.model_dump(exclude_none=True) == {
        "platform": "douyin", "room_id": "6994259511469247263", "captured_at": T0, "viewers_now": 39847,
        "source_url": url,
    }  # fmt: skip
    del payload["data"]["data"]["total"]
    (snapshot,) = pages.parse(_body(payload), url=url, fetched_at=T0)
    assert snapshot.viewers_now == 30000  # user_count_desc "3万+"


def test_ws_message_naming_several_products() -> None:
    message = _payload("douyin/ws_shopping/live_shopping_message_2024-07-06")[0]
    message["updated_product_ids"] = ["1", "2"]
    records = pages.parse(_body(message), fetched_at=T0, kind="ws_shopping")
    assert [(r.product_id, r.title) for r in records] == [("1", None), ("2", None)]


# --- kinds: by URL, by shape -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://live.douyin.com/604946797621", "room_page"),
        ("https://live.douyin.com/604946797621?enter_from=web_live", "room_page"),
        ("http://127.0.0.1:8080/live.douyin.com/604946797621", "room_page"),
        (ENTER_URL, "room_enter"),
        ("http://127.0.0.1:8080/live.douyin.com/webcast/room/web/enter/?web_rid=1", "room_enter"),
        ("https://webcast.amemv.com/webcast/room/reflow/info/?room_id=1", "room_info"),
        ("https://live.douyin.com/live/promotions/page/?room_id=1", "shelf"),
        ("https://buyin.jinritemai.com/api/anchor/livepc/promotions_v2?list_type=1", "shelf"),
        ("https://live.douyin.com/live/promotions/pop/v3/?aid=6383", "current_product"),
        ("https://live.douyin.com/ecom/product/detail/saas/pc/?is_h5=1", "product_detail"),
        ("https://www.douyin.com/aweme/v1/web/user/profile/other/?sec_user_id=x", "user_profile"),
        ("http://127.0.0.1:1/www.douyin.com/aweme/v1/web/user/profile/other/", "user_profile"),
        ("https://live.douyin.com/webcast/web/partition/detail/room/v2/?count=15", "partition_rooms"),
        ("https://live.douyin.com/webcast/ranklist/audience/?room_id=1", "audience_rank"),
        ("https://live.douyin.com/Zhu.Zi.Xiao_813", "room_page"),  # a 抖音号 in place of the web_rid
        ("https://live.douyin.com/", None),
        ("https://live.douyin.com/webcast/im/fetch/", None),
        ("", None),
        (None, None),
    ],
)
def test_kind_from_url(url: str | None, kind: str | None) -> None:
    assert kind_from_url(url) == kind


@pytest.mark.parametrize("case", [c for c in CASES if c.url], ids=lambda c: c.id)
def test_kind_from_fixture_url(case: Case) -> None:
    assert kind_from_url(case.url) == case.kind


def _detectable(case: Case) -> Any:
    text = case.body.decode("utf-8-sig")
    return text if case.kind == "room_page" else json.loads(text)


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_detect_each_kind_without_url(case: Case) -> None:
    assert detect(_detectable(case)) == case.kind


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_parse_without_kind_matches_fixture(case: Case) -> None:
    assert _dicts(run(case, with_kind=False)) == case.expected


@pytest.mark.parametrize("payload", [{"status_code": 0}, {"x": 1}, [], [1, 2], {"data": None}, "x"])
def test_unknown_payload(payload: Any) -> None:
    with pytest.raises(UnknownPayloadError):
        pages.parse(_body(payload), fetched_at=T0)


def test_unknown_kind_argument() -> None:
    with pytest.raises(UnknownPayloadError, match="nope"):
        pages.parse(b"{}", fetched_at=T0, kind="nope")


def test_parsers_registry_takes_bytes() -> None:
    records = pages.PARSERS["room_page"](PAGE.body, url=ROOM_URL, fetched_at=T0)
    assert [type(r) for r in records] == [Room, RoomSnapshot, Streamer]


def test_wrong_shape_for_the_kind_is_permanent() -> None:
    with pytest.raises(PermanentPageError, match="data.data: expected a list"):
        pages.parse(_body({"status_code": 0, "data": {"data": {"id_str": "1"}}}), fetched_at=T0, kind="partition_rooms")
    with pytest.raises(PermanentPageError, match="no room state"):
        pages.parse(_body({"status_code": 0, "data": {}}), fetched_at=T0, kind="room_state")


# --- robustness: drifted real payloads -----------------------------------------------------------

# Keys that carry a record's identity: without them a record cannot be built (and must not be).
ID_KEYS = frozenset({
    "id_str", "id", "uid", "product_id", "roomId", "room_id", "room_ids_str", "room_ids", "updated_product_ids",
    "owner_user_id",
})  # fmt: skip
PRIMARY = {"room": Room, "streamer": Streamer, "product": Product, "room_snapshot": RoomSnapshot}
JSON_CASES = [case for case in VALID if case.expected and case.kind != "room_page"]
# Lists of people give no Streamer for a bare ID (nothing said about the person).
IDENTITY_CASES = [case for case in JSON_CASES if case.kind != "anchor_rank"]


def _raw(case: Case) -> tuple[Any, tuple[Any, ...]]:
    """The case's payload and the path of what to mutate in it: the raw Douyin response inside a
    relay's wrapper; for a page state, its roomStore.roomInfo (the rest is never read)."""
    payload = json.loads(case.body)
    if case.kind == "room_state":
        path = next(p for p in _key_paths(payload) if p[-2:] == ("roomStore", "roomInfo"))
        return payload, path
    return payload, (("data",) if unwrap(payload) is not payload else ())


def _primary_count(records: list[Any], case: Case) -> int:
    primary = PRIMARY[case.expected[0]["type"]]
    return sum(isinstance(r, primary) for r in records)


def _expected_primary(case: Case) -> int:
    return sum(1 for r in case.expected if r["type"] == case.expected[0]["type"])


def _parse(case: Case, payload: Any) -> list[Any]:
    return pages.parse(_body(payload), url=case.url, fetched_at=case.fetched_at, kind=case.kind)


@pytest.mark.parametrize("case", JSON_CASES, ids=lambda c: c.id)
def test_dropping_any_optional_key_keeps_the_records(case: Case) -> None:
    payload, root = _raw(case)
    problems = []
    for path in _key_paths(_at(payload, root), root):
        mutated = copy.deepcopy(payload)
        parent, key = _at(mutated, path[:-1]), path[-1]
        leaf = not isinstance(parent[key], dict | list)
        del parent[key]
        try:
            records = _parse(case, mutated)
        except PermanentPageError as exc:
            # Only losing an identity or a whole container may fail (wrong shape, named by path).
            if key not in ID_KEYS and leaf:
                problems.append(f"{path}: {exc.reason}")
            continue
        if leaf and key not in ID_KEYS and _primary_count(records, case) != _expected_primary(case):
            problems.append(f"{path}: {_primary_count(records, case)} records")
    assert not problems


@pytest.mark.parametrize("case", JSON_CASES, ids=lambda c: c.id)
def test_null_optional_values_keep_the_records(case: Case) -> None:
    payload, root = _raw(case)
    for path in _key_paths(_at(payload, root), root):
        parent = _at(payload, path[:-1])
        if path[-1] in ID_KEYS or isinstance(parent[path[-1]], dict | list):
            continue
        mutated = copy.deepcopy(payload)
        _at(mutated, path[:-1])[path[-1]] = None
        assert _primary_count(_parse(case, mutated), case) == _expected_primary(case), path


def _add_unknown_keys(obj: Any) -> None:
    if isinstance(obj, dict):
        for value in list(obj.values()):
            _add_unknown_keys(value)
        if obj and not all(key.isdigit() for key in obj):
            obj["x_new_field"] = {"nested": [1, "two", None], "status_code": "x", "roomStore": 1}
    elif isinstance(obj, list):
        for value in obj:
            _add_unknown_keys(value)


@pytest.mark.parametrize("case", [c for c in VALID if c.kind != "room_page"], ids=lambda c: c.id)
def test_unknown_keys_change_nothing(case: Case) -> None:
    payload = json.loads(case.body)
    _add_unknown_keys(payload)
    assert _dicts(_parse(case, payload)) == case.expected


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda c: c.id)
def test_only_identities_left_still_gives_records(case: Case) -> None:
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            kept = {k: strip(v) for k, v in obj.items() if k in ID_KEYS or isinstance(v, dict | list)}
            return {k: v for k, v in kept.items() if v not in ({}, [])}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    payload, root = _raw(case)
    if root:
        parent = _at(payload, root[:-1])
        parent[root[-1]] = strip(parent[root[-1]])
    else:
        payload = strip(payload)
    records = _parse(case, payload)
    types = Counter(type(r).__name__ for r in records)
    assert types[PRIMARY[case.expected[0]["type"]].__name__] >= 1
    # Nothing observed, nothing claimed: no snapshot without something it observed.
    for record in records:
        if isinstance(record, RoomSnapshot):
            observed = (record.status, record.viewers_now, record.viewers_total, record.likes,
                        record.product_count, record.current_product_id)  # fmt: skip
            assert any(value is not None for value in observed), record
