"""What a Kuaishou payload is: which endpoint's answer, from its URL path or its shape.

``kind_from_url`` matches the path only (case-insensitive, repeated slashes collapsed, the
sandbox's ``/<real host>`` prefix allowed), so ``https://live.kuaishou.com/u/x`` and
``http://127.0.0.1:PORT/live.kuaishou.com/u/x`` resolve alike. ``detect`` serves
``livefleet parse FILE`` on bare files: keys only one endpoint carries, most specific first;
``None`` rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["KINDS", "detect", "kind_from_url", "looks_like_page"]

#: Kind -> path pattern of its endpoint (after an optional sandbox host prefix).
_PATHS: dict[str, str] = {
    "live_page": r"/u/[A-Za-z0-9_.\-]+",
    "live_detail": r"/live_api/liveroom/livedetail",
    "profile": r"/live_api/baseuser/userinfo/byid",
    "category_list": r"/live_api/category/data",
    "category_rooms": r"/live_api/(?:gameboard/list|non-gameboard/list|hot/list|search/livestream)",
    "follow_living": r"/live_api/follow/living",
    "recommend_photos": r"/rest/wd/ugh5app/recommend/photos",
    "shelf": r"/open/item/list/get",
    "product_detail": r"/open/item/get",
}
#: Kinds recognised from the payload only (app API captures without a known URL).
#: (www.kuaishou.com/graphql serves every operation at one path: its answers are told apart by shape.)
_SHAPE_ONLY = ("search_users", "feed_profile", "graphql_live_detail", "vision_profile")
#: Every kind this package parses.
KINDS: tuple[str, ...] = (*_PATHS, *_SHAPE_ONLY)
_HOST = r"(?:/[a-z0-9.\-]+\.(?:com|cn))?"
_PATH_RES = [(kind, re.compile(_HOST + pattern + r"/?", re.I)) for kind, pattern in _PATHS.items()]


def kind_from_url(url: str | None) -> str | None:
    """The kind of the endpoint ``url`` points at, by its path; ``None`` if unknown."""
    if not url:
        return None
    path = re.sub(r"/{2,}", "/", urlsplit(url).path)
    for kind, pattern in _PATH_RES:
        if pattern.fullmatch(path):
            return kind
    return None


def looks_like_page(body: bytes) -> bool:
    """Whether ``body`` is the room page (HTML carrying ``__INITIAL_STATE__``)."""
    head = body[:200].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<script")) and b"__INITIAL_STATE__" in body


def _has(obj: Any, *keys: str) -> bool:
    return isinstance(obj, dict) and all(key in obj for key in keys)


def _first(obj: Any, key: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value[0] if isinstance(value, list) and value else None


def _data(payload: Any) -> Any:
    return payload.get("data") if isinstance(payload, dict) else None


_SHAPES: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("graphql_live_detail", lambda p: _has(_data(p), "webLiveDetail")),
    ("vision_profile", lambda p: _has(_data(p), "visionProfile")),
    ("profile", lambda p: _has(p, "userProfile") or _has(_data(p), "userInfo")),
    ("live_detail", lambda p: _has(_data(p), "result") and ("liveStream" in p["data"] or "websocketInfo" in p["data"])),
    ("follow_living", lambda p: _has(p, "follow") or _has(_data(p), "follow")),
    ("search_users", lambda p: _has(p, "users") and _has(_first(p, "users"), "user_id")),
    ("feed_profile", lambda p: _has(p, "feeds") and _has(_first(p, "feeds"), "userId")),
    ("recommend_photos", lambda p: _has(_data(p), "hotRecommend") or _has(_data(p), "finishPlayingRecommend")),
    ("shelf", lambda p: _has(_data(p), "items") and _has(p, "result")),
    ("product_detail", lambda p: _has(_data(p), "itemId", "title") and _has(p, "result")),
    ("category_rooms", lambda p: _has(_first(_data(p), "list"), "author")),
    ("category_list", lambda p: _has(_first(_data(p), "list"), "id", "name")),
)


def detect(payload: Any) -> str | None:
    """Recognise a Kuaishou JSON payload's kind from its shape alone; ``None`` if unsure."""
    for kind, matches in _SHAPES:
        if matches(payload):
            return kind
    return None
