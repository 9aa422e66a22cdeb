"""Taobao Live answers of the sandbox, shaped like the real ones (``tests/fixtures/sandbox_shapes/taobao``).

* the CDN live detail (``alive-interact.alicdn.com/livedetail/common/{liveId}``): keys in the
  capture's (alphabetical) order, numbers as JSON numbers;
* the gateway's ``mtop.mediaplatform.live.livedetail``: the same keys plus the counts the
  CDN lacks (``praiseCount``, ``joinCount``, ``startTime``, ``curItemNum``,
  ``broadCaster.fansNum``), every number as a string, as the mtop clients read them;
* ``itemlist.withpagination``: ``{itemListv1: [{liveItemDO}], totalNum}``, each item with the
  中控台 goods-list keys plus ``extendVal.buyCount/categoryLevelLeaf/categoryLevelOneName``;
* ``pulltopicstat``: ``{digNum, msgNum, onlineNum, totalNum, visitNum}``, strings.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.taobao.world import Anchor, LiveState, ShelfEntry
from sandbox.world import hex_digest

_STREAM = "liveng.alicdn.com/mediaplatform"


def _auth(seed: int, live_id: int, salt: int, expires: int) -> str:
    return f"auth_key={expires}-0-0-{hex_digest(32, seed, live_id, salt)}"


def _streams(seed: int, a: Anchor, st: LiveState) -> dict[str, Any]:
    """Stream and replay URLs (signed like the real ones; the sandbox serves no video)."""
    expires = (st.start_ms or 0) // 1000 + 3 * 86400
    flv = f"http://{_STREAM}/{a.topic}.flv?{_auth(seed, a.live_id, 1, expires)}&source=null_null_TBLive_detailCDN"
    hls = f"http://{_STREAM}/{a.topic}.m3u8?{_auth(seed, a.live_id, 2, expires)}&source=null_null_TBLive_detailCDN"
    stats = {"network": {"vatsb": {"avg": "3217067", "min": "2360905", "max": "4186060"}}}
    config = {"streamLevelPriorityList": ["0", "1", "2", "3"], "channelType": "live", "channelSubType": "hd_live",
              "fpsNum": "25", "landScape": False, "width": "1080", "height": "1920",
              "channelId": hex_digest(32, seed, a.live_id, 3)}  # fmt: skip
    return {
        "artpUrl": f"artp://liveng-artp.alicdn.com/mediaplatform/{a.topic}?{_auth(seed, a.live_id, 4, expires)}",
        "bfrtcUrl": f"artc://liveng-bfrtc.alibabausercontent.com/mediaplatform/{a.topic}?"
        f"{_auth(seed, a.live_id, 5, expires)}",
        "liveConfigForStream": json.dumps(config, separators=(",", ":")),
        "liveUrl": flv + "&fromPlayControl=true",
        "liveUrlHls": hls,
        "liveUrlList": [
            {"codeLevel": 1, "definition": "ld", "flvUrl": flv + "&fromPlayControl=true", "hlsUrl": hls,
             "name": "流畅", "recomm": False},
            {"codeLevel": 2, "definition": "md", "flvUrl": flv + "&fromPlayControl=true", "hlsUrl": hls,
             "name": "高清", "recomm": False},
            {"definition": "", "flvUrl": flv + "&fromPlayControl=true", "hlsUrl": hls, "liveStreamStatsInfo": stats,
             "newDefinition": "ud", "newName": "蓝光", "recomm": True},
        ],
        "replayUrl": f"http://livenging.alicdn.com/mediaplatform/{a.topic}_merge.m3u8",
    }  # fmt: skip


def livedetail_cdn(seed: int, a: Anchor, st: LiveState) -> dict[str, Any]:
    """``alive-interact.alicdn.com/livedetail/common/{liveId}``: the CDN's live detail."""
    s = _streams(seed, a, st)
    return {
        "accountId": a.account_id,
        "artpUrl": s["artpUrl"],
        "bfrtcUrl": s["bfrtcUrl"],
        "bizCode": "TAOBAO",
        "broadCaster": {"accountId": a.account_id, "accountName": a.account_name, "headImg": a.head_img},
        "coverImg": a.cover_img,
        "defaultImageUrl": "https://gw.alicdn.com/tfs/TB10l6bbz39YK4jSZPcXXXrUFXa-324-96.png",
        "descInfo": a.desc,
        "displayDuration": 10,
        "landScape": False,
        "liveConfigForStream": s["liveConfigForStream"],
        "liveId": a.live_id,
        "liveUrl": s["liveUrl"],
        "liveUrlHls": s["liveUrlHls"],
        "liveUrlList": s["liveUrlList"],
        "pushFeature": "Win_7.12.1_rtp_1080p_ElectronWin",
        "replayUrl": s["replayUrl"],
        "roomStatus": st.room_status,
        "streamStatus": st.stream_status,
        "title": a.title,
        "topic": a.topic,
        "viewCount": st.view_count,
    }


