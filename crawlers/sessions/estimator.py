"""Units sold and GMV of one live session, from the shelf's sales counts: a pure, versioned module.

Inputs: for each product on the room's shelf, its readings in time order (cumulative sales as
shown, the text it was shown as, whether it was a lower bound, the price then shown), and the
part of the session each product was on the shelf for. Output: units and GMV with bounds. The
version (``ESTIMATOR_VERSION``) is stored on every session, so a session computed by an older
version can be found and recomputed (``livefleet sessions rebuild``).

Definitions
-----------
*What a reading says.* A count shown exactly (an int, ``"57"``) is the true cumulative count
``c``. A count shown rounded says only that ``c`` lies in an interval: ``"1.2万+"`` (a floor with
``+``) is ``[12000, 12999]``; ``"1.2万"`` without ``+`` may be a floor or rounded to nearest, so
``[11500, 12999]``; ``"1000+"`` is ``[1000, 1999]`` (the step is the place of its last non-zero
digit); ``"999+"`` (all nines: a cap) has no upper end. Counts never go down, so each reading's
interval is narrowed by the others: ``lo_i = max(lo_j, j <= i)``, ``hi_i = min(hi_j, j >= i)``.

*Units.* Between two readings ``i`` and ``i+1`` the product sold ``u_i = c_{i+1} - c_i`` units.
The estimate takes the middle of each narrowed interval, ``m_i = (lo_i + hi_i) / 2``, and
``u_i ~ max(0, m_{i+1} - m_i)``; its bounds are ``max(0, lo_{i+1} - hi_i)`` and
``hi_{i+1} - lo_i``. Over the product's readings the units telescope to ``c_last - c_first``,
bounded by ``[max(0, lo_last - hi_first), hi_last - lo_first]``.

*GMV* = the sum over sampling intervals of units sold times the price then shown. The price of an
interval is the mean of the prices at its two ends for the estimate (a price change inside the
interval is not located more precisely), their minimum for the low bound and their maximum for the
high bound. The high bound is the smaller of the interval sum and the product's total high units
times its highest price (both are bounds; the second is tighter when counts are rounded).

*The unobserved edges.* Units sold between the product's first time on the shelf in this session
(the session start, or the shelf sample before the one that first showed it) and its first
reading, and between its last reading and its last time on the shelf, were not seen. Edges longer
than ``MAX_EDGE_S`` (10 minutes) are left out: the session's ``coverage`` reports them. The
estimate adds them at the product's observed mean rate (units per second over its readings); the
high bound at ``EDGE_RATE_FACTOR`` (2) times its highest observed interval rate (intervals of at
least ``MIN_RATE_SPAN_S``), at its highest price; the low bound adds nothing. This allowance, not
rounding, is the only part of the bounds
that rests on an assumption (sales at the edges do not run faster than twice the fastest
observed interval).

``gmv_observed`` is the GMV over the readings alone (the estimate without the edges).

*Unknowns.* A product without two readings with counts contributes no units (null, not zero);
without a price it contributes units but no GMV. A session with no shelf readings has null
units and GMV; with readings but no sale, zero (a known zero). ``units_sold_is_lower_bound`` is
true when a contributing count was shown rounded (the figure is an estimate within bounds, not a
count). ``avg_order_value`` (客单价) = GMV / units, ``uv_value`` (UV价值) = GMV / cumulative
viewers, ``conversion`` = units / cumulative viewers: each null when its inputs are, or when the
divisor is zero.

*Per product* (``products_sold``): each product with two or more counted readings, its units, GMV
and their bounds as above, by GMV, highest first. The session's figures are their sums.

Versions: 1.0.0 the session figures; 1.1.0 adds ``products_sold`` (definitions unchanged).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Stored on every session as ``estimator_version``; bump on any change of a definition above.
ESTIMATOR_VERSION = "1.1.0"
#: The high bound's allowance for the unobserved edges: this many times the fastest observed rate.
EDGE_RATE_FACTOR = 2.0
#: Rates come only from readings at least this far apart (two answers fetched together say nothing
#: of a rate); with less than this between a product's first and last reading, no edge allowance.
MIN_RATE_SPAN_S = 30.0
#: An unobserved edge longer than this is not extrapolated (the product's sales there are unknown;
#: the session's ``coverage`` says how much of it was seen).
MAX_EDGE_S = 600.0

_ROUNDED = re.compile(r"(\d+(?:\.(\d+))?)\s*(万|w|W|亿|千|k|K)")
_PLAIN = re.compile(r"(\d[\d,]*)\s*\+")
_UNITS = {"万": 10_000, "w": 10_000, "W": 10_000, "亿": 100_000_000, "千": 1_000, "k": 1_000, "K": 1_000}


@dataclass(frozen=True, slots=True)
class Reading:
    """One shelf reading of one product."""

    at: datetime
    sales: int | None
    sales_text: str | None = None
    lower_bound: bool | None = None
    price: float | None = None


@dataclass(frozen=True, slots=True)
class ProductEstimate:
    """Units and GMV of one product over the session (module docstring for the definitions)."""

    product_id: str
    units: float | None
    units_low: int | None
    units_high: int | None
    gmv: float | None
    gmv_low: float | None
    gmv_high: float | None
    rounded: bool
    #: GMV over the readings alone (no edge allowance).
    gmv_observed: float | None = None


def count_interval(sales: int | None, text: str | None, lower_bound: bool | None) -> tuple[int, int | None] | None:
    """``[lo, hi]`` of the true cumulative count behind one reading (``hi`` None: unbounded)."""
    if sales is None:
        return None
    shown = (text or "").strip()
    plus = shown.endswith("+") or bool(lower_bound)
    match = _ROUNDED.search(shown)
    if match:
        decimals = len(match[2] or "")
        step = _UNITS[match[3]] // (10**decimals) if _UNITS[match[3]] >= 10**decimals else 1
        low = sales if plus else max(0, sales - step // 2)
        return low, sales + step - 1
    plain = _PLAIN.search(shown)
    if plain or lower_bound:
        digits = (plain[1] if plain else str(sales)).replace(",", "")
        if set(digits) == {"9"}:  # 99+, 999+: a cap, not a rounding
            return sales, None
        stripped = digits.rstrip("0")
        step = 10 ** (len(digits) - len(stripped)) if stripped else 1
        return sales, sales + step - 1
    return sales, sales


def _narrow(intervals: Sequence[tuple[int, int | None]]) -> list[tuple[int, float]]:
    """Each reading's interval narrowed by monotonicity (counts never go down)."""
    lows: list[int] = []
    running = 0
    for low, _ in intervals:
        running = max(running, low)
        lows.append(running)
    highs: list[float] = [math.inf] * len(intervals)
    running_high: float = math.inf
    for i in range(len(intervals) - 1, -1, -1):
        high = intervals[i][1]
        running_high = min(running_high, math.inf if high is None else high)
        highs[i] = max(running_high, lows[i])  # inconsistent readings: trust the floor
    return list(zip(lows, highs, strict=True))


