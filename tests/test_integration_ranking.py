"""The reference rankings (crawlers/reports/ranking.py) against the sandbox's ground truth.

A real worker crawls the live rooms of a small frozen Taobao world (rooms, anchors,
shelves, item details) twice, with the world clock moved on ten minutes between the two
crawls, so viewers change and sales grow. Every expected ranking below is computed from
the sandbox's truth at the two clock times, never from MongoDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from crawlers.reports import ranking
from sandbox.process import start_sandbox
from tests.crawl_helpers import Fleet

pytestmark = pytest.mark.integration

TOP = 6


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, redis_server, mongo_server) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("ranking")
    with start_sandbox("--platforms", "taobao", "--time-scale", "0", "--no-chaos", "--streamers", "16") as sandbox:
        first = sandbox.truth("taobao")
        faulty = {room for rooms in first["faults"].values() for room in rooms}
        # The deliberately broken pages would only blur what the rankings are compared with.
        rooms = [life["liveId"] for life in first["lives"] if life["roomStatus"] == 1 and life["liveId"] not in faulty]
        assert len(rooms) >= 4
        fleet = Fleet(tmp, sandbox, redis_server.url, mongo_server.url, spider="taobao")
        start = datetime.now(UTC)
        try:
            fleet.push_seeds([{"kind": "room", "live_id": room, "crawl": "first"} for room in rooms])
            fleet.start(1)
            fleet.wait(120)
            between = datetime.now(UTC)
            sandbox.clock(advance_seconds=600)
            second = sandbox.truth("taobao")
            fleet.push_seeds([{"kind": "room", "live_id": room, "crawl": "second"} for room in rooms])
            fleet.start(1)
            fleet.wait(120)
        finally:
            fleet.stop()
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    db = client[fleet.db_name]
    yield {"db": db, "rooms": rooms, "truths": [first, second], "start": start, "between": between}
    client.drop_database(fleet.db_name)
    client.close()


def _top(values: dict[str, int], n: int = TOP) -> list[tuple[str, int]]:
    """The expected ranking: largest first, ties by ID (as the pipelines break them)."""
    return sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _ranked(db, entity: str, by: str, since: datetime, n: int = TOP) -> list[tuple[str, int]]:
    rows = ranking.rank(db, entity, by, "taobao", since, n).rows
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    return [(row[ranking.ID_FIELDS[entity]], row[by]) for row in rows]


def _lives(truth: dict[str, Any], rooms: list[str]) -> dict[str, dict[str, Any]]:
    return {life["liveId"]: life for life in truth["lives"] if life["liveId"] in rooms}


def _shelf_sales(crawled: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    """(room, product) -> the sales the shelf showed at each crawl the product was on it, in order."""
    seen: dict[tuple[str, str], list[int]] = {}
    for truth in crawled["truths"]:
        for room, life in _lives(truth, crawled["rooms"]).items():
            for item in life["items"]:
                seen.setdefault((room, item["itemId"]), []).append(item["buyCount"])
    return seen


def test_the_crawls_stored_what_the_rankings_read(crawled):
    db = crawled["db"]
    assert db.rooms.count_documents({"platform": "taobao"}) == len(crawled["rooms"])
    assert db.room_snapshots.count_documents({}) >= 4 * len(crawled["rooms"])  # detail + stats, twice
    assert db.product_snapshots.count_documents({"room_id": {"$type": "string"}}) == sum(
        len(sales) for sales in _shelf_sales(crawled).values())


def test_streamers_by_followers(crawled):
    lives = _lives(crawled["truths"][0], crawled["rooms"])
    anchors = {a["accountId"]: a["fansNum"] for a in crawled["truths"][0]["anchors"]
               if a["liveId"] in lives}
    assert _ranked(crawled["db"], "streamers", "followers", crawled["start"]) == _top(anchors)
    rows = ranking.rank(crawled["db"], "streamers", "followers", "taobao", crawled["start"], 1).rows
    names = {a["accountId"]: a["accountName"] for a in crawled["truths"][0]["anchors"]}
    assert rows[0]["nickname"] == names[rows[0]["streamer_id"]]


@pytest.mark.parametrize(("by", "field"), [("peak_viewers", "joinCount"), ("viewers_total", "viewCount")])
def test_rooms_and_streamers_by_viewers_over_both_crawls(crawled, by, field):
    first, second = (_lives(t, crawled["rooms"]) for t in crawled["truths"])
    best = {room: max(first[room][field], second[room][field]) for room in crawled["rooms"]}
    assert _ranked(crawled["db"], "rooms", by, crawled["start"]) == _top(best)
    by_anchor = {first[room]["accountId"]: value for room, value in best.items()}
    assert _ranked(crawled["db"], "streamers", by, crawled["start"]) == _top(by_anchor)


def test_the_window_leaves_out_the_first_crawl(crawled):
    second = _lives(crawled["truths"][1], crawled["rooms"])
    peaks = {room: life["joinCount"] for room, life in second.items()}
    assert _ranked(crawled["db"], "rooms", "peak_viewers", crawled["between"]) == _top(peaks)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert ranking.rank(crawled["db"], "rooms", "peak_viewers", "taobao", later).rows == []
    assert ranking.rank(crawled["db"], "products", "sales", "kuaishou", crawled["start"]).rows == []


def test_products_by_sales_and_sales_growth(crawled):
    latest: dict[str, int] = {}
    growth: dict[str, int] = {}
    for truth_at, truth in enumerate(crawled["truths"]):
        for life in _lives(truth, crawled["rooms"]).values():
            for item in life["items"]:
                latest[item["itemId"]] = item["buyCount"]  # sales only grow: the later crawl's count
                if truth_at == 0:
                    growth[item["itemId"]] = -item["buyCount"]
    first_ids = set(growth)
    second_ids = {item["itemId"] for life in _lives(crawled["truths"][1], crawled["rooms"]).values()
                  for item in life["items"]}
    growth = {pid: latest[pid] + growth[pid] if pid in second_ids else 0 for pid in first_ids}
    growth.update({pid: 0 for pid in second_ids - first_ids})  # seen once: no growth livefleet could see
    assert _ranked(crawled["db"], "products", "sales", crawled["start"]) == _top(latest)
    expected_growth = _top(growth)
    assert expected_growth[0][1] > 0
    assert _ranked(crawled["db"], "products", "sales_growth", crawled["start"]) == expected_growth


def test_rooms_by_shelf_sales_and_growth(crawled):
    sales: dict[str, int] = {}
    growth: dict[str, int] = {}
    for (room, _product), seen in _shelf_sales(crawled).items():
        sales[room] = sales.get(room, 0) + seen[-1]
        growth[room] = growth.get(room, 0) + seen[-1] - seen[0]
    assert _ranked(crawled["db"], "rooms", "sales", crawled["start"]) == _top(sales)
    assert _ranked(crawled["db"], "rooms", "sales_growth", crawled["start"]) == _top(growth)
