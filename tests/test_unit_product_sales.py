"""Sales as the contract says (SCHEMA.md, ``products`` / ``product_snapshots``), without a store.

* Rolling counts (月销, 月售, 30天: units in the last 30 days) go to ``sales_30d``, never to
  ``sales``, on the real Taobao/Tmall and Douyin payloads; the real payloads' own counts
  (``sellCount``, ``vagueSellCount``, ``sales``: names that say no month) stay cumulative.
* Snapshots carry the same sales fields as their product: text, and whether it is a lower bound.
* The store's update keeps the best-known count (the stage it adds; the server side is in
  ``tests/test_integration_product_sales.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.entities import Product, ProductSnapshot
from pipelines.store.ops import best_sales, entity_update
from spiders.douyin import pages as douyin
from spiders.payload import SALES_FIELDS, sales_fields
from spiders.taobao import pages as taobao
from tests.fixture_cases import iter_cases, run

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CASES = [case for case in iter_cases() if not case.is_error]
BY_ID = {case.id: case for case in CASES}
WDETAIL = "taobao/item_detail/wdetail_v6_processed_546416107509"
SHELF = "taobao/item_list/zhongkong_liveId_219968464906"
MDSKIP = "taobao/tmall_mdskip/item_583789686010"
DOUYIN_DETAIL = "douyin/product_detail/app_promotion_detail_61088777146700"
WITH_SNAPSHOTS = [case for case in CASES if case.platform in ("taobao", "douyin", "kuaishou")
                  and '"product_snapshot"' in json.dumps(case.expected)]


def _payload(case_id: str) -> Any:
    return json.loads(BY_ID[case_id].body)


def _body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _sales(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in SALES_FIELDS)


@pytest.mark.parametrize(
    ("text", "rolling"),
    [
        ("月销1000+", True), ("月销量 300", True), ("月售50", True), ("30天销量200", True), ("近30天已售 1万+", True),
        ("已售1.2万", False), ("总销量 500", False), ("销量999+", False), ("1万+", False), ("2000+人付款", False),
    ],
)
def test_only_words_that_say_a_month_make_a_count_rolling(text: str, rolling: bool) -> None:
    fields = sales_fields(1, text, False)
    assert ("sales_30d" in fields, "sales" in fields) == (rolling, not rolling)


@pytest.mark.parametrize(
    ("sell_count", "sales_30d"),
    [("月销1000+", (1000, "月销1000+")), ("月售 50", (50, "月售 50")), ("30天销量2000+", (2000, "30天销量2000+"))],
)
def test_taobao_detail_rolling_count_goes_to_sales_30d(sell_count: str, sales_30d: tuple[int, str]) -> None:
    payload = _payload(WDETAIL)
    item = payload["data"]["apiStack"][0]["value"]["item"]
    item["sellCount"] = item["vagueSellCount"] = sell_count
    product, snapshot = taobao.parse(_body(payload), fetched_at=T0, kind="item_detail")
    assert isinstance(product, Product) and isinstance(snapshot, ProductSnapshot)
    assert _sales(product) == _sales(snapshot) == (None, None, None, *sales_30d)


def test_taobao_detail_real_count_is_cumulative() -> None:
    """The real wdetail's ``sellCount``/``vagueSellCount`` ``1万+``: no month in the field or the text."""
    product, snapshot = run(BY_ID[WDETAIL])
    assert _sales(product) == _sales(snapshot) == (10000, "1万+", True, None, None)


def test_taobao_shelf_rolling_count_goes_to_sales_30d() -> None:
    payload = _payload(SHELF)
    payload[0]["goodsList"][0]["extendVal"]["buyCount"] = "月销66"
    payload[1]["goodsList"][0]["extendVal"]["buyCount"] = "66910"
    records = taobao.parse(_body(payload), fetched_at=T0, kind="item_list")
    first, first_snap, second, second_snap = records[:4]
    assert _sales(first) == _sales(first_snap) == (None, None, None, 66, "月销66")
    assert _sales(second) == _sales(second_snap) == (66910, None, False, None, None)
    assert first_snap.rank_in_room == 8  # the snapshot still observes the shelf


