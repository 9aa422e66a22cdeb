"""Douyin promotion/product objects -> Product (+ ProductSnapshot).

One mapper for every variant: the web shelf (``/live/promotions/page/``), the
pop card (``/live/promotions/pop/v3/``), the app's promotions list and current
product, the 百应 console (``promotions_v2``), showcase and mall feed items, and
the detail's ``base_info``. Prices are integers in fen everywhere.

* ``product_id``: ``product_id`` (never ``promotion_id``: 百应 shows the two differ,
  3730496070145456699 vs 3730474105137398151); missing -> ``PermanentPageError``
  naming the item's path. ``promotion_id`` (the listing's ID, which the detail API
  is asked by) is kept in ``Product.promotion_id``.
* ``price``: ``min_price``, else ``price_desc.min_price.origin`` (百应), else
  ``price.min_price`` (feed, detail), else ``campaign_info.price``, else a plain
  ``price``. A price of 0 is "not set" (the feed sends ``max_price: 0``).
* ``original_price``: ``regular_price``, ``market_price``, ``price.market_price``,
  ``campaign_info.regular_price``; else the app lists' plain ``price`` when it is
  above the sale price: there it is the crossed-out price (both real app items
  send ``price: 99900`` next to ``min_price`` 5990 and 1990, and the showcase sends
  it equal to ``market_price``). ``max_price`` is a range's top, not read.
* ``sales``: ``sales``, ``sale_num``, ``sold_num``, ints or texts such as
  ``"已售1.2万"``/``"1000+"`` (kept in ``sales_text``; ``sales_is_lower_bound`` True for a
  ``+`` floor, False for an exact count). None of these names says a month: cumulative
  (the real showcase, detail and feed payloads send ``sales`` ints). Only a text that says
  月销/月售/30天 is a rolling count: it goes to ``sales_30d``/``sales_30d_text``, never to
  ``sales``. The snapshot carries the same fields. Not sent -> ``None`` (the web
  shelf hides sales). The app lists' ``sale_num: 0`` is ``None`` too: the same
  objects send ``stock_num: 0`` next to ``in_stock: true``, so 0 is their "not
  shown"; ``sales`` (showcase, detail, feed) is a count, 0 included.
* ``shop_id``/``shop_name``: the item's own (``shop_id``, ``extra_info.shop_id``,
  ``toutiao.shop_name``), else the shelf header's shop (``author_shop_info``) for
  items without a shop of their own; the header's name goes to an item with a shop
  ID only when the IDs are equal (a 达人's room sells other shops' goods).
* ``category``: ``leaf_category`` (a name); ``category.first_cid`` is a bare ID.
* ``image_url``: ``cover`` (a URL or an image object), ``detail_cover``, ``images``.
  ``url``: the first http(s) link (``detail_url``, ``links.h5_url``, ``toutiao.detail_url``);
  app deep links (``aweme://``, ``sslocal://``) are not product pages.
"""

from __future__ import annotations

import re
from typing import Any

from models.entities import Product, ProductSnapshot, Record
from models.normalize import MAX_TEXT_CHARS, parse_count, parse_money
from spiders.payload import SALES_FIELDS, Page, dig, first_text, sales_fields

__all__ = ["Shop", "product_records"]

#: ``(shop_id, shop_name)`` of a shelf's header.
Shop = tuple[str | None, str | None]

_PRICES = ("min_price", "price_desc.min_price.origin", "price.min_price", "campaign_info.price")
_ORIGINAL = ("regular_price", "market_price", "price.market_price", "campaign_info.regular_price")
_SALES = ("sales", "sale_num", "sold_num")
_SALES_WORDS_RE = re.compile(
    r"^\s*(?:已售|已抢|销量|月销量?|月售出?|近?\s*30\s*天\s*(?:销量|已售|售出)?|总销量|已拼)\s*[:：]?\s*|\s*[件单份]\s*$"
)
_IMAGES = ("cover", "detail_cover", "images.0", "elastic_images.0", "small_cover", "product_icon")


