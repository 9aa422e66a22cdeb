"""Fleet-wide politeness: one request rate per (platform, egress identity), for the whole fleet.

Platforms limit and block per client address, so the fleet's politeness is
kept per egress identity (the machine's own address or a proxy,
``crawlers/download/identities.py``): a token bucket in Redis per (platform,
identity) that every worker of every machine going out through that identity
draws from, at ``LIVEFLEET_IDENTITY_RATE_<PLATFORM>`` however many workers run.
More identities carry more requests; more workers behind one identity do not.
An optional ceiling, ``LIVEFLEET_FLEET_RATE_<PLATFORM>``, caps the platform over
all identities (both buckets are taken in one atomic step). Scrapy's download
slots (``DOWNLOAD_SLOTS``, from ``LIVEFLEET_RATE_<PLATFORM>``; one slot per
platform and identity) still space each worker's own requests on top.

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
from typing import Any, Self

import redis
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawlers.download.identities import DIRECT
from crawlers.redis.connection import get_redis, redis_url_from_settings
from crawlers.redis.keys import FleetKeys
from settings.defaults import value
from spiders.meta import EGRESS_LABEL_META, EGRESS_META, PLATFORM_META, UNLIMITED_META

logger = logging.getLogger(__name__)

#: A request that wakes up later than its send time by more than the burst's worth of intervals less
#: half an interval (and at least this many seconds: timer jitter) takes a new one, at most
#: LATE_RETRIES times: two requests sent late together would otherwise go closer than half an
#: interval apart, which a platform counting per address may take as a burst.
LATE_SECONDS = 0.02
LATE_RETRIES = 3

# KEYS: the buckets a send must fit in all at once (an identity's, then maybe the platform's
# ceiling). ARGV (integers, microseconds): the farthest ahead a send may be reserved, then per
# bucket its interval between two sends (1/R) and how early a send may go after a quiet spell
# ((burst - 1) / R). The send time is the latest any bucket allows; each bucket's TAT then moves
# to max(TAT, send) + interval (with one bucket: TAT + interval, the plain GCRA). Returns
# {granted (0/1), wait, send_at}: wait from now and the send time itself (Redis server time,
# epoch microseconds). Integers all through: Lua numbers are doubles and epoch microseconds
# (~2^51) are exact in them; '%.0f' stores them whole.
RESERVE_LUA = """
local horizon = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local send_at = now
local tats = {}
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then
    tat = now
  end
  tats[i] = tat
  send_at = math.max(send_at, tat - tonumber(ARGV[2 * i + 1]))
end
local wait = send_at - now
if wait > horizon then
  return {0, wait, send_at}
