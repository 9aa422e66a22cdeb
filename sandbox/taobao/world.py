"""The fake Taobao Live world: anchors, their live rooms and shelves, items and shops.

Built once from ``(seed, size)``; live values are computed from the world minute, so
the world evolves without a background task and is identical for equal seeds.

Simplifications (documented, not Taobao's behaviour): each anchor has one ``liveId``
whose sessions follow a schedule (a real anchor gets a new liveId per broadcast);
``roomStatus`` is 1 while a session runs, 2 once one has ended, 0 before the first.
``viewCount`` is taken to be pulltopicstat's ``totalNum`` (cumulative unique viewers of
the session); ``visitNum`` (visits) is larger. Both stay frozen after the session ends.

What a room sells (``sandbox/sessions.py``): the bag (宝贝口袋) of a session starts with
three items and gains the next item of the anchor's shelf every four minutes (numbered
``goodsIndex`` in that order; nothing is taken out); after the session it shows the bag as
it ended. An item sits on one anchor's shelf at most, and sells only there, while live:
its count (``buyCount`` on the shelf, ``sellCount`` on the item page, floored to ``1.2万+``
there) is its base plus every unit sold so far. Live prices are the item's tier of the
list price, cut deeper in some 20-minute windows. The item presented now is in the truth
only: no Taobao payload of the sandbox carries it.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any

from sandbox.sessions import Offer, Seller, Session, conversion, demand_weight
from sandbox.taobao import data as data
from sandbox.world import DEFAULT_START, Schedule, beijing_text, hex_digest, mix, text_key, unit, viewers

__all__ = ["FAULT_KINDS", "ITEM_FAULT_KINDS", "Anchor", "Item", "LiveState", "ShelfEntry", "Shop", "TaoWorld"]

#: Room fault kinds: livedetail truncated, item list as an HTML page, a shelf item without itemId.
FAULT_KINDS = ("truncated_json", "html_page", "missing_item_id")
#: Item fault kinds: getdetail's apiStack value string cut short.
ITEM_FAULT_KINDS = ("broken_api_stack",)
#: Live price tiers (fractions of the list price): each item of a room has one; in a flash
#: window (20 world minutes) it is cut further.
_TIERS = (1.0, 0.95, 0.9, 0.88, 0.85, 0.8)
_FLASH_MINUTES = 20


@dataclass(frozen=True, slots=True)
class Shop:
    """A seller's shop (``shopId``; ``sellerId`` is the seller's user ID)."""

    shop_id: int
    seller_id: int
    shop_name: str
    seller_nick: str
    shop_type: str  # "B" Tmall, "C" Taobao
    location: str
    fans: int
    starts: str


@dataclass(frozen=True, slots=True)
class Item:
    """An item (宝贝) with its list price in fen and its sales curve."""

    item_id: int
    title: str
    sub_title: str
    category_id: int
    root_category_id: int
    category_name: str
    shop: Shop
    price_fen: int
    original_fen: int
    base_sales: int
    sales_per_minute: float  # drawn at generation, unused: live sessions set the sales (sessions.py)
    images: tuple[str, ...]
    fault: str | None


@dataclass(frozen=True, slots=True)
class Anchor:
    """An anchor (主播, ``accountId``) with the one live room (``liveId``) of this world."""

    account_id: int
    account_name: str
    head_img: str
    fans_num: int
    live_id: int
    topic: str
    title: str
    cover_img: str
    desc: str
    base_online: int
    like_ratio: float
    pv_ratio: float
    shelf: tuple[int, ...]  # indices into TaoWorld.items; goodsIndex = position + 1
    schedule: Schedule
    fault: str | None


@dataclass(frozen=True, slots=True)
class LiveState:
    """The live values of a room at one world minute, in Taobao's meanings."""

    room_status: int  # 0 not started, 1 live, 2 ended
    stream_status: int  # 1 pushing
    join_count: int
    view_count: int  # = totalNum (uv)
    visit_num: int  # pv
    praise_count: int
    msg_num: int
    start_ms: int | None
    elapsed: int  # minutes into the session (at its end once ended)
    shelf_size: int


