"""Kuaishou answers as the real site shapes them (sources: docs/kuaishou_formats.md).

* the room page ``/u/{principalId}``: ``window.__INITIAL_STATE__={"liveroom":{"activeIndex":0,
  "playList":[item],"loading":false,...},...};(function(){var s;...`` with a bare ``undefined``
  (``authToken``), as LiveParse/OrdinaryRoad/ihmily parse it;
* the playList item / livedetail ``data``: ``liveStream{id, caption, poster, coverUrl, playUrls{h264
  {adaptationSet{representation[]}}}, hlsPlayUrl, type}``, ``author{id, name, description, avatar,
  sex, living, originUserId, verifiedStatus, counts{fan, follow, photo}, ...}``, ``gameInfo{id,
  name, poster, categoryAbbr, categoryName, watchingCount}``, ``config{caption, watchingCount,
  likeCount, startTime, ...}`` (amagi LiveRoomDetail_V0.ts, LiveParse, biliup);
* list items ``{id, caption, poster, living, watchingCount, author{id, name, avatar}}`` (LiveParse);
* categories ``{id, name, poster, iconUrl, description, categoryAbbr, categoryName, roomCount}``;
* 小店 open-platform items (``open.item.list.get`` / ``open.item.get`` field names).
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.kuaishou.world import CATEGORIES, Item, KsRoom, KsUser, LiveNow, display_count
from sandbox.world import hex_digest

_STATE_TAIL = (
    ";(function(){var s;(s=document.currentScript||document.scripts[document.scripts.length-1])"
    ".parentNode.removeChild(s);}());"
)
#: errorType objects of the room page (type/title/content/url as two public clients' tests show).
TOO_FAST = {"type": 2, "title": "请求过快，请稍后重试", "content": "浏览其他内容", "url": "/"}
VERIFY = {"type": 400002, "title": "需要进行验证", "content": "浏览其他内容", "url": "/"}
NO_ROOM = {"type": 22, "title": "错误代码22", "content": "直播间地址错误", "url": "/"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def page_html(item: dict[str, Any], title: str) -> bytes:
    """The room page around one playList item; ``authToken`` is a bare ``undefined`` as on the site."""
    state = {
        "liveroom": {
            "activeIndex": 0,
            "playList": [item],
            "loading": False,
            "authToken": "__UNDEFINED__",
            "websocketUrls": [],
            "token": "",
            "noticeList": [],
        },
        "user": {"name": ""},
    }
    literal = _dumps(state).replace('"__UNDEFINED__"', "undefined")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f'<title>{title}</title></head><body><div id="app"></div>'
        f"<script>window.__INITIAL_STATE__={literal}{_STATE_TAIL}</script></body></html>"
    ).encode()


def home_html() -> bytes:
    """The home page: what a first visit gets (its cookies matter, not its body)."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>快手直播</title></head>'
        '<body><div id="app"></div></body></html>'
    ).encode()


def author(user: KsUser, living: bool) -> dict[str, Any]:
    """The web author/userInfo object."""
    return {
        "id": user.principal_id,
        "name": user.name,
        "description": user.description,
        "avatar": user.avatar,
        "sex": user.sex,
        "living": living,
        "followStatus": "UN_FOLLOWED",
        "constellation": "",
        "cityName": user.city,
        "originUserId": user.user_id,
        "privacy": False,
        "isNew": False,
        "timestamp": 0,
        "verifiedStatus": {
            "verified": user.verified,
            "description": user.verify_text if user.verified else "",
            "type": 1 if user.verified else 0,
            "new": False,
            "iconUrl": "",
        },
        "bannedStatus": {"banned": False, "socialBanned": False, "isolate": False, "defriend": False},
        "counts": {"fan": display_count(user.fan), "follow": display_count(user.follow), "photo": user.photo},
    }


def _cover(room: KsRoom, st: LiveNow) -> str:
    return f"https://p2.a.yximgs.com/live/cover/{hex_digest(24, room.user.user_id, st.start_ms)}.jpg"


def _poster(st: LiveNow) -> str:
    return f"https://live2.static.yximgs.com/live/game/screenshot/{st.live_stream_id}~{st.start_ms}~1"


def _play_urls(st: LiveNow) -> dict[str, Any]:
    base = f"https://tx-origin.pull.yximgs.com/gifshow/{st.live_stream_id}"
    reps = [
        {"url": f"{base}_GameAvcSdL0.flv", "qualityType": "STANDARD", "name": "高清", "level": 30, "bitrate": 1000},
        {"url": f"{base}_GameAvcHdL3.flv", "qualityType": "HIGH", "name": "超清", "level": 40, "bitrate": 2000},
    ]
    return {"h264": {"adaptationSet": {"representation": reps}}}


