"""Douyin answers in the real formats: the room object, the enter envelope, category lists.

Keys, nesting and value types follow the real payloads in ``tests/fixtures/sandbox_shapes/douyin``:
IDs as ``id_str`` strings, viewer counts as abbreviated strings (``user_count_str``) next
to the exact ``room_view_stats.display_value`` integer. Shelf, product and profile answers
are in ``douyin_shop.py``.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.douyin import data as data
from sandbox.douyin import static as S
from sandbox.douyin.entities import STATUS_LIVE, LiveState, Room, ShelfItem, Streamer
from sandbox.world import hex_digest

_COMPACT = {"ensure_ascii": False, "separators": (",", ":")}


# -- counts as Douyin prints them ------------------------------------------------------------------
def room_user_count_str(n: int) -> str:
    """``room.user_count_str``: rounded down to the leading digit (``1000+``, ``3000+``, ``1w+``)."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n // 1000}000+"
    return f"{n // 10_000}w+"


def wan_plus(n: int, below: int = 10_000) -> str:
    """``stats.*_str``: exact below ``below``, else whole 万 with a ``+`` (``1万+``, ``10万+``)."""
    return str(n) if n < below else f"{n // 10_000}万+"


def wan(n: int, decimals: bool) -> str:
    """``room_view_stats.display_*``: exact below 1万; whole 万 for viewers, one decimal for the anchor."""
    if n < 10_000:
        return str(n)
    if not decimals:
        return f"{n // 10_000}万"
    tenths = n // 1000
    return f"{tenths // 10}万" if tenths % 10 == 0 else f"{tenths / 10:.1f}万"


# -- images ----------------------------------------------------------------------------------------
def avatar_urls(s: Streamer) -> list[str]:
    """``avatar_thumb.url_list``: the same 100x100 image on three CDN hosts."""
    return [
        f"https://{host}.douyinpic.com/aweme/100x100/aweme-avatar/tos-cn-avt-0015_{s.avatar}.jpeg?from=3067671334"
        for host in ("p3", "p6", "p11")
    ]


def cover_urls(room: Room, st: LiveState) -> list[str]:
    """``room.cover.url_list``: a signed cover per session on two hosts."""
    key = hex_digest(32, room.web_rid, st.room_id)
    query = f"from=webcast.room.pack&x-expires={st.start + 2_592_000}&x-signature={hex_digest(27, st.room_id, 9)}%3D"
    return [
        f"https://{host}-webcast-sign.douyinpic.com/image-cut-tos-priv/{key}~tplv-qz53dukwul-common-resize:0:0.image?{query}"
        for host in ("p3", "p11")
    ]


# -- room pieces -------------------------------------------------------------------------------------
def owner(s: Streamer) -> dict[str, Any]:
    """``room.owner`` / page ``roomInfo.anchor``."""
    return {
        "id_str": str(s.uid),
        "sec_uid": s.sec_uid,
        "nickname": s.nickname,
        "avatar_thumb": {"url_list": avatar_urls(s)},
        "follow_info": S.FOLLOW_INFO,
    }


def enter_user(s: Streamer) -> dict[str, Any]:
    """``data.user`` of the enter answer: the owner plus the flags the real one carries."""
    return {**owner(s), "foreign_user": 0, "open_id_str": ""}


def partition_road_map(room: Room) -> dict[str, Any]:
    """``partition_road_map``: the room's category path, parent first."""
    p = room.partition
    return {
        "partition": {"id_str": p.parent_id_str, "type": p.parent_type, "title": p.parent_title},
        "sub_partition": {"partition": {"id_str": p.id_str, "type": p.type, "title": p.title}},
    }


