"""The sandbox HTTP server: configuration, app assembly and the process entry point.

``python -m sandbox --port 0`` binds 127.0.0.1 on a port the OS picks, prints
``sandbox listening on http://127.0.0.1:PORT`` (one line, flushed) and serves until
SIGTERM/SIGINT. Every real host is served under a path prefix equal to its name, e.g.
``/api.live.bilibili.com/room/v1/Room/get_info``; control endpoints are under ``/__sandbox__/``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from sandbox.base import Platform
from sandbox.bilibili.routes import BilibiliPlatform
from sandbox.chaos import Chaos, ChaosSettings, SandboxStats
from sandbox.control import STATE, SandboxState, add_control_routes
from sandbox.world import BEIJING, DEFAULT_START, WorldClock

HOST = "127.0.0.1"


@dataclass(frozen=True)
class SandboxConfig:
    """Every start-up option of the sandbox (the chaos ones can change later at run time)."""

    port: int = 0
    seed: int = 7
    streamers: int = 300
    time_scale: float = 60.0
    start: float = DEFAULT_START
    faults: bool = True
    rate_limit: float = 40.0
    error_rate: float = 0.02
    slow_rate: float = 0.02
    slow_seconds: float = 1.5
    block_rate: float = 0.01
    address_rate_limit: float = 0.0
    address_burst: float = 1.0
    served_limit: int = 200_000
    platforms: tuple[str, ...] = ("bilibili", "douyin", "kuaishou", "taobao")

    def chaos_settings(self) -> ChaosSettings:
        """The initial run-time chaos settings."""
        return ChaosSettings(
            rate_limit=self.rate_limit,
            error_rate=self.error_rate,
            slow_rate=self.slow_rate,
            slow_seconds=self.slow_seconds,
            block_rate=self.block_rate,
            address_rate_limit=self.address_rate_limit,
            address_burst=self.address_burst,
        )


def _lazy(module: str, cls: str) -> Callable[[SandboxConfig, WorldClock], Platform]:
    """A factory importing ``module.cls`` on use: each platform module is independent."""

    def build(cfg: SandboxConfig, clock: WorldClock) -> Platform:
        platform_cls = getattr(importlib.import_module(module), cls)
        return platform_cls(cfg.seed, cfg.streamers, cfg.faults, clock, cfg.served_limit)  # type: ignore[no-any-return]

    return build


#: Platform name -> factory ``(config, clock) -> Platform``. Every platform class takes
#: ``(seed, streamers, faults, clock, served_limit)``.
PLATFORMS: dict[str, Callable[[SandboxConfig, WorldClock], Platform]] = {
    "bilibili": lambda cfg, clock: BilibiliPlatform(
        cfg.seed, cfg.streamers, cfg.faults, clock, cfg.served_limit
    ),
    "douyin": _lazy("sandbox.douyin.routes", "DouyinPlatform"),
    "kuaishou": _lazy("sandbox.kuaishou.routes", "KuaishouPlatform"),
    "taobao": _lazy("sandbox.taobao.routes", "TaobaoPlatform"),
}


def _start_time(text: str) -> float:
    """``now``, unix seconds, or an ISO datetime (naive = Beijing time)."""
    if text == "now":
        return datetime.now(tz=BEIJING).timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=BEIJING)).timestamp()


def _non_negative(kind: type) -> Callable[[str], float]:
    def convert(text: str) -> float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
        return value

    return convert


def _at_least_one(text: str) -> float:
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within [0, 1]: {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> SandboxConfig:
    """Parse command-line flags into a ``SandboxConfig``."""
    d = SandboxConfig()
    p = argparse.ArgumentParser(prog="livefleet sandbox", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=d.port, help="TCP port on 127.0.0.1 (0: the OS picks one)")
    p.add_argument("--seed", type=int, default=d.seed, help="world seed (same seed, same world)")
    p.add_argument("--streamers", type=_non_negative(int), default=d.streamers, help="streamers per platform")
    p.add_argument(
        "--time-scale",
        type=_non_negative(float),
        default=d.time_scale,
        help="world seconds per real second (0 freezes the world)",
    )
    p.add_argument(
        "--start",
        type=_start_time,
        default=d.start,
        help="world start: 'now', unix seconds or ISO time (default 2026-06-01 20:00 Beijing)",
    )
    p.add_argument("--no-faults", dest="faults", action="store_false", help="no fault rooms")
    p.add_argument(
        "--rate-limit",
        type=_non_negative(float),
        default=d.rate_limit,
        help="requests/s per client (the platform's visitor cookie, else address + User-Agent); 0 = none",
    )
    p.add_argument("--error-rate", type=_rate, default=d.error_rate, help="share of random 502/503 answers")
    p.add_argument("--slow-rate", type=_rate, default=d.slow_rate, help="share of delayed answers")
    p.add_argument("--slow-seconds", type=_non_negative(float), default=d.slow_seconds, help="delay of those")
    p.add_argument(
        "--block-rate", type=_rate, default=d.block_rate, help="share of risk-control (-352) answers"
    )
    p.add_argument(
        "--address-rate-limit",
        type=_non_negative(float),
        default=d.address_rate_limit,
        help="requests/s per client address and platform, whatever its cookies (checked before --rate-limit); "
        "0 = none. Kept by --no-chaos",
    )
    p.add_argument(
        "--address-burst",
        type=_at_least_one,
        default=d.address_burst,
        help="burst of the address limit, in requests (>= 1; a little timer jitter is tolerated on top)",
    )
    p.add_argument(
        "--no-chaos",
        action="store_true",
        help="shorthand: every rate above and the (cookie) rate limit 0; an --address-rate-limit given stays",
    )
    p.add_argument(
        "--served-limit",
        type=_non_negative(int),
        default=d.served_limit,
        help="rows kept in the served log per platform",
    )
    p.add_argument(
        "--platforms", default=",".join(d.platforms), help=f"comma list of: {', '.join(PLATFORMS)}"
    )
    a = p.parse_args(argv)
    platforms = tuple(name.strip() for name in a.platforms.split(",") if name.strip())
    unknown = [name for name in platforms if name not in PLATFORMS]
    if unknown or not platforms:
        p.error(f"unknown platform(s) {unknown}; known: {sorted(PLATFORMS)}")
    if a.streamers < 1:
        p.error("--streamers must be >= 1")
    chaos_off = a.no_chaos
    return SandboxConfig(
        port=a.port,
        seed=a.seed,
        streamers=a.streamers,
        time_scale=a.time_scale,
        start=a.start,
        faults=a.faults,
        rate_limit=0.0 if chaos_off else a.rate_limit,
        error_rate=0.0 if chaos_off else a.error_rate,
        slow_rate=0.0 if chaos_off else a.slow_rate,
        slow_seconds=a.slow_seconds,
        block_rate=0.0 if chaos_off else a.block_rate,
        # Not random chaos but how a platform judges addresses: tests want it without the rest.
        address_rate_limit=a.address_rate_limit,
        address_burst=a.address_burst,
        served_limit=a.served_limit,
        platforms=platforms,
    )


def build_app(config: SandboxConfig, clock: WorldClock | None = None) -> web.Application:
    """Assemble the application: platforms (worlds built here, once), chaos middleware, control routes."""
    clock = clock or WorldClock(config.start, config.time_scale)
    platforms = {name: PLATFORMS[name](config, clock) for name in config.platforms}
    by_host = {host: p for p in platforms.values() for host in p.hosts}
    chaos = Chaos(config.seed, config.chaos_settings(), by_host, SandboxStats())
    app = web.Application(middlewares=[chaos.middleware])
    app[STATE] = SandboxState(config=config, clock=clock, chaos=chaos, platforms=platforms)
    add_control_routes(app)
    for platform in platforms.values():
        platform.add_routes(app)
    return app


async def serve(config: SandboxConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve ``config`` on 127.0.0.1 until SIGTERM/SIGINT; ``ready(url)`` once bound."""
    runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        # Port 0 is resolved by the OS at bind time; we read back what it chose.
        site = web.TCPSite(runner, HOST, config.port, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        url = f"http://{HOST}:{port}"
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox: print its address once bound, serve until told to stop, return 0."""
    config = parse_args(argv)
    asyncio.run(serve(config, lambda url: print(f"sandbox listening on {url}", flush=True)))
    return 0
