"""A live Douyin streamer's profile leads to their room page, by handle (the profile names no web_rid).

The profile is the real aweme capture of 央视新闻 (live at capture time, handle
``cctvnews``), parsed by the real parser; only the fields each case is about are
changed. The spider comes from real settings (``get_crawler``), so the stat the
follow counts is read from the crawler's own stats. That the room page asked for
by handle keeps no echoed handle as its web_rid is checked end to end, in
tests/test_integration_monitor_douyin.py.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from scrapy.http import HtmlResponse, TextResponse
from scrapy.utils.test import get_crawler

from models.entities import Streamer
from spiders.douyin import pages
from spiders.douyin.spider import DEFAULT_FOLLOW, DouyinSpider
from tests.fixture_cases import iter_cases

BY_ID = {case.id: case for case in iter_cases(platform="douyin")}
PROFILE = json.loads(BY_ID["douyin/user_profile/app_profile_cctvnews_repaired"].body)
ROOM_PAGE = BY_ID["douyin/room_page/webrid_604946797621_2023-09-22"]
SEC_UID = PROFILE["data"]["user"]["sec_uid"]
NO_HANDLE = "livefleet/spider/douyin/profile_without_handle"
FETCHED_AT = datetime(2020, 9, 14, 13, 47, 52, tzinfo=UTC)


@pytest.fixture
def spider() -> DouyinSpider:
    crawler = get_crawler(DouyinSpider, {"LIVEFLEET_SANDBOX_URL": ""})
    spider = DouyinSpider.from_crawler(crawler)
    crawler.spider = spider
    return spider


def _profile(**user: Any) -> dict[str, Any]:
    payload = copy.deepcopy(PROFILE)
    payload["data"]["user"].update(user)
    return payload


def _follow(spider: DouyinSpider, payload: dict[str, Any], follow: list[str], *,
            via_room: bool = False) -> list[Any]:
    """What the spider follows from ``payload`` answered to its own profile request."""
    request = spider.profile(SEC_UID, follow, via_room=via_room)
    response = TextResponse(request.url, body=json.dumps(payload).encode(), request=request)
    records = pages.parse(response.body, url=response.url, fetched_at=FETCHED_AT, kind="user_profile")
    assert [type(r) for r in records] == [Streamer]
    return list(spider.follow(response, "user_profile", records))


def test_a_live_streamer_with_a_handle_leads_to_their_room_page(spider) -> None:
    follow = ["rooms", "products"]
    requests = _follow(spider, PROFILE, follow)
    assert len(requests) == 1
    room = requests[0]
    assert room.url == "https://live.douyin.com/cctvnews"
    context = room.meta["livefleet"]
    assert context["kind"] == "room_page" and context["follow"] == follow and context["handle"] == "cctvnews"
    assert room.meta["livefleet_render"]["wait_for"]  # rendered, as every room page
    assert room.callback == spider.parse_page
    assert spider.crawler.stats.get_value(NO_HANDLE) is None


def test_default_follow_reaches_the_room_too(spider) -> None:
    assert [r.url for r in _follow(spider, PROFILE, list(DEFAULT_FOLLOW))] == ["https://live.douyin.com/cctvnews"]


@pytest.mark.parametrize("user", [{"room_id": 0}, {"room_id": 0, "live_status": 0}], ids=["room_id_0", "status_0"])
def test_a_streamer_who_is_not_live_leads_nowhere(spider, user: dict[str, Any]) -> None:
    assert _follow(spider, _profile(**user), ["rooms", "products"]) == []


def test_without_rooms_in_follow_the_profile_leads_nowhere(spider) -> None:
    assert _follow(spider, PROFILE, ["products", "streamers"]) == []


def test_a_profile_reached_from_a_room_page_does_not_lead_back(spider) -> None:
    assert _follow(spider, PROFILE, list(DEFAULT_FOLLOW), via_room=True) == []


def test_room_pages_mark_the_profiles_they_lead_to(spider) -> None:
    """A category crawl goes list -> room page -> profile: the profile request says it came from a room."""
    request = spider.room_page("604946797621", DEFAULT_FOLLOW)
    response = HtmlResponse(request.url, body=ROOM_PAGE.body, request=request)
    records = pages.parse(response.body, url=response.url, fetched_at=FETCHED_AT, kind="room_page")
    requests = list(spider.follow(response, "room_page", records))
    profiles = [r for r in requests if r.meta["livefleet"]["kind"] == "user_profile"]
    assert profiles and all(r.meta["livefleet"].get("via_room") is True for r in profiles)
    assert "via_room" not in spider.profile(SEC_UID, DEFAULT_FOLLOW).meta["livefleet"]  # a seed's profile


def test_a_room_page_reached_by_handle_does_not_lead_back_to_the_profile(spider) -> None:
    """``crawl douyin --streamer``: profile -> room page by handle -> shelf, not the same profile again."""
    request = spider.room_page("cctvnews", DEFAULT_FOLLOW, by_handle=True)
    response = HtmlResponse(request.url, body=ROOM_PAGE.body, request=request)
    records = pages.parse(response.body, url=response.url, fetched_at=FETCHED_AT, kind="room_page")
    kinds = [r.meta["livefleet"]["kind"] for r in spider.follow(response, "room_page", records)]
    assert "shelf" in kinds and "user_profile" not in kinds


def test_a_live_streamer_without_a_handle_is_counted(spider, caplog) -> None:
    caplog.set_level("DEBUG", logger="spiders.douyin.spider")
    assert _follow(spider, _profile(unique_id=""), ["rooms", "products"]) == []
    assert spider.crawler.stats.get_value(NO_HANDLE) == 1
    assert "names no handle" in caplog.text