@dataclass(frozen=True, slots=True)
class ShelfEntry:
    """An item on a room's shelf: its shelf number (goodsIndex), live price and sales."""

    item: Item
    goods_index: int
    price_fen: int
    sales: int


class TaoWorld:
    """All Taobao anchors, rooms and items of one seed, with lookups and live state."""

    def __init__(self, seed: int, n_streamers: int, faults: bool = True, start: float = DEFAULT_START) -> None:
        if n_streamers < 1:
            raise ValueError("the world needs at least one anchor")
        self.seed = seed
        self.start_minute = int(start // 60)
        rng = random.Random(mix(seed, text_key("taobao-world")))
        self.shops = self._shops(rng, max(12, n_streamers // 3))
        self.items = self._items(rng, max(60, n_streamers * 8), faults)
        self.anchors = self._own_shelves(self._anchors(rng, n_streamers, faults))
        self.anchor_by_live = {a.live_id: a for a in self.anchors}
        self.anchor_by_account = {a.account_id: a for a in self.anchors}
        self.anchor_by_topic = {a.topic: a for a in self.anchors}
        self.item_by_id = {i.item_id: i for i in self.items}
        self.faults: dict[str, list[int]] = {kind: [] for kind in FAULT_KINDS + ITEM_FAULT_KINDS}
        for anchor in self.anchors:
            if anchor.fault:
                self.faults[anchor.fault].append(anchor.live_id)
        for item in self.items:
            if item.fault:
                self.faults[item.fault].append(item.item_id)
        self._state_cache: dict[int, tuple[int, LiveState]] = {}
        self._sellers = {a.live_id: self._seller(a) for a in self.anchors}
        #: item_id -> (its anchor, its position on that shelf).
        self._owner = {self.items[index].item_id: (a, k) for a in self.anchors for k, index in enumerate(a.shelf)}

    # -- generation ------------------------------------------------------------------------------
    def _img(self, folder: str, *parts: int) -> str:
        return f"//gw.alicdn.com/{folder}/O1CN01{hex_digest(20, self.seed, *parts)}_!!0-item_pic.jpg"

    def _shops(self, rng: random.Random, n: int) -> list[Shop]:
        ids = rng.sample(range(100_000_000, 500_000_000), n)
        sellers = rng.sample(range(1_000_000_000, 4_000_000_000), n)
        shops = []
        for i in range(n):
            name = rng.choice(data.BRANDS) + rng.choice(data.SHOP_SUFFIXES) + (str(i) if i >= 40 else "")
            tmall = "旗舰店" in name or rng.random() < 0.3
            year = rng.randint(2009, 2022)
            shops.append(
                Shop(ids[i], sellers[i], name, name if tmall else f"tb{sellers[i] % 10**6}", "B" if tmall else "C",
                     rng.choice(data.LOCATIONS), int(10 ** rng.uniform(2, 6.5)),
                     f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:14:08")
            )  # fmt: skip
        return shops

    def _items(self, rng: random.Random, n: int, faults: bool) -> list[Item]:
        ids = rng.sample(range(500_000_000_000, 700_000_000_000), n)
        broken = set(rng.sample(range(n), max(1, min(3, n // 400)))) if faults else set()
        return [self._item(rng, ids[i], "broken_api_stack" if i in broken else None) for i in range(n)]

    def _item(self, rng: random.Random, item_id: int, fault: str | None) -> Item:
        cid, root, cname, words, (low, high) = rng.choice(data.CATEGORIES)
        price = round(10 ** rng.uniform(math.log10(low), math.log10(high)), 1)
        fen = int(round(price * 100))
        title = "".join((rng.choice(data.BRANDS), rng.choice(data.TITLE_ADJECTIVES), rng.choice(words),
                         rng.choice(data.TITLE_ADJECTIVES), rng.choice(data.TITLE_TAILS)))  # fmt: skip
        return Item(
            item_id=item_id,
            title=title,
            sub_title=rng.choice(data.TITLE_ADJECTIVES) + rng.choice(words),
            category_id=cid,
            root_category_id=root,
            category_name=cname,
            shop=rng.choice(self.shops),
            price_fen=fen,
            original_fen=int(fen * rng.choice((1.2, 1.5, 2.0))) // 100 * 100,
            base_sales=int(10 ** rng.uniform(0.5, 5.3)),
            sales_per_minute=rng.uniform(0.0, 3.0),
            images=tuple(self._img("bao/uploaded/i1", item_id, k) for k in range(rng.randint(3, 5))),
            fault=fault,
        )

    def _own_shelves(self, anchors: list[Anchor]) -> list[Anchor]:
        """Give every item one shelf at most: a shelf entry already on an earlier anchor's shelf
        becomes a new item (drawn apart, so the rest of the world stays as it was). An item sold
        in two rooms at once would move in both rooms' counts, and no room's orders could be read
        from its shelf."""
        rng = random.Random(mix(self.seed, text_key("taobao-own-shelves")))
        known = {item.item_id for item in self.items}
        taken: set[int] = set()
        out = []
        for anchor in anchors:
            shelf = []
            for index in anchor.shelf:
                if index in taken:
                    item_id = rng.randrange(500_000_000_000, 700_000_000_000)
                    while item_id in known:
                        item_id = rng.randrange(500_000_000_000, 700_000_000_000)
                    known.add(item_id)
                    index = len(self.items)
                    self.items.append(self._item(rng, item_id, None))
                taken.add(index)
                shelf.append(index)
            out.append(anchor if tuple(shelf) == anchor.shelf else dataclasses.replace(anchor, shelf=tuple(shelf)))
        return out

    def _anchors(self, rng: random.Random, n: int, faults: bool) -> list[Anchor]:
        accounts = rng.sample(range(1_000_000_000, 3_000_000_000_000), n)
        lives = rng.sample(range(200_000_000_000, 600_000_000_000), n)
        per_kind = max(1, min(3, n // 150))
        chosen = rng.sample(range(n), min(n, per_kind * len(FAULT_KINDS))) if faults else []
        fault_of = {index: FAULT_KINDS[k % len(FAULT_KINDS)] for k, index in enumerate(chosen)}
        names: set[str] = set()
        anchors = []
        for i in range(n):
            name = self._name(rng, names)
            base = int(10 ** rng.uniform(1.5, 4.8))
            word = rng.choice(data.ANCHOR_WORDS)
            title = rng.choice(data.LIVE_TITLES).format(word=word, name=name, n=rng.randint(2, 9))
            fault = fault_of.get(i)
            # Fault rooms stay live around the clock, so every crawl meets them.
            always = self.start_minute - 30 - mix(self.seed, lives[i]) % 300 if fault else None
            shelf = tuple(rng.sample(range(len(self.items)), rng.randint(6, 30)))
            anchors.append(
                Anchor(
                    account_id=accounts[i],
                    account_name=name,
                    head_img=f"https://img.alicdn.com/sns_logo/i2/{accounts[i]}/O1CN01"
                    f"{hex_digest(20, self.seed, accounts[i])}_!!{accounts[i]}-2-userheaderimgshow.png",
                    fans_num=int(base * rng.uniform(20, 400)),
                    live_id=lives[i],
                    topic=_uuid(self.seed, lives[i]),
                    title=title,
                    cover_img=f"https://gw.alicdn.com/tfscom/i2/O1CN01{hex_digest(20, self.seed, lives[i], 1)}"
                    "_!!0-dgshop.jpg",
                    desc=rng.choice(data.LIVE_DESCRIPTIONS),
                    base_online=base,
                    like_ratio=rng.uniform(0.3, 3.0),
                    pv_ratio=rng.uniform(1.5, 2.2),
                    shelf=shelf,
                    schedule=Schedule(self.seed, lives[i], rng.choice((60, 90, 120, 180)), rng.randrange(0, 180),
                                      rng.uniform(0.35, 0.65), always),  # fmt: skip
                    fault=fault,
                )
            )
        return anchors

    @staticmethod
    def _name(rng: random.Random, taken: set[str]) -> str:
        while True:
            name = rng.choice(data.ANCHOR_PREFIX) + rng.choice(data.ANCHOR_WORDS) + rng.choice(data.ANCHOR_SUFFIX)
            if name in taken:
                name += str(rng.randint(1, 999))
            if name not in taken:
                taken.add(name)
                return name

    # -- live state ------------------------------------------------------------------------------
    def _session_end(self, sched: Schedule, start: int) -> int:
        """The first minute after the session starting at ``start`` (sessions end on slot edges)."""
        end = start + sched.slot_minutes
        for _ in range(Schedule.MAX_SLOTS):
            if sched.session_start(end) != start:
                break
            end += sched.slot_minutes
        return end

    def state(self, anchor: Anchor, minute: int) -> LiveState:
        """The live values of ``anchor``'s room at world ``minute`` (cached for the current minute)."""
        cached = self._state_cache.get(anchor.live_id)
        if cached is not None and cached[0] == minute:
            return cached[1]
        sched = anchor.schedule
        start = sched.session_start(minute)
        n = len(anchor.shelf)
        if start is not None:
            elapsed = minute - start
            online = viewers(self.seed, anchor.live_id, anchor.base_online, start, minute)
            result = self._counts(anchor, 1, 1, online, start, elapsed, min(n, 3 + elapsed // 4))
        else:
            last = sched.last_session_start(minute)
            if last is None:
                result = LiveState(0, 0, 0, 0, 0, 0, 0, None, 0, n)
            else:
                elapsed = self._session_end(sched, last) - 1 - last
                result = self._counts(anchor, 2, 0, 0, last, elapsed, min(n, 3 + elapsed // 4))
        self._state_cache[anchor.live_id] = (minute, result)
        return result

    def _counts(
        self, a: Anchor, room: int, stream: int, online: int, start: int, elapsed: int, shelf: int
    ) -> LiveState:
        # Cumulative counts grow with the minutes of the session, so they never go down.
        uv = int(a.base_online * (1.5 + 0.15 * elapsed)) + mix(self.seed, a.live_id, start) % 50
        praise = int(uv * a.like_ratio * (1 + elapsed / 30))
        start_ms = (start * 60 - mix(self.seed, a.live_id, start) % 60) * 1000
        return LiveState(room, stream, online, uv, int(uv * a.pv_ratio), praise, uv // 5, start_ms, elapsed, shelf)

    def shelf(self, anchor: Anchor, minute: int) -> list[ShelfEntry]:
        """The visible shelf, newest item (highest goodsIndex) first, with its live price and sales."""
        st = self.state(anchor, minute)
        counts = self._sellers[anchor.live_id].counts(minute)
        out = []
        for number in range(st.shelf_size, 0, -1):
            item = self.items[anchor.shelf[number - 1]]
            price = self.live_price_fen(anchor, item, minute) if st.room_status == 1 else item.price_fen
            out.append(ShelfEntry(item, number, price, counts[number - 1]))
        return out

    def live_price_fen(self, anchor: Anchor, item: Item, minute: int) -> int:
        """An item's price on ``anchor``'s live shelf: its tier of the list price, cut further in a flash window."""
        tier = _TIERS[mix(self.seed, anchor.live_id, item.item_id) % len(_TIERS)]
        if unit(self.seed, anchor.live_id, item.item_id, minute // _FLASH_MINUTES) < 0.12:
            tier = min(tier, _TIERS[-1]) - 0.05
        return int(round(item.price_fen * tier))

    def sales(self, item: Item, minute: int) -> int:
        """Units sold as the item page shows them: base plus every unit its room sold so far (only grows)."""
        owner = self._owner.get(item.item_id)
        if owner is None:
            return item.base_sales
        anchor, k = owner
        return self._sellers[anchor.live_id].counts(minute)[k]

    # -- what the rooms sell ------------------------------------------------------------------
    def _seller(self, anchor: Anchor) -> Seller:
        items = [self.items[index] for index in anchor.shelf]
        offers = [
            Offer(i.item_id, str(i.item_id), i.base_sales, i.price_fen, demand_weight(self.seed, i.item_id))
            for i in items
        ]

        def bag(start: int, end: int | None) -> tuple[list[int | None], list[int | None]]:
            # Three items at the start, then the next one every four minutes; none taken out.
            return [start + max(0, 4 * (k - 2)) for k in range(len(items))], [None] * len(items)

        return Seller(
            self.seed,
            anchor.live_id,
            anchor.schedule,
            offers,
            world_start=self.start_minute,
            price=lambda k, minute: self.live_price_fen(anchor, items[k], minute),
            audience=lambda start, minute: viewers(self.seed, anchor.live_id, anchor.base_online, start, minute),
            conversion=conversion(self.seed, anchor.live_id),
            listing=bag,
            price_period=_FLASH_MINUTES,
        )

    def seller(self, anchor: Anchor) -> Seller:
        """What ``anchor``'s room sells, session by session (``sandbox/sessions.py``)."""
        return self._sellers[anchor.live_id]

    def session_ids(self, anchor: Anchor, session: Session) -> dict[str, Any]:
        """A session's identity as Taobao's payloads carry it (the liveId; ``startTime`` tells sessions apart)."""
        start_ms = (session.start * 60 - mix(self.seed, anchor.live_id, session.start) % 60) * 1000
        return {
            "platform": "taobao",
            "session_id": str(anchor.live_id),
            "room_id": str(anchor.live_id),
            "streamer_id": str(anchor.account_id),
            "started_at": start_ms // 1000,
        }

    def sessions_truth(self, minute: int) -> list[dict[str, Any]]:
        """The ground truth of every recent session (``sandbox/sessions.py``), as of ``minute``."""
        return [
            session.truth(minute, self.session_ids(a, session))
            for a in self.anchors
            for session in self._sellers[a.live_id].recent(minute)
        ]

    def detail_price_fen(self, item: Item, minute: int) -> int:
        """The item page's price: the list price, 10% off in some six-hour promotion windows."""
        promo = unit(self.seed, item.item_id, 0x6D, minute // 360) < 0.3
        return int(round(item.price_fen * 0.9)) if promo else item.price_fen

    # -- ground truth ----------------------------------------------------------------------------
    def truth(self, now: float) -> dict[str, Any]:
        """Everything a crawl could learn, in Taobao's own field names, as of world ``now``."""
        minute = int(now // 60)
        anchors = [
            {"accountId": str(a.account_id), "accountName": a.account_name, "headImg": a.head_img,
             "fansNum": a.fans_num, "liveId": str(a.live_id)}
            for a in self.anchors
        ]  # fmt: skip
        lives = []
        for a in self.anchors:
            st = self.state(a, minute)
            shelf = [
                {"itemId": str(e.item.item_id), "goodsIndex": e.goods_index, "itemPrice": f"{e.price_fen / 100:.2f}",
                 "price": e.price_fen / 100, "buyCount": e.sales}
                for e in self.shelf(a, minute)
            ]  # fmt: skip
            lives.append(
                {"liveId": str(a.live_id), "accountId": str(a.account_id), "topic": a.topic, "title": a.title,
                 "coverImg": a.cover_img, "descInfo": a.desc, "roomStatus": st.room_status,
                 "streamStatus": st.stream_status, "joinCount": st.join_count, "viewCount": st.view_count,
                 "totalNum": st.view_count, "visitNum": st.visit_num, "praiseCount": st.praise_count,
                 "msgNum": st.msg_num, "startTime": st.start_ms, "curItemNum": st.shelf_size, "items": shelf}
            )  # fmt: skip
        items = [
            {"itemId": str(i.item_id), "title": i.title, "categoryId": str(i.category_id),
             "shopId": str(i.shop.shop_id), "shopName": i.shop.shop_name, "sellerId": str(i.shop.seller_id),
             "shopType": i.shop.shop_type, "price": self.detail_price_fen(i, minute) / 100,
             "originalPrice": i.original_fen / 100, "sellCount": self.sales(i, minute), "images": list(i.images)}
            for i in self.items
        ]  # fmt: skip
        return {
            "platform": "taobao",
            "world_time": now,
            "world_time_text": beijing_text(now),
            "anchors": anchors,
            "lives": lives,
            "items": items,
            "faults": {kind: [str(i) for i in ids] for kind, ids in self.faults.items()},
            "sessions": self.sessions_truth(minute),
        }


def _uuid(*parts: int) -> str:
    h = hex_digest(32, *parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
