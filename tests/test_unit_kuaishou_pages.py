"""Hand-written tests of the Kuaishou parsers: blocks, errors, detection, robustness.

The field-by-field expectations on the real payloads are generated from the fixture tree
(test_unit_parsers.py). Kinds with no real capture in the shared fixtures (the room page,
livedetail, web userinfo, lists, the 小店 item APIs) are tested here on payloads built from
the documented field lists (docs/kuaishou_formats.md), and end to end against the sandbox
in test_integration_sandbox_kuaishou.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from models.entities import Product, ProductSnapshot, Room, RoomSnapshot, Streamer
from models.errors import BlockedError, GoneError, PermanentPageError, RetryablePageError, UnknownPayloadError
from spiders.kuaishou import pages
from spiders.kuaishou.detect import KINDS, detect, kind_from_url
from spiders.kuaishou.state import initial_state
from tests.fixture_cases import iter_cases, run

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LIVE = "https://live.kuaishou.com"
CASES = iter_cases(platform="kuaishou")
VALID = [case for case in CASES if not case.is_error]

AUTHOR = {
    "id": "3x59tkbj2kecvgi", "name": "紫霞", "description": "每晚八点", "avatar": "https://p2.a.yximgs.com/a.jpg",
    "living": True, "originUserId": 932369500,
    "verifiedStatus": {"verified": True, "description": "快手游戏主播", "type": 1, "new": False, "iconUrl": ""},
    "counts": {"fan": "1.2万", "follow": "830", "photo": 387},
}  # fmt: skip
ITEM = {
    "liveStream": {"id": "4SLhBtIwqZ4", "caption": "等你来", "poster": "https://live2.yximgs.com/p", "type": "live"},
    "author": AUTHOR,
    "gameInfo": {"id": "22008", "name": "和平精英", "watchingCount": "2.7万"},
    "isLiving": True,
    "config": {"likeCount": "1.5万", "startTime": 1626772402219},
}  # fmt: skip


def _page(item: Any, *, undefined: bool = True, old: bool = False) -> bytes:
    room = item if old else {"activeIndex": 0, "playList": [item] if item is not None else [], "loading": False}
    literal = json.dumps({"liveroom": {**room, "authToken": "@U@"}, "s": "含括号 } 的串};"}, ensure_ascii=False)
    literal = literal.replace('"@U@"', "undefined" if undefined else "null")
    tail = ";(function(){var s;(s=document.currentScript).parentNode.removeChild(s);}());"
    return (
        f"<!DOCTYPE html><html><body><script>window.__INITIAL_STATE__={literal}{tail}</script></body></html>".encode()
    )


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def test_every_kind_has_a_parser_and_url_kinds_resolve_with_the_sandbox_prefix() -> None:
    assert set(pages.PARSERS) == set(KINDS)
    assert {case.kind for case in VALID} >= {"profile", "search_users", "feed_profile", "follow_living"}
    for url, kind in [
        (f"{LIVE}/u/3x59tkbj2kecvgi", "live_page"),
        ("http://127.0.0.1:1/live.kuaishou.com/u/KPL704668133", "live_page"),
        (f"{LIVE}/live_api/liveroom/livedetail?principalId=x", "live_detail"),
        ("http://127.0.0.1:1/live.kuaishou.com//live_api/liveroom/livedetail?principalId=x", "live_detail"),
        (f"{LIVE}/live_api/baseuser/userinfo/byid?principalId=x", "profile"),
        (f"{LIVE}/live_api/category/data?type=4", "category_list"),
        (f"{LIVE}/live_api/gameboard/list?gameId=1000", "category_rooms"),
        (f"{LIVE}/live_api/non-gameboard/list?gameId=1000005", "category_rooms"),
        ("https://openapi.kwaixiaodian.com/open/item/list/get?method=open.item.list.get", "shelf"),
        ("http://127.0.0.1:1/openapi.kwaixiaodian.com/open/item/get", "product_detail"),
        ("https://v.m.chenzhongtech.com/rest/wd/ugH5App/recommend/photos", "recommend_photos"),
        (f"{LIVE}/m_graphql", None),
        (None, None),
    ]:
        assert kind_from_url(url) == kind, url


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_real_payloads_parse_the_same_without_kind_or_url(case: Any) -> None:
    expected = [r.to_json_dict() for r in run(case)]
    assert [r.to_json_dict() for r in run(case, with_kind=False)] == expected
    without_url = [{k: v for k, v in r.items() if k != "source_url"} for r in expected]
    assert [r.to_json_dict() for r in run(case, with_kind=False, with_url=False)] == without_url


# --- the room page -----------------------------------------------------------------------------------
def test_room_page_live_item() -> None:
    room, snap, streamer = pages.parse(_page(ITEM), url=f"{LIVE}/u/3x59tkbj2kecvgi", fetched_at=T0)
    # The identity rule (records.py): keyed by the numeric user id; the URL's principalId is web_rid.
    assert isinstance(room, Room) and room.room_id == room.streamer_id == "932369500"
    assert room.web_rid == "3x59tkbj2kecvgi"
    assert (room.status, room.title, room.category) == ("live", "等你来", "和平精英")
    assert (room.viewers_now, room.viewers_now_text, room.likes, room.likes_text) == (27000, "2.7万", 15000, "1.5万")
    assert room.started_at == datetime(2021, 7, 20, 9, 13, 22, 219000, tzinfo=UTC)
    assert isinstance(snap, RoomSnapshot) and (snap.viewers_now, snap.likes, snap.status) == (27000, 15000, "live")
    assert isinstance(streamer, Streamer) and streamer.streamer_id == "932369500" and streamer.is_live is True
    assert (streamer.sec_id, streamer.handle, streamer.room_id) == (None, None, "932369500")  # author.id may be an eid
    assert (streamer.followers, streamer.followers_text, streamer.following, streamer.works_count) == (
        12000,
        "1.2万",
        830,
        387,
    )
    assert (streamer.verified, streamer.verify_text, streamer.bio) == (True, "快手游戏主播", "每晚八点")


def test_room_page_offline_item_keeps_no_counts_and_keys_by_author_not_url() -> None:
    item = {
        "liveStream": {"id": "", "playUrls": {}},
        "author": AUTHOR,
        "gameInfo": {"watchingCount": "9"},
        "isLiving": False,
    }
    room, snap, _ = pages.parse(_page(item), url=f"{LIVE}/u/eid-form", fetched_at=T0)
    assert (room.room_id, room.status, room.viewers_now, snap.status) == ("932369500", "offline", None, "offline")
    assert room.web_rid == "3x59tkbj2kecvgi"


def test_room_page_older_shape_and_no_undefined() -> None:
    old = {
        "errorType": {"type": 1},
        "isLiving": True,
        "liveStream": {"type": "live", "caption": "老页面"},
        "author": AUTHOR,
    }
    room = pages.parse(_page(old, old=True, undefined=False), url=f"{LIVE}/u/x", fetched_at=T0)[0]
    assert (room.title, room.status) == ("老页面", "live")


@pytest.mark.parametrize(
    ("error_type", "exc"),
    [(2, BlockedError), (31, BlockedError), (400002, BlockedError), (22, GoneError)],
)
def test_room_page_error_types(error_type: int, exc: type[Exception]) -> None:
    item = {"liveStream": {}, "author": {}, "isLiving": False, "errorType": {"type": error_type, "title": "t"}}
    with pytest.raises(exc) as raised:
        pages.parse(_page(item), url=f"{LIVE}/u/x", fetched_at=T0)
    assert type(raised.value) is exc and raised.value.platform == "kuaishou"


def test_room_page_refusals_and_broken_pages() -> None:
    with pytest.raises(BlockedError):
        pages.parse(_page(None), url=f"{LIVE}/u/x", fetched_at=T0)  # empty playList
    with pytest.raises(BlockedError):
        pages.parse(
            b"<html><title>\xe5\xae\x89\xe5\x85\xa8\xe9\xaa\x8c\xe8\xaf\x81</title></html>",
            url=f"{LIVE}/u/x",
            fetched_at=T0,
        )
    with pytest.raises(GoneError):
        pages.parse("<html><body>错误代码22</body></html>".encode(), url=f"{LIVE}/u/x", fetched_at=T0)
    with pytest.raises(RetryablePageError):
        pages.parse(b"  ", url=f"{LIVE}/u/x", fetched_at=T0)
    with pytest.raises(PermanentPageError, match="cut short"):
        pages.parse(_page(ITEM)[:300], url=f"{LIVE}/u/x", fetched_at=T0)
    with pytest.raises(PermanentPageError, match="no window.__INITIAL_STATE__"):
        pages.parse(b"<html><body>hello</body></html>", url=f"{LIVE}/u/x", fetched_at=T0)


def test_state_extraction_skips_braces_and_undefined_inside_strings() -> None:
    html = '<script>window.__INITIAL_STATE__={"a":"x} undefined {",\'b\':undefined,"c":{"d":undefined}};'
    with pytest.raises(PermanentPageError):  # single quotes are JavaScript, not JSON
        initial_state(html, url=None)
    html = '<script>window.__INITIAL_STATE__={"a":"x} undefined {","b":undefined,"c":{"d":[undefined]}};'
    assert initial_state(html, url=None) == {"a": "x} undefined {", "b": None, "c": {"d": [None]}}


# --- livedetail, userinfo, lists -------------------------------------------------------------------
DETAIL_URL = f"{LIVE}/live_api/liveroom/livedetail?principalId=KPL704668133"


def test_livedetail_ok_and_not_live() -> None:
    data = {k: v for k, v in ITEM.items() if k != "isLiving"}
    records = pages.parse(_json({"data": {"result": 1, **data, "websocketInfo": {}}}), url=DETAIL_URL, fetched_at=T0)
    assert [r.kind for r in records] == ["room", "room_snapshot", "streamer"] and records[0].status == "live"
    for code in (671, 677):  # names no user id: a lead back to the room, nothing stored
        (lead,) = pages.parse(_json({"data": {"result": code}}), url=DETAIL_URL, fetched_at=T0)
        assert (lead.kind, lead.collection, lead.principal_id, lead.is_live) == ("lead", "", "KPL704668133", False)
    assert pages.parse(_json({"data": {"result": 671}}), url=None, fetched_at=T0, kind="live_detail") == []


@pytest.mark.parametrize(
    ("result", "exc"),
    [(2, BlockedError), (400002, BlockedError), (22, GoneError), (50, PermanentPageError)],
)
def test_live_api_result_codes(result: int, exc: type[Exception]) -> None:
    for url in (DETAIL_URL, f"{LIVE}/live_api/baseuser/userinfo/byid?principalId=x", f"{LIVE}/live_api/gameboard/list"):
        with pytest.raises(exc) as raised:
            pages.parse(_json({"data": {"result": result}}), url=url, fetched_at=T0)
        assert type(raised.value) is exc
    if exc is BlockedError:
        assert raised.value.code == result


def test_livedetail_missing_result_and_data_are_permanent() -> None:
    with pytest.raises(PermanentPageError, match="data.result missing"):
        pages.parse(_json({"data": {"liveStream": {}}}), url=DETAIL_URL, fetched_at=T0)
    with pytest.raises(PermanentPageError, match="data missing"):
        pages.parse(_json({"result": 1}), url=DETAIL_URL, fetched_at=T0)


def test_web_userinfo_profile() -> None:
    url = f"{LIVE}/live_api/baseuser/userinfo/byid?principalId=3x59tkbj2kecvgi"
    (streamer,) = pages.parse(_json({"data": {"result": 1, "userInfo": AUTHOR}}), url=url, fetched_at=T0)
    expected = ("932369500", 12000, True, None)
    assert (streamer.streamer_id, streamer.followers, streamer.is_live, streamer.sec_id) == expected
    no_uid = {k: v for k, v in AUTHOR.items() if k != "originUserId"}
    (lead,) = pages.parse(_json({"data": {"result": 1, "userInfo": no_uid}}), url=url, fetched_at=T0)
    assert (lead.principal_id, lead.is_live) == ("3x59tkbj2kecvgi", True)
    with pytest.raises(GoneError):
        pages.parse(_json({"data": {"result": 21}}), url=url, fetched_at=T0)


def test_category_rooms_and_categories() -> None:
    item = {"id": "4SLhBtIwqZ4", "caption": "上分", "poster": "https://p/1", "living": True, "watchingCount": "1638",
            "author": {"id": "KPL704668133", "name": "KPL", "avatar": "https://a/1"}}  # fmt: skip
    url = f"{LIVE}/live_api/gameboard/list?filterType=0&page=1&pageSize=20&gameId=1000"
    # author{id, name, avatar} names no user id: a lead to the room, nothing keyed by principalId
    (lead,) = pages.parse(_json({"data": {"list": [item], "hasMore": False}}), url=url, fetched_at=T0)
    assert (lead.principal_id, lead.is_live, lead.collection) == ("KPL704668133", True, "")
    # hot/list items whose author carries originUserId give the room, keyed by it
    hot = {**item, "author": {**item["author"], "originUserId": 704668133}}
    room, snap, streamer = pages.parse(_json({"data": {"list": [hot], "hasMore": False}}), url=url, fetched_at=T0)
    assert (room.room_id, room.web_rid) == ("704668133", "KPL704668133")
    assert (room.viewers_now, room.viewers_now_text) == (1638, None)
    assert (room.status, snap.status) == ("live", "live")
    assert (streamer.nickname, streamer.room_id, streamer.is_live) == ("KPL", "704668133", True)
    del item["author"]
    with pytest.raises(PermanentPageError, match="data.list.0.author.id missing"):
        pages.parse(_json({"data": {"list": [item]}}), url=url, fetched_at=T0)
    cats = {"data": {"list": [{"id": "22008", "name": "和平精英", "poster": "https://p/c"}], "hasMore": True}}
    (cat,) = pages.parse(_json(cats), url=f"{LIVE}/live_api/category/data?type=4&page=1&pageSize=20", fetched_at=T0)
    assert (cat.category_id, cat.name, cat.parent_type, cat.collection) == ("22008", "和平精英", "4", "")


# --- 小店 item APIs ---------------------------------------------------------------------------------
def _open(data: Any, result: int = 1) -> bytes:
    return _json({"result": result, "msg": "", "error_msg": "" if result == 1 else "bad token", "data": data})


def test_shelf_and_product_detail_convert_fen_and_volume() -> None:
    item = {"kwaiItemId": 15283495425654, "title": "保温杯", "categoryName": "家居日用", "price": 2990, "volume": 12,
            "mainImageUrl": "https://u1.ecukwai.com/i.jpg", "linkUrl": "https://x/i", "userId": 1478093654}  # fmt: skip
    url = "https://openapi.kwaixiaodian.com/open/item/list/get"
    product, snap = pages.parse(_open({"items": [item], "totalPage": 1}), url=url, fetched_at=T0)
    assert isinstance(product, Product) and isinstance(snap, ProductSnapshot)
    assert (product.product_id, product.price, product.sales, product.shop_id, product.url) == (
        "15283495425654",
        29.9,
        12,
        "1478093654",
        "https://x/i",
    )
    assert (snap.price, snap.sales, snap.room_id, snap.rank_in_room) == (29.9, 12, None, None)
    detail = {**{k: v for k, v in item.items() if k not in ("kwaiItemId", "userId")}, "itemId": 15283495425654}
    product, _ = pages.parse(_open(detail), url="https://openapi.kwaixiaodian.com/open/item/get", fetched_at=T0)
    assert (product.product_id, product.shop_id, product.category) == ("15283495425654", None, "家居日用")
    with pytest.raises(PermanentPageError, match="product_id"):
        pages.parse(_open({"items": [{"title": "x", "price": 1}]}), url=url, fetched_at=T0)
    with pytest.raises(PermanentPageError, match="Kuaishou result 0: bad token"):
        pages.parse(_open(None, result=0), url=url, fetched_at=T0)


# --- detection and unknown payloads ---------------------------------------------------------------
def test_unknown_kind_and_unknown_payload() -> None:
    with pytest.raises(UnknownPayloadError):
        pages.parse(b"{}", fetched_at=T0, kind="nope")
    with pytest.raises(UnknownPayloadError):
        pages.parse(_json({"hello": 1}), fetched_at=T0)
    assert detect({"data": {"result": 1, "liveStream": {}}}) == "live_detail"
    assert detect({"data": {"result": 1, "userInfo": {}}}) == "profile"
    assert detect({"result": 1, "data": {"items": []}}) == "shelf"
    assert detect({"data": {"list": [{"id": "1", "name": "n"}]}}) == "category_list"
    assert detect([]) is None


def test_page_is_detected_without_kind_or_url() -> None:
    assert [r.kind for r in pages.parse(_page(ITEM), fetched_at=T0)] == ["room", "room_snapshot", "streamer"]


def test_the_follow_living_list_in_either_shape():
    """``/live_api/follow/living``: the 2021 ``follow[]`` entries name the user id; the ``list[]``
    items later clients read name the author by principalId only (a lead)."""
    url = "https://live.kuaishou.com/live_api/follow/living"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    listed = {"data": {"result": 1, "list": [{"id": "4SLhBtIwqZ4", "caption": "c", "watchingCount": "1.2万",
                                                "author": {"id": "kwai1", "name": "n", "avatar": "a"}}]}}
    (lead,) = pages.parse(json.dumps(listed).encode(), url=url, fetched_at=at)
    assert (lead.kind, lead.principal_id) == ("lead", "kwai1")
    follow = {"data": {"result": 1, "follow": [{"liveStreamId": "4SLhBtIwqZ4", "caption": "c",
                                                  "user": {"user_id": 932369500, "principalId": "kwai1",
                                                           "eid": "3x59tkbj2kecvgi", "user_name": "n"}}]}}
    rooms = [r for r in pages.parse(json.dumps(follow).encode(), url=url, fetched_at=at) if r.kind == "room"]
    assert [(r.room_id, r.web_rid) for r in rooms] == [("932369500", "kwai1")]
