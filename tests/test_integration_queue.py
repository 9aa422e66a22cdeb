"""The shared, leased Redis queue against a real Redis."""

from __future__ import annotations

import json
import time

import pytest
import scrapy
from scrapy.utils.test import get_crawler

from crawlers.queue.bloom import BloomSpec
from crawlers.queue.feeder import push_seeds
from crawlers.queue.lease_queue import DedupMode, LeaseQueue, dead_letters, retry_dead
from crawlers.queue.scheduler import RedisScheduler
from crawlers.redis.keys import SpiderKeys
from spiders.meta import CRAWL_META, LEASE_META
from tests.crawl_helpers import wait_for

pytestmark = pytest.mark.integration

PREFIX = "lftest"


class _Spider(scrapy.Spider):
    name = "qtest"

    def parse_page(self, response):  # pragma: no cover - referenced by name only
        pass


def _spider(redis_server, **settings) -> _Spider:
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": PREFIX,
                                    **settings})
    spider = _Spider()
    spider.crawler = crawler
    crawler.spider = spider
    return spider


def _queue(redis_client, redis_server, worker: str = "w1", **kwargs) -> LeaseQueue:
    return LeaseQueue(redis_client, _spider(redis_server), SpiderKeys(PREFIX, "qtest"), worker=worker, **kwargs)


def _scheduler(redis_server, prefetch: int = 4, **settings) -> tuple[RedisScheduler, _Spider]:
    spider = _spider(redis_server, LIVEFLEET_PREFETCH=prefetch, LIVEFLEET_QUEUE_BACKGROUND=False, **settings)
    scheduler = RedisScheduler.from_crawler(spider.crawler)
    scheduler.open(spider)
    return scheduler, spider


def _req(n: int, priority: int = 0, **kwargs) -> scrapy.Request:
    return scrapy.Request(f"https://example.test/page/{n}", priority=priority,
                          meta={"download_slot": "bilibili", "livefleet": {"kind": "x", "n": n}}, **kwargs)


def _push(queue: LeaseQueue, n: int, crawl: str = "default", **kwargs) -> int:
    return queue.push(_req(n, **kwargs), fingerprint=f"fp{n}", crawl=crawl)


def _reaped(queue: LeaseQueue) -> tuple[int, int] | None:
    """One reap: (requeued, dead-lettered), or None while no lease has expired (for :func:`wait_for`)."""
    got = queue.reap()
    return got if got != (0, 0) else None


@pytest.fixture
def keys(redis_client):
    return SpiderKeys(PREFIX, "qtest")


# -- the queue ---------------------------------------------------------------------------------


def test_two_workers_share_one_queue_and_never_get_the_same_request(redis_server, redis_client, keys):
    a = _queue(redis_client, redis_server, "a")
    b = _queue(redis_client, redis_server, "b")
    # Both workers discover the same 100 pages: each is queued once.
    assert sum(_push(q, n) for q in (a, b) for n in range(100)) == 100
    got: list[str] = []
    while taken := a.take(7) + b.take(5):
        got += [item.request.url for item in taken]
    assert len(got) == 100 and len(set(got)) == 100
    assert redis_client.zcard(keys.leases) == 100


def test_priority_first_then_arrival_order(redis_server, redis_client):
    queue = _queue(redis_client, redis_server)
    for n in range(5):
        _push(queue, n)
    for n in range(5, 8):
        _push(queue, n, priority=10)
    assert [item.request.meta["livefleet"]["n"] for item in queue.take(8)] == [5, 6, 7, 0, 1, 2, 3, 4]


def test_requests_travel_as_json_under_our_prefix_and_equal_requests_never_collapse(
        redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server)
    queue.push(_req(1, dont_filter=True), "fp1", "default")
    queue.push(_req(1, dont_filter=True), "fp1", "default")  # the same request twice, on purpose
    members = redis_client.zrange(keys.requests, 0, -1)
    assert len(members) == 2
    seq, failures, body = members[0].decode().split("|", 2)
    entry = json.loads(body)
    assert (seq, failures, entry["fp"], entry["c"], entry["r"]["url"]) == (
        "1", "0", "fp1", "default", "https://example.test/page/1")
    assert all(key.startswith(f"{PREFIX}:".encode()) for key in redis_client.keys("*"))


