"""Parsers of Kuaishou app-API and H5 payloads (no live.kuaishou.com URL is known for them).

* ``profile`` (app ``userProfile``): ``{result, userProfile{ownerCount{fan, follow, photo,
  like, ...}, profile{user_id, user_name, kwaiId, headurl, user_text, verified}}}`` -> Streamer.
  ``ownerCount.like`` is not mapped: it counts the works the user liked, not likes received.
* ``search_users``: ``{result, users[{user_id, user_name, kwaiId?, headurl, user_text,
  verified}]}`` -> one Streamer per user (keyed by user_id, records.py).
* ``feed_profile``: a user's short videos ``{result, feeds[{userId, kwaiId, userEid,
  userName, headUrl, ...}]}`` -> the distinct authors as Streamers; video stats are not stored.
* ``follow_living``: ``{result, follow[{liveStreamId, caption, watchingCount, likeCount,
  coverUrl, startTime, gameInfo, user{principalId, eid, user_id, user_name, headurl, ...}}]}``,
  alone or inside a ``data`` wrapper -> Room + RoomSnapshot + Streamer per entry. The list
  carries no live flag of the room (``user.live`` is the viewer-side flag and was false in the
  sample while the stream had play URLs), so rooms get no status.
* ``recommend_photos`` (H5 ``/rest/wd/ugH5App/recommend/photos``): short videos, not live; only
  their authors map -> Streamers.
"""

from __future__ import annotations

from typing import Any

from models.entities import Record
from spiders.kuaishou.records import principal, room_records, streamer_record, streamers_of, user_id
from spiders.kuaishou.state import check_result
from spiders.payload import Page, dig, first_text

__all__ = ["feed_profile", "follow_living", "profile", "recommend_photos", "search_users"]


def _items(page: Page, value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise page.fail(f"{where}: expected a list, got {type(value).__name__}")
    return value


def profile(page: Page, payload: Any) -> list[Record]:
    """App user profile -> Streamer (followers, following, works from ownerCount)."""
    check_result(payload, url=page.url)
    user = dig(payload, "userProfile.profile")
    where = "userProfile.profile"
    if user_id(page, user, where) is None:
        raise page.fail(f"{where}: no user_id to key the streamer by")
    counts = dig(payload, "userProfile.ownerCount")
    return streamer_record(
        page, user, where,
        **page.count(dig(counts, "fan"), "userProfile.ownerCount.fan", "followers"),
        **page.count(dig(counts, "follow"), "userProfile.ownerCount.follow", "following", text=False),
        **page.count(dig(counts, "photo"), "userProfile.ownerCount.photo", "works_count", text=False),
    )  # fmt: skip


def search_users(page: Page, payload: Any) -> list[Record]:
    """App user search -> Streamers (users with a kwaiId)."""
    check_result(payload, url=page.url)
    users = _items(page, dig(payload, "users"), "users")
    return streamers_of(page, ((user, f"users.{i}") for i, user in enumerate(users)))


def feed_profile(page: Page, payload: Any) -> list[Record]:
    """App profile feed -> its authors."""
    check_result(payload, url=page.url)
    feeds = _items(page, dig(payload, "feeds"), "feeds")
    return streamers_of(page, ((feed, f"feeds.{i}") for i, feed in enumerate(feeds)))


def follow_living(page: Page, payload: Any) -> list[Record]:
    """The follow-living list -> Room + RoomSnapshot + Streamer per entry."""
    body = payload["data"] if isinstance(payload, dict) and isinstance(payload.get("data"), dict) else payload
    at = "data" if body is not payload else ""
    check_result(body, url=page.url)
    records: list[Record] = []
    prefix = f"{at}.follow" if at else "follow"
    for i, item in enumerate(_items(page, dig(body, "follow"), prefix)):
        where = f"{prefix}.{i}"
        user = dig(item, "user")
        principal_id = principal(page, user, f"{where}.user", "principalId", "kwaiId", "eid")
        if principal_id is None and user_id(page, user, f"{where}.user") is None:
            raise page.fail(f"{where}.user: no user_id and no principalId")
        records += room_records(
            page,
            user=user,
            user_where=f"{where}.user",
            principal_id=principal_id,
            where=where,
            title=first_text(item, "caption"),
            viewers=dig(item, "watchingCount"),
            likes=dig(item, "likeCount"),
            cover=first_text(item, "coverUrl", "rtCoverUrl"),
            category=first_text(item, "gameInfo.name"),
            started=dig(item, "startTime"),
        )
    return records


def recommend_photos(page: Page, payload: Any) -> list[Record]:
    """H5 recommended short videos -> their authors (nothing live to map)."""
    check_result(payload, url=page.url)
    users: list[tuple[Any, str]] = []
    data = dig(payload, "data")
    for section in ("hotRecommend", "userRecommend", "finishPlayingRecommend", "secondShareRecommend"):
        feeds = _items(page, dig(data, f"{section}.feeds"), f"data.{section}.feeds")
        users += [(feed, f"data.{section}.feeds.{i}") for i, feed in enumerate(feeds)]
    return streamers_of(page, users)
