"""Record builders shared by the Kuaishou parsers: the identity rule, rooms, streamers, leads.

The identity rule (one person, one streamer document, whatever payload described them):

Kuaishou names a user three ways. The numeric user id (``originUserId`` on the live site's
``author``/``userInfo``, ``user_id`` in the app API and the follow list, ``userId`` in app and
H5 feeds) is the account's primary key and never changes. The ``eid`` (``3x...``: ``eid``,
``userEid``, and the ``user_id``/``author.id`` of www.kuaishou.com's GraphQL) is a fixed
public encoding of it. The ``principalId`` of ``live.kuaishou.com/u/{principalId}`` is the
user's kwaiId when they set one, else the eid: a kwaiId can be set and changed, so the same
person can show two principalIds over time, and a principalId alone does not say whether it is
a kwaiId or an eid.

* ``Streamer.streamer_id`` = the numeric user id, as a string. It is the only ID that the
  live site's room answers (page, livedetail, userinfo), the follow list and every app/H5 answer
  carry alike; the eid is missing from the live site when a kwaiId is set, and the principalId
  is not stable. ``sec_id`` = the eid where the payload names it as such; ``handle`` = the
  kwaiId where the payload names it as such (``kwaiId``, www GraphQL ``userDefineId``). A
  principalId is never stored as a handle: it may be an eid.
* ``Room.room_id`` = ``Room.streamer_id`` = the same numeric user id (a Kuaishou user has one
  room). ``Room.web_rid`` = the principalId of its public URL, as the payload gave it (it may
  change; the key does not). ``liveStreamId`` changes every broadcast and is not a room key.
* A payload that names a person only by principalId or eid (the category/board lists, the
  ``m_graphql`` recommendations, www.kuaishou.com ``visionProfile``) has nothing stable to key
  them by: it yields no Streamer, Room or RoomSnapshot, only a ``Lead`` (not stored) that the
  spider follows to the live site's answers, which carry the user id. Keying them by a
  principalId instead would split one person into two documents again.
* A numeric-looking value is read as the user id only at a user-id path and only when it is all
  digits: www GraphQL's ``profile.user_id`` holds the eid, not the number.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from models.entities import Fetched, PlatformId, Record, Room, RoomSnapshot, Streamer
from spiders.payload import Page, dig, first_text

__all__ = ["Lead", "eid_of", "lead", "principal", "room_records", "streamer_record", "streamers_of", "user_id"]

#: Where payloads put the numeric user id, by meaning: web author/userInfo, app and follow list, feeds.
USER_ID_PATHS = ("originUserId", "user_id", "userId")
#: Where payloads name the eid as such.
EID_PATHS = ("eid", "userEid")
#: Where payloads name the kwaiId as such.
KWAI_ID_PATHS = ("kwaiId", "userDefineId")


class Lead(Fetched):
    """A person (and their room) a payload names only by principalId/eid. Not stored: the
    spider follows it to ``livedetail``/``userinfo``, whose answers carry the user id."""

    kind: ClassVar[str] = "lead"
    collection: ClassVar[str] = ""
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "principal_id")

    #: The ID of ``live.kuaishou.com/u/{principalId}`` (kwaiId or eid).
    principal_id: PlatformId
    #: Whether the payload said the room is broadcasting (``None``: it did not say).
    is_live: bool | None = None


def user_id(page: Page, obj: Any, where: str) -> str | None:
    """The numeric user id of a user object: the first all-digit value at a user-id path."""
    for path in USER_ID_PATHS:
        value = page.id(dig(obj, path), f"{where}.{path}")
        if value and value.isdigit():
            return value
    return None


def eid_of(page: Page, obj: Any, where: str) -> str | None:
    """The eid where the object names it: ``eid``/``userEid``, or a non-numeric ``user_id`` (www GraphQL)."""
    for path in EID_PATHS:
        value = page.id(dig(obj, path), f"{where}.{path}")
        if value:
            return value
    value = page.id(dig(obj, "user_id"), f"{where}.user_id")
    return value if value and not value.isdigit() else None


def principal(page: Page, obj: Any, where: str, *paths: str) -> str | None:
    """The principalId at the first of ``paths`` (default: principalId, kwaiId, then eid)."""
    for path in paths or ("principalId", "kwaiId", "eid", "userEid"):
        value = page.id(dig(obj, path), f"{where}.{path}")
        if value:
            return value
    return None


def lead(page: Page, principal_id: str | None, *, living: Any = None) -> list[Record]:
    """A ``Lead`` to ``principal_id`` (nothing without one)."""
    if not principal_id:
        return []
    is_live = living if isinstance(living, bool) else None
    return [page.build(Lead, principal_id=principal_id, is_live=is_live, fetched_at=page.fetched_at)]


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


def streamer_record(page: Page, user: Any, where: str, **fields: Any) -> list[Record]:
    """A Streamer from a web ``author``/``userInfo``, an app ``user``/``profile`` or a feed object.

    Keyed by the numeric user id (nothing without one: see the rule above). Emitted only when
    the object says something about the person (a name, an avatar, a count).
    """
    streamer_id = user_id(page, user, where) if isinstance(user, dict) else None
    if not streamer_id:
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
    return [
        page.build(
            Streamer,
            streamer_id=streamer_id,
            sec_id=eid_of(page, user, where),
            handle=first_text(user, *KWAI_ID_PATHS),
            fetched_at=page.fetched_at,
            **about,
        )
    ]


def room_records(
    page: Page,
    *,
    user: Any,
    user_where: str,
    principal_id: str | None,
    where: str,
    living: Any = None,
    status: str | None = None,
    title: str | None = None,
    viewers: Any = None,
    likes: Any = None,
    cover: str | None = None,
    category: str | None = None,
    started: Any = None,
    session: Any = None,
) -> list[Record]:
    """Room + RoomSnapshot + Streamer of one room object whose owner is ``user``.

    The room is keyed by the owner's numeric user id; without one the payload gives only a
    ``Lead`` to ``principal_id``. Counts are read only when the room is not known to be offline:
    an offline page's watchingCount is the last session's, not a count of now. ``session`` is the
    liveStreamId (per broadcast): the snapshot's ``session_id`` while the room is live.
    """
    room_id = user_id(page, user, user_where)
    if room_id is None:
        return lead(page, principal_id, living=living if status is None else status == "live")
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
            web_rid=principal_id,
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
                session_id=page.id(session, f"{where}.liveStream.id") if status == "live" else None,
            )
        )
    is_live = None if status is None else status == "live"
    records += streamer_record(page, user, user_where, is_live=is_live, room_id=room_id)
    return records


def streamers_of(page: Page, users: Iterable[tuple[Any, str]]) -> list[Record]:
    """One Streamer per distinct user id among ``(user object, path)`` pairs, in order."""
    seen: set[str] = set()
    records: list[Record] = []
    for user, where in users:
        key = user_id(page, user, where)
        if key and key not in seen:
            seen.add(key)
            records += streamer_record(page, user, where)
    return records