def test_a_url_counts_as_seen_only_once_handled(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server)
    assert _push(queue, 1) == 1
    assert _push(queue, 1) == 0  # queued: not again
    (item,) = queue.take(1)
    assert _push(queue, 1) == 0  # leased: not again
    assert redis_client.scard(keys.seen("default")) == 0  # but not seen yet
    assert queue.ack(item.lease, item.fingerprint, item.crawl) == 1
    assert redis_client.sismember(keys.seen("default"), "fp1")
    assert not redis_client.sismember(keys.queued("default"), "fp1")
    assert _push(queue, 1) == 0  # handled in this crawl
    assert _push(queue, 1, crawl="tomorrow") == 1  # another crawl revisits it
    assert redis_client.zcard(keys.leases) == 0 and redis_client.hlen(keys.leased) == 0


def test_a_request_that_failed_for_good_can_be_found_again(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server)
    _push(queue, 1)
    (item,) = queue.take(1)
    assert queue.release(item.lease, "download failed: TimeoutError", final=True) == 2
    assert _push(queue, 1) == 1  # a failed fetch is not "seen": the fleet may try it again


def test_crawl_namespaces_expire(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server, dedup=DedupMode(ttl=3600))
    _push(queue, 1, crawl="c1")
    assert 3500 < redis_client.ttl(keys.queued("c1")) <= 3600
    (item,) = queue.take(1)
    queue.ack(item.lease, item.fingerprint, item.crawl)
    assert 3500 < redis_client.ttl(keys.seen("c1")) <= 3600


def test_an_expired_lease_returns_the_request_with_its_priority(redis_server, redis_client, keys):
    dead_worker = _queue(redis_client, redis_server, "dead", lease_seconds=0.2)
    other = _queue(redis_client, redis_server, "other", lease_seconds=30)
    _push(dead_worker, 1, priority=5)
    _push(dead_worker, 2)
    (taken,) = dead_worker.take(1)  # the priority-5 request; then the worker "dies"
    assert taken.request.meta[LEASE_META].startswith("dead#")
    assert other.reap() == (0, 0)  # not expired yet
    assert wait_for("the dead worker's lease to expire", lambda: _reaped(other), 10, interval=0.02) == (1, 0)
    first = other.take(1)[0]
    assert first.request.url == taken.request.url  # back at the head: priority kept
    member = redis_client.hget(keys.leased, first.lease).decode()
    assert member.split(" ", 1)[1].split("|")[1] == "1"  # one failed delivery counted


def test_a_request_that_keeps_killing_its_worker_ends_as_a_dead_letter(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server, "w", lease_seconds=0.05, max_failures=3)
    _push(queue, 1)
    for _ in range(3):
        assert len(queue.take(1)) == 1
        wait_for("the lease to expire", lambda: _reaped(queue), 10, interval=0.01)
    assert redis_client.zcard(keys.requests) == 0
    (letter,) = dead_letters(redis_client, keys)
    assert letter["url"] == "https://example.test/page/1"
    assert (letter["error"], letter["attempts"], letter["worker"]) == ("lease expired", 3, "w")


def test_renewed_leases_do_not_expire(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server, lease_seconds=0.3)
    _push(queue, 1)
    (item,) = queue.take(1)
    for _ in range(4):
        time.sleep(0.15)
        assert queue.renew([item.lease]) == 1
    assert queue.reap() == (0, 0)
    assert queue.ack(item.lease, item.fingerprint, item.crawl) == 1


def test_failures_requeue_then_dead_letter_then_retry_dead(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server, max_failures=2)
    _push(queue, 1)
    (item,) = queue.take(1)
    assert queue.release(item.lease, "callback error: KeyError: 'x'") == 1  # back in the queue
    (item,) = queue.take(1)
    assert queue.release(item.lease, "callback error: KeyError: 'x'") == 2  # second failure: dead
    assert queue.release(item.lease, "again") == 0  # settling a lease twice does nothing
    assert redis_client.zcard(keys.requests) == 0
    (letter,) = dead_letters(redis_client, keys)
    assert letter["error"] == "callback error: KeyError: 'x'" and letter["attempts"] == 2
    assert retry_dead(redis_client, keys) == 1
    assert redis_client.llen(keys.dead) == 0
    (again,) = queue.take(1)
    assert again.request.url == "https://example.test/page/1"
    assert _push(queue, 1) == 0  # queued again, so deduplicated again


