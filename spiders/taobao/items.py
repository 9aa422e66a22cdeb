"""Pure parsers of Taobao/Tmall product payloads: live-room shelves and item details.

Called by ``pages.parse`` with the ``data`` object of an answer whose envelope was
already checked. Mapping decisions (Taobao -> SCHEMA.md):

* ``rank_in_room`` is the item's shelf number ``goodsIndex`` (the "N号宝贝" the anchor
  calls out; the newest item has the highest number and is listed first); where an
  entry has none, its 1-based position in the list (plus ``groupNum * n`` of the
  request, for later pages).
* ``category`` is Taobao's leaf category ID (``categoryId`` / ``categoryLevelLeaf``) as
  text: the detail APIs send no category name, and one meaning per field keeps
  records of one product from different payloads mergeable.
* Prices: ``priceText`` is yuan (a range ``35.31-283.66`` gives its low end);
  ``priceMoney`` is fen and only used when no ``priceText`` is sent. The original
  price is the struck-through (``lineThrough``) entry of ``extraPrices``. A shelf's
  ``itemPrice`` is yuan text.
* Sales are shown as text (``"1万+"``, ``"已售1.2万"``): the text is kept in ``sales_text``,
  ``sales_is_lower_bound`` says whether it is a floor (``+``; an exact count such as the
  shelf's ``buyCount`` ``"66910"`` is not). A rolling count (``"月销1000+"``, 30天销量: units in
  the last 30 days) is not cumulative: it goes to ``sales_30d``/``sales_30d_text``, never to
  ``sales``. ``sellCount``/``vagueSellCount``/``buyCount`` say nothing of a month in their
  names, so only their text decides. Hidden sales (Tmall's ``sellCountAntiCreep`` without a
  count) stay None. Snapshots carry the same sales fields as their product.
* The Tmall page's ``_DATA_Detail.mock`` and wdetail's ``mockData`` are placeholders
  shown before the dynamic data loads: never read.
* Protocol-relative URLs (``//img.alicdn.com/...``) are made absolute with ``https:``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from models.entities import Product, ProductSnapshot, Record, merge_records
from models.errors import BlockedError, GoneError
from models.normalize import MAX_TEXT_CHARS, parse_count, parse_money
from spiders.payload import SALES_FIELDS, Page, dig, first_text, sales_fields

__all__ = ["item_detail", "item_list", "tmall_detail", "tmall_mdskip", "tmall_page"]

_NULLS = frozenset({"null", "undefined", "none", "nil"})
# Words a shop puts before a sales count: 月销1000+, 已售1.2万, 销量 999+, 30天销量 500+ (月销, 月售
# and 30天 say the count is rolling: ``spiders.payload.sales_fields`` puts it in sales_30d).
_SALES_PREFIX_RE = re.compile(
    r"^\s*(?:月销量?|月售出?|近?\s*30\s*天\s*(?:销量|销售|已售|售出)?|已售|总销量|销量|已抢|售出|付款)\s*[:：]?\s*"
)
_PAGE_VAR_RE = re.compile(r"var\s+_DATA_(?P<name>Detail|Mdskip)\s*=\s*")
_PUNISH_RE = re.compile(r"x5referer|x5secdata|_____tmd_____|nocaptcha|nc_1_n1z", re.I)
_GONE_RE = re.compile(r"宝贝不存在|商品不存在|已下架|商品找不到|页面找不到")


# --- field helpers ------------------------------------------------------------------------------


def _id(page: Page, value: Any, where: str) -> str | None:
    if isinstance(value, str) and value.strip().lower() in _NULLS:
        return None
    return page.id(value, where)


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or value.strip().lower() in _NULLS:
        return None
    text = value.strip()
    return "https:" + text if text.startswith("//") else text


def _money(page: Page, value: Any, where: str, *, unit: Literal["yuan", "fen"] = "yuan") -> float | None:
    if isinstance(value, str) and value.strip().lower() in _NULLS:
        return None
    try:
        return parse_money(value, unit=unit)
    except ValueError as exc:
        raise page.fail(f"ValueError: {where}: {exc}") from None


def _sales(page: Page, value: Any, where: str) -> dict[str, Any]:
    """``sales`` (+ ``sales_text``/``sales_is_lower_bound``) from a count or a shop's sales text;
    ``sales_30d``/``sales_30d_text`` for a rolling ``月销`` text (``spiders.payload.sales_fields``)."""
    if not isinstance(value, str):
        counted = page.count(value, where, "sales")
        return sales_fields(counted["sales"], None, False) if counted else {}
    text = value.strip()
    # Only a count-sized text goes through the regex (its "\s*" runs backtrack on long ones).
    bare = _SALES_PREFIX_RE.sub("", text) if len(text) <= MAX_TEXT_CHARS else text
    try:
        parsed = parse_count(bare)
    except ValueError as exc:
        raise page.fail(f"ValueError: {where}: {exc}") from None
    if parsed is None:
        return {}
    if bare == text and parsed.text is None:
        return sales_fields(parsed.value, None, False)
    return sales_fields(parsed.value, text, parsed.is_lower_bound)


def _json_object(page: Page, value: Any, where: str) -> Any:
    """An object the API sends either parsed or as an escaped JSON string (apiStack values)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except RecursionError:
        raise page.fail(f"malformed JSON in {where}: nested too deep") from None
    except json.JSONDecodeError as exc:
        raise page.fail(f"malformed JSON in {where}: {exc.msg} at char {exc.pos}") from None


