"""What a Douyin payload is: a block, a gone entity, an error, or which endpoint's data.

``kind_from_url`` matches the URL path only, case-insensitively, with repeated
slashes collapsed and a leading ``/<host>`` segment dropped, so the real hosts
(live.douyin.com, www.douyin.com, buyin.jinritemai.com, ...) and the sandbox's
``http://127.0.0.1:PORT/<real host>/<real path>`` resolve alike. Kinds that only
third-party relays documented (no real path is known) have no URL pattern: they
are recognised by shape.

``detect`` serves ``livefleet parse FILE``, which gets bare files: HTML (or a
fragment of it) holding the room page's ``__pace_f`` chunks or ``RENDER_DATA`` is
a ``room_page``; JSON is recognised by keys and paths that only one endpoint
carries, most specific first; ``None`` rather than a guess. ``explain`` says
which kind and which marker matched (``livefleet parse --explain``); decoded
websocket push messages (``push.py``, not a ``pages`` kind: they also give
product events) are recognised there too, by a ``Webcast*Message`` method.

``check_envelope`` reads the envelopes Douyin's APIs use:

* a relay's wrapper ``{"code": 200, "data": <raw Douyin response>, "msg": ...}``
  (the dydata fixtures) is unwrapped first: the Douyin response inside is parsed;
* ``status_code`` (web and app webcast/aweme APIs) or ``code`` next to ``st``
  (百应 buyin APIs): 0 is data. Otherwise the message decides: "不存在"/"已注销"
  -> ``GoneError``; a risk-control word (验证, 频繁, 风控, captcha, blocked, ...)
  -> ``BlockedError(code=...)``; anything else -> ``RetryablePageError`` (Douyin's
  non-zero codes are mostly transient: busy, login expired, rate limited).

An empty body or the literal body ``blocked`` is Douyin's risk-control answer
(PLATFORMS.md §1.4): ``BlockedError``, checked in ``pages.parse`` before any decoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from models.errors import BlockedError, GoneError, PermanentPageError, RetryablePageError
from spiders.douyin.state import find_state, looks_like_page

__all__ = ["GONE_RE", "KINDS", "MARKERS", "PUSH_KIND", "check_envelope", "detect", "explain", "kind_from_url", "unwrap"]

PLATFORM = "douyin"

#: Kind name -> path pattern of its endpoints (None: no real path is known, shape only).
_PATHS: dict[str, str | None] = {
    "room_page": r"/[^/]+",  # live.douyin.com/{web_rid}: one segment (other kinds have more)
    "room_state": None,
    "room_enter": r"/webcast/room/web/enter",
    "room_object": None,
    "room_info": r"/webcast/room/reflow/info",
    "shelf": r"/live/promotions/page|/api/anchor/livepc/promotions_v2",
    "current_product": r"/live/promotions/pop/v3",
    "product_detail": r"/ecom/product/detail/saas/pc",
    "user_profile": r"/aweme/v1/web/user/profile/other|/web/api/v2/user/info",
    "partition_rooms": r"/webcast/web/partition/detail/room/v2",
    "feed_square": None,
    "anchor_rank": None,
    "audience_rank": r"/webcast/ranklist/audience",
    "showcase": None,
    "commerce_feed": None,
    "ws_shopping": None,
}
#: Every kind this package can parse.
KINDS: tuple[str, ...] = tuple(_PATHS)
_PATH_RES = [(kind, re.compile(f"(?:{pattern})/?")) for kind, pattern in _PATHS.items() if pattern]
# "live.douyin.com", "buyin.jinritemai.com": a first segment that names a host, followed by a path
# (a lone "/zhu.zi.xiao" is a room page named by a 抖音号, not a host).
_HOST_SEGMENT_RE = re.compile(r"^/[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?(?=/.)")

#: Texts by which Douyin says a room or user does not exist.
GONE_RE = re.compile(r"不存在|已注销|已被封禁|账号已封|not exist|no such", re.I)
_BLOCK_RE = re.compile(r"验证|频繁|风控|拦截|稍后再试|captcha|verify|blocked|too many|risk", re.I)


def kind_from_url(url: str | None) -> str | None:
    """The kind of the endpoint ``url`` points at, by its path; ``None`` if unknown."""
    if not url:
        return None
    path = re.sub(r"/{2,}", "/", urlsplit(url).path).lower()
    path = _HOST_SEGMENT_RE.sub("", path) or "/"
    for kind, pattern in _PATH_RES:
        if pattern.fullmatch(path):
            return kind
    return None


def unwrap(payload: Any) -> Any:
    """The raw Douyin response inside a relay's ``{"code": 200, "data": ..., "msg": ...}``."""
    if (
        isinstance(payload, dict)
        and payload.get("code") == 200
        and "data" in payload
        and "status_code" not in payload
        and "st" not in payload
    ):
        return payload["data"]
    return payload