def test_dead_letters_and_retry_dead_keep_each_crawls_dedup_keys(redis_server, redis_client, keys):
    # The scripts get the crawl's queued set in KEYS (computed here, not built in Lua): settling
    # leases of two crawls by release, by reap and by retry-dead touches each crawl's own set.
    queue = _queue(redis_client, redis_server, lease_seconds=0.05, max_failures=1)
    _push(queue, 1, crawl="camp-a")
    _push(queue, 2, crawl="camp-b")
    _push(queue, 3, crawl="camp-b")
    assert redis_client.smembers(keys.queued("camp-b")) == {b"fp2", b"fp3"}
    first, second, third = queue.take(3)
    assert queue.release(first.lease, "boom", crawl="camp-b") == -1  # not its crawl: nothing done
    assert queue.release(first.lease, "boom", crawl="camp-a") == 2
    time.sleep(0.1)
    assert queue.reap() == (0, 2)  # the other two, one script per crawl
    assert not redis_client.exists(keys.queued("camp-a"), keys.queued("camp-b"))
    assert redis_client.llen(keys.dead) == 3 and redis_client.zcard(keys.leases) == 0
    assert retry_dead(redis_client, keys, batch=2) == 3
    assert redis_client.smembers(keys.queued("camp-a")) == {b"fp1"}
    assert redis_client.smembers(keys.queued("camp-b")) == {b"fp2", b"fp3"}
    assert sorted(item.crawl for item in queue.take(3)) == ["camp-a", "camp-b", "camp-b"]


def test_reap_leaves_a_lease_renewed_after_it_was_read(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server, lease_seconds=0.05)
    _push(queue, 1, crawl="camp")
    (item,) = queue.take(1)
    time.sleep(0.1)
    expired = queue._scripts["expired"](keys=[keys.leases, keys.leased], args=[10])
    assert expired[0].decode() == item.lease
    queue.lease_ms = 30_000
    assert queue.renew([item.lease]) == 1  # renewed between the read and the reap script
    reap_keys = [keys.leases, keys.leased, keys.requests, keys.dead, keys.queued("camp")]
    assert queue._scripts["reap"](keys=reap_keys, args=[3, "camp", item.lease]) == [0, 0]
    assert queue.ack(item.lease, item.fingerprint, item.crawl) == 1


def test_forget_hands_a_lease_on_without_marking_the_url_seen(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server)
    _push(queue, 1)
    (item,) = queue.take(1)
    queue.push(item.request.replace(dont_filter=True), item.fingerprint, item.crawl)  # its retry
    assert queue.forget(item.lease) == 1
    assert redis_client.zcard(keys.leases) == 0
    assert redis_client.sismember(keys.queued("default"), "fp1")
    assert redis_client.scard(keys.seen("default")) == 0


def test_undecodable_requests_become_dead_letters(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server)
    redis_client.zadd(keys.requests, {"9|0|{not json": 1})
    _push(queue, 1)
    taken = queue.take(5)
    assert [item.request.url for item in taken] == ["https://example.test/page/1"]
    (letter,) = redis_client.lrange(keys.dead, 0, -1)
    assert json.loads(letter)["error"].startswith("undecodable")


# -- the scheduler -----------------------------------------------------------------------------


def test_scheduler_settles_leases_and_never_deletes_shared_keys(redis_server, redis_client, keys):
    scheduler, spider = _scheduler(redis_server, prefetch=4)
    for n in range(6):
        assert scheduler.enqueue_request(_req(n))
    first = scheduler.next_request()  # leases 4, hands out 1
    assert first.meta[LEASE_META] and redis_client.zcard(keys.leases) == 4
    assert scheduler.leased == 4 and scheduler.prefetched == 3
    scheduler._settle(scrapy.http.TextResponse(first.url, request=first), first)
    assert redis_client.zcard(keys.leases) == 3
    assert redis_client.sismember(keys.seen("default"), scheduler.crawler.request_fingerprinter
                                  .fingerprint(first).hex())
    second = scheduler.next_request()
    scheduler.close("shutdown")  # hands back the 2 prefetched and the one in flight, as no failure
    assert redis_client.zcard(keys.leases) == 0 and redis_client.zcard(keys.requests) == 5
    assert all(m.split(b"|")[1] == b"0" for m in redis_client.zrange(keys.requests, 0, -1))
    assert redis_client.exists(keys.seen("default"), keys.queued("default")) == 2  # the fleet's: kept
    other, _ = _scheduler(redis_server)
    rest = []
    while (r := other.next_request()) is not None:
        rest.append(r.meta["livefleet"]["n"])
    assert sorted(rest) == [1, 2, 3, 4, 5] and second.meta["livefleet"]["n"] in rest


