"""Misbehaviour of the sandbox: rate limits, random 5xx, slow answers, risk-control blocks.

All of it lives in one aiohttp middleware that runs before any platform handler and
never touches ``/__sandbox__/`` control endpoints. Random draws come from a per-seed
hash of the request's sequence number, so a run with the same request order sees the
same faults.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
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

    _RATES = ("error_rate", "slow_rate", "block_rate")

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` after checking all of them (all or nothing); ValueError if bad."""
        known = {f for f in asdict(self)}
        checked: dict[str, float] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number")
            if value < 0 or (key in self._RATES and value > 1):
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


class SandboxStats:
    """Requests per endpoint and per chaos outcome, for ``GET /__sandbox__/stats``."""

    def __init__(self) -> None:
        self.endpoints: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "endpoints": dict(self.endpoints),
            "outcomes": dict(self.outcomes),
            "total": sum(self.endpoints.values()),
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
        self._by_host = dict(platforms)
        self._counter = itertools.count()
        self._clock = clock

    def _draw(self, salt: int, n: int) -> float:
        return unit(self.seed, salt, n)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply, in order: rate limit, random 5xx, random block, random delay; then the handler."""
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
        if s.rate_limit > 0 and not self.limiter.allow(
            platform.client_key(request), s.rate_limit, self._clock()
        ):
            self.stats.outcomes["rate_limited"] += 1
            return platform.rate_limited(request)
        n = next(self._counter)
        every = int(s.oversize_every)
        if every >= 1 and n % every == every - 1:
            self.stats.outcomes["oversized"] += 1
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
