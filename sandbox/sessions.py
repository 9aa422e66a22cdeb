"""Live sessions as they sell: the shelf, the product presented (讲解), the orders, and their truth.

Shared by the platform worlds. A room has a catalogue of ``Offer``s (its products; none
for a room that sells nothing) and a ``Schedule``. Every session, and every minute of it,
is a pure function of ``(seed, room, session start, minute)``; the classes below only cache
what they computed (per session, per minute), so any moment can be recomputed and equals
what was served.

* **Shelf.** Most offers are on the shelf from the session's start; a few are listed only
  later in the session and a few are delisted before its end (a platform may give its own
  rule, e.g. Taobao's bag that grows by one item every four minutes and never shrinks).
  ``Offer.sticky`` offers are on the whole session (the deliberately broken entries, so a
  crawl always meets them). Outside sessions the platform says what its pages show.
* **Presentation.** The first minute of a session is a warm-up; after it the room presents
  one product of its shelf at a time, 3-12 minutes each (cut short if the product is
  delisted meanwhile), with pauses of 2-6 minutes in which nothing is presented; never the
  same product twice in a row, hot products more often.
* **Orders.** Each minute after the warm-up every listed, sellable offer sells an integer
  number of units (Poisson): the room's audience that minute x its conversion x the
  offer's share of demand (log-normal weights: a few hot products, a long tail; the
  presented product takes a large share) x more when the price is cut below the everyday
  price. They sell at the price the shelf shows that minute. A product sells nothing in its
  first minute on the shelf (the session's first minute, or the minute it is listed).
* **Counts.** An offer's cumulative sales count at minute ``m`` is its base count plus
  every unit it sold in the room's sessions since the room's *origin* (the session live at
  the world's start, else the world's start), minutes ``<= m`` included. So the count
  served at minute ``m`` minus the count served at ``m - 1`` is exactly the units of minute
  ``m``, sold at the price served at ``m``; and the first count a crawler reads of a product
  in a session is its baseline: reading every minute recovers every unit.

``Session.truth`` reports one session (see ``truth_fields``): units, GMV (yuan), per-product
units and GMV, the presented products with their times, and the shelf events.
"""

from __future__ import annotations

import math
import random
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from sandbox.world import Schedule, mix, unit

__all__ = [
    "LOOKBACK_MINUTES",
    "Offer",
    "Seller",
    "Session",
    "conversion",
    "default_listing",
    "demand_weight",
]

#: Sessions reported by the truth: those live at some minute of the last day (and not before
#: the room's origin, i.e. not before the world began).
LOOKBACK_MINUTES = 24 * 60
#: Minutes at the start of a session in which nothing sells and nothing is presented.
WARMUP_MINUTES = 1
#: Sessions whose per-minute tables a seller keeps (older ones are recomputed when asked for).
_KEEP_SESSIONS = 16
_NEVER = 1 << 62
_NORMAL = NormalDist()

#: ``(offer index, minute) -> price in fen`` the shelf shows at that live minute.
PriceFn = Callable[[int, int], int]
#: ``(session start, minute) -> viewers`` of the room at that live minute.
AudienceFn = Callable[[int, int], int]
#: ``(session start, session end or None) -> (on, off)``: per offer, the minute it is listed
#: (``None``: not this session) and the minute it is delisted (``None``: stays to the end).
ListingFn = Callable[[int, int | None], tuple[list[int | None], list[int | None]]]


@dataclass(frozen=True, slots=True)
class Offer:
    """A product a room can put on its shelf."""

    key: int  # the integer the hashes use (the platform's product/item id)
    product_id: str  # the product's id as the truth names it
    base_count: int  # its sales count before the room's origin
    ref_price: int  # fen: its everyday price (a shelf price below it sells more)
    weight: float  # its pull: relative demand among the room's products
    sellable: bool = True  # False: out of stock, never sells nor is presented
    sticky: bool = False  # on the shelf for the whole of every session


