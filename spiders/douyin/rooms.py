"""Douyin room and user objects -> Room, RoomSnapshot, Streamer.

The same two objects come back in every live payload (web page state, enter API,
app room info, feed and partition lists, rank lists), with fields present or not
by variant; each field is looked up by meaning, exact numbers before display text.

Room (a webcast room object):

* ``room_id``: ``id_str``, else ``id`` (Python's json keeps big ints exact), else
  ``living_room_attrs.room_id_str``. ``web_rid`` is never in the room object: the
  caller passes it (page ``roomInfo.web_rid``, the enter request's ``web_rid``).
* ``status``: ``room.status`` 2 -> live, 4 -> ended (that session is over), other
  values -> unknown. Payloads without a room status pass a hint (enter API
  ``room_status`` 0 -> live, 2 -> ended; a page without a room -> offline).
* ``viewers_now``: ``room_view_stats.display_value`` (an int; not when
  ``is_hidden``), else ``user_count`` (app, int), else ``stats.user_count_str``,
  else ``user_count_str`` (text such as ``"1000+"``/``"1万+"``: a lower bound,
  kept in ``viewers_now_text``). Exact numbers first: on the real page
  ``display_value`` is 1266 while ``user_count_str`` says "1000+".
* ``viewers_total``: ``stats.total_user`` (int), else ``stats.total_user_str``.
* ``likes``: ``like_count`` (room), else ``stats.like_count_str``, else
  ``stats.like_count`` only when non-zero: it is 0 in every real web room object,
  including the page whose room ``like_count`` is 17736 and the app room whose
  ``like_count`` is 4746: a placeholder, not a count.
* ``product_count``: ``room_cart.total``. ``category``: the partition title from
  ``partition_road_map`` (sub-partition first), else the app's ``content_tag``.
* ``started_at``: ``start_time`` (else ``create_time``); ``ended_at``:
  ``finish_time`` only for an ended room (live rooms in the feed carry a
  ``finish_time`` in the past: it is the last ping, not an end).

Streamer (a user object: room ``owner``, page ``anchor``, enter ``data.user``,
profiles, rank entries):

* ``streamer_id``: ``id_str``, ``uid``, ``id``; ``sec_id``: ``sec_uid``.
* ``handle``: ``unique_id``, else ``display_id``, else ``short_id``: Douyin shows
  the short_id as the 抖音号 when no unique_id is set (webcast ``display_id``
  equals ``short_id`` for such users, e.g. 陈赫 191433445 in the goods rank).
* ``avatar_url``: ``avatar_thumb`` first: every variant carries it, so the stored
  URL does not flip between sizes from one payload to the next.
* ``verified``/``verify_text``: ``custom_verify`` else ``enterprise_verify_reason``
  (top level or in ``authentication_info``); verified when either is non-empty,
  unknown when neither key is sent. The ``verified`` flag is not read: rank lists
  send ``false`` for verified celebrities.
* ``followers``: ``follower_count`` (profiles: a real count, 0 included), else
  ``mplatform_followers_count``, else ``follow_info.follower_count`` only when
  non-zero (webcast user objects in lists send 0 for everyone). Same rule for
  ``following``. ``follow_info.follow_status`` is the *viewer's* relation: not read.
* ``is_live``/``room_id``: ``live_status`` (1 live) else a non-zero ``room_id``
  (the aweme profile sets it only while live); webcast users: ``own_room.room_ids_str``.
* A Streamer is emitted only when the payload says something about the person,
  never for a bare ID.
"""

from __future__ import annotations

from typing import Any

from models.entities import Record, Room, RoomSnapshot, Streamer
from spiders.payload import Page, dig, first_text

__all__ = ["room_records", "room_status", "streamer"]

_STATUS = {2: "live", 4: "ended"}
_AVATARS = ("avatar_thumb", "avatar_medium", "avatar_168x168", "avatar_300x300", "avatar_large",
            "avatar_larger", "avatar")  # fmt: skip


