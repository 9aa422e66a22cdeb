"""The sandbox's ground truth of live sessions (issue 14 item 4), against what its payloads serve.

Each platform test walks one whole session of a world minute by minute, reads what the
payloads show (built with the sandbox's own payload builders, from the world methods its
routes call), and checks it against the session's truth: every sales count grows by
exactly that minute's units, the units times the price shown add up to the truth's GMV,
the product presented is the truth's, and the shelf's listings, delistings and price
changes are the truth's events, at their minute. The worlds are pure: a fresh world
recomputes the same truth, whatever was asked of it before.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from sandbox.bilibili.world import BiliWorld
from sandbox.douyin import shop as DyShop
from sandbox.douyin.world import DouyinWorld, Room
from sandbox.kuaishou import payloads as KsP
from sandbox.kuaishou.world import KsRoom, KsWorld
from sandbox.sessions import LOOKBACK_MINUTES, Seller, Session
from sandbox.taobao import items as TbItems
from sandbox.taobao import payloads as TbP
from sandbox.taobao.world import Anchor, TaoWorld
from sandbox.world import DEFAULT_START, beijing_text

MINUTE0 = int(DEFAULT_START // 60)
SIZE = 120
SESSION_KEYS = {
    "platform", "session_id", "room_id", "streamer_id", "started_at", "ended_at", "status", "has_shop", "units",
    "gmv", "products", "presented", "shelf_events", "viewers_peak",
}  # fmt: skip


@pytest.fixture(scope="module")
def douyin() -> DouyinWorld:
    return DouyinWorld(7, SIZE)


@pytest.fixture(scope="module")
def taobao() -> TaoWorld:
    return TaoWorld(7, SIZE)


@pytest.fixture(scope="module")
def kuaishou() -> KsWorld:
    return KsWorld(7, SIZE)


# -- helpers -----------------------------------------------------------------------------------------
def first_session(seller: Seller, min_offers: int) -> Session:
    """The first session of ``seller`` that starts after the world's start (so a crawl sees all of it)."""
    assert len(seller.offers) >= min_offers
    starts = seller.schedule.starts_between(MINUTE0 + 1, MINUTE0 + 3 * 1440)
    assert starts, "no session in three days"
    return seller.session(starts[0])


def pick(rooms: list[Any], seller_of: Any, min_offers: int, *, want: Any = None) -> tuple[Any, Session]:
    """A room without faults that sells at least ``min_offers`` products, and its first session
    (one for which ``want(session)`` holds, when given)."""
    for room in rooms:
        seller = seller_of(room)
        if getattr(room, "fault", None) or len(seller.offers) < min_offers or seller.schedule.always_since:
            continue
        session = first_session(seller, min_offers)
        if want is None or want(session):
            return room, session
    raise AssertionError("no such room")


