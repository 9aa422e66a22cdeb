"""Unit tests of the sandbox's Kuaishou world: determinism, IDs, live values, shops, faults, truth."""

from __future__ import annotations

import re

import pytest

from sandbox.kuaishou.world import FAULT_KINDS, KsWorld, display_count
from sandbox.world import DEFAULT_START

MINUTE = int(DEFAULT_START // 60)


@pytest.fixture(scope="module")
def world() -> KsWorld:
    return KsWorld(7, 300)


def test_same_seed_same_world_other_seed_differs() -> None:
    assert KsWorld(3, 40).truth(DEFAULT_START) == KsWorld(3, 40).truth(DEFAULT_START)
    assert KsWorld(3, 40).truth(DEFAULT_START)["users"] != KsWorld(4, 40).truth(DEFAULT_START)["users"]
    with pytest.raises(ValueError):
        KsWorld(1, 0)


def test_ids_have_the_real_forms_and_are_unique(world: KsWorld) -> None:
    principals = [r.user.principal_id for r in world.rooms]
    assert len(set(principals)) == len(principals) == 300
    for room in world.rooms:
        assert re.fullmatch(r"3x[0-9a-z]{13}", room.user.eid)  # like 3x59tkbj2kecvgi
        assert room.user.principal_id == (room.user.kwai_id or room.user.eid)
    assert any(r.user.kwai_id for r in world.rooms) and any(not r.user.kwai_id for r in world.rooms)
    st = next(world.live_now(r, MINUTE) for r in world.rooms if world.live_now(r, MINUTE).living)
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", st.live_stream_id or "")  # like 4SLhBtIwqZ4
    assert len(str(st.start_ms)) == 13


def test_live_fraction_and_sessions(world: KsWorld) -> None:
    live = sum(world.live_now(r, MINUTE).living for r in world.rooms)
    assert 0.3 * 300 < live < 0.7 * 300
    room = next(r for r in world.rooms if world.live_now(r, MINUTE).living and not r.fault)
    a, b = world.live_now(room, MINUTE), world.live_now(room, MINUTE + 1)
    if b.living:  # same session: same ID and start, likes grow
        assert (a.live_stream_id, a.start_ms) == (b.live_stream_id, b.start_ms) and b.likes >= a.likes
    offline = next(r for r in world.rooms if not world.live_now(r, MINUTE).living)
    st = world.live_now(offline, MINUTE)
    assert (st.living, st.live_stream_id, st.start_ms, st.watching, st.likes) == (False, None, 0, 0, 0)


def test_item_sales_never_go_back_and_prices_are_fen(world: KsWorld) -> None:
    room = next(r for r in world.rooms if r.items)
    item = room.items[0]
    volumes = [world.item_now(room, item, MINUTE + m)[1] for m in range(0, 600, 7)]
    assert volumes == sorted(volumes) and volumes[-1] >= item.base_volume
    price, _ = world.item_now(room, item, MINUTE)
    assert isinstance(price, int) and price % 10 == 0 and price <= item.base_price


def test_faults_exist_and_can_be_turned_off(world: KsWorld) -> None:
    assert all(len(world.faults[kind]) == 1 for kind in FAULT_KINDS)
    for kind, (principal,) in world.faults.items():
        room = world.by_principal[principal]
        assert world.live_now(room, MINUTE).living, "fault rooms are live around the clock"
        if kind == "item_missing_id":
            assert room.items and room.access_token
    assert not any(KsWorld(7, 300, faults=False).faults.values())


def test_display_count() -> None:
    assert [display_count(n) for n in (0, 1638, 9999, 10000, 12345, 27000, 1_234_567)] == [
        "0", "1638", "9999", "1万", "1.2万", "2.7万", "123.5万"
    ]  # fmt: skip


def test_truth_uses_kuaishou_field_names(world: KsWorld) -> None:
    truth = world.truth(DEFAULT_START)
    assert truth["platform"] == "kuaishou" and len(truth["users"]) == len(truth["rooms"]) == 300
    assert set(truth["users"][0]) >= {"principalId", "eid", "kwaiId", "user_id", "user_name", "headurl", "fan"}
    room_keys = {"principalId", "isLiving", "liveStreamId", "caption", "watchingCount", "likeCount"}
    assert set(truth["rooms"][0]) >= room_keys
    shop = truth["shops"][0]
    assert set(shop) == {"userId", "principalId", "access_token", "items"}
    assert set(shop["items"][0]) == {"kwaiItemId", "title", "categoryName", "price", "volume"}
    assert {c["type"] for c in truth["categories"]} == set(range(2, 9))
    assert set(truth["faults"]) == set(FAULT_KINDS)
