"""Kuaishou 小店 item payloads: the closest documented real format of a live room's shelf.

No public web crawler reads a Kuaishou live room's 小黄车 (docs/kuaishou_formats.md, "Gap").
The only documented product formats are the merchant open platform's (openapi.kwaixiaodian.com,
credentialed by a seller's access_token), so these parsers read those:

* ``shelf`` ``/open/item/list/get`` (``open.item.list.get``): ``{result, msg, error_msg, code,
  data{items[{kwaiItemId, title, categoryName, price, volume, mainImageUrl, imageUrls, linkUrl,
  userId, itemStatus, skuList[...]}], totalPage, currentPageNumber, ...}}`` -> Product +
  ProductSnapshot per item. It lists a seller's items, not a broadcast's shelf: the snapshot
  has no room_id and no rank_in_room (the payload names no room; list order is no shelf rank).
* ``product_detail`` ``/open/item/get`` (``open.item.get``): ``data{itemId, title,
  categoryName, price, volume, mainImageUrl, imageUrls, linkUrl, skuInfos[...]}`` -> Product +
  ProductSnapshot.

``price`` is in fen (分) -> yuan; ``volume`` (销量, the item's units sold: its name says no
month, so cumulative) -> sales, an exact count (``sales_is_lower_bound`` False), on the
snapshot too. ``userId`` (the seller, whose 小店 this is) -> shop_id. There is no original price field.
"""

from __future__ import annotations

from typing import Any

from models.entities import Product, ProductSnapshot, Record
from models.normalize import parse_money
from spiders.kuaishou.state import check_result
from spiders.payload import Page, dig, first_text, sales_fields

__all__ = ["product_detail", "shelf"]


def _fen(page: Page, value: Any, where: str) -> float | None:
    try:
        return parse_money(value, unit="fen")
    except ValueError as exc:
        raise page.fail(f"ValueError: {where}: {exc}") from None


def _item(page: Page, item: Any, where: str, id_path: str) -> list[Record]:
    product_id = page.id(dig(item, id_path), f"{where}.{id_path}")
    price = _fen(page, dig(item, "price"), f"{where}.price")
    counted = page.count(dig(item, "volume"), f"{where}.volume", "sales")
    sales = (sales_fields(counted["sales"], counted.get("sales_text"), bool(counted.get("sales_is_lower_bound")))
             if counted else {})
    product = page.build(
        Product,
        product_id=product_id,
        title=first_text(item, "title"),
        price=price,
        **sales,
        shop_id=page.id(dig(item, "userId"), f"{where}.userId"),
        category=first_text(item, "categoryName"),
        image_url=first_text(item, "mainImageUrl", "imageUrls.0"),
        fetched_at=page.fetched_at,
    )
    link = first_text(item, "linkUrl")
    if link:  # Product.url is set apart: build()'s own ``url`` is the page's
        product.url = link
    snapshot = page.build(ProductSnapshot, product_id=product_id, captured_at=page.fetched_at, price=price, **sales)
    return [product, snapshot]


def shelf(page: Page, payload: Any) -> list[Record]:
    """``open.item.list.get`` -> Product + ProductSnapshot per item."""
    check_result(payload, url=page.url)
    items = dig(payload, "data.items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise page.fail("data.items: expected a list")
    return [record for i, item in enumerate(items) for record in _item(page, item, f"data.items.{i}", "kwaiItemId")]


def product_detail(page: Page, payload: Any) -> list[Record]:
    """``open.item.get`` -> Product + ProductSnapshot."""
    check_result(payload, url=page.url)
    data = dig(payload, "data")
    if not isinstance(data, dict):
        raise page.fail("data missing")
    return _item(page, data, "data", "itemId")
