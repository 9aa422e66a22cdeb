"""Sessions built from what the sandbox's answers show, sampled every minute, against the
sandbox's truth of the same sessions, on each platform (issue 14 item 4).

The sampling (``bench/sessions.py``) reads the world methods the sandbox's routes serve from:
status, viewers, the product presented, and every shelf product's price and sales count as shown
(Douyin's hidden counts stay hidden). The pure builder turns the readings into sessions."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bench.sessions import _douyin, _kuaishou, _taobao, sample
from crawlers.sessions.build import sessions_of_room
from sandbox.douyin.world import DouyinWorld
from sandbox.kuaishou.world import KsWorld
from sandbox.taobao.world import TaoWorld

WORLDS = {"douyin": (DouyinWorld, _douyin), "taobao": (TaoWorld, _taobao), "kuaishou": (KsWorld, _kuaishou)}


def _built(platform: str, sampled):
    sessions = sessions_of_room(platform, sampled.room_id, sampled.snaps, sampled.shelf, sampled.room,
                                now=sampled.snaps[-1]["captured_at"], computed_at=datetime.now(UTC))
    start = sampled.truth["started_at"]
    return min(sessions, key=lambda s: abs(s.first_seen_live_at.timestamp() - start))


@pytest.mark.parametrize("platform", sorted(WORLDS))
def test_sessions_sampled_every_minute_match_the_truth(platform):
    cls, sessions = WORLDS[platform]
    rng = random.Random(3)
    checked = 0
    for _, session, read, ids in [x for _, x in zip(range(6), sessions(cls(5, 80)), strict=False)]:
        sampled = sample(platform, session, read, ids, 60, rng)
        truth, built = sampled.truth, _built(platform, sampled)
        hidden = set(truth.get("sales_hidden") or ())
        visible = sum(v["gmv"] for pid, v in truth["products"].items() if pid not in hidden)
        units = sum(v["units"] for pid, v in truth["products"].items() if pid not in hidden)
        assert built.session_id == truth["session_id"] and built.status == "ended"
        assert built.samples >= (session.end - session.start) - 1
        assert built.coverage >= 0.95
        assert built.gmv_low <= visible <= built.gmv_high
        assert built.gmv_estimate == pytest.approx(visible, rel=0.05)
        assert built.units_sold == pytest.approx(units, rel=0.05, abs=3)
        # What sold, per product: each within its bounds, and together the session's figures.
        sold = {p.product_id: p for p in built.products_sold}
        assert sold and set(sold) <= set(truth["products"]) - hidden
        for pid, p in sold.items():
            true = truth["products"][pid]
            assert p.units_low <= true["units"] <= (p.units_high if p.units_high is not None else true["units"]), pid
            assert p.gmv_low - 0.01 <= true["gmv"] <= p.gmv_high + 0.01, pid
        assert sum(p.units for p in sold.values()) == pytest.approx(built.units_sold, abs=len(sold))
        assert sum(p.gmv for p in sold.values()) == pytest.approx(built.gmv_estimate, abs=0.01 * len(sold))
        gmvs = [p.gmv for p in built.products_sold]
        assert gmvs == sorted(gmvs, reverse=True)
        # Shelf changes: every listing, delisting and price change the truth has, at its minute.
        seen = {(e.product_id, e.event, int(e.at.timestamp()) // 60) for e in built.shelf_events}
        for event in truth["shelf_events"]:
            assert (event["product_id"], event["event"], event["at"] // 60) in seen, event
        if platform == "douyin":  # the one platform whose answers name the product presented
            found = {(p.product_id, int(p.from_.timestamp()) // 60) for p in built.products_presented}
            for p in truth["presented"]:
                assert (p["product_id"], p["from"] // 60) in found, p
        checked += 1
    assert checked >= 3
