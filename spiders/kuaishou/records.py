"""Record builders shared by the Kuaishou parsers: the key rule, rooms and streamers.

The key rule (one room per user on Kuaishou, reached at ``live.kuaishou.com/u/{principalId}``):

* ``principalId`` is the user's kwaiId when they set one, else their eid (``3x...``): the web's
  ``author.id``/``user.principalId``; the app's ``kwaiId`` or else ``eid``/``userEid``.
* ``Room.room_id`` = ``Streamer.streamer_id`` = principalId. The per-broadcast ``liveStreamId``
  changes every session, so it is not the room key; the numeric ``user_id``/``originUserId``
  is kept as ``Streamer.sec_id`` and the kwaiId as ``Streamer.handle``.
* A user a payload names only by numeric user_id cannot be keyed as the web keys it and is
  not emitted (a different key for the same person would split them in two).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from models.entities import Record, Room, RoomSnapshot, Streamer
from spiders.payload import Page, dig, first_text

__all__ = ["principal", "room_records", "streamer_record", "streamers_of"]


def principal(page: Page, obj: Any, where: str, *paths: str) -> str | None:
    """The principalId at the first of ``paths`` (default: kwaiId, then eid)."""
    for path in paths or ("kwaiId", "eid", "userEid"):
        value = page.id(dig(obj, path), f"{where}.{path}")
        if value:
            return value
    return None


def _status(living: Any) -> str | None:
    return None if not isinstance(living, bool) else ("live" if living else "offline")


def _verified(obj: Any) -> dict[str, Any]:
    """``verified``/``verify_text`` from web ``verifiedStatus`` or app ``verified``(+detail)."""
    status = dig(obj, "verifiedStatus")
    flag = dig(status, "verified") if isinstance(status, dict) else dig(obj, "verified")
    if not isinstance(flag, bool):
        return {}
    if isinstance(status, dict):
        text = first_text(status, "description")
    else:
        text = first_text(obj, "verifiedDetail.description")
    return {"verified": flag, "verify_text": text if flag else None}


def streamer_record(page: Page, user: Any, where: str, streamer_id: str | None, **fields: Any) -> list[Record]:
    """A Streamer from a web ``author``/``userInfo`` or an app ``user``/``profile`` object.

    Emitted only when the object says something about the person (a name, an avatar, a count).
    """
    if not streamer_id or not isinstance(user, dict):
        return []
    counts = dig(user, "counts")
    about = {
        "nickname": first_text(user, "name", "user_name", "userName"),
        "avatar_url": first_text(user, "avatar", "headurl", "headUrl"),
        "bio": first_text(user, "description", "user_text"),
        **_verified(user),
        **page.count(dig(counts, "fan"), f"{where}.counts.fan", "followers"),
        **page.count(dig(counts, "follow"), f"{where}.counts.follow", "following", text=False),
        **page.count(dig(counts, "photo"), f"{where}.counts.photo", "works_count", text=False),
    }
    extra = {k: v for k, v in fields.items() if v is not None}
    if not any(value is not None for value in about.values()) and not extra.keys() - {"is_live", "room_id"}:
        return []
    about.update(extra)
    about.setdefault("handle", first_text(user, "kwaiId"))
    uid = dig(user, "originUserId", "user_id", "userId")
    return [
        page.build(
            Streamer,
            streamer_id=streamer_id,
            sec_id=page.id(uid, f"{where}.user_id"),
            fetched_at=page.fetched_at,
            **about,
        )
    ]


def room_records(
    page: Page,
    *,
    room_id: str | None,
    where: str,
    living: Any = None,
    status: str | None = None,
    title: str | None = None,
    viewers: Any = None,
    likes: Any = None,
    cover: str | None = None,
    category: str | None = None,
    started: Any = None,
    author: Any = None,
) -> list[Record]:
    """Room + RoomSnapshot (+ Streamer from ``author``) of one room object.

    Counts are read only when the room is not known to be offline: an offline page's
    watchingCount is the last session's, not a count of now.
    """
    status = status or _status(living)
    counting = status != "offline"
    viewers_now = page.count(viewers, f"{where}.watchingCount", "viewers_now") if counting else {}
    like_count = page.count(likes, f"{where}.likeCount", "likes") if counting else {}
    started_at: datetime | None = page.time(started, f"{where}.startTime") if counting and started else None
    records: list[Record] = [
        page.build(
            Room,
            room_id=room_id,
            streamer_id=room_id,
            title=title,
            status=status,
            started_at=started_at,
            **viewers_now,
            **like_count,
            category=category,
            cover_url=cover,
            fetched_at=page.fetched_at,
        )
    ]
    if status is not None or viewers_now or like_count:
        records.append(
            page.build(
                RoomSnapshot,
                room_id=room_id,
                captured_at=page.fetched_at,
                status=status,
                viewers_now=viewers_now.get("viewers_now"),
                likes=like_count.get("likes"),
            )
        )
    is_live = None if status is None else status == "live"
    records += streamer_record(page, author, f"{where}.author", room_id, is_live=is_live, room_id=room_id)
    return records


def streamers_of(page: Page, users: Iterable[tuple[Any, str]]) -> list[Record]:
    """One Streamer per distinct principalId among ``(user object, path)`` pairs, in order."""
    seen: set[str] = set()
    records: list[Record] = []
    for user, where in users:
        key = principal(page, user, where, "kwaiId", "eid", "userEid", "principalId")
        if key and key not in seen:
            seen.add(key)
            records += streamer_record(page, user, where, key)
    return records
