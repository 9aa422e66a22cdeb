"""Pure parsers of Bilibili Live API payloads: response bytes in, livefleet records out.

``parse(body, url=, fetched_at=, kind=)`` checks the input (``load_json``), then the
envelope's code (blocks, gone entities, errors: ``detect.check_envelope``), then
hands ``data`` to the parser of the endpoint's kind: from the argument, else the
URL path, else the payload's shape (``detect.py``).

Mapping decisions (Bilibili -> SCHEMA.md):
* ``live_status`` 0/1/2 -> offline/live/replay (2 = 轮播, a rotation of recordings);
  another value -> unknown. ``Streamer.is_live`` is true only for 1.
* ``online`` is viewers_now, except in getRoomInfoOld where it is 人气 (popularity,
  refreshed at the last broadcast) -> ``Room.popularity``. ``watched_show.num`` (看过)
  -> viewers_total. The recommendation list's ``followers`` (always 0, undocumented)
  is ignored.
* ``short_id`` non-zero -> ``Room.web_rid`` (the ID in the public URL); 0 -> None.
* Verified: ``official_verify``/``Official``/``verify`` ``type`` is -1 none, 0 person,
  1 organisation, so ``type >= 0``; getInfoByRoom's ``official_info`` has only ``role``
  (0 none), so ``role > 0``; get_info has only ``new_pendants.badge``, whose name is
  ``v_person``/``v_company`` when verified and empty when not.
* Lists carry no ``live_status``: their rooms get no status rather than a guessed one.
* A Streamer is emitted only when the payload says something about the person (name,
  avatar, followers, verification, level), never for a bare uid.
* Snapshots (``captured_at = fetched_at``) come from payloads showing the room as it
  is now with a count: get_info, getInfoByRoom, getRoomBaseInfo, get_status_info_by_uids,
  the area and recommendation lists. Not from room_init / getRoomPlayInfo (status
  only) nor getRoomInfoOld (人气 is no current count).
* getOnlineGoldRank lists *viewers* (uid, name, face, medals): personal data, never
  stored, never read. Only ``onlineNum`` (在线观众数量) is used, as a snapshot's
  viewers_now, and only when the URL's ``roomId`` says which room it counts.
* room/v1/Room/playUrl carries stream URLs only: recognised, gives ``[]``; so does
  x/web-interface/nav (the WBI keys, read by ``wbi.keys_from_nav``; logged in, the rest of
  it is the viewer's own profile: never read).
* x/space/wbi/acc/info: the space profile (``name``, ``face``, ``sign``, ``official``) and its
  ``live_room`` (``roomStatus`` 0 = no room: no Room; ``liveStatus`` 0/1, ``roundStatus`` 1 =
  replay; ``watched_show.num`` -> viewers_total). Its ``level`` is the user level (0-6), not the
  anchor level of ``Streamer.level``: not mapped.
* x/relation/stat: ``follower`` -> followers, ``following`` -> following.
* One reader (``_room``) takes a live-room object under every spelling the endpoints use.
* ``room_list``: any other answer carrying lists of live-room objects (``detect.room_lists``:
  lists, within three levels of ``data``, whose items all name a room id and an owner uid), such
  as the followed streamers' rooms (``xlive/web-ucenter/user/following``,
  ``v1/xfetter/GetWebList``, logged in): each distinct room once, through ``_room``. These lists
  are the *streamers'* rooms; the logged-in viewer's own data is not in them and not read.
  ``live_time`` is a start time in some answers and a duration in others (GetWebList: 17313 with
  ``liveTime`` 1735617438): the first candidate that is a plausible start wins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from models.entities import Fetched, PlatformId, Record, Room, RoomSnapshot, Streamer, Text
from models.errors import GoneError, UnknownPayloadError
from spiders.bilibili.detect import KINDS, check_envelope, detect, kind_from_url, room_lists
from spiders.payload import Page, dig, first_text, load_json

__all__ = ["PARSERS", "Area", "detect", "kind_from_url", "parse"]

PLATFORM = "bilibili"
_STATUS = {0: "offline", 1: "live", 2: "replay"}
# A start time before 2005 (before Bilibili existed) is no start time: one source documents
# get_status_info_by_uids' live_time as a duration.
_EARLIEST_START = datetime.fromisoformat("2005-01-01T00:00:00+00:00")


class Area(Fetched):
    """A live area (分区) from room/v1/Area/getList. Not stored (no collection): the
    spider turns each sub-area into area room-list requests."""

    kind: ClassVar[str] = "area"
    collection: ClassVar[str] = ""
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "area_id")

    area_id: PlatformId
    name: Text | None = None
    parent_id: PlatformId | None = None
    parent_name: Text | None = None
    image_url: str | None = None


def _status(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return _STATUS.get(int(value), "unknown")
    except (TypeError, ValueError):
        return "unknown"


def _started(page: Page, value: Any, where: str) -> datetime | None:
    moment = page.time(value, where)
    return moment if moment is not None and moment >= _EARLIEST_START else None


def _official(obj: Any) -> dict[str, Any]:
    """``verified``/``verify_text`` from a verify object (rule in the module docstring)."""
    if not isinstance(obj, dict):
        return {}
    if isinstance(obj.get("type"), int):
        verified = obj["type"] >= 0
    elif isinstance(obj.get("role"), int):
        verified = obj["role"] > 0
    else:
        return {}
    return {"verified": verified, "verify_text": first_text(obj, "title", "desc") if verified else None}


def _badge(obj: Any) -> dict[str, Any]:
    """get_info's ``new_pendants.badge``: ``v_person``/``v_company`` mean verified."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return {}
    verified = obj["name"].startswith("v_")
    return {"verified": verified, "verify_text": first_text(obj, "desc") if verified else None}


