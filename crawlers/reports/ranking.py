"""Reference ranking jobs: every aggregation pipeline of ``livefleet rank``, in one module.

This module is meant to be read by downstream teams as the example of how to use
livefleet's collections (the data contract, SCHEMA.md). Each ``*_pipeline`` function
returns ``(collection, pipeline)``: a plain MongoDB aggregation that runs as it is in
``mongosh`` or any driver, over the stored documents only. Nothing is computed in Python
except the window start and the table.

What the contract gives a ranking job, and what each pipeline relies on:

* ``streamers`` carry ``followers`` (an int; ``followers_text`` keeps a ``10万+`` as shown)
  and ``last_seen_at`` (kept by the store: the latest ``fetched_at``); there is an index on
  (platform, -followers) for exactly this ranking.
* ``rooms`` carry ``streamer_id``, ``title`` and the latest counts. Counts *over time* are
  in ``room_snapshots``: one document per (platform, room_id, captured_at) with
  ``viewers_now`` (people in the room at that instant) and ``viewers_total`` (cumulative
  viewers of the session).
* ``product_snapshots`` carry ``sales`` (cumulative units as the platform shows them) at
  ``captured_at``, and ``room_id`` when the product was seen on that live room's shelf.
  Two facts shape every sales pipeline: cumulative sales never go down, and a platform that
  shows ``1.2万+`` makes a value a lower bound (rounded down). So the largest value seen
  in a window is the best-known latest count; growth is that minus the earliest value.
  Growth is what livefleet *saw*: a product seen once in the window grew by 0.
* A product's sales are the product's (all channels), not the room's: a room's ``sales``
  here is the units its shelf items show, and its ``sales_growth`` what they sold while
  the room showed them. Neither is a count of orders placed in that room; no public page
  gives one.
* ``live_sessions`` (one document per broadcast, built by ``crawlers/sessions`` from the
  snapshots; ``models/sessions.py`` is its contract) carry each broadcast's figures:
  ``viewers_peak``, ``viewers_total``, ``units_sold``, ``gmv_estimate`` with the bounds
  ``gmv_low``/``gmv_high`` the truth lies within (``gmv_high`` null when unbounded),
  ``uv_value`` and the ``estimator_version`` that computed them. Each figure is null when
  its inputs were missing, never 0 for unknown, so a session ranking leaves a null out
  rather than ranking it as 0. There are indexes on (platform, -gmv_estimate) and
  (platform, -viewers_peak) for these rankings.

``--since`` bounds every pipeline: snapshots by ``captured_at``, streamers by
``last_seen_at`` (seen in the window), sessions by ``last_seen_live_at`` (live in the
window). Ties are broken by ID so a ranking is stable.

Portability: the pipelines run on MongoDB 5.0+ and on SecantusDB (tested there). The
``$lookup`` stages use ``localField``/``foreignField`` with a ``pipeline`` (5.0+) to match
the platform too, and the looked-up document is ``$unwind``-ed rather than read as
``{"$first": "$room.title"}``: SecantusDB does not follow a field path through an array.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

#: What is ranked from the captured records (profiles and snapshots), and by what.
ENTITIES: tuple[str, ...] = ("streamers", "rooms", "products")
METRICS: tuple[str, ...] = ("followers", "peak_viewers", "viewers_total", "sales", "sales_growth")
#: What is ranked from ``live_sessions``, and the measures only sessions have (``peak_viewers`` and
#: ``viewers_total`` rank sessions too). ``session_gmv`` ranks streamers by their sessions' GMV, and
#: products (with ``session_units``) by what they sold in the sessions (``products_sold``).
SESSION_ENTITIES: tuple[str, ...] = ("sessions",)
SESSION_METRICS: tuple[str, ...] = ("gmv", "units", "uv_value", "session_gmv", "session_units")
ALL_ENTITIES: tuple[str, ...] = ENTITIES + SESSION_ENTITIES
ALL_METRICS: tuple[str, ...] = METRICS + SESSION_METRICS
#: ``rank sessions --by X``: the ``live_sessions`` field X names.
SESSION_FIELDS: dict[str, str] = {"gmv": "gmv_estimate", "units": "units_sold", "peak_viewers": "viewers_peak",
                                  "viewers_total": "viewers_total", "uv_value": "uv_value"}
#: The fields of a session ranking's rows, in this order (SCHEMA.md ``live_sessions``).
SESSION_COLUMNS: tuple[str, ...] = (
    "session_id", "room_id", "streamer_id", "title", "status", "started_at", "last_seen_live_at", "duration_s",
    "viewers_peak", "viewers_total", "units_sold", "units_sold_is_lower_bound", "gmv_estimate", "gmv_low",
    "gmv_high", "uv_value", "estimator_version")

Pipeline = list[dict[str, Any]]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The window start ``--since`` names: a duration back from now (``30m``, ``24h``, ``7d``)
    or an ISO time (``2026-06-01T12:00:00+08:00``; without a zone, UTC)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a duration like 30m, 24h, 7d or an ISO time, got {text!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# --- the pipelines ----------------------------------------------------------------------------------------------


def streamers_by_followers(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
    """Streamers with the most followers, among those seen since ``since``.

    Uses ``streamers``: platform, followers, last_seen_at, nickname. The (platform,
    -followers) index serves the match and the sort; streamers whose profile showed no
    follower count are left out rather than ranked as 0.
    """
    return "streamers", [
        {"$match": {"platform": platform, "last_seen_at": {"$gte": since}, "followers": {"$type": "number"}}},
        {"$sort": {"followers": -1, "streamer_id": 1}},
        {"$limit": limit},
        {"$project": {"_id": 0, "streamer_id": 1, "nickname": 1, "followers": 1,
                      "lower_bound": {"$ifNull": ["$followers_is_lower_bound", False]}}},
    ]


def rooms_by_viewers(field: str) -> Callable[[str, datetime, int], tuple[str, Pipeline]]:
    """Rooms by the largest ``field`` of their snapshots in the window (one pipeline builder per count).

    Uses ``room_snapshots``: platform, room_id, captured_at and ``viewers_now`` (for
    ``peak_viewers``: the most people in the room at one capture) or ``viewers_total``
    (the largest cumulative viewer count seen, i.e. the session's latest); then ``rooms``
    for the title and streamer. ``rooms.peak_viewers`` is kept by the store over all time;
    the snapshots give the peak *within the window*.
    """
    source, metric = ("viewers_now", "peak_viewers") if field == "peak_viewers" else (field, field)

    def build(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
        return "room_snapshots", [
            {"$match": {"platform": platform, "captured_at": {"$gte": since}, source: {"$type": "number"}}},
            {"$group": {"_id": "$room_id", metric: {"$max": f"${source}"}, "snapshots": {"$sum": 1}}},
            {"$sort": {metric: -1, "_id": 1}},
            {"$limit": limit},
            *_with_room(platform),
        ]

    build.__doc__ = rooms_by_viewers.__doc__
    return build


def streamers_by_viewers(field: str) -> Callable[[str, datetime, int], tuple[str, Pipeline]]:
    """Streamers by the viewers of their rooms in the window: the rooms pipeline, one level up.

    Uses ``room_snapshots`` (per room, the largest ``viewers_now`` or ``viewers_total``
    captured since ``since``), ``rooms.streamer_id`` to find each room's streamer (rooms
    whose streamer is unknown drop out), the best room per streamer, and ``streamers`` for
    the nickname.
    """
    source, metric = ("viewers_now", "peak_viewers") if field == "peak_viewers" else (field, field)

    def build(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
        return "room_snapshots", [
            {"$match": {"platform": platform, "captured_at": {"$gte": since}, source: {"$type": "number"}}},
            {"$group": {"_id": "$room_id", "best": {"$max": f"${source}"}}},
            {"$lookup": {"from": "rooms", "localField": "_id", "foreignField": "room_id", "as": "room",
                         "pipeline": [{"$match": {"platform": platform}}, {"$project": {"_id": 0, "streamer_id": 1}}]}},
            {"$unwind": "$room"},
            {"$match": {"room.streamer_id": {"$type": "string"}}},
            {"$sort": {"best": -1, "_id": 1}},  # so $first below names the best room
            {"$group": {"_id": "$room.streamer_id", metric: {"$max": "$best"}, "room_id": {"$first": "$_id"},
                        "rooms": {"$sum": 1}}},
            {"$sort": {metric: -1, "_id": 1}},
            {"$limit": limit},
            {"$lookup": {"from": "streamers", "localField": "_id", "foreignField": "streamer_id", "as": "streamer",
                         "pipeline": [{"$match": {"platform": platform}}, {"$project": {"_id": 0, "nickname": 1}}]}},
            {"$unwind": {"path": "$streamer", "preserveNullAndEmptyArrays": True}},
            {"$project": {"_id": 0, "streamer_id": "$_id", "nickname": "$streamer.nickname", metric: 1,
                          "room_id": 1, "rooms": 1}},
        ]

    build.__doc__ = streamers_by_viewers.__doc__
    return build


def products_by_sales(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
    """Products by their latest cumulative sales seen in the window.

    Uses ``product_snapshots``: platform, product_id, captured_at, sales. Sales only grow,
    and a ``1.2万+`` display is rounded down, so the largest value captured is the best
    latest count (the shelf's exact count beats the item page's rounded one). Then
    ``products`` for the title and shop.
    """
    return "product_snapshots", [
        {"$match": {"platform": platform, "captured_at": {"$gte": since}, "sales": {"$type": "number"}}},
        {"$group": {"_id": "$product_id", "sales": {"$max": "$sales"}, "snapshots": {"$sum": 1}}},
        {"$sort": {"sales": -1, "_id": 1}},
        {"$limit": limit},
        *_with_product(platform),
    ]


def products_by_sales_growth(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
    """Products by the units they sold within the window: latest minus earliest sales seen.

    Uses ``product_snapshots``: platform, product_id, captured_at, sales. Sorted by
    ``captured_at``, ``$first`` is the earliest count; the latest is the largest (see
    :func:`products_by_sales`). A product captured once grew by 0 as far as livefleet
    knows; ``snapshots`` says how many captures the figure rests on.
    """
    return "product_snapshots", [
        {"$match": {"platform": platform, "captured_at": {"$gte": since}, "sales": {"$type": "number"}}},
        {"$sort": {"captured_at": 1}},
        {"$group": {"_id": "$product_id", "first": {"$first": "$sales"}, "sales": {"$max": "$sales"},
                    "snapshots": {"$sum": 1}}},
        {"$set": {"sales_growth": {"$subtract": ["$sales", "$first"]}}},
        {"$sort": {"sales_growth": -1, "_id": 1}},
        {"$limit": limit},
        *_with_product(platform),
    ]


def rooms_by_shelf_sales(metric: str) -> Callable[[str, datetime, int], tuple[str, Pipeline]]:
    """Rooms by what their shelves show: ``sales`` (units of the items on the shelf) or
    ``sales_growth`` (units those items sold while on the shelf, within the window).

    Uses ``product_snapshots`` with a ``room_id`` (captured on that room's shelf): per
    (room, product) the earliest and the largest sales seen, summed per room; ``products``
    counts the distinct items seen on the shelf. A product's sales are all its channels',
    so this measures a shelf, not orders placed in the room (see the module docstring).
    """

    def build(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
        return "product_snapshots", [
            {"$match": {"platform": platform, "captured_at": {"$gte": since}, "room_id": {"$type": "string"},
                        "sales": {"$type": "number"}}},
            {"$sort": {"captured_at": 1}},
            {"$group": {"_id": {"room": "$room_id", "product": "$product_id"}, "first": {"$first": "$sales"},
                        "latest": {"$max": "$sales"}}},
            {"$group": {"_id": "$_id.room", "sales": {"$sum": "$latest"},
                        "sales_growth": {"$sum": {"$subtract": ["$latest", "$first"]}}, "products": {"$sum": 1}}},
            {"$sort": {metric: -1, "_id": 1}},
            {"$limit": limit},
            *_with_room(platform),
        ]

    build.__doc__ = rooms_by_shelf_sales.__doc__
    return build


def sessions_by(by: str) -> Callable[[str, datetime, int], tuple[str, Pipeline]]:
    """Sessions (broadcasts) by one of their figures: ``gmv`` (``gmv_estimate``), ``units``
    (``units_sold``), ``peak_viewers`` (``viewers_peak``), ``viewers_total``, ``uv_value``.

    Uses ``live_sessions``: platform, last_seen_live_at (the session was seen live in the
    window: a broadcast that started before the window and went on into it counts) and the
    figure. A session whose figure is null (its inputs were not seen: no shelf, no viewer
    count) is left out, never ranked as 0. Each row carries the session's GMV with its bounds
    ``gmv_low``/``gmv_high`` and the ``estimator_version`` that computed it, whatever it is
    ranked by. The (platform, -gmv_estimate) and (platform, -viewers_peak) indexes serve the
    GMV and peak rankings.
    """
    field = SESSION_FIELDS[by]

    def build(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
        return "live_sessions", [
            {"$match": {"platform": platform, "last_seen_live_at": {"$gte": since}, field: {"$type": "number"}}},
            {"$sort": {field: -1, "session_id": 1}},
            {"$limit": limit},
            {"$project": {"_id": 0, **dict.fromkeys(SESSION_COLUMNS, 1)}},
        ]

    build.__doc__ = sessions_by.__doc__
    return build


def streamers_by_session_gmv(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
    """Streamers by the GMV of their sessions in the window: the sum of ``gmv_estimate``.

    Uses ``live_sessions``: platform, last_seen_live_at, streamer_id (sessions whose streamer is
    unknown drop out), gmv_estimate, gmv_low, gmv_high, estimator_version; then ``streamers`` for
    the nickname. ``session_gmv``, ``gmv_low`` and ``gmv_high`` are sums over the sessions with a
    GMV, and ``sessions`` counts those; sessions whose GMV is null (no shelf seen, no price) are
    counted as ``sessions_without_gmv`` and add nothing: they are not 0 yuan, they are unknown. So
    the sum is what the known sessions sold, and a streamer with no session of known GMV is left
    out. A bound is null when one of the summed sessions has none (an unbounded ``gmv_high``).
    ``estimator_versions`` lists the versions that computed the sessions summed.
    """
    has_gmv = {"$isNumber": "$gmv_estimate"}

    def unknown(bound: str) -> dict[str, Any]:
        return {"$sum": {"$cond": [{"$and": [has_gmv, {"$not": [{"$isNumber": f"${bound}"}]}]}, 1, 0]}}

    def known(bound: str) -> dict[str, Any]:
        return {"$cond": [{"$eq": ["$" + bound + "_unknown", 0]}, {"$round": [f"${bound}", 2]}, None]}

    return "live_sessions", [
        {"$match": {"platform": platform, "last_seen_live_at": {"$gte": since}, "streamer_id": {"$type": "string"}}},
        # Per streamer and estimator version first, so the versions come out sorted ($push after $sort).
        {"$group": {"_id": {"streamer": "$streamer_id", "version": "$estimator_version"},
                    "session_gmv": {"$sum": {"$cond": [has_gmv, "$gmv_estimate", 0]}},
                    "gmv_low": {"$sum": {"$cond": [has_gmv, "$gmv_low", 0]}},  # $sum skips a null
                    "gmv_high": {"$sum": {"$cond": [has_gmv, "$gmv_high", 0]}},
                    "gmv_low_unknown": unknown("gmv_low"), "gmv_high_unknown": unknown("gmv_high"),
                    "sessions": {"$sum": {"$cond": [has_gmv, 1, 0]}},
                    "sessions_without_gmv": {"$sum": {"$cond": [has_gmv, 0, 1]}}}},
        {"$sort": {"_id.version": 1}},
        {"$group": {"_id": "$_id.streamer", "session_gmv": {"$sum": "$session_gmv"},
                    "gmv_low": {"$sum": "$gmv_low"}, "gmv_high": {"$sum": "$gmv_high"},
                    "gmv_low_unknown": {"$sum": "$gmv_low_unknown"}, "gmv_high_unknown": {"$sum": "$gmv_high_unknown"},
                    "sessions": {"$sum": "$sessions"}, "sessions_without_gmv": {"$sum": "$sessions_without_gmv"},
                    "estimator_versions": {"$push": {"$cond": [{"$gt": ["$sessions", 0]}, "$_id.version", None]}}}},
        {"$match": {"sessions": {"$gt": 0}}},  # no session of known GMV: nothing to rank, not 0
        {"$set": {"session_gmv": {"$round": ["$session_gmv", 2]}, "gmv_low": known("gmv_low"),
                  "gmv_high": known("gmv_high"),
                  "estimator_versions": {"$filter": {"input": "$estimator_versions",
                                                     "cond": {"$ne": ["$$this", None]}}}}},
        {"$sort": {"session_gmv": -1, "_id": 1}},
        {"$limit": limit},
        {"$lookup": {"from": "streamers", "localField": "_id", "foreignField": "streamer_id", "as": "streamer",
                     "pipeline": [{"$match": {"platform": platform}}, {"$project": {"_id": 0, "nickname": 1}}]}},
        {"$unwind": {"path": "$streamer", "preserveNullAndEmptyArrays": True}},
        {"$project": {"_id": 0, "streamer_id": "$_id", "nickname": "$streamer.nickname", "session_gmv": 1,
                      "gmv_low": 1, "gmv_high": 1, "sessions": 1, "sessions_without_gmv": 1, "estimator_versions": 1}},
    ]


def products_by_session_sales(by: str) -> Callable[[str, datetime, int], tuple[str, Pipeline]]:
    """Products by what they sold in the live sessions of the window (``session_gmv`` or ``session_units``).

    Uses ``live_sessions``: platform, last_seen_live_at, and each session's ``products_sold`` (the
    estimator's per-product units and GMV with their bounds, estimator 1.1.0 on; sessions built
    before carry none until ``livefleet sessions rebuild``); then ``products`` for the title and shop.
    ``session_units`` (with ``units_low``/``units_high``) and ``session_gmv`` (with ``gmv_low``/
    ``gmv_high``) are sums over the sessions the product sold in, counted as ``sessions``; a product
    whose GMV is unknown in a session (no price shown) adds nothing to ``session_gmv`` and is counted
    in ``sessions_without_gmv``; ranked by GMV, a product with no session of known GMV is left out.
    A bound is null when a summed session has none. ``units_is_lower_bound``: some count summed was
    shown rounded. ``estimator_versions`` lists the versions summed.
    """
    has_gmv = {"$isNumber": "$products_sold.gmv"}

    def build(platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
        ranked = "session_gmv" if by == "session_gmv" else "session_units"
        keep = [{"$match": {"sessions_with_gmv": {"$gt": 0}}}] if by == "session_gmv" else []
        return "live_sessions", [
            {"$match": {"platform": platform, "last_seen_live_at": {"$gte": since},
                        "products_sold.0": {"$exists": True}}},
            {"$unwind": "$products_sold"},
            {"$group": {"_id": "$products_sold.product_id",
                        "session_units": {"$sum": "$products_sold.units"},
                        "units_low": {"$sum": "$products_sold.units_low"},
                        "units_high": {"$sum": "$products_sold.units_high"},
                        "units_high_unknown": {"$sum": {"$cond": [{"$isNumber": "$products_sold.units_high"}, 0, 1]}},
                        "units_is_lower_bound": {"$max": "$products_sold.units_is_lower_bound"},
                        "session_gmv": {"$sum": {"$cond": [has_gmv, "$products_sold.gmv", 0]}},
                        "gmv_low": {"$sum": {"$cond": [has_gmv, "$products_sold.gmv_low", 0]}},
                        "gmv_high": {"$sum": {"$cond": [has_gmv, "$products_sold.gmv_high", 0]}},
                        "gmv_high_unknown": {"$sum": {"$cond": [
                            {"$and": [has_gmv, {"$not": [{"$isNumber": "$products_sold.gmv_high"}]}]}, 1, 0]}},
                        "sessions": {"$sum": 1},
                        "sessions_with_gmv": {"$sum": {"$cond": [has_gmv, 1, 0]}},
                        "estimator_versions": {"$addToSet": "$estimator_version"}}},
            *keep,
            {"$set": {"session_gmv": {"$cond": [{"$gt": ["$sessions_with_gmv", 0]},
                                                {"$round": ["$session_gmv", 2]}, None]},
                      "gmv_low": {"$cond": [{"$gt": ["$sessions_with_gmv", 0]}, {"$round": ["$gmv_low", 2]}, None]},
                      "gmv_high": {"$cond": [{"$and": [{"$gt": ["$sessions_with_gmv", 0]},
                                                       {"$eq": ["$gmv_high_unknown", 0]}]},
                                             {"$round": ["$gmv_high", 2]}, None]},
                      "units_high": {"$cond": [{"$eq": ["$units_high_unknown", 0]}, "$units_high", None]},
                      "sessions_without_gmv": {"$subtract": ["$sessions", "$sessions_with_gmv"]},
                      "estimator_versions": {"$sortArray": {"input": "$estimator_versions", "sortBy": 1}}}},
            {"$sort": {ranked: -1, "_id": 1}},
            {"$limit": limit},
            *_with_product(platform),
            {"$project": {"units_high_unknown": 0, "gmv_high_unknown": 0, "sessions_with_gmv": 0}},
        ]

    build.__doc__ = products_by_session_sales.__doc__
    return build


def _with_room(platform: str) -> Pipeline:
    """Rows keyed by room ID (``_id``) -> ``room_id``, ``title``, ``streamer_id`` from ``rooms``."""
    return [
        {"$lookup": {"from": "rooms", "localField": "_id", "foreignField": "room_id", "as": "room",
                     "pipeline": [{"$match": {"platform": platform}},
                                  {"$project": {"_id": 0, "title": 1, "streamer_id": 1}}]}},
        {"$unwind": {"path": "$room", "preserveNullAndEmptyArrays": True}},  # one room at most: a unique key
        {"$set": {"room_id": "$_id", "title": "$room.title", "streamer_id": "$room.streamer_id"}},
        {"$project": {"_id": 0, "room": 0}},
    ]


def _with_product(platform: str) -> Pipeline:
    """Rows keyed by product ID (``_id``) -> ``product_id``, ``title``, ``shop_name`` from ``products``."""
    return [
        {"$lookup": {"from": "products", "localField": "_id", "foreignField": "product_id", "as": "product",
                     "pipeline": [{"$match": {"platform": platform}},
                                  {"$project": {"_id": 0, "title": 1, "shop_name": 1}}]}},
        {"$unwind": {"path": "$product", "preserveNullAndEmptyArrays": True}},
        {"$set": {"product_id": "$_id", "title": "$product.title", "shop_name": "$product.shop_name"}},
        {"$project": {"_id": 0, "product": 0, "first": 0}},
    ]


# --- which ranking answers which question -----------------------------------------------------------------------

PIPELINES: dict[tuple[str, str], Callable[[str, datetime, int], tuple[str, Pipeline]]] = {
    ("streamers", "followers"): streamers_by_followers,
    ("streamers", "peak_viewers"): streamers_by_viewers("peak_viewers"),
    ("streamers", "viewers_total"): streamers_by_viewers("viewers_total"),
    ("rooms", "peak_viewers"): rooms_by_viewers("peak_viewers"),
    ("rooms", "viewers_total"): rooms_by_viewers("viewers_total"),
    ("rooms", "sales"): rooms_by_shelf_sales("sales"),
    ("rooms", "sales_growth"): rooms_by_shelf_sales("sales_growth"),
    ("products", "sales"): products_by_sales,
    ("products", "sales_growth"): products_by_sales_growth,
    ("streamers", "session_gmv"): streamers_by_session_gmv,
    ("products", "session_gmv"): products_by_session_sales("session_gmv"),
    ("products", "session_units"): products_by_session_sales("session_units"),
    **{("sessions", by): sessions_by(by) for by in SESSION_FIELDS},
}

#: Why the other combinations are refused.
REFUSED: dict[tuple[str, str], str] = {
    ("streamers", "sales"): "a streamer's sales are not in the data: shelves are captured per room, and a "
                            "product's sales are all its channels'; rank rooms --by sales instead",
    ("rooms", "followers"): "followers belong to streamers: rank streamers --by followers",
    ("products", "followers"): "products have no followers: rank streamers --by followers",
    ("products", "peak_viewers"): "viewers are counted per room: rank rooms --by peak_viewers",
    ("products", "viewers_total"): "viewers are counted per room: rank rooms --by viewers_total",
}
REFUSED[("streamers", "sales_growth")] = REFUSED[("streamers", "sales")].replace("--by sales", "--by sales_growth")
REFUSED.update({
    ("sessions", "followers"): "followers belong to streamers: rank streamers --by followers",
    ("sessions", "sales"): "a session's sales are its estimated units and GMV: rank sessions --by units or --by gmv",
    ("sessions", "sales_growth"): "a session's sales are its estimated units and GMV: rank sessions --by units "
                                  "or --by gmv",
    ("sessions", "session_gmv"): "session_gmv sums a streamer's sessions: rank sessions --by gmv, or streamers "
                                 "--by session_gmv",
    ("rooms", "session_gmv"): "session_gmv sums a streamer's sessions: rank streamers --by session_gmv, or "
                              "sessions --by gmv for single broadcasts",
    ("sessions", "session_units"): "session_units sums a product's sales over sessions: rank sessions --by units, "
                                   "or products --by session_units",
    ("streamers", "session_units"): "session_units sums a product's sales over sessions: rank products --by "
                                    "session_units, or streamers --by session_gmv",
    ("rooms", "session_units"): "session_units sums a product's sales over sessions: rank products --by "
                                "session_units, or sessions --by units for single broadcasts",
})
for _by in ("gmv", "units", "uv_value"):
    REFUSED[("streamers", _by)] = (f"{_by} is a figure of one broadcast: rank sessions --by {_by}, or streamers "
                                   "--by session_gmv for the sum of their sessions' GMV")
    REFUSED[("rooms", _by)] = f"{_by} is a figure of one broadcast of a room: rank sessions --by {_by}"
    REFUSED[("products", _by)] = (f"{_by} is a figure of one broadcast: rank sessions --by {_by}, or products "
                                  "--by session_gmv or --by session_units for what they sold in sessions")
del _by

#: The ``--by`` choices of each entity.
BY_CHOICES: dict[str, tuple[str, ...]] = {
    entity: tuple(by for (e, by) in PIPELINES if e == entity) for entity in ALL_ENTITIES}


@dataclass(frozen=True)
class Ranking:
    """One ranking's question and its rows, best first."""

    entity: str
    by: str
    platform: str
    since: datetime
    limit: int
    rows: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "by": self.by, "platform": self.platform, "since": self.since.isoformat(),
                "limit": self.limit, "rows": self.rows}


