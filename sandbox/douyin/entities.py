"""The things of the fake Douyin world: partitions, shops, streamers, rooms, products,
and the live values of a room and of a shelf item at one world minute.

IDs are kept as Python ints (exact at any size) and turned into the strings or numbers
each payload uses by the payload builders.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.world import Schedule

#: ``room.status`` while broadcasting and after the session ended (f2, streamlink).
STATUS_LIVE = 2
STATUS_ENDED = 4
#: How a fault room breaks: its enter answer is cut short, its shelf answers HTML, or one
#: of its shelf entries has no product_id.
FAULT_KINDS = ("truncated_json", "html_page", "missing_id")


@dataclass(frozen=True, slots=True)
class Partition:
    """A live category (sub-partition) with its parent, as ``categoryData`` lists them."""

    id_str: str
    type: int
    title: str
    parent_id_str: str
    parent_type: int
    parent_title: str


@dataclass(frozen=True, slots=True)
class Shop:
    """A Douyin shop (小店): numeric id on shelf items, short ``sec`` id on the shelf header."""

    shop_id: int
    sec_shop_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Streamer:
    """A streamer's static profile (``aweme/v1/web/user/profile/other`` fields)."""

    uid: int
    sec_uid: str
    unique_id: str
    short_id: int
    nickname: str
    signature: str
    avatar: str  # avatar uri hash; the payloads build every url_list from it
    follower_count: int
    following_count: int
    total_favorited: int
    aweme_count: int
    gender: int
    province: str
    city: str
    custom_verify: str
    enterprise_verify_reason: str
    web_rid: int
    shop: Shop | None


@dataclass(frozen=True, slots=True)
class Product:
    """One product on a room's shelf; ``fault`` names how its shelf entry is broken, if it is."""

    product_id: int
    promotion_id: int
    title: str
    cover: str  # material hash of its images
    shop: Shop
    leaf_category: str
    first_cid: int
    second_cid: int
    base_price: int  # fen, the everyday (lowest SKU) price
    sku_spread: float  # max SKU price / min SKU price (1.0: a single SKU)
    regular_price: int  # fen, the crossed-out "original" price
    base_sales: int  # units sold before its room's first session of the world (sessions.py)
    sales_rate: float  # drawn at generation, unused: live sessions set the sales (sessions.py)
    sales_hidden: bool  # the shop hides its sales: no sale count is served
    in_stock: bool
    fault: str | None


@dataclass(frozen=True, slots=True)
class Room:
    """A streamer's live room: fixed web_rid, a new 19-digit room_id every session."""

    web_rid: int
    uid: int
    low_id: int  # the low 32 bits every session's room_id of this room ends with
    title: str
    partition: Partition
    base_viewers: int
    like_rate: float
    schedule: Schedule
    fault: str | None
    shelf: tuple[Product, ...]


@dataclass(frozen=True, slots=True)
class LiveState:
    """A room's values at one world minute (the last session's id when not live)."""

    status: int  # STATUS_LIVE or STATUS_ENDED
    room_id: int  # current session, else the most recent one
    start: int  # that session's start, unix seconds
    user_count: int  # viewers now; 0 unless live
    total_user: int  # cumulative viewers of the session; 0 unless live
    like_count: int  # likes of the session; 0 unless live
    explaining: int | None  # promotion_id being presented now, if any

    @property
    def live(self) -> bool:
        """True while broadcasting."""
        return self.status == STATUS_LIVE


@dataclass(frozen=True, slots=True)
class ShelfItem:
    """A product as the shelf shows it at one minute: position, prices (fen), sales."""

    product: Product
    index: int  # 1-based position in the live cart (in the catalogue, for ``DouyinWorld.shelf``)
    min_price: int
    max_price: int
    sale_num: int | None  # None when the shop hides sales