def _live_status(d: Any) -> str | None:
    """The room's status from ``live_status`` / ``liveStatus``; a space ``live_room`` that is
    off the air but rotating recordings (``roundStatus`` 1) is a replay."""
    status = _status(dig(d, "live_status", "liveStatus"))
    if status == "offline" and dig(d, "roundStatus") == 1:
        return "replay"
    return status


def _room(
    page: Page,
    d: Any,
    where: str,
    *,
    snapshot: bool = True,
    person: tuple[Any, str] | None = None,
    streamer_id: str | None = None,
    online_is: str = "viewers_now",
) -> list[Record]:
    """Room (+ RoomSnapshot, + Streamer) from one live-room object, whichever answer carries it.

    Each field is read by meaning under every spelling Bilibili uses for it: ``room_id`` /
    ``roomid``; ``uid`` / ``mid``; ``live_status`` / ``liveStatus`` (+ ``roundStatus``);
    ``live_time`` / ``live_start_time``; ``area_v2_name`` / ``area_name``;
    ``area_v2_parent_name`` / ``parent_area_name``; ``user_cover`` / ``cover_from_user`` /
    ``cover``; ``online``; ``watched_show.num``; ``short_id``; ``title``; ``description``.
    ``streamer_id`` is the owner when the object does not name one (a space ``live_room``,
    getRoomInfoOld). ``online_is`` says what ``online`` counts: ``viewers_now``, or
    ``popularity`` (getRoomInfoOld's 人气, no current count: no snapshot from it).
    ``person`` is ``(object, its path)`` when the owner's details are not in ``d`` (getInfoByRoom).
    """
    room_id = page.id(dig(d, "room_id", "roomid"), f"{where}.room_id")
    owner = page.id(dig(d, "uid", "mid"), f"{where}.uid") or streamer_id
    status = _live_status(d)
    if online_is == "viewers_now":
        viewers = page.count(dig(d, "online"), f"{where}.online", "viewers_now")
        popularity: dict[str, Any] = {}
    else:
        viewers = {}
        popularity = page.count(dig(d, "online"), f"{where}.online", online_is, text=False)
    watched = page.count(dig(d, "watched_show.num"), f"{where}.watched_show.num", "viewers_total")
    records: list[Record] = [
        page.build(
            Room,
            room_id=room_id,
            streamer_id=owner,
            web_rid=page.id(dig(d, "short_id"), f"{where}.short_id"),
            title=first_text(d, "title"),
            status=status,
            started_at=_start_of(page, d, where),
            **viewers,
            **watched,
            **popularity,
            category=first_text(d, "area_v2_name", "area_name_v2", "area_name"),
            parent_category=first_text(d, "area_v2_parent_name", "parent_area_name"),
            cover_url=first_text(d, "user_cover", "cover_from_user", "cover", "room_cover"),
            description=first_text(d, "description"),
            fetched_at=page.fetched_at,
        )
    ]
    if snapshot and (status is not None or viewers or watched):  # a snapshot must observe something
        started = records[0].started_at
        # Bilibili has no per-broadcast id: a live room's session is its room id and live start.
        session = f"{room_id}:{int(started.timestamp())}" if status == "live" and started and room_id else None
        records.append(
            page.build(
                RoomSnapshot,
                room_id=room_id,
                captured_at=page.fetched_at,
                status=status,
                viewers_now=viewers.get("viewers_now"),
                viewers_total=watched.get("viewers_total"),
                session_id=session,
            )
        )
    # The owner's details: in the room object itself, or beside it (getInfoByRoom's anchor_info).
    who, at = (d, where) if person is None else person
    followers_at = f"{at}.attention" if person is None else f"{at}.relation_info.attention"
    about = {
        "nickname": first_text(who, "uname", "base_info.uname"),
        "avatar_url": first_text(who, "face", "base_info.face"),
        **page.count(dig(who, "attention", "relation_info.attention"), followers_at, "followers"),
        **_official(dig(who, "verify", "base_info.official_info")),
        **_badge(dig(who, "new_pendants.badge")),
        **page.count(dig(who, "live_info.level"), f"{at}.live_info.level", "level", text=False),
    }
    if owner and any(value is not None for value in about.values()):
        is_live = None if status is None else status == "live"
        fields = {"streamer_id": owner, "room_id": room_id, "is_live": is_live, **about}
        records.append(page.build(Streamer, **fields, fetched_at=page.fetched_at))
    return records