def pipeline_for(entity: str, by: str, platform: str, since: datetime, limit: int) -> tuple[str, Pipeline]:
    """``(collection, pipeline)`` of one ranking; ``ValueError`` for a combination that makes no sense."""
    if entity not in ALL_ENTITIES:
        raise ValueError(f"nothing to rank by the name {entity!r}: choose one of {', '.join(ALL_ENTITIES)}")
    if by not in ALL_METRICS:
        raise ValueError(f"unknown --by {by!r}: choose one of {', '.join(ALL_METRICS)}")
    if (entity, by) in REFUSED:
        raise ValueError(f"{entity} cannot be ranked by {by}: {REFUSED[entity, by]}")
    if (entity, by) not in PIPELINES:
        raise ValueError(f"{entity} cannot be ranked by {by}: rank {entity} --by {' | '.join(BY_CHOICES[entity])}")
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    return PIPELINES[entity, by](platform, since, limit)


def rank(db: Database[Any], entity: str, by: str, platform: str, since: datetime, limit: int = 20) -> Ranking:
    """Run one ranking on ``db``; rows carry ``rank`` (1-based) first."""
    collection, pipeline = pipeline_for(entity, by, platform, since, limit)
    rows = [{"rank": n, **row} for n, row in enumerate(db[collection].aggregate(pipeline), start=1)]
    return Ranking(entity, by, platform, since, limit, rows)


