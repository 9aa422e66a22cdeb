"""Egress: each platform request leaves through one identity, picked when it is about to be downloaded.

The egress middleware (before the session middleware) gives a platform request an
identity (``crawlers/download/identities.py``): the machine's own address or one
proxy. A request travels between workers through Redis without one, like
without a session, because an identity only matters at the moment of sending.
It then:

* sets Scrapy's ``meta["proxy"]`` (``None`` for direct; Scrapy's proxy middleware
  turns a proxy's credentials into a ``Proxy-Authorization`` header, which never
  leaves the worker: ``spiders/meta.py``'s worker-local keys and headers) and,
  for a rendered page, the browser context's proxy, so every page, plain or
  rendered, goes out through its identity;
* makes the request's download slot ``<platform>@<identity>`` (a proxy's; the
  direct identity keeps ``<platform>``), with the platform's slot settings, so a
  worker spaces its requests per identity as before per platform;
* lets the session middleware pick a session of that identity, and the fleet
  rate limiter hold the request for the (platform, identity) bucket;
* counts the outcome against the identity's health (``egress_health.py``): an
  answer is good; a connection, tunnel or proxy-authentication failure is an
  error; a block page, reported by the spider through its session pool, is a
  block. Scrapy's retry middleware then retries a failed request, and it gets
  another identity.

Picking: among the identities whose health is ``ok`` toward the platform, the one
with the fewest requests of this worker in flight (round robin among equals). A
rested identity whose rest is over takes back one request first, its probe;
only when it answers do the others follow. If every identity rests, requests
wait (they keep their leases) until the first rest ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self

import redis
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    ResponseDataLossError,
)
from scrapy.http import Response
from twisted.internet.error import (
    ConnectError,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

from crawlers.download.egress_health import EgressHealth, HealthPolicy, Standing
from crawlers.download.identities import Identity, IdentitySource
from crawlers.download.sessions import identity_blocked
from crawlers.redis.connection import get_redis, redact, redis_url_from_settings
from models.platforms import PLATFORMS
from settings.defaults import value
from spiders.meta import EGRESS_LABEL_META, EGRESS_META, PINNED_META, PLATFORM_META

logger = logging.getLogger(__name__)

try:  # Scrapy's CONNECT tunnel failure (a proxy that refuses or cannot reach the site)
    from scrapy.core.downloader.handlers.http11 import TunnelError
except ImportError:  # pragma: no cover - moved in some Scrapy versions
    TunnelError = ConnectError  # type: ignore[misc,assignment]

#: Failures that say the way out is broken (not the page): they count against the identity. Scrapy
#: 2.13+ raises its own classes (``scrapy.exceptions.Download*``); Twisted's are kept for handlers
#: that still raise them. A too-large body (``DownloadCancelledError``) is the page, not the way out.
EGRESS_FAILURES = (DownloadConnectionRefusedError, CannotResolveHostError, DownloadTimeoutError, DownloadFailedError,
                   ResponseDataLossError, ConnectError, ConnectionRefusedError, ConnectionLost, DNSLookupError,
                   TCPTimedOutError, TimeoutError, ResponseNeverReceived, ResponseFailed, TunnelError, OSError)
#: Longest one wait for an identity when all of them rest (then the pick is tried again).
WAIT_STEP_SECONDS = 1.0
#: How long a probe's page that downloaded waits for the spider's verdict before it counts as the
#: identity's recovery: a block page downloads like any page, and only the spider tells it.
PROBE_VERDICT_SECONDS = 0.5


@dataclass
class _Outcomes:
    ok: int = 0
    latency_ms: float = 0.0


class EgressPool:
    """This worker's view of the fleet's identities: which to use, and their health to report.

    ``pick`` and ``begin``/``end`` run on the reactor thread; a background thread re-reads
    the identity list, sends failures at once and good outcomes once a second, and reads
    back every (platform, identity) standing (one Redis round trip each time).
    """

    def __init__(self, source: IdentitySource, health: EgressHealth | None, *, refresh: float = 1.0) -> None:
        self.source = source
        self.health = health
        self.refresh = refresh
        # (identities by id, their order), replaced whole by the background thread: one read sees one list
        first = {i.id: i for i in source.current()}
        self._view: tuple[dict[str, Identity], list[str]] = (first, list(first))
        self._turn = itertools.count()
        self._inflight: Counter[tuple[str, str]] = Counter()
        #: (platform, identity) -> (state, rest deadline on this process's monotonic clock)
        self._standing: dict[tuple[str, str], tuple[str, float]] = {}
        self._platforms: set[str] = set()
        self._oks: dict[tuple[str, str], _Outcomes] = {}
        self._oks_lock = threading.Lock()
        self._failures: queue.Queue[tuple[str, str, str, str, str, bool, bool] | None] = queue.Queue()
        self._probing: set[tuple[str, str]] = set()
        #: probes whose page downloaded, awaiting the spider's verdict: pair -> when it is due
        self._verdicts: dict[tuple[str, str], float] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.redis_down = False

    # -- the identities ----------------------------------------------------------------------

    @property
    def _identities(self) -> dict[str, Identity]:
        return self._view[0]

    def identities(self) -> list[Identity]:
        found, order = self._view
        return [found[i] for i in order]

    def get(self, identity: str) -> Identity | None:
        return self._view[0].get(identity)

    def _adopt(self, identities: Iterable[Identity]) -> list[str]:
        """Take a new list (the reactor thread's next pick uses it); returns the ids that left."""
        new = {i.id: i for i in identities}
        gone = [i for i in self._view[0] if i not in new]
        self._view = (new, list(new))
        return gone

    # -- picking (reactor thread) ------------------------------------------------------------

    def state(self, platform: str, identity: str, now: float | None = None) -> tuple[str, float]:
        """(state, seconds of rest left) as last seen; unknown pairs are ``ok``."""
        state, until = self._standing.get((platform, identity), ("ok", 0.0))
        now = time.monotonic() if now is None else now
        return state, max(0.0, until - now)

    def pick(self, platform: str, now: float | None = None) -> tuple[Identity | None, float]:
        """An identity to send a request to ``platform`` through, or (None, seconds to wait).

        A rested identity whose rest is over comes back with a probe: the caller must then
        ask :meth:`take_probe` (Redis) before using it; :meth:`pick` returns it with a wait of
        -1 to say so."""
        self._platforms.add(platform)
        now = time.monotonic() if now is None else now
        found, order = self._view
        turn = next(self._turn) % max(1, len(order))
        best: Identity | None = None
        best_key: tuple[int, int] | None = None
        soonest = WAIT_STEP_SECONDS
        for index, identity_id in enumerate(order):  # one pass: thousands of proxies stay cheap
            state, until = self._standing.get((platform, identity_id), ("ok", 0.0))
            if state == "ok":
                key = (self._inflight[(platform, identity_id)], (index - turn) % len(order))
                if best_key is None or key < best_key:
                    best, best_key = found[identity_id], key
            elif state in ("cooling", "retired") and until <= now and (platform, identity_id) not in self._probing:
                return found[identity_id], -1.0
            elif until > now:
                soonest = min(soonest, until - now)
        if best is None:
            return None, soonest
        return best, 0.0

    def take_probe(self, platform: str, identity: str) -> bool:
        """Ask the fleet for the one probe of a rested identity (blocking: call it off the reactor)."""
        if self.health is None:
            return True
        try:
            taken = self.health.take_probe(platform, identity)
        except redis.RedisError:
            return False
        if taken:
            self._probing.add((platform, identity))
            self._standing[(platform, identity)] = ("probing", 0.0)
        else:  # another worker probes it: wait for its answer
            self._standing[(platform, identity)] = ("probing", 0.0)
        return taken

    def begin(self, platform: str, identity: str) -> None:
        self._inflight[(platform, identity)] += 1

    def end(self, platform: str, identity_id: str, outcome: str | None, *, latency: float | None = None,
            error: str = "") -> None:
        """One request through ``identity_id`` ended: ``ok``, ``error``, ``block`` or None (not counted)."""
        pair = (platform, identity_id)
        if self._inflight[pair] > 0:
            self._inflight[pair] -= 1
        if outcome is None:
            return
        identity = self._identities.get(identity_id)
        label = self._label(identity_id)
        probing = pair in self._probing
        if outcome == "ok" and not probing:
            # Counted, sent once a second. It does not end a rest: a request sent before the rest
            # began may answer well during it; only a probe's answer brings the identity back.
            with self._oks_lock:
                tally = self._oks.setdefault(pair, _Outcomes())
                tally.ok += 1
                tally.latency_ms += (latency or 0.0) * 1000
            return
        # A failure, or the answer to this worker's probe: the fleet must know at once.
        self._probing.discard(pair)
        if outcome == "ok":
            # The probe's page downloaded, but it may be a block page: it waits for the spider's verdict
            # (``blocked``) for PROBE_VERDICT_SECONDS, then brings the identity back (``sync``). Until
            # then nothing more goes through it from here.
            with self._oks_lock:
                self._verdicts[pair] = time.monotonic() + PROBE_VERDICT_SECONDS
            self._standing[pair] = ("probing", 0.0)
            return
        if probing:  # until the fleet's answer comes back, nothing more goes through it from here
            self._standing[pair] = ("cooling", time.monotonic() + WAIT_STEP_SECONDS)
        if identity is not None and identity.password:
            error = error.replace(identity.password, "***")
        self._failures.put((platform, identity_id, label, outcome, redact(error)[:300], probing, False))

    def blocked(self, platform: str, identity: str) -> None:
        """A session of ``identity`` drew a block page.

        The page was counted a success when it downloaded (``end``): a block page is an answer like
        any other until the spider reads it. That success is taken back, here while it waits in this
        worker's tally (nearly always), else in Redis: otherwise each block would cancel itself out,
        and an identity refused most of the time would rest only when its refusals happened to
        outrun the once-a-second count of its successes."""
        label = self._label(identity)
        pair = (platform, identity)
        self._probing.discard(pair)
        with self._oks_lock:
            if self._verdicts.pop(pair, None) is not None:  # the probe's page: the probe failed
                self._failures.put((platform, identity, label, "block", "block page", True, False))
                return
            tally = self._oks.get(pair)
            recounted = tally is None or tally.ok == 0
            if not recounted:
                tally.latency_ms -= tally.latency_ms / tally.ok
                tally.ok -= 1
        self._failures.put((platform, identity, label, "block", "block page", False, recounted))

    # -- the background thread ---------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="livefleet-egress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._failures.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.sync(final=True)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                item = self._failures.get(timeout=max(0.0, due - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None:
                self._send_failure(item)
            if time.monotonic() >= due:
                self.sync()
                due = time.monotonic() + self.refresh

    def _send_failure(self, item: tuple[str, str, str, str, str, bool, bool]) -> None:
        platform, identity, label, outcome, error, probe, recounted = item
        if self.health is None:
            return
        try:
            state, left = self.health.record(platform, identity, label, outcome, error=error, probe=probe,
                                             recounted=recounted)
        except redis.RedisError as exc:
            self._redis_went(exc)
            return
        self._standing[(platform, identity)] = (state, time.monotonic() + left)
        if state in ("cooling", "retired"):
            logger.warning("Egress identity %s (%s) %s toward %s for %.0fs: %s", identity, label, state,
                           platform, left, error or outcome)

    def sync(self, *, final: bool = False) -> None:
        """Re-read the identity list, send the good outcomes counted and the probes no block page
        answered within PROBE_VERDICT_SECONDS (all of them when ``final``), read back the standings."""
        try:
            if self.source.refresh():
                gone = self._adopt(self.source.current())
                for identity in gone:
                    logger.info("Egress identity %s left the list: drained (no new requests)", identity)
        except Exception:  # noqa: BLE001 - a broken source must not stop the health thread
            logger.exception("Re-reading the egress identities failed")
        if self.health is None:
            return
        now = time.monotonic()
        with self._oks_lock:
            oks, self._oks = self._oks, {}
            answered = [pair for pair, due in self._verdicts.items() if final or due <= now]
            for pair in answered:
                del self._verdicts[pair]
        for platform, identity in answered:
            self._send_failure((platform, identity, self._label(identity), "ok", "", True, False))
            if self.redis_down:
                break
        try:
            for (platform, identity), tally in oks.items():
                self.health.record(platform, identity, self._label(identity), "ok", count=tally.ok,
                                   latency_ms=tally.latency_ms)
            pairs = [(p, i) for p in sorted(self._platforms) for i in self._view[1]]
            if pairs:
                standings = self.health.standings(pairs)
                now = time.monotonic()
                self._standing = {pair: self._local(pair, found, now) for pair, found in standings.items()}
        except redis.RedisError as exc:
            self._redis_went(exc)
            return
        if self.redis_down:
            self.redis_down = False
            logger.info("Egress health back (Redis answers again)")

    def _label(self, identity: str) -> str:
        """The identity's label (its proxy without credentials), or its id once it left the list."""
        known = self._identities.get(identity)
        return known.label if known is not None else identity

    def _local(self, pair: tuple[str, str], found: Standing, now: float) -> tuple[str, float]:
        if pair in self._probing and found.state == "probing":
            return ("probing", 0.0)
        return (found.state, now + found.rest_left)

    def _redis_went(self, exc: Exception) -> None:
        if not self.redis_down:
            logger.warning("Egress health unavailable (%s): identities are used as last seen", type(exc).__name__)
        self.redis_down = True


def proxy_refused(response: Response) -> bool:
    """Whether a proxy refused the request itself: 407, or a 401 carrying a proxy's challenge
    (tinyproxy answers wrong credentials so). Platforms' public pages never ask for credentials."""
    if response.status == 407:
        return True
    challenge = response.headers.get("Proxy-Authenticate") or response.headers.get("WWW-Authenticate") or b""
    return response.status == 401 and b"proxy" in challenge.lower()


class EgressMiddleware:
    """Downloader middleware giving each platform request an egress identity (see the module)."""

    def __init__(self, crawler: Crawler, pool: EgressPool) -> None:
        self.crawler = crawler
        self.pool = pool

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        source = IdentitySource(
            value(settings, "LIVEFLEET_PROXIES"),
            proxy_file=value(settings, "LIVEFLEET_PROXY_FILE"),
            provider_url=value(settings, "LIVEFLEET_PROXY_PROVIDER_URL"),
            refresh_seconds=value(settings, "LIVEFLEET_PROXY_REFRESH_SECONDS"),
            direct=value(settings, "LIVEFLEET_EGRESS_DIRECT"),
        )
        policy = HealthPolicy(
            strikes=value(settings, "LIVEFLEET_EGRESS_STRIKES"),
            cooldown=value(settings, "LIVEFLEET_EGRESS_COOLDOWN_SECONDS"),
            max_cooldown=value(settings, "LIVEFLEET_EGRESS_MAX_COOLDOWN_SECONDS"),
            retire_after=value(settings, "LIVEFLEET_EGRESS_RETIRE_AFTER"),
        )
        url = redis_url_from_settings(settings)
        health = EgressHealth(get_redis(url), value(settings, "LIVEFLEET_KEY_PREFIX"), policy) if url else None
        middleware = cls(crawler, EgressPool(source, health))
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(middleware.identity_blocked, signal=identity_blocked)
        return middleware

    def spider_opened(self, spider: Spider) -> None:
        identities = self.pool.identities()
        if identities:
            shown = ", ".join(i.label for i in identities[:10])
            more = f" and {len(identities) - 10} more" if len(identities) > 10 else ""
            logger.info("Egress identities (%d): %s%s", len(identities), shown, more)
        else:
            logger.error("No egress identity: no proxy is configured (or none is valid) and "
                         "LIVEFLEET_EGRESS_DIRECT is 'never'; platform requests wait until a proxy list names one")
        self.pool.start()

    def spider_closed(self, spider: Spider) -> None:
        self.pool.stop()

    def identity_blocked(self, platform: str, identity: str) -> None:
        self.pool.blocked(platform, identity)

    async def process_request(self, request: Request) -> None:
        meta = request.meta
        platform = meta.get(PLATFORM_META) or meta.get("download_slot")
        if platform not in PLATFORMS:
            return None
        meta[PLATFORM_META] = platform
        identity = self.pool.get(meta[EGRESS_META]) if meta.get(PINNED_META) and meta.get(EGRESS_META) else None
        stats = self.crawler.stats
        waited = 0.0
        while identity is None:
            found, wait = self.pool.pick(platform)
            if found is not None and wait < 0:  # a rested identity's probe: only one worker sends it
                if await asyncio.to_thread(self.pool.take_probe, platform, found.id):
                    stats.inc_value(f"livefleet/egress/probes/{platform}")
                    identity = found
                continue
            if found is not None:
                identity = found
                break
            stats.inc_value(f"livefleet/egress/waited/{platform}")
            await asyncio.sleep(wait)
            waited += wait
        if waited:
            stats.inc_value(f"livefleet/egress/waited_s/{platform}", waited)
        self._apply(request, platform, identity)
        self.pool.begin(platform, identity.id)
        stats.inc_value(f"livefleet/egress/requests/{platform}/{identity.id}")
        return None

    def _apply(self, request: Request, platform: str, identity: Identity) -> None:
        meta = request.meta
        meta[EGRESS_META] = identity.id
        meta[EGRESS_LABEL_META] = identity.label
        if identity.direct:
            meta["download_slot"] = platform
            meta["proxy"] = None  # Scrapy's proxy middleware drops a previous proxy's credentials
            meta.pop("playwright_context_kwargs", None)
            return
        slot = f"{platform}@{identity.id}"
        meta["download_slot"] = slot
        meta["proxy"] = identity.proxy
        downloader = getattr(getattr(self.crawler, "engine", None), "downloader", None)
        per_slot = getattr(downloader, "per_slot_settings", None)
        if isinstance(per_slot, dict) and slot not in per_slot and platform in per_slot:
            per_slot[slot] = dict(per_slot[platform])  # the platform's per-worker spacing, per identity
        if meta.get("playwright"):
            proxy: dict[str, Any] = {"server": identity.label}
            if identity.username:
                proxy["username"] = identity.username
                proxy["password"] = identity.password or ""
            meta["playwright_context_kwargs"] = {"proxy": proxy}

    def process_response(self, request: Request, response: Response) -> Request | Response:
        identity, platform = request.meta.get(EGRESS_META), request.meta.get(PLATFORM_META)
        if not (identity and platform):
            return response
        if request.meta.get("proxy") and proxy_refused(response):
            # The proxy, not the platform, answered: the page is not in it. Counted against the
            # identity, and sent again (through another identity, picked at the next download).
            self.pool.end(platform, identity, "error", error=f"HTTP {response.status} from the proxy")
            self.crawler.stats.inc_value(f"livefleet/egress/errors/{platform}/{identity}")
            retry = get_retry_request(request, spider=self.crawler.spider,
                                      reason=f"proxy refused (HTTP {response.status})")
            return retry if retry is not None else response
        self.pool.end(platform, identity, "ok", latency=request.meta.get("download_latency"))
        return response

    def process_exception(self, request: Request, exception: BaseException) -> None:
        identity, platform = request.meta.get(EGRESS_META), request.meta.get(PLATFORM_META)
        if identity and platform:
            failed = isinstance(exception, EGRESS_FAILURES)
            self.pool.end(platform, identity, "error" if failed else None,
                          error=f"{type(exception).__name__}: {exception}" if failed else "")
            if failed:
                self.crawler.stats.inc_value(f"livefleet/egress/errors/{platform}/{identity}")
        return None