def demand_weight(seed: int, key: int) -> float:
    """A product's pull, log-normal (sigma 1.3): a few hot products, a long tail."""
    u = min(max(unit(seed, key, 0xDE3A), 1e-9), 1 - 1e-9)
    return math.exp(1.3 * _NORMAL.inv_cdf(u))


def conversion(seed: int, key: int, low: float = 0.0005, high: float = 0.005) -> float:
    """Units a room sells per viewer and minute (log-uniform in ``[low, high]``)."""
    return low * (high / low) ** unit(seed, key, 0xC0417)


def default_listing(
    seed: int, key: int, offers: Sequence[Offer], hold: float = 0.12, delist: float = 0.08
) -> ListingFn:
    """A shelf plan: ``hold`` of the offers are listed only after the start, ``delist`` of them
    are delisted before the end (at most once each per session); at least one is on at the start."""

    def plan(start: int, end: int | None) -> tuple[list[int | None], list[int | None]]:
        span = (end - start) if end is not None else 720
        ons: list[int | None] = []
        offs: list[int | None] = []
        for o in offers:
            on, off = start, None
            if not o.sticky:
                if span > 8 and unit(seed, key, o.key, start, 0x1157) < hold:
                    on = start + 2 + int(unit(seed, key, o.key, start, 0x1158) * span * 0.7)
                if unit(seed, key, o.key, start, 0x1159) < delist:
                    at = on + 5 + int(unit(seed, key, o.key, start, 0x115A) * span)
                    off = at if end is None or at < end else None
            ons.append(on)
            offs.append(off)
        if ons and start not in ons:
            ons[0] = start  # a shelf is never empty at the start
            offs[0] = None if offs[0] is None or offs[0] <= start else offs[0]
        return ons, offs

    return plan


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam >= 30.0:
        return max(0, int(lam + math.sqrt(lam) * rng.gauss(0.0, 1.0) + 0.5))
    u = rng.random()
    if u <= 1.0 - lam:  # exp(-lam) >= 1 - lam: no unit, without computing exp
        return 0
    p = math.exp(-lam)
    s, k = p, 0
    while u > s and k < 200:
        k += 1
        p *= lam / k
        s += p
    return k


