"""Alerts during a watched broadcast: listed, delisted, price cuts, viewers crossing, from its live session.

While a watched entry is live, the monitor the watcher started stores its room's snapshots and the
session builder keeps its ``live_sessions`` document up to date. Every round (:data:`EVERY_S`) the
watcher reads the sessions of its live entries in one query per platform and turns what is new in each
into alerts (:func:`crawlers.alerts.detect.session_alerts`): shelf events after the entry's mark, and
viewer thresholds above the peak already seen. The marks (``FleetKeys.watch_marks``: entry -> the time
of the last shelf event handled and the peak) keep each round's work to what changed; the alert's key
(``SET NX`` per subscriber in :func:`crawlers.watch.outbox.queue_alert`) is what makes each alert reach a
subscriber once, whichever watcher gets there first.

:func:`ended_summary` is the ``stream_ended`` alert's summary, from the session once the builder has
closed it: the watcher waits for that, at most :data:`SUMMARY_WAIT_MS` after the end was seen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crawlers.alerts.detect import session_alerts, wanted
from crawlers.alerts.robots import Alert
from crawlers.watch.lists import WatchEntry
from crawlers.watch.subscribing import Subscriber

log = logging.getLogger(__name__)

#: Seconds between two reads of the live entries' sessions.
EVERY_S = 10.0
#: How long ``stream_ended`` waits for the session builder to close the session (its summary).
SUMMARY_WAIT_MS = 90_000
_SHELF_EVENTS = frozenset({"product_listed", "product_delisted", "price_cut"})


def sessions_of(db: Database[Any], platform: str, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``live_sessions`` documents of live records (by their session id, else the room's newest), by entry."""
    by_session = {str(r["session_id"]): r["entry"] for r in records if r.get("session_id")}
    by_room = {str(r["room_id"]): r["entry"] for r in records if not r.get("session_id") and r.get("room_id")}
    found: dict[str, dict[str, Any]] = {}
    if by_session:
        for doc in db.live_sessions.find({"platform": platform, "session_id": {"$in": list(by_session)}}):
            found[by_session[str(doc["session_id"])]] = doc
    if by_room:
        for doc in db.live_sessions.find({"platform": platform, "room_id": {"$in": list(by_room)}},
                                         sort=[("last_seen_live_at", 1)]):
            found[by_room[str(doc["room_id"])]] = doc  # the newest last
    return found


def titles_of(db: Database[Any], platform: str, sessions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Product titles of the products the sessions' shelf events name."""
    ids = {str(e.get("product_id")) for s in sessions for e in s.get("shelf_events") or []}
    if not ids:
        return {}
    rows = db.products.find({"platform": platform, "product_id": {"$in": sorted(ids)}}, {"product_id": 1, "title": 1})
    return {str(r["product_id"]): r.get("title") for r in rows if r.get("title")}


def _mark(raw: Any) -> tuple[str, int]:
    if raw is None:
        return "", -1
    data = json.loads(raw)
    return str(data.get("at") or ""), int(data.get("peak", -1))


def new_alerts(session: Mapping[str, Any], mark: tuple[str, int], subscribers: Sequence[Subscriber], *,
               titles: Mapping[str, str], streamer_name: str | None) -> tuple[list[Alert], tuple[str, int]]:
    """The in-session alerts of ``session`` not handled yet (after ``mark``), and the new mark."""
    last_at, last_peak = mark
    thresholds = {t for sub in subscribers for t in (sub.viewers_thresholds or ())}
    said = session_alerts(session, thresholds=thresholds, titles=titles, streamer_name=streamer_name)
    shelf = [a for a in said if a.event in _SHELF_EVENTS]
    alerts = [a for a in shelf if a.at.isoformat() > last_at]
    alerts += [a for a in said if a.event == "viewers_crossed" and int(a.data["viewers"]) > last_peak]
    peak = session.get("viewers_peak")
    newest = max([last_at, *(a.at.isoformat() for a in shelf)])
    return alerts, (newest, max(last_peak, peak if isinstance(peak, int) else -1))


def queue_session_alerts(server: redis.Redis, marks_key: str, db: Database[Any], platform: str,
                         records: Sequence[Mapping[str, Any]], entries: Mapping[str, WatchEntry],
                         subscribers: Mapping[str, Sequence[Subscriber]], queue: Any,
                         streamer_name: Any) -> int:
    """One round for the live records of ``platform``: read their sessions, queue what is new to each
    subscriber that wants it (``queue(sub, alert) -> bool``), move the marks. Returns alerts queued."""
    live = [r for r in records if r.get("phase") == "live" and r.get("entry") in entries]
    if not live:
        return 0
    try:
        sessions = sessions_of(db, platform, live)
        titles = titles_of(db, platform, sessions.values())
    except PyMongoError as exc:
        log.warning("watch: reading live sessions failed: %s", exc)
        return 0
    keys = sorted(sessions)
    marks = dict(zip(keys, server.hmget(marks_key, keys), strict=True)) if keys else {}
    queued, moved = 0, {}
    for key, session in sessions.items():
        entry = entries[key]
        subs = [(name, sub) for name in entry.lists for sub in subscribers.get(name, [])]
        alerts, mark = new_alerts(session, _mark(marks.get(key)), [s for _, s in subs], titles=titles,
                                  streamer_name=streamer_name(platform, session.get("streamer_id")))
        for alert in alerts:
            for name, sub in subs:
                if wanted(alert, sub.events, price_cut_pct=sub.price_cut_pct,
                          viewers_thresholds=sub.viewers_thresholds):
                    queued += bool(queue(sub, alert, name))
        if mark != _mark(marks.get(key)):
            moved[key] = json.dumps({"at": mark[0], "peak": mark[1]})
    if moved:
        server.hset(marks_key, mapping=moved)
    return queued


def ended_summary(session: Mapping[str, Any] | None) -> dict[str, Any]:
    """``stream_ended``'s figures from a session (None for what is not known)."""
    fields = ("duration_s", "peak_viewers", "gmv_estimate", "gmv_low", "gmv_high", "units_sold",
              "estimator_version")
    if session is None:
        return dict.fromkeys(fields)
    (alert,) = [a for a in session_alerts({**session, "status": "ended", "shelf_events": []})
                if a.event == "stream_ended"]
    return {name: alert.data.get(name) for name in fields}