def test_scheduler_hands_a_lease_on_to_a_retry_and_dead_letters_download_failures(
        redis_server, redis_client, keys):
    from twisted.python.failure import Failure

    scheduler, _ = _scheduler(redis_server)
    scheduler.enqueue_request(_req(1))
    scheduler.enqueue_request(_req(2))
    one, two = scheduler.next_request(), scheduler.next_request()
    retry = one.replace(dont_filter=True)  # what RetryMiddleware schedules (meta copied)
    scheduler.enqueue_request(retry)
    assert LEASE_META not in retry.meta
    scheduler._settle(Failure(TimeoutError("took too long")), one)  # the original's outcome: already handed on
    assert redis_client.llen(keys.dead) == 0
    scheduler._settle(Failure(TimeoutError("took too long")), two)
    (letter,) = dead_letters(redis_client, keys)
    assert letter["url"] == "https://example.test/page/2" and "TimeoutError" in letter["error"]
    assert redis_client.zcard(keys.leases) == 0  # both leases settled
    assert redis_client.zcard(keys.requests) == 1  # the retry waits in the queue
    scheduler.close("finished")


def test_scheduler_releases_a_request_whose_callback_failed(redis_server, redis_client, keys):
    from twisted.python.failure import Failure

    scheduler, spider = _scheduler(redis_server, LIVEFLEET_MAX_FAILURES=2)
    scheduler.enqueue_request(_req(1))
    for _ in (1, 2):
        request = scheduler.next_request()
        response = scrapy.http.TextResponse(request.url, request=request)
        try:
            raise KeyError("price")
        except KeyError:
            scheduler._spider_error(Failure(), response, spider)
        scheduler._settle(response, request)
    (letter,) = dead_letters(redis_client, keys)
    assert letter["attempts"] == 2 and letter["error"] == "callback error: KeyError: 'price'"
    scheduler.close("finished")


def test_requests_inherit_the_crawl_of_their_seed(redis_server, redis_client, keys):
    scheduler, _ = _scheduler(redis_server)
    scheduler.enqueue_request(scrapy.Request("https://example.test/a", meta={CRAWL_META: "camp-1"}))
    request = scheduler.next_request()
    assert request.meta[CRAWL_META] == "camp-1"
    scheduler._settle(scrapy.http.TextResponse(request.url, request=request), request)
    assert redis_client.scard(keys.seen("camp-1")) == 1 and redis_client.scard(keys.seen("default")) == 0
    scheduler.close("finished")


def test_background_thread_prefetches_and_flushes(redis_server, redis_client, keys):
    spider = _spider(redis_server, LIVEFLEET_PREFETCH=4)
    scheduler = RedisScheduler.from_crawler(spider.crawler)
    scheduler.crawler.engine = None  # no engine to wake in this test
    scheduler._wake_engine = lambda: None
    scheduler.open(spider)
    try:
        for n in range(10):
            scheduler.enqueue_request(_req(n))
        assert scheduler.has_pending_requests()
        got = []

        def take() -> bool:
            request = scheduler.next_request()
            if request is not None:
                got.append(request.meta["livefleet"]["n"])
                scheduler._settle(scrapy.http.TextResponse(request.url, request=request), request)
            return len(got) >= 10

        wait_for("ten requests from the background fetch", take, 10, interval=0.01)
        assert got == list(range(10))
    finally:
        scheduler.close("finished")
    assert redis_client.zcard(keys.leases) == 0 and redis_client.scard(keys.seen("default")) == 10
    assert scheduler.crawler.stats.get_value("livefleet/queue/acked") == 10


def test_seeds_are_json_in_a_list(redis_client, keys):
    assert push_seeds(redis_client, keys, [{"kind": "area", "parent_area_id": 2}, {"kind": "areas"}]) == 2
    assert [json.loads(x) for x in redis_client.lrange(keys.seeds, 0, -1)] == [
        {"kind": "area", "parent_area_id": 2}, {"kind": "areas"}]


def test_bloom_filter_replaces_the_seen_set_when_configured(redis_server, redis_client, keys):
    queue = _queue(redis_client, redis_server, dedup=DedupMode(ttl=600, bloom_capacity=10_000))
    for n in range(50):
        _push(queue, n)
    for item in queue.take(50):
        queue.ack(item.lease, item.fingerprint, item.crawl)
    assert not redis_client.exists(keys.seen("default"))
    assert redis_client.exists(keys.bloom("default")) and 0 < redis_client.ttl(keys.bloom("default")) <= 600
    bits = BloomSpec(10_000, 0.001).bits
    assert redis_client.strlen(keys.bloom("default")) == (bits + 7) // 8  # created at full size at once
    assert sum(_push(queue, n) for n in range(50)) == 0  # all handled: refused by the filter
    # Never handled (50 of 10,000 capacity: a false positive is vanishingly rare).
    assert sum(_push(queue, n) for n in range(50, 100)) == 50
    assert _push(queue, 1, crawl="other") == 1
