"""End to end on Taobao: mtop calls signed per session with the gateway's token, tokens that
expire mid-crawl refreshed and re-signed, and what landed equals the sandbox's ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from sandbox.process import start_sandbox
from tests.crawl_helpers import run_crawl, stat_sum

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, redis_server, mongo_server) -> Iterator[dict[str, Any]]:
    """Every live room of a frozen Taobao world, with tokens that expire every 2 seconds."""
    tmp = tmp_path_factory.mktemp("taobao")
    with start_sandbox("--platforms", "taobao", "--time-scale", "0", "--no-chaos", "--streamers", "40") as sandbox:
        sandbox.control("taobao/tokens", {"lifetime_seconds": 2})
        truth = sandbox.truth("taobao")
        live = [life for life in truth["lives"] if life["roomStatus"] == 1]
        _, db_name, stats = run_crawl(tmp, sandbox, redis_server.url, mongo_server.url, spider="taobao",
                                      seeds=[{"kind": "room", "live_id": life["liveId"]} for life in live],
                                      rate=15)
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    yield {"db": client[db_name], "stats": stats, "truth": truth, "live": live}
    client.drop_database(db_name)
    client.close()


def test_rooms_and_anchors_equal_the_ground_truth(crawled):
    truth, db, live = crawled["truth"], crawled["db"], crawled["live"]
    broken = set(truth["faults"]["truncated_json"])
    anchors = {a["accountId"]: a for a in truth["anchors"]}
    rooms = {d["room_id"]: d for d in db.rooms.find({"platform": "taobao"})}
    assert set(rooms) == {life["liveId"] for life in live} - broken
    for life in live:
        if life["liveId"] in broken:
            continue
        doc = rooms[life["liveId"]]
        assert doc["streamer_id"] == life["accountId"] and doc["title"] == life["title"]
        assert doc["status"] == "live"
        assert doc["viewers_now"] == int(life["joinCount"]) and doc["viewers_total"] == int(life["viewCount"])
        assert doc["likes"] == int(life["praiseCount"])
        anchor = db.streamers.find_one({"platform": "taobao", "streamer_id": life["accountId"]})
        assert anchor["nickname"] == anchors[life["accountId"]]["accountName"]


def test_shelves_and_item_details_land(crawled):
    truth, db, live = crawled["truth"], crawled["db"], crawled["live"]
    skip = set(truth["faults"]["truncated_json"]) | set(truth["faults"]["html_page"]) | set(
        truth["faults"]["missing_item_id"])
    items = {i["itemId"]: i for i in truth["items"]}
    checked = 0
    for life in live:
        if life["liveId"] in skip:
            continue
        for shelf_item in life["items"]:
            snap = db.product_snapshots.find_one({"platform": "taobao", "product_id": shelf_item["itemId"],
                                                  "room_id": life["liveId"]})
            assert snap is not None and snap["rank_in_room"] == shelf_item["goodsIndex"]
            product = db.products.find_one({"platform": "taobao", "product_id": shelf_item["itemId"]})
            assert product["title"] == items[shelf_item["itemId"]]["title"]
            checked += 1
    assert checked > 20


def test_expired_tokens_were_refreshed_and_requests_re_signed(crawled):
    stats = crawled["stats"]
    assert stat_sum(stats, "livefleet/sessions/warmed/taobao") == 3
    assert stat_sum(stats, "retry/reason_count/TokenExpiredError") > 0, "tokens expired during the crawl"
    assert stat_sum(stats, "livefleet/spider/gave_up/taobao") == 0


def test_risk_control_answers_are_retried_on_another_session(tmp_path, redis_server, mongo_server):
    """``FAIL_SYS_USER_VALIDATE``/``RGV587_ERROR`` (HTTP 200) is a block: the session rests, the
    request is retried with another, and every room still lands."""
    with start_sandbox("--platforms", "taobao", "--time-scale", "0", "--streamers", "10", "--no-faults",
                       "--block-rate", "0.1", "--error-rate", "0", "--slow-rate", "0", "--rate-limit", "0") as sandbox:
        live = [life["liveId"] for life in sandbox.truth("taobao")["lives"] if life["roomStatus"] == 1]
        _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="taobao",
                                      seeds=[{"kind": "room", "live_id": live_id} for live_id in live], rate=25,
                                      LIVEFLEET_SESSION_COOLDOWN_SECONDS="0.3")
    with MongoClient(mongo_server.url) as client:
        db = client[db_name]
        assert {d["room_id"] for d in db.rooms.find({"status": "live"}, {"room_id": 1})} == set(live)
        assert db.quarantine.count_documents({}) == 0
        client.drop_database(db_name)
    assert stat_sum(stats, "livefleet/spider/blocked/taobao") > 0
