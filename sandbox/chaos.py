"""Misbehaviour of the sandbox: rate limits, random 5xx, slow answers, risk-control blocks.

All of it lives in one aiohttp middleware that runs before any platform handler and
never touches ``/__sandbox__/`` control endpoints. Random draws come from a per-seed
hash of the request's sequence number, so a run with the same request order sees the
same faults.

Two rate limits, as the real platforms have them: per client *address* (``address_rate_limit``:
the edge's limit, whatever cookies a client sends, so fresh visitor cookies do not buy a crawler
more requests from one address), then per *client* (``rate_limit``: the platform's visitor
cookie, else address and User-Agent). The address limit comes first, as the edge sees every
request before the site does: a request it refuses costs the client nothing further, and one
the cookie limit refuses has still used its address's slot. Either refusal is the platform's own
over-rate answer. Per-address counters (``SandboxStats.addresses``) let a benchmark check what
each egress address was granted.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from sandbox.base import SERVER, Platform
from sandbox.world import unit

CONTROL_PREFIX = "/__sandbox__/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ERROR_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


@dataclass
class ChaosSettings:
    """The run-time chaos knobs (``POST /__sandbox__/config`` changes them)."""

    rate_limit: float = 40.0  # requests/s per client; 0 = no limit
    error_rate: float = 0.02  # share of answers replaced by a 502/503
    slow_rate: float = 0.02  # share of answers delayed by slow_seconds
    slow_seconds: float = 1.5
    block_rate: float = 0.01  # share of answers replaced by the risk-control block
    # Every Nth platform answer (0: none) is replaced by an oversized one, alternately a gzip bomb
    # (a small body that inflates to oversize_bytes) and a plain body of oversize_bytes: what a
    # hostile or broken origin can send a crawler, whatever the platform.
    oversize_every: float = 0
    oversize_bytes: float = 64 * 1024 * 1024
    # Requests/s per client address (``request.remote``) and platform, whatever cookies it sends
    # (0: none); checked before ``rate_limit``. Its burst, in requests, is small as a real edge's
    # (>= 1); see ``AddressLimiter`` for the timer-jitter tolerance on top of it.
    address_rate_limit: float = 0.0
    address_burst: float = 1.0

    _RATES = ("error_rate", "slow_rate", "block_rate")
    _AT_LEAST_ONE = ("address_burst",)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` after checking all of them (all or nothing); ValueError if bad."""
        known = {f for f in asdict(self)}
        checked: dict[str, float] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number")
            if value < 0 or (key in self._RATES and value > 1) or (key in self._AT_LEAST_ONE and value < 1):
                raise ValueError(f"{key} out of range: {value}")
            checked[key] = float(value)
        for key, value in checked.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, float]:
        """The settings as JSON-ready values."""
        return asdict(self)


class RateLimiter:
    """Token buckets per client: ``rate`` tokens/s, burst of about one second's worth."""

    _MAX_CLIENTS = 50_000

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}

    def allow(self, client: str, rate: float, now: float) -> bool:
        """Take one token for ``client``; False when its bucket is empty."""
        burst = max(1.0, rate)
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self._MAX_CLIENTS:
                # Forget full (idle) buckets first: a fresh bucket would be full anyway.
                self._buckets = {k: b for k, b in self._buckets.items() if b[0] + (now - b[1]) * rate < burst}
            self._buckets[client] = [burst - 1.0, now]
            return True
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False


class AddressLimiter:
    """Per-key rate limit as GCRA (a token bucket kept as one "theoretical arrival time").

    A request is allowed when it comes no earlier than its slot minus a tolerance, and then
    moves the key's next slot one interval (``1 / rate``) on; a refused request moves nothing.
    The tolerance is ``(burst - 1)`` intervals, the burst proper, plus a jitter allowance of
    ``max(JITTER_SHARE * interval, JITTER_FLOOR)``: a client pacing itself at exactly ``rate``
    arrives a little early or late as timers, event loops and proxies go, and with a bucket of
    one token a request a millisecond early would be refused. Any delay pattern within the
    allowance passes (the gap between its slot and an arrival never exceeds the largest delay
    seen), while the long-run rate granted stays exactly ``rate``: the allowance adds to what
    any window grants at most ``ceil(allowance * rate)`` requests (one up to 25 requests/s),
    never a rate. The floor covers the absolute noise that dominates at high rates, where half
    an interval is only milliseconds.
    """

    JITTER_SHARE = 0.5
    JITTER_FLOOR = 0.02  # seconds
    _MAX_KEYS = 50_000

    def __init__(self) -> None:
        self._slots: dict[Hashable, float] = {}

    def allow(self, key: Hashable, rate: float, burst: float, now: float) -> bool:
        """One request of ``key`` at ``now`` (seconds): True if within ``rate``/s and ``burst``."""
        interval = 1.0 / rate
        tolerance = (max(1.0, burst) - 1.0) * interval + max(self.JITTER_SHARE * interval, self.JITTER_FLOOR)
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= self._MAX_KEYS:
                # Forget keys whose slot has passed: they are as good as new.
                self._slots = {k: t for k, t in self._slots.items() if t > now}
            slot = now
        elif slot - now > tolerance:
            return False
        self._slots[key] = max(slot, now) + interval
        return True