class Walk:
    """What a crawler that reads the shelf every minute of one session recovers."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, int]] = {}  # product -> (count, price) at the previous read
        self.units: Counter[str] = Counter()
        self.gmv: Counter[str] = Counter()  # fen
        self.events: list[tuple[int, str, str, float | None, float | None]] = []
        self.presented: dict[int, str | None] = {}
        self.per_minute: dict[tuple[int, str], int] = {}

    def read(self, minute: int, shelf: dict[str, tuple[int | None, int]], presented: str | None = None) -> None:
        """One read of the shelf at ``minute``: product -> (count or None if not shown, price in fen)."""
        first = not self.last and not self.presented
        if not first:
            for pid, (_count, price) in shelf.items():
                if pid not in self.last:
                    self.events.append((minute * 60, pid, "listed", None, price / 100))
                elif self.last[pid][1] != price:
                    self.events.append((minute * 60, pid, "price_changed", self.last[pid][1] / 100, price / 100))
            for pid, (_count, price) in self.last.items():
                if pid not in shelf:
                    self.events.append((minute * 60, pid, "delisted", price / 100, None))
        for pid, (count, price) in shelf.items():
            if count is None:
                continue
            before = self.last.get(pid, (None, 0))[0]
            delta = 0 if before is None else count - before
            assert delta >= 0, f"{pid}: the count went down at minute {minute}"
            self.per_minute[(minute, pid)] = delta
            self.units[pid] += delta
            self.gmv[pid] += delta * price
        self.last = {pid: (count if count is not None else 0, price) for pid, (count, price) in shelf.items()}
        self.presented[minute] = presented


def truth_events(session: dict[str, Any]) -> list[tuple[int, str, str, float | None, float | None]]:
    return sorted(
        (e["at"], e["product_id"], e["event"], e["price_before"], e["price_after"]) for e in session["shelf_events"]
    )


def presented_by_minute(session: dict[str, Any], first: int, last: int) -> dict[int, str | None]:
    out: dict[int, str | None] = dict.fromkeys(range(first, last + 1))
    for p in session["presented"]:
        stop = p["to"] // 60 if p["to"] is not None else last + 1
        for minute in range(p["from"] // 60, stop):
            assert out[minute] is None, "one product at a time"
            out[minute] = p["product_id"]
    return out


def check_against_walk(truth: dict[str, Any], walk: Walk, session: Session, hidden: set[str] = frozenset()) -> None:
    """The session's truth is what the walk recovered (except products whose count is never shown)."""
    offers = session.seller.offers
    for minute in range(session.start, session.end):
        units = session.units_at(minute)
        for k, offer in enumerate(offers):
            if (minute, offer.product_id) in walk.per_minute:
                assert walk.per_minute[(minute, offer.product_id)] == units[k], (minute, offer.product_id)
    shown = {pid: v for pid, v in truth["products"].items() if pid not in hidden}
    assert {pid: v["units"] for pid, v in shown.items()} == {pid: walk.units[pid] for pid in shown}
    assert {pid: v["gmv"] for pid, v in shown.items()} == {pid: round(walk.gmv[pid] / 100, 2) for pid in shown}
    assert truth["units"] == sum(v["units"] for v in truth["products"].values())
    assert truth["gmv"] == pytest.approx(sum(v["gmv"] for v in truth["products"].values()), abs=0.01)
    assert truth_events(truth) == sorted(walk.events)