class Session:
    """One session of one room: its shelf plan, presentation, and per-minute orders (lazy)."""

    def __init__(self, seller: Seller, start: int) -> None:
        self.seller = seller
        self.start = start
        self.end = seller.schedule.session_end(start)
        n = len(seller.offers)
        ons, offs = seller.listing(start, self.end) if n else ([], [])
        limit = self.end if self.end is not None else _NEVER
        self.on = [on if on is not None and on < limit else _NEVER for on in ons]
        self.off = [off if off is not None and off < limit else _NEVER for off in offs]
        # Presentation: (offer index or -1, from, to) segments covering [start, _seg_until).
        self._seg: list[tuple[int, int, int]] = []
        self._seg_from: list[int] = []
        self._seg_until = start
        # Per-minute tables from the start: units and prices per offer (flattened), viewers.
        self._units = array("I")
        self._prices = array("I")
        self._viewers = array("I")
        self._rows = 0
        self._price_events: list[tuple[int, int, int, int]] = []  # (minute, offer, before, after)
        # Running totals at the last computed row (units, GMV in fen per offer, viewer peak).
        self._run_units = [0] * n
        self._run_gmv = [0] * n
        self._run_peak = 0
        self._cum: tuple[int, list[int], list[int], int] | None = None

    # -- the plan ---------------------------------------------------------------------------------
    def live_at(self, minute: int) -> bool:
        """Whether ``minute`` belongs to this session."""
        return self.start <= minute and (self.end is None or minute < self.end)

    def listed(self, index: int, minute: int) -> bool:
        """Whether offer ``index`` is on the shelf at ``minute`` (a minute of this session)."""
        return self.on[index] <= minute < self.off[index]

    def shelf(self, minute: int) -> list[int]:
        """The offers on the shelf at ``minute``, in catalogue order."""
        on, off = self.on, self.off
        return [i for i in range(len(on)) if on[i] <= minute < off[i]]

    def _extend_segments(self, until: int) -> None:
        seller, end = self.seller, self.end
        offers = seller.offers
        t = self._seg_until
        prev = next((i for i, _, _ in reversed(self._seg) if i >= 0), -1)
        while t < until and (end is None or t < end):
            if t < self.start + WARMUP_MINUTES:
                seg = (-1, t, self.start + WARMUP_MINUTES)
            else:
                h = mix(seller.seed, seller.key, self.start, t, 0x5E6)
                pool = [i for i in self.shelf(t) if offers[i].sellable and i != prev]
                if not pool or (h & 0xFFFF) < 0x3333:  # a pause, a fifth of the time
                    seg = (-1, t, t + 2 + (h >> 16) % 5)
                else:
                    pulls = [math.sqrt(offers[i].weight) for i in pool]
                    aim = ((h >> 32) & 0xFFFFFFFF) / 4294967296.0 * sum(pulls)
                    pick = pool[-1]
                    for i, pull in zip(pool, pulls, strict=True):
                        aim -= pull
                        if aim < 0:
                            pick = i
                            break
                    seg = (pick, t, min(t + 3 + (h >> 16) % 10, self.off[pick]))
                    prev = pick
            if end is not None and seg[2] > end:
                seg = (seg[0], seg[1], end)
            self._seg.append(seg)
            self._seg_from.append(seg[1])
            t = seg[2]
        self._seg_until = t

    def presented(self, minute: int) -> int | None:
        """The offer presented at ``minute`` (a minute of this session), or None."""
        if not self.live_at(minute) or not self.seller.offers:
            return None
        if minute >= self._seg_until:
            self._extend_segments(minute + 1)
        index = self._seg[bisect_right(self._seg_from, minute) - 1][0]
        return index if index >= 0 else None

    # -- the orders ---------------------------------------------------------------------------
    def last_minute(self, minute: int) -> int:
        """The last minute of this session up to ``minute``."""
        return minute if self.end is None else min(minute, self.end - 1)

    def _extend_rows(self, last: int) -> None:
        seller = self.seller
        offers, n = seller.offers, len(seller.offers)
        on, off = self.on, self.off
        period = seller.price_period
        run_units, run_gmv = self._run_units, self._run_gmv
        m = self.start + self._rows
        prev_prices = list(self._prices[-n:]) if self._rows and n else [0] * n
        while m <= last:
            viewers = seller.audience(self.start, m)
            units = [0] * n
            prices = [0] * n
            listed = [i for i in range(n) if on[i] <= m < off[i]]
            fresh = m % period == 0 or m == self.start
            for i in listed:
                # Prices hold within aligned windows of ``price_period`` minutes.
                if fresh or on[i] == m or not prev_prices[i]:
                    prices[i] = seller.price(i, m)
                else:
                    prices[i] = prev_prices[i]
                if on[i] < m and prev_prices[i] != prices[i]:
                    self._price_events.append((m, i, prev_prices[i], prices[i]))
            if listed and m >= self.start + WARMUP_MINUTES:
                shown = self.presented(m)
                # A product sells nothing in its first minute on the shelf (the session's warm-up,
                # or the minute it is listed): the first count a crawler reads of it is its baseline.
                pulls = {i: offers[i].weight for i in listed if offers[i].sellable and on[i] < m}
                if pulls:
                    total = sum(pulls.values())
                    if shown is not None and shown in pulls:
                        pulls[shown] = 3.0 * pulls[shown] + 0.4 * total
                        total = sum(pulls.values())
                    rate = viewers * seller.conversion / total
                    rng = random.Random(mix(seller.seed, seller.key, self.start, m, 0x0DE7))
                    for i, pull in pulls.items():
                        ratio = offers[i].ref_price / prices[i] if prices[i] else 1.0
                        k = _poisson(rng, rate * pull * min(4.0, ratio * ratio))
                        if k:
                            units[i] = k
                            run_units[i] += k
                            run_gmv[i] += k * prices[i]
            self._units.extend(units)
            self._prices.extend(prices)
            self._viewers.append(viewers)
            self._run_peak = max(self._run_peak, viewers)
            prev_prices = prices
            self._rows += 1
            m += 1

    def totals(self, minute: int) -> tuple[list[int], list[int], int]:
        """Up to ``minute`` (included): units and GMV (fen) per offer, and the viewer peak."""
        n = len(self.seller.offers)
        last = self.last_minute(minute)
        if last < self.start:
            return [0] * n, [0] * n, 0
        self._extend_rows(last)
        if last == self.start + self._rows - 1:
            return self._run_units, self._run_gmv, self._run_peak
        cached = self._cum
        if cached is not None and cached[0] == last:
            return cached[1], cached[2], cached[3]
        units, gmv, peak = [0] * n, [0] * n, 0
        u, p, v = self._units, self._prices, self._viewers
        for m in range(self.start, last + 1):
            row = (m - self.start) * n
            for i in range(n):
                k = u[row + i]
                if k:
                    units[i] += k
                    gmv[i] += k * p[row + i]
            peak = max(peak, v[m - self.start])
        self._cum = (last, units, gmv, peak)
        return units, gmv, peak

    def units_at(self, minute: int) -> list[int]:
        """Units per offer sold in ``minute`` alone."""
        n = len(self.seller.offers)
        if not self.live_at(minute):
            return [0] * n
        self._extend_rows(minute)
        row = (minute - self.start) * n
        return list(self._units[row : row + n])

    def price_at(self, index: int, minute: int) -> int | None:
        """The price (fen) offer ``index`` had on the shelf at ``minute``, None when not listed."""
        if not self.live_at(minute) or not self.listed(index, minute):
            return None
        return self.seller.price(index, minute)

    # -- the truth ----------------------------------------------------------------------------
    def truth(self, now_minute: int, ids: dict[str, Any]) -> dict[str, Any]:
        """The session as of ``now_minute``; ``ids`` are the platform's identity fields, first."""
        offers = self.seller.offers
        last = self.last_minute(now_minute)
        ended = self.end is not None and self.end <= now_minute
        units, gmv, peak = self.totals(now_minute)
        products = {
            offers[i].product_id: {"units": units[i], "gmv": round(gmv[i] / 100, 2)}
            for i in range(len(offers))
            if self.on[i] <= last
        }
        presented: list[dict[str, Any]] = []
        if offers and last >= self.start:
            self._extend_segments(last + 1)
            for index, begin, stop in self._seg:
                if begin > last:
                    break
                if index >= 0:
                    to = stop * 60 if stop <= last or ended else None
                    presented.append({"product_id": offers[index].product_id, "from": begin * 60, "to": to})
        return {
            **ids,
            "started_at": ids.get("started_at", self.start * 60),
            "ended_at": self.end * 60 if ended and self.end is not None else None,
            "status": "ended" if ended else "live",
            "has_shop": bool(offers),
            "units": sum(units),
            "gmv": round(sum(gmv) / 100, 2),
            "products": products,
            "presented": presented,
            "shelf_events": self.events(now_minute),
            "viewers_peak": peak,
        }

    def events(self, now_minute: int) -> list[dict[str, Any]]:
        """Listings after the start, delistings and price changes up to ``now_minute``, in time order."""
        offers = self.seller.offers
        last = self.last_minute(now_minute)
        if last < self.start:
            return []
        self._extend_rows(last)
        rows: list[tuple[int, int, str, int | None, int | None]] = []
        for i in range(len(offers)):
            if self.start < self.on[i] <= last:
                rows.append((self.on[i], i, "listed", None, self.seller.price(i, self.on[i])))
            if self.off[i] <= last:
                rows.append((self.off[i], i, "delisted", self.seller.price(i, self.off[i] - 1), None))
        rows += [(m, i, "price_changed", b, a) for m, i, b, a in self._price_events if m <= last]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return [
            {
                "at": m * 60,
                "product_id": offers[i].product_id,
                "event": event,
                "price_before": None if before is None else before / 100,
                "price_after": None if after is None else after / 100,
            }
            for m, i, event, before, after in rows
        ]


