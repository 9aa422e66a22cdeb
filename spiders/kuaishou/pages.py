"""Pure parsers of Kuaishou live payloads: response bytes in, livefleet records out.

``parse(body, url=, fetched_at=, kind=)``: the kind comes from the argument, else the URL path,
else the payload's shape (``detect.py``). The room page is HTML with an embedded state
(``state.initial_state``); every other kind is JSON. Formats and their public sources are in
docs/kuaishou_formats.md; the identity rule (room_id = streamer_id = the numeric user id; principalId -> Room.web_rid;
payloads without a user id give ``Lead``s only) in ``records.py``.

Web kinds (this module):

* ``live_page``  ``/u/{principalId}``: ``liveroom.playList[0]{liveStream, author, gameInfo,
  config, isLiving, errorType}``, or the older ``liveroom{liveStream, author, isLiving,
  errorType}`` -> Room + RoomSnapshot + Streamer. An empty playList, errorType 2/31/400002 or a
  verification page -> ``BlockedError``; errorType 22 -> ``GoneError``; isLiving false -> an
  offline Room.
* ``live_detail`` ``/live_api/liveroom/livedetail?principalId=``: result 1 -> as the page item;
  671/677 -> only a ``Lead`` to the URL's principalId (the answer names no user id).
* ``profile`` web ``/live_api/baseuser/userinfo/byid`` (``data.userInfo``) and the app's
  ``userProfile`` -> Streamer (app.py for the latter).
* ``category_rooms`` gameboard / non-gameboard / hot / search-liveStream lists:
  ``data.list[]{id, caption, poster, living, watchingCount, author{id, name, avatar}}`` -> a
  ``Lead`` per item (no user id; an author with ``originUserId``, as hot/list items have, gives Room
  + RoomSnapshot + Streamer); ``category_list`` ``/live_api/category/data``: the
  categories of a top type (``data.list[]{id, name, poster}``) -> ``Category`` (not stored).
* ``graphql_live_detail`` ``m_graphql`` webLiveDetail: the room asked about has no ID in the
  answer and gives nothing; ``moreRecommendList[]{user{id,name,avatar}, watchingCount, caption,
  coverUrl, poster, gameInfo}`` -> a ``Lead`` per recommended room (``user.id`` is a principalId).
* ``follow_living`` ``/live_api/follow/living`` (logged in): the followed streamers live now,
  ``data.follow[]{liveStreamId, caption, watchingCount, startTime, user{user_id, eid, principalId}}``
  (app.py), or ``data.list[]{author, ...}`` as the board lists (later clients read that shape).
* ``vision_profile`` ``www.kuaishou.com/graphql`` operation ``visionProfile`` (variables ``userId`` =
  the eid): ``data.visionProfile{result, userProfile{ownerCount{fan, follow, photo_public},
  profile{user_id, user_name, gender, headurl, user_text}}}``. ``profile.user_id`` is the eid and the
  answer names no numeric user id, so it gives only a ``Lead`` to the eid (a principalId the live
  site accepts); ``result`` 2 or 400002 is a block, any other code but 1 a permanent error.

Mapping decisions: counts arrive as display strings (``"2.7w"``, ``"1.2万"``) and keep their
text; ``watchingCount`` is viewers now, ``likeCount`` likes. Lists that carry no live flag give
no status (a recommendation is not proof of a broadcast). ``liveStream.id`` (liveStreamId) is
per session and not stored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from models.entities import Fetched, PlatformId, Record, Text
from models.errors import BlockedError, UnknownPayloadError
from spiders.kuaishou import app, shop
from spiders.kuaishou.detect import KINDS, detect, kind_from_url, looks_like_page
from spiders.kuaishou.records import lead, room_records, streamer_record, user_id
from spiders.kuaishou.state import PLATFORM, check_error_type, check_live_api, check_result, initial_state
from spiders.payload import Page, dig, first_text, load_json

__all__ = ["PARSERS", "Category", "detect", "kind_from_url", "parse"]

_PRINCIPAL_RE = re.compile(r"/u/([A-Za-z0-9_.\-]+)/?$")


class Category(Fetched):
    """A live category (游戏/品类) of a top type, from ``/live_api/category/data``. Not stored:
    the spider turns each into gameboard / non-gameboard list requests (``gameId``)."""

    kind: ClassVar[str] = "category"
    collection: ClassVar[str] = ""
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "category_id")

    category_id: PlatformId
    name: Text | None = None
    image_url: str | None = None
    #: The top type asked for (1热门 2网游 3单机 4手游 5棋牌 6娱乐 7综合 8文化), from the URL.
    parent_type: PlatformId | None = None


def _url_principal(page: Page) -> str | None:
    """The principalId of ``/u/{id}`` or of the ``principalId`` query parameter."""
    match = _PRINCIPAL_RE.search(urlsplit(page.url or "").path)
    value = unquote(match[1]) if match else page.query("principalId")
    return page.id(value, "url.principalId")


def _play_item(page: Page, item: Any, where: str, *, status: str | None = None) -> list[Record]:
    """Room records of a page playList item or a livedetail ``data`` (same keys)."""
    author = dig(item, "author")
    principal_id = page.id(dig(author, "id", "principalId"), f"{where}.author.id") or _url_principal(page)
    stream = dig(item, "liveStream")
    living = dig(item, "isLiving")
    if living is None and isinstance(stream, dict) and "type" in stream:  # the older page shape
        living = stream.get("type") == "live"
    return room_records(
        page,
        user=author,
        user_where=f"{where}.author",
        principal_id=principal_id,
        where=where,
        living=living,
        status=status,
        title=first_text(item, "liveStream.caption", "config.caption", "caption"),
        viewers=dig(item, "gameInfo.watchingCount", "config.watchingCount", "watchingCount"),
        likes=dig(item, "config.likeCount", "likeCount"),
        cover=first_text(item, "liveStream.poster", "liveStream.coverUrl", "config.coverUrl"),
        category=first_text(item, "gameInfo.name"),
        started=dig(item, "liveStream.startTime", "config.startTime", "startTime"),
        session=dig(item, "liveStream.id", "config.liveStreamId"),
    )


def _live_page(page: Page, state: Any) -> list[Record]:
    room = dig(state, "liveroom")
    if not isinstance(room, dict):
        raise page.fail("liveroom missing from window.__INITIAL_STATE__")
    if "playList" in room:
        items = room["playList"]
        if not isinstance(items, list):
            raise page.fail(f"liveroom.playList: expected a list, got {type(items).__name__}")
        if not items:
            # Offline rooms still have an item (isLiving false): an empty list is a refusal.
            reason = "empty liveroom.playList (verification or risk control)"
            raise BlockedError(reason, platform=PLATFORM, url=page.url)
        item, where = items[0], "liveroom.playList.0"
    else:
        item, where = room, "liveroom"
    status = check_error_type(item, where, url=page.url)
    if status is None and isinstance(item, dict) and not item.get("liveStream") and not item.get("author"):
        raise BlockedError(f"{where} has no liveStream and no author", platform=PLATFORM, url=page.url)
    return _play_item(page, item, where, status=status)


def _live_detail(page: Page, payload: Any) -> list[Record]:
    result, data = check_live_api(payload, url=page.url)
    if result != 1:  # 671/677: not broadcasting. The answer names no user id: a lead only.
        return lead(page, _url_principal(page), living=False)
    living = data.get("isLiving")
    status = None if isinstance(living, bool) else ("live" if data.get("liveStream") else None)
    return _play_item(page, data, "data", status=status)


def _profile(page: Page, payload: Any) -> list[Record]:
    if isinstance(payload, dict) and "userProfile" in payload:
        return app.profile(page, payload)
    _, data = check_live_api(payload, url=page.url)
    info = data.get("userInfo")
    principal_id = page.id(dig(info, "id"), "data.userInfo.id") or _url_principal(page)
    living = dig(info, "living")
    is_live = living if isinstance(living, bool) else None
    records = streamer_record(page, info, "data.userInfo", is_live=is_live)
    if not records and user_id(page, info, "data.userInfo") is None:
        if principal_id is None:
            raise page.fail("data.userInfo: no originUserId and no id")
        return lead(page, principal_id, living=living)
    return records


def _list(page: Page, payload: Any) -> tuple[list[Any], str]:
    data = dig(payload, "data")
    if isinstance(data, dict) and "result" in data:
        check_live_api(payload, url=page.url)
    items = dig(data, "list")
    if not isinstance(items, list):
        raise page.fail("data.list: expected a list")
    return items, "data.list"


def _category_rooms(page: Page, payload: Any) -> list[Record]:
    items, at = _list(page, payload)
    records: list[Record] = []
    for i, item in enumerate(items):
        where = f"{at}.{i}"
        principal_id = page.id(dig(item, "author.id"), f"{where}.author.id")
        if principal_id is None:
            raise page.fail(f"{where}.author.id missing")
        living = dig(item, "living", "isLiving")
        records += room_records(
            page,
            user=dig(item, "author"),
            user_where=f"{where}.author",
            principal_id=principal_id,
            where=where,
            living=living,
            title=first_text(item, "caption"),
            viewers=dig(item, "watchingCount", "displayWatchingCount"),
            likes=dig(item, "likeCount"),
            cover=first_text(item, "poster", "coverUrl"),
            category=first_text(item, "gameInfo.name"),
        )
    return records


def _category_list(page: Page, payload: Any) -> list[Record]:
    items, at = _list(page, payload)
    parent = page.id(page.query("type"), "url.type")
    return [
        page.build(
            Category,
            category_id=page.id(dig(item, "id"), f"{at}.{i}.id"),
            name=first_text(item, "name"),
            image_url=first_text(item, "poster", "iconUrl"),
            parent_type=parent,
            fetched_at=page.fetched_at,
        )
        for i, item in enumerate(items)
    ]


def _graphql_live_detail(page: Page, payload: Any) -> list[Record]:
    if isinstance(payload, dict) and payload.get("errors"):
        raise page.fail(f"GraphQL errors: {str(payload['errors'])[:200]}")
    where = "data.webLiveDetail.moreRecommendList"
    items = dig(payload, where) or []
    records: list[Record] = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        at = f"{where}.{i}"
        principal_id = page.id(dig(item, "user.id"), f"{at}.user.id")
        if principal_id is None:
            raise page.fail(f"{at}.user.id missing")
        records += room_records(
            page,
            user=dig(item, "user"),
            user_where=f"{at}.user",
            principal_id=principal_id,
            where=at,
            title=first_text(item, "caption"),
            viewers=dig(item, "watchingCount"),
            cover=first_text(item, "coverUrl", "poster"),
            category=first_text(item, "gameInfo.name"),
        )
    return records


def _vision_profile(page: Page, payload: Any) -> list[Record]:
    if isinstance(payload, dict) and payload.get("errors"):
        raise page.fail(f"GraphQL errors: {str(payload['errors'])[:200]}")
    answer = dig(payload, "data.visionProfile")
    if not isinstance(answer, dict):
        raise page.fail("data.visionProfile: expected an object")
    check_result(answer, url=page.url)
    profile = dig(answer, "userProfile.profile")
    eid = page.id(dig(profile, "user_id"), "data.visionProfile.userProfile.profile.user_id")
    if eid is None:
        raise page.fail("data.visionProfile.userProfile.profile.user_id missing")
    return lead(page, eid)


def _follow_living(page: Page, payload: Any) -> list[Record]:
    """``/live_api/follow/living``: ``data.follow[]`` (2021 capture, ``app.follow_living``), or the
    ``data.list[]{author, ...}`` items later clients read (the board lists' items)."""
    data = dig(payload, "data")
    if isinstance(data, dict) and "follow" not in data and isinstance(data.get("list"), list):
        return _category_rooms(page, payload)
    return app.follow_living(page, payload)


_PARSE: dict[str, Callable[[Page, Any], list[Record]]] = {
    "live_page": _live_page,
    "live_detail": _live_detail,
    "profile": _profile,
    "category_list": _category_list,
    "category_rooms": _category_rooms,
    "graphql_live_detail": _graphql_live_detail,
    "vision_profile": _vision_profile,
    "search_users": app.search_users,
    "feed_profile": app.feed_profile,
    "follow_living": _follow_living,
    "recommend_photos": app.recommend_photos,
    "shelf": shop.shelf,
    "product_detail": shop.product_detail,
}
if set(_PARSE) != set(KINDS):  # pragma: no cover - a guard for whoever adds a kind
    raise RuntimeError("detect.KINDS and pages._PARSE must name the same kinds")


def parse(body: bytes, *, url: str | None = None, fetched_at: datetime, kind: str | None = None) -> list[Record]:
    """Parse one Kuaishou response (room page HTML or JSON) into records.

    Raises only ``PageError`` subclasses; an unknown ``kind`` or a payload no parser
    recognises -> ``UnknownPayloadError``.
    """
    if kind is not None and kind not in _PARSE:
        raise UnknownPayloadError(f"no Kuaishou parser of kind {kind!r}", platform=PLATFORM, url=url)
    page = Page(PLATFORM, url, fetched_at)
    kind = kind or kind_from_url(url)
    if kind == "live_page" or (kind is None and looks_like_page(body or b"")):
        return _live_page(page, initial_state(body, url=url))
    payload = load_json(body, platform=PLATFORM, url=url)
    kind = kind or detect(payload)
    if kind is None:
        raise UnknownPayloadError("not a known Kuaishou payload", platform=PLATFORM, url=url)
    return _PARSE[kind](page, payload)


#: Kind name -> its parser ``(body, *, url=None, fetched_at) -> list[Record]``.
PARSERS: dict[str, Callable[..., list[Record]]] = {kind: functools.partial(parse, kind=kind) for kind in KINDS}