def stream_url(room: Room, st: LiveState) -> dict[str, Any]:
    """``room.stream_url``: flv/hls per quality and the SDK pull data (``stream_data`` is a JSON string)."""
    sid = f"stream-{(room.web_rid * 7919 + st.room_id) % 10**18:018d}"
    expire = format(st.start + 7 * 86_400, "x")

    def url(suffix: str, kind: str) -> str:
        path = f"{sid}{suffix}.flv" if kind == "flv" else f"{sid}{suffix}/index.m3u8"
        sign = hex_digest(32, st.room_id, len(path))
        return f"http://pull-{kind}-l26.douyincdn.com/stage/{path}?expire={expire}&sign={sign}"

    by_key = {q[7]: q[6] for q in S.QUALITIES if q[7]}
    flv = {key: url(by_key[key], "flv") for key in ("FULL_HD1", "HD1", "SD1", "SD2")}
    hls = {key: url(by_key[key], "hls") for key in ("FULL_HD1", "HD1", "SD1", "SD2")}
    pull = {
        "common": {"session_id": f"037-{hex_digest(30, st.room_id).upper()}", "stream": sid[7:]},
        "data": {
            q[1]: {
                "main": {
                    "flv": url(q[6], "flv"),
                    "hls": url(q[6], "hls"),
                    "cmaf": "",
                    "dash": "",
                    "lls": "",
                    "tsl": "",
                    "tile": "",
                    "sdk_params": json.dumps(
                        {"VCodec": "h264", "vbitrate": q[4], "resolution": q[2], "gop": 4, "drType": "sdr"},
                        **_COMPACT,
                    ),
                }
            }
            for q in reversed(S.QUALITIES)
        },
    }
    return {
        "flv_pull_url": flv,
        "default_resolution": "HD1",
        "hls_pull_url_map": hls,
        "hls_pull_url": hls["HD1"],
        "stream_orientation": 1,
        "live_core_sdk_data": {"pull_data": {"options": S.PULL_OPTIONS, "stream_data": json.dumps(pull, **_COMPACT)}},
        "extra": S.STREAM_EXTRA,
        "pull_datas": {},
    }


def room_object(room: Room, s: Streamer, st: LiveState, products: int, lite: bool = False) -> dict[str, Any]:
    """The room object (enter ``data.data[0]``, page ``roomInfo.room``, list ``room``).

    ``lite`` drops what category lists leave out (stream and permission blocks). An ended
    room keeps its last session's id, status 4 and zero counts, without a stream.
    """
    live = st.status == STATUS_LIVE
    out: dict[str, Any] = {
        "id_str": str(st.room_id),
        "status": st.status,
        "status_str": str(st.status),
        "title": room.title,
        "user_count_str": room_user_count_str(st.user_count) if live else "0",
        "cover": {"url_list": cover_urls(room, st)},
    }
    if live and not lite:
        out["stream_url"] = stream_url(room, st)
    out.update(
        {
            "mosaic_status": 0,
            "mosaic_status_str": "0",
            "admin_user_ids": [],
            "admin_user_ids_str": [],
            "owner": owner(s),
        }
    )
    if not lite:
        out["room_auth"] = S.ROOM_AUTH
    out["live_room_mode"] = 0
    out["stats"] = {
        "total_user_desp": "",
        "like_count": 0,  # the web answer never fills it: likes are the top-level like_count
        "total_user_str": wan_plus(st.total_user, 100_000),
        "user_count_str": wan_plus(st.user_count),
    }
    out["has_commerce_goods"] = products > 0
    out["linker_map"] = {}
    if not lite:
        out["linker_detail"] = S.LINKER_DETAIL
    if live:
        n = st.user_count
        out["room_view_stats"] = {
            "is_hidden": False,
            "display_short": wan(n, False),
            "display_middle": wan(n, False),
            "display_long": wan(n, False) + "在线观众",
            "display_value": n,
            "display_version": st.start,
            "incremental": False,
            "display_type": 1,
            "display_short_anchor": wan(n, True),
            "display_middle_anchor": wan(n, True),
            "display_long_anchor": wan(n, True) + "在线观众",
        }
    out["scene_type_info"] = S.scene_type_info(products > 0)
    out["room_cart"] = {
        "contain_cart": products > 0 and live,
        "total": products if live else 0,
        "flash_total": 0,
        "cart_icon": "https://lf3-static.bytednsdoc.com/obj/eden-cn/cart_icon.png" if products and live else "",
        "show_cart": 1 if products and live else 0,
    }
    out["like_count"] = st.like_count
    out["owner_user_id_str"] = ""
    return out


