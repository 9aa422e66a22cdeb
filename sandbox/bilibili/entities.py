"""The things of the fake Bilibili world: areas, streamers, rooms and a room's live state."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.world import ZERO_TIME, Schedule, beijing_text


@dataclass(frozen=True, slots=True)
class Area:
    """A sub-area (分区) with its parent."""

    id: int
    name: str
    parent_id: int
    parent_name: str
    old_area_id: int


@dataclass(frozen=True, slots=True)
class Streamer:
    """A streamer (UP主/主播): the static profile every user endpoint shows."""

    uid: int
    uname: str
    face: str
    sign: str
    gender: int  # -1 secret, 0 female, 1 male (Master/info's coding)
    fans: int
    attention: int
    archive_count: int
    like_num: int
    level: int  # user level 0-6 (card.level_info.current_level)
    master_level: int  # live anchor level (Master/info exp.master_level.level)
    official_type: int  # -1 none, 0 personal, 1 organisation
    official_role: int
    official_desc: str
    medal_name: str
    vip_type: int
    room_id: int


@dataclass(frozen=True, slots=True)
class Room:
    """A live room; ``fault`` names how its get_info answer is broken, if it is."""

    room_id: int
    short_id: int
    uid: int
    title: str
    area: Area
    user_cover: str
    keyframe: str
    background: str
    description: str
    tags: str
    base_online: int
    rotation: bool
    fault: str | None
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class LiveState:
    """A room's live values at one world minute."""

    live_status: int  # 0 offline, 1 live, 2 rotation (轮播)
    online: int  # viewers now; 0 unless live
    start: int  # session start, unix seconds; 0 unless live
    popularity: int  # 人气 of the current or last session (getRoomInfoOld's "online")

    @property
    def live_time(self) -> str:
        """The session start as Bilibili's Beijing string, zero time when not live."""
        return beijing_text(self.start) if self.start else ZERO_TIME