# --- the command ------------------------------------------------------------------------------------------------


def text_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


#: The ID column of each entity's rows.
ID_FIELDS = {"streamers": "streamer_id", "rooms": "room_id", "products": "product_id", "sessions": "session_id"}


def money(value: Any) -> str:
    """Yuan with two decimals and thousands separators; ``-`` for unknown."""
    return "-" if not isinstance(value, int | float) or isinstance(value, bool) else f"{value:,.2f}"


def gmv_cell(gmv: Any, low: Any, high: Any) -> str | None:
    """``45,678.00 [44,000.00, 47,000.00]``: a GMV with the bounds the truth lies within (``-``: unbounded);
    None when the GMV is unknown."""
    if not isinstance(gmv, int | float):
        return None
    return f"{money(gmv)} [{money(low)}, {money(high)}]"


def units_cell(units: Any, low: Any, high: Any) -> str | None:
    """``1,234 [1,200, 1,300]``: units sold with the bounds they lie within (``?``: unbounded); None when
    the units are unknown."""
    if not isinstance(units, int):
        return None
    return f"{_cell(units)} [{_cell(low)}, {'?' if high is None else _cell(high)}]"


def display_rows(entity: str, by: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a GMV or session ranking as the table shows them: the GMV and its bounds in one cell,
    the figure ranked by after the title; the others as they are (``--json`` has every field)."""
    if entity == "sessions":
        field = SESSION_FIELDS[by]
        out = []
        for row in rows:
            shown = {"rank": row["rank"], "session_id": row.get("session_id"), "title": row.get("title")}
            if field != "gmv_estimate":
                shown[field] = row.get(field)
            shown["gmv [low, high]"] = gmv_cell(row.get("gmv_estimate"), row.get("gmv_low"), row.get("gmv_high"))
            shown["estimator_version"] = row.get("estimator_version")
            shown.update({k: row.get(k) for k in ("status", "room_id", "streamer_id")})
            out.append(shown)
        return out
    if entity == "products" and by in ("session_gmv", "session_units"):
        return [{"rank": row["rank"], "product_id": row.get("product_id"), "title": row.get("title"),
                 "session_units [low, high]": units_cell(row.get("session_units"), row.get("units_low"),
                                                         row.get("units_high")),
                 "session_gmv [low, high]": gmv_cell(row.get("session_gmv"), row.get("gmv_low"), row.get("gmv_high")),
                 "sessions": row.get("sessions"), "shop_name": row.get("shop_name"),
                 "estimator_versions": ",".join(row.get("estimator_versions") or []) or None} for row in rows]
    if by == "session_gmv":
        return [{"rank": row["rank"], "streamer_id": row.get("streamer_id"), "nickname": row.get("nickname"),
                 "session_gmv [low, high]": gmv_cell(row.get("session_gmv"), row.get("gmv_low"), row.get("gmv_high")),
                 "sessions": row.get("sessions"), "sessions_without_gmv": row.get("sessions_without_gmv"),
                 "estimator_versions": ",".join(row.get("estimator_versions") or []) or None} for row in rows]
    return rows


def table_cells(rows: list[dict[str, Any]], first: Sequence[str] = ("rank",)) -> tuple[
        list[str], list[list[str]], list[bool]]:
    """``rows`` as a table's parts: the columns (the ``first`` ones in that order, then the others in the
    order the rows have them), each row's cells as text (``-`` for unknown, counts with separators), and
    which columns hold numbers (right-aligned)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    columns.sort(key=lambda c: list(first).index(c) if c in first else len(first))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), int | float) for row in rows if row.get(c) is not None)
               and any(row.get(c) is not None for row in rows) for c in columns]
    return columns, cells, numeric


def format_table(rows: list[dict[str, Any]], first: Sequence[str] = ("rank",)) -> str:
    """``rows`` as plain text with aligned columns (numbers right, text left; CJK text counts two columns
    a character): :func:`table_cells`' table, for callers that want a string."""
    if not rows:
        return "(no rows)"
    columns, cells, numeric = table_cells(rows, first)
    widths = [max(text_width(t) for t in [c, *(line[i] for line in cells)]) for i, c in enumerate(columns)]

    def line(texts: list[str]) -> str:
        parts = []
        for text, width, right in zip(texts, widths, numeric, strict=True):
            pad = " " * (width - text_width(text))
            parts.append(pad + text if right else text + pad)
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), *(line(texts) for texts in cells)])


def rank_from(mongo_uri: str, db_name: str, entity: str, by: str, *, platform: str, since: datetime,
              limit: int) -> Ranking:
    """One ranking read from the MongoDB at ``mongo_uri`` (callers check the question with
    :func:`pipeline_for` before they start or reach any server)."""
    with MongoClient(mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10_000) as client:
        return rank(client[db_name], entity, by, platform, since, limit)
