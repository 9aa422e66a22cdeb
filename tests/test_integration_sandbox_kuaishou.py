"""The Kuaishou part of the sandbox, run as a subprocess and checked over HTTP.

Checks: the did bootstrap and the answers without it; the shapes of values the real samples in
``tests/fixtures/sandbox_shapes/kuaishou`` also carry (ID forms, display-string counts, the list
author object); values against the ground truth; faults; the served log; rate limits. The last
test reads the sandbox's answers with the real parsers (``spiders.kuaishou``): neither side
imports the other, so agreement here is evidence, not a tautology.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from models.errors import BlockedError, PageError, PermanentPageError
from spiders.kuaishou import pages
from tests.plugins.sandbox import SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

SHAPES = Path(__file__).parent / "fixtures" / "sandbox_shapes" / "kuaishou"
LIVE = "/live.kuaishou.com"
SHOP = "/openapi.kwaixiaodian.com"
STATE_RE = re.compile(r"window\.__INITIAL_STATE__=(.*?);\(function\(\)\{var s;", re.S)
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def real(name: str) -> Any:
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ks() -> Iterator[SandboxProcess]:
    process = start_sandbox("--platforms", "kuaishou", "--time-scale", "0", "--no-chaos", "--streamers", "120")
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def did(ks: SandboxProcess) -> dict[str, str]:
    home = ks.get(f"{LIVE}/")
    cookies = dict(c.split(";", 1)[0].split("=", 1) for c in home.set_cookies)
    assert home.status == 200 and re.fullmatch(r"web_[0-9a-f]{32}", cookies["did"])
    assert (cookies["clientid"], cookies["kpn"]) == ("3", "GAME_ZONE")
    again = ks.get(f"{LIVE}/", cookies={"did": cookies["did"]})
    assert not any(c.startswith("did=") for c in again.set_cookies), "a known did is kept"
    return {"did": cookies["did"]}


@pytest.fixture(scope="module")
def truth(ks: SandboxProcess) -> dict[str, Any]:
    return ks.truth("kuaishou")


def _faulty(truth: dict[str, Any]) -> set[str]:
    return {p for ids in truth["faults"].values() for p in ids}


def _state(body: bytes) -> dict[str, Any]:
    match = STATE_RE.search(body.decode())
    assert match, body[:300]
    return json.loads(match[1].replace(":undefined", ":null"))


def test_without_did_the_page_verifies_and_the_api_answers_400002(ks: SandboxProcess, truth: dict[str, Any]) -> None:
    pid = truth["rooms"][0]["principalId"]
    page = ks.get(f"{LIVE}/u/{pid}")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    item = _state(page.body)["liveroom"]["playList"][0]
    assert item["errorType"]["type"] == 400002 and item["isLiving"] is False
    for path in ("live_api/liveroom/livedetail", "live_api/baseuser/userinfo/byid"):
        data = ks.get(f"{LIVE}/{path}?principalId={pid}").json()["data"]
        assert data["result"] == 400002 and data["url"].startswith("https://captcha.zt.kuaishou.com/")


def test_values_have_the_shapes_of_the_real_samples(
    ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]
) -> None:
    follow = real("live_kuaishou_myfollow_living_list_wrapped_2021-07.reconstructed.json")["data"]["follow"][0]
    recommended = real("live_m_graphql_webLiveDetail_fragment_2020.repaired.json")["data"]["webLiveDetail"]
    rec = recommended["moreRecommendList"][0]
    room = next(r for r in truth["rooms"] if r["isLiving"] and r["principalId"] not in _faulty(truth))
    detail = ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={room['principalId']}", cookies=did).json()[
        "data"
    ]
    stream_id = detail["liveStream"]["id"]
    for real_id in (follow["liveStreamId"], rec["id"]):  # 4SLhBtIwqZ4, QaUxYsNBQQQ
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}", real_id) and re.fullmatch(r"[A-Za-z0-9_-]{11}", stream_id)
    assert type(detail["config"]["watchingCount"]) is type(follow["watchingCount"]) is type(rec["watchingCount"]) is str
    assert type(detail["config"]["likeCount"]) is type(follow["likeCount"]) is str
    assert type(detail["config"]["startTime"]) is type(follow["startTime"]) is int
    assert len(str(detail["config"]["startTime"])) == len(str(follow["startTime"]))
    assert re.fullmatch(r"3x[0-9a-z]{13}", follow["user"]["eid"])
    assert all(re.fullmatch(r"3x[0-9a-z]{13}", u["eid"]) for u in truth["users"])
    game = next(c for c in truth["categories"] if c["name"] == room["gameName"])
    board = "gameboard" if len(game["id"]) < 7 else "non-gameboard"
    listed = ks.get(f"{LIVE}/live_api/{board}/list?filterType=0&page=1&pageSize=50&gameId={game['id']}", cookies=did)
    item = next(i for i in listed.json()["data"]["list"] if i["author"]["id"] == room["principalId"])
    assert set(item["author"]) == set(rec["user"]) - {"__typename"}  # {id, name, avatar}
    assert set(item) >= {"id", "caption", "poster", "watchingCount"} & set(rec)


def test_room_endpoints_agree_with_truth(ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]) -> None:
    faulty = _faulty(truth)
    for room in [r for r in truth["rooms"] if r["principalId"] not in faulty][:30]:
        pid = room["principalId"]
        item = _state(ks.get(f"{LIVE}/u/{pid}", cookies=did).body)["liveroom"]["playList"][0]
        assert item["isLiving"] is room["isLiving"] and item["author"]["id"] == pid
        detail = ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={pid}", cookies=did).json()["data"]
        if room["isLiving"]:
            assert detail["result"] == 1 and detail["liveStream"]["id"] == room["liveStreamId"]
            assert (
                item["gameInfo"]["watchingCount"] == room["displayWatchingCount"] == detail["gameInfo"]["watchingCount"]
            )
            assert detail["config"]["startTime"] == room["startTime"]
        else:
            assert detail == {"result": 671}
        user = ks.get(f"{LIVE}/live_api/baseuser/userinfo/byid?principalId={pid}", cookies=did).json()["data"]
        assert user["result"] == 1 and user["userInfo"]["living"] is room["isLiving"]
    unknown = ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId=nobody", cookies=did).json()
    assert unknown == {"data": {"result": 22}}
    page = _state(ks.get(f"{LIVE}/u/nobody", cookies=did).body)
    assert page["liveroom"]["playList"][0]["errorType"]["type"] == 22


def test_categories_and_paginated_lists(ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]) -> None:
    cats = ks.get(f"{LIVE}/live_api/category/data?type=4&page=1&pageSize=20", cookies=did).json()["data"]
    assert [c["id"] for c in cats["list"]] == [c["id"] for c in truth["categories"] if c["type"] == 4]
    assert cats["hasMore"] is False
    for cat in truth["categories"]:
        live = sorted((r for r in truth["rooms"] if r["isLiving"] and r["gameId"] == cat["id"]),
                      key=lambda r: -r["watchingCount"])  # fmt: skip
        board = "gameboard" if len(cat["id"]) < 7 else "non-gameboard"
        first = ks.get(f"{LIVE}/live_api/{board}/list?filterType=0&page=1&pageSize=3&gameId={cat['id']}", cookies=did)
        data = first.json()["data"]
        assert [i["author"]["id"] for i in data["list"]] == [r["principalId"] for r in live[:3]]
        assert data["hasMore"] is (len(live) > 3)
        wrong = "non-gameboard" if board == "gameboard" else "gameboard"
        assert ks.get(f"{LIVE}/live_api/{wrong}/list?gameId={cat['id']}", cookies=did).json()["data"]["list"] == []


def test_shop_items_agree_with_truth(ks: SandboxProcess, truth: dict[str, Any]) -> None:
    shop = next(s for s in truth["shops"] if s["principalId"] not in _faulty(truth))
    param = json.dumps({"pageNumber": 1, "pageSize": 100, "itemStatus": 1})
    got = ks.get(f"{SHOP}/open/item/list/get", params={"access_token": shop["access_token"], "param": param}).json()
    assert got["result"] == 1 and got["data"]["totalItemCount"] == len(shop["items"])
    assert [(i["kwaiItemId"], i["price"], i["volume"], i["userId"]) for i in got["data"]["items"]] == [
        (i["kwaiItemId"], i["price"], i["volume"], shop["userId"]) for i in shop["items"]
    ]
    first = shop["items"][0]
    one = ks.get(
        f"{SHOP}/open/item/get",
        params={"access_token": shop["access_token"], "param": json.dumps({"kwaiItemId": first["kwaiItemId"]})},
    ).json()
    assert (one["data"]["itemId"], one["data"]["price"], one["data"]["volume"]) == (
        first["kwaiItemId"],
        first["price"],
        first["volume"],
    )
    assert ks.get(f"{SHOP}/open/item/list/get", params={"access_token": "nope"}).json()["result"] != 1
    served = [r for r in ks.served("kuaishou", room_id=shop["principalId"]) if r["endpoint"] == "open.item.list.get"]
    assert {(r["kwaiItemId"], r["price"], r["volume"]) for r in served} >= {
        (i["kwaiItemId"], i["price"], i["volume"]) for i in shop["items"]
    }


def test_faults_break_their_answer_only(ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]) -> None:
    faults = truth["faults"]
    (malformed,), (html,), (missing,), (shop_fault,) = (
        faults[k] for k in ("malformed_json", "html_page", "missing_result", "item_missing_id")
    )
    with pytest.raises(ValueError):
        json.loads(ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={malformed}", cookies=did).body)
    reply = ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={html}", cookies=did)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    data = ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={missing}", cookies=did).json()["data"]
    assert "result" not in data and data["liveStream"]["id"]
    shop = next(s for s in truth["shops"] if s["principalId"] == shop_fault)
    items = ks.get(f"{SHOP}/open/item/list/get", params={"access_token": shop["access_token"]}).json()["data"]["items"]
    assert "kwaiItemId" not in items[0]
    for pid in (malformed, html, missing):  # the room page of a fault room is fine
        assert _state(ks.get(f"{LIVE}/u/{pid}", cookies=did).body)["liveroom"]["playList"][0]["isLiving"] is True


def test_served_log_records_viewers(ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]) -> None:
    room = next(r for r in truth["rooms"] if r["isLiving"] and r["principalId"] not in _faulty(truth))
    ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={room['principalId']}", cookies=did)
    last = [r for r in ks.served("kuaishou", room_id=room["principalId"]) if r["endpoint"] == "livedetail"][-1]
    assert (last["live_status"], last["online"], last["likeCount"]) == (1, room["watchingCount"], room["likeCount"])


def test_parsers_read_the_sandbox_answers(ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]) -> None:
    faulty = _faulty(truth)
    real_host = "https://live.kuaishou.com"
    uid = {u["principalId"]: str(u["user_id"]) for u in truth["users"]}
    for room in [r for r in truth["rooms"] if r["principalId"] not in faulty][:12]:
        pid = room["principalId"]
        for path in (f"/u/{pid}", f"/live_api/liveroom/livedetail?principalId={pid}"):
            records = pages.parse(ks.get(LIVE + path, cookies=did).body, url=real_host + path, fetched_at=T0)
            parsed = records[0]
            if parsed.kind == "lead":  # livedetail 671 names no user id (spiders/kuaishou/records.py)
                assert (path.startswith("/live_api"), parsed.principal_id, parsed.is_live) == (True, pid, False)
                assert not room["isLiving"]
                continue
            # Keyed by the user id; the principalId of the URL is the room's web_rid.
            assert (parsed.room_id, parsed.web_rid) == (uid[pid], pid)
            assert parsed.status == ("live" if room["isLiving"] else "offline")
            if room["isLiving"]:
                assert parsed.viewers_now_text in (None, room["displayWatchingCount"])
                assert abs(parsed.viewers_now - room["watchingCount"]) <= max(500, room["watchingCount"] // 20)
                assert parsed.title == room["caption"]
    with pytest.raises(BlockedError):
        pages.parse(ks.get(f"{LIVE}/u/{pid}").body, url=f"{real_host}/u/{pid}", fetched_at=T0)
    for kind in ("malformed_json", "html_page", "missing_result"):
        (pid,) = truth["faults"][kind]
        body = ks.get(f"{LIVE}/live_api/liveroom/livedetail?principalId={pid}", cookies=did).body
        with pytest.raises(PermanentPageError):
            pages.parse(body, url=f"{real_host}/live_api/liveroom/livedetail?principalId={pid}", fetched_at=T0)
    shop = next(s for s in truth["shops"] if s["principalId"] not in faulty)
    body = ks.get(f"{SHOP}/open/item/list/get", params={"access_token": shop["access_token"]}).body
    products = [r for r in pages.parse(body, url="https://openapi.kwaixiaodian.com/open/item/list/get",
                                       fetched_at=T0) if r.kind == "product"]  # fmt: skip
    assert [(p.product_id, p.price, p.sales) for p in products] == [
        (str(i["kwaiItemId"]), i["price"] / 100, i["volume"]) for i in shop["items"][:20]
    ]


# -- rate limits and risk blocks on a sandbox of their own -----------------------------------------
@pytest.fixture(scope="module")
def lively() -> Iterator[SandboxProcess]:
    process = start_sandbox(
        "--platforms", "kuaishou", "--streamers", "20", "--time-scale", "0", "--no-chaos", "--seed", "5"
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


def test_rate_limit_is_per_did_and_answers_result_2(lively: SandboxProcess) -> None:
    pid = lively.truth("kuaishou")["rooms"][0]["principalId"]
    path = f"{LIVE}/live_api/liveroom/livedetail?principalId={pid}"
    try:
        lively.set_config(rate_limit=5)
        replies = [lively.get(path, cookies={"did": "web_greedy"}) for _ in range(20)]
        limited = [r for r in replies if r.status == 200 and r.json()["data"].get("result") == 2]
        assert len(limited) >= 10
        page = lively.get(f"{LIVE}/u/{pid}", cookies={"did": "web_greedy"})
        assert _state(page.body)["liveroom"]["playList"][0]["errorType"]["type"] == 2
        assert lively.get(path, cookies={"did": "web_polite"}).json()["data"]["result"] in (1, 671)
        lively.set_config(rate_limit=0, block_rate=1)
        blocked = lively.get(path, cookies={"did": "web_polite"}).json()["data"]
        assert blocked["result"] == 400002
        with pytest.raises(PageError):
            pages.parse(json.dumps({"data": blocked}).encode(), url="https://live.kuaishou.com" + path[len(LIVE):],
                        fetched_at=T0)  # fmt: skip
    finally:
        lively.set_config(rate_limit=0, block_rate=0)


# -- www.kuaishou.com GraphQL -------------------------------------------------------------------
WWW = "/www.kuaishou.com"
VISION = Path(__file__).parent / "fixtures/kuaishou/vision_profile/www_graphql_2022-05/inputs"


def _vision(ks: SandboxProcess, user_id: str, cookies: dict[str, str] | None = None, operation: str = "visionProfile"):
    query = f"query {operation}($userId: String) {{\n  {operation}(userId: $userId) {{\n    result\n  }}\n}}\n"
    body = {"operationName": operation, "variables": {"userId": user_id}, "query": query}
    return ks.request(f"{WWW}/graphql", method="POST", body=body, cookies=cookies)


def _keys(obj: Any) -> Any:
    """The nested key structure of a JSON object (values dropped), to compare shapes."""
    return {k: _keys(v) for k, v in obj.items()} if isinstance(obj, dict) else type(obj).__name__


def test_vision_profile_has_the_real_answers_shape_and_names_the_user_by_eid(
    ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]
) -> None:
    real_answer = json.loads(next(VISION.iterdir()).read_text(encoding="utf-8"))
    user = next(u for u in truth["users"] if u["fan"] >= 10_000)
    answer = _vision(ks, user["eid"], did).json()
    assert _keys(answer) == _keys(real_answer)  # same keys at every level, same value types
    profile = answer["data"]["visionProfile"]["userProfile"]
    assert profile["profile"]["user_id"] == user["eid"] and profile["profile"]["user_name"] == user["user_name"]
    assert re.fullmatch(r"\d+(\.\d)?w", profile["ownerCount"]["fan"])  # "169.8w" in the real answer
    (lead,) = pages.parse(json.dumps(answer).encode(), url="https://www.kuaishou.com/graphql", fetched_at=T0)
    assert (lead.kind, lead.principal_id) == ("lead", user["eid"])  # no numeric id in the answer
    refused = _vision(ks, user["eid"]).json()  # no did cookie
    assert refused["data"]["visionProfile"]["result"] == 2 and refused["data"]["visionProfile"]["userProfile"] is None
    with pytest.raises(BlockedError):
        pages.parse(json.dumps(refused).encode(), url="https://www.kuaishou.com/graphql", fetched_at=T0)
    unknown = _vision(ks, "visionVideoDetail", did, operation="visionVideoDetail")
    assert unknown.status == 400 and unknown.json()["errors"][0]["message"]
    with pytest.raises(PermanentPageError, match="GraphQL errors"):
        pages.parse(unknown.body, url="https://www.kuaishou.com/graphql", fetched_at=T0, kind="vision_profile")


def test_follow_living_lists_the_viewers_followed_streamers_live_now(
    ks: SandboxProcess, did: dict[str, str], truth: dict[str, Any]
) -> None:
    """``/live_api/follow/living`` in the real answer's shape; a viewer (its userId cookie) follows
    a fixed share of users; the parser keys each entry by the user id."""
    real_item = json.loads(next((Path(__file__).parent / "fixtures/kuaishou/follow_living").glob("*/inputs/*"))
                           .read_text(encoding="utf-8"))["data"]["follow"][0]
    answer = ks.get(f"{LIVE}/live_api/follow/living", cookies={**did, "userId": "1680869379"}).json()
    follow = answer["data"]["follow"]
    assert answer["data"]["result"] == 1 and follow
    assert set(follow[0]) <= set(real_item) and set(follow[0]["user"]) <= set(real_item["user"])
    assert {type(follow[0][k]) for k in ("watchingCount", "likeCount")} == {type(real_item["watchingCount"])}
    living = {str(r["principalId"]) for r in truth["rooms"] if r["isLiving"]}
    assert {f["user"]["principalId"] for f in follow} <= living
    other = ks.get(f"{LIVE}/live_api/follow/living", cookies={**did, "userId": "42"}).json()["data"]["follow"]
    assert {f["liveStreamId"] for f in other} != {f["liveStreamId"] for f in follow}
    assert ks.get(f"{LIVE}/live_api/follow/living", cookies=did).json()["data"]["follow"] == []
    assert ks.get(f"{LIVE}/live_api/follow/living").json()["data"]["result"] == 400002
    url = "https://live.kuaishou.com/live_api/follow/living"
    records = pages.parse(json.dumps(answer).encode(), url=url, fetched_at=T0)
    uid = {u["principalId"]: str(u["user_id"]) for u in truth["users"]}
    rooms = [r for r in records if r.kind == "room"]
    assert sorted(r.room_id for r in rooms) == sorted(uid[f["user"]["principalId"]] for f in follow)
