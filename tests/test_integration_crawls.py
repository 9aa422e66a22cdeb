"""One crawl across the fleet: its progress, its priority, and stopping it (a campaign's cap)."""

from __future__ import annotations

import json

import pytest
import scrapy
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from crawlers.queue.crawls import crawl_progress, stop_crawl
from crawlers.queue.feeder import SeedFeeder, push_seeds
from crawlers.queue.lease_queue import LeaseQueue
from crawlers.queue.middleware import LeaseSpiderMiddleware
from crawlers.queue.scheduler import RedisScheduler
from crawlers.redis.keys import FleetKeys, SpiderKeys
from spiders.meta import CRAWL_META, PRIORITY_META

pytestmark = pytest.mark.integration

PREFIX = "lfcrawls"
SPIDER = "ctest"


class _Spider(scrapy.Spider):
    name = SPIDER

    def requests_from_seed(self, seed):
        for n in range(int(seed["n"])):
            yield scrapy.Request(f"https://example.test/{seed['kind']}/{n}", priority=5)


def _spider(redis_server, **settings) -> _Spider:
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": PREFIX,
                                    "LIVEFLEET_QUEUE_BACKGROUND": False, **settings})
    spider = _Spider()
    spider.crawler = crawler
    crawler.spider = spider
    return spider


def _queue(redis_client, redis_server) -> LeaseQueue:
    return LeaseQueue(redis_client, _spider(redis_server), SpiderKeys(PREFIX, SPIDER), worker="w")


def _push(queue: LeaseQueue, n: int, crawl: str) -> None:
    queue.push(scrapy.Request(f"https://example.test/p/{crawl}/{n}"), fingerprint=f"{crawl}-{n}", crawl=crawl)


def test_progress_counts_only_the_crawls_own_seeds_requests_pages_items_and_dead_letters(
        redis_server, redis_client):
    keys = SpiderKeys(PREFIX, SPIDER)
    queue = _queue(redis_client, redis_server)
    push_seeds(redis_client, keys, [{"kind": "a", "n": 1, "crawl": "run-1"}, {"kind": "b", "n": 1, "crawl": "run-2"},
                                    {"kind": "c", "n": 1}])
    for n in range(4):
        _push(queue, n, "run-1")
    _push(queue, 0, "run-2")
    first, second = queue.take(2)
    assert first.crawl == second.crawl == "run-1"
    queue.ack(first.lease, first.fingerprint, first.crawl)
    queue.release(second.lease, "boom", final=True)
    redis_client.hincrby(FleetKeys(PREFIX).crawl_items("run-1"), "rooms", 3)
    progress = crawl_progress(redis_client, PREFIX, [SPIDER], "run-1")
    assert progress == {"crawl": "run-1", "seeds": 1, "pending": 2, "pages": 1, "items": {"rooms": 3}, "dead": 1,
                        "stopped": False, "done": False}
    assert crawl_progress(redis_client, PREFIX, [SPIDER], "run-2")["pending"] == 1


def test_stopping_a_crawl_removes_its_seeds_and_queued_requests_and_nothing_else(redis_server, redis_client):
    keys = SpiderKeys(PREFIX, SPIDER)
    queue = _queue(redis_client, redis_server)
    push_seeds(redis_client, keys, [{"kind": "a", "n": 1, "crawl": "run-1"}, {"kind": "b", "n": 1, "crawl": "run-2"}])
    for n in range(600):  # more than one ZSCAN batch
        _push(queue, n, "run-1")
    for n in range(3):
        _push(queue, n, "run-2")
    assert stop_crawl(redis_client, PREFIX, [SPIDER], "run-1") == {"seeds": 1, "requests": 600}
    progress = crawl_progress(redis_client, PREFIX, [SPIDER], "run-1")
    assert progress["stopped"] and progress["done"] and progress["pending"] == 0
    assert [json.loads(s)["crawl"] for s in redis_client.lrange(keys.seeds, 0, -1)] == ["run-2"]
    assert {item.crawl for item in queue.take(10)} == {"run-2"}
    assert not crawl_progress(redis_client, PREFIX, [SPIDER], "run-2")["stopped"]