def _first_image(obj: Any, *paths: str) -> str | None:
    for path in paths:
        value = dig(obj, path)
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v.strip()), None)
        if url := _url(value):
            return url
    return None


def _prices(page: Page, obj: Any, where: str) -> dict[str, Any]:
    """``price``/``original_price`` from a ``{price: {price, extraPrices}, skuCore}`` object."""
    price = _money(page, dig(obj, "price.price.priceText"), f"{where}.price.price.priceText")
    if price is None:
        fen = dig(obj, "price.price.priceMoney", "skuCore.sku2info.0.price.priceMoney")
        price = _money(page, fen, f"{where}.price.price.priceMoney", unit="fen")
    if price is None:
        text = dig(obj, "skuCore.sku2info.0.price.priceText")
        price = _money(page, text, f"{where}.skuCore.sku2info.0.price.priceText")
    original = None
    extras = dig(obj, "price.extraPrices")
    for i, extra in enumerate(extras if isinstance(extras, list) else []):
        if str(dig(extra, "lineThrough", default="")).lower() == "true":
            original = _money(page, dig(extra, "priceText"), f"{where}.price.extraPrices.{i}.priceText")
            break
    return {"price": price, "original_price": original}


def _product(page: Page, *, url: str | None, **fields: Any) -> Product:
    product = page.build(Product, **fields)
    if url is not None:
        # build() takes ``url`` as the page's source URL: the item's own URL is set after.
        product.url = url
    return product


def _snapshot(page: Page, product: Product, **fields: Any) -> list[Record]:
    # A snapshot must observe something: a price or a sales count.
    if product.price is None and product.sales is None and product.sales_30d is None:
        return []
    return [
        page.build(
            ProductSnapshot,
            product_id=product.product_id,
            captured_at=page.fetched_at,
            price=product.price,
            **{name: getattr(product, name) for name in SALES_FIELDS},
            **fields,
        )
    ]


# --- live-room shelves ----------------------------------------------------------------------------


def _shelf_entries(page: Page, data: Any) -> list[tuple[str, Any, Any]]:
    """``(path, item object, shelf number)`` for each item of either list shape."""
    if isinstance(data, dict) and "itemListv1" in data:
        items = data["itemListv1"]
        if items is None:
            return []
        if not isinstance(items, list):
            raise page.fail(f"data.itemListv1: expected a list, got {type(items).__name__}")
        out = []
        for i, entry in enumerate(items):
            do = dig(entry, "liveItemDO")
            where = f"data.itemListv1.{i}" + (".liveItemDO" if do is not None else "")
            item = do if do is not None else entry
            out.append((where, item, dig(entry, "goodsIndex", default=dig(item, "goodsIndex"))))
        return out
    if isinstance(data, list):  # the 中控台 list: slices, each {goodsIndex, goodsList: [item]}
        out = []
        for i, entry in enumerate(data):
            goods = dig(entry, "goodsList", default=[])
            if not isinstance(goods, list):
                raise page.fail(f"data.{i}.goodsList: expected a list, got {type(goods).__name__}")
            for j, item in enumerate(goods):
                out.append((f"data.{i}.goodsList.{j}", item, dig(entry, "goodsIndex")))
        return out
    raise page.fail(f"data: expected an item list, got {type(data).__name__}")


def item_list(page: Page, data: Any, request: dict[str, Any]) -> list[Record]:
    """A live room's shelf -> one Product and one ProductSnapshot per item."""
    offset = 0
    try:
        offset = int(request.get("groupNum") or 0) * int(request.get("n") or 0)
    except (TypeError, ValueError):
        offset = 0
    request_room = _id(page, request.get("liveId"), "url.data.liveId")
    records: list[Record] = []
    for position, (where, item, shelf_number) in enumerate(_shelf_entries(page, data), start=1):
        extend = _json_object(page, dig(item, "extendVal"), f"{where}.extendVal")
        number = page.count(shelf_number, f"{where}.goodsIndex", "rank", text=False).get("rank")
        product = _product(
            page,
            product_id=_id(page, dig(item, "itemId"), f"{where}.itemId"),
            title=first_text(item, "itemName", "title"),
            price=_money(page, dig(item, "itemPrice"), f"{where}.itemPrice"),
            **_sales(page, dig(extend, "buyCount"), f"{where}.extendVal.buyCount"),
            category=first_text(extend, "categoryLevelLeaf"),
            image_url=_url(dig(item, "itemPic")),
            # The H5 detail page first: itemUrl is a taoke (affiliate) redirect to it.
            url=_url(dig(item, "itemH5TaokeUrl")) or _url(dig(item, "itemUrl")),
            fetched_at=page.fetched_at,
        )
        room_id = request_room or _id(page, dig(item, "liveId"), f"{where}.liveId")
        records.append(product)
        records += _snapshot(page, product, room_id=room_id, rank_in_room=number or offset + position)
    return records


