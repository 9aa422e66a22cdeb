"""The fake Kuaishou world: users (principalId / eid / kwaiId / user_id), their rooms, live
sessions (a new liveStreamId each), categories, and the 小店 items some of them sell.

Every live value is a pure function of ``(seed, entity, world minute)`` (see ``world.py``);
what is memoised (``sandbox/sessions.py``) only caches it.
Names, IDs and numbers are synthetic; the shapes they are served in are the real ones
(docs/kuaishou_formats.md).

What a seller sells (``sandbox/sessions.py``): outside sessions every item of the shop is
on sale; during a session a few are put on sale only later and a few are taken off
(``open.item.list.get`` lists the items on sale; ``open.item.get`` still answers for the
others, ``shelfStatus`` 0). Items sell only while their seller is live, at the price
served (a live-only discount in some half-hours): ``volume`` is the base plus every unit
sold so far. The item presented now is in the truth only: no Kuaishou payload of the
sandbox carries it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sandbox.sessions import Offer, Seller, Session, conversion, default_listing, demand_weight
from sandbox.world import DEFAULT_START, Schedule, beijing_text, hex_digest, mix, text_key, unit, viewers

__all__ = ["CATEGORIES", "FAULT_KINDS", "Item", "KsRoom", "KsUser", "KsWorld", "LiveNow", "display_count"]

#: Fault kinds: how a room's livedetail answer (or a shop's item list) is broken.
FAULT_KINDS = ("malformed_json", "html_page", "missing_result", "item_missing_id")
#: The real top types of /live_api/category/data (PLATFORMS.md 2.2): 1热门 ... 8文化.
TOP_TYPES = {1: "热门", 2: "网游", 3: "单机", 4: "手游", 5: "棋牌", 6: "娱乐", 7: "综合", 8: "文化"}
#: (id, name, abbr, top type). Game ids are shorter than 7 chars (gameboard/list), other
#: categories 7+ (non-gameboard/list), as LiveParse tells the two lists apart.
CATEGORIES: tuple[tuple[str, str, str, int], ...] = (
    ("1001", "英雄联盟", "LOL", 2),
    ("1002", "穿越火线", "CF", 2),
    ("1003", "地下城与勇士", "DNF", 2),
    ("2001", "我的世界", "MC", 3),
    ("2002", "主机游戏", "ZJ", 3),
    ("1000", "王者荣耀", "WZRY", 4),
    ("22008", "和平精英", "SYXX", 4),
    ("3003", "原神", "YS", 4),
    ("4001", "欢乐斗地主", "DDZ", 5),
    ("4002", "中国象棋", "XQ", 5),
    ("1000005", "颜值", "YZ", 6),
    ("1000006", "才艺", "CY", 6),
    ("1000007", "户外", "HW", 6),
    ("1000011", "好物", "HWU", 7),
    ("1000012", "美食", "MS", 7),
    ("1000021", "读书", "DS", 8),
    ("1000022", "科普", "KP", 8),
)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_NAMES = ("小", "阿", "大", "老", "快乐", "东北", "川味", "江南", "草原", "海边")
_WORDS = ("雨", "晨", "风", "哥", "姐", "妹", "叔", "娃", "猫", "虎", "鹿", "鱼", "花", "月")
_CAPTIONS = (
    "{cat}冲分中",
    "今天不下播",
    "{cat}教学，来了就是兄弟",
    "家人们晚上好",
    "{cat}上分局",
    "聊天唱歌",
    "好物推荐，欢迎来逛",
    "新人主播求关注",
)
_GOODS = (
    "纯棉T恤",
    "手工红薯粉",
    "保温杯",
    "蓝牙耳机",
    "草原牛肉干",
    "儿童绘本",
    "防晒霜",
    "五常大米",
    "运动鞋",
    "零食大礼包",
    "洗衣凝珠",
    "手机支架",
)
_GOODS_CATS = ("服饰内衣", "食品饮料", "家居日用", "数码家电", "美妆个护", "图书教育")


def display_count(n: int) -> str:
    """How Kuaishou shows a count: plain below 10 000, else ``1.2万`` (one decimal, ``.0`` dropped)."""
    if n < 10_000:
        return str(n)
    text = f"{n / 10_000:.1f}".removesuffix(".0")
    return f"{text}万"


@dataclass(frozen=True, slots=True)
class KsUser:
    """A user; ``principal_id`` (kwaiId else eid) is the key of the room page /u/{principalId}."""

    user_id: int
    eid: str
    kwai_id: str | None
    name: str
    avatar: str
    description: str
    sex: str
    fan: int
    follow: int
    photo: int
    verified: bool
    verify_text: str
    city: str

    @property
    def principal_id(self) -> str:
        return self.kwai_id or self.eid


@dataclass(frozen=True, slots=True)
class Item:
    """A 小店 item: base price in fen and sales ``volume`` that grows while its seller is live."""

    kwai_item_id: int
    title: str
    category_name: str
    base_price: int
    base_volume: int
    rate: float  # drawn at generation, unused: live sessions set the sales (sessions.py)


@dataclass(slots=True)
class KsRoom:
    """A room; ``fault`` names how its livedetail (or item list) answer is broken."""

    user: KsUser
    category: tuple[str, str, str, int]
    caption: str
    base_viewers: int
    like_rate: float
    schedule: Schedule
    fault: str | None
    items: list[Item] = field(default_factory=list)
    access_token: str = ""


@dataclass(frozen=True, slots=True)
class LiveNow:
    """A room at one world minute."""

    living: bool
    live_stream_id: str | None
    start_ms: int
    watching: int
    likes: int


class KsWorld:
    """All Kuaishou users, rooms and shops of one seed."""

    def __init__(self, seed: int, n_users: int, faults: bool = True, start: float = DEFAULT_START) -> None:
        if n_users < 1:
            raise ValueError("the world needs at least one user")
        self.seed = seed
        rng = random.Random(mix(seed, text_key("kuaishou-world")))
        start_minute = self.start_minute = int(start // 60)
        ids = rng.sample(range(100_000_000, 4_400_000_000), n_users)
        fault_of = self._faults(rng, n_users) if faults else {}
        self.rooms: list[KsRoom] = []
        for i, uid in enumerate(ids):
            self.rooms.append(self._room(rng, uid, fault_of.get(i), start_minute))
        self.by_principal = {r.user.principal_id: r for r in self.rooms}
        # The room page also answers to a user's eid when the principalId is their kwaiId.
        self.by_any = {**{r.user.eid: r for r in self.rooms}, **self.by_principal}
        self.by_token = {r.access_token: r for r in self.rooms if r.access_token}
        self.item_index = {item.kwai_item_id: (room, item) for room in self.rooms for item in room.items}
        self.faults: dict[str, list[str]] = {kind: [] for kind in FAULT_KINDS}
        for room in self.rooms:
            if room.fault:
                self.faults[room.fault].append(room.user.principal_id)
        self._sellers = {r.user.user_id: self._seller(r) for r in self.rooms}
        self._item_pos = {item.kwai_item_id: k for r in self.rooms for k, item in enumerate(r.items)}

    @staticmethod
    def _faults(rng: random.Random, n: int) -> dict[int, str]:
        chosen = rng.sample(range(n), min(n, len(FAULT_KINDS)))
        return {index: FAULT_KINDS[k] for k, index in enumerate(chosen)}

    def _id(self, rng: random.Random, alphabet: str, length: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(length))

    def _room(self, rng: random.Random, uid: int, fault: str | None, start_minute: int) -> KsRoom:
        eid = "3x" + self._id(rng, _B36, 13)
        kwai_id = (
            None if rng.random() < 0.45 else rng.choice(("KS", "ks", "qq", "kk")) + str(rng.randint(10**6, 10**10))
        )
        name = (
            rng.choice(_NAMES) + rng.choice(_WORDS) + rng.choice(("", "", "的直播间", "✨", str(rng.randint(1, 999))))
        )
        stamp = f"{rng.randint(2018, 2025)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
        user = KsUser(
            user_id=uid,
            eid=eid,
            kwai_id=kwai_id,
            name=name,
            avatar=f"https://p2.a.yximgs.com/uhead/AB/{stamp}/{hex_digest(32, self.seed, uid)}_s.jpg",
            description=rng.choice(("感谢快手平台", "每晚八点直播", "", "关注我不迷路", "好物分享")),
            sex=rng.choice(("M", "F")),
            fan=int(10 ** rng.uniform(2, 7)),
            follow=rng.randint(0, 3000),
            photo=rng.randint(0, 2000),
            verified=rng.random() < 0.1,
            verify_text=rng.choice(("快手游戏主播", "快手电商达人", "知名美食博主")),
            city=rng.choice(("北京市", "四川 成都市", "黑龙江 哈尔滨市", "广东 广州市", "云南 昆明市")),
        )
        category = rng.choice(CATEGORIES)
        always = start_minute - 30 - mix(self.seed, uid) % 300 if fault else None
        room = KsRoom(
            user=user,
            category=category,
            caption=rng.choice(_CAPTIONS).format(cat=category[1]),
            base_viewers=int(10 ** rng.uniform(1.3, 5.2)),
            like_rate=rng.uniform(2, 200),
            schedule=Schedule(
                self.seed, uid, rng.choice((45, 60, 90, 120)), rng.randrange(0, 120), rng.uniform(0.35, 0.65), always
            ),
            fault=fault,
        )
        if fault == "item_missing_id" or rng.random() < 0.35:
            room.access_token = hex_digest(40, self.seed, uid, 0x70C)
            for _ in range(rng.randint(2, 12)):
                room.items.append(
                    Item(
                        kwai_item_id=rng.randint(10**13, 3 * 10**13),
                        title=rng.choice(_GOODS) + rng.choice(("", " 家用", " 新款", " 大容量", " 买二送一")),
                        category_name=rng.choice(_GOODS_CATS),
                        base_price=rng.randint(99, 49_900) // 10 * 10,
                        base_volume=rng.randint(0, 20_000),
                        rate=rng.uniform(0.05, 3.0),
                    )
                )
        return room

    # -- live state ------------------------------------------------------------------------------
    def live_now(self, room: KsRoom, minute: int) -> LiveNow:
        """The room's session at ``minute``: liveStreamId, start, watching and likes."""
        start = room.schedule.session_start(minute)
        if start is None:
            return LiveNow(False, None, 0, 0, 0)
        uid = room.user.user_id
        watching = viewers(self.seed, uid, room.base_viewers, start, minute)
        likes = int(room.like_rate * (minute - start + 1) * (0.9 + 0.2 * unit(self.seed, uid, start, 0x11)))
        return LiveNow(True, self._stream_id(room, start), self._start_ms(room, start), watching, likes)

    def _stream_id(self, room: KsRoom, start: int) -> str:
        rnd = random.Random(mix(self.seed, room.user.user_id, start, 0x1D))
        return "".join(rnd.choice(_ALPHABET) for _ in range(11))

    def _start_ms(self, room: KsRoom, start: int) -> int:
        uid = room.user.user_id
        return (start * 60 - mix(self.seed, uid, start) % 60) * 1000 + mix(self.seed, uid, start, 3) % 1000

    # -- what the sellers sell -----------------------------------------------------------------
    def _seller(self, room: KsRoom) -> Seller:
        offers = [
            Offer(i.kwai_item_id, str(i.kwai_item_id), i.base_volume, i.base_price,
                  demand_weight(self.seed, i.kwai_item_id))
            for i in room.items
        ]  # fmt: skip
        uid = room.user.user_id
        return Seller(
            self.seed,
            uid,
            room.schedule,
            offers,
            world_start=self.start_minute,
            price=lambda k, minute: self.live_price(room.items[k], minute),
            audience=lambda start, minute: viewers(self.seed, uid, room.base_viewers, start, minute),
            conversion=conversion(self.seed, uid),
            listing=default_listing(self.seed, uid, offers, hold=0.15, delist=0.1),
            price_period=30,
        )

    def seller(self, room: KsRoom) -> Seller:
        """What ``room``'s seller sells, session by session (``sandbox/sessions.py``)."""
        return self._sellers[room.user.user_id]

    def live_price(self, item: Item, minute: int) -> int:
        """The price (fen) while its seller is live: 10% off in three of ten half-hours."""
        discount = unit(self.seed, item.kwai_item_id, minute // 30) < 0.3
        return item.base_price * 9 // 10 // 10 * 10 if discount else item.base_price

    def item_now(self, room: KsRoom, item: Item, minute: int) -> tuple[int, int]:
        """``(price in fen, volume)``: a live-only discount some half-hours, sales that grow while live."""
        live = room.schedule.session_start(minute) is not None
        price = self.live_price(item, minute) if live else item.base_price
        return price, self._sellers[room.user.user_id].counts(minute)[self._item_pos[item.kwai_item_id]]

    def on_sale(self, room: KsRoom, minute: int) -> list[Item]:
        """The seller's items on sale at ``minute`` (all of them outside sessions), in shop order."""
        session = self._sellers[room.user.user_id].session_at(minute) if room.items else None
        if session is None:
            return list(room.items)
        return [room.items[k] for k in session.shelf(minute)]

    def sessions_truth(self, minute: int) -> list[dict[str, Any]]:
        """The ground truth of every recent session (``sandbox/sessions.py``), as of ``minute``."""
        return [
            session.truth(minute, self.session_ids(room, session))
            for room in self.rooms
            for session in self._sellers[room.user.user_id].recent(minute)
        ]

    def session_ids(self, room: KsRoom, session: Session) -> dict[str, Any]:
        """A session's identity as Kuaishou's payloads carry it: the liveStreamId, new each broadcast.

        ``room_id`` is the numeric user id (a user has one room; ``originUserId``), ``principal_id``
        the id of the room page ``/u/{principalId}``."""
        return {
            "platform": "kuaishou",
            "session_id": self._stream_id(room, session.start),
            "room_id": str(room.user.user_id),
            "principal_id": room.user.principal_id,
            "streamer_id": str(room.user.user_id),
            "started_at": self._start_ms(room, session.start) / 1000,
        }

    # -- ground truth ----------------------------------------------------------------------------
    def truth(self, now: float) -> dict[str, Any]:
        """Everything a crawl could learn, in Kuaishou's own field names, as of world ``now``."""
        minute = int(now // 60)
        users, rooms, shops = [], [], []
        for room in self.rooms:
            u = room.user
            users.append(
                {
                    "principalId": u.principal_id,
                    "eid": u.eid,
                    "kwaiId": u.kwai_id,
                    "user_id": u.user_id,
                    "user_name": u.name,
                    "headurl": u.avatar,
                    "user_text": u.description,
                    "user_sex": u.sex,
                    "fan": u.fan,
                    "follow": u.follow,
                    "photo": u.photo,
                    "verified": u.verified,
                    "verifiedDescription": u.verify_text if u.verified else "",
                }
            )
            st = self.live_now(room, minute)
            rooms.append(
                {
                    "principalId": u.principal_id,
                    "isLiving": st.living,
                    "liveStreamId": st.live_stream_id,
                    "caption": room.caption,
                    "startTime": st.start_ms or None,
                    "watchingCount": st.watching,
                    "displayWatchingCount": display_count(st.watching),
                    "likeCount": st.likes,
                    "gameId": room.category[0],
                    "gameName": room.category[1],
                    "type": room.category[3],
                }
            )
            if room.items:
                items = []
                for item in self.on_sale(room, minute):
                    price, volume = self.item_now(room, item, minute)
                    items.append(
                        {
                            "kwaiItemId": item.kwai_item_id,
                            "title": item.title,
                            "categoryName": item.category_name,
                            "price": price,
                            "volume": volume,
                        }
                    )
                shops.append(
                    {
                        "userId": u.user_id,
                        "principalId": u.principal_id,
                        "access_token": room.access_token,
                        "items": items,
                    }
                )
        return {
            "platform": "kuaishou",
            "world_time": now,
            "world_time_text": beijing_text(now),
            "users": users,
            "rooms": rooms,
            "categories": [{"id": c[0], "name": c[1], "categoryAbbr": c[2], "type": c[3]} for c in CATEGORIES],
            "shops": shops,
            "faults": {kind: list(ids) for kind, ids in self.faults.items()},
            "sessions": self.sessions_truth(minute),
        }