def check_envelope(payload: Any, url: str | None) -> None:
    """Raise for an error envelope (module docstring); return quietly for data."""
    if not isinstance(payload, dict):
        return
    if "status_code" in payload:
        code, message = payload["status_code"], payload.get("status_msg") or payload.get("message")
    elif "st" in payload and "code" in payload:  # 百应 (buyin) APIs
        code, message = payload["code"], payload.get("msg")
    else:
        return
    if code is None:  # null: no verdict, the payload's shape decides
        return
    data = payload.get("data")
    prompts = payload.get("prompts") or (data.get("prompts") if isinstance(data, dict) else None)
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise PermanentPageError(
            f"envelope code is not a number: {code!r}", platform=PLATFORM, url=url
        ) from None
    if number == 0:
        return
    text = " ".join(str(part) for part in (message, prompts) if part)
    reason = f"Douyin status_code {number}" + (f": {text}" if text else "")
    if GONE_RE.search(text):
        raise GoneError(reason, platform=PLATFORM, url=url)
    if _BLOCK_RE.search(text):
        raise BlockedError(reason, platform=PLATFORM, url=url, code=number)
    raise RetryablePageError(reason, platform=PLATFORM, url=url)


def _has(obj: Any, *keys: str) -> bool:
    return isinstance(obj, dict) and all(key in obj for key in keys)


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list) and items else None


def _is_room(obj: Any) -> bool:
    # A webcast room object: its ID plus what only a room has (a user object has neither).
    return _has(obj, "id_str") and ("owner" in obj or "stream_url" in obj or "room_view_stats" in obj)


def _is_user(obj: Any) -> bool:
    return isinstance(obj, dict) and ("sec_uid" in obj or "uid" in obj) and not _is_room(obj)


def _promotions(obj: Any) -> Any:
    return obj.get("promotions") if isinstance(obj, dict) else None


def _is_ws_message(obj: Any) -> bool:
    method = obj.get("method") or (obj.get("common") or {}).get("method") if isinstance(obj, dict) else None
    return method == "WebcastLiveShoppingMessage" or _has(obj, "updated_product_ids")


# (kind, test on the unwrapped payload), most specific first.
_SHAPES: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("ws_shopping", lambda p: _is_ws_message(p) or _is_ws_message(_first(p))),
    ("commerce_feed", lambda p: _has(p, "item_cards")),
    ("product_detail", lambda p: _has(_first(_promotions(p)), "base_info")),
    (
        "current_product",
        lambda p: _promotions(p) is not None
        and any(key in p for key in ("commodity_icon", "carousel_time", "show_cart", "commentary_video_auth")),
    ),
    ("showcase", lambda p: _promotions(p) is not None and ("columns" in p or "rows" in p)),
    (
        "shelf",
        lambda p: _promotions(p) is not None
        or (_has(p, "data") and _promotions(p["data"]) is not None),
    ),
    ("user_profile", lambda p: _is_user(dig_user(p))),
    ("partition_rooms", lambda p: _has(_first(_data_list(p)), "web_rid", "room")),
    ("room_enter", lambda p: _has(p, "data") and _has(p["data"], "data") and
        any(key in p["data"] for key in ("room_status", "user", "prompts", "enter_room_id"))),  # fmt: skip
    ("feed_square", lambda p: _is_room(dict_get(_first(dict_get(p, "data")), "data"))),
    ("anchor_rank", lambda p: _has(dict_get(p, "data"), "ranks", "anchor_info")),
    ("audience_rank", lambda p: _has(dict_get(p, "data"), "ranks")),
    ("room_info", lambda p: _is_room(dict_get(p, "data")) or _is_room(dict_get(dict_get(p, "data"), "room"))),
    ("room_object", _is_room),
    ("room_state", lambda p: find_state(p) is not None),
)


def dict_get(obj: Any, key: str) -> Any:
    """``obj[key]`` when ``obj`` is a dict holding it, else ``None``."""
    return obj.get(key) if isinstance(obj, dict) else None


