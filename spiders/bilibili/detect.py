"""What a Bilibili payload is: a block, a gone entity, an error, or which endpoint's data.

``check_envelope`` reads the envelope every Bilibili API shares
(``{"code", "message"|"msg", "data"}``), in a 200 response or a 412 one alike:

* code -412, -352, -799, -509, -401, or a ``data.v_voucher`` -> ``BlockedError(code=...)``;
* the entity does not exist -> ``GoneError``: code 60004 (any kind), get_info code 1 with
  "不存在"/"未找到" or empty data, card and space acc/info -404, Master/info non-zero with
  empty data;
* nav's -101 (logged out) is no error: its data still carries the WBI keys;
* any other non-zero code -> ``PermanentPageError`` naming the code and message.

``kind_from_url`` is used when the URL is known (the spider always knows it). It
matches the path only, case-insensitively and with repeated slashes collapsed, so
the sandbox on 127.0.0.1 and the real hosts (api.live.bilibili.com,
api.bilibili.com) resolve alike.

``detect`` serves ``livefleet parse FILE``, which gets bare files. It looks for keys
and paths that only one endpoint's ``data`` carries, most specific first, and
returns ``None`` rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from models.errors import BlockedError, GoneError, PermanentPageError

__all__ = ["BLOCK_CODES", "KINDS", "check_envelope", "detect", "kind_from_url"]

PLATFORM = "bilibili"
#: 412 请求被拦截, 352 风控校验失败, 799 请求过于频繁, 509 超出限制, 401 非法访问.
BLOCK_CODES = frozenset({-412, -352, -799, -509, -401})

#: Kind name -> path of the endpoint (``(web|app)`` variants share a kind).
_PATHS: dict[str, str] = {
    "room_info": r"/room/v1/room/get_info",
    "room_init": r"/room/v1/room/room_init",
    "room_info_old": r"/room/v1/room/getroominfoold",
    "master_info": r"/live_user/v1/master/info",
    "user_card": r"/x/web-interface/card",
    "info_by_room": r"/xlive/(?:web|app)-room/v1/index/getinfobyroom",
    # The web's WBI-signed area lists answer data{list[], has_more} of the same room items.
    "area_room_list": r"/room/v1/area/getroomlist|/xlive/web-interface/v1/second/getlist(?:byarea)?",
    "area_list": r"/room/v1/area/getlist",
    "status_by_uids": r"/room/v1/room/get_status_info_by_uids",
    "room_base_info": r"/xlive/web-room/v1/index/getroombaseinfo",
    "rec_list": r"/xlive/web-interface/v1/webmain/getmorereclist",
    "anchor_in_room": r"/live_user/v1/userinfo/get_anchor_in_room",
    "play_info": r"/xlive/web-room/v2/index/getroomplayinfo",
    "gold_rank": r"/xlive/general-interface/v1/rank/getonlinegoldrank",
    "play_url": r"/room/v1/room/playurl",
    "acc_info": r"/x/space(?:/wbi)?/acc/info",
    "relation_stat": r"/x/relation/stat",
    "nav": r"/x/web-interface/nav",
    # Lists of live-room objects the spiders do not crawl (the followed streamers' rooms, logged
    # in): read by the generic walk of pages._room_list, which any such list answer falls back to.
    "room_list": r"/xlive/web-ucenter/user/following|/xlive/web-ucenter/v1/xfetter/getweblist",
}
#: Every kind this package can parse.
KINDS: tuple[str, ...] = tuple(_PATHS)
_PATH_RES = [(kind, re.compile(f"(?:{pattern})/?")) for kind, pattern in _PATHS.items()]


def kind_from_url(url: str | None) -> str | None:
    """The kind of the endpoint ``url`` points at, by its path; ``None`` if unknown."""
    if not url:
        return None
    path = re.sub(r"/{2,}", "/", urlsplit(url).path).lower()
    for kind, pattern in _PATH_RES:
        if pattern.fullmatch(path):
            return kind
    return None


def _has(obj: Any, *keys: str) -> bool:
    return isinstance(obj, dict) and all(key in obj for key in keys)


def _first_item(data: Any) -> Any:
    return data[0] if isinstance(data, list) and data else None


#: Keys that make a JSON object a live-room object (with one of the owner keys beside).
ROOM_KEYS, OWNER_KEYS = ("room_id", "roomid"), ("uid", "mid")
#: How deep in ``data`` the generic walk looks for lists of room objects.
ROOM_LIST_DEPTH = 3


def is_room_object(obj: Any) -> bool:
    """A live-room object: a room id and its owner's uid under any of their spellings."""
    return isinstance(obj, dict) and any(k in obj for k in ROOM_KEYS) and any(k in obj for k in OWNER_KEYS)


def room_lists(data: Any, where: str = "data", depth: int = ROOM_LIST_DEPTH) -> list[tuple[str, list[Any]]]:
    """``(path, list)`` of every list of live-room objects within ``depth`` levels of ``data``."""
    if isinstance(data, list):
        return [(where, data)] if data and all(is_room_object(item) for item in data) else []
    if not isinstance(data, dict) or depth == 0:
        return []
    return [found for key, value in data.items() for found in room_lists(value, f"{where}.{key}", depth - 1)]


