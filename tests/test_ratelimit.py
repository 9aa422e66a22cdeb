"""The fleet-wide rate limit against a real Redis: the bucket's arithmetic, shared buckets,
expiry, the fallback when Redis is away, and the downloader middleware."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import pytest
import redis
import scrapy
from redis.backoff import NoBackoff
from redis.retry import Retry
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawlers.download.ratelimit import FleetRateLimiter, FleetRateLimitMiddleware, Reservation
from crawlers.redis.keys import FleetKeys
from crawlers.services import EmbeddedRedis
from sandbox.process import start_sandbox
from settings.config import PLATFORM_RATE_DEFAULTS, Config
from spiders.meta import UNLIMITED_META
from tests.crawl_helpers import run_crawl, stat_sum, wait_for

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]

# One microsecond: the bucket keeps integer microseconds, so intervals round by at most half of one.
US = 1e-6


def _prefix() -> str:
    return f"rl{uuid.uuid4().hex[:8]}"


def _redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_reservations_are_spaced_one_interval_apart_on_the_redis_clock(redis_client):
    limiter = FleetRateLimiter(redis_client, _prefix())
    before = _redis_now(redis_client)
    got = [limiter.reserve("bilibili", 40) for _ in range(10)]
    after = _redis_now(redis_client)
    assert all(isinstance(r, Reservation) and r.granted for r in got)
    # The first goes now (by the server's clock), each next one 1/R after the one before.
    assert before <= got[0].send_at <= after and got[0].wait == 0
    for earlier, later in zip(got, got[1:], strict=False):
        assert later.send_at - earlier.send_at == pytest.approx(1 / 40, abs=2 * US)
    # wait is measured from the moment of each call, on the same clock.
    assert got[-1].wait == pytest.approx(9 / 40 - (after - before), abs=after - before + 2 * US)


def test_burst_lets_that_many_go_at_once_then_spaces_the_rest(redis_client):
    limiter = FleetRateLimiter(redis_client, _prefix(), burst=3)
    got = [limiter.reserve("douyin", 2) for _ in range(5)]
    assert [r.wait for r in got[:3]] == [0, 0, 0]
    # The fourth goes one interval after the first, the fifth one after that.
    assert got[3].send_at - got[0].send_at == pytest.approx(0.5, abs=2 * US)
    assert got[4].send_at - got[3].send_at == pytest.approx(0.5, abs=2 * US)


def test_platforms_and_prefixes_have_their_own_buckets(redis_client):
    prefix = _prefix()
    a, b = FleetRateLimiter(redis_client, prefix), FleetRateLimiter(redis_client, _prefix())
    assert a.reserve("bilibili", 1).wait == 0
    assert a.reserve("douyin", 1).wait == 0  # another platform
    assert b.reserve("bilibili", 1).wait == 0  # another fleet
    assert 0.5 < a.reserve("bilibili", 1).wait <= 1
    assert sorted(redis_client.keys(f"{prefix}:*")) == [FleetKeys(prefix).rate(p).encode() for p in ("bilibili",
                                                                                                     "douyin")]


def test_concurrent_workers_sharing_a_bucket_never_exceed_the_rate(redis_server):
    """Four workers (threads, each with its own connection) reserve and sleep: the sends they
    were given are 1/R apart, so no window holds more than R x its length (+1)."""
    prefix, rate, each = _prefix(), 100.0, 30
    sends: list[float] = []
    woke: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        client = redis.Redis.from_url(redis_server.url)
        limiter = FleetRateLimiter(client, prefix)
        try:
            for _ in range(each):
                reservation = limiter.reserve("bilibili", rate)
                assert reservation is not None and reservation.granted
                time.sleep(reservation.wait)
                with lock:
                    sends.append(reservation.send_at)
                    woke.append(time.monotonic())
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(sends) == 4 * each
    sends.sort()
    gaps = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    assert min(gaps) >= 1 / rate - 2 * US
    for window in (0.05, 0.2, 0.5):
        most = max(sum(1 for t in sends[i:] if t < start + window) for i, start in enumerate(sends))
        assert most <= window * rate + 1
    # And the threads did wait for their turn: together they took as long as the rate allows.
    woke.sort()
    assert rate / 2 < (len(woke) - 1) / (woke[-1] - woke[0]) < rate * 1.1


def test_the_key_expires_once_the_bucket_is_idle_again(redis_client):
    prefix = _prefix()
    key = FleetKeys(prefix).rate("kuaishou")
    limiter = FleetRateLimiter(redis_client, prefix)
    limiter.reserve("kuaishou", 10)
    assert 0 < redis_client.pttl(key) <= 100
    for _ in range(4):
        limiter.reserve("kuaishou", 10)
    # The key lives as long as the backlog of promised sends, not longer.
    assert 300 < redis_client.pttl(key) <= 500
    wait_for("the idle bucket's key to expire", lambda: not redis_client.exists(key), 10, interval=0.02)
    assert not redis_client.exists(key)
    assert limiter.reserve("kuaishou", 10).wait == 0  # and a fresh bucket is a full one


def test_a_backlog_past_max_wait_is_not_reserved(redis_client):
    prefix = _prefix()
    limiter = FleetRateLimiter(redis_client, prefix, max_wait=1.25)
    got = [limiter.reserve("taobao", 2) for _ in range(3)]
    assert [r.send_at - got[0].send_at for r in got] == pytest.approx([0, 0.5, 1.0], abs=2 * US)
    refused = limiter.reserve("taobao", 2)
    assert not refused.granted and refused.send_at - got[0].send_at == pytest.approx(1.5, abs=2 * US)
    assert 1.25 < refused.wait <= 1.5
    # A refusal reserves nothing: the next caller is told the same send time.
    assert limiter.reserve("taobao", 2).send_at == refused.send_at
    time.sleep(0.5)
    assert limiter.reserve("taobao", 2).granted


def test_bad_arguments_are_refused(redis_client):
    with pytest.raises(ValueError, match="burst"):
        FleetRateLimiter(redis_client, "x", burst=0.5)
    with pytest.raises(ValueError, match="rate"):
        FleetRateLimiter(redis_client, "x").reserve("bilibili", 0)


def test_redis_going_away_falls_back_logs_once_and_recovers(tmp_path, caplog):
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    # No retries inside redis-py here, so the test does not sit through its backoff.
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2)
    limiter = FleetRateLimiter(client, _prefix(), retry_after=0.3)
    try:
        assert limiter.reserve("bilibili", 5).granted
        server.stop()
        with caplog.at_level(logging.INFO, logger="crawlers.download.ratelimit"):
            assert [limiter.reserve("bilibili", 5) for _ in range(5)] == [None] * 5
            time.sleep(0.35)
            assert limiter.reserve("bilibili", 5) is None  # asked again, still away: not logged again
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "Fleet rate limit unavailable" in warnings[0].getMessage()
            assert limiter.outages == 1
            server.start()  # a restart comes back on the same port
            assert limiter.reserve("bilibili", 5) is None  # still inside retry_after
            back = wait_for("the limiter to reach Redis again", lambda: limiter.reserve("bilibili", 5), 10,
                            interval=0.05)
            assert back is not None and back.granted
            assert any("Fleet rate limit back" in r.getMessage() for r in caplog.records)
    finally:
        client.close()
        server.stop()


class _Spider(scrapy.Spider):
    name = "rltest"


def _middleware(redis_server, **settings) -> FleetRateLimitMiddleware:
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": _prefix(),
                                    "LIVEFLEET_FLEET_RATES": {"bilibili": 10, "douyin": 0}, **settings})
    return FleetRateLimitMiddleware.from_crawler(crawler)


def _request(n: int, **meta) -> scrapy.Request:
    return scrapy.Request(f"https://api.live.bilibili.com/x?n={n}", meta=meta)


def test_middleware_holds_platform_requests_to_the_fleet_rate(redis_server):
    middleware = _middleware(redis_server)

    async def run() -> tuple[list[float], float]:
        start = time.monotonic()
        done: list[float] = []

        async def one(request: scrapy.Request) -> None:
            assert await middleware.process_request(request) is None
            done.append(time.monotonic() - start)

        await asyncio.gather(*(one(_request(n, download_slot="bilibili")) for n in range(6)))
        free_start = time.monotonic()
        await asyncio.gather(*(one(request) for request in (
            _request(10, download_slot="bilibili", **{UNLIMITED_META: True}),  # exempt
            _request(11, download_slot="douyin"),  # fleet rate 0: none
            _request(12, download_slot="kuaishou"),  # no fleet rate
            _request(13),  # no slot
        )))
        return done, time.monotonic() - free_start

    done, free = asyncio.run(run())
    # Six requests at 10/s fleet-wide: the last one goes 5 intervals after the first.
    done.sort()
    assert 0.5 - 0.01 < done[5] < 0.5 + 0.3 and done[5] - done[0] > 0.5 - 0.01
    assert free < 0.3
    stats = middleware.crawler.stats
    assert stats.get_value("livefleet/ratelimit/reserved/bilibili") == 6
    assert stats.get_value("livefleet/ratelimit/delayed/bilibili") == 5
    # Waits are computed when each reservation is made: on a loaded machine the six calls spread out
    # a little and the waits shrink by as much, but never grow and never vanish.
    assert 1.0 < stats.get_value("livefleet/ratelimit/waited_s/bilibili") <= 1.5 + 0.05
    assert 0.35 < stats.get_value("livefleet/ratelimit/max_wait_s/bilibili") <= 0.5 + 0.05
    assert not any("douyin" in key or "kuaishou" in key for key in stats.get_stats())


def test_requests_that_a_stall_made_late_take_new_send_times_instead_of_going_at_once(redis_server):
    middleware = _middleware(redis_server)

    async def run() -> list[float]:
        start = time.monotonic()
        done: list[float] = []

        async def one(request: scrapy.Request) -> None:
            await middleware.process_request(request)
            done.append(time.monotonic() - start)

        async def stall() -> None:  # the worker's reactor busy for 0.4 s
            await asyncio.sleep(0.05)
            time.sleep(0.4)

        await asyncio.gather(stall(), *(one(_request(n, download_slot="bilibili")) for n in range(5)))
        return sorted(done)

    done = asyncio.run(run())
    # Due at 0.1 .. 0.4 s, the four woke at 0.45 s: sent then, they would have gone together. The one
    # late by less than an interval (the burst of 1) goes; the others take new send times.
    assert middleware.crawler.stats.get_value("livefleet/ratelimit/late/bilibili") >= 3
    assert done[1] > 0.45
    assert all(done[n + 2] - done[n] > 0.1 for n in range(len(done) - 2))


def test_middleware_rechecks_a_long_backlog(redis_server):
    middleware = _middleware(redis_server, LIVEFLEET_FLEET_MAX_WAIT_SECONDS=0.1)

    async def run() -> float:
        start = time.monotonic()
        await asyncio.gather(*(middleware.process_request(_request(n, download_slot="bilibili")) for n in range(5)))
        return time.monotonic() - start

    # 5 sends at 10/s span 0.4 s, but no send is promised more than 0.1 s ahead.
    assert 0.4 - 0.01 < asyncio.run(run()) < 0.4 + 0.3
    stats = middleware.crawler.stats
    assert stats.get_value("livefleet/ratelimit/reserved/bilibili") == 5
    assert stats.get_value("livefleet/ratelimit/rechecked/bilibili") >= 2


def test_middleware_lets_requests_through_when_redis_is_away(redis_server, tmp_path):
    middleware = _middleware(redis_server)
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    middleware.limiter = FleetRateLimiter(client, "gone")
    server.stop()
    try:
        async def run() -> float:
            start = time.monotonic()
            await asyncio.gather(*(middleware.process_request(_request(n, download_slot="bilibili"))
                                   for n in range(5)))
            return time.monotonic() - start

        assert asyncio.run(run()) < 1
    finally:
        client.close()
    assert middleware.crawler.stats.get_value("livefleet/ratelimit/fallback/bilibili") == 5
    assert middleware.crawler.stats.get_value("livefleet/ratelimit/reserved/bilibili") is None


def test_middleware_is_off_without_a_fleet_rate(redis_server):
    with pytest.raises(NotConfigured):
        _middleware(redis_server, LIVEFLEET_FLEET_RATES={"bilibili": 0}, LIVEFLEET_IDENTITY_RATES={"douyin": 0})


def test_identity_rates_default_to_the_per_worker_rates_and_the_ceiling_to_none():
    config = Config.from_env({})
    assert config.identity_rates == PLATFORM_RATE_DEFAULTS  # on by default: one address, one worker's rate
    assert set(config.fleet_rates.values()) == {0}  # no ceiling over all identities unless asked
    config = Config.from_env({"LIVEFLEET_RATE_BILIBILI": "0", "LIVEFLEET_RATE_TAOBAO": "8",
                              "LIVEFLEET_IDENTITY_RATE_DOUYIN": "12", "LIVEFLEET_IDENTITY_RATE_KUAISHOU": "0",
                              "LIVEFLEET_FLEET_RATE_DOUYIN": "30"})
    assert dict(config.identity_rates) == {"bilibili": 0, "douyin": 12, "kuaishou": 0, "taobao": 8}
    assert config.fleet_rates["douyin"] == 30 and config.fleet_rates["taobao"] == 0
    with pytest.raises(ValueError, match="LIVEFLEET_FLEET_RATE_DOUYIN must be a number"):
        Config.from_env({"LIVEFLEET_FLEET_RATE_DOUYIN": "fast"})
    with pytest.raises(ValueError, match="LIVEFLEET_IDENTITY_RATE_TAOBAO must not be negative"):
        Config.from_env({"LIVEFLEET_IDENTITY_RATE_TAOBAO": "-2"})


def test_scrapy_settings_wait_for_the_fleet_with_a_warm_session_and_before_signing():
    settings = Settings()
    settings.setmodule("settings.scrapy_settings")
    assert settings.getdict("LIVEFLEET_IDENTITY_RATES")["bilibili"] == pytest.approx(20)
    assert settings.getfloat("LIVEFLEET_FLEET_BURST") == 1
    order = settings.getdict("DOWNLOADER_MIDDLEWARES")
    fleet = order["crawlers.download.ratelimit.FleetRateLimitMiddleware"]
    render, sessions = "crawlers.download.render.RenderMiddleware", "crawlers.download.sessions.SessionMiddleware"
    egress = order["crawlers.download.egress.EgressMiddleware"]
    # an identity first (the session belongs to it), then its session, then the identity's bucket;
    # Scrapy's proxy middleware (750) turns the identity's proxy into the request's proxy after all that
    assert order[render] < egress < order[sessions] < fleet < 750
    assert fleet < order["spiders.taobao.middleware.MtopSignMiddleware"]
    assert fleet < order["spiders.douyin.middleware.PageSignMiddleware"]


def test_two_worker_processes_crawling_the_sandbox_share_the_fleet_rate(tmp_path, redis_server, mongo_server):
    """End to end: two ``livefleet worker`` processes, no per-worker rate, a fleet rate of 10/s: the
    sandbox (its world on the wall clock, so its served log has real times) sees 10 requests/s."""
    rate, rooms = 10.0, 20
    endpoints = {"room_init", "get_info", "getInfoByRoom"}  # a room seed following rooms: 3 requests
    with start_sandbox("--time-scale", "1", "--no-chaos", "--no-faults", "--streamers", "60") as sandbox:
        seeds = [{"kind": "room", "room_id": str(room["room_id"]), "follow": ["rooms"]}
                 for room in sandbox.truth("bilibili")["rooms"][:rooms]]
        _, _, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili",
                                seeds=seeds, workers=2, rate=0, LIVEFLEET_FLEET_RATE_BILIBILI=str(rate))
        served = sorted(row["served_at"] for row in sandbox.served("bilibili") if row["endpoint"] in endpoints)
    assert len(served) == 3 * rooms
    # Never faster than the fleet rate; slower only if the machine stalls the workers.
    assert 0.7 * rate < (len(served) - 1) / (served[-1] - served[0]) < 1.05 * rate
    # Both workers drew from the bucket, and every page went through it (plus session warm-ups).
    reserved = [int(s.get("livefleet/ratelimit/reserved/bilibili", 0)) for s in stats]
    assert all(reserved) and sum(reserved) >= 3 * rooms
    assert stat_sum(stats, "livefleet/ratelimit/fallback/bilibili") == 0