# --- item details -----------------------------------------------------------------------------------


def _api_stack(page: Page, data: Any) -> dict[str, Any]:
    """The dynamic part of a wdetail answer: ``apiStack[].value`` objects (strings in the real API)."""
    stack = dig(data, "apiStack")
    merged: dict[str, Any] = {}
    for i, entry in enumerate(stack if isinstance(stack, list) else []):
        value = _json_object(page, dig(entry, "value"), f"data.apiStack.{i}.value")
        if isinstance(value, dict):
            # Some captures wrap the value in {"data": {...}}.
            if isinstance(value.get("data"), dict) and not {"price", "item"} & value.keys():
                value = value["data"]
            for key, part in value.items():
                merged.setdefault(key, part)
    return merged


def item_detail(page: Page, data: Any) -> list[Record]:
    """mtop.taobao.detail.getdetail / wdetail v6 -> Product (+ ProductSnapshot)."""
    stack = _api_stack(page, data)
    item = dig(data, "item")
    product = page.build(
        Product,
        product_id=_id(page, dig(item, "itemId", default=dig(stack, "item.itemId")), "data.item.itemId"),
        title=first_text(item, "title") or first_text(stack, "item.title"),
        **_prices(page, stack, "data.apiStack.0.value"),
        **_sales(
            page, dig(stack, "item.sellCount", "item.vagueSellCount"), "data.apiStack.0.value.item.sellCount"
        ),
        shop_id=_id(page, dig(data, "seller.shopId"), "data.seller.shopId"),
        shop_name=first_text(data, "seller.shopName"),
        category=first_text(item, "categoryId") or first_text(data, "params.trackParams.categoryId"),
        image_url=_first_image(item, "images"),
        fetched_at=page.fetched_at,
    )
    return [product, *_snapshot(page, product)]


def tmall_detail(page: Page, data: Any) -> list[Record]:
    """The Tmall page's static ``_DATA_Detail``: title, shop, images, category; no price."""
    item = dig(data, "item")
    return [
        page.build(
            Product,
            product_id=_id(page, dig(item, "itemId"), "data.item.itemId"),
            title=first_text(item, "title"),
            shop_id=_id(page, dig(data, "seller.shopId"), "data.seller.shopId"),
            shop_name=first_text(data, "seller.shopName"),
            category=first_text(item, "categoryId"),
            image_url=_first_image(item, "images"),
            fetched_at=page.fetched_at,
        )
    ]


def tmall_mdskip(page: Page, data: Any) -> list[Record]:
    """The Tmall page's dynamic ``_DATA_Mdskip``: price, original price, sales where shown."""
    product = page.build(
        Product,
        product_id=_id(page, dig(data, "item.itemId"), "data.item.itemId"),
        title=first_text(data, "item.title"),
        **_prices(page, data, "data"),
        **_sales(page, dig(data, "item.sellCount", "item.vagueSellCount"), "data.item.sellCount"),
        shop_id=_id(page, dig(data, "params.trackParams.shop_id"), "data.params.trackParams.shop_id"),
        fetched_at=page.fetched_at,
    )
    return [product, *_snapshot(page, product)]


def _page_objects(page: Page, text: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    for match in _PAGE_VAR_RE.finditer(text):
        name = f"_DATA_{match['name']}"
        try:
            found[name], _ = decoder.raw_decode(text, match.end())
        except RecursionError:
            raise page.fail(f"malformed JSON in {name}: nested too deep") from None
        except json.JSONDecodeError as exc:
            raise page.fail(f"malformed JSON in {name}: {exc.msg} at char {exc.pos}") from None
    return found


def tmall_page(page: Page, body: bytes) -> list[Record]:
    """detail.m.tmall.com/item.htm: the ``_DATA_Detail`` and ``_DATA_Mdskip`` scripts, merged."""
    text = body.decode("utf-8", "replace")
    objects = _page_objects(page, text)
    if not objects:
        head = text[:20000]
        if _PUNISH_RE.search(head):
            raise BlockedError("Tmall punish/slider page instead of the item page", platform=page.platform,
                               url=page.url)  # fmt: skip
        if _GONE_RE.search(head):
            raise GoneError("Tmall item page says the item does not exist", platform=page.platform, url=page.url)
        raise page.fail("no _DATA_Detail or _DATA_Mdskip script in the page")
    records: list[Record] = []
    if "_DATA_Detail" in objects:
        records += tmall_detail(page, objects["_DATA_Detail"])
    if "_DATA_Mdskip" in objects:
        records += tmall_mdskip(page, objects["_DATA_Mdskip"])
    return merge_records(records)
