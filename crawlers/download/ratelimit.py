"""Fleet-wide politeness: one request rate per platform for the whole fleet.

Scrapy's download slots (``DOWNLOAD_SLOTS``, from ``LIVEFLEET_RATE_<PLATFORM>``)
space the requests of one worker; four workers send four times as many. The
fleet limit is a token bucket in Redis that every worker of every machine draws
from, so ``LIVEFLEET_FLEET_RATE_<PLATFORM>`` holds however many workers run.
It comes on top of the slots, which still space each worker's own requests.

The bucket is kept in its GCRA ("virtual scheduling") form: its whole state is
one number, the theoretical arrival time (TAT) of the next request if requests
went out exactly ``1/R`` apart. One Lua call, atomic on the Redis server and timed
by the server's own clock (``TIME``, so workers on machines whose clocks disagree
still agree), hands the caller a send time and moves the TAT on by ``1/R``:

    send_at = max(now, TAT - (burst - 1) / R)        TAT = max(TAT, now) + 1 / R

The caller then sleeps until its send time: a reservation is a promise, nobody
polls. ``burst`` tokens may go at once after a quiet spell (default 1: strictly
spaced). A caller that wakes up later than its send time by more than the burst
allows (its worker stalled, and the worker's other sends with it) takes a new send
time rather than go at once with the others. A reservation further ahead than ``max_wait`` seconds is not made; the
caller comes back when the backlog has shrunk, so a worker that dies does not
leave a long queue of promised but unused sends behind. The key expires when
its TAT has passed (a bucket whose TAT lies in the past is the same as no
bucket), so idle platforms leave nothing in Redis.

If Redis cannot be reached, the limiter says so once in the log, lets requests
through (the per-worker slot delay still applies) and asks Redis again every
``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import redis
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawlers.redis.connection import get_redis, redis_url_from_settings
from crawlers.redis.keys import FleetKeys
from settings.defaults import value
from spiders.meta import UNLIMITED_META

logger = logging.getLogger(__name__)

#: A request that wakes up later than its send time by more than the burst's worth of intervals
#: (and at least this many seconds: timer jitter) takes a new one, at most LATE_RETRIES times.
LATE_SECONDS = 0.02
LATE_RETRIES = 3

# KEYS[1]: the bucket. ARGV (integers, microseconds): interval between two sends (1/R),
# how early a send may go after a quiet spell ((burst - 1) / R), the farthest ahead a
# send may be reserved. Returns {granted (0/1), wait, send_at}: wait from now and the send
# time itself (Redis server time, epoch microseconds). Integers all through: Lua numbers
# are doubles and epoch microseconds (~2^51) are exact in them; '%.0f' stores them whole.
RESERVE_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local send_at = math.max(tat - tolerance, now)
local wait = send_at - now
if wait > horizon then
  return {0, wait, send_at}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return {1, wait, send_at}
"""


@dataclass(frozen=True)
class Reservation:
    """One answer of the bucket."""

    #: True: the caller owns ``send_at``. False: the backlog reaches past ``max_wait``; ask again later.
    granted: bool
    #: Seconds from now (Redis server time) until ``send_at``.
    wait: float
    #: The send time, Redis server time, epoch seconds.
    send_at: float


class FleetRateLimiter:
    """The fleet-wide token buckets (one per platform) behind one key prefix.

    Thread-safe: the middleware calls :meth:`reserve` from a thread pool.
    """

    def __init__(self, server: redis.Redis, prefix: str, *, burst: float = 1.0, max_wait: float = 30.0,
                 retry_after: float = 5.0) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1 token, got {burst}")
        if max_wait <= 0:
            raise ValueError(f"max_wait must be positive, got {max_wait}")
        self.keys = FleetKeys(prefix)
        self.burst = burst
        self.max_wait = max_wait
        self.retry_after = retry_after
        #: Times Redis was found unreachable (each outage once).
        self.outages = 0
        self._script = server.register_script(RESERVE_LUA)
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self._probing = False

    def reserve(self, platform: str, rate: float) -> Reservation | None:
        """Reserve the next send to ``platform`` at ``rate`` requests/s fleet-wide.

        ``None`` when Redis is unreachable (now, or a moment ago): no fleet limit applies.
        """
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        down_until = self._down_until
        if down_until is not None:
            # Redis was away. Once retry_after has passed one caller asks it again (a call to a
            # Redis that is still away can take redis-py's whole retry backoff); the others go on
            # without the fleet limit until that caller has its answer.
            with self._lock:
                if time.monotonic() < down_until or self._probing:
                    return None
                self._probing = True
        interval = max(1, round(1_000_000 / rate))
        args = [interval, round((self.burst - 1) * interval), round(self.max_wait * 1_000_000)]
        try:
            granted, wait, send_at = self._script(keys=[self.keys.rate(platform)], args=args)
        except redis.RedisError as exc:
            self._went_down(exc)
            return None
        finally:
            if down_until is not None:
                self._probing = False
        if down_until is not None:
            self._came_back()
        return Reservation(bool(granted), int(wait) / 1_000_000, int(send_at) / 1_000_000)

    def _went_down(self, exc: redis.RedisError) -> None:
        with self._lock:
            first_failure = self._down_until is None
            self._down_until = time.monotonic() + self.retry_after
            if not first_failure:
                return
            self.outages += 1
            level = logging.WARNING if self.outages == 1 else logging.DEBUG
        logger.log(level, "Fleet rate limit unavailable (%s: %s): requests go out at the per-worker rate; "
                   "asking Redis again every %.0fs", type(exc).__name__, exc, self.retry_after)

    def _came_back(self) -> None:
        with self._lock:
            if self._down_until is None:
                return
            self._down_until = None
        logger.info("Fleet rate limit back (Redis answers again)")


