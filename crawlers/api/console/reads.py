"""What the console's pages read, each read guarded so that a page shows a banner instead of failing.

:class:`Reads` runs one page's reads: a read whose server does not answer gives its default, and the
server is named in :attr:`Reads.down` (the banner). Once a server failed, the page's later reads of it
give their defaults at once: a MongoDB that does not answer costs one server-selection timeout per
page, not one per read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis
from pymongo.errors import PyMongoError

from crawlers.api.documents import utc_ready

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Most points of one chart series (a day of 1-second ticks is thinned to this many).
MAX_POINTS = 5000
#: Products drawn on the shelf chart (those with the most units sold; the table lists them all).
SHELF_SERIES = 12
#: Before a session's first live snapshot and after its last one, the curve shows this much more.
MARGIN = timedelta(minutes=5)


class Reads:
    """One page's reads of Redis and MongoDB; :attr:`down` names the servers that did not answer."""

    def __init__(self) -> None:
        self.down: dict[str, str] = {}

    def redis(self, read: Callable[[], T], default: T) -> T:
        return self._guarded("Redis", redis.RedisError, read, default)

    def mongo(self, read: Callable[[], T], default: T) -> T:
        return self._guarded("MongoDB", PyMongoError, read, default)

    def _guarded(self, server: str, errors: type[Exception], read: Callable[[], T], default: T) -> T:
        if server in self.down:
            return default
        try:
            return read()
        except errors as exc:
            logger.warning("Console: %s does not answer: %s", server, exc)
            self.down[server] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            return default


def utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (MongoDB gives naive UTC back), None for anything else."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def epoch_ms(value: Any) -> int | None:
    at = utc(value)
    return None if at is None else int(at.timestamp() * 1000)


def session_of_room(db: Any, platform: str, room_id: str, session_id: str | None) -> dict[str, Any] | None:
    """The session asked for, else the room's newest (by ``last_seen_live_at``); None if it has none."""
    query: dict[str, Any] = {"platform": platform, "room_id": room_id}
    if session_id:
        query["session_id"] = session_id
    return db.live_sessions.find_one(query, {"_id": 0}, sort=[("last_seen_live_at", -1), ("session_id", -1)])


def window(session: dict[str, Any] | None) -> dict[str, Any]:
    """The ``captured_at`` range a session's charts cover: open-ended while it is live."""
    if session is None:
        return {"$gte": datetime.now(UTC) - timedelta(hours=24)}
    begin = utc(session.get("started_at")) or utc(session["first_seen_live_at"])
    span: dict[str, Any] = {"$gte": (begin or datetime.now(UTC)) - MARGIN}
    if session.get("status") == "ended":
        end = utc(session.get("ended_seen_at")) or utc(session.get("last_seen_live_at"))
        if end is not None:
            span["$lte"] = end + MARGIN
    return span


def thin(points: list[Any]) -> list[Any]:
    """At most :data:`MAX_POINTS` of ``points``, evenly spread, the last one kept."""
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    return [points[int(i * step)] for i in range(MAX_POINTS - 1)] + [points[-1]]


def room_charts(db: Any, platform: str, room_id: str, session: dict[str, Any] | None) -> dict[str, Any]:
    """The room page's chart data: the online curve, the products presented, the shelf's sales."""
    span = window(session)
    snaps = db.room_snapshots.find({"platform": platform, "room_id": room_id, "captured_at": span},
                                   {"_id": 0, "captured_at": 1, "viewers_now": 1, "likes": 1, "status": 1}
                                   ).sort("captured_at", 1).limit(50 * MAX_POINTS)
    curve = thin([{"t": epoch_ms(s["captured_at"]), "viewers": s.get("viewers_now"), "likes": s.get("likes"),
                   "status": s.get("status")} for s in snaps])
    presented = [{"product_id": p.get("product_id"), "from": epoch_ms(p.get("from")), "to": epoch_ms(p.get("to")),
                  "sales_from": p.get("sales_from"), "sales_to": p.get("sales_to")}
                 for p in (session or {}).get("products_presented") or []]
    shelf: dict[str, list[dict[str, Any]]] = {}
    for snap in db.product_snapshots.find({"platform": platform, "room_id": room_id, "captured_at": span},
                                          {"_id": 0, "product_id": 1, "captured_at": 1, "sales": 1, "price": 1}
                                          ).sort("captured_at", 1).limit(50 * MAX_POINTS):
        if snap.get("sales") is not None:
            shelf.setdefault(str(snap["product_id"]), []).append(
                {"t": epoch_ms(snap["captured_at"]), "sales": snap["sales"], "price": snap.get("price")})
    ranked = sorted(shelf.items(), key=lambda item: -(item[1][-1]["sales"] - item[1][0]["sales"]))
    # The session's own per-product estimate (``products_sold``: units and GMV with bounds) beside the
    # readings; it also names products whose snapshots carry no room (a Kuaishou shop's), first by GMV.
    estimated = {str(p["product_id"]): p for p in (session or {}).get("products_sold") or []}
    rows_of = dict(ranked)
    order = list(estimated) + [pid for pid, _ in ranked if pid not in estimated]
    products = []
    for pid in order:
        rows, est = rows_of.get(pid), estimated.get(pid, {})
        products.append({
            "product_id": pid, "first_sales": rows[0]["sales"] if rows else None,
            "last_sales": rows[-1]["sales"] if rows else None,
            "sold": rows[-1]["sales"] - rows[0]["sales"] if rows else None,
            "units": est.get("units"), "gmv": est.get("gmv"), "gmv_low": est.get("gmv_low"),
            "gmv_high": est.get("gmv_high"),
            "price": rows[-1]["price"] if rows else est.get("price"),
            "readings": len(rows) if rows else est.get("readings")})
    return {"curve": curve, "presented": presented, "products": products,
            "shelf": [{"product_id": pid, "points": thin(rows)} for pid, rows in ranked[:SHELF_SERIES]]}


def json_ready(value: Any) -> Any:
    """A stored document for a template or JSON: datetimes as ISO 8601 UTC text, to the second."""
    return utc_ready(value, "seconds")
