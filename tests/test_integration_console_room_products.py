"""The console's room page data (``room_charts``) on a real MongoDB: the product table puts the
session's own per-product estimate (``products_sold``: units and GMV with bounds) beside the shelf
readings, ordered by estimated GMV, and lists a shop's products whose snapshots name no room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crawlers.api.console.reads import room_charts

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _session(room: str, sold: list[dict]) -> dict:
    return {"platform": "douyin", "session_id": room, "room_id": room, "status": "ended", "started_at": T0,
            "first_seen_live_at": T0, "last_seen_live_at": T0 + timedelta(minutes=10),
            "ended_seen_at": T0 + timedelta(minutes=11), "products_presented": [], "products_sold": sold}


def _sold(pid: str, units: int, gmv: float) -> dict:
    return {"product_id": pid, "units": units, "units_low": units, "units_high": units + 1,
            "units_is_lower_bound": False, "gmv": gmv, "gmv_low": gmv - 1, "gmv_high": gmv + 1, "price": 9.9,
            "readings": 3}


def test_the_room_table_puts_each_products_estimate_beside_its_readings(mongo_db):
    room = "7380000000000000077"
    for minute, (a, b) in enumerate([(10, 500), (14, 501), (30, 502)]):
        at = T0 + timedelta(minutes=minute * 5)
        mongo_db.product_snapshots.insert_many([
            {"platform": "douyin", "product_id": "a", "room_id": room, "captured_at": at, "sales": a, "price": 5.0},
            {"platform": "douyin", "product_id": "b", "room_id": room, "captured_at": at, "sales": b, "price": 99.0}])
    # b sold 2 units but at 99 yuan: its GMV ranks it first, though a sold more units.
    session = _session(room, [_sold("b", 2, 198.0), _sold("a", 20, 100.0)])
    products = room_charts(mongo_db, "douyin", room, session)["products"]
    assert [p["product_id"] for p in products] == ["b", "a"]
    b, a = products
    assert (a["first_sales"], a["last_sales"], a["sold"], a["readings"], a["price"]) == (10, 30, 20, 3, 5.0)
    assert (b["units"], b["gmv"], b["gmv_low"], b["gmv_high"]) == (2, 198.0, 197.0, 199.0)


def test_a_product_read_once_has_no_estimate_and_a_shop_product_has_no_readings(mongo_db):
    room = "7380000000000000078"
    mongo_db.product_snapshots.insert_one(
        {"platform": "douyin", "product_id": "once", "room_id": room, "captured_at": T0, "sales": 7, "price": 3.0})
    # "shop" was read through its shop (a Kuaishou seller's items name no room): only the estimate knows it.
    products = room_charts(mongo_db, "douyin", room, _session(room, [_sold("shop", 4, 40.0)]))["products"]
    assert [p["product_id"] for p in products] == ["shop", "once"]
    shop, once = products
    assert (shop["first_sales"], shop["units"], shop["price"], shop["readings"]) == (None, 4, 9.9, 3)
    assert (once["sold"], once["units"], once["gmv"]) == (0, None, None)