def play_item(room: KsRoom, st: LiveNow) -> dict[str, Any]:
    """A playList item (also livedetail's ``data``, less ``isLiving``)."""
    cat = room.category
    if not st.living:
        return {
            "liveStream": {"id": "", "playUrls": {}},
            "author": author(room.user, False),
            "gameInfo": {},
            "isLiving": False,
        }
    watching = display_count(st.watching)
    return {
        "liveStream": {
            "id": st.live_stream_id,
            "caption": room.caption,
            "poster": _poster(st),
            "coverUrl": _cover(room, st),
            "playUrls": _play_urls(st),
            "hlsPlayUrl": f"https://tx-origin.hlspull.yximgs.com/gifshow/{st.live_stream_id}.m3u8",
            "type": "live",
        },
        "author": author(room.user, True),
        "gameInfo": {
            "id": cat[0],
            "name": cat[1],
            "poster": "",
            "description": "",
            "categoryAbbr": cat[2],
            "categoryName": cat[1],
            "watchingCount": watching,
            "roomCount": "",
        },
        "isLiving": True,
        "config": {
            "liveStreamId": st.live_stream_id,
            "caption": room.caption,
            "coverUrl": _cover(room, st),
            "watchingCount": watching,
            "likeCount": display_count(st.likes),
            "startTime": st.start_ms,
            "landscape": False,
            "privateLive": False,
        },
    }


def livedetail(room: KsRoom, st: LiveNow, seed: int) -> dict[str, Any]:
    """``/live_api/liveroom/livedetail``: ``{"data": {"result": 1, ...}}`` or 671 when not live."""
    if not st.living:
        return {"data": {"result": 671}}
    item = play_item(room, st)
    del item["isLiving"]
    token = hex_digest(32, seed, room.user.user_id, st.start_ms)
    data = {
        "result": 1,
        **item,
        "noticeList": [],
        "websocketInfo": {"token": token, "webSocketAddresses": ["wss://live-ws-pg-group3.kuaishou.com/websocket"]},
    }
    return {"data": data}


def list_item(room: KsRoom, st: LiveNow) -> dict[str, Any]:
    """An item of gameboard / non-gameboard lists."""
    u = room.user
    return {
        "id": st.live_stream_id,
        "caption": room.caption,
        "poster": _poster(st),
        "living": st.living,
        "watchingCount": display_count(st.watching),
        "author": {"id": u.principal_id, "name": u.name, "avatar": u.avatar},
    }


def category(cat: tuple[str, str, str, int], rooms: int) -> dict[str, Any]:
    """An entry of ``/live_api/category/data``."""
    icon = f"https://p2.a.yximgs.com/kos/category/{cat[2].lower()}.png"
    return {
        "id": cat[0],
        "name": cat[1],
        "poster": icon,
        "iconUrl": icon,
        "description": "",
        "categoryAbbr": cat[2],
        "categoryName": cat[1],
        "roomCount": display_count(rooms),
    }


def categories_of(top: int) -> list[tuple[str, str, str, int]]:
    """The categories of a top type (1 热门: all of them)."""
    return [c for c in CATEGORIES if top == 1 or c[3] == top]


def _image(room: KsRoom, item: Item) -> str:
    return (
        f"https://u1-203.ecukwai.com/bs2/image-kwaishop-product/item-{room.user.user_id}-"
        f"{hex_digest(32, item.kwai_item_id)}.jpg"
    )


def open_item(
    room: KsRoom, item: Item, price: int, volume: int, *, detail: bool = False, on_sale: bool = True
) -> dict[str, Any]:
    """An item of ``open.item.list.get`` (``detail``: the ``data`` of ``open.item.get``);
    ``shelfStatus`` is 0 for an item taken off sale (only ``open.item.get`` answers for one)."""
    image = _image(room, item)
    sku = {
        "kwaiItemId": item.kwai_item_id,
        "kwaiSkuId": item.kwai_item_id * 10 + 1,
        "relSkuId": 0,
        "skuSalePrice": price,
        "skuStock": 500,
        "volume": volume,
        "specification": "默认",
        "isValid": 1,
    }
    out = {
        ("itemId" if detail else "kwaiItemId"): item.kwai_item_id,
        "relItemId": 0,
        "title": item.title,
        "categoryName": item.category_name,
        "price": price,
        "volume": volume,
        "itemStatus": 1,
        "shelfStatus": 1 if on_sale else 0,
        "status": 1,
        "mainImageUrl": image,
        "imageUrls": [image],
        "linkUrl": "",
        "createTime": 1_700_000_000_000 + item.kwai_item_id % 10**9,
        ("skuInfos" if detail else "skuList"): [sku],
    }
    if not detail:
        out["userId"] = room.user.user_id
    return out


def open_envelope(data: Any, request_id: str) -> dict[str, Any]:
    """The open platform's success envelope (``result`` 1)."""
    return {"result": 1, "msg": "成功", "code": "", "data": data, "requestId": request_id}


def open_error(message: str, request_id: str) -> dict[str, Any]:
    """The open platform's error envelope. Field names are the documented ones; the code value
    is not from a source (none was found), only "not 1"."""
    return {"result": 0, "msg": message, "error_msg": message, "code": "", "requestId": request_id}