def check_presentation(truth: dict[str, Any], session: Session) -> None:
    """Presentations: one at a time, 3-12 minutes (or cut by a delisting or the end), on the shelf."""
    ids = [o.product_id for o in session.seller.offers]
    previous = None
    for p in truth["presented"]:
        minutes = (p["to"] - p["from"]) // 60
        index = ids.index(p["product_id"])
        assert 1 <= minutes <= 12
        if minutes < 3:
            assert p["to"] // 60 in (session.end, session.off[index])
        assert all(session.listed(index, m) for m in range(p["from"] // 60, p["to"] // 60))
        assert p["product_id"] != previous
        previous = p["product_id"]
    assert truth["presented"], "a session of hours presents products"


def check_format(truth: dict[str, Any], platform: str) -> None:
    assert SESSION_KEYS <= set(truth) and truth["platform"] == platform
    assert json.loads(json.dumps(truth)) == truth
    assert isinstance(truth["session_id"], str) and isinstance(truth["room_id"], str)
    assert isinstance(truth["gmv"], float) and truth["gmv"] == round(truth["gmv"], 2)
    assert truth["status"] in ("live", "ended") and (truth["ended_at"] is None) == (truth["status"] == "live")
    for event in truth["shelf_events"]:
        assert event["event"] in ("listed", "delisted", "price_changed")


# -- Douyin ------------------------------------------------------------------------------------------
def _douyin_read(world: DouyinWorld, room: Room, minute: int) -> tuple[dict[str, tuple[int | None, int]], str | None]:
    """The shelf as ``live/promotions/page/`` serves it at ``minute``, and the product presented."""
    st = world.state(room, minute)
    cart = world.cart(room, minute)
    streamer = world.streamer_by_uid[room.uid]
    page = DyShop.shelf_page(cart, len(cart), -1, room, streamer, st, minute, "log")
    promotions = page["promotions"]
    assert [p["index"] for p in promotions] == list(range(1, len(promotions) + 1))
    by_promotion = {p["promotion_id"]: p["product_id"] for p in promotions}
    current = by_promotion.get(page["current_promotion_id"]) if page["current_promotion_id"] else None
    assert [p["product_id"] for p in promotions if p["explain_type"] == 1] == ([current] if current else [])
    # The product page serves the same count as the shelf.
    if cart:
        detail = DyShop.product_detail([(cart[0], room, streamer, st)], [], 0, "log")["promotions"][0]["base_info"]
        assert detail.get("sales") == promotions[0].get("sale_num")
    return {p["product_id"]: (p.get("sale_num"), p["min_price"]) for p in promotions}, current


def test_douyin_session_truth_is_what_the_shelf_served(douyin: DouyinWorld) -> None:
    room, session = pick(douyin.rooms, douyin.seller, 20, want=lambda s: s.end - s.start >= 120)
    hidden = {str(p.product_id) for p in room.shelf if p.sales_hidden}
    walk = Walk()
    for minute in range(session.start, session.end):
        shelf, current = _douyin_read(douyin, room, minute)
        walk.read(minute, shelf, current)
    assert _douyin_read(douyin, room, session.end)[0] == {}, "the cart is empty once the session ended"
    truth = session.truth(session.end, douyin.session_ids(room, session))
    check_format(truth, "douyin")
    assert truth["status"] == "ended" and truth["ended_at"] == session.end * 60
    assert truth["session_id"] == truth["room_id"] == str(douyin.room_id(room, session.start))
    assert len(truth["session_id"]) == 19 and set(truth["sales_hidden"]) == hidden
    check_against_walk(truth, walk, session, hidden)
    assert presented_by_minute(truth, session.start, session.end - 1) == walk.presented
    check_presentation(truth, session)
    kinds = Counter(e["event"] for e in truth["shelf_events"])
    assert kinds["listed"] and kinds["delisted"] and kinds["price_changed"], kinds
    assert truth["units"] > 0 and truth["viewers_peak"] == max(
        douyin.state(room, m).user_count for m in range(session.start, session.end)
    )


def test_douyin_truth_lists_the_live_sessions_with_the_served_ids(douyin: DouyinWorld) -> None:
    now = DEFAULT_START + 2 * 3600
    truth = douyin.truth(now)
    sessions = {s["session_id"]: s for s in truth["sessions"]}
    assert len(sessions) == len(truth["sessions"])
    for room in truth["rooms"]:
        if room["status"] == 2:
            s = sessions[room["id_str"]]
            assert (s["status"], s["web_rid"], s["started_at"]) == ("live", room["web_rid"], room["create_time"])
            assert s["has_shop"] == bool(douyin.room_by_web_rid[int(room["web_rid"])].shelf)
            current = room["current_promotion_id"]
            live_presented = [p for p in s["presented"] if p["to"] is None]
            if current:
                product = douyin.product_by_promotion[int(current)][0]
                assert [p["product_id"] for p in live_presented] == [str(product.product_id)]
            else:
                assert live_presented == []
            assert room["product_count"] == len(truth["shelves"].get(room["web_rid"], []))
    for s in truth["sessions"]:
        check_format(s, "douyin")
        assert s["started_at"] <= now and (s["ended_at"] is None or s["ended_at"] >= now - LOOKBACK_MINUTES * 60)


# -- Taobao ------------------------------------------------------------------------------------------
def _wan_floor(text: str) -> int:
    if text.endswith("万+"):
        return int(round(float(text[:-2]) * 10_000))
    return int(text)


def _taobao_read(world: TaoWorld, anchor: Anchor, minute: int) -> dict[str, tuple[int | None, int]]:
    """The bag as ``itemlist.withpagination`` serves it at ``minute`` (and the item pages' counts)."""
    shelf = world.shelf(anchor, minute)
    body = TbP.itemlist(anchor, shelf, len(shelf))
    out: dict[str, tuple[int | None, int]] = {}
    for entry, row in zip(shelf, body["itemListv1"], strict=True):
        item = row["liveItemDO"]
        count = int(item["extendVal"]["buyCount"])
        out[item["itemId"]] = (count, round(float(item["itemPrice"]) * 100))
        # The item page shows the same count, floored when it is shown in 万.
        text = json.loads(TbItems.getdetail(entry.item, entry.price_fen, world.sales(entry.item, minute))["apiStack"][0]
                          ["value"])["item"]["sellCount"]  # fmt: skip
        floor = _wan_floor(text)
        assert floor <= count and (count < 10_000 and floor == count or count - floor < 1_000)
    assert [int(r["liveItemDO"]["goodsIndex"]) for r in body["itemListv1"]] == list(range(len(shelf), 0, -1))
    return out


def test_taobao_session_truth_is_what_the_bag_served(taobao: TaoWorld) -> None:
    anchor, session = pick(taobao.anchors, taobao.seller, 12, want=lambda s: s.end - s.start >= 90)
    walk = Walk()
    for minute in range(session.start, session.end):
        assert taobao.state(anchor, minute).room_status == 1
        walk.read(minute, _taobao_read(taobao, anchor, minute))
    after = taobao.state(anchor, session.end)
    ended_bag = _taobao_read(taobao, anchor, session.end)
    assert after.room_status == 2 and set(ended_bag) == set(walk.last), "after the session: the bag as it ended"
    assert {pid: c for pid, (c, _p) in ended_bag.items()} == {pid: c for pid, (c, _p) in walk.last.items()}
    truth = session.truth(session.end + 30, taobao.session_ids(anchor, session))
    check_format(truth, "taobao")
    assert truth["session_id"] == truth["room_id"] == str(anchor.live_id)
    assert truth["started_at"] * 1000 == taobao.state(anchor, session.start).start_ms
    walk.presented = {}
    check_against_walk(truth, walk, session)
    check_presentation(truth, session)
    kinds = Counter(e["event"] for e in truth["shelf_events"])
    assert kinds["listed"] and kinds["price_changed"] and not kinds["delisted"], kinds


def test_taobao_items_sit_on_one_shelf_and_sell_only_there(taobao: TaoWorld) -> None:
    seen: set[int] = set()
    for anchor in taobao.anchors:
        assert not seen & set(anchor.shelf)
        seen |= set(anchor.shelf)
    loose = next(i for i in taobao.items if taobao.items.index(i) not in seen)
    assert taobao.sales(loose, MINUTE0 + 3000) == loose.base_sales


# -- Kuaishou ----------------------------------------------------------------------------------------
def _kuaishou_read(world: KsWorld, room: KsRoom, minute: int) -> dict[str, tuple[int | None, int]]:
    """The items on sale as ``open.item.list.get`` serves them at ``minute``."""
    out: dict[str, tuple[int | None, int]] = {}
    for item in world.on_sale(room, minute):
        price, volume = world.item_now(room, item, minute)
        served = KsP.open_item(room, item, price, volume)
        assert served["shelfStatus"] == 1 and served["skuList"][0]["volume"] == served["volume"]
        out[str(served["kwaiItemId"])] = (served["volume"], served["price"])
    return out


def test_kuaishou_session_truth_is_what_the_shop_served(kuaishou: KsWorld) -> None:
    def changes(s: Session) -> bool:
        return any(o != s.start and o < s.end for o in s.on) and any(o < s.end for o in s.off)

    room, session = pick(kuaishou.rooms, kuaishou.seller, 6, want=changes)
    walk = Walk()
    for minute in range(session.start, session.end):
        walk.read(minute, _kuaishou_read(kuaishou, room, minute))
    truth = session.truth(session.end, kuaishou.session_ids(room, session))
    check_format(truth, "kuaishou")
    assert truth["session_id"] == kuaishou.live_now(room, session.start).live_stream_id
    assert truth["room_id"] == truth["streamer_id"] == str(room.user.user_id)
    assert truth["started_at"] * 1000 == pytest.approx(kuaishou.live_now(room, session.start).start_ms)
    walk.presented = {}
    check_against_walk(truth, walk, session)
    check_presentation(truth, session)
    kinds = Counter(e["event"] for e in truth["shelf_events"])
    assert kinds["listed"] and kinds["delisted"], kinds
    # A delisted item still answers open.item.get, off the shelf.
    gone = next(i for i, off in enumerate(session.off) if off < session.end)
    item = room.items[gone]
    price, volume = kuaishou.item_now(room, item, session.off[gone])
    on_sale = item in kuaishou.on_sale(room, session.off[gone])
    assert KsP.open_item(room, item, price, volume, detail=True, on_sale=on_sale)["shelfStatus"] == 0
    # Offline: every item on sale, counts frozen.
    assert kuaishou.on_sale(room, session.end) == room.items
    frozen = [kuaishou.item_now(room, i, session.end)[1] for i in room.items]
    assert (
        frozen == [kuaishou.item_now(room, i, session.end + 1)[1] for i in room.items]
        or kuaishou.live_now(room, session.end + 1).living
    )


def test_kuaishou_truth_names_the_live_streams(kuaishou: KsWorld) -> None:
    truth = kuaishou.truth(DEFAULT_START)
    live = {s["session_id"]: s for s in truth["sessions"] if s["status"] == "live"}
    rooms = [r for r in truth["rooms"] if r["isLiving"]]
    assert {r["liveStreamId"] for r in rooms} == set(live)
    for r in rooms:
        s = live[r["liveStreamId"]]
        assert s["principal_id"] == r["principalId"] and round(s["started_at"] * 1000) == r["startTime"]
        assert s["viewers_peak"] >= r["watchingCount"]


# -- Bilibili ----------------------------------------------------------------------------------------
def test_bilibili_sessions_have_no_shop() -> None:
    world = BiliWorld(7, 80)
    truth = world.truth(DEFAULT_START + 600)
    live = {r["room_id"]: r for r in truth["rooms"] if r["live_status"] == 1}
    sessions = [s for s in truth["sessions"] if s["status"] == "live"]
    assert {int(s["room_id"]) for s in sessions} == set(live)
    for s in truth["sessions"]:
        check_format(s, "bilibili")
        assert (s["has_shop"], s["units"], s["gmv"], s["products"], s["presented"], s["shelf_events"]) == (
            False, 0, 0.0, {}, [], []
        )  # fmt: skip
        assert re.fullmatch(r"\d+:\d+", s["session_id"]) and s["session_id"] == f"{s['room_id']}:{s['started_at']}"
    for s in sessions:
        assert beijing_text(s["started_at"]) == live[int(s["room_id"])]["live_time"] and s["viewers_peak"] >= 1


# -- all of them ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["douyin", "taobao", "kuaishou"])
def test_truth_is_pure(platform: str) -> None:
    """A fresh world recomputes the same sessions, whatever order minutes were asked in."""
    cls = {"douyin": DouyinWorld, "taobao": TaoWorld, "kuaishou": KsWorld}[platform]
    later = DEFAULT_START + 5 * 3600 + 17 * 60
    a = cls(7, 60)
    a.truth(DEFAULT_START + 9 * 3600)  # ask far ahead first: the later answer must not depend on it
    a.truth(DEFAULT_START)
    first = a.truth(later)["sessions"]
    second = cls(7, 60).truth(later)["sessions"]
    assert first == second and any(s["units"] for s in first)
    assert cls(7, 60).truth(later - 60)["sessions"] != first


def test_counts_only_grow_and_move_only_while_live(douyin: DouyinWorld) -> None:
    room, session = pick(douyin.rooms, douyin.seller, 10)
    seller = douyin.seller(room)
    before = seller.counts(session.start - 1)
    assert seller.counts(session.start) == before, "nothing sells in a product's first minute on the shelf"
    at_end = seller.counts(session.end - 1)
    assert all(b <= a for a, b in zip(at_end, before, strict=True)) and at_end != before
    assert seller.counts(session.end) == seller.counts(session.end + 1) or douyin.state(room, session.end + 1).live
    assert [a - b for a, b in zip(at_end, before, strict=True)] == session.totals(session.end - 1)[0]


def test_sales_spread_hot_products_and_presentation_boost(douyin: DouyinWorld) -> None:
    """A few hot products, a long tail; a product sells more while it is presented."""
    truth = douyin.truth(DEFAULT_START + 6 * 3600)
    top_shares = []
    for s in truth["sessions"]:
        units = sorted((v["units"] for v in s["products"].values()), reverse=True)
        if len(units) >= 20 and sum(units) >= 200:
            top_shares.append(sum(units[:3]) / sum(units))
    assert top_shares and sorted(top_shares)[len(top_shares) // 2] > 0.3
    room, session = pick(douyin.rooms, douyin.seller, 20, want=lambda s: s.end - s.start >= 120)
    on = off = on_n = off_n = 0
    for minute in range(session.start + 1, session.end):
        shown = session.presented(minute)
        units = session.units_at(minute)
        for k in session.shelf(minute):
            if session.on[k] < minute:
                if k == shown:
                    on, on_n = on + units[k], on_n + 1
                else:
                    off, off_n = off + units[k], off_n + 1
    assert on / on_n > 3 * off / off_n
