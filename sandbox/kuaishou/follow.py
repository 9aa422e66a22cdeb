"""``GET /live.kuaishou.com/live_api/follow/living``: the logged-in viewer's followed streamers who
are live, in the shape of the real answer kept in tests/fixtures (2021-07):
``{"data": {"result": 1, "host-name", "follow": [{liveStreamId, caption, watchingCount, likeCount,
playUrls[], hlsPlayUrl, coverUrl, rtCoverUrl, gameInfo{gameId, name, category, ...}, startTime,
user{eid, principalId, user_id, user_name, headurl, user_sex, user_text, verified, following,
live, ...}}, ...]}}``.

Public code calls it with the visitor's cookies (``did`` and, logged in, ``userId``). Here a viewer
is its ``userId`` cookie: it follows a fixed share of the world's users (a hash of the two ids), and
the answer lists those live now. Without ``did``: the verification answer, as every live_api. Without
``userId`` (not logged in): an empty list (an assumption: no public capture shows the site's answer
to a visitor that is not logged in).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.kuaishou.world import KsRoom, LiveNow, display_count
from sandbox.world import text_key, unit

#: Share of the world's users one viewer follows.
FOLLOWED_SHARE = 0.25
HOST_NAME = "bjrz-rs2123.lf"


def follows(seed: int, viewer: str, room: KsRoom) -> bool:
    """Whether ``viewer`` (a ``userId`` cookie) follows ``room``'s owner."""
    return unit(seed, 0xF0110, text_key(viewer), room.user.user_id) < FOLLOWED_SHARE


def item(room: KsRoom, st: LiveNow) -> dict[str, Any]:
    """One entry of ``follow``."""
    u, stream = room.user, st.live_stream_id
    cover = f"https://tx2.a.yximgs.com/uhead/AB/live/{stream}.jpg"
    return {
        "watchingCount": display_count(st.watching),
        "rtCoverUrl": f"https://live2.static.yximgs.com/live/game/screenshot/{stream}~{st.start_ms}~1",
        "playUrls": [{"freeTrafficCdn": False, "pushCdn": "OriginMainApp", "cdnIp": None, "ipValidTime": None,
                      "cdn": "Tencent", "url": f"https://tx-origin.pull.yximgs.com/gifshow/{stream}_ma1500.flv"}],
        "hlsPlayUrl": f"https://bd-origin.hlspull.yximgs.com/gifshow/{stream}_ma1500.m3u8",
        "gameInfo": {"gameId": int(room.category[0]), "coverUrl": "", "name": room.category[1], "type": 0,
                     "category": room.category[2]},
        "caption": room.caption,
        "likeCount": display_count(st.likes),
        "privateLive": False,
        "coverUrl": cover,
        "liveStreamId": stream,
        "startTime": st.start_ms,
        "user": {"eid": u.eid, "user_name": u.name, "verified": u.verified, "headurl": u.avatar,
                 "principalId": u.principal_id, "user_sex": u.sex, "user_id": u.user_id, "following": True,
                 "user_text": u.description, "live": True},
        "landscape": False,
    }


def living(seed: int, viewer: str | None, rooms: Iterable[tuple[KsRoom, LiveNow]]) -> dict[str, Any]:
    """The answer for ``viewer`` given the world's rooms and their state now."""
    follow = [] if not viewer else [item(room, st) for room, st in rooms if st.living and follows(seed, viewer, room)]
    return {"data": {"result": 1, "host-name": HOST_NAME, "follow": follow}}