class Seller:
    """One room's selling over time: its sessions (cached) and its offers' cumulative counts."""

    def __init__(
        self,
        seed: int,
        key: int,
        schedule: Schedule,
        offers: Sequence[Offer],
        *,
        world_start: int,
        price: PriceFn,
        audience: AudienceFn,
        conversion: float,
        listing: ListingFn | None = None,
        price_period: int = 1,
    ) -> None:
        self.seed = seed
        self.key = key
        self.schedule = schedule
        self.offers = tuple(offers)
        self.price = price
        #: Prices change only at minutes divisible by this (the platform's price windows).
        self.price_period = max(1, price_period)
        self.audience = audience
        self.conversion = conversion
        self.listing = listing or default_listing(seed, key, self.offers)
        live_then = schedule.session_start(world_start)
        #: Sales before this minute are in the base counts.
        self.origin = live_then if live_then is not None else world_start
        self._sessions: dict[int, Session] = {}
        self._done_ends: list[int] = []  # ends of the finished sessions since the origin, in order
        self._done_cum: list[list[int]] = []  # cumulative units per offer after each of them
        self._scan_from = self.origin
        self._counts: tuple[int, list[int]] | None = None

    def session(self, start: int) -> Session:
        """The session that starts at ``start`` (cached; older tables are dropped and recomputed)."""
        found = self._sessions.get(start)
        if found is None:
            found = self._sessions[start] = Session(self, start)
            if len(self._sessions) > _KEEP_SESSIONS:
                for old in sorted(self._sessions)[: len(self._sessions) - _KEEP_SESSIONS // 2]:
                    if old != start:
                        del self._sessions[old]
        return found

    def session_at(self, minute: int) -> Session | None:
        """The session live at ``minute``, or None."""
        start = self.schedule.session_start(minute)
        return None if start is None else self.session(start)

    def _finish_until(self, minute: int) -> None:
        """Record the totals of every session since the origin that ended by ``minute``."""
        n = len(self.offers)
        while True:
            starts = self.schedule.starts_between(self._scan_from, minute)
            if not starts:
                return
            start = starts[0]
            end = self.schedule.session_end(start)
            if end is None or end > minute:
                return
            units = self.session(start).totals(end - 1)[0] if n else []
            prior = self._done_cum[-1] if self._done_cum else [0] * n
            self._done_cum.append([a + b for a, b in zip(prior, units, strict=True)])
            self._done_ends.append(end)
            self._scan_from = end

    def counts(self, minute: int) -> list[int]:
        """Every offer's cumulative sales count at ``minute`` (base + all units sold up to it)."""
        cached = self._counts
        if cached is not None and cached[0] == minute:
            return cached[1]
        base = [o.base_count for o in self.offers]
        if minute >= self.origin and self.offers:
            self._finish_until(minute)
            k = bisect_right(self._done_ends, minute)
            if k:
                base = [a + b for a, b in zip(base, self._done_cum[k - 1], strict=True)]
            current = self.session_at(minute)
            if current is not None and current.start >= self.origin:
                base = [a + b for a, b in zip(base, current.totals(minute)[0], strict=True)]
        self._counts = (minute, base)
        return base

    def recent(self, now_minute: int) -> list[Session]:
        """The sessions the truth reports at ``now_minute``: started by then, live at some minute
        of the last ``LOOKBACK_MINUTES``, and not before the origin."""
        if now_minute < self.origin:
            return []
        lo = max(self.origin, now_minute - LOOKBACK_MINUTES)
        starts: list[int] = []
        first = self.schedule.session_start(lo)
        if first is not None and first >= self.origin:
            starts.append(first)
        starts += [s for s in self.schedule.starts_between(lo, now_minute) if s not in starts]
        return [self.session(s) for s in starts]
