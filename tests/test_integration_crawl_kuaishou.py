"""End to end on Kuaishou: sessions warmed by the first visit (``did``), categories, rooms,
streamers and an authorising shop's items, compared with the sandbox's ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from models.normalize import parse_count
from sandbox.process import start_sandbox
from tests.crawl_helpers import run_crawl, stat_sum

pytestmark = pytest.mark.integration

TYPES = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, redis_server, mongo_server) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("kuaishou")
    with start_sandbox("--platforms", "kuaishou", "--time-scale", "0", "--no-chaos", "--streamers", "80") as sandbox:
        truth = sandbox.truth("kuaishou")
        shops = [s for s in truth["shops"] if s["items"]][:2]
        seeds: list[dict[str, Any]] = [{"kind": "categories", "types": TYPES, "max_pages": 10}]
        seeds += [{"kind": "shop", "access_token": s["access_token"], "max_pages": 10} for s in shops]
        _, db_name, stats = run_crawl(tmp, sandbox, redis_server.url, mongo_server.url, spider="kuaishou",
                                      seeds=seeds)
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    yield {"db": client[db_name], "stats": stats, "truth": truth, "shops": shops}
    client.drop_database(db_name)
    client.close()


def test_live_rooms_and_streamers_equal_the_ground_truth(crawled):
    """Rooms and streamers are keyed by the numeric user id (spiders/kuaishou/records.py), the
    principalId of the room URL is the room's web_rid."""
    truth, db = crawled["truth"], crawled["db"]
    faults = {p for kind in ("malformed_json", "html_page", "missing_result") for p in truth["faults"][kind]}
    users = {u["principalId"]: u for u in truth["users"]}
    live = {r["principalId"]: r for r in truth["rooms"] if r["isLiving"]}
    rooms = {d["room_id"]: d for d in db.rooms.find({"platform": "kuaishou"})}
    # A room whose own answer is broken is named only by the list (principalId, no user id): no room
    # document, rather than one under a second key.
    assert set(rooms) == {str(users[p]["user_id"]) for p in live if p not in faults}
    assert faults & set(live), "the crawl met broken room answers"
    for principal, expected in live.items():
        uid = str(users[principal]["user_id"])
        streamer = db.streamers.find_one({"platform": "kuaishou", "streamer_id": uid})
        assert streamer["nickname"] == users[principal]["user_name"]
        assert db.streamers.count_documents({"platform": "kuaishou", "nickname": streamer["nickname"],
                                             "avatar_url": streamer["avatar_url"]}) == 1
        if principal in faults:
            assert streamer["is_live"] is True  # from the profile, which is not broken
            continue
        doc = rooms[uid]
        assert (doc["streamer_id"], doc["web_rid"]) == (uid, principal)
        assert doc["title"] == expected["caption"]
        # Kuaishou shows viewers as text ("6.8万"): the number is what the text says.
        assert doc["viewers_now"] == parse_count(expected["displayWatchingCount"]).value
        if not expected["displayWatchingCount"].isdigit():
            assert doc["viewers_now_text"] == expected["displayWatchingCount"]
        assert doc["status"] == "live"
        fan = users[principal]["fan"]
        if "followers_text" in streamer:  # shown as "6.8万": the text is kept, the number follows it
            assert streamer["followers"] == parse_count(streamer["followers_text"]).value
            assert abs(streamer["followers"] - fan) <= 0.05 * fan
        else:
            assert streamer["followers"] == fan


def test_every_session_was_warmed_by_a_first_visit(crawled):
    stats = crawled["stats"]
    assert stat_sum(stats, "livefleet/sessions/warmed/kuaishou") == 3
    assert stat_sum(stats, "livefleet/spider/blocked/kuaishou") == 0, "no request went out without did"


