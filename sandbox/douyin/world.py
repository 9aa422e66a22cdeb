"""The fake Douyin world: streamers, their rooms and shelves, and the live values over time.

Built once from ``(seed, size)``; every live value is a function of the world minute, so
the world evolves without background tasks and equal seeds give equal worlds. A room's
session id is Douyin-shaped: the session's start time in the high bits, a per-room
constant in the low 32 bits, so any room_id a client holds maps back to its room.
"""

from __future__ import annotations

from typing import Any

from sandbox.douyin import data as data
from sandbox.douyin import payloads as P
from sandbox.douyin.entities import (
    FAULT_KINDS,
    STATUS_ENDED,
    STATUS_LIVE,
    LiveState,
    Partition,
    Product,
    Room,
    ShelfItem,
    Shop,
)
from sandbox.douyin.gen import generate
from sandbox.world import DEFAULT_START, beijing_text, mix, unit, viewers

__all__ = ["FAULT_KINDS", "DouyinWorld", "LiveState", "Partition", "Product", "Room", "ShelfItem", "Shop"]

_LOW32 = 0xFFFFFFFF


class DouyinWorld:
    """All Douyin streamers, rooms and shelves of one seed, with lookups and live values."""

    def __init__(self, seed: int, n_streamers: int, faults: bool = True, start: float = DEFAULT_START) -> None:
        if n_streamers < 1:
            raise ValueError("the world needs at least one streamer")
        self.seed = seed
        self.start_minute = int(start // 60)
        self.streamers, self.rooms = generate(seed, n_streamers, faults, self.start_minute)
        self.partitions = [
            Partition(sid, stype, stitle, pid, ptype, ptitle)
            for pid, ptype, ptitle, _w, _s, subs in data.PARTITIONS
            for sid, stype, stitle in subs
        ]
        self.streamer_by_uid = {s.uid: s for s in self.streamers}
        self.streamer_by_sec_uid = {s.sec_uid: s for s in self.streamers}
        self.streamer_by_unique_id = {s.unique_id: s for s in self.streamers}
        self.room_by_web_rid = {r.web_rid: r for r in self.rooms}
        self.room_by_low = {r.low_id: r for r in self.rooms}
        self.product_by_promotion = {p.promotion_id: (p, r) for r in self.rooms for p in r.shelf}
        self.faults: dict[str, list[str]] = {kind: [] for kind in FAULT_KINDS}
        for room in self.rooms:
            if room.fault:
                self.faults[room.fault].append(str(room.web_rid))
            self.faults["missing_id"].extend(str(p.product_id) for p in room.shelf if p.fault)
        self._states: dict[int, tuple[int, LiveState]] = {}
        self._live_minutes: dict[int, tuple[int, int]] = {}
        self._lists: dict[str, tuple[int, list[tuple[Room, LiveState]]]] = {}

    # -- sessions and live values -----------------------------------------------------------
    def _session_seconds(self, room: Room, start_minute: int) -> int:
        # Real starts are not on minute boundaries: pull each one back a few seconds.
        return start_minute * 60 - mix(self.seed, room.web_rid, start_minute) % 60

    def room_id(self, room: Room, start_minute: int) -> int:
        """The 19-digit id of the session of ``room`` that started at ``start_minute``."""
        return (self._session_seconds(room, start_minute) << 32) | room.low_id

    def state(self, room: Room, minute: int) -> LiveState:
        """The values of ``room`` at world ``minute`` (cached for the current minute)."""
        cached = self._states.get(room.web_rid)
        if cached is not None and cached[0] == minute:
            return cached[1]
        sched = room.schedule
        start = sched.session_start(minute)
        if start is None:
            last = sched.last_session_start(minute)
            if last is None:
                # Nothing live in the look-back: the last session was days before.
                last = self.start_minute - 1440 - mix(self.seed, room.web_rid, 0xFA) % 5760
            result = LiveState(STATUS_ENDED, self.room_id(room, last), self._session_seconds(room, last), 0, 0, 0, None)
        else:
            now = viewers(self.seed, room.web_rid, room.base_viewers, start, minute)
            age = minute - start
            total = max(now, int(room.base_viewers * (1.6 + 0.45 * age)))
            likes = int(room.base_viewers * room.like_rate * (age + 1))
            result = LiveState(
                STATUS_LIVE,
                self.room_id(room, start),
                self._session_seconds(room, start),
                now,
                total,
                likes,
                self._explaining(room, minute),
            )
        self._states[room.web_rid] = (minute, result)
        return result

    def _explaining(self, room: Room, minute: int) -> int | None:
        """The product presented now: a new one every 6 minutes, none in a fifth of them."""
        if not room.shelf or unit(self.seed, room.web_rid, 0xE6, minute // 6) < 0.2:
            return None
        return room.shelf[mix(self.seed, room.web_rid, 0xE7, minute // 6) % len(room.shelf)].promotion_id

    def session_of(self, room_id: int, minute: int) -> tuple[Room, LiveState, bool] | None:
        """The room a session id belongs to, its state now, and whether that session is the current one."""
        room = self.room_by_low.get(room_id & _LOW32)
        if room is None:
            return None
        st = self.state(room, minute)
        return room, st, st.live and st.room_id == room_id

    def live_minutes(self, room: Room, minute: int) -> int:
        """Minutes ``room`` was live from a day before the world start up to ``minute``."""
        sched = room.schedule
        epoch = self.start_minute - 1440
        if sched.always_since is not None:
            return max(0, minute - max(epoch, sched.always_since))
        size, phase = sched.slot_minutes, sched.phase
        slot = (minute + phase) // size
        first = (epoch + phase) // size
        done, count = self._live_minutes.get(room.web_rid, (first, 0))
        if done > slot:  # the clock went back: count again from the epoch
            done, count = first, 0
        for s in range(done, slot):
            if sched.session_start(s * size - phase) is not None:
                count += size
        self._live_minutes[room.web_rid] = (slot, count)
        start = sched.session_start(minute)
        return count + (minute - (slot * size - phase) + 1 if start is not None else 0)

    def shelf(self, room: Room, minute: int, live: bool) -> list[ShelfItem]:
        """The shelf of ``room`` at ``minute``: prices move (flash cuts) and sales grow only while live."""
        if not room.shelf:
            return []
        sold_minutes = self.live_minutes(room, minute)
        items = []
        for index, product in enumerate(room.shelf, start=1):
            low = product.base_price
            window = minute // 10
            if live and unit(self.seed, product.product_id, 0xD1, window) < 0.3:
                cut = 0.7 + 0.25 * unit(self.seed, product.product_id, 0xD2, window)
                low = max(100, int(low * cut) // 10 * 10)
            high = low if product.sku_spread <= 1.0 else max(low, int(low * product.sku_spread) // 100 * 100 - 10)
            sales = None if product.sales_hidden else product.base_sales + int(product.sales_rate * sold_minutes)
            items.append(ShelfItem(product, index, low, high, sales))
        return items

    def live_in_partition(self, id_str: str, minute: int) -> list[tuple[Room, LiveState]]:
        """Live rooms of a partition (a parent covers its subs; 720 covers all), most viewers first."""
        cached = self._lists.get(id_str)
        if cached is not None and cached[0] == minute:
            return cached[1]
        if id_str == data.RECOMMEND_PARTITION[0]:
            candidates = self.rooms
        else:
            candidates = [r for r in self.rooms if id_str in (r.partition.id_str, r.partition.parent_id_str)]
        rows = [(r, st) for r in candidates if (st := self.state(r, minute)).live]
        rows.sort(key=lambda rs: (-rs[1].user_count, rs[0].web_rid))
        self._lists[id_str] = (minute, rows)
        return rows

    # -- ground truth -------------------------------------------------------------------------
    def truth(self, now: float) -> dict[str, Any]:
        """Everything a crawl could learn, in Douyin's own field names (IDs as strings), as of ``now``.

        ``shelves`` maps the web_rid of each live room with products to its shelf, as
        ``live/promotions/page/`` serves it now (prices in fen, positions from 1).
        """
        minute = int(now // 60)
        rooms, shelves, streamers = [], {}, []
        for room in self.rooms:
            st = self.state(room, minute)
            # The shelf endpoint answers only for the current session of a live room.
            items = self.shelf(room, minute, True) if st.live else []
            rooms.append(
                {
                    "web_rid": str(room.web_rid),
                    "id_str": str(st.room_id),
                    "owner_user_id_str": str(room.uid),
                    "title": room.title,
                    "status": st.status,
                    "user_count": st.user_count,
                    "total_user": st.total_user,
                    "like_count": st.like_count,
                    "create_time": st.start,
                    "partition": {"id_str": room.partition.id_str, "title": room.partition.title},
                    "parent_partition": {"id_str": room.partition.parent_id_str, "title": room.partition.parent_title},
                    "product_count": len(items),
                    "current_promotion_id": str(st.explaining) if st.explaining else "",
                    "fault": room.fault,
                }
            )
            if items:
                shelves[str(room.web_rid)] = [P.truth_item(item) for item in items]
        for s in self.streamers:
            st = self.state(self.room_by_web_rid[s.web_rid], minute)
            streamers.append(P.truth_streamer(s, st))
        return {
            "platform": "douyin",
            "world_time": now,
            "world_time_text": beijing_text(now),
            "streamers": streamers,
            "rooms": rooms,
            "shelves": shelves,
            "categories": P.category_data(),
            "faults": {kind: list(ids) for kind, ids in self.faults.items()},
        }