def _is_status_map(data: Any) -> bool:
    # get_status_info_by_uids: {"<uid>": {room_id, uid, live_status, ...}, ...}
    if not isinstance(data, dict) or not data:
        return False
    return all(key.isdigit() and _has(value, "room_id", "uid", "live_status") for key, value in data.items())


# (kind, test on ``data``), most specific first: room_init's keys are a subset of play_info's,
# and get_info and room_init both carry room_id + short_id + live_status.
_SHAPES: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    # nav first: logged in, its data is a whole (viewer's) profile, yet wbi_img is always there.
    ("nav", lambda d: _has(d, "wbi_img") and _has(d["wbi_img"], "img_url")),
    ("acc_info", lambda d: _has(d, "mid", "name", "live_room") or _has(d, "mid", "name", "sign", "official")),
    ("relation_stat", lambda d: _has(d, "mid", "following", "follower")),
    ("info_by_room", lambda d: _has(d, "room_info") and _has(d["room_info"], "room_id")),
    ("room_base_info", lambda d: _has(d, "by_room_ids") or _has(d, "by_uids")),
    ("rec_list", lambda d: _has(d, "recommend_room_list")),
    ("gold_rank", lambda d: _has(d, "OnlineRankItem") or _has(d, "onlineNum")),
    ("play_info", lambda d: _has(d, "room_id", "playurl_info")),
    ("play_url", lambda d: _has(d, "durl") or _has(d, "quality_description", "accept_quality")),
    ("user_card", lambda d: _has(d, "card") and _has(d["card"], "mid")),
    ("master_info", lambda d: _has(d, "info", "follower_num") or _has(d, "info", "exp")),
    ("anchor_in_room", lambda d: _has(d, "info", "level") and _has(d["info"], "uid")),
    ("room_info_old", lambda d: _has(d, "roomStatus") or _has(d, "roundStatus")),
    ("room_init", lambda d: _has(d, "room_id", "live_status") and _has(d, "is_hidden", "is_locked")),
    ("room_info", lambda d: _has(d, "room_id", "live_status") and ("attention" in d or "user_cover" in d)),
    ("status_by_uids", _is_status_map),
    ("area_room_list", lambda d: _has(_first_item(d), "roomid", "uid")
     or (_has(d, "list", "has_more") and _has(_first_item(d["list"]), "roomid", "uid"))),
    ("area_list", lambda d: _has(_first_item(d), "id", "name", "list")),
    # Last: any other answer that carries lists of live-room objects.
    ("room_list", lambda d: bool(room_lists(d))),
)


def detect(payload: Any) -> str | None:
    """Recognise the kind of a Bilibili payload from its shape alone; ``None`` if unsure.

    Only successful envelopes (``{"code": 0, "data": ...}``) carry a shape: error
    envelopes are classified by their code before detection is needed.
    """
    if not isinstance(payload, dict) or "data" not in payload:
        return None
    data = payload["data"]
    for kind, matches in _SHAPES:
        if matches(data):
            return kind
    return None


# Per kind: (code, message, data) -> the platform says this entity does not exist.
_GONE: dict[str, Callable[[int, str, Any], bool]] = {
    "room_info": lambda code, msg, data: code == 1 and ("不存在" in msg or "未找到" in msg or not data),
    "user_card": lambda code, msg, data: code == -404,
    "master_info": lambda code, msg, data: not data,
    "acc_info": lambda code, msg, data: code == -404,
}
#: Per kind: a non-zero code that still carries the data (nav answers -101 账号未登录 to anyone
#: logged out, with the WBI keys in it).
_DATA_DESPITE: dict[str, frozenset[int]] = {"nav": frozenset({-101})}


def check_envelope(payload: Any, kind: str | None, url: str | None) -> Any:
    """Raise for a block, a gone entity or an error code (see above); else return ``data``.

    A payload without ``code`` is taken as data: the parser's shape checks then decide.
    """
    if not isinstance(payload, dict):
        raise PermanentPageError(
            f"expected a JSON object, got {type(payload).__name__}", platform=PLATFORM, url=url
        )
    raw_code = payload.get("code", 0)
    try:
        code = int(raw_code)
    except (TypeError, ValueError):
        raise PermanentPageError(
            f"envelope code is not a number: {raw_code!r}", platform=PLATFORM, url=url
        ) from None
    message = str(payload.get("message") or payload.get("msg") or "")
    data = payload.get("data")
    if code in BLOCK_CODES:
        raise BlockedError(f"Bilibili code {code}: {message}", platform=PLATFORM, url=url, code=code)
    if isinstance(data, dict) and "v_voucher" in data:
        reason = f"Bilibili code {code}: risk-control voucher (data.v_voucher) instead of data"
        raise BlockedError(reason, platform=PLATFORM, url=url, code=code)
    if code == 0 or code in _DATA_DESPITE.get(kind or "", ()):
        return data
    gone = _GONE.get(kind or "")
    if code == 60004 or (gone is not None and gone(code, message, data)):
        raise GoneError(f"Bilibili code {code}: {message}", platform=PLATFORM, url=url)
    raise PermanentPageError(f"Bilibili code {code}: {message}", platform=PLATFORM, url=url)