def _start_of(page: Page, d: Any, where: str) -> datetime | None:
    """The live start: the first of ``live_time``, ``live_start_time``, ``liveTime`` that is one."""
    for key in ("live_time", "live_start_time", "liveTime"):
        value = dig(d, key)
        if value is not None and (started := _started(page, value, f"{where}.{key}")) is not None:
            return started
    return None


def _streamer(page: Page, info: Any, where: str, **fields: Any) -> list[Record]:
    """A Streamer from a profile object (``info``/``card``), plus fields found elsewhere."""
    return [
        page.build(
            Streamer,
            streamer_id=page.id(dig(info, "uid", "mid"), f"{where}.uid"),
            nickname=first_text(info, "uname", "name"),
            avatar_url=first_text(info, "face"),
            **_official(dig(info, "Official", "official_verify", "official")),
            **fields,
            fetched_at=page.fetched_at,
        )
    ]


def _items(page: Page, data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise page.fail(f"{where}: expected a list, got {type(data).__name__}")
    return data


def _entries(page: Page, mapping: Any, where: str) -> list[tuple[str, Any]]:
    """``(path, value)`` of a JSON object keyed by ID; PHP backends send [] for an empty one."""
    if mapping is None or mapping == []:
        return []
    if not isinstance(mapping, dict):
        raise page.fail(f"{where}: expected an object, got {type(mapping).__name__}")
    return [(f"{where}.{key}", value) for key, value in mapping.items()]


# --- one parser per endpoint kind: (page, data) -> records -------------------------------------


def _room_info(page: Page, d: Any) -> list[Record]:
    return _room(page, d, "data")


def _room_init(page: Page, d: Any) -> list[Record]:
    # Also getRoomPlayInfo, whose first keys are room_init's: status, IDs and start time only.
    return _room(page, d, "data", snapshot=False)


def _room_info_old(page: Page, d: Any) -> list[Record]:
    if dig(d, "roomStatus") == 0:
        raise GoneError("user has no live room (roomStatus 0)", platform=PLATFORM, url=page.url)
    # `roomid` is documented as 短号, yet the docs' own example returns a long ID (5441, next to
    # 5440, the long ID of short ID 1): kept as room_id. The owner is the request's own `mid`.
    owner = page.id(page.query("mid"), "url.mid")
    return _room(page, d, "data", snapshot=False, streamer_id=owner, online_is="popularity")


def _master_info(page: Page, d: Any) -> list[Record]:
    return _streamer(
        page, dig(d, "info"), "data.info",
        room_id=page.id(dig(d, "room_id"), "data.room_id"),
        **page.count(dig(d, "follower_num"), "data.follower_num", "followers"),
        **page.count(dig(d, "exp.master_level.level"), "data.exp.master_level.level", "level", text=False),
    )  # fmt: skip


def _anchor_in_room(page: Page, d: Any) -> list[Record]:
    # No room ID in the payload, and the request's `roomid` may be a short ID: none is set.
    level = page.count(dig(d, "level.master_level.level"), "data.level.master_level", "level", text=False)
    return _streamer(page, dig(d, "info"), "data.info", **level)


def _user_card(page: Page, d: Any) -> list[Record]:
    card = dig(d, "card")
    return _streamer(
        page, card, "data.card",
        bio=first_text(card, "sign"),
        **page.count(dig(d, "follower", "card.fans"), "data.follower", "followers"),
        **page.count(dig(card, "attention"), "data.card.attention", "following", text=False),
        **page.count(dig(d, "like_num"), "data.like_num", "likes_total"),
        **page.count(dig(d, "archive_count"), "data.archive_count", "works_count", text=False),
    )  # fmt: skip


def _info_by_room(page: Page, d: Any) -> list[Record]:
    room_info = dict(d["room_info"]) if isinstance(dig(d, "room_info"), dict) else {}
    # The web variant puts watched_show beside room_info rather than in it.
    room_info.setdefault("watched_show", dig(d, "watched_show"))
    return _room(page, room_info, "data.room_info", person=(dig(d, "anchor_info"), "data.anchor_info"))


def _area_room_list(page: Page, d: Any) -> list[Record]:
    items = _items(page, dig(d, "list", default=d), "data")
    return [record for i, item in enumerate(items) for record in _room(page, item, f"data.{i}")]


def _rec_list(page: Page, d: Any) -> list[Record]:
    where = "data.recommend_room_list"
    items = _items(page, dig(d, "recommend_room_list"), where)
    return [record for i, item in enumerate(items) for record in _room(page, item, f"{where}.{i}")]


def _room_list(page: Page, d: Any) -> list[Record]:
    lists = room_lists(d)
    if not lists:
        raise page.fail("data: no list of live-room objects (room_id/roomid with uid/mid)")
    seen: set[str | None] = set()
    records: list[Record] = []
    for where, items in lists:
        for i, item in enumerate(items):
            key = page.id(dig(item, "room_id", "roomid"), f"{where}.{i}.room_id")
            if key not in seen:  # GetWebList sends each room twice (rooms and list)
                seen.add(key)
                records += _room(page, item, f"{where}.{i}")
    return records


def _status_by_uids(page: Page, d: Any) -> list[Record]:
    return [record for where, room in _entries(page, d, "data") for record in _room(page, room, where)]


def _room_base_info(page: Page, d: Any) -> list[Record]:
    entries = _entries(page, dig(d, "by_room_ids"), "data.by_room_ids")
    entries += _entries(page, dig(d, "by_uids"), "data.by_uids")
    seen: set[Any] = set()
    records: list[Record] = []
    for where, room in entries:  # a room asked for both by room ID and by uid comes twice
        if dig(room, "room_id") not in seen:
            seen.add(dig(room, "room_id"))
            records += _room(page, room, where)
    return records


def _gold_rank(page: Page, d: Any) -> list[Record]:
    room_id = page.id(page.query("roomId", "room_id"), "url.roomId")
    online = page.count(dig(d, "onlineNum"), "data.onlineNum", "viewers_now", text=False)
    if room_id is None or not online:
        return []
    return [page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at, **online)]


