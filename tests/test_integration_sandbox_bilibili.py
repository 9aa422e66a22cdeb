"""The Bilibili part of the sandbox, run as a subprocess and checked over HTTP.

Every endpoint's answer is compared, key for key (order included) and type for type, with
the matching real payload in ``tests/fixtures/sandbox_shapes/bilibili`` (copied from the
shared real fixtures; see the PROVENANCE.tsv there).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.crawl_helpers import wait_for
from tests.plugins.sandbox import SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

SHAPES = Path(__file__).parent / "fixtures" / "sandbox_shapes" / "bilibili"
LIVE = "/api.live.bilibili.com"
MAIN = "/api.bilibili.com"
BUVID = {"buvid3": "TEST-BUVID3-0000infoc"}


def real(name: str) -> Any:
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))


def shape_errors(want: Any, got: Any, path: str = "$") -> list[str]:
    """Differences in keys (and their order) and value types between a real payload and ours."""
    if want is None or got is None:
        return [] if want is got else [f"{path}: {type(want).__name__} vs {type(got).__name__}"]
    if type(want) is not type(got):
        return [f"{path}: {type(want).__name__} vs {type(got).__name__}"]
    errors: list[str] = []
    if isinstance(want, dict):
        if list(want) != list(got):
            errors.append(f"{path}: keys {list(want)} vs {list(got)}")
        for key in want.keys() & got.keys():
            errors += shape_errors(want[key], got[key], f"{path}.{key}")
    elif isinstance(want, list) and want and got:
        # Each of our items must have the shape of some real item (real lists mix variants).
        for i, item in enumerate(got):
            candidates = [shape_errors(example, item, f"{path}[{i}]") for example in want]
            errors += min(candidates, key=len)
    return errors


@pytest.fixture(scope="module")
def truth(sandbox: SandboxProcess) -> dict[str, Any]:
    return sandbox.truth("bilibili")


@pytest.fixture(scope="module")
def live_room(truth: dict[str, Any]) -> dict[str, Any]:
    faulty = {rid for ids in truth["faults"].values() for rid in ids}
    return next(r for r in truth["rooms"] if r["live_status"] == 1 and r["room_id"] not in faulty)


def _faulty(truth: dict[str, Any], rid: int) -> bool:
    return any(rid in ids for ids in truth["faults"].values())


def ok_json(reply: Any) -> Any:
    assert reply.status == 200, reply.body[:300]
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()


# -- shapes -------------------------------------------------------------------------------------
def test_single_room_endpoints_have_the_real_shapes(
    sandbox: SandboxProcess, live_room: dict[str, Any]
) -> None:
    rid, uid = live_room["room_id"], live_room["uid"]
    cases = [
        ("room_v1_Room_get_info.json", f"{LIVE}/room/v1/Room/get_info?room_id={rid}", None),
        ("room_v1_Room_room_init.json", f"{LIVE}/room/v1/Room/room_init?id={rid}", None),
        ("room_v1_Room_getRoomInfoOld.json", f"{LIVE}/room/v1/Room/getRoomInfoOld?mid={uid}", None),
        ("live_user_v1_Master_info.json", f"{LIVE}/live_user/v1/Master/info?uid={uid}", None),
        (
            "xlive_app-room_v1_index_getInfoByRoom_room3990262_2019.json",
            f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom?room_id={rid}",
            BUVID,
        ),
        (
            "xlive_app-room_v1_index_getInfoByRoom_room3990262_2019.json",
            f"{LIVE}/xlive/app-room/v1/index/getInfoByRoom?room_id={rid}",
            BUVID,
        ),
        ("x_web-interface_card.json", f"{MAIN}/x/web-interface/card?mid={uid}", None),
        ("room_v1_Area_getList.json", f"{LIVE}/room/v1/Area/getList", None),
        (
            "room_v1_Area_getRoomList_area_room_list.json",
            f"{LIVE}/room/v1/Area/getRoomList?parent_area_id=0&area_id=0&page=1",
            None,
        ),
    ]
    for fixture, path, cookies in cases:
        got = ok_json(sandbox.get(path, cookies=cookies))
        assert got["code"] == 0, (path, got)
        assert shape_errors(real(fixture), got) == [], path


def test_batch_endpoints_have_the_real_shapes(sandbox: SandboxProcess, truth: dict[str, Any]) -> None:
    rooms = truth["rooms"][:3]
    got = ok_json(
        sandbox.get(
            f"{LIVE}/room/v1/Room/get_status_info_by_uids", params={"uids[]": [r["uid"] for r in rooms]}
        )
    )
    want = real("room_v1_Room_get_status_info_by_uids.json")
    assert list(got) == list(want) and set(got["data"]) == {str(r["uid"]) for r in rooms}
    example = next(iter(want["data"].values()))
    for value in got["data"].values():
        assert shape_errors(example, value) == []

    got = ok_json(
        sandbox.get(
            f"{LIVE}/xlive/web-room/v1/index/getRoomBaseInfo",
            params={"room_ids": [r["room_id"] for r in rooms], "req_biz": "web_room_componet"},
        )
    )
    want = real("xlive_web-room_v1_index_getRoomBaseInfo.json")
    assert list(got) == list(want) and list(got["data"]) == list(want["data"])
    assert set(got["data"]["by_room_ids"]) == {str(r["room_id"]) for r in rooms}
    example = next(iter(want["data"]["by_room_ids"].values()))
    for value in got["data"]["by_room_ids"].values():
        assert shape_errors(example, value) == []
    by_uid = ok_json(sandbox.get(f"{LIVE}/xlive/web-room/v1/index/getRoomBaseInfo?uids={rooms[0]['uid']}"))
    assert list(by_uid["data"]["by_uids"]) == [str(rooms[0]["uid"])]


# -- values against the ground truth --------------------------------------------------------------
def test_room_endpoints_agree_with_truth_and_each_other(
    sandbox: SandboxProcess, truth: dict[str, Any]
) -> None:
    short = next(r for r in truth["rooms"] if r["short_id"] and not _faulty(truth, r["room_id"]))
    for ident in (short["room_id"], short["short_id"]):
        data = ok_json(sandbox.get(f"{LIVE}/room/v1/Room/get_info?room_id={ident}"))["data"]
        assert (data["room_id"], data["short_id"], data["uid"]) == (
            short["room_id"],
            short["short_id"],
            short["uid"],
        )
        for key in (
            "title",
            "area_id",
            "area_name",
            "parent_area_id",
            "parent_area_name",
            "user_cover",
            "description",
            "live_status",
            "online",
            "live_time",
        ):
            assert data[key] == short[key], key
        init = ok_json(sandbox.get(f"{LIVE}/room/v1/Room/room_init?id={ident}"))["data"]
        assert (init["room_id"], init["live_status"]) == (short["room_id"], short["live_status"])
    info = ok_json(
        sandbox.get(
            f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom?room_id={short['short_id']}", cookies=BUVID
        )
    )["data"]["room_info"]
    assert (info["room_id"], info["online"], info["live_status"]) == (
        short["room_id"],
        short["online"],
        short["live_status"],
    )
    old = ok_json(sandbox.get(f"{LIVE}/room/v1/Room/getRoomInfoOld?mid={short['uid']}"))["data"]
    assert (old["roomid"], old["online"]) == (short["room_id"], short["popularity"])
    assert old["live_status"] == (1 if short["live_status"] == 1 else 0)


def test_user_endpoints_agree_with_truth(sandbox: SandboxProcess, truth: dict[str, Any]) -> None:
    verified = next(s for s in truth["streamers"] if s["official_type"] >= 0)
    for streamer in (truth["streamers"][0], verified):
        card = ok_json(sandbox.get(f"{MAIN}/x/web-interface/card?mid={streamer['uid']}"))["data"]
        c = card["card"]
        assert (c["mid"], c["name"], c["face"], c["sign"], c["fans"], c["attention"]) == (
            str(streamer["uid"]),
            streamer["uname"],
            streamer["face"],
            streamer["sign"],
            streamer["fans"],
            streamer["attention"],
        )
        assert (card["follower"], card["archive_count"], card["like_num"]) == (
            streamer["fans"],
            streamer["archive_count"],
            streamer["like_num"],
        )
        assert c["level_info"]["current_level"] == streamer["user_level"]
        assert c["official_verify"] == {"type": streamer["official_type"], "desc": streamer["official_desc"]}
        master = ok_json(sandbox.get(f"{LIVE}/live_user/v1/Master/info?uid={streamer['uid']}"))["data"]
        assert (master["info"]["uname"], master["follower_num"]) == (streamer["uname"], streamer["fans"])
        assert master["exp"]["master_level"]["level"] == streamer["level"]
        assert master["room_id"] == streamer["room_id"]
        anchor = ok_json(
            sandbox.get(
                f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom?room_id={streamer['room_id']}", cookies=BUVID
            )
        )["data"]["anchor_info"]
        assert (anchor["base_info"]["uname"], anchor["live_info"]["level"]) == (
            streamer["uname"],
            streamer["level"],
        )
        assert anchor["relation_info"]["attention"] == streamer["fans"]


def test_unknown_ids_use_the_real_codes(sandbox: SandboxProcess) -> None:
    def body(path: str, **kw: Any) -> Any:
        return ok_json(sandbox.get(path, **kw))

    assert body(f"{LIVE}/room/v1/Room/get_info?room_id=99")["code"] == 1
    assert body(f"{LIVE}/room/v1/Room/get_info?room_id=abc")["code"] == 1
    assert body(f"{LIVE}/room/v1/Room/room_init?id=99") == {
        "code": 60004,
        "msg": "房间不存在",
        "message": "房间不存在",
        "data": [],
    }
    assert body(f"{MAIN}/x/web-interface/card?mid=99") == {"code": -404, "message": "啥都木有", "ttl": 1}
    assert body(f"{MAIN}/x/web-interface/card?mid=x")["code"] == -400
    assert body(f"{LIVE}/live_user/v1/Master/info?uid=99")["code"] == 1
    assert body(f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom?room_id=99", cookies=BUVID)["code"] == 19002000
    old = body(f"{LIVE}/room/v1/Room/getRoomInfoOld?mid=99")
    assert old["code"] == 0 and old["data"]["roomStatus"] == 0 and old["data"]["roomid"] == 0
    assert body(f"{LIVE}/room/v1/Room/get_status_info_by_uids?uids[]=99")["data"] == {}
    assert body(f"{LIVE}/xlive/web-room/v1/index/getRoomBaseInfo?room_ids=99")["data"]["by_room_ids"] == {}
    assert sandbox.get(f"{LIVE}/room/v1/Room/nothing_here").status == 404


def test_get_info_by_room_needs_buvid3_from_finger_spi(
    sandbox: SandboxProcess, live_room: dict[str, Any]
) -> None:
    path = f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom?room_id={live_room['room_id']}"
    blocked = sandbox.get(path)
    body = ok_json(blocked)
    assert body["code"] == -352 and body["message"] == "-352" and body["ttl"] == 1
    assert body["data"]["v_voucher"].startswith("voucher_")
    assert blocked.headers["x-bili-gaia-vvoucher"] == body["data"]["v_voucher"]
    spi = sandbox.get(f"{MAIN}/x/frontend/finger/spi")
    ids = ok_json(spi)
    assert list(ids) == ["code", "data", "message"] and ids["code"] == 0
    cookies = dict(c.split(";")[0].split("=", 1) for c in spi.set_cookies)
    assert cookies == {"buvid3": ids["data"]["b_3"], "buvid4": ids["data"]["b_4"]}
    assert all("Path=/" in c for c in spi.set_cookies)
    assert ok_json(sandbox.get(path, cookies=cookies))["code"] == 0


def test_area_tree_and_paginated_room_lists(sandbox: SandboxProcess, truth: dict[str, Any]) -> None:
    tree = ok_json(sandbox.get(f"{LIVE}/room/v1/Area/getList"))["data"]
    names = {p["id"]: p["name"] for p in tree}
    assert {
        1: "娱乐",
        2: "网游",
        3: "手游",
        6: "单机游戏",
        9: "虚拟主播",
        10: "生活",
    }.items() <= names.items()
    assert [(p["id"], [int(s["id"]) for s in p["list"]]) for p in tree] == [
        (p["id"], [s["id"] for s in p["list"]]) for p in truth["areas"]
    ]

    parent = max(
        tree,
        key=lambda p: sum(r["parent_area_id"] == p["id"] and r["live_status"] == 1 for r in truth["rooms"]),
    )["id"]
    expected = sorted(
        (r for r in truth["rooms"] if r["parent_area_id"] == parent and r["live_status"] == 1),
        key=lambda r: (-r["online"], r["room_id"]),
    )
    seen: list[dict[str, Any]] = []
    page = 1
    while True:
        data = ok_json(
            sandbox.get(
                f"{LIVE}/room/v1/Area/getRoomList",
                params={
                    "parent_area_id": parent,
                    "area_id": 0,
                    "page": page,
                    "page_size": 4,
                    "sort_type": "online",
                },
            )
        )["data"]
        if not data:
            break
        assert len(data) <= 4
        seen += data
        page += 1
    assert page == -(-len(expected) // 4) + 1
    assert [(d["roomid"], d["online"]) for d in seen] == [(r["room_id"], r["online"]) for r in expected]
    first = ok_json(sandbox.get(f"{LIVE}/room/v1/Area/getRoomList?parent_area_id={parent}&area_id=0&page=1"))
    assert len(first["data"]) == min(30, len(expected))
    sub = expected[0]["area_id"]
    only_sub = ok_json(sandbox.get(f"{LIVE}/room/v1/Area/getRoomList?parent_area_id={parent}&area_id={sub}"))
    assert only_sub["data"] and {d["area_v2_id"] for d in only_sub["data"]} == {sub}
    assert (
        ok_json(sandbox.get(f"{LIVE}/room/v1/Area/getRoomList?parent_area_id=2&area_id=99999"))["data"] == []
    )


def test_fault_rooms_break_get_info_only(sandbox: SandboxProcess, truth: dict[str, Any]) -> None:
    faults = truth["faults"]
    assert all(faults[k] for k in ("malformed_json", "html_page", "missing_field"))
    for rid in faults["malformed_json"]:
        reply = sandbox.get(f"{LIVE}/room/v1/Room/get_info?room_id={rid}")
        assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
        with pytest.raises(ValueError):
            json.loads(reply.body)
    for rid in faults["html_page"]:
        reply = sandbox.get(f"{LIVE}/room/v1/Room/get_info?room_id={rid}")
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
        assert reply.body.lstrip().startswith(b"<!DOCTYPE html>")
    for rid in faults["missing_field"]:
        data = ok_json(sandbox.get(f"{LIVE}/room/v1/Room/get_info?room_id={rid}"))["data"]
        assert "room_id" not in data and data["live_status"] == 1
    all_faulty = [rid for ids in faults.values() for rid in ids]
    for rid in all_faulty:  # everywhere else they are ordinary live rooms
        room = next(r for r in truth["rooms"] if r["room_id"] == rid)
        assert ok_json(sandbox.get(f"{LIVE}/room/v1/Room/room_init?id={rid}"))["data"]["live_status"] == 1
        listed = ok_json(
            sandbox.get(
                f"{LIVE}/room/v1/Area/getRoomList",
                params={
                    "parent_area_id": room["parent_area_id"],
                    "area_id": room["area_id"],
                    "page_size": 100,
                },
            )
        )["data"]
        assert rid in {d["roomid"] for d in listed}


def test_served_log_records_what_was_served(sandbox: SandboxProcess, live_room: dict[str, Any]) -> None:
    rid = live_room["room_id"]
    data = ok_json(sandbox.get(f"{LIVE}/room/v1/Room/get_info?room_id={rid}"))["data"]
    rows = sandbox.served("bilibili", room_id=rid)
    assert rows and all(row["room_id"] == rid for row in rows)
    last = [r for r in rows if r["endpoint"] == "get_info"][-1]
    assert (last["live_status"], last["online"]) == (data["live_status"], data["online"])
    assert isinstance(last["served_at"], float)
    listed = ok_json(sandbox.get(f"{LIVE}/room/v1/Area/getRoomList?parent_area_id=0&area_id=0&page=2"))[
        "data"
    ]
    served = {(r["endpoint"], r["room_id"], r["online"]) for r in sandbox.served("bilibili")}
    assert {("getRoomList", d["roomid"], d["online"]) for d in listed} <= served


def test_health_stats_and_sigterm(sandbox: SandboxProcess) -> None:
    assert sandbox.control("health") == {"ok": True}
    stats = sandbox.stats()
    assert stats["endpoints"]["bilibili:get_info"] > 0 and stats["outcomes"]["ok"] > 0
    assert set(stats["outcomes"]) == {"ok"}, "the session sandbox runs without chaos"
    with start_sandbox("--streamers", "5", "--time-scale", "0") as other:
        assert other.control("health") == {"ok": True}
        assert other.stop() == 0
    interrupted = start_sandbox("--streamers", "5")
    interrupted.proc.send_signal(signal.SIGINT)
    assert interrupted.proc.wait(15) == 0
    interrupted.stop()


# -- chaos, clock and control on a sandbox of their own -------------------------------------------------
@pytest.fixture(scope="module")
def lively() -> Iterator[SandboxProcess]:
    """A small sandbox whose chaos and clock the tests may change."""
    process = start_sandbox("--streamers", "60", "--time-scale", "0", "--no-chaos", "--seed", "11")
    try:
        yield process
    finally:
        assert process.stop() == 0


def test_chaos_settings_change_at_run_time(lively: SandboxProcess) -> None:
    path = f"{LIVE}/room/v1/Area/getList"
    assert lively.config()["error_rate"] == 0
    try:
        assert lively.set_config(error_rate=1)["error_rate"] == 1
        reply = lively.get(path)
        assert reply.status in (502, 503) and reply.headers["server"] == "openresty"
        assert b"openresty" in reply.body and reply.headers["content-type"].startswith("text/html")
        assert lively.control("health") == {"ok": True}, "chaos never touches control endpoints"
        lively.set_config(error_rate=0, block_rate=1)
        blocked = ok_json(lively.get(path))
        assert blocked["code"] == -352 and blocked["data"]["v_voucher"].startswith("voucher_")
        lively.set_config(block_rate=0, slow_rate=1, slow_seconds=0.3)
        began = time.monotonic()
        assert ok_json(lively.get(path))["code"] == 0
        assert time.monotonic() - began >= 0.3
        bad = lively.request("/__sandbox__/config", method="POST", body={"error_rate": 5})
        assert bad.status == 400 and lively.config()["error_rate"] == 0
        outcomes = lively.stats()["outcomes"]
        assert outcomes["error_5xx"] >= 1 and outcomes["blocked"] >= 1 and outcomes["slow"] >= 1
    finally:
        lively.set_config(error_rate=0, block_rate=0, slow_rate=0, rate_limit=0)


def test_rate_limit_answers_412_per_client(lively: SandboxProcess) -> None:
    path = f"{LIVE}/room/v1/Area/getList"
    try:
        lively.set_config(rate_limit=5)
        replies = [lively.get(path, cookies={"buvid3": "greedy"}) for _ in range(20)]
        limited = [r for r in replies if r.status == 412]
        assert len(limited) >= 10 and replies[0].status == 200
        assert limited[0].json() == {"code": -412, "message": "请求被拦截", "ttl": 1, "data": None}
        assert limited[0].headers["server"] == "openresty"
        assert lively.get(path, cookies={"buvid3": "polite"}).status == 200, "another client is not limited"
        assert lively.stats()["outcomes"]["rate_limited"] >= 10
    finally:
        lively.set_config(rate_limit=0)


def test_clock_moves_the_world_and_served_log_clears(lively: SandboxProcess) -> None:
    before = lively.truth()
    assert lively.truth() == before, "a frozen world stands still"
    moved = lively.clock(advance_seconds=3 * 3600)
    assert moved["world_time"] == pytest.approx(before["world_time"] + 3 * 3600)
    after = lively.truth()
    flipped = [
        a
        for a, b in zip(before["rooms"], after["rooms"], strict=True)
        if (a["live_status"] == 1) != (b["live_status"] == 1)
    ]
    assert flipped, "rooms go live or offline as world time passes"
    lively.clock(time_scale=3600)
    t0 = lively.clock()["world_time"]
    wait_for("world time to run", lambda: lively.clock()["world_time"] > t0 + 60, 10, interval=0.01)
    assert lively.clock()["world_time"] > t0 + 60
    lively.clock(time_scale=0)
    lively.get(f"{LIVE}/room/v1/Room/get_status_info_by_uids?uids[]={after['rooms'][0]['uid']}")
    assert lively.served()
    assert lively.clear_served()["ok"] is True
    assert lively.served() == []