end
for i = 1, #KEYS do
  local tat = math.max(tats[i], send_at) + tonumber(ARGV[2 * i])
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
end
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

    def reserve(self, platform: str, rate: float, *, identity: str | None = None,
                ceiling: float | None = None) -> Reservation | None:
        """Reserve the next send to ``platform``: ``rate`` requests/s fleet-wide through ``identity``
        (None: the platform's one bucket), and with ``ceiling``, at most that many for the platform
        over all identities.

        ``None`` when Redis is unreachable (now, or a moment ago): no fleet limit applies.
        """
        if rate <= 0 or (ceiling is not None and ceiling <= 0):
            raise ValueError(f"rates must be positive, got {rate} and ceiling {ceiling}")
        down_until = self._down_until
        if down_until is not None:
            # Redis was away. Once retry_after has passed one caller asks it again (a call to a
            # Redis that is still away can take redis-py's whole retry backoff); the others go on
            # without the fleet limit until that caller has its answer.
            with self._lock:
                if time.monotonic() < down_until or self._probing:
                    return None
                self._probing = True
        buckets = [(self.keys.rate(platform) if identity is None else self.keys.identity_rate(platform, identity),
                    rate)]
        if identity is not None and ceiling:
            buckets.append((self.keys.rate(platform), ceiling))
        args: list[int] = [round(self.max_wait * 1_000_000)]
        for _key, bucket_rate in buckets:
            interval = max(1, round(1_000_000 / bucket_rate))
            args += [interval, round((self.burst - 1) * interval)]
        try:
            granted, wait, send_at = self._script(keys=[key for key, _rate in buckets], args=args)
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
    """Downloader middleware holding each platform request until the fleet's buckets let it go.

    A request's platform is ``meta["livefleet_platform"]`` (set by the egress middleware) or
    ``meta["download_slot"]``; its identity ``meta["livefleet_egress"]`` (``direct`` when
    unset). It waits for the bucket of (platform, identity): ``LIVEFLEET_IDENTITY_RATES``
    requests/s per identity for the whole fleet (``LIVEFLEET_IDENTITY_RATE_OVERRIDES``
    changes it for named identities), and, when ``LIVEFLEET_FLEET_RATES`` names the
    platform, for the platform's overall ceiling too, both in one atomic reservation.
    ``meta["livefleet_unlimited"]`` exempts one request. Other settings:
    ``LIVEFLEET_FLEET_BURST`` (tokens that may go at once after a quiet spell, default 1)
    and ``LIVEFLEET_FLEET_MAX_WAIT_SECONDS`` (the farthest ahead one send is reserved,
    default 30). A waiting request holds its place in ``CONCURRENT_REQUESTS``, so a
    throttled worker takes no more work from the shared queue than it can send. It waits
    once it has its identity and session (a session's first requests wait for the session's
    warm-up, itself a request) and before it is signed (signatures carry a time): see the
    order in ``DOWNLOADER_MIDDLEWARES``.

    Stats, per platform: ``livefleet/ratelimit/reserved/<platform>`` (sends granted),
    ``waited_s/<platform>`` (seconds slept in all), ``delayed/<platform>`` (requests that
    slept), ``max_wait_s/<platform>``, ``rechecked/<platform>`` (backlog past the horizon),
    ``late/<platform>`` (woke up too late, took a new send time) and ``fallback/<platform>``
    (sent without the fleet limit: Redis unreachable).
    """

    def __init__(self, crawler: Crawler, limiter: FleetRateLimiter, rates: Mapping[str, float],
                 ceilings: Mapping[str, float] | None = None,
                 overrides: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.crawler = crawler
        self.limiter = limiter
        self.rates = dict(rates)
        self.ceilings = dict(ceilings or {})
        self.overrides = {str(k): {str(p): float(r) for p, r in v.items()} for k, v in (overrides or {}).items()}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        rates = _positive(value(settings, "LIVEFLEET_IDENTITY_RATES"))
        ceilings = _positive(value(settings, "LIVEFLEET_FLEET_RATES"))
        if not rates and not ceilings:
            raise NotConfigured("no fleet-wide rate is set (LIVEFLEET_IDENTITY_RATES, LIVEFLEET_FLEET_RATES)")
        limiter = FleetRateLimiter(
            get_redis(redis_url_from_settings(settings)),
            value(settings, "LIVEFLEET_KEY_PREFIX"),
            burst=value(settings, "LIVEFLEET_FLEET_BURST"),
            max_wait=value(settings, "LIVEFLEET_FLEET_MAX_WAIT_SECONDS"),
        )
        return cls(crawler, limiter, rates, ceilings, value(settings, "LIVEFLEET_IDENTITY_RATE_OVERRIDES"))

    def rate_of(self, platform: str, identity: str, label: str | None = None) -> float | None:
        """Requests/s through ``identity`` to ``platform`` for the whole fleet (None: no limit).

        An override may name the identity by its id or its label (``scheme://host:port``)."""
        for name in (identity, label):
            found = self.overrides.get(name) if name else None
            if found is not None and platform in found:
                return found[platform] if found[platform] > 0 else None
        return self.rates.get(platform)

    async def process_request(self, request: Request) -> None:
        platform = request.meta.get(PLATFORM_META) or request.meta.get("download_slot")
        if not isinstance(platform, str) or request.meta.get(UNLIMITED_META):
            return None
        identity = request.meta.get(EGRESS_META) or DIRECT
        rate = self.rate_of(platform, identity, request.meta.get(EGRESS_LABEL_META))
        ceiling = self.ceilings.get(platform)
        if rate is None:
            if ceiling is None:
                return None
            rate, ceiling = ceiling, None  # no identity limit: the platform's ceiling is the one bucket
            identity_key: str | None = None
        else:
            identity_key = identity
        stats = self.crawler.stats
        assert stats is not None
        slept, late_wakes = 0.0, 0
        while True:
            # Off the reactor thread: the call is short, but redis-py retries a lost connection
            # with backoff, and that must not stall every other request of the worker.
            reservation, answered = await asyncio.to_thread(self._reserve, platform, rate, identity_key, ceiling)
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
                if late > max((self.limiter.burst - 0.5) / rate, LATE_SECONDS) and late_wakes < LATE_RETRIES:
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

    def _reserve(self, platform: str, rate: float, identity: str | None = None,
                 ceiling: float | None = None) -> tuple[Reservation | None, float]:
        """The limiter's answer and when it came (this process's monotonic clock)."""
        reservation = self.limiter.reserve(platform, rate, identity=identity, ceiling=ceiling)
        return reservation, time.monotonic()


def _positive(rates: Mapping[str, Any]) -> dict[str, float]:
    return {str(platform): float(rate) for platform, rate in rates.items() if float(rate) > 0}