class FleetRateLimitMiddleware:
    """Downloader middleware holding each platform request until the fleet's bucket lets it go.

    Applies to requests whose ``meta["download_slot"]`` is a platform with a rate in
    ``LIVEFLEET_FLEET_RATES`` (requests/s for the whole fleet; 0 or missing: none);
    ``meta["livefleet_unlimited"]`` exempts one request. Other settings:
    ``LIVEFLEET_FLEET_BURST`` (tokens that may go at once after a quiet spell, default 1)
    and ``LIVEFLEET_FLEET_MAX_WAIT_SECONDS`` (the farthest ahead one send is reserved,
    default 30). A waiting request holds its place in ``CONCURRENT_REQUESTS``, so a
    throttled worker takes no more work from the shared queue than it can send. It waits
    once it has its session (a session's first requests wait for the session's warm-up,
    itself a request) and before it is signed (signatures carry a time): see the order
    in ``DOWNLOADER_MIDDLEWARES``.

    Stats, per platform: ``livefleet/ratelimit/reserved/<platform>`` (sends granted),
    ``waited_s/<platform>`` (seconds slept in all), ``delayed/<platform>`` (requests that
    slept), ``max_wait_s/<platform>``, ``rechecked/<platform>`` (backlog past the horizon),
    ``late/<platform>`` (woke up too late, took a new send time) and ``fallback/<platform>``
    (sent without the fleet limit: Redis unreachable).
    """

    def __init__(self, crawler: Crawler, limiter: FleetRateLimiter, rates: Mapping[str, float]) -> None:
        self.crawler = crawler
        self.limiter = limiter
        self.rates = dict(rates)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        rates = {str(platform): float(rate) for platform, rate in value(settings, "LIVEFLEET_FLEET_RATES").items()
                 if float(rate) > 0}
        if not rates:
            raise NotConfigured("no fleet-wide rate is set (LIVEFLEET_FLEET_RATES)")
        limiter = FleetRateLimiter(
            get_redis(redis_url_from_settings(settings)),
            value(settings, "LIVEFLEET_KEY_PREFIX"),
            burst=value(settings, "LIVEFLEET_FLEET_BURST"),
            max_wait=value(settings, "LIVEFLEET_FLEET_MAX_WAIT_SECONDS"),
        )
        return cls(crawler, limiter, rates)

    async def process_request(self, request: Request) -> None:
        platform = request.meta.get("download_slot")
        rate = self.rates.get(platform) if isinstance(platform, str) else None
        if not rate or request.meta.get(UNLIMITED_META):
            return None
        stats = self.crawler.stats
        assert stats is not None
        slept, late_wakes = 0.0, 0
        while True:
            # Off the reactor thread: the call is short, but redis-py retries a lost connection
            # with backoff, and that must not stall every other request of the worker.
            reservation, answered = await asyncio.to_thread(self._reserve, platform, rate)
            if reservation is None:
                stats.inc_value(f"livefleet/ratelimit/fallback/{platform}")
                break
            if reservation.granted:
                stats.inc_value(f"livefleet/ratelimit/reserved/{platform}")
                # Due counted from when Redis answered, so the hop back to the reactor does not
                # make the send later than the one it was given.
                due = answered + reservation.wait
                if due > time.monotonic():
                    slept += due - time.monotonic()
                    await asyncio.sleep(due - time.monotonic())
                late = time.monotonic() - due
                if late > max(self.limiter.burst / rate, LATE_SECONDS) and late_wakes < LATE_RETRIES:
                    # The worker stalled (a busy machine) past this send time and likely past its
                    # other requests' too: sent now, they would go at once, a burst larger than the
                    # bucket allows. Take a new send time instead.
                    late_wakes += 1
                    stats.inc_value(f"livefleet/ratelimit/late/{platform}")
                    continue
                break
            # The fleet has promised sends further ahead than max_wait: come back when the
            # backlog has moved down to the horizon.
            stats.inc_value(f"livefleet/ratelimit/rechecked/{platform}")
            pause = min(max(reservation.wait - self.limiter.max_wait, 1 / rate), self.limiter.max_wait)
            await asyncio.sleep(pause)
            slept += pause
        if slept > 0:
            stats.inc_value(f"livefleet/ratelimit/delayed/{platform}")
            stats.inc_value(f"livefleet/ratelimit/waited_s/{platform}", slept)
            stats.max_value(f"livefleet/ratelimit/max_wait_s/{platform}", slept)
        return None

    def _reserve(self, platform: str, rate: float) -> tuple[Reservation | None, float]:
        """The limiter's answer and when it came (this process's monotonic clock)."""
        reservation = self.limiter.reserve(platform, rate)
        return reservation, time.monotonic()