def estimate_product(product_id: str, readings: Sequence[Reading], *, on_shelf_from: datetime | None = None,
                     on_shelf_to: datetime | None = None) -> ProductEstimate:
    """Units and GMV of one product from its readings in time order (module docstring)."""
    shown = [(r, count_interval(r.sales, r.sales_text, r.lower_bound)) for r in readings]
    counted = [r for r, interval in shown if interval is not None]
    intervals = [interval for _, interval in shown if interval is not None]
    rounded = any(interval != (r.sales, r.sales) for r, interval in zip(counted, intervals, strict=True))
    if len(counted) < 2:
        return ProductEstimate(product_id, None, None, None, None, None, None, rounded)
    bounds = _narrow(intervals)
    mids = [(lo + hi) / 2 if hi != math.inf else float(lo) for lo, hi in bounds]
    prices = [r.price for r in counted]
    known_prices = [p for p in prices if p is not None]
    units = 0.0
    gmv = gmv_low = gmv_high_sum = 0.0
    priced = bool(known_prices)
    top_rate = 0.0
    for i in range(len(counted) - 1):
        step_units = max(0.0, mids[i + 1] - mids[i])
        low_units = max(0.0, bounds[i + 1][0] - bounds[i][1])
        high_units = bounds[i + 1][1] - bounds[i][0]
        units += step_units
        ends = [p for p in (prices[i], prices[i + 1]) if p is not None] or known_prices
        if ends:
            gmv += step_units * sum(ends) / len(ends)
            gmv_low += low_units * min(ends)
            gmv_high_sum += high_units * max(ends)
        seconds = (counted[i + 1].at - counted[i].at).total_seconds()
        if seconds >= MIN_RATE_SPAN_S and high_units != math.inf:
            top_rate = max(top_rate, high_units / seconds)
    total_low = max(0, int(bounds[-1][0] - bounds[0][1])) if bounds[0][1] != math.inf else 0
    total_high = bounds[-1][1] - bounds[0][0]
    top_price = max(known_prices) if priced else None
    gmv_high = min(gmv_high_sum, total_high * top_price) if priced and top_price is not None else None
    # The unobserved edges: before the first and after the last reading, while on the shelf.
    span = (counted[-1].at - counted[0].at).total_seconds()
    observed = gmv
    if span >= MIN_RATE_SPAN_S and total_high != math.inf:  # readings closer than that: their whole span
        top_rate = max(top_rate, total_high / span)
    edge = 0.0
    for gap in ((counted[0].at - on_shelf_from).total_seconds() if on_shelf_from is not None else 0.0,
                (on_shelf_to - counted[-1].at).total_seconds() if on_shelf_to is not None else 0.0):
        if 0.0 < gap <= MAX_EDGE_S:
            edge += gap
    if edge > 0 and span >= MIN_RATE_SPAN_S:
        extra = units / span * edge
        units += extra
        if priced:
            gmv += extra * (sum(known_prices) / len(known_prices))
        if total_high != math.inf:
            total_high += EDGE_RATE_FACTOR * top_rate * edge
        if gmv_high is not None and top_price is not None:
            gmv_high += EDGE_RATE_FACTOR * top_rate * edge * top_price
    high = None if total_high == math.inf else int(math.ceil(total_high))
    return ProductEstimate(
        product_id,
        units,
        total_low,
        high,
        gmv if priced else None,
        gmv_low if priced else None,
        None if gmv_high is None or gmv_high == math.inf else gmv_high,
        rounded,
        observed if priced else None,
    )


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or not bottom:
        return None
    return top / bottom


