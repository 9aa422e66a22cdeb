"""What a leased page's callback output inherits (its crawl) and what it must not (its lease)."""

from __future__ import annotations

import scrapy
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from crawlers.queue.middleware import LeaseSpiderMiddleware
from spiders.meta import CRAWL_META, LEASE_META


def _page() -> TextResponse:
    request = scrapy.Request("https://example.test/list?page=1", meta={LEASE_META: "w#1", CRAWL_META: "camp"})
    return TextResponse(request.url, request=request, body=b"{}")


def _run(response, outputs):
    middleware = LeaseSpiderMiddleware.from_crawler(get_crawler(scrapy.Spider))
    return list(middleware.process_spider_output(response, outputs))


def test_new_requests_inherit_the_crawl_but_never_the_lease():
    page = _page()
    child = scrapy.Request("https://example.test/room/1", meta=dict(page.meta))  # meta copied wholesale
    own = scrapy.Request("https://example.test/room/2", meta={CRAWL_META: "other"})
    out = _run(page, [child, own, {"item": 1}])
    assert out[0].meta[CRAWL_META] == "camp" and LEASE_META not in out[0].meta
    assert out[1].meta[CRAWL_META] == "other"
    assert out[2] == {"item": 1}


def test_a_retry_of_the_same_page_keeps_the_lease_to_hand_it_on():
    page = _page()
    retry = page.request.replace(dont_filter=True)
    (out,) = _run(page, [retry])
    assert out.meta[LEASE_META] == "w#1"


def test_records_carry_the_pages_crawl_and_monitor_and_children_inherit_the_monitor():
    from datetime import UTC, datetime

    from crawlers.queue.origin import origin_of
    from models.entities import RoomSnapshot
    from spiders.meta import MONITOR_META

    page = _page()
    page.meta[MONITOR_META] = "m-7"
    snapshot = RoomSnapshot(platform="douyin", room_id="1", captured_at=datetime.now(UTC))
    shelf = scrapy.Request("https://example.test/shelf/1")
    out = _run(page, [snapshot, shelf])
    assert origin_of(out[0]) == {"crawl": "camp", "monitor": "m-7"}
    assert out[1].meta[MONITOR_META] == "m-7"
    assert origin_of(RoomSnapshot(platform="douyin", room_id="1", captured_at=datetime.now(UTC))) == {}