def dig_user(payload: Any) -> Any:
    """The user object of a profile payload: aweme ``user``, iesdouyin ``user_info``, webcast ``data``."""
    for key in ("user", "user_info"):
        if isinstance(dict_get(payload, key), dict):
            return payload[key]
    data = dict_get(payload, "data")
    keys = ("display_id", "follow_info", "sec_uid", "id_str")
    if isinstance(data, dict) and any(key in data for key in keys) and not _is_room(data):
        return data
    return None


def _data_list(payload: Any) -> Any:
    return dict_get(dict_get(payload, "data"), "data")


#: The kind of a file of decoded websocket push messages (``push.py``).
PUSH_KIND = "push"

#: What a binary push file is recognised by (``wire.py``).
PUSH_BINARY_MARKER = ("protobuf webcast push: a PushFrame (payload type msg) or an im/fetch Response whose "
                      "messages all name a Webcast*Message")

#: What each kind is recognised by, in words (``explain``, ``livefleet parse --explain``).
MARKERS: dict[str, str] = {
    PUSH_KIND: "decoded webcast push message(s): method (or common.method) names a Webcast*Message",
    "room_page": "HTML (or a fragment) with the room page's __pace_f chunks or RENDER_DATA",
    "ws_shopping": "method WebcastLiveShoppingMessage, or updated_product_ids",
    "commerce_feed": "item_cards",
    "product_detail": "promotions[0].base_info",
    "current_product": "promotions next to commodity_icon / carousel_time / show_cart / commentary_video_auth",
    "showcase": "promotions next to columns / rows",
    "shelf": "promotions (or data.promotions)",
    "user_profile": "a user object (sec_uid or uid) as user, user_info or data",
    "partition_rooms": "data.data[0] with web_rid and room",
    "room_enter": "data.data next to data.room_status / user / prompts / enter_room_id",
    "feed_square": "data[0].data is a room object (id_str with owner / stream_url / room_view_stats)",
    "anchor_rank": "data.ranks and data.anchor_info",
    "audience_rank": "data.ranks",
    "room_info": "data (or data.room) is a room object (id_str with owner / stream_url / room_view_stats)",
    "room_object": "a room object: id_str with owner / stream_url / room_view_stats",
    "room_state": "a page state: a dict holding roomStore",
}
if set(MARKERS) != {*KINDS, PUSH_KIND}:  # pragma: no cover - a guard for whoever adds a kind
    raise RuntimeError("detect.MARKERS must describe every kind")


def explain(payload: Any) -> tuple[str | None, str]:
    """``(kind, why)``: the kind ``detect`` (or the push loader) takes ``payload`` for and the
    marker that matched; ``(None, what was tried)`` when nothing matched.

    ``payload`` is the file's body (``bytes``/``str``: JSON, JSON lines or HTML) or decoded JSON.
    """
    from spiders.douyin import push, wire  # push imports the parsers' helpers; detect stays importable alone

    if isinstance(payload, bytes) and wire.load_binary(payload) is not None:
        return PUSH_KIND, PUSH_BINARY_MARKER
    if isinstance(payload, bytes | str):
        if push.load_messages(payload) is not None:
            return PUSH_KIND, MARKERS[PUSH_KIND]
        text = payload.decode("utf-8-sig", "replace") if isinstance(payload, bytes) else payload
        if looks_like_page(text):
            return "room_page", MARKERS["room_page"]
        try:
            payload = json.loads(text)
        except ValueError:
            return None, "neither JSON (nor JSON lines of push messages) nor a room page"
    elif push.load_messages(json.dumps(payload)) is not None:
        return PUSH_KIND, MARKERS[PUSH_KIND]
    inner = unwrap(payload)
    wrapped = "inside a relay's {code: 200, data} wrapper: " if inner is not payload else ""
    kind = detect(inner)
    if kind is None:
        return None, "no marker of any kind matched"
    return kind, wrapped + MARKERS[kind]


def detect(payload: Any) -> str | None:
    """Recognise a Douyin payload from its shape alone; ``None`` if unsure.

    ``payload`` is decoded JSON, or the body (``str``/``bytes``) for a room page.
    """
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    if isinstance(payload, str):
        return "room_page" if looks_like_page(payload) else None
    payload = unwrap(payload)
    for kind, matches in _SHAPES:
        if matches(payload):
            return kind
    return None
