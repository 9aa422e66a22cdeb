"""Which alerts a live session says, and which of them each subscriber wants: pure functions.

A watched account's session (``live_sessions``, rebuilt by the session builder as snapshots
arrive) carries everything the in-session alerts need:

* ``product_listed`` / ``product_delisted``: each ``shelf_events`` entry ``listed`` / ``delisted``
  (between two samples that read the whole shelf, so a product missing from one page of a
  sample is not "delisted");
* ``price_cut``: each ``price_changed`` entry whose price went down; the cut in percent
  (``(before - after) / before``) is compared with the subscriber's ``price_cut_pct`` (no
  threshold: every cut);
* ``viewers_crossed``: the session's ``viewers_peak`` at or above a subscriber's threshold,
  once per threshold and session (peaks only grow, so a crossing is never taken back);
* ``stream_ended``: a session whose ``status`` is ``ended``, with its summary (duration,
  peak viewers, estimated GMV and its bounds; null where unknown, never 0).

Every alert carries the session's id, so its :attr:`Alert.key` is the same whichever worker
sees the session and however often it is rebuilt: a subscriber's "sent" record (set once per
key) is what makes each alert reach it once. ``stream_started`` is not a session's: the
watcher says it when it sees the account go live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from crawlers.alerts.robots import Alert

__all__ = ["session_alerts", "wanted"]

_SHELF = {"listed": "product_listed", "delisted": "product_delisted"}


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.now(UTC)


def _base(session: Mapping[str, Any], streamer_name: str | None, watchlist: str | None) -> dict[str, Any]:
    return {"platform": session["platform"], "streamer_id": str(session.get("streamer_id") or session["room_id"]),
            "streamer_name": streamer_name, "room_id": session.get("room_id"),
            "session_id": session.get("session_id"), "watchlist": watchlist}


def session_alerts(session: Mapping[str, Any], *, thresholds: Iterable[int] = (),
                   titles: Mapping[str, str] | None = None, streamer_name: str | None = None,
                   watchlist: str | None = None) -> list[Alert]:
    """Every alert ``session`` (a stored ``live_sessions`` document) says, in time order.

    ``thresholds``: the viewer counts any subscriber watches for; ``titles``: product titles by id
    (the session names products by id only)."""
    base = _base(session, streamer_name, watchlist)
    titles = titles or {}
    out: list[Alert] = []
    for event in session.get("shelf_events") or []:
        kind, product = event.get("event"), str(event.get("product_id"))
        at = _when(event.get("at"))
        if kind in _SHELF:
            data = {"product_id": product, "title": titles.get(product),
                    "price": event.get("price_after") if kind == "listed" else event.get("price_before")}
            out.append(Alert(event=_SHELF[kind], at=at, data=data, **base))
        elif kind == "price_changed":
            before, after = event.get("price_before"), event.get("price_after")
            if isinstance(before, int | float) and isinstance(after, int | float) and 0 < after < before:
                data = {"product_id": product, "title": titles.get(product), "price": after, "old_price": before,
                        "cut_pct": round(100 * (before - after) / before, 1)}
                out.append(Alert(event="price_cut", at=at, data=data, **base))
    peak = session.get("viewers_peak")
    if isinstance(peak, int):
        at = _when(session.get("last_seen_live_at"))
        for threshold in sorted(set(thresholds)):
            if peak >= threshold:
                out.append(Alert(event="viewers_crossed", at=at, data={"threshold": threshold, "viewers": peak},
                                 **base))
    if session.get("status") == "ended":
        data = {"duration_s": session.get("duration_s"), "peak_viewers": peak,
                "gmv_estimate": session.get("gmv_estimate"), "gmv_low": session.get("gmv_low"),
                "gmv_high": session.get("gmv_high"), "units_sold": session.get("units_sold"),
                "estimator_version": session.get("estimator_version")}
        ended = session.get("ended_at") or session.get("ended_seen_at") or session.get("last_seen_live_at")
        out.append(Alert(event="stream_ended", at=_when(ended), data=data, **base))
    out.sort(key=lambda alert: alert.at)
    return out


def wanted(alert: Alert, events: Iterable[str], *, price_cut_pct: float | None = None,
           viewers_thresholds: Iterable[int] | None = None) -> bool:
    """Whether a subscriber with these settings is told of ``alert``."""
    if alert.event not in set(events):
        return False
    if alert.event == "price_cut" and price_cut_pct is not None:
        return float(alert.data.get("cut_pct") or 0) >= price_cut_pct
    if alert.event == "viewers_crossed":
        return alert.data.get("threshold") in set(viewers_thresholds or ())
    return True
