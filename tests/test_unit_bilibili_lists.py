"""The web's area lists (``xlive/web-interface/v1/second/getList``, ``getListByArea``) answer
``data{list[], has_more}`` of the room items getRoomList answers bare: the same parser reads them,
recognised by URL or by content. No real capture of these was found (PLATFORMS.md 4.2 documents
the shape from dart_simple_live): the items here are the real getRoomList fixture's, wrapped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from spiders.bilibili import pages
from spiders.bilibili.detect import detect, kind_from_url
from tests.fixture_cases import iter_cases

T0 = datetime(2024, 1, 1, tzinfo=UTC)
(CASE,) = [c for c in iter_cases(platform="bilibili") if c.kind == "area_room_list"]


def test_wrapped_list_parses_as_the_bare_one() -> None:
    bare = json.loads(CASE.body)
    wrapped = {"code": 0, "message": "0", "ttl": 1, "data": {"has_more": 1, "list": bare["data"]}}
    assert detect(wrapped) == "area_room_list"
    body = json.dumps(wrapped, ensure_ascii=False).encode()
    by_content = pages.parse(body, fetched_at=T0)
    by_url = pages.parse(body, url="https://api.live.bilibili.com/xlive/web-interface/v1/second/getList?"
                         "platform=web&parent_area_id=2&area_id=0&page=1", fetched_at=T0)
    expected = pages.parse(CASE.body, fetched_at=T0)
    assert [r.model_dump(exclude={"source_url"}) for r in by_content] == [
        r.model_dump(exclude={"source_url"}) for r in expected]
    assert len(by_url) == len(expected)


def test_list_urls() -> None:
    for path in ("/xlive/web-interface/v1/second/getList", "/xlive/web-interface/v1/second/getListByArea",
                 "/room/v1/Area/getRoomList"):
        assert kind_from_url(f"https://api.live.bilibili.com{path}?page=1") == "area_room_list"
    assert kind_from_url("https://api.bilibili.com/x/space/wbi/acc/info?mid=2") == "acc_info"
    assert kind_from_url("https://api.bilibili.com/x/space/acc/info?mid=2") == "acc_info"
    assert kind_from_url("https://api.bilibili.com/x/relation/stat?vmid=2") == "relation_stat"
    assert kind_from_url("https://api.bilibili.com/x/web-interface/nav") == "nav"