def _acc_info(page: Page, d: Any) -> list[Record]:
    # The space profile. `level` is the *user* level (0-6), not the anchor level Streamer.level
    # holds: not mapped. `is_followed`/`coins` are about the viewer: never read.
    uid = page.id(dig(d, "mid"), "data.mid")
    room = dig(d, "live_room")
    has_room = isinstance(room, dict) and dig(room, "roomStatus") != 0 and dig(room, "roomid") is not None
    records = _room(page, room, "data.live_room", streamer_id=uid) if has_room else []
    rooms = [r for r in records if isinstance(r, Room)]
    status = rooms[0].status if rooms else None
    streamer = _streamer(
        page, d, "data",
        bio=first_text(d, "sign"),
        room_id=rooms[0].room_id if rooms else None,
        is_live=None if status is None else status == "live",
    )  # fmt: skip
    return records + streamer


def _relation_stat(page: Page, d: Any) -> list[Record]:
    # `whisper`/`black` are the viewer's own lists (0 unless looking at oneself): never read.
    return [
        page.build(
            Streamer,
            streamer_id=page.id(dig(d, "mid"), "data.mid"),
            **page.count(dig(d, "follower"), "data.follower", "followers"),
            **page.count(dig(d, "following"), "data.following", "following", text=False),
            fetched_at=page.fetched_at,
        )
    ]


