"""Live sessions from stored snapshots: pure functions, documents in, ``LiveSession`` out.

``sessions_of_room(platform, room_snapshots, product_snapshots, room, now=...)`` cuts one room's
snapshots into broadcasts and computes each one's document. The session builder service
(``service.py``) and ``livefleet sessions rebuild`` both call it on what MongoDB holds, so a
session is always a function of the stored snapshots: rebuilding it gives the same document.

Which broadcast a snapshot belongs to
-------------------------------------
* Douyin and Taobao: the room id is per broadcast (``session_id = room_id``).
* Kuaishou and Bilibili: the snapshot's ``session_id`` (liveStreamId; ``<room_id>:<start epoch>``)
  when the answer showed it. A live snapshot without one joins the run of live snapshots it is
  part of (live snapshots less than ``gap`` apart); a run that shows no ID anywhere is keyed
  ``<room_id>:<first seen live epoch>`` (``session_id_provisional``).
* Only live snapshots make a session; a snapshot showing the room not live after a session's last
  live one is that session's ``ended_seen_at``.

Time and audience (metric definitions)
--------------------------------------
* ``status``: ``ended`` when the room was seen not live after the session, the platform gave an
  end time, or ``now`` (the platform's newest observation, not the wall clock) is more than ``gap``
  past ``last_seen_live_at``; else ``live``.
* ``started_at``/``ended_at``: as the platform reports them (the room's ``started_at`` while this is
  its current broadcast, the start in a Bilibili session id); null when it does not.
* ``first_seen_live_at``/``last_seen_live_at``: livefleet's first and last live snapshot.
* ``start_latency_s`` = first_seen_live_at - started_at (when both exist).
* ``duration_s`` = (ended_at, else last_seen_live_at) - (started_at, else first_seen_live_at).
* ``samples``: live room snapshots in the session.
* ``coverage``: share of the session's minutes (from its start to its end, as for duration,
  counted in whole minutes, at least one) in which at least one live snapshot was taken.
* ``viewers_peak``: max ``viewers_now``; ``viewers_avg``: time-weighted mean of ``viewers_now``, each
  value held until the next snapshot (one snapshot: its value); ``viewers_total`` and ``likes``:
  the latest seen (cumulative counts: the largest).

Products
--------
* A *shelf sample* is one reading of the room's shelf: consecutive product snapshots of the room
  within ``SHELF_SAMPLE_S`` of the first, each product at most once (one page, or a few pages
  fetched together; a product read again starts the next sample).
* ``shelf_events``: between consecutive shelf samples that read the whole shelf (not a lone
  product's page: at least half as many products as the last whole one), a product that appears
  is ``listed``, one that disappears ``delisted``, one whose price differs ``price_changed`` (prices
  before and after). A product missing from one sample and back in the next is not delisted (a
  page not fetched).
* ``products_presented`` (讲解): runs of the room's snapshots during the session (live ones, and those
  of its shelf answers, which carry no status) showing the same ``current_product_id``; a shelf
  answer's snapshot (it counts the shelf) naming no presented product ends a run. ``from``/``to``
  are the first and last snapshot of the run, the sales and prices
  those nearest them.
* ``products_count``: distinct products seen on the shelf during the session.
* Sales and GMV, for the session and per product (``products_sold``): ``estimator.py``, from each
  product's readings over the session's shelf samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from crawlers.sessions import estimator
from models.sessions import LiveSession

#: Platforms whose room id is new every broadcast.
PER_BROADCAST_ROOMS = frozenset({"douyin", "taobao"})
#: Live snapshots further apart than this are two broadcasts (and a session this long unseen has ended).
DEFAULT_GAP = timedelta(minutes=10)
#: Product snapshots of one room this close together are one reading of its shelf.
SHELF_SAMPLE_S = 20.0

Doc = Mapping[str, Any]


def _runs(platform: str, room_id: str, live: Sequence[Doc], gap: timedelta) -> list[tuple[str, bool, list[Doc]]]:
    """``(session_id, provisional, live snapshots)`` of one room's live snapshots in time order."""
    if platform in PER_BROADCAST_ROOMS:
        return [(room_id, False, list(live))] if live else []
    runs: list[list[Doc]] = []
    for snap in live:
        current = runs[-1] if runs else None
        known = {s.get("session_id") for s in current or [] if s.get("session_id")}
        sid = snap.get("session_id")
        close = current and snap["captured_at"] - current[-1]["captured_at"] <= gap
        if close and (not sid or not known or sid in known):
            current.append(snap)
        else:
            runs.append([snap])
    out: list[tuple[str, bool, list[Doc]]] = []
    for run in runs:
        sid = next((s["session_id"] for s in run if s.get("session_id")), None)
        if sid is None:
            out.append((f"{room_id}:{int(run[0]['captured_at'].timestamp())}", True, run))
        elif out and out[-1][0] == sid:  # the same broadcast after a gap in observation
            out[-1][2].extend(run)
        else:
            out.append((sid, False, run))
    return out


