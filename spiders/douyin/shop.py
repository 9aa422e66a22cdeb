"""Douyin shop payloads (shelves, presented product, product lists, mall feed, shopping pushes) -> records.

The per-item mapping is ``products.product_records``; what each kind yields is
listed in ``pages``' module docstring.
"""

from __future__ import annotations

from typing import Any

from models.entities import Product, Record, Room, RoomSnapshot
from spiders.douyin.products import Shop, product_records
from spiders.douyin.rooms import room_status, streamer
from spiders.payload import Page, dig, first_text

__all__ = ["as_dict", "as_list", "commerce_feed", "current_product", "product_list", "shelf", "ws_shopping"]


def as_list(page: Page, value: Any, where: str) -> list[Any]:
    """``value`` when it is a list; else a ``PermanentPageError`` naming ``where``."""
    if not isinstance(value, list):
        raise page.fail(f"{where}: expected a list, got {type(value).__name__}")
    return value


def as_dict(page: Page, value: Any, where: str) -> dict[str, Any]:
    """``value`` when it is a JSON object; else a ``PermanentPageError`` naming ``where``."""
    if not isinstance(value, dict):
        raise page.fail(f"{where}: expected an object, got {type(value).__name__}")
    return value


def shelf(page: Page, payload: Any) -> list[Record]:
    """A live room's shelf: web ``/live/promotions/page/``, the app list, 百应 ``promotions_v2``."""
    body = payload["data"] if isinstance(dig(payload, "data.promotions"), list) else payload
    at = "data.promotions" if body is not payload else "promotions"
    items = as_list(page, dig(body, "promotions"), at)
    room_id = page.id(dig(body, "room_id") or page.query("room_id"), "room_id")
    shop: Shop = (page.id(dig(body, "page_header.author_shop_info.shop_id"), "page_header.author_shop_info.shop_id"),
                  first_text(body, "page_header.author_shop_info.name"))  # fmt: skip
    try:
        offset = max(int(page.query("offset") or 0), 0)
    except ValueError:
        offset = 0
    records: list[Record] = []
    for i, item in enumerate(items):
        index = dig(item, "index")
        rank = index if isinstance(index, int) and not isinstance(index, bool) and index >= 1 else offset + i + 1
        records += product_records(page, item, f"{at}.{i}", room_id=room_id, rank=rank, shop=shop)
    current = first_text(body, "current_promotion_id")
    current_id = next((dig(item, "product_id") for item in items if str(dig(item, "promotion_id")) == current), None)
    count = page.count(dig(body, "total"), "total", "product_count", text=False)
    if room_id is not None and (current_id or count):
        records.append(page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at,
                                  current_product_id=page.id(current_id, "current_promotion_id"), **count))  # fmt: skip
    return records


def current_product(page: Page, payload: Any) -> list[Record]:
    """The product being presented: web ``/live/promotions/pop/v3/``, the app's current product."""
    items = as_list(page, dig(payload, "promotions"), "promotions")
    if not items:
        return []  # nothing is being presented
    room_id = page.id(dig(payload, "room_id") or page.query("room_id"), "room_id")
    records = product_records(page, items[0], "promotions.0", room_id=room_id)
    if room_id is not None:
        records.append(page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at,
                                  current_product_id=records[0].key()["product_id"]))  # fmt: skip
    return records


def product_list(page: Page, payload: Any) -> list[Record]:
    """``promotions[]`` outside a room: product detail, showcase (橱窗)."""
    items = as_list(page, dig(payload, "promotions"), "promotions")
    return [record for i, item in enumerate(items) for record in product_records(page, item, f"promotions.{i}")]


def _feed_live(page: Page, live: Any, where: str) -> list[Record]:
    """A mall-feed live card (not a webcast room object: its own field names)."""
    room_id = page.id(dig(live, "room_id"), f"{where}.room_id")
    status = room_status(dig(live, "status"))
    viewers = page.count(dig(live, "number"), f"{where}.number", "viewers_now")
    total = page.count(dig(live, "total_number"), f"{where}.total_number", "viewers_total")
    products = page.count(dig(live, "product_count"), f"{where}.product_count", "product_count", text=False)
    streamer_id = page.id(dig(live, "uid"), f"{where}.uid")
    records: list[Record] = [
        page.build(Room, room_id=room_id, streamer_id=streamer_id, title=first_text(live, "title"), status=status,
                   cover_url=first_text(live, "cover.url_list.0"), **viewers, **total, **products,
                   fetched_at=page.fetched_at),
    ]  # fmt: skip
    if status is not None or viewers or total:
        records.append(page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at, status=status,
                                  viewers_now=viewers.get("viewers_now"), viewers_total=total.get("viewers_total"),
                                  **products))  # fmt: skip
    person = {"uid": dig(live, "uid"), "sec_uid": dig(live, "sec_uid"), "nickname": dig(live, "nick_name"),
              "avatar": dig(live, "avatar")}  # fmt: skip
    return records + streamer(page, person, where, is_live=status == "live" if status else None, room_id=room_id)


def commerce_feed(page: Page, payload: Any) -> list[Record]:
    """The mall feed's ``item_cards``: product cards, and live cards with the product they show."""
    records: list[Record] = []
    for i, card in enumerate(as_list(page, dig(payload, "item_cards"), "item_cards")):
        room_id = None
        if isinstance(dig(card, "live"), dict):
            records += _feed_live(page, card["live"], f"item_cards.{i}.live")
            room_id = page.id(dig(card, "live.room_id"), f"item_cards.{i}.live.room_id")
        if isinstance(dig(card, "product"), dict):
            records += product_records(page, card["product"], f"item_cards.{i}.product", room_id=room_id)
    return records


def ws_shopping(page: Page, payload: Any) -> list[Record]:
    """Decoded WebcastLiveShoppingMessage(s): the products they name."""
    messages = payload if isinstance(payload, list) else [payload]
    records: list[Record] = []
    for i, message in enumerate(messages):
        ids = as_list(page, dig(message, "updated_product_ids", default=[]), f"{i}.updated_product_ids")
        info = dig(message, "updated_product_info") if len(ids) == 1 else None
        for j, value in enumerate(ids):
            records.append(page.build(
                Product, product_id=page.id(value, f"{i}.updated_product_ids.{j}"), title=first_text(info, "title"),
                image_url=first_text(info, "cover"), fetched_at=page.fetched_at))  # fmt: skip
    return records
