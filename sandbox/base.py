"""What every platform module of the sandbox provides, and the helpers they share.

A platform owns some real host names (served under ``/<host>/...``), its own world, the
log of live values it served, and the platform-specific shapes of a block (rate limit,
risk control) that ``chaos.py`` sends in its name.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json; charset=utf-8"
#: The real sites answer from openresty; blocks are recognised by it too.
SERVER = "openresty"


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as the platforms send it (no ASCII escaping, no spaces)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def raw_response(
    body: bytes, status: int = 200, content_type: str = JSON_TYPE, headers: dict[str, str] | None = None
) -> web.Response:
    """A response with pre-encoded ``body`` (cheaper than ``web.json_response``)."""
    all_headers = {"Content-Type": content_type, "Server": SERVER}
    if headers:
        all_headers.update(headers)
    return web.Response(body=body, status=status, headers=all_headers)


class ServedLog:
    """The last ``limit`` live values a platform served, for tests to match stored snapshots.

    Rows are kept as tuples (cheap on the hot path) and turned into dicts on read.
    """

    def __init__(self, limit: int) -> None:
        self._rows: deque[tuple[str, Any, int, int | None, float, dict[str, Any] | None]] = deque(
            maxlen=max(1, limit)
        )

    def add(
        self,
        endpoint: str,
        room_id: Any,
        live_status: int,
        online: int | None,
        served_at: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record one served value (``extra`` holds endpoint-specific values, e.g. popularity)."""
        self._rows.append((endpoint, room_id, live_status, online, served_at, extra))

    def rows(self, room_id: str | None = None) -> list[dict[str, Any]]:
        """All rows, oldest first; only those of ``room_id`` (compared as text) when given."""
        out = []
        for endpoint, rid, status, online, at, extra in self._rows:
            if room_id is not None and str(rid) != room_id:
                continue
            row = {
                "endpoint": endpoint,
                "room_id": rid,
                "live_status": status,
                "online": online,
                "served_at": at,
            }
            if extra:
                row.update(extra)
            out.append(row)
        return out

    def clear(self) -> None:
        """Forget every row."""
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


class Platform(ABC):
    """One replicated platform: routes, world, ground truth and block answers."""

    #: Platform name used in ``?platform=`` of the control endpoints.
    name: str = ""
    #: Real host names this platform answers for (each becomes a path prefix).
    hosts: tuple[str, ...] = ()

    def __init__(self, served_limit: int) -> None:
        self.served = ServedLog(served_limit)

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register every endpoint under ``/<host>/<real path>``; route names ``<platform>:<endpoint>``."""

    @abstractmethod
    def truth(self) -> dict[str, Any]:
        """The ground truth of the world as of now, in the platform's own field names."""

    @abstractmethod
    def client_key(self, request: web.Request) -> str:
        """Who is asking, as the platform's rate limiter tells clients apart."""

    @abstractmethod
    def rate_limited(self, request: web.Request) -> web.Response:
        """The platform's answer to a client over its rate limit."""

    @abstractmethod
    def risk_blocked(self, request: web.Request) -> web.Response:
        """The platform's risk-control answer (a soft block with HTTP 200 where the site does so)."""
