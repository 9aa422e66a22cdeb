"""The fake Douyin world: streamers, their rooms and shelves, and the live values over time.

Built once from ``(seed, size)``; every live value is a function of the world minute, so
the world evolves without background tasks and equal seeds give equal worlds. A room's
session id is Douyin-shaped: the session's start time in the high bits, a per-room
constant in the low 32 bits, so any room_id a client holds maps back to its room.

What a room sells (``sandbox/sessions.py``): ``room.shelf`` is the room's catalogue; while
live, its cart (``cart``, what ``live/promotions/page/`` serves) holds the catalogue's
products listed in this session (a few are listed later, a few delisted early), the
product presented now is ``current_promotion_id`` / ``explain_type`` 1, every product's
``sale_num`` is its base plus every unit sold so far, and a flash cut changes a price for
ten minutes. Out-of-stock products never sell; products whose shop hides sales sell but
serve no count.
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
from sandbox.sessions import Offer, Seller, Session, conversion, default_listing, demand_weight
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
        self._lists: dict[str, tuple[int, list[tuple[Room, LiveState]]]] = {}
        self._sellers = {room.web_rid: self._seller(room) for room in self.rooms}
        self._carts: dict[int, tuple[int, list[ShelfItem]]] = {}

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
        """The promotion_id of the product presented now (None between presentations)."""
        session = self._sellers[room.web_rid].session_at(minute)
        index = session.presented(minute) if session is not None else None
        return room.shelf[index].promotion_id if index is not None else None

    def session_of(self, room_id: int, minute: int) -> tuple[Room, LiveState, bool] | None:
        """The room a session id belongs to, its state now, and whether that session is the current one."""
        room = self.room_by_low.get(room_id & _LOW32)
        if room is None:
            return None
        st = self.state(room, minute)
        return room, st, st.live and st.room_id == room_id

    # -- what the rooms sell ------------------------------------------------------------------
    def _seller(self, room: Room) -> Seller:
        offers = [
            Offer(p.product_id, str(p.product_id), p.base_sales, p.base_price, demand_weight(self.seed, p.product_id),
                  sellable=p.in_stock, sticky=p.fault is not None)
            for p in room.shelf
        ]  # fmt: skip
        return Seller(
            self.seed,
            room.web_rid,
            room.schedule,
            offers,
            world_start=self.start_minute,
            price=lambda i, minute: self.live_price(room.shelf[i], minute),
            audience=lambda start, minute: viewers(self.seed, room.web_rid, room.base_viewers, start, minute),
            conversion=conversion(self.seed, room.web_rid),
            listing=default_listing(self.seed, room.web_rid, offers, hold=0.12, delist=0.08),
            price_period=10,
        )

    def seller(self, room: Room) -> Seller:
        """What ``room`` sells, session by session (``sandbox/sessions.py``)."""
        return self._sellers[room.web_rid]

    def live_price(self, product: Product, minute: int) -> int:
        """The lowest SKU price (fen) at a live ``minute``: a fifth of the products (flash-sale ones)
        get a flash cut in three of ten 10-minute windows."""
        low = product.base_price
        window = minute // 10
        if unit(self.seed, product.product_id, 0xD0) < 0.2 and unit(self.seed, product.product_id, 0xD1, window) < 0.3:
            cut = 0.7 + 0.25 * unit(self.seed, product.product_id, 0xD2, window)
            low = max(100, int(low * cut) // 10 * 10)
        return low

    def _item(self, product: Product, index: int, minute: int, live: bool, sales: int) -> ShelfItem:
        low = self.live_price(product, minute) if live else product.base_price
        high = low if product.sku_spread <= 1.0 else max(low, int(low * product.sku_spread) // 100 * 100 - 10)
        return ShelfItem(product, index, low, high, None if product.sales_hidden else sales)

    def shelf(self, room: Room, minute: int, live: bool) -> list[ShelfItem]:
        """Every product of ``room``'s catalogue at ``minute`` (``index``: its catalogue position),
        as its product page shows it: prices move (flash cuts) only while live, sales only grow.

        The cart a live room serves is ``cart``."""
        if not room.shelf:
            return []
        counts = self._sellers[room.web_rid].counts(minute)
        return [self._item(p, k, minute, live, counts[k - 1]) for k, p in enumerate(room.shelf, start=1)]

    def cart(self, room: Room, minute: int) -> list[ShelfItem]:
        """The live cart of ``room`` at ``minute`` (empty unless live): products listed mid-session
        on top, newest first, then those on since the start in catalogue order; ``index`` from 1."""
        cached = self._carts.get(room.web_rid)
        if cached is not None and cached[0] == minute:
            return cached[1]
        seller = self._sellers[room.web_rid]
        session = seller.session_at(minute) if room.shelf else None
        items: list[ShelfItem] = []
        if session is not None:
            listed = session.shelf(minute)
            order = sorted(listed, key=lambda i: (-session.on[i], i) if session.on[i] > session.start else (0, i))
            counts = seller.counts(minute)
            items = [self._item(room.shelf[i], k, minute, True, counts[i]) for k, i in enumerate(order, start=1)]
        self._carts[room.web_rid] = (minute, items)
        return items

    def sessions_truth(self, minute: int) -> list[dict[str, Any]]:
        """The ground truth of every recent session (``sandbox/sessions.py``), as of ``minute``."""
        out = []
        for room in self.rooms:
            for session in self._sellers[room.web_rid].recent(minute):
                out.append(session.truth(minute, self.session_ids(room, session)))
        return out

    def session_ids(self, room: Room, session: Session) -> dict[str, Any]:
        """A session's identity as Douyin's payloads carry it: the 19-digit room id is new each broadcast."""
        room_id = str(self.room_id(room, session.start))
        return {
            "platform": "douyin",
            "session_id": room_id,
            "room_id": room_id,
            "web_rid": str(room.web_rid),
            "streamer_id": str(room.uid),
            "started_at": self._session_seconds(room, session.start),
            "sales_hidden": [str(p.product_id) for p in room.shelf if p.sales_hidden],
        }

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
            items = self.cart(room, minute)
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
            "sessions": self.sessions_truth(minute),
        }