def _fen(page: Page, item: Any, where: str, *paths: str) -> float | None:
    for path in paths:
        value = dig(item, path)
        if value is None or isinstance(value, dict | list):
            continue
        try:
            yuan = parse_money(value, unit="fen")
        except ValueError as exc:
            raise page.fail(f"ValueError: {where}.{path}: {exc}") from None
        if yuan:  # 0 means "not set"
            return yuan
    return None


def _sales(page: Page, item: Any, where: str) -> dict[str, Any]:
    for path in _SALES:
        value = dig(item, path)
        if value is None:
            continue
        if path == "sale_num" and value == 0:
            return {}  # the app lists' "not shown" (module docstring)
        # Only a count-sized text goes through the regex (its "\s*...$" backtracks on long runs).
        shown = _SALES_WORDS_RE.sub("", value) if isinstance(value, str) and len(value) <= MAX_TEXT_CHARS else value
        try:
            parsed = parse_count(shown)
        except ValueError as exc:
            raise page.fail(f"ValueError: {where}.{path}: {exc}") from None
        if parsed is None:
            return {}
        if not isinstance(value, str) or (parsed.text is None and shown == value):
            return sales_fields(parsed.value, None, False)
        return sales_fields(parsed.value, value.strip(), parsed.is_lower_bound)
    return {}


def _image(item: Any) -> str | None:
    for path in _IMAGES:
        value = dig(item, path)
        if isinstance(value, str) and value.strip():
            return value
        if (url := first_text(value, "url_list.0")) is not None:
            return url
    return None


def _link(item: Any) -> str | None:
    for path in ("detail_url", "links.h5_url", "toutiao.detail_url", "extra_info.buy_button.links.h5_url"):
        value = dig(item, path)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    return None


def product_records(
    page: Page,
    item: Any,
    where: str,
    *,
    room_id: str | None = None,
    rank: int | None = None,
    shop: Shop = (None, None),
) -> list[Record]:
    """Product + ProductSnapshot from one promotion/product object.

    ``room_id`` and ``rank`` (1-based) are given for a live room's shelf; the
    snapshot is emitted when it observes something (price, sales, a shelf position).
    """
    info = dig(item, "base_info") if isinstance(dig(item, "base_info"), dict) else item
    at = f"{where}.base_info" if info is not item else where
    product_id = page.id(dig(info, "product_id"), f"{at}.product_id")
    if product_id is None:
        raise page.fail(f"{at}.product_id: missing (promotion_id is another ID, not used in its place)")
    price = _fen(page, info, at, *_PRICES)
    original = _fen(page, info, at, *_ORIGINAL)
    plain = _fen(page, info, at, "price")
    if price is None:
        price = plain
    elif original is None and plain is not None and plain > price:
        original = plain
    sales = _sales(page, info, at)
    shop_id = page.id(dig(info, "shop_id") or dig(item, "extra_info.shop_id"), f"{at}.shop_id")
    shop_name = first_text(info, "shop_name", "toutiao.shop_name")
    if shop_id is None or shop_id == shop[0]:
        shop_id, shop_name = shop_id or shop[0], shop_name or shop[1]
    product = page.build(
        Product,
        product_id=product_id,
        title=first_text(info, "title"),
        price=price,
        original_price=original,
        **sales,
        shop_id=shop_id,
        shop_name=shop_name,
        category=first_text(info, "leaf_category"),
        image_url=_image(info),
        promotion_id=page.id(dig(info, "promotion_id") or dig(item, "promotion_id"), f"{at}.promotion_id"),
        fetched_at=page.fetched_at,
    )
    # Product.url cannot go through build(), whose own ``url`` is the source URL.
    product.url = _link(info) or _link(item)
    records: list[Record] = [product]
    if price is not None or sales or room_id is not None or rank is not None:
        records.append(
            page.build(
                ProductSnapshot,
                product_id=product_id,
                captured_at=page.fetched_at,
                price=price,
                **{name: sales[name] for name in SALES_FIELDS if name in sales},
                room_id=room_id,
                rank_in_room=rank,
            )
        )
    return records
