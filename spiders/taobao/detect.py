"""What a Taobao payload is: which endpoint's answer, from its URL or its own shape.

``kind_from_url`` is host-agnostic (the sandbox serves ``/<real host>/<real path>``):

* the mtop H5 gateway ``/h5/{api}/{v}/`` (and the app gateway ``/gw/{api}/{v}/``):
  the kind is the one of ``{api}`` (``API_KINDS``);
* the live-detail CDN ``/livedetail/common/{liveId}`` -> ``live_detail``;
* Tmall's mobile item page ``/item.htm`` -> ``tmall_page``; its dynamic-data API
  ``/mobile/queryH5Detail.htm`` (mdskip) -> ``tmall_mdskip``.

``detect`` serves ``livefleet parse FILE`` on bare files: a saved mtop answer names
its own ``api``; otherwise keys only one kind's data carries decide, most specific
first, and ``None`` is returned rather than a guess.

``request_data`` reads the JSON ``data`` parameter of a gateway URL: the parsers take
the room ID from it when the answer itself does not carry it (pulltopicstat).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["API_KINDS", "KINDS", "api_kind", "detect", "kind_from_url", "request_data"]

#: mtop API name -> kind. Several names share a kind: the H5 and app variants of one API.
API_KINDS: dict[str, str] = {
    "mtop.mediaplatform.live.livedetail": "live_detail",
    "mtop.mediaplatform.live.pulltopicstat": "live_stats",
    "mtop.taobao.powermsg.msg.pulltopicstat": "live_stats",
    "mtop.taobao.powermsg.h5.msg.pulltopicstat": "live_stats",
    "mtop.taobao.powermsg.interact.msg.pulltopicstat": "live_stats",
    "mtop.mediaplatform.video.livedetail.itemlist": "item_list",
    "mtop.mediaplatform.video.livedetail.itemlist.withpagination": "item_list",
    "mtop.mediaplatform.video.livedetail.itemlist.withpaginationv5": "item_list",
    "mtop.tblive.live.item.getvideodetailitemlistwithpagination": "item_list",
    "mtop.taobao.detail.getdetail": "item_detail",
    # The wdetail captures name their API by its short name.
    "wdetail": "item_detail",
    "mtop.taobao.idlemtopsearch.pc.search": "xianyu_search",
}

#: Every kind this package can parse.
KINDS: tuple[str, ...] = (
    "live_detail",
    "live_stats",
    "item_list",
    "item_detail",
    "tmall_detail",
    "tmall_mdskip",
    "tmall_page",
    "xianyu_search",
)

_GATEWAY_RE = re.compile(r"/(?:h5|gw)/(?P<api>[A-Za-z0-9_.]+)/(?P<v>[0-9.]+)/?$")
_PATHS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("live_detail", re.compile(r"/livedetail/common/\d+/?$")),
    ("tmall_mdskip", re.compile(r"/mobile/queryh5detail\.htm$")),
    ("tmall_page", re.compile(r"/item\.htm$")),
)


def api_kind(api: Any) -> str | None:
    """The kind of an mtop API name (case-insensitive); ``None`` if unknown."""
    return API_KINDS.get(api.strip().lower()) if isinstance(api, str) else None


def kind_from_url(url: str | None) -> str | None:
    """The kind of the endpoint ``url`` points at, by its path (host-agnostic); ``None`` if unknown."""
    if not url:
        return None
    parts = urlsplit(url)
    path = re.sub(r"/{2,}", "/", parts.path)
    if match := _GATEWAY_RE.search(path):
        return api_kind(match["api"])
    lowered = path.lower()
    for kind, pattern in _PATHS:
        if pattern.search(lowered):
            return kind
    return None


def request_data(url: str | None) -> dict[str, Any]:
    """The JSON object in a gateway URL's ``data`` parameter; ``{}`` when absent or not an object."""
    if not url:
        return {}
    values = parse_qs(urlsplit(url).query).get("data")
    if not values:
        return {}
    try:
        data = json.loads(values[0])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _has(obj: Any, *keys: str) -> bool:
    return isinstance(obj, dict) and all(key in obj for key in keys)


def _goods_slices(data: Any) -> bool:
    # The 中控台 goods list: [{goodsIndex, goodsList: [{itemId, ...}], ...}, ...]
    return isinstance(data, list) and bool(data) and all(_has(entry, "goodsList") for entry in data)


# (kind, test on the data object), most specific first: wdetail and the Tmall page's
# _DATA_Detail both have item + seller, only wdetail fills apiStack.
_SHAPES: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("live_detail", lambda d: _has(d, "broadCaster") and ("liveId" in d or "roomStatus" in d)),
    ("live_stats", lambda d: _has(d, "onlineNum") and ("totalNum" in d or "visitNum" in d)),
    ("item_list", lambda d: _has(d, "itemListv1") or _has(d, "goodsList") or _goods_slices(d)),
    ("item_detail", lambda d: _has(d, "item", "apiStack") and bool(d["apiStack"])),
    ("tmall_detail", lambda d: _has(d, "item", "seller") and not d.get("apiStack")),
    ("tmall_mdskip", lambda d: _has(d, "item", "price", "skuCore") and "seller" not in d),
    ("xianyu_search", lambda d: _has(d, "resultList", "resultInfo")),
)


def detect(payload: Any) -> str | None:
    """Recognise the kind of a decoded Taobao payload from its shape alone; ``None`` if unsure.

    An mtop answer (``{"api", "data", "ret", "v"}``) is recognised by its ``api``
    first, then by the shape of its ``data``; a bare object (the CDN live detail,
    the Tmall page's data objects, the 中控台 goods list) by its own shape.
    """
    if isinstance(payload, dict) and "ret" in payload:
        kind = api_kind(payload.get("api"))
        if kind is not None:
            return kind
        payload = payload.get("data")
    for kind, matches in _SHAPES:
        if matches(payload):
            return kind
    return None
