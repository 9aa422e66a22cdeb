"""Requests go over Redis as JSON and come back equal."""

import json

import pytest
import scrapy
from scrapy.utils.request import request_from_dict

from crawlers.queue import serialize


class _Spider(scrapy.Spider):
    name = "s"

    def parse_page(self, response):  # pragma: no cover - only referenced by name
        pass


def test_request_round_trips_through_json():
    spider = _Spider()
    request = scrapy.Request(
        "https://api.live.bilibili.com/room/v1/Room/get_info?room_id=1",
        method="POST",
        body=b"\x00\xffbinary",
        headers={"Referer": "https://live.bilibili.com/1", "X-Bytes": b"\xe4\xb8\xad"},
        cookies={"buvid3": "abc"},
        meta={"download_slot": "bilibili", "livefleet": {"kind": "room_info", "follow": ["rooms"]}},
        priority=7,
        callback=spider.parse_page,
        dont_filter=True,
    )
    wire = serialize.dumps(request.to_dict(spider=spider))
    assert isinstance(json.loads(wire), dict)  # it really is JSON
    back = request_from_dict(serialize.loads(wire), spider=spider)
    assert back.url == request.url
    assert back.body == request.body
    assert back.headers.getlist("X-Bytes") == [b"\xe4\xb8\xad"]
    assert back.meta == request.meta
    assert back.priority == 7 and back.dont_filter
    assert back.callback == spider.parse_page
    assert back.cookies == {"buvid3": "abc"}


def test_markers_do_not_collide_with_ordinary_dicts():
    value = {"$b": "not base64 because there is a second key", "x": 1}
    assert serialize.loads(serialize.dumps(value)) == value


def test_non_json_meta_is_refused_at_push_time():
    with pytest.raises(TypeError):
        serialize.dumps({"meta": {"when": object()}})