def room_status(value: Any) -> str | None:
    """``room.status`` (2 live, 4 ended) as a livefleet status; ``None`` when not sent."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        return _STATUS.get(int(value), "unknown")
    except (TypeError, ValueError):
        return "unknown"


def _url(obj: Any, *paths: str) -> str | None:
    """The first URL of the first image object (``{url_list: [...]}``) or URL string at ``paths``."""
    for path in paths:
        value = dig(obj, path)
        if isinstance(value, str) and value.strip():
            return value
        found = first_text(value, "url_list.0")
        if found:
            return found
    return None


def _positive(page: Page, obj: Any, path: str, where: str, name: str, *, text: bool = True) -> dict[str, Any]:
    """``page.count`` of ``obj[path]`` unless it is the 0 that list objects send for "unknown"."""
    value = dig(obj, path)
    return {} if value == 0 else page.count(value, f"{where}.{path}", name, text=text)


def _first_count(page: Page, obj: Any, where: str, name: str, *paths: str, text: bool = True) -> dict[str, Any]:
    for path in paths:
        if dig(obj, path) is not None:
            return page.count(dig(obj, path), f"{where}.{path}", name, text=text)
    return {}


def _verify(user: Any) -> dict[str, Any]:
    keys = ("custom_verify", "enterprise_verify_reason")
    places = [user, dig(user, "authentication_info")]
    if not any(isinstance(place, dict) and key in place for place in places for key in keys):
        return {}
    text = next((t for place in places for key in keys if (t := first_text(place, key))), None)
    return {"verified": text is not None, "verify_text": text}


def _live(page: Page, user: Any, where: str) -> dict[str, Any]:
    """``is_live`` and ``room_id`` as the user object itself says them."""
    own = dig(user, "own_room.room_ids_str") or dig(user, "own_room.room_ids")
    if isinstance(own, list):
        room_id = page.id(own[0], f"{where}.own_room.room_ids_str.0") if own else None
        return {"is_live": bool(own), "room_id": room_id}
    room_id = page.id(dig(user, "room_id_str", "room_id"), f"{where}.room_id")
    if dig(user, "live_status") is not None:
        return {"is_live": dig(user, "live_status") == 1, "room_id": room_id}
    if "room_id" in (user or {}) or "room_id_str" in (user or {}):
        return {"is_live": room_id is not None, "room_id": room_id}
    return {}


def streamer(page: Page, user: Any, where: str, *, required: bool = False, **known: Any) -> list[Record]:
    """A Streamer from a user object, or ``[]`` when it says nothing about the person.

    ``known`` holds fields established elsewhere (``is_live`` from the room's status,
    ``streamer_id`` from the room) and wins over what the user object says. A user
    without an ID gives ``[]``, unless ``required`` (the payload is about that user,
    a profile): then a ``PermanentPageError`` names the missing field, and a profile
    with nothing but an ID still gives its Streamer.
    """
    if not isinstance(user, dict):
        return []
    short_id = page.id(dig(user, "short_id"), f"{where}.short_id")
    about = {
        "sec_id": first_text(user, "sec_uid"),
        "handle": first_text(user, "unique_id", "display_id") or short_id,
        "nickname": first_text(user, "nickname", "nick_name"),
        "avatar_url": _url(user, *_AVATARS),
        "bio": first_text(user, "signature"),
        **_verify(user),
        **(_first_count(page, user, where, "followers", "follower_count", "mplatform_followers_count")
           or _positive(page, user, "follow_info.follower_count", where, "followers")),
        **(_first_count(page, user, where, "following", "following_count", text=False)
           or _positive(page, user, "follow_info.following_count", where, "following", text=False)),
        **_first_count(page, user, where, "likes_total", "total_favorited"),
        **_first_count(page, user, where, "works_count", "aweme_count", text=False),
    }  # fmt: skip
    if not required and not any(value is not None for value in about.values()):
        return []
    streamer_id = page.id(dig(user, "id_str", "uid", "id"), f"{where}.id_str") or known.pop("streamer_id", None)
    known.pop("streamer_id", None)
    if streamer_id is None:
        if required:
            raise page.fail(f"{where}.uid: missing: no user ID (uid, id_str, id) to key a Streamer")
        return []
    fields = {**about, **_live(page, user, where)}
    fields.update({key: value for key, value in known.items() if value is not None})
    return [page.build(Streamer, streamer_id=streamer_id, **fields, fetched_at=page.fetched_at)]


def _viewers(page: Page, room: Any, where: str) -> dict[str, Any]:
    if dig(room, "room_view_stats.display_value") is not None and dig(room, "room_view_stats.is_hidden") is not True:
        return page.count(dig(room, "room_view_stats.display_value"), f"{where}.room_view_stats.display_value",
                          "viewers_now")  # fmt: skip
    return _first_count(page, room, where, "viewers_now", "user_count", "stats.user_count_str", "user_count_str")


def _category(room: Any) -> str | None:
    return first_text(room, "partition_road_map.sub_partition.partition.title",
                      "partition_road_map.partition.title", "content_tag")  # fmt: skip


def room_records(
    page: Page,
    room: Any,
    where: str,
    *,
    web_rid: str | None = None,
    owner: Any = None,
    status: str | None = None,
) -> list[Record]:
    """Room + RoomSnapshot (+ Streamer) from a webcast room object.

    ``owner`` is a user object found beside the room (page ``anchor``, enter
    ``data.user``): it fills what ``room.owner`` lacks. ``status`` is the status the
    payload gives outside the room object, used when the room has none.
    """
    room_id = page.id(dig(room, "id_str", "id", "living_room_attrs.room_id_str"), f"{where}.id_str")
    person = {**(owner if isinstance(owner, dict) else {}), **(dig(room, "owner") or {})}
    streamer_id = page.id(
        dig(person, "id_str", "id") or dig(room, "owner_user_id_str", "owner_user_id"), f"{where}.owner.id_str"
    )
    status = room_status(dig(room, "status")) or status
    viewers = _viewers(page, room, where)
    total = _first_count(page, room, where, "viewers_total", "stats.total_user", "stats.total_user_str")
    likes = _first_count(page, room, where, "likes", "like_count", "stats.like_count_str") or _positive(
        page, room, "stats.like_count", where, "likes"
    )
    products = page.count(dig(room, "room_cart.total"), f"{where}.room_cart.total", "product_count", text=False)
    started = page.time(dig(room, "start_time") or dig(room, "create_time"), f"{where}.start_time")
    ended = page.time(dig(room, "finish_time"), f"{where}.finish_time") if status == "ended" else None
    records: list[Record] = [
        page.build(
            Room,
            room_id=room_id,
            streamer_id=streamer_id,
            web_rid=web_rid or page.id(dig(person, "web_rid"), f"{where}.owner.web_rid"),
            title=first_text(room, "title"),
            status=status,
            started_at=started,
            ended_at=ended,
            **viewers,
            **total,
            **likes,
            category=_category(room),
            cover_url=_url(room, "cover"),
            **products,
            fetched_at=page.fetched_at,
        )
    ]
    if status is not None or viewers or total or likes:  # a snapshot must observe something
        records.append(
            page.build(
                RoomSnapshot,
                room_id=room_id,
                captured_at=page.fetched_at,
                status=status,
                viewers_now=viewers.get("viewers_now"),
                viewers_total=total.get("viewers_total"),
                likes=likes.get("likes"),
                product_count=products.get("product_count"),
            )
        )
    is_live = None if status is None else status == "live"
    records += streamer(page, person, f"{where}.owner", streamer_id=streamer_id, is_live=is_live, room_id=room_id)
    return records