def enter(room: Room, s: Streamer, st: LiveState, products: int, now_ms: int) -> dict[str, Any]:
    """``webcast/room/web/enter/``: ``room_status`` 0 while live, 2 once ended (with ``prompts``)."""
    body: dict[str, Any] = {
        "data": [room_object(room, s, st, products)],
        "enter_room_id": str(st.room_id),
        "user": enter_user(s),
        "qrcode_url": f"https://p3-pc.douyinpic.com/img/aweme-qrcode/{hex_digest(20, st.room_id)}~c5_720x720.webp",
        "enter_mode": 0,
        "room_status": 0 if st.status == STATUS_LIVE else 2,
        "partition_road_map": partition_road_map(room),
    }
    if st.status != STATUS_LIVE:
        body["prompts"] = "直播已结束"
    return {"data": body, "extra": {"now": now_ms}, "status_code": 0}


def enter_unknown(now_ms: int) -> dict[str, Any]:
    """The enter answer for a web_rid no room has (code and wording chosen by the sandbox)."""
    return {
        "data": {"message": "直播间不存在", "prompts": "直播间不存在"},
        "extra": {"now": now_ms},
        "status_code": 30003,
    }


def partition_item(room: Room, s: Streamer, st: LiveState, products: int) -> dict[str, Any]:
    """One ``data.data[]`` entry of ``webcast/web/partition/detail/room/v2/``."""
    return {
        "tag_name": "",
        "uniq_id": str(room.web_rid),
        "web_rid": str(room.web_rid),
        "is_recommend": 0,
        "title_type": 0,
        "cover_type": 0,
        "room": room_object(room, s, st, products, lite=True),
    }


def category_data() -> list[dict[str, Any]]:
    """The home page's ``categoryData``: partitions with their sub-partitions."""
    return [
        {
            "partition": {"id_str": pid, "type": ptype, "title": ptitle},
            "sub_partition": [
                {"partition": {"id_str": sid, "type": stype, "title": stitle}, "sub_partition": []}
                for sid, stype, stitle in subs
            ],
        }
        for pid, ptype, ptitle, _w, _shelves, subs in data.PARTITIONS
    ]


# -- ground truth rows ---------------------------------------------------------------------------
def truth_item(item: ShelfItem) -> dict[str, Any]:
    """A shelf entry as the ground truth lists it (platform field names, IDs as strings)."""
    p = item.product
    return {
        "index": item.index,
        "product_id": str(p.product_id),
        "promotion_id": str(p.promotion_id),
        "title": p.title,
        "min_price": item.min_price,
        "max_price": item.max_price,
        "regular_price": p.regular_price,
        "sale_num": item.sale_num,
        "in_stock": p.in_stock,
        "shop_id": str(p.shop.shop_id),
        "shop_name": p.shop.name,
        "leaf_category": p.leaf_category,
        "fault": p.fault,
    }


def truth_streamer(s: Streamer, st: LiveState) -> dict[str, Any]:
    """A streamer as the ground truth lists it."""
    return {
        "uid": str(s.uid),
        "sec_uid": s.sec_uid,
        "unique_id": s.unique_id,
        "short_id": str(s.short_id),
        "nickname": s.nickname,
        "signature": s.signature,
        "avatar_thumb": avatar_urls(s)[0],
        "follower_count": s.follower_count,
        "following_count": s.following_count,
        "total_favorited": s.total_favorited,
        "aweme_count": s.aweme_count,
        "custom_verify": s.custom_verify,
        "enterprise_verify_reason": s.enterprise_verify_reason,
        "web_rid": str(s.web_rid),
        "live_status": 1 if st.status == STATUS_LIVE else 0,
        "room_id": str(st.room_id),
        "shop": {"shop_id": str(s.shop.shop_id), "sec_shop_id": s.shop.sec_shop_id, "name": s.shop.name}
        if s.shop
        else None,
    }
