"""The shared Redis queue against a real Redis: two workers' schedulers share one crawl."""

from __future__ import annotations

import json

import pytest
import scrapy
from scrapy.utils.test import get_crawler

from crawlers.queue.keys import SpiderKeys
from crawlers.queue.scheduler import RedisScheduler
from crawlers.queue.seeds import push_seeds


class _Spider(scrapy.Spider):
    name = "qtest"

    def parse_page(self, response):  # pragma: no cover - referenced by name only
        pass


def _scheduler(redis_server, prefix: str = "lftest", prefetch: int = 4) -> tuple[RedisScheduler, _Spider]:
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": prefix,
                                    "LIVEFLEET_PREFETCH": prefetch})
    spider = _Spider()
    spider.crawler = crawler
    crawler.spider = spider
    scheduler = RedisScheduler.from_crawler(crawler)
    scheduler.open(spider)
    return scheduler, spider


def _req(spider: _Spider, n: int, priority: int = 0) -> scrapy.Request:
    return scrapy.Request(f"https://example.test/page/{n}", callback=spider.parse_page, priority=priority,
                          meta={"download_slot": "bilibili", "livefleet": {"kind": "x", "n": n}})


@pytest.fixture
def keys(redis_client):
    return SpiderKeys("lftest", "qtest")


def test_two_workers_share_one_queue_and_never_get_the_same_request(redis_server, redis_client, keys):
    a, spider_a = _scheduler(redis_server)
    b, spider_b = _scheduler(redis_server)
    # Both workers discover the same 100 pages: each is queued once.
    queued = [a.enqueue_request(_req(spider_a, n)) for n in range(100)]
    queued += [b.enqueue_request(_req(spider_b, n)) for n in range(100)]
    assert sum(queued) == 100
    assert redis_client.zcard(keys.requests) == 100
    seen: list[str] = []
    while True:
        got = [s.next_request() for s in (a, b)]
        if not any(got):
            break
        seen += [r.url for r in got if r is not None]
    assert len(seen) == 100 and len(set(seen)) == 100
    assert a.crawler.stats.get_value("livefleet/queue/duplicate") is None
    assert b.crawler.stats.get_value("livefleet/queue/duplicate") == 100


def test_priority_first_then_arrival_order(redis_server, keys):
    scheduler, spider = _scheduler(redis_server, prefetch=1)
    for n in range(5):
        scheduler.enqueue_request(_req(spider, n, priority=0))
    for n in range(5, 8):
        scheduler.enqueue_request(_req(spider, n, priority=10))
    order = [scheduler.next_request().meta["livefleet"]["n"] for _ in range(8)]
    assert order == [5, 6, 7, 0, 1, 2, 3, 4]


def test_requests_travel_as_json_under_our_prefix(redis_server, redis_client, keys):
    scheduler, spider = _scheduler(redis_server)
    scheduler.enqueue_request(_req(spider, 1))
    assert set(redis_client.keys("lftest:*")) >= {keys.requests.encode(), keys.dupefilter.encode()}
    (payload, _), = redis_client.zrange(keys.requests, 0, 0, withscores=True)
    assert json.loads(payload)["url"] == "https://example.test/page/1"


def test_a_worker_stopping_returns_its_prefetch_and_deletes_nothing(redis_server, redis_client, keys):
    scheduler, spider = _scheduler(redis_server, prefetch=4)
    for n in range(6):
        scheduler.enqueue_request(_req(spider, n))
    first = scheduler.next_request()  # takes 4 from Redis, hands out 1
    assert redis_client.zcard(keys.requests) == 2
    scheduler.close("shutdown")
    assert redis_client.zcard(keys.requests) == 5  # 3 unstarted came back; `first` is in flight
    assert redis_client.scard(keys.dupefilter) == 6  # the seen-set is the fleet's: kept
    other, other_spider = _scheduler(redis_server)
    rest = []
    while (r := other.next_request()) is not None:
        rest.append(r.meta["livefleet"]["n"])
    assert sorted(rest + [first.meta["livefleet"]["n"]]) == list(range(6))


def test_seen_set_expires_so_a_later_crawl_can_revisit(redis_server, redis_client, keys):
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": "lftest",
                                    "LIVEFLEET_SEEN_TTL_SECONDS": 3600})
    spider = _Spider()
    spider.crawler = crawler
    scheduler = RedisScheduler.from_crawler(crawler)
    scheduler.open(spider)
    scheduler.enqueue_request(_req(spider, 1))
    assert 3500 < redis_client.ttl(keys.dupefilter) <= 3600


def test_seeds_are_json_in_a_list(redis_client, keys):
    assert push_seeds(redis_client, keys, [{"kind": "area", "parent_area_id": 2}, {"kind": "areas"}]) == 2
    assert [json.loads(x) for x in redis_client.lrange(keys.seeds, 0, -1)] == [
        {"kind": "area", "parent_area_id": 2}, {"kind": "areas"}]