def test_a_request_leased_while_the_crawl_is_being_stopped_stays_pending_until_settled(redis_server, redis_client):
    """A worker may lease a request between the stop's scan of the queue and its removal (CI saw it: the
    run's recorded pages fell 2 short of the pages handled after its drain): that request is not removed,
    and its fingerprint stays counted as pending until the worker settles it."""
    queue = _queue(redis_client, redis_server)
    for n in range(3):
        _push(queue, n, "run-1")
    taken = []

    class _LeaseAfterScan:  # the real client, with another worker's lease landing right after the scan
        def __init__(self, server):
            self._server = server

        def __getattr__(self, name):
            return getattr(self._server, name)

        def zscan(self, *args, **kwargs):
            answer = self._server.zscan(*args, **kwargs)
            taken.extend(queue.take(1))
            return answer

    assert stop_crawl(_LeaseAfterScan(redis_client), PREFIX, [SPIDER], "run-1") == {"seeds": 0, "requests": 2}
    assert len(taken) == 1
    progress = crawl_progress(redis_client, PREFIX, [SPIDER], "run-1")
    assert progress["pending"] == 1 and not progress["done"] and progress["pages"] == 0
    queue.ack(taken[0].lease, taken[0].fingerprint, taken[0].crawl)  # the worker settles it (dropped or fetched)
    progress = crawl_progress(redis_client, PREFIX, [SPIDER], "run-1")
    assert progress["pending"] == 0 and progress["done"] and progress["pages"] == 1


def test_a_worker_drops_the_requests_of_a_stopped_crawl_it_already_leased_or_is_about_to_queue(
        redis_server, redis_client):
    keys = SpiderKeys(PREFIX, SPIDER)
    spider = _spider(redis_server, LIVEFLEET_PREFETCH=8)
    scheduler = RedisScheduler.from_crawler(spider.crawler)
    scheduler.open(spider)
    try:
        for n in range(3):
            scheduler.enqueue_request(scrapy.Request(f"https://example.test/s/{n}", meta={CRAWL_META: "capped"}))
        scheduler.enqueue_request(scrapy.Request("https://example.test/other", meta={CRAWL_META: "free"}))
        first = scheduler.next_request()  # takes all four on leases
        assert first.meta[CRAWL_META] == "capped" and scheduler.leased == 4
        stop_crawl(redis_client, PREFIX, [SPIDER], "capped")
        scheduler._next_stopped_check = 0.0
        scheduler._refresh_stopped()
        assert scheduler.next_request().url == "https://example.test/other"  # the two capped ones: dropped
        assert scheduler.next_request() is None
        assert not scheduler.enqueue_request(scrapy.Request("https://example.test/s/9", meta={CRAWL_META: "capped"}))
        assert redis_client.zcard(keys.leases) == 2  # the two in hand; the dropped ones were settled
        assert scheduler.stats.get_value("livefleet/queue/dropped_stopped") == 3
    finally:
        scheduler.close("finished")


def test_a_seeds_priority_is_added_to_its_requests_and_to_all_their_children(redis_server, redis_client):
    spider = _spider(redis_server)
    crawler = spider.crawler
    scheduled: list[scrapy.Request] = []
    crawler.engine = type("Engine", (), {"crawl": staticmethod(scheduled.append)})()
    feeder = SeedFeeder.from_crawler(crawler)
    push_seeds(redis_client, SpiderKeys(PREFIX, SPIDER), [{"kind": "a", "n": 2, "crawl": "camp", "priority": 100}])
    assert feeder._take_seeds(spider) == 2
    assert [r.priority for r in scheduled] == [105, 105]
    assert all(r.meta[CRAWL_META] == "camp" and r.meta[PRIORITY_META] == 100 for r in scheduled)
    page = TextResponse(scheduled[0].url, request=scheduled[0], body=b"{}")
    child = scrapy.Request("https://example.test/child", priority=1)
    retry = scheduled[0].replace(dont_filter=True)  # meta copied: the offset is not added twice
    middleware = LeaseSpiderMiddleware.from_crawler(crawler)
    out = list(middleware.process_spider_output(page, [child, retry]))
    assert [r.priority for r in out] == [101, 105]
    assert out[0].meta[CRAWL_META] == "camp"
