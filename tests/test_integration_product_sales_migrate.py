"""``livefleet migrate product-sales`` on the real MongoDB-compatible server, with products and
product snapshots as the store kept them before cumulative sales were kept as the best-known count
(snapshots without ``sales_text``/``sales_is_lower_bound``, ``products.sales`` the newest count,
月销 counts in ``sales``)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from crawlers.cli.main import main
from crawlers.cli.migrate import _apply_sales, migrate_product_sales, plan_product_sales
from pipelines.p300_store import ensure_indexes

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
TB, DY = "taobao", "douyin"


def _product(platform: str, product_id: str, at: datetime, **sales) -> dict:
    return {"platform": platform, "product_id": product_id, "title": product_id, "fetched_at": at,
            "first_seen_at": T0, "last_seen_at": at, **sales}


def _snap(platform: str, product_id: str, at: datetime, **sales) -> dict:
    return {"platform": platform, "product_id": product_id, "captured_at": at, **sales}


def _old_store(db) -> None:
    ensure_indexes(db)
    db.products.insert_many([
        # The product: an exact shelf 66910, then the detail page's 6.6万+ stored over it.
        _product(TB, "shelf-then-detail", T1, sales=66000, sales_text="6.6万+", sales_is_lower_bound=True),
        # A 月销 count stored as sales; an earlier snapshot of unknown kind.
        _product(TB, "monthly", T1, sales=1000, sales_text="月销1000+", sales_is_lower_bound=True),
        # Douyin ints: no text anywhere.
        _product(DY, "plain", T1, sales=300),
        # A text left by an older observation (the store kept each field's newest value apart).
        _product(TB, "stale-text", T1, sales=10500, sales_text="1万+", sales_is_lower_bound=True),
        # No snapshots: a 月售 count, and a plain count.
        _product(TB, "alone-monthly", T0, sales=50, sales_text="月售50"),
        _product(DY, "alone-plain", T0, sales=7),
        # Stored the new way already: nothing to do.
        _product(TB, "new-way", T1, sales=66910, sales_is_lower_bound=False),
        # No sales at all; no sales of its own, but a snapshot with a count.
        _product(DY, "hidden", T0),
        _product(DY, "no-own-count", T1),
    ])
    db.product_snapshots.insert_many([
        _snap(TB, "shelf-then-detail", T0, sales=66910, room_id="219968464906", rank_in_room=8),
        _snap(TB, "shelf-then-detail", T1, sales=66000),
        _snap(TB, "monthly", T0, sales=900),
        _snap(TB, "monthly", T1, sales=1000),
        _snap(DY, "plain", T0, sales=250),
        _snap(DY, "plain", T1, sales=300),
        _snap(TB, "stale-text", T0, sales=10000),
        _snap(TB, "stale-text", T1, sales=10500),
        # Snapshots whose product was never stored, with texts.
        _snap(TB, "orphan", T0, sales=10000, sales_text="1万+"),
        _snap(TB, "orphan", T1, sales=500, sales_text="月销500"),
        _snap(TB, "new-way", T0, sales=66000, sales_text="6.6万+", sales_is_lower_bound=True),
        _snap(TB, "new-way", T1, sales=66910, sales_is_lower_bound=False),
        _snap(DY, "no-own-count", T0, sales=40),
    ])


def _state(db) -> dict:
    return {name: sorted((d for d in db[name].find({}, {"_id": 0})), key=repr)
            for name in ("products", "product_snapshots")}


def _sales(doc: dict) -> tuple:
    return tuple(doc.get(name) for name in ("sales", "sales_text", "sales_is_lower_bound", "sales_30d",
                                             "sales_30d_text"))


def _products(db) -> dict:
    return {d["product_id"]: _sales(d) for d in db.products.find({})}


def _snapshots(db) -> dict:
    out: dict = {}
    for d in db.product_snapshots.find({}).sort([("product_id", 1), ("captured_at", 1)]):
        out.setdefault(d["product_id"], []).append(_sales(d))
    return out


def test_migrates_sales_to_the_contract_and_is_idempotent(mongo_db):
    _old_store(mongo_db)
    counts = migrate_product_sales(mongo_db, log=None)

    products = _products(mongo_db)
    # The best-known count: the shelf's 66910, whose text and flag no stored document tells.
    assert products["shelf-then-detail"] == (66910, None, None, None, None)
    # The 月销 count moved out; the snapshot of unknown kind is not promoted to sales.
    assert products["monthly"] == (None, None, None, 1000, "月销1000+")
    assert products["plain"] == (300, None, False, None, None)
    assert products["stale-text"] == (10500, None, False, None, None)
    assert products["alone-monthly"] == (None, None, None, 50, "月售50")
    assert products["alone-plain"] == (7, None, False, None, None)
    assert products["new-way"] == (66910, None, False, None, None)
    assert products["hidden"] == (None,) * 5
    assert products["no-own-count"] == (40, None, None, None, None)

    snaps = _snapshots(mongo_db)
    # The snapshot of the page the product was fetched from takes the product's text and flag.
    assert snaps["shelf-then-detail"] == [(66910, None, None, None, None), (66000, "6.6万+", True, None, None)]
    assert snaps["monthly"] == [(900, None, None, None, None), (None, None, None, 1000, "月销1000+")]
    assert snaps["plain"] == [(250, None, None, None, None), (300, None, False, None, None)]
    assert snaps["stale-text"] == [(10000, None, None, None, None), (10500, None, False, None, None)]
    assert snaps["orphan"] == [(10000, "1万+", True, None, None), (None, None, None, 500, "月销500")]
    assert snaps["new-way"] == [(66000, "6.6万+", True, None, None), (66910, None, False, None, None)]

    assert counts["products.updated"] == 7
    assert counts["products.sales_from_snapshot"] == 2
    assert counts["products.rolling_moved"] == 2
    assert counts["product_snapshots.rolling_moved"] == 2
    assert counts["product_snapshots.flag_derived"] == 4
    assert counts["product_snapshots.flag_unknown"] == 5
    assert counts["product_snapshots.left_out_unknown_kind"] == 1
    # The other fields are untouched.
    shelf = mongo_db.product_snapshots.find_one({"product_id": "shelf-then-detail", "captured_at": T0})
    assert (shelf["room_id"], shelf["rank_in_room"]) == ("219968464906", 8)
    assert mongo_db.products.find_one({"product_id": "plain"})["title"] == "plain"

    after = _state(mongo_db)
    again = migrate_product_sales(mongo_db, log=None)
    assert _state(mongo_db) == after
    assert again["products.updated"] == again["product_snapshots.updated"] == 0
    assert not any(again[k] for k in ("products.rolling_moved", "product_snapshots.rolling_moved",
                                      "product_snapshots.flag_derived", "products.sales_from_snapshot"))


def test_dry_run_changes_nothing_and_counts_what_it_would_do(mongo_db):
    _old_store(mongo_db)
    before = _state(mongo_db)
    dry = migrate_product_sales(mongo_db, dry_run=True, log=None)
    assert _state(mongo_db) == before
    assert dry == migrate_product_sales(mongo_db, log=None)


def test_a_product_a_crawl_updates_meanwhile_keeps_what_the_store_wrote(mongo_db):
    _old_store(mongo_db)
    product = mongo_db.products.find_one({"product_id": "shelf-then-detail"})
    snapshots = list(mongo_db.product_snapshots.find({"product_id": "shelf-then-detail"}).sort("captured_at"))
    plan = plan_product_sales(product, snapshots)
    assert plan.product == {"$set": {"sales": 66910}, "$unset": {"sales_text": "", "sales_is_lower_bound": ""}}
    # A crawl stores a larger count between the migration's read and its write: the migration leaves it.
    mongo_db.products.update_one({"_id": product["_id"]}, {"$set": {"sales": 70000, "sales_text": "7万+"}})
    counts: Counter[str] = Counter()
    _apply_sales(mongo_db, product, snapshots, False, counts)
    assert (counts["products.updated"], counts["products.changed_meanwhile"]) == (0, 1)
    assert _sales(mongo_db.products.find_one({"_id": product["_id"]}))[:3] == (70000, "7万+", True)


def test_the_command_prints_what_it_did(mongo_db, mongo_server, redis_server, tmp_path, monkeypatch, capsys):
    _old_store(mongo_db)
    for name, value in {"REDIS_URL": redis_server.url, "MONGO_URI": mongo_server.url,
                        "LIVEFLEET_MONGO_DB": mongo_db.name, "LIVEFLEET_VAR_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    assert main(["migrate", "product-sales", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "product-sales: would update 7 products (2 to a larger count from their snapshots" in out
    assert mongo_db.products.find_one({"product_id": "shelf-then-detail"})["sales"] == 66000
    assert main(["migrate", "product-sales", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["dry_run"], counts["products.updated"]) == (False, 7)
    assert mongo_db.products.find_one({"product_id": "shelf-then-detail"})["sales"] == 66910
    assert main(["migrate", "product-sales", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["products.updated"] == 0
