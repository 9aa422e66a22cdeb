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

``--since`` bounds every pipeline: snapshots by ``captured_at``, streamers by
``last_seen_at`` (seen in the window). Ties are broken by ID so a ranking is stable.

Portability: the pipelines run on MongoDB 5.0+ and on SecantusDB (tested there). The
``$lookup`` stages use ``localField``/``foreignField`` with a ``pipeline`` (5.0+) to match
the platform too, and the looked-up document is ``$unwind``-ed rather than read as
``{"$first": "$room.title"}``: SecantusDB does not follow a field path through an array.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

ENTITIES: tuple[str, ...] = ("streamers", "rooms", "products")
METRICS: tuple[str, ...] = ("followers", "peak_viewers", "viewers_total", "sales", "sales_growth")

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
    if entity not in ENTITIES:
        raise ValueError(f"nothing to rank by the name {entity!r}: choose one of {', '.join(ENTITIES)}")
    if by not in METRICS:
        raise ValueError(f"unknown --by {by!r}: choose one of {', '.join(METRICS)}")
    if (entity, by) in REFUSED:
        raise ValueError(f"{entity} cannot be ranked by {by}: {REFUSED[entity, by]}")
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
ID_FIELDS = {"streamers": "streamer_id", "rooms": "room_id", "products": "product_id"}


def format_table(rows: list[dict[str, Any]], first: Sequence[str] = ("rank",)) -> str:
    """``rows`` as a table with aligned columns (numbers right, text left): the ``first`` columns in that
    order, then the others in the order the rows have them."""
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    columns.sort(key=lambda c: list(first).index(c) if c in first else len(first))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), int | float) for row in rows if row.get(c) is not None)
               and any(row.get(c) is not None for row in rows) for c in columns]
    widths = [max(text_width(t) for t in [c, *(line[i] for line in cells)]) for i, c in enumerate(columns)]

    def line(texts: list[str]) -> str:
        parts = []
        for text, width, right in zip(texts, widths, numeric, strict=True):
            pad = " " * (width - text_width(text))
            parts.append(pad + text if right else text + pad)
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), *(line(texts) for texts in cells)])


def run_rank(mongo_uri: str, db_name: str, entity: str, by: str, *, platform: str, since: str, limit: int,
             as_json: bool) -> int:
    """``livefleet rank``: print one ranking as a table (or one JSON document)."""
    start = parse_since(since)
    pipeline_for(entity, by, platform, start, limit)  # refuse before connecting
    with MongoClient(mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10_000) as client:
        ranking = rank(client[db_name], entity, by, platform, start, limit)
    if as_json:
        print(json.dumps(ranking.as_json(), ensure_ascii=False, default=str))
        return 0
    print(f"{entity} on {platform} by {by} since {start:%Y-%m-%d %H:%M:%S} UTC (top {limit})")
    print(format_table(ranking.rows, ("rank", ID_FIELDS[entity], "nickname", "title", by)))
    return 0
