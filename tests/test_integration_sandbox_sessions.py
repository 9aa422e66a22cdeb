"""The sandbox's ground truth of live sessions over HTTP (issue 14 item 4).

``/__sandbox__/truth`` of every platform carries ``sessions``, whose live ones are the rooms
the same truth calls live, with the ids the payloads carry; and on a sandbox of its own whose
clock the test moves one minute at a time, what the Douyin shelf and the Kuaishou shop serve
moves exactly as the truth's units of the session do.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from sandbox.douyin.sign import sign
from sandbox.process import SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
KEYS = {"platform", "session_id", "room_id", "streamer_id", "started_at", "ended_at", "status", "has_shop", "units",
        "gmv", "products", "presented", "shelf_events", "viewers_peak"}  # fmt: skip
MINUTES = 6


def _faulty(truth: dict[str, Any]) -> set[str]:
    return {str(i) for ids in truth["faults"].values() for i in ids}


def _consistent(session: dict[str, Any]) -> None:
    assert KEYS <= set(session)
    assert session["units"] == sum(p["units"] for p in session["products"].values())
    assert session["gmv"] == pytest.approx(sum(p["gmv"] for p in session["products"].values()), abs=0.01)
    assert (session["ended_at"] is None) == (session["status"] == "live")
    for p in session["presented"]:
        assert p["product_id"] in session["products"] and (p["to"] is None or p["to"] > p["from"])
    assert [p for p in session["presented"] if p["to"] is None] in ([], session["presented"][-1:])


def test_every_platform_reports_its_sessions(sandbox: SandboxProcess) -> None:
    live_ids = {}
    for platform in ("douyin", "kuaishou", "taobao", "bilibili"):
        truth = sandbox.truth(platform)
        sessions = truth["sessions"]
        assert sessions and all(s["platform"] == platform for s in sessions)
        for s in sessions:
            _consistent(s)
        live_ids[platform] = {s["session_id"]: s for s in sessions if s["status"] == "live"}
        if platform == "douyin":
            rooms = {r["id_str"]: r for r in truth["rooms"] if r["status"] == 2}
        elif platform == "kuaishou":
            rooms = {r["liveStreamId"]: r for r in truth["rooms"] if r["isLiving"]}
        elif platform == "taobao":
            rooms = {life["liveId"]: life for life in truth["lives"] if life["roomStatus"] == 1}
            for live_id, life in rooms.items():
                assert live_ids[platform][live_id]["started_at"] * 1000 == life["startTime"]
        else:
            rooms = {f"{r['room_id']}:{s['started_at']}": r for r in truth["rooms"] if r["live_status"] == 1
                     for s in sessions if s["room_id"] == str(r["room_id"]) and s["status"] == "live"}  # fmt: skip
            assert not any(s["has_shop"] or s["units"] for s in sessions)
        assert set(rooms) == set(live_ids[platform]), platform
        assert any(s["units"] for s in sessions) == (platform != "bilibili")


# -- a moving clock -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxProcess]:
    process = start_sandbox("--platforms", "douyin,kuaishou", "--time-scale", "0", "--no-chaos", "--streamers", "60")
    try:
        yield process
    finally:
        process.stop()


def _douyin_shelf(sb: SandboxProcess, room: dict[str, Any]) -> dict[str, Any]:
    params = urlencode({"device_platform": "webapp", "aid": 6383, "room_id": room["id_str"],
                        "author_id": room["owner_user_id_str"], "offset": 0, "limit": 100})  # fmt: skip
    query = params + "&a_bogus=" + quote(sign(params, UA), safe="")
    headers = {"User-Agent": UA, "Cookie": "ttwid=1%7CtestTTWID%7C1780000000%7Cabc"}
    req = urllib.request.Request(f"{sb.url}/live.douyin.com/live/promotions/page/?{query}", headers=headers)
    with _OPENER.open(req, timeout=30) as resp:
        return json.loads(resp.read())


def _kuaishou_items(sb: SandboxProcess, shop: dict[str, Any]) -> dict[str, dict[str, Any]]:
    param = json.dumps({"pageNumber": 1, "pageSize": 100})
    got = sb.get("/openapi.kwaixiaodian.com/open/item/list/get",
                 params={"access_token": shop["access_token"], "param": param}).json()  # fmt: skip
    return {str(i["kwaiItemId"]): i for i in got["data"]["items"]}


def test_served_counts_move_as_the_truth_does(sb: SandboxProcess) -> None:
    douyin, kuaishou = sb.truth("douyin"), sb.truth("kuaishou")
    dy_faulty, ks_faulty = _faulty(douyin), _faulty(kuaishou)
    dy_rooms = [r for r in douyin["rooms"] if r["status"] == 2 and 5 <= r["product_count"] <= 100
                and r["web_rid"] not in dy_faulty and not r["fault"]]  # fmt: skip
    ks_live = {r["principalId"]: r for r in kuaishou["rooms"] if r["isLiving"]}
    ks_shops = [s for s in kuaishou["shops"] if s["principalId"] in ks_live and s["principalId"] not in ks_faulty]
    assert dy_rooms and ks_shops
    # The busiest of each, so that units sell within a few minutes.
    room = max(dy_rooms, key=lambda r: r["user_count"])
    shop = max(ks_shops, key=lambda s: ks_live[s["principalId"]]["watchingCount"])
    dy_session_id, ks_session_id = room["id_str"], ks_live[shop["principalId"]]["liveStreamId"]
    seen: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for _ in range(MINUTES):
        shelf = _douyin_shelf(sb, room)
        items = _kuaishou_items(sb, shop)
        dy_truth = next(s for s in sb.truth("douyin")["sessions"] if s["session_id"] == dy_session_id)
        ks_truth = next(s for s in sb.truth("kuaishou")["sessions"] if s["session_id"] == ks_session_id)
        seen.append((shelf, items, dy_truth, ks_truth))
        sb.clock(advance_seconds=60)
    moved = {"douyin": 0, "kuaishou": 0}
    for (shelf0, items0, dy0, ks0), (shelf1, items1, dy1, ks1) in zip(seen, seen[1:], strict=False):
        if dy1["status"] == "live":
            before = {p["product_id"]: p.get("sale_num") for p in shelf0["promotions"]}
            for p in shelf1["promotions"]:
                if p.get("sale_num") is not None and before.get(p["product_id"]) is not None:
                    delta = p["sale_num"] - before[p["product_id"]]
                    units = dy1["products"][p["product_id"]]["units"] - dy0["products"][p["product_id"]]["units"]
                    assert delta == units
                    moved["douyin"] += delta
            current = [x["product_id"] for x in dy1["presented"] if x["to"] is None]
            shown = shelf1["current_promotion_id"]
            served = [p["product_id"] for p in shelf1["promotions"] if p["promotion_id"] == shown]
            assert served == current
        if ks1["status"] == "live":
            for pid, item in items1.items():
                if pid in items0:
                    units = ks1["products"][pid]["units"] - ks0["products"][pid]["units"]
                    assert item["volume"] - items0[pid]["volume"] == units
                    moved["kuaishou"] += units
    assert all(moved.values()), moved
