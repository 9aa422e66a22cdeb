"""Douyin shop and profile answers in the real formats: the live shelf, product detail, user profile.

Prices are integers in fen (``min_price: 34900`` is ¥349.00); sales are the integer
``sale_num`` (shelf) / ``base_info.sales`` (detail), left out for shops that hide them.
Shelf keys follow the web ``live/promotions/page/`` answer (alphabetical, as Douyin sends
them) plus the app list's ``current_promotion_id`` and ``sale_num``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox.douyin import static as S
from sandbox.douyin.entities import STATUS_LIVE, LiveState, Product, Room, ShelfItem, Streamer
from sandbox.douyin.payloads import avatar_urls
from sandbox.world import beijing_text, hex_digest

_IMG = "https://p3-aio.ecombdimg.com/img/ecom-shop-material"


def image_url(p: Product, size: int, n: int = 0) -> str:
    """A product image at ``size`` px wide (``n``: which of its images)."""
    name = f"{p.shop.sec_shop_id}_m_{p.cover}{n or ''}_sx_{p.product_id % 900_000 + 100_000}_www800-800"
    return f"{_IMG}/{name}~tplv-resize:{size}:0.webp"


def detail_url(p: Product, room: Room, s: Streamer, st: LiveState) -> str:
    """``detail_url``: the product page with the room it was seen in (double-encoded like the real one)."""
    biz = quote(quote(f'{{"sec_author_id":"{s.sec_uid}","room_id":"{st.room_id}","aid":"6383"}}', safe=""), safe="")
    return f"https://ecom.douyin.com/ecommerce/trade/detail/index.html?id={p.product_id}&origin_type=638301&outside_biz_info={biz}"


def shelf_item(item: ShelfItem, room: Room, s: Streamer, st: LiveState, world_minute: int) -> dict[str, Any]:
    """One ``promotions[]`` entry; a flash price cut shows as a campaign with its window."""
    p = item.product
    cut = item.min_price < p.base_price
    out: dict[str, Any] = {"apply_coupon": 0, "button_label": "去抢购" if cut else "去看看", "campaign": cut}
    if cut:
        window = world_minute // 10 * 600
        out["campaign_info"] = {
            "campaign_id": str(7_000_000_000_000_000_000 + p.product_id % 10**15 + window),
            "campaign_type": 4,
            "end_time": window + 600,
            "is_preheat": False,
            "left_stock": 0,
            "price": item.min_price,
            "promotion_id": str(p.promotion_id),
            "regular_price": p.base_price,
            "start_time": window,
            "style": 13,
        }
    out.update(
        {
            "can_add_cart": True,
            "can_sold": p.in_stock,
            "category": {"first_cid": p.first_cid, "second_cid": p.second_cid},
            "cover": image_url(p, 200),
            "detail_cover": {"height": 200, "url_list": [image_url(p, 800)], "width": 200},
            "detail_url": detail_url(p, room, s, st),
            "elastic_title": "",
            "explain_type": 1 if st.explaining == p.promotion_id else 0,
            "flash_type": 0,
            "in_stock": p.in_stock,
            "index": item.index,
            "is_campaign": cut,
            "item_type": 6,
            "leaf_category": p.leaf_category,
            "max_price": item.max_price,
            "min_price": item.min_price,
            "platform": 4,
            "platform_label": "小店",
            "product_id": str(p.product_id),
            "promotion_id": str(p.promotion_id),
            "real_index": item.index - 1,
            "regular_price": p.regular_price,
        }
    )
    if item.sale_num is not None:
        out["sale_num"] = item.sale_num
    out.update({"shop_id": p.shop.shop_id, "status": 2, "stock_num": 0, "title": p.title})
    if p.fault == "missing_id":
        del out["product_id"]  # the broken entry real lists sometimes carry
    return out


def shelf_page(
    items: list[ShelfItem],
    total: int,
    next_offset: int,
    room: Room,
    s: Streamer,
    st: LiveState,
    world_minute: int,
    log_id: str,
) -> dict[str, Any]:
    """``live/promotions/page/``: one page of the shelf; ``next_offset`` is -1 after the last page."""
    categories = [{"id": 0, "name": "全部", "type": 0, "unique_index": ""}]
    seen: set[int] = set()
    for p in room.shelf:
        if p.second_cid not in seen:
            seen.add(p.second_cid)
            categories.append(
                {"id": p.second_cid, "name": p.leaf_category, "type": 1, "unique_index": f"1_{p.second_cid}"}
            )
    header: dict[str, Any] = {}
    if s.shop is not None:
        header["author_shop_info"] = {
            "font_size": 14,
            "is_xd_shop": True,
            "jump_url": f"sslocal://webview?url=https%3A%2F%2Fhaohuo.jinritemai.com%2Fviews%2Fshop%2Findex%3Fid%3D{s.shop.sec_shop_id}",
            "live_params_type": [1],
            "name": s.shop.name,
            "shop_id": s.shop.sec_shop_id,
        }
    header.update({"entries": [], "entries_style": 0})
    return {
        "current_promotion_id": str(st.explaining) if st.explaining else "",
        "log_id": log_id,
        "next_offset": next_offset,
        "page_category": {"categories": categories, "show_category_product_count": 10},
        "page_header": header,
        "page_room_info": {"room_type": 0},
        "promotions": [shelf_item(item, room, s, st, world_minute) for item in items],
        "server_time": world_minute * 60,
        "status_code": 0,
        "status_msg": "",
        "total": total,
    }


def shelf_empty(world_minute: int, log_id: str) -> dict[str, Any]:
    """The shelf answer for a room that is not live (or a room_id of an ended session): no promotions."""
    return {
        "current_promotion_id": "",
        "log_id": log_id,
        "next_offset": -1,
        "page_category": {
            "categories": [{"id": 0, "name": "全部", "type": 0, "unique_index": ""}],
            "show_category_product_count": 10,
        },
        "page_header": {"entries": [], "entries_style": 0},
        "page_room_info": {"room_type": 0},
        "promotions": [],
        "server_time": world_minute * 60,
        "status_code": 0,
        "status_msg": "",
        "total": 0,
    }


def product_detail(
    found: list[tuple[ShelfItem, Room, Streamer, LiveState]], missing: list[str], now_ms: int, log_id: str
) -> dict[str, Any]:
    """``ecom/product/detail/saas/pc/``: one entry per known promotion; unknown ids in ``fatal_item_ids``."""
    promotions = []
    for item, room, s, st in found:
        p = item.product
        url = detail_url(p, room, s, st)
        base: dict[str, Any] = {
            "images": [
                {
                    "height": 800,
                    "uri": f"ecom-shop-material/{p.cover}{n or ''}",
                    "url_list": [image_url(p, 800, n)],
                    "width": 800,
                }
                for n in range(3)
            ],
            "links": {"h5_url": url},
            "price": {"market_price": p.regular_price, "min_price": item.min_price},
            "product_id": str(p.product_id),
            "promotion_id": str(p.promotion_id),
            "promotion_source": 4,
            "promotion_source_text": "商品来自抖音小店",
        }
        if item.sale_num is not None:
            base["sales"] = item.sale_num
        base.update({"sold_out": not p.in_stock, "status": 2, "title": p.title})
        promotions.append(
            {
                "base_info": base,
                "entry_info": {},
                "extra_info": {
                    "buy_button": {"links": {"h5_url": url}, "order_status": 0, "text": "立即购买"},
                    "favorited": False,
                    "pay_type": 0,
                    "shop_id": str(p.shop.shop_id),
                    "visitor_count": (item.sale_num or p.base_sales) * 37 + 1000,
                },
                "page_coms_config": S.PAGE_COMS_CONFIG,
                "privilege_info": {"activities": {}},
            }
        )
    return {
        "extra": {"fatal_item_ids": missing, "logid": log_id, "now": now_ms},
        "log_pb": {"impr_id": log_id},
        "page_style": S.PAGE_STYLE,
        "promotions": promotions,
        "status_code": 0,
    }


def _avatar(s: Streamer, size: str) -> dict[str, Any]:
    uri = f"aweme-avatar/tos-cn-avt-0015_{s.avatar}"
    if size == "100x100":
        urls = avatar_urls(s)
    else:
        urls = [f"https://{h}.douyinpic.com/aweme/{size}/{uri}.jpeg?from=3067671334" for h in ("p3", "p6", "p11")]
    return {"uri": uri, "url_list": urls}


def profile(s: Streamer, st: LiveState, now_ms: int, log_id: str) -> dict[str, Any]:
    """``aweme/v1/web/user/profile/other/``: ``room_id`` is a JSON number (beyond 2^53), 0 when not live."""
    live = st.status == STATUS_LIVE
    room_id = st.room_id if live else 0
    user: dict[str, Any] = {
        "avatar_168x168": _avatar(s, "168x168"),
        "avatar_300x300": _avatar(s, "300x300"),
        "avatar_larger": _avatar(s, "1080x1080"),
        "avatar_medium": _avatar(s, "720x720"),
        "avatar_thumb": _avatar(s, "100x100"),
        "aweme_count": s.aweme_count,
        "city": s.city,
        "country": "中国",
        "custom_verify": s.custom_verify,
        "enterprise_verify_reason": s.enterprise_verify_reason,
        "favoriting_count": 0,
        "follow_status": 0,
        "follower_count": s.follower_count,
        "follower_status": 0,
        "following_count": s.following_count,
        "gender": s.gender,
        "is_block": False,
        "live_status": 1 if live else 0,
        "nickname": s.nickname,
        "province": s.province,
        "room_data": "",
        "room_id": room_id,
        "room_id_str": str(room_id),
        "sec_uid": s.sec_uid,
        "short_id": str(s.short_id),
        "signature": s.signature,
        "total_favorited": s.total_favorited,
        "uid": str(s.uid),
        "unique_id": s.unique_id,
        "verification_type": 1 if s.custom_verify or s.enterprise_verify_reason else 0,
    }
    return {"extra": {"now": now_ms}, "log_pb": {"impr_id": log_id}, "status_code": 0, "user": user}


def profile_unknown(now_ms: int, log_id: str) -> dict[str, Any]:
    """The profile answer for an unknown sec_uid (code and wording chosen by the sandbox)."""
    return {
        "extra": {"now": now_ms},
        "log_pb": {"impr_id": log_id},
        "status_code": 2053,
        "status_msg": "用户不存在",
        "user": None,
    }


def log_id(world_seconds: float, n: int) -> str:
    """A Douyin-style log id: Beijing ``YYYYmmddHHMMSS`` then 18 upper-case hex chars."""
    stamp = beijing_text(world_seconds).replace("-", "").replace(" ", "").replace(":", "")
    return stamp + hex_digest(18, int(world_seconds), n).upper()
