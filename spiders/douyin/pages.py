"""Pure parsers of Douyin live payloads: response bytes in, livefleet records out.

``parse(body, url=, fetched_at=, kind=)`` first checks the input: an empty body or
``blocked`` is Douyin's risk-control answer (``BlockedError``); then, for the room
page, the captcha page (``BlockedError``) and the room state (``state.py``); for
the APIs, the JSON (``load_json``: HTML where JSON was expected is classified
there), a relay's wrapper and the ``status_code`` envelope (``detect.py``). The
kind comes from the argument, else the URL path, else the payload's shape.

Kinds and what they yield (field rules in ``rooms.py`` and ``products.py``):

* ``room_page`` (live.douyin.com/{web_rid}, current ``__pace_f`` or legacy
  ``RENDER_DATA``), ``room_state`` (the decoded state): ``roomInfo.room`` ->
  Room + RoomSnapshot + Streamer (``room.owner``, filled from ``roomInfo.anchor``),
  ``web_rid`` from ``roomInfo.web_rid``. No room object (offline): Room + snapshot
  with status ``offline`` (``ended`` when the page says 直播已结束) when ``roomId``
  is given, and the anchor (``is_live`` false); "不存在" in the page's enter
  verdict -> ``GoneError``. ``userStore`` is the *viewer* (``odin.user_id`` is the
  logged-in visitor): never read.
* ``room_enter`` (/webcast/room/web/enter/): each ``data.data[]`` room, with
  ``data.user`` as owner, ``data.room_status`` (0 live, 2 ended) or ``prompts``
  "直播已结束" as status when the room has none, ``web_rid`` from the request.
  No room and no user: risk control (``BlockedError``); no room but a user: the
  Streamer (and the ``enter_room_id`` room when given).
* ``room_object`` (a bare room), ``room_info`` (reflow ``data.room``, app ``data``),
  ``partition_rooms`` (``data.data[]{web_rid, room}``), ``feed_square``
  (``data[].data``): the same room mapping per room.
* ``shelf`` (web /live/promotions/page/, app promotions list, 百应 promotions_v2):
  Product + ProductSnapshot per item, ``rank_in_room`` = ``index`` when >= 1, else
  the position (after the request's ``offset``); ``room_id`` from the payload or the
  request's ``room_id``. The app's ``current_promotion_id`` and ``total`` give a
  RoomSnapshot (``current_product_id``, ``product_count``) when the room is known.
  ``next_offset`` is pagination, for the spider.
* ``current_product`` (/live/promotions/pop/v3/, app current product): Product +
  ProductSnapshot, and a RoomSnapshot with ``current_product_id`` when the room is known.
* ``product_detail``, ``showcase``, ``commerce_feed``: Product + ProductSnapshot
  (the feed's live cards also give Room + RoomSnapshot + Streamer, and tie their
  product to the room).
* ``user_profile`` (aweme profile ``user``, iesdouyin ``user_info``, webcast user
  ``data``): Streamer. ``user_info`` carries no uid (only ``sec_uid``): a Streamer
  is keyed by uid, so such a payload fails (``PermanentPageError``) unless the
  request URL gives ``user_id``/``uid``: sec_uid is never used as streamer_id.
* ``anchor_rank`` (hourly / goods rank lists): a Streamer per ranked anchor and
  ``anchor_info``, with ``own_room`` as their live room.
* ``audience_rank`` (/webcast/ranklist/audience/, 音浪榜, 在线观众): the ranks list
  *viewers*: personal data, never read. Only ``total`` (else ``user_count_desc``)
  becomes a RoomSnapshot's ``viewers_now``, when the request's ``room_id`` says
  which room, and only when it is not below the number of viewers listed (the
  2023 web capture says ``total: 0`` next to 200 listed viewers).
* ``ws_shopping`` (decoded WebcastLiveShoppingMessage): a Product per
  ``updated_product_ids`` entry; ``updated_product_info`` (title, cover) only when
  the message names a single product.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from models.entities import Record, Room, RoomSnapshot
from models.errors import BlockedError, GoneError, PageError, PermanentPageError, UnknownPayloadError
from spiders.douyin import shop
from spiders.douyin import state as page_state
from spiders.douyin.detect import GONE_RE, KINDS, check_envelope, detect, dig_user, kind_from_url, unwrap
from spiders.douyin.rooms import room_records, streamer
from spiders.douyin.shop import as_dict, as_list
from spiders.payload import Page, dig, first_text, load_json

__all__ = ["PARSERS", "detect", "kind_from_url", "parse"]

PLATFORM = "douyin"
_ENTER_STATUS = {0: "live", 2: "ended"}
_ENDED = "直播已结束"


def _enter_status(value: Any) -> str | None:
    """The enter API's ``data.room_status`` (0 live, 2 ended; another value: unknown)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        return _ENTER_STATUS.get(int(value), "unknown")
    except (TypeError, ValueError):
        return "unknown"


# --- the room page and its state --------------------------------------------------------------