@dataclass(slots=True)
class AddressCounts:
    """What one client address asked for and was granted (platform requests only).

    ``limited`` counts refusals by either rate limit; ``ok`` the rest (which chaos may still
    have answered with a 5xx or a block). ``first``/``last`` are the sandbox's ``time.monotonic()``
    of the first and last ``ok`` request, so ``(ok - 1) / (last - first)`` is the rate granted.
    """

    requests: int = 0
    limited: int = 0
    ok: int = 0
    first: float | None = None
    last: float | None = None

    def granted(self, now: float) -> None:
        """Count one request that no rate limit refused."""
        self.ok += 1
        if self.first is None:
            self.first = now
        self.last = now


class SandboxStats:
    """Requests per endpoint, per chaos outcome and per client address, for ``GET /__sandbox__/stats``."""

    def __init__(self) -> None:
        self.endpoints: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.oversized: Counter[str] = Counter()  # oversized answers per endpoint
        self.addresses: dict[str, AddressCounts] = {}

    def address(self, remote: str) -> AddressCounts:
        """The counters of client address ``remote`` (created on first use)."""
        counts = self.addresses.get(remote)
        if counts is None:
            counts = self.addresses[remote] = AddressCounts()
        return counts

    def reset(self) -> None:
        """Forget every counter (``POST /__sandbox__/stats/reset``); rate-limit state is not stats."""
        self.endpoints.clear()
        self.outcomes.clear()
        self.oversized.clear()
        self.addresses.clear()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "endpoints": dict(self.endpoints),
            "outcomes": dict(self.outcomes),
            "oversized": dict(self.oversized),
            "total": sum(self.endpoints.values()),
            "addresses": {remote: asdict(counts) for remote, counts in self.addresses.items()},
        }


def error_page(code: int) -> web.Response:
    """An openresty 5xx page, as a gateway in front of the real site sends it."""
    body = _ERROR_PAGE.format(code=code, reason=_REASONS[code]).encode()
    return web.Response(body=body, status=code, headers={"Content-Type": "text/html", "Server": SERVER})


@functools.lru_cache(maxsize=4)
def _oversized_body(size: int, bomb: bool) -> bytes:
    if bomb:
        return gzip.compress(b"\0" * size, compresslevel=9)  # ~1000x smaller than what it inflates to
    return b" " * size


def oversized(size: int, *, bomb: bool) -> web.Response:
    """An answer of ``size`` bytes: a gzip bomb (``Content-Encoding: gzip``) or a plain body that large."""
    headers = {"Content-Type": "application/json", "Server": SERVER}
    if bomb:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=_oversized_body(size, bomb), headers=headers)


class Chaos:
    """The chaos middleware and its state (settings, buckets, counters)."""

    def __init__(
        self,
        seed: int,
        settings: ChaosSettings,
        platforms: Mapping[str, Platform],
        stats: SandboxStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seed = seed
        self.settings = settings
        self.stats = stats
        self.limiter = RateLimiter()
        self.address_limiter = AddressLimiter()
        self._by_host = dict(platforms)
        self._counter = itertools.count()
        self._clock = clock

    def _draw(self, salt: int, n: int) -> float:
        return unit(self.seed, salt, n)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply, in order: address rate limit, client rate limit, oversize, random 5xx, random block,
        random delay; then the handler."""
        path = request.path
        if path.startswith(CONTROL_PREFIX):
            return await handler(request)
        slash = path.find("/", 1)
        platform = self._by_host.get(path[1:slash] if slash > 0 else path[1:])
        route = request.match_info.route
        if platform is None or request.match_info.http_exception is not None or route.name is None:
            self.stats.endpoints["unknown"] += 1
            return await handler(request)
        self.stats.endpoints[route.name] += 1
        s = self.settings
        remote = request.remote or ""
        counts = self.stats.address(remote)
        counts.requests += 1
        now = self._clock()
        if s.address_rate_limit > 0 and not self.address_limiter.allow(
            (platform.name, remote), s.address_rate_limit, s.address_burst, now
        ):
            self.stats.outcomes["address_limited"] += 1
            counts.limited += 1
            return platform.rate_limited(request)
        if s.rate_limit > 0 and not self.limiter.allow(platform.client_key(request), s.rate_limit, now):
            self.stats.outcomes["rate_limited"] += 1
            counts.limited += 1
            return platform.rate_limited(request)
        counts.granted(now)
        n = next(self._counter)
        every = int(s.oversize_every)
        if every >= 1 and n % every == every - 1:
            self.stats.outcomes["oversized"] += 1
            self.stats.oversized[route.name] += 1
            return oversized(int(s.oversize_bytes), bomb=(n // every) % 2 == 0)
        if s.error_rate > 0 and self._draw(0xE5, n) < s.error_rate:
            self.stats.outcomes["error_5xx"] += 1
            return error_page(502 if self._draw(0xE6, n) < 0.5 else 503)
        if s.block_rate > 0 and self._draw(0xB1, n) < s.block_rate:
            self.stats.outcomes["blocked"] += 1
            return platform.risk_blocked(request)
        if s.slow_rate > 0 and self._draw(0x51, n) < s.slow_rate:
            self.stats.outcomes["slow"] += 1
            await asyncio.sleep(s.slow_seconds)
        else:
            self.stats.outcomes["ok"] += 1
        return await handler(request)
