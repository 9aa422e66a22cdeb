"""The session estimator and builder as pure functions: what a rounded count says, bounds that
contain the truth of simulated sessions, and how snapshots become broadcasts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from crawlers.sessions import estimator
from crawlers.sessions.build import sessions_of_room
from crawlers.sessions.estimator import Reading, count_interval, estimate_product, session_figures

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("sales", "text", "flag", "expected"), [
    (57, "57", False, (57, 57)),
    (57, None, None, (57, 57)),
    (12000, "1.2万+", True, (12000, 12999)),
    (12000, "1.2万", False, (11500, 12999)),  # floor or nearest: both covered
    (66000, "已售6.6万+", True, (66000, 66999)),
    (100000, "10w+", True, (100000, 109999)),
    (350000000, "3.5亿", None, (345000000, 359999999)),
    (1000, "1000+", True, (1000, 1999)),
    (999, "999+", True, (999, None)),  # a cap: no upper end
    (None, "暂无", None, None),
])
def test_a_reading_says_an_interval(sales, text, flag, expected):
    assert count_interval(sales, text, flag) == expected


def _display(n: int) -> tuple[int, str, bool]:
    if n < 10_000:
        return n, str(n), False
    tenths = n // 1000
    return tenths * 1000, f"{tenths / 10:.1f}".removesuffix(".0") + "万+", True


@pytest.mark.parametrize("seed", range(200))
def test_bounds_contain_the_truth_of_simulated_sessions(seed):
    """Random sessions: counts shown exactly below 10 000 and as 万+ floors above, prices that
    change, sampling every 1-5 minutes starting up to a minute late: the truth lies within the
    bounds, and with exact counts the estimate is within a few percent of it."""
    rng = random.Random(seed)
    minutes = rng.randint(30, 180)
    every = rng.randint(1, 5)
    phase = rng.random() * 60
    count = rng.choice([rng.randint(0, 500), rng.randint(8_000, 200_000)])
    price = rng.choice([9.9, 19.9, 49.0, 199.0])
    truth_units = truth_gmv = 0
    readings = []
    for m in range(minutes):
        if rng.random() < 0.02:
            price = round(price * rng.choice([0.8, 0.9, 1.1]), 2)
        units = rng.randint(0, 12)
        count += units
        truth_units += units
        truth_gmv += units * price
        if m % every == 0:
            shown, text, bound = _display(count)
            readings.append(Reading(T0 + timedelta(minutes=m, seconds=phase), shown, text, bound, price))
    # Units of minute m are in the count read during minute m; those of minutes before the first
    # reading are not seen (the edge allowance covers them in the high bound).
    est = estimate_product("p", readings, on_shelf_from=T0, on_shelf_to=T0 + timedelta(minutes=minutes))
    assert est.units_low is not None and est.units_high is not None
    assert est.units_low <= truth_units <= est.units_high
    assert est.gmv_low <= truth_gmv + 1e-6 <= est.gmv_high + 1e-6
    if not any(r.lower_bound for r in readings) and every == 1:
        assert est.units == pytest.approx(truth_units, rel=0.05, abs=6)


def test_unknowns_are_null_and_a_known_zero_is_zero():
    assert session_figures([], viewers_total=100, shelf_seen=False)["gmv_estimate"] is None
    flat = [Reading(T0, 10, "10", False, 5.0), Reading(T0 + timedelta(minutes=1), 10, "10", False, 5.0)]
    figures = session_figures([estimate_product("p", flat)], viewers_total=None, shelf_seen=True)
    assert (figures["units_sold"], figures["gmv_estimate"]) == (0, 0.0)
    assert figures["avg_order_value"] is None and figures["uv_value"] is None and figures["conversion"] is None
    unpriced = [Reading(T0, 10, None, False, None), Reading(T0 + timedelta(minutes=1), 14, None, False, None)]
    figures = session_figures([estimate_product("p", unpriced)], viewers_total=40, shelf_seen=True)
    assert (figures["units_sold"], figures["gmv_estimate"], figures["conversion"]) == (4, None, 0.1)
    one = [Reading(T0, 10, None, False, 2.0)]  # one reading: no units known
    assert estimate_product("p", one).units is None


def _live(room: str, minute: int, **fields) -> dict:
    return {"platform": "bilibili", "room_id": room, "captured_at": T0 + timedelta(minutes=minute),
            "status": "live", **fields}


def test_a_bilibili_run_seen_first_without_its_start_joins_the_broadcast_the_later_snapshots_name():
    sid = f"5440:{int((T0 - timedelta(minutes=30)).timestamp())}"
    snaps = [_live("5440", 0, viewers_now=10), _live("5440", 1, viewers_now=12, session_id=sid),
             _live("5440", 2, viewers_now=11, session_id=sid),
             _live("5440", 40, viewers_now=5),  # 38 minutes later, no id: another broadcast
             {"platform": "bilibili", "room_id": "5440", "captured_at": T0 + timedelta(minutes=41),
              "status": "offline"}]
    sessions = sessions_of_room("bilibili", "5440", snaps, [], None, now=T0 + timedelta(minutes=45), computed_at=T0)
    assert [(s.session_id, s.session_id_provisional, s.samples, s.status) for s in sessions] == [
        (sid, False, 3, "ended"), (f"5440:{int((T0 + timedelta(minutes=40)).timestamp())}", True, 1, "ended")]
    assert sessions[0].started_at == T0 - timedelta(minutes=30) and sessions[0].start_latency_s == 1800
    assert sessions[1].ended_seen_at == T0 + timedelta(minutes=41)


def test_a_product_missing_from_one_shelf_sample_is_not_delisted():
    def shelf(minute: int, *ids: str) -> list[dict]:
        return [{"platform": "douyin", "room_id": "r", "product_id": p, "captured_at": T0 + timedelta(minutes=minute),
                 "sales": 10 + minute, "price": 3.0} for p in ids]
    snaps = [{"platform": "douyin", "room_id": "r", "captured_at": T0 + timedelta(minutes=m), "status": "live",
              "viewers_now": 1} for m in range(5)]
    products = (shelf(0, "a", "b", "c", "d") + shelf(1, "a", "c", "d") + shelf(2, "a", "b", "c", "d")
                + shelf(3, "a", "c", "d") + shelf(4, "a", "c", "d")
                + shelf(4, "c"))  # a lone product's page (a detail, the one presented) is no shelf reading

    (session,) = sessions_of_room("douyin", "r", snaps, products, None, now=T0 + timedelta(minutes=5), computed_at=T0)
    assert [(e.event, e.product_id, e.at.minute) for e in session.shelf_events] == [("delisted", "b", 3)]
    assert session.estimator_version == estimator.ESTIMATOR_VERSION