def _from_state(page: Page, state: dict[str, Any], status: Any, where: str) -> list[Record]:
    info = as_dict(page, dig(state, "roomStore.roomInfo"), f"{where}.roomStore.roomInfo")
    at = f"{where}.roomStore.roomInfo"
    prompts = " ".join(filter(None, (first_text(status, "errorPrompts"), first_text(info, "prompts"))))
    if GONE_RE.search(prompts):
        raise GoneError(f"Douyin room page: {prompts}", platform=PLATFORM, url=page.url)
    web_rid = page.id(dig(info, "web_rid"), f"{at}.web_rid")
    room_id = page.id(dig(info, "roomId"), f"{at}.roomId")
    anchor = dig(info, "anchor")
    room = dig(info, "room")
    if isinstance(room, dict):
        if room_id and not dig(room, "id_str"):
            room = {**room, "id_str": room_id}  # the same room, named beside it
        return room_records(page, room, f"{at}.room", web_rid=web_rid, owner=anchor)
    status_now = "ended" if _ENDED in prompts else "offline"
    records: list[Record] = []
    if room_id is not None:
        streamer_id = page.id(dig(anchor, "id_str", "id"), f"{at}.anchor.id_str")
        records.append(page.build(Room, room_id=room_id, streamer_id=streamer_id, web_rid=web_rid,
                                  status=status_now, fetched_at=page.fetched_at))  # fmt: skip
        records.append(page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at, status=status_now))
    return records + streamer(page, anchor, f"{at}.anchor", is_live=False, room_id=room_id)


def _room_state(page: Page, payload: Any) -> list[Record]:
    found = page_state.find_state(payload)
    if found is None:
        raise page.fail("no room state (a dict with roomStore) in the payload")
    return _from_state(page, found, page_state.find_status(payload), "state")


def _room_page(page: Page, text: str) -> list[Record]:
    if "验证码中间页" in page_state.page_title(text):
        raise BlockedError("Douyin captcha page (验证码中间页)", platform=PLATFORM, url=page.url)
    data = page_state.extract(text)
    if data.state is not None:
        return _from_state(page, data.state, data.status, "state")
    if page_state.is_captcha(text):
        raise BlockedError("Douyin captcha page (captcha_container)", platform=PLATFORM, url=page.url)
    try:
        payload = load_json(text, platform=PLATFORM, url=page.url)
    except PermanentPageError:  # not JSON either: a page without its state
        raise page.fail("no room state in the page (no __pace_f chunk or RENDER_DATA with roomStore)") from None
    return _room_state(page, payload)  # a state JSON given as a page


# --- room APIs ----------------------------------------------------------------------------------


def _room_enter(page: Page, payload: Any) -> list[Record]:
    data = as_dict(page, dig(payload, "data"), "data")
    prompts = first_text(data, "prompts") or ""
    if GONE_RE.search(prompts):
        raise GoneError(f"Douyin enter: {prompts}", platform=PLATFORM, url=page.url)
    status = "ended" if _ENDED in prompts else _enter_status(dig(data, "room_status"))
    rooms = as_list(page, dig(data, "data", default=[]), "data.data")
    user = dig(data, "user")
    web_rid = page.id(page.query("web_rid"), "url.web_rid")
    if rooms:
        return [
            record
            for i, room in enumerate(rooms)
            for record in room_records(page, room, f"data.data.{i}", web_rid=web_rid, owner=user, status=status)
        ]
    if not isinstance(user, dict):
        reason = f"Douyin enter without room or user (prompts {prompts!r}): risk control"
        raise BlockedError(reason, platform=PLATFORM, url=page.url)
    room_id = page.id(dig(data, "enter_room_id"), "data.enter_room_id")
    records: list[Record] = []
    if room_id is not None and status is not None:
        streamer_id = page.id(dig(user, "id_str", "id"), "data.user.id_str")
        records.append(page.build(Room, room_id=room_id, streamer_id=streamer_id, web_rid=web_rid, status=status,
                                  fetched_at=page.fetched_at))  # fmt: skip
        records.append(page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at, status=status))
    is_live = None if status is None else status == "live"
    return records + streamer(page, user, "data.user", is_live=is_live, room_id=room_id)


def _room_object(page: Page, payload: Any) -> list[Record]:
    return room_records(page, payload, "room", web_rid=page.id(page.query("web_rid"), "url.web_rid"))


def _room_info(page: Page, payload: Any) -> list[Record]:
    if isinstance(dig(payload, "data.room"), dict):
        return room_records(page, payload["data"]["room"], "data.room")
    return room_records(page, as_dict(page, dig(payload, "data"), "data"), "data")


def _partition_rooms(page: Page, payload: Any) -> list[Record]:
    items = as_list(page, dig(payload, "data.data"), "data.data")
    return [record for i, item in enumerate(items)
            for record in room_records(page, dig(item, "room"), f"data.data.{i}.room",
                                       web_rid=page.id(dig(item, "web_rid"), f"data.data.{i}.web_rid"))]  # fmt: skip