def session_figures(estimates: Iterable[ProductEstimate], *, viewers_total: int | None,
                    shelf_seen: bool) -> dict[str, Any]:
    """The session's sales fields (SCHEMA ``live_sessions``) from its products' estimates."""
    counted = [e for e in estimates if e.units is not None]
    if not shelf_seen or not counted:
        nothing: dict[str, Any] = dict.fromkeys(
            ("units_sold", "units_sold_is_lower_bound", "units_low", "units_high", "gmv_estimate", "gmv_low",
             "gmv_high", "gmv_observed", "avg_order_value", "uv_value", "conversion"))
        return nothing
    units = sum(e.units or 0.0 for e in counted)
    priced = [e for e in counted if e.gmv is not None]
    gmv = sum(e.gmv or 0.0 for e in priced) if priced else None
    gmv_low = sum(e.gmv_low or 0.0 for e in priced) if priced else None
    unbounded = any(e.gmv_high is None for e in priced) or any(e.units_high is None for e in counted)
    gmv_high = None if not priced or unbounded else sum(e.gmv_high or 0.0 for e in priced)
    observed = sum(e.gmv_observed or 0.0 for e in priced) if priced else None
    units_high = None if unbounded else sum(e.units_high or 0 for e in counted)
    units_sold = int(round(units))
    return {
        "units_sold": units_sold,
        "units_sold_is_lower_bound": any(e.rounded for e in counted),
        "units_low": sum(e.units_low or 0 for e in counted),
        "units_high": units_high,
        "gmv_estimate": None if gmv is None else round(gmv, 2),
        "gmv_low": _fen_down(gmv_low),
        "gmv_high": _fen_up(gmv_high),
        "gmv_observed": None if observed is None else round(observed, 2),
        "avg_order_value": None if gmv is None or units_sold == 0 else round(gmv / units, 2),
        "uv_value": None if gmv is None else _round(_ratio(gmv, viewers_total), 4),
        "conversion": _round(_ratio(units, viewers_total), 6),
    }


def product_figures(estimate: ProductEstimate, readings: Sequence[Reading]) -> dict[str, Any] | None:
    """One product's entry of the session's ``products_sold`` (None without two counted readings):
    its units and GMV with their bounds, rounded as the session's are (units to a unit, the GMV
    bounds outwards to the fen), the price at its last reading and how many readings it had."""
    if estimate.units is None or estimate.units_low is None:
        return None
    prices = [r.price for r in readings if r.price is not None]
    return {
        "product_id": estimate.product_id,
        "units": int(round(estimate.units)),
        "units_low": estimate.units_low,
        "units_high": estimate.units_high,
        "units_is_lower_bound": estimate.rounded,
        "gmv": None if estimate.gmv is None else round(estimate.gmv, 2),
        "gmv_low": _fen_down(estimate.gmv_low),
        "gmv_high": _fen_up(estimate.gmv_high),
        "price": prices[-1] if prices else None,
        "readings": len(readings),
    }


def products_sold(estimates: Iterable[ProductEstimate],
                  readings: Mapping[str, Sequence[Reading]]) -> list[dict[str, Any]]:
    """The session's ``products_sold``: ``product_figures`` of each product that has them, by GMV
    (unknown last), then units, highest first."""
    rows = [row for e in estimates if (row := product_figures(e, readings.get(e.product_id, ()))) is not None]
    return sorted(rows, key=lambda r: (r["gmv"] is None, -(r["gmv"] or 0.0), -r["units"], r["product_id"]))


# Bounds are rounded outwards to the fen, so rounding never moves the truth outside them.
def _fen_down(value: float | None) -> float | None:
    return None if value is None else max(0.0, math.floor(value * 100 - 1e-6) / 100)


def _fen_up(value: float | None) -> float | None:
    return None if value is None else math.ceil(value * 100 + 1e-6) / 100


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def readings_of(groups: Iterable[Iterable[Mapping[str, Any]]]) -> dict[str, list[Reading]]:
    """Product readings from stored product-snapshot documents (in groups), per product, in time order."""
    out: dict[str, list[Reading]] = {}
    for doc in sorted((d for group in groups for d in group), key=lambda d: d["captured_at"]):
        out.setdefault(str(doc["product_id"]), []).append(Reading(
            at=doc["captured_at"], sales=doc.get("sales"), sales_text=doc.get("sales_text"),
            lower_bound=doc.get("sales_is_lower_bound"), price=doc.get("price")))
    return out