def _shelf_samples(snaps: Sequence[Doc]) -> list[list[Doc]]:
    """Product snapshots (time order) grouped into shelf samples: consecutive readings within
    ``SHELF_SAMPLE_S`` of the sample's first, each product at most once (a product read again
    starts the next sample, however soon)."""
    samples: list[list[Doc]] = []
    seen: set[str] = set()
    for snap in snaps:
        pid = str(snap["product_id"])
        if (samples and pid not in seen
                and (snap["captured_at"] - samples[-1][0]["captured_at"]).total_seconds() <= SHELF_SAMPLE_S):
            samples[-1].append(snap)
            seen.add(pid)
        else:
            samples.append([snap])
            seen = {pid}
    return samples


def _whole(samples: Sequence[Sequence[Doc]]) -> list[Sequence[Doc]]:
    """The samples that read the whole shelf: not a lone product's page (a product detail, the
    product being presented), i.e. at least half as many products as the last whole one."""
    whole: list[Sequence[Doc]] = []
    for sample in samples:
        if not whole or len(sample) >= max(2, len(whole[-1]) / 2):
            whole.append(sample)
    return whole


def _shelf_events(samples: Sequence[Sequence[Doc]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    shelves = [{str(s["product_id"]): s for s in sample} for sample in _whole(samples)]
    for i in range(1, len(shelves)):
        before, after = shelves[i - 1], shelves[i]
        at = min(s["captured_at"] for s in after.values())
        later = shelves[i + 1] if i + 1 < len(shelves) else None
        for pid in sorted(after.keys() - before.keys()):
            earlier = shelves[i - 2] if i >= 2 else None
            if earlier is None or pid not in earlier:  # not merely missing from one sample
                events.append({"at": at, "product_id": pid, "event": "listed",
                               "price_before": None, "price_after": after[pid].get("price")})
        for pid in sorted(before.keys() - after.keys()):
            if later is None or pid not in later:
                events.append({"at": at, "product_id": pid, "event": "delisted",
                               "price_before": before[pid].get("price"), "price_after": None})
        for pid in sorted(before.keys() & after.keys()):
            old, new = before[pid].get("price"), after[pid].get("price")
            if old is not None and new is not None and abs(old - new) > 1e-9:
                events.append({"at": at, "product_id": pid, "event": "price_changed",
                               "price_before": old, "price_after": new})
    events.sort(key=lambda e: (e["at"], e["product_id"], e["event"]))
    return events


def _nearest(readings: Sequence[estimator.Reading], at: datetime) -> estimator.Reading | None:
    return min(readings, key=lambda r: abs((r.at - at).total_seconds()), default=None)


def _presented(live: Sequence[Doc], readings: Mapping[str, Sequence[estimator.Reading]]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for snap in live:
        pid = snap.get("current_product_id")
        if not pid:
            # A shelf answer (it counts the shelf) naming no presented product: nothing is presented.
            if snap.get("product_count") is not None and runs and runs[-1].get("open"):
                runs[-1]["open"] = False
            continue
        pid = str(pid)
        if runs and runs[-1]["product_id"] == pid and runs[-1].get("open"):
            runs[-1]["to"] = snap["captured_at"]
        else:
            if runs:
                runs[-1]["open"] = False
            runs.append({"product_id": pid, "from": snap["captured_at"], "to": snap["captured_at"], "open": True})
    for run in runs:
        run.pop("open", None)
        series = readings.get(run["product_id"], ())
        start, end = _nearest(series, run["from"]), _nearest(series, run["to"])
        run.update(sales_from=start and start.sales, sales_to=end and end.sales,
                   price_from=start and start.price, price_to=end and end.price)
    return runs


def _viewers_avg(live: Sequence[Doc]) -> float | None:
    points = [(s["captured_at"], s["viewers_now"]) for s in live if s.get("viewers_now") is not None]
    if not points:
        return None
    if len(points) == 1:
        return float(points[0][1])
    total = sum(v * (points[i + 1][0] - t).total_seconds() for i, (t, v) in enumerate(points[:-1]))
    span = (points[-1][0] - points[0][0]).total_seconds()
    return round(total / span, 2) if span > 0 else float(points[-1][1])


def _max(values: Iterable[Any]) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _latest_start(room: Doc | None, session_id: str, platform: str, provisional: bool) -> datetime | None:
    if platform == "bilibili" and not provisional and ":" in session_id:
        epoch = session_id.rsplit(":", 1)[1]
        if epoch.isdigit():
            return datetime.fromtimestamp(int(epoch), tz=UTC)
    return room.get("started_at") if room else None


def build_session(platform: str, session_id: str, provisional: bool, live: Sequence[Doc], *,
                  room_id: str, room: Doc | None, is_latest: bool, after: Doc | None,
                  shelf: Sequence[Doc], now: datetime, computed_at: datetime, gap: timedelta = DEFAULT_GAP,
                  room_snapshots: Sequence[Doc] = ()) -> LiveSession:
    """One session's document (module docstring for every definition)."""
    first, last = live[0]["captured_at"], live[-1]["captured_at"]
    room_now = room if is_latest else None
    started_at = _latest_start(room_now, session_id, platform, provisional)
    if started_at is not None and started_at > first:
        started_at = None  # a start after we saw it live belongs to a later broadcast
    ended_at = room_now.get("ended_at") if room_now else None
    if ended_at is not None and ended_at < last:
        ended_at = None
    ended_seen_at = after["captured_at"] if after is not None else None
    status = "ended" if (ended_seen_at or ended_at or now - last > gap) else "live"
    begin, end = started_at or first, ended_at or last
    minutes = max(1, math.ceil((end - begin).total_seconds() / 60))
    seen_minutes = {int((s["captured_at"] - begin).total_seconds() // 60) for s in live}
    coverage = min(1.0, len([m for m in seen_minutes if 0 <= m < minutes]) / minutes)
    # Products: the shelf samples taken while the session was live (and up to one gap after its last live snapshot).
    window_end = (ended_seen_at or last + gap)
    in_session = [s for s in shelf if begin - timedelta(seconds=SHELF_SAMPLE_S) <= s["captured_at"] <= window_end]
    samples = _shelf_samples(in_session)
    readings = estimator.readings_of(samples)
    estimates = []
    for pid, series in readings.items():
        present = [i for i, sample in enumerate(samples) if any(str(s["product_id"]) == pid for s in sample)]
        on_from = (begin if present[0] == 0 else samples[present[0] - 1][0]["captured_at"]) if present else None
        on_to = end if present and present[-1] == len(samples) - 1 and status == "ended" else None
        estimates.append(estimator.estimate_product(pid, series, on_shelf_from=on_from, on_shelf_to=on_to))
    viewers_total = _max(s.get("viewers_total") for s in live)
    doc: dict[str, Any] = {
        "platform": platform,
        "session_id": session_id,
        "session_id_provisional": provisional,
        "room_id": room_id,
        "web_rid": room.get("web_rid") if room else None,
        "streamer_id": room.get("streamer_id") if room else None,
        "title": room_now.get("title") if room_now else None,
        "category": room_now.get("category") if room_now else None,
        "status": status,
        "started_at": started_at,
        "ended_at": ended_at,
        "first_seen_live_at": first,
        "last_seen_live_at": last,
        "ended_seen_at": ended_seen_at,
        "start_latency_s": (first - started_at).total_seconds() if started_at else None,
        "duration_s": (end - begin).total_seconds(),
        "samples": len(live),
        "coverage": round(coverage, 4),
        "viewers_peak": _max(s.get("viewers_now") for s in live),
        "viewers_avg": _viewers_avg(live),
        "viewers_total": viewers_total,
        "likes": _max(s.get("likes") for s in live),
        "products_presented": _presented([s for s in room_snapshots
                                          if first - timedelta(seconds=SHELF_SAMPLE_S) <= s["captured_at"] <= last
                                          + timedelta(seconds=SHELF_SAMPLE_S)], readings),
        "shelf_events": _shelf_events(samples),
        "products_count": len(readings) if samples else None,
        "shelf_samples": len(samples),
        "shelf_first_at": samples[0][0]["captured_at"] if samples else None,
        "shelf_last_at": samples[-1][-1]["captured_at"] if samples else None,
        **estimator.session_figures(estimates, viewers_total=viewers_total, shelf_seen=bool(samples)),
        "products_sold": estimator.products_sold(estimates, readings) if samples else [],
        "estimator_version": estimator.ESTIMATOR_VERSION,
        "computed_at": computed_at,
        "first_seen_at": first,
        "last_seen_at": max(last, ended_seen_at or last),
    }
    return LiveSession.model_validate(doc)


def sessions_of_room(platform: str, room_id: str, room_snapshots: Sequence[Doc], shelf: Sequence[Doc],
                     room: Doc | None, *, now: datetime, computed_at: datetime,
                     gap: timedelta = DEFAULT_GAP) -> list[LiveSession]:
    """Every session in one room's snapshots (time order), each with its shelf readings."""
    snaps = sorted(room_snapshots, key=lambda d: d["captured_at"])
    shelf = sorted(shelf, key=lambda d: d["captured_at"])
    live = [s for s in snaps if s.get("status") == "live" or (s.get("status") is None and s.get("viewers_now"))]
    runs = _runs(platform, room_id, live, gap)
    out: list[LiveSession] = []
    for index, (sid, provisional, run) in enumerate(runs):
        last = run[-1]["captured_at"]
        nxt = runs[index + 1][2][0]["captured_at"] if index + 1 < len(runs) else None
        after = next((s for s in snaps if s["captured_at"] > last and s.get("status") in ("offline", "ended", "replay")
                      and (nxt is None or s["captured_at"] < nxt)), None)
        out.append(build_session(platform, sid, provisional, run, room_id=room_id, room=room,
                                 is_latest=index == len(runs) - 1, after=after, shelf=shelf, now=now,
                                 computed_at=computed_at, gap=gap, room_snapshots=snaps))
    return out
