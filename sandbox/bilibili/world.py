"""The fake Bilibili Live world: streamers, their rooms, and each room's live state over time.

Built once from ``(seed, size)``; live values are computed from the world minute, so the
world "evolves" without any background task and is identical for equal seeds.

Bilibili's rooms sell nothing here: the truth's ``sessions`` (``sandbox/sessions.py``) have
no shop, and a session is named ``<room_id>:<live_time as epoch seconds>`` (Bilibili has no
per-broadcast id).
"""

from __future__ import annotations

import random
from typing import Any

from sandbox.bilibili import data as data
from sandbox.bilibili.entities import Area, LiveState, Room, Streamer
from sandbox.sessions import Seller, Session
from sandbox.world import (
    DEFAULT_START,
    Schedule,
    beijing_text,
    hex_digest,
    mix,
    text_key,
    unit,
    viewers,
)

__all__ = ["FAULT_KINDS", "Area", "BiliWorld", "LiveState", "Room", "Streamer"]

#: Fault kinds a room's ``get_info`` answer can have (see ``BilibiliPlatform``).
FAULT_KINDS = ("malformed_json", "html_page", "missing_field")


class BiliWorld:
    """All Bilibili streamers and rooms of one seed, with lookups and live state."""

    def __init__(
        self, seed: int, n_streamers: int, faults: bool = True, start: float = DEFAULT_START
    ) -> None:
        if n_streamers < 1:
            raise ValueError("the world needs at least one streamer")
        self.seed = seed
        self.areas: list[Area] = [
            Area(sub_id, sub_name, pid, pname, old)
            for pid, pname, old, _w, subs in data.AREAS
            for sub_id, sub_name in subs
        ]
        self.area_by_id = {a.id: a for a in self.areas}
        self.streamers: list[Streamer] = []
        self.rooms: list[Room] = []
        self._generate(n_streamers, faults, int(start // 60))
        self.streamer_by_uid = {s.uid: s for s in self.streamers}
        self.room_by_uid = {r.uid: r for r in self.rooms}
        self.room_index: dict[int, Room] = {r.room_id: r for r in self.rooms}
        self.room_index.update({r.short_id: r for r in self.rooms if r.short_id})
        self.faults: dict[str, list[int]] = {kind: [] for kind in FAULT_KINDS}
        for room in self.rooms:
            if room.fault:
                self.faults[room.fault].append(room.room_id)
        self._state_cache: dict[int, tuple[int, LiveState]] = {}
        self._list_cache: dict[tuple[int, int], tuple[int, list[tuple[Room, LiveState]]]] = {}
        self._by_area: dict[int, list[Room]] = {}
        self._by_parent: dict[int, list[Room]] = {}
        start_minute = int(start // 60)
        self._sellers = {r.room_id: self._seller(r, start_minute) for r in self.rooms}
        for room in self.rooms:
            self._by_area.setdefault(room.area.id, []).append(room)
            self._by_parent.setdefault(room.area.parent_id, []).append(room)

    # -- generation ------------------------------------------------------------------------
    def _generate(self, n: int, faults: bool, start_minute: int) -> None:
        rng = random.Random(mix(self.seed, text_key("bilibili-world")))
        uids = rng.sample(range(1_000_000, 3_600_000_000), n)
        room_ids = rng.sample(range(100_000, 32_000_000), n)
        short_pool = iter(rng.sample(range(1, 100_000), min(n, 99_999)))
        fault_of = self._pick_faults(rng, n) if faults else {}
        names: set[str] = set()
        for i in range(n):
            base_online = int(10 ** rng.uniform(1.3, 5.3))
            streamer = self._streamer(rng, uids[i], room_ids[i], self._name(rng, names), base_online)
            short_id = next(short_pool, 0) if rng.random() < 0.12 else 0
            self.streamers.append(streamer)
            self.rooms.append(self._room(rng, streamer, short_id, base_online, fault_of.get(i), start_minute))

    def _img(self, folder: str, *parts: int, ext: str = "jpg") -> str:
        return f"https://i0.hdslb.com/bfs/{folder}/{hex_digest(40, self.seed, *parts)}.{ext}"

    def _streamer(self, rng: random.Random, uid: int, room_id: int, uname: str, base_online: int) -> Streamer:
        official_type = rng.choices((-1, 0, 1), weights=(88, 9, 3))[0]
        if official_type == 0:
            official_desc, role = rng.choice(data.OFFICIAL_TITLES), rng.choice((1, 2, 7))
        elif official_type == 1:
            official_desc, role = uname + rng.choice(data.ORG_TITLES), rng.choice((3, 4, 5))
        else:
            official_desc, role = "", 0
        # Followers grow with audience, with a long tail either way.
        fans = int(base_online * rng.uniform(5, 60)) + rng.randint(0, 5000)
        return Streamer(
            uid=uid,
            uname=uname,
            face=self._img("face", uid),
            sign=rng.choice(data.SIGNS),
            gender=rng.choice((-1, 0, 1)),
            fans=fans,
            attention=rng.randint(0, 1500),
            archive_count=rng.randint(0, 2500),
            like_num=int(fans * rng.uniform(0.5, 12)),
            level=rng.choices((3, 4, 5, 6), (1, 3, 5, 4))[0],
            master_level=rng.randint(1, 40),
            official_type=official_type,
            official_role=role,
            official_desc=official_desc,
            medal_name=rng.choice(data.MEDAL_WORDS)[: rng.randint(1, 2)] + uname[0],
            vip_type=rng.choices((0, 1, 2), (5, 2, 3))[0],
            room_id=room_id,
        )

    def _room(
        self,
        rng: random.Random,
        s: Streamer,
        short_id: int,
        base_online: int,
        fault: str | None,
        start_minute: int,
    ) -> Room:
        parent = rng.choices(data.AREAS, weights=[p[3] for p in data.AREAS])[0]
        area = self.area_by_id[rng.choice(parent[4])[0]]
        title = rng.choice(data.TITLE_TEMPLATES).format(area=area.name, n=rng.randint(2, 999), name=s.uname)
        # Fault rooms stay live around the clock, so every crawl of their area meets them.
        always = start_minute - 30 - mix(self.seed, s.room_id) % 300 if fault else None
        stamp = rng.randint(1010000, 12282359)
        return Room(
            room_id=s.room_id,
            short_id=short_id,
            uid=s.uid,
            title=title,
            area=area,
            user_cover=self._img("live/new_room_cover", s.room_id, 1),
            keyframe=f"https://i0.hdslb.com/bfs/live-key-frame/keyframe{stamp:08d}{s.room_id:012d}"
            f"{hex_digest(6, self.seed, s.room_id, 2)}.jpg",
            background="" if rng.random() < 0.6 else self._img("live", s.room_id, 3),
            description=rng.choice(data.DESCRIPTIONS),
            tags=rng.choice(data.TAGS),
            base_online=base_online,
            rotation=fault is None and rng.random() < 0.08,
            fault=fault,
            schedule=Schedule(
                self.seed,
                s.room_id,
                rng.choice((45, 60, 90, 120, 180)),
                rng.randrange(0, 180),
                rng.uniform(0.35, 0.65),
                always,
            ),
        )

    @staticmethod
    def _pick_faults(rng: random.Random, n: int) -> dict[int, str]:
        per_kind = max(1, min(3, n // 150))
        chosen = rng.sample(range(n), min(n, per_kind * len(FAULT_KINDS)))
        return {index: FAULT_KINDS[k % len(FAULT_KINDS)] for k, index in enumerate(chosen)}

    @staticmethod
    def _name(rng: random.Random, taken: set[str]) -> str:
        while True:
            if rng.random() < 0.35:
                name = rng.choice(data.SURNAMES) + "".join(rng.sample(data.GIVEN, rng.randint(1, 2)))
            else:
                name = (
                    rng.choice(data.NICK_PREFIX) + rng.choice(data.NICK_WORDS) + rng.choice(data.NICK_SUFFIX)
                )
            if name in taken:
                name += str(rng.randint(1, 9999))
            if name not in taken:
                taken.add(name)
                return name

    # -- live state --------------------------------------------------------------------------
    def state(self, room: Room, minute: int) -> LiveState:
        """The live values of ``room`` at world ``minute`` (cached for the current minute)."""
        cached = self._state_cache.get(room.room_id)
        if cached is not None and cached[0] == minute:
            return cached[1]
        sched = room.schedule
        start_minute = sched.session_start(minute)
        last = start_minute if start_minute is not None else sched.last_session_start(minute)
        popularity = (
            int(room.base_online * (3 + 5 * unit(self.seed, room.room_id, 0x77, last)))
            if last is not None
            else 0
        )
        if start_minute is None:
            result = LiveState(2 if room.rotation else 0, 0, 0, popularity)
        else:
            start = self._live_time(room, start_minute)
            online = viewers(self.seed, room.room_id, room.base_online, start_minute, minute)
            result = LiveState(1, online, start, popularity)
        self._state_cache[room.room_id] = (minute, result)
        return result

    def live_in_area(self, parent_id: int, area_id: int, minute: int) -> list[tuple[Room, LiveState]]:
        """Live rooms of a sub-area (``area_id`` 0: all of the parent), most viewers first."""
        key = (parent_id, area_id)
        cached = self._list_cache.get(key)
        if cached is not None and cached[0] == minute:
            return cached[1]
        if area_id:
            candidates = [
                r for r in self._by_area.get(area_id, ()) if not parent_id or r.area.parent_id == parent_id
            ]
        else:
            candidates = self._by_parent.get(parent_id, []) if parent_id else self.rooms
        rows = []
        for room in candidates:
            st = self.state(room, minute)
            if st.live_status == 1:
                rows.append((room, st))
        rows.sort(key=lambda rs: (-rs[1].online, rs[0].room_id))
        self._list_cache[key] = (minute, rows)
        return rows

    # -- sessions ----------------------------------------------------------------------------
    def _seller(self, room: Room, start_minute: int) -> Seller:
        """A room's sessions (it sells nothing: only its viewers move)."""
        return Seller(
            self.seed,
            room.room_id,
            room.schedule,
            (),
            world_start=start_minute,
            price=lambda _k, _minute: 0,
            audience=lambda start, minute: viewers(self.seed, room.room_id, room.base_online, start, minute),
            conversion=0.0,
        )

    def _live_time(self, room: Room, start_minute: int) -> int:
        # Real start times are not on minute boundaries: pull each session back a few seconds.
        return start_minute * 60 - mix(self.seed, room.room_id, start_minute) % 60

    def session_ids(self, room: Room, session: Session) -> dict[str, Any]:
        """A session's identity: Bilibili has no per-broadcast id, so ``<room_id>:<live_time>``."""
        live_time = self._live_time(room, session.start)
        return {
            "platform": "bilibili",
            "session_id": f"{room.room_id}:{live_time}",
            "room_id": str(room.room_id),
            "streamer_id": str(room.uid),
            "started_at": live_time,
        }

    def sessions_truth(self, minute: int) -> list[dict[str, Any]]:
        """The ground truth of every recent session (``sandbox/sessions.py``), as of ``minute``."""
        return [
            session.truth(minute, self.session_ids(room, session))
            for room in self.rooms
            for session in self._sellers[room.room_id].recent(minute)
        ]

    # -- ground truth ----------------------------------------------------------------------
    def truth(self, now: float) -> dict[str, Any]:
        """Everything a crawl could learn, in Bilibili's own field names, as of world ``now``."""
        minute = int(now // 60)
        rooms = []
        for room in self.rooms:
            st = self.state(room, minute)
            rooms.append(
                {
                    "room_id": room.room_id,
                    "short_id": room.short_id,
                    "uid": room.uid,
                    "title": room.title,
                    "area_id": room.area.id,
                    "area_name": room.area.name,
                    "parent_area_id": room.area.parent_id,
                    "parent_area_name": room.area.parent_name,
                    "user_cover": room.user_cover,
                    "description": room.description,
                    "live_status": st.live_status,
                    "online": st.online,
                    "live_time": st.live_time,
                    "popularity": st.popularity,
                }
            )
        streamers = [
            {
                "uid": s.uid,
                "uname": s.uname,
                "face": s.face,
                "sign": s.sign,
                "fans": s.fans,
                "attention": s.attention,
                "archive_count": s.archive_count,
                "like_num": s.like_num,
                # The live endpoints' "level" is the anchor (master) level; the card's is the user level.
                "level": s.master_level,
                "user_level": s.level,
                "official_type": s.official_type,
                "official_desc": s.official_desc,
                "room_id": s.room_id,
            }
            for s in self.streamers
        ]
        areas = [
            {
                "id": pid,
                "name": pname,
                "list": [{"id": sid, "parent_id": pid, "name": sname} for sid, sname in subs],
            }
            for pid, pname, _old, _w, subs in data.AREAS
        ]
        return {
            "platform": "bilibili",
            "world_time": now,
            "world_time_text": beijing_text(now),
            "streamers": streamers,
            "rooms": rooms,
            "areas": areas,
            "faults": {kind: list(ids) for kind, ids in self.faults.items()},
            "sessions": self.sessions_truth(minute),
        }