def _strings(obj: Any) -> Any:
    """Numbers as strings, recursively (the gateway's clients parse every count from text)."""
    if isinstance(obj, dict):
        return {key: _strings(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_strings(value) for value in obj]
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return str(obj)
    return obj


def livedetail_mtop(seed: int, a: Anchor, st: LiveState) -> dict[str, Any]:
    """``mtop.mediaplatform.live.livedetail`` 4.0 data: the CDN keys plus the live counts, sorted."""
    data = livedetail_cdn(seed, a, st)
    data["broadCaster"] = {
        "accountId": a.account_id, "accountName": a.account_name, "fansNum": a.fans_num, "headImg": a.head_img,
    }  # fmt: skip
    data.update(
        curItemNum=st.shelf_size,
        joinCount=st.join_count,
        praiseCount=st.praise_count,
        startTime=st.start_ms or 0,
    )
    return _strings(dict(sorted(data.items())))


def live_item_do(a: Anchor, entry: ShelfEntry, *, with_id: bool = True) -> dict[str, Any]:
    """One shelf item as ``liveItemDO`` (the 中控台 goods-list item keys, strings)."""
    item = entry.item
    extend = {
        "isCpc": "0",
        "subTitle": item.sub_title,
        "customizedItemRights": "",
        "defaultRight": item.sub_title,
        "liveId": str(a.live_id),
        "materialName": f"liveItem_{item.item_id % 10**9}",
        "buyCount": str(entry.sales),
        "categoryLevelLeaf": str(item.category_id),
        "categoryLevelOneName": item.category_name,
        "timepoint": str(entry.goods_index * 60_000),
    }
    scm = "1007.13381.38597.101200300000000"
    do: dict[str, Any] = {
        "bulk": "false",
        "createTime": str((a.account_id % 10**6) * 1000 + 1_551_000_000_000 + entry.goods_index * 60_000),
        "duplicate": "false",
        "extendVal": extend,
        "favored": "false",
        "goodsIndex": str(entry.goods_index),
        "groupNum": "0",
        "hasDiscount": "true" if entry.price_fen < item.price_fen else "false",
        "isCpc": "0",
        "itemH5TaokeUrl": f"//h5.m.taobao.com/awp/core/detail.htm?id={item.item_id}&scm={scm}",
        "itemId": str(item.item_id),
        "itemName": item.title,
        "itemPic": item.images[0],
        "itemPrice": f"{entry.price_fen / 100:.2f}",
        "itemUrl": f"//taoke.mdaren.taobao.com/item.htm?itemId={item.item_id}&accountId={a.account_id}"
        f"&bizType=taolive&scm={scm}&spm=a2141.8001249",
        "liveId": str(a.live_id),
        "sellerId": str(item.shop.seller_id),
    }
    if not with_id:
        del do["itemId"]
    return do


def itemlist(a: Anchor, page: list[ShelfEntry], total: int, *, broken_index: int | None = None) -> dict[str, Any]:
    """``itemlist.withpagination`` data; ``broken_index``: that entry loses its itemId (a fault)."""
    return {
        "itemListv1": [
            {"liveItemDO": live_item_do(a, entry, with_id=i != broken_index)} for i, entry in enumerate(page)
        ],
        "totalNum": str(total),
    }


def pulltopicstat(st: LiveState) -> dict[str, Any]:
    """``mtop.mediaplatform.live.pulltopicstat`` data: pv, uv, online, likes, comments (strings)."""
    return {
        "digNum": str(st.praise_count),
        "msgNum": str(st.msg_num),
        "onlineNum": str(st.join_count),
        "totalNum": str(st.view_count),
        "visitNum": str(st.visit_num),
    }
