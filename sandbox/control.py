"""Control endpoints under ``/__sandbox__/``: health, ground truth, served log, stats, knobs.

These are for tests and operators, never for spiders, and chaos never touches them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from sandbox.base import Platform
from sandbox.chaos import Chaos
from sandbox.world import WorldClock, beijing_text

PREFIX = "/__sandbox__"
_dumps = partial(json.dumps, ensure_ascii=False)


@dataclass
class SandboxState:
    """Everything the control endpoints reach: shared by the whole app."""

    config: Any  # SandboxConfig (typed loosely to avoid an import cycle with server.py)
    clock: WorldClock
    chaos: Chaos
    platforms: dict[str, Platform] = field(default_factory=dict)


STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps)


def _platform(request: web.Request) -> Platform:
    """The ``?platform=`` of the request; the only one when the sandbox serves just one."""
    platforms = request.app[STATE].platforms
    name = request.query.get("platform")
    if name is None and len(platforms) == 1:
        return next(iter(platforms.values()))
    if name not in platforms:
        raise web.HTTPBadRequest(
            text=_dumps({"error": f"unknown platform {name!r}", "known": sorted(platforms)}),
            content_type="application/json",
        )
    return platforms[name]


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=_dumps({"error": "expected a JSON object"}), content_type="application/json"
        )
    return body


async def health(request: web.Request) -> web.Response:
    """``GET /__sandbox__/health``."""
    return _json({"ok": True})


async def truth(request: web.Request) -> web.Response:
    """``GET /__sandbox__/truth?platform=``: the world as of now, in the platform's field names."""
    return _json(_platform(request).truth())


async def served(request: web.Request) -> web.Response:
    """``GET /__sandbox__/served?platform=[&room_id=]``: live values served, oldest first."""
    return _json(_platform(request).served.rows(request.query.get("room_id")))


async def clear_served(request: web.Request) -> web.Response:
    """``DELETE /__sandbox__/served?platform=``."""
    log = _platform(request).served
    count = len(log)
    log.clear()
    return _json({"ok": True, "cleared": count})


async def stats(request: web.Request) -> web.Response:
    """``GET /__sandbox__/stats``: requests per endpoint, per chaos outcome and per client address."""
    state = request.app[STATE]
    out = state.chaos.stats.as_dict()
    out["served_rows"] = {name: len(p.served) for name, p in state.platforms.items()}
    return _json(out)


async def reset_stats(request: web.Request) -> web.Response:
    """``POST /__sandbox__/stats/reset``: zero every counter of ``/stats`` (served logs and rate-limit
    state stay: ``DELETE /served`` clears the former, and the latter is the platform's memory of its
    clients, not a statistic)."""
    request.app[STATE].chaos.stats.reset()
    return _json({"ok": True})


async def get_config(request: web.Request) -> web.Response:
    """``GET /__sandbox__/config``: the chaos settings now in force."""
    return _json(request.app[STATE].chaos.settings.as_dict())


async def set_config(request: web.Request) -> web.Response:
    """``POST /__sandbox__/config`` with a JSON object of settings to change (all or nothing)."""
    settings = request.app[STATE].chaos.settings
    try:
        settings.update(await _json_body(request))
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json(settings.as_dict())


def _clock_view(clock: WorldClock) -> dict[str, Any]:
    now = clock.now()
    return {"world_time": now, "world_time_text": beijing_text(now), "time_scale": clock.scale}


async def get_clock(request: web.Request) -> web.Response:
    """``GET /__sandbox__/clock``: world time and speed."""
    return _json(_clock_view(request.app[STATE].clock))


async def set_clock(request: web.Request) -> web.Response:
    """``POST /__sandbox__/clock`` ``{"time_scale": x, "advance_seconds": s}`` (both optional)."""
    clock = request.app[STATE].clock
    body = await _json_body(request)
    unknown = set(body) - {"time_scale", "advance_seconds"}
    values = [body.get("time_scale", 0), body.get("advance_seconds", 0)]
    if unknown or any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        return _json({"error": "expected numbers time_scale (>= 0) and/or advance_seconds"}, status=400)
    if "time_scale" in body:
        if body["time_scale"] < 0:
            return _json({"error": "time_scale must be >= 0"}, status=400)
        clock.set_scale(body["time_scale"])
    if "advance_seconds" in body:
        clock.advance(body["advance_seconds"])
    return _json(_clock_view(clock))


async def info(request: web.Request) -> web.Response:
    """``GET /__sandbox__/info``: how this sandbox was started and which hosts it serves."""
    state = request.app[STATE]
    cfg = state.config
    return _json(
        {
            "seed": cfg.seed,
            "streamers": cfg.streamers,
            "faults": cfg.faults,
            "platforms": {name: list(p.hosts) for name, p in state.platforms.items()},
        }
    )


def add_control_routes(app: web.Application) -> None:
    """Register every ``/__sandbox__/`` endpoint."""
    r = app.router
    r.add_get(f"{PREFIX}/health", health)
    r.add_get(f"{PREFIX}/truth", truth)
    r.add_get(f"{PREFIX}/served", served)
    r.add_delete(f"{PREFIX}/served", clear_served)
    r.add_get(f"{PREFIX}/stats", stats)
    r.add_post(f"{PREFIX}/stats/reset", reset_stats)
    r.add_get(f"{PREFIX}/config", get_config)
    r.add_post(f"{PREFIX}/config", set_config)
    r.add_get(f"{PREFIX}/clock", get_clock)
    r.add_post(f"{PREFIX}/clock", set_clock)
    r.add_get(f"{PREFIX}/info", info)