def test_authorising_shops_items_land_with_prices_in_yuan(crawled):
    truth, db, shops = crawled["truth"], crawled["db"], crawled["shops"]
    bad = set(truth["faults"]["item_missing_id"])
    checked = 0
    for shop in shops:
        if shop["principalId"] in bad:
            continue
        for item in shop["items"]:
            doc = db.products.find_one({"platform": "kuaishou", "product_id": str(item["kwaiItemId"])})
            assert doc["title"] == item["title"]
            assert doc["price"] == pytest.approx(item["price"] / 100)
            assert "access_token=REDACTED" in doc["source_url"], "a shop's token is never stored"
            checked += 1
    assert checked > 0
    assert db.products.count_documents({"source_url": {"$regex": "access_token=(?!REDACTED)"}}) == 0


def test_verification_answers_cool_the_session_down_and_lose_nothing(tmp_path, redis_server, mongo_server):
    """Risk control answers (verification state, "too fast") cool the session that drew them down;
    the request is retried with another session and every live room still lands."""
    with start_sandbox("--platforms", "kuaishou", "--time-scale", "0", "--streamers", "60", "--no-faults",
                       "--block-rate", "0.1", "--error-rate", "0", "--slow-rate", "0", "--rate-limit", "0") as sandbox:
        _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="kuaishou",
                                      seeds=[{"kind": "categories", "types": TYPES, "max_pages": 10}], rate=25,
                                      LIVEFLEET_SESSION_COOLDOWN_SECONDS="0.3")
        truth = sandbox.truth("kuaishou")
    with MongoClient(mongo_server.url) as client:
        db = client[db_name]
        uid = {u["principalId"]: str(u["user_id"]) for u in truth["users"]}
        live = {uid[r["principalId"]] for r in truth["rooms"] if r["isLiving"]}
        assert {d["room_id"] for d in db.rooms.find({"status": "live"}, {"room_id": 1})} == live
        assert db.quarantine.count_documents({}) == 0
        client.drop_database(db_name)
    blocked = stat_sum(stats, "livefleet/spider/blocked/kuaishou")
    assert blocked > 0
    # Each blocked session was warmed again before its next use.
    assert stat_sum(stats, "livefleet/sessions/warmed/kuaishou") > 3


def test_a_www_profile_seed_lands_one_streamer_keyed_by_user_id(tmp_path, redis_server, mongo_server):
    """``{"kind": "profile", "eid": ...}``: www.kuaishou.com's visionProfile (POST GraphQL) names the
    user by eid only; the spider follows that lead to the live site, whose answers carry the user
    id, and the person lands once, keyed by it, with the eid as sec_id."""
    with start_sandbox("--platforms", "kuaishou", "--time-scale", "0", "--no-chaos", "--no-faults",
                       "--streamers", "30") as sandbox:
        truth = sandbox.truth("kuaishou")
        live = {r["principalId"] for r in truth["rooms"] if r["isLiving"]}
        ranked = sorted(truth["users"], key=lambda u: u["principalId"] not in live)  # live ones first
        users = [u for u in ranked if u["kwaiId"]][:2] + [u for u in ranked if not u["kwaiId"]][:1] + ranked[-1:]
        assert any(u["principalId"] in live for u in users) and any(u["principalId"] not in live for u in users)
        _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="kuaishou",
                                      seeds=[{"kind": "profile", "eid": u["eid"]} for u in users])
    assert stat_sum(stats, "livefleet/spider/pages/kuaishou/vision_profile") == len(users)
    with MongoClient(mongo_server.url) as client:
        db = client[db_name]
        for user in users:
            (doc,) = db.streamers.find({"sec_id": user["eid"]})
            assert (doc["streamer_id"], doc["nickname"]) == (str(user["user_id"]), user["user_name"])
            assert abs(doc["followers"] - user["fan"]) <= 500  # shown as "1.2万": one decimal of 万
            living = next(r["isLiving"] for r in truth["rooms"] if r["principalId"] == user["principalId"])
            assert doc["is_live"] is living
            room = db.rooms.find_one({"room_id": str(user["user_id"])})  # an offline livedetail names no id
            assert (room or {}).get("streamer_id") == (str(user["user_id"]) if living else None)
        assert db.streamers.count_documents({}) == len(users)
        assert db.quarantine.count_documents({}) == 0
        client.drop_database(db_name)