def test_tmall_mdskip_rolling_count_goes_to_sales_30d() -> None:
    payload = _payload(MDSKIP)
    payload["item"]["sellCount"] = "月销量 300"
    product, snapshot = taobao.parse(_body(payload), fetched_at=T0, kind="tmall_mdskip")
    assert _sales(product) == _sales(snapshot) == (None, None, None, 300, "月销量 300")


def test_douyin_real_counts_are_cumulative_and_exact() -> None:
    """The real detail, showcase and mall-feed payloads send ``sales`` as ints: exact, cumulative."""
    cases = [BY_ID[DOUYIN_DETAIL], BY_ID["douyin/commerce_feed/mall_feed_2021-06-26"],
             BY_ID["douyin/showcase/app_showcase_repaired"]]
    products = [r for case in cases for r in run(case) if isinstance(r, Product)]
    counted = [p for p in products if p.sales is not None]
    assert (len(products), len(counted)) == (12, 11)  # one feed item sends no sales
    assert all(p.sales_is_lower_bound is False and p.sales_text is None for p in counted)
    assert all(p.sales_30d is None for p in products)


@pytest.mark.parametrize(("shown", "sales_30d"), [("月销1.2万+", 12000), ("月售 300件", 300)])
def test_douyin_rolling_text_goes_to_sales_30d(shown: str, sales_30d: int) -> None:
    payload = _payload(DOUYIN_DETAIL)
    payload["data"]["promotions"][0]["base_info"]["sales"] = shown
    case = BY_ID[DOUYIN_DETAIL]
    product, snapshot = douyin.parse(_body(payload), fetched_at=T0, kind=case.kind, url=case.url)
    assert _sales(product) == _sales(snapshot) == (None, None, None, sales_30d, shown)


@pytest.mark.parametrize("case", WITH_SNAPSHOTS, ids=lambda case: case.id)
def test_every_real_snapshot_carries_its_products_sales_fields(case: Any) -> None:
    records = run(case)
    products = {r.product_id: r for r in records if isinstance(r, Product)}
    snapshots = [r for r in records if isinstance(r, ProductSnapshot)]
    assert snapshots
    for snapshot in snapshots:
        assert _sales(snapshot) == _sales(products[snapshot.product_id])
        assert snapshot.sales is None or snapshot.sales_is_lower_bound is not None


# --- the store's update ------------------------------------------------------------------------------


def _product(sales: int | None, at: datetime, text: str | None = None, lower: bool | None = None, **extra: Any):
    return Product(platform="taobao", product_id="1", sales=sales, sales_text=text, sales_is_lower_bound=lower,
                   fetched_at=at, **extra)


def _pipeline(*observations: Product) -> list[dict[str, Any]]:
    return entity_update(observations)._doc  # the update pipeline of the UpdateOne


def test_best_of_a_batch_is_the_largest_then_the_exact_then_the_newest() -> None:
    exact = _product(66910, T0, lower=False)
    rounded = _product(66000, T0 + timedelta(hours=1), "6.6万+", True)
    assert best_sales([exact, rounded]) is exact
    bound = _product(66000, T0, "6.6万+", True)
    plain = _product(66000, T0 - timedelta(hours=1), lower=False)
    assert best_sales([bound, plain]) is plain
    newer = _product(66000, T0 + timedelta(hours=1), "6.6万+", True)
    assert best_sales([bound, newer]) is newer
    assert best_sales([_product(None, T0, title="x")]) is None


def test_product_sales_are_set_by_a_second_stage_never_by_the_newest_value() -> None:
    first, second = _pipeline(_product(66000, T0, "6.6万+", True, title="t"))
    merged = json.dumps(first, default=str)
    assert '"title": "t"' in merged and "6.6" not in merged and '"sales"' not in merged
    stage = second["$set"]
    assert set(stage) == {"sales", "sales_text", "sales_is_lower_bound"}
    assert stage["sales"]["$cond"][1:] == [{"$literal": 66000}, "$sales"]
    assert stage["sales_text"]["$cond"][1:] == [{"$literal": "6.6万+"}, "$sales_text"]
    # An exact count without text removes the kept one's text when it wins.
    stage = _pipeline(_product(66910, T0, lower=False))[1]["$set"]
    assert stage["sales_text"]["$cond"][1] == "$$REMOVE"


def test_a_product_without_sales_and_other_entities_keep_one_stage() -> None:
    assert len(_pipeline(_product(None, T0, title="t"))) == 1