def _feed_square(page: Page, payload: Any) -> list[Record]:
    items = as_list(page, dig(payload, "data"), "data")
    # Cards that are not rooms (banners, ads) carry no room object: skipped.
    return [record for i, item in enumerate(items) if isinstance(dig(item, "data.owner"), dict)
            for record in room_records(page, item["data"], f"data.{i}.data")]  # fmt: skip


# --- people ---------------------------------------------------------------------------------------


def _user_profile(page: Page, payload: Any) -> list[Record]:
    user = dig_user(payload)
    where = next((key for key in ("user", "user_info", "data") if dig(payload, key) is user), "user")
    if user is None:
        raise page.fail("user: missing (no user, user_info or data user object)")
    known = page.id(page.query("user_id", "uid"), "url.user_id")
    return streamer(page, user, where, required=True, streamer_id=known)


def _anchor_rank(page: Page, payload: Any) -> list[Record]:
    ranks = as_list(page, dig(payload, "data.ranks"), "data.ranks")
    users = [(f"data.ranks.{i}.user", dig(rank, "user")) for i, rank in enumerate(ranks)]
    users.append(("data.anchor_info.user", dig(payload, "data.anchor_info.user")))
    records: list[Record] = []
    seen: set[Any] = set()
    for where, user in users:
        for record in streamer(page, user, where):
            if record.key()["streamer_id"] not in seen:
                seen.add(record.key()["streamer_id"])
                records.append(record)
    return records


def _audience_rank(page: Page, payload: Any) -> list[Record]:
    room_id = page.id(page.query("room_id"), "url.room_id")
    data = as_dict(page, dig(payload, "data"), "data")
    path = "data.total" if dig(data, "total") is not None else "data.user_count_desc"
    viewers = page.count(dig(data, "total", "user_count_desc"), path, "viewers_now", text=False)
    listed = len(dig(data, "ranks")) if isinstance(dig(data, "ranks"), list) else 0
    if room_id is None or not viewers or viewers["viewers_now"] < listed:
        return []
    return [page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at, **viewers)]


_PARSE: dict[str, Callable[[Page, Any], list[Record]]] = {
    "room_page": _room_state,  # JSON route only: HTML goes through _room_page
    "room_state": _room_state,
    "room_enter": _room_enter,
    "room_object": _room_object,
    "room_info": _room_info,
    "shelf": shop.shelf,
    "current_product": shop.current_product,
    "product_detail": shop.product_list,
    "user_profile": _user_profile,
    "partition_rooms": _partition_rooms,
    "feed_square": _feed_square,
    "anchor_rank": _anchor_rank,
    "audience_rank": _audience_rank,
    "showcase": shop.product_list,
    "commerce_feed": shop.commerce_feed,
    "ws_shopping": shop.ws_shopping,
}
if set(_PARSE) != set(KINDS):  # pragma: no cover - a guard for whoever adds a kind
    raise RuntimeError("detect.KINDS and pages._PARSE must name the same kinds")


def _text(body: bytes | str | None, url: str | None) -> str:
    """The body as text; empty or ``blocked`` is Douyin's risk-control answer."""
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            reason = f"body is not UTF-8: {exc.reason} at byte {exc.start}"
            raise PermanentPageError(reason, platform=PLATFORM, url=url) from None
    else:
        text = (body or "").removeprefix("\ufeff")
    if not text.strip():
        raise BlockedError("empty body: Douyin's risk-control answer", platform=PLATFORM, url=url)
    if text.strip().lower() == "blocked":
        raise BlockedError("body 'blocked': Douyin's risk-control answer", platform=PLATFORM, url=url)
    return text


def parse(
    body: bytes, *, url: str | None = None, fetched_at: datetime, kind: str | None = None
) -> list[Record]:
    """Parse one Douyin response (API JSON or room page HTML) into records.

    The kind comes from ``kind``, else from ``url``'s path, else from the payload's
    shape; none of them, or an unknown ``kind`` -> ``UnknownPayloadError``. Raises
    only ``PageError`` subclasses.
    """
    if kind is not None and kind not in _PARSE:
        raise UnknownPayloadError(f"no Douyin parser of kind {kind!r}", platform=PLATFORM, url=url)
    text = _text(body, url)
    page = Page(PLATFORM, url, fetched_at)
    kind = kind or kind_from_url(url)
    if kind == "room_page" or (kind is None and detect(text) == "room_page"):
        return _room_page(page, text)
    payload = unwrap(load_json(text, platform=PLATFORM, url=url))
    check_envelope(payload, url)
    kind = kind or detect(payload)
    if kind is None:
        raise UnknownPayloadError("not a known Douyin payload", platform=PLATFORM, url=url)
    try:
        return _PARSE[kind](page, payload)
    except PageError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a shape no path anticipated
        raise page.fail(f"{kind}: unexpected payload shape: {type(exc).__name__}: {exc}") from None


#: Kind name -> its parser ``(body, *, url=None, fetched_at) -> list[Record]``.
PARSERS: dict[str, Callable[..., list[Record]]] = {
    kind: functools.partial(parse, kind=kind) for kind in KINDS
}
