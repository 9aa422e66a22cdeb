"""Cumulative sales only grow (SCHEMA.md, ``product_snapshots``), through the real store.

Issue 14 item 0: a Taobao product seen on a live shelf with its exact count (``buyCount``
``66910``), then on its item page with the rounded ``6.6万+`` (66000). The snapshots keep both
observations, each saying whether it is a lower bound; ``products.sales`` keeps the best-known
count, 66910 with its own text and flag, so growth (the best-known count minus the earliest
observation) never comes out negative.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.entities import Product, ProductSnapshot
from spiders.taobao import pages
from tests.fixture_cases import iter_cases

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
BY_ID = {case.id: case for case in iter_cases(platform="taobao")}
SHELF = "taobao/item_list/zhongkong_liveId_219968464906"
DETAIL = "taobao/item_detail/wdetail_v6_processed_546416107509"
#: The shelf's first item (goodsIndex 8) of the real 中控台 list.
ITEM = "584274708149"


def _body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _shelf(buy_count: str, at: datetime) -> list[Any]:
    """The real shelf payload, its first item showing ``buy_count`` sold."""
    payload = json.loads(BY_ID[SHELF].body)
    payload[0]["goodsList"][0]["extendVal"]["buyCount"] = buy_count
    return pages.parse(_body(payload), fetched_at=at, kind="item_list")


def _detail(sell_count: str, at: datetime) -> list[Any]:
    """The real wdetail payload, re-keyed to the shelf's item, showing ``sell_count``."""
    payload = json.loads(BY_ID[DETAIL].body)
    payload["data"]["item"]["itemId"] = ITEM
    item = payload["data"]["apiStack"][0]["value"]["item"]
    item["sellCount"] = item["vagueSellCount"] = sell_count
    return pages.parse(_body(payload), fetched_at=at, kind="item_detail")


def _snapshots(db) -> list[dict[str, Any]]:
    return list(db.product_snapshots.find({"platform": "taobao", "product_id": ITEM}, {"_id": 0}).sort("captured_at"))


def _product(db) -> dict[str, Any]:
    return db.products.find_one({"platform": "taobao", "product_id": ITEM})


def test_rounded_detail_count_after_an_exact_shelf_count_never_makes_growth_negative(writer, mongo_db):
    writer.write(_shelf("66910", T0))
    writer.write(_detail("6.6万+", T1))

    snapshots = _snapshots(mongo_db)
    assert [(s["sales"], s.get("sales_text"), s["sales_is_lower_bound"]) for s in snapshots] == [
        (66910, None, False),
        (66000, "6.6万+", True),
    ]
    product = _product(mongo_db)
    # The best-known count is the exact one seen first, with its own text and flag.
    assert product["sales"] == 66910
    assert product["sales_is_lower_bound"] is False
    assert product.get("sales_text") is None
    # The rest of the detail page still updated the product (newest observation wins).
    assert product["shop_name"] == "施耐德电气官方旗舰店"
    # Growth as the contract defines it: best-known count minus the earliest observation.
    earliest = snapshots[0]["sales"]
    assert product["sales"] - earliest == 0
    assert max(s["sales"] for s in snapshots) - earliest == 0


def test_a_larger_count_replaces_the_kept_one_with_its_text_and_flag(writer, mongo_db):
    writer.write(_shelf("66910", T0))
    writer.write(_detail("6.7万+", T1))
    product = _product(mongo_db)
    assert (product["sales"], product["sales_text"], product["sales_is_lower_bound"]) == (67000, "6.7万+", True)
    # ... and a later exact count above it replaces it, text and all (an exact count has no text).
    writer.write(_shelf("67012", T1 + timedelta(hours=1)))
    product = _product(mongo_db)
    assert product["sales"] == 67012 and product["sales_is_lower_bound"] is False
    assert "sales_text" not in product


def test_an_exact_count_equal_to_the_kept_lower_bound_replaces_it(writer, mongo_db):
    writer.write(_detail("6.6万+", T0))
    writer.write(_shelf("66000", T1))
    product = _product(mongo_db)
    assert (product["sales"], product["sales_is_lower_bound"]) == (66000, False)
    assert "sales_text" not in product


def test_one_batch_in_any_order_keeps_the_best_known_count(writer, mongo_db):
    records = [*_detail("6.6万+", T1), *_shelf("66910", T0)]
    writer.write(records)
    writer.write(records)  # at-least-once delivery: the same batch again changes nothing
    product = _product(mongo_db)
    assert (product["sales"], product["sales_is_lower_bound"]) == (66910, False)
    assert "sales_text" not in product
    assert len(_snapshots(mongo_db)) == 2


def test_a_late_replayed_lower_count_never_lowers_the_kept_one(writer, mongo_db):
    writer.write(_detail("7万+", T1))
    writer.write(_shelf("66910", T0))  # an older observation, replayed late from a spool
    product = _product(mongo_db)
    assert (product["sales"], product["sales_text"], product["sales_is_lower_bound"]) == (70000, "7万+", True)


def test_a_rolling_count_goes_to_sales_30d_and_leaves_sales_alone(writer, mongo_db):
    writer.write(_shelf("66910", T0))
    writer.write(_detail("月销1000+", T1))
    product = _product(mongo_db)
    assert (product["sales"], product["sales_is_lower_bound"]) == (66910, False)
    assert (product["sales_30d"], product["sales_30d_text"]) == (1000, "月销1000+")
    detail = _snapshots(mongo_db)[1]
    assert "sales" not in detail and "sales_is_lower_bound" not in detail
    assert (detail["sales_30d"], detail["sales_30d_text"]) == (1000, "月销1000+")


def test_records_built_by_hand_go_the_same_way(writer, mongo_db):
    """A record without a flag (a spool file written before the flag existed) is stored as it says."""
    old = Product(platform="taobao", product_id="1", sales=500, fetched_at=T0)
    writer.write([old, ProductSnapshot(platform="taobao", product_id="1", captured_at=T0, sales=500)])
    writer.write([Product(platform="taobao", product_id="1", sales=400, sales_text="400+", sales_is_lower_bound=True,
                          title="t", fetched_at=T1)])
    product = mongo_db.products.find_one({"platform": "taobao", "product_id": "1"})
    assert (product["sales"], product["title"]) == (500, "t")
    assert "sales_text" not in product and "sales_is_lower_bound" not in product