def _area_list(page: Page, d: Any) -> list[Record]:
    # Sub-areas only: each names its parent, and a room list is asked for per sub-area.
    records: list[Record] = []
    for i, parent in enumerate(_items(page, d, "data")):
        for j, area in enumerate(_items(page, dig(parent, "list", default=[]), f"data.{i}.list")):
            where = f"data.{i}.list.{j}"
            records.append(
                page.build(
                    Area,
                    area_id=page.id(dig(area, "id"), f"{where}.id"),
                    name=first_text(area, "name"),
                    parent_id=page.id(dig(area, "parent_id") or dig(parent, "id"), f"{where}.parent_id"),
                    parent_name=first_text(area, "parent_name") or first_text(parent, "name"),
                    image_url=first_text(area, "pic"),
                    fetched_at=page.fetched_at,
                )
            )
    return records


_PARSE: dict[str, Callable[[Page, Any], list[Record]]] = {
    "room_info": _room_info,
    "room_init": _room_init,
    "room_info_old": _room_info_old,
    "master_info": _master_info,
    "user_card": _user_card,
    "info_by_room": _info_by_room,
    "area_room_list": _area_room_list,
    "area_list": _area_list,
    "status_by_uids": _status_by_uids,
    "room_base_info": _room_base_info,
    "rec_list": _rec_list,
    "anchor_in_room": _anchor_in_room,
    "play_info": _room_init,
    "gold_rank": _gold_rank,
    "play_url": lambda page, d: [],
    "acc_info": _acc_info,
    "relation_stat": _relation_stat,
    # The WBI keys (spiders/bilibili/wbi.py reads them); the rest, logged in, is the viewer's own.
    "nav": lambda page, d: [],
    "room_list": _room_list,
}
if set(_PARSE) != set(KINDS):  # pragma: no cover - a guard for whoever adds a kind
    raise RuntimeError("detect.KINDS and pages._PARSE must name the same kinds")


def parse(
    body: bytes, *, url: str | None = None, fetched_at: datetime, kind: str | None = None
) -> list[Record]:
    """Parse one Bilibili API response into records.

    The kind comes from ``kind``, else from ``url``'s path, else from the payload's
    shape; none of them, or an unknown ``kind`` -> ``UnknownPayloadError``. Raises
    only ``PageError`` subclasses (module docstring of ``detect`` for which).
    """
    if kind is not None and kind not in _PARSE:
        raise UnknownPayloadError(f"no Bilibili parser of kind {kind!r}", platform=PLATFORM, url=url)
    payload = load_json(body, platform=PLATFORM, url=url)
    # The kind is known before the envelope is read: some codes mean data for one kind (nav's -101).
    kind = kind or kind_from_url(url) or detect(payload)
    data = check_envelope(payload, kind, url)
    if kind is None:
        raise UnknownPayloadError("not a known Bilibili payload", platform=PLATFORM, url=url)
    return _PARSE[kind](Page(PLATFORM, url, fetched_at), data)


#: Kind name -> its parser ``(body, *, url=None, fetched_at) -> list[Record]``.
PARSERS: dict[str, Callable[..., list[Record]]] = {
    kind: functools.partial(parse, kind=kind) for kind in KINDS
}
