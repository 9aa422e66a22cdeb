"""End to end on Douyin: room pages rendered in Chromium, API calls signed by the page's own
script and sent over plain HTTP, and what landed equals the sandbox's ground truth."""

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
    """One worker crawls the recommended category of a frozen Douyin world (faults on, no chaos)."""
    tmp = tmp_path_factory.mktemp("douyin")
    with start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos", "--streamers", "60") as sandbox:
        _, db_name, stats = run_crawl(tmp, sandbox, redis_server.url, mongo_server.url, spider="douyin", seeds=[
            {"kind": "category", "partition": "720", "partition_type": "1", "max_pages": 10}])
        truth, served = sandbox.truth("douyin"), sandbox.served("douyin")
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    yield {"db": client[db_name], "stats": stats, "truth": truth, "served": served}
    client.drop_database(db_name)
    client.close()


def _live(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id_str"]: r for r in truth["rooms"] if r["status"] == 2}


def test_live_rooms_and_their_streamers_equal_the_ground_truth(crawled):
    truth, db = crawled["truth"], crawled["db"]
    live = _live(truth)
    broken = set(truth["faults"]["truncated_json"])
    rooms = {d["room_id"]: d for d in db.rooms.find({"platform": "douyin"})}
    assert set(rooms) == set(live), "every live room of the category, by its session id"
    streamers = {s["uid"]: s for s in truth["streamers"]}
    for room_id, expected in live.items():
        doc = rooms[room_id]
        assert doc["web_rid"] == expected["web_rid"] and doc["title"] == expected["title"]
        assert doc["streamer_id"] == expected["owner_user_id_str"]
        if expected["web_rid"] in broken:
            continue  # its page never got its state: what the category list showed is what we have
        assert doc["status"] == "live"
        assert doc["viewers_now"] == expected["user_count"]
        assert doc["likes"] == expected["like_count"]
        owner = db.streamers.find_one({"platform": "douyin", "streamer_id": expected["owner_user_id_str"]})
        truth_owner = streamers[expected["owner_user_id_str"]]
        assert owner["sec_id"] == truth_owner["sec_uid"] and owner["nickname"] == truth_owner["nickname"]
        assert owner["followers"] == truth_owner["follower_count"]
        assert owner["works_count"] == truth_owner["aweme_count"]


def test_shelves_land_as_products_and_positioned_snapshots(crawled):
    truth, db = crawled["truth"], crawled["db"]
    live = _live(truth)
    broken_shelves = set(truth["faults"]["html_page"]) | set(truth["faults"]["truncated_json"])
    missing_id_rooms = {web_rid for web_rid, items in truth["shelves"].items()
                        if any(i["product_id"] in truth["faults"]["missing_id"] for i in items)}
    checked = 0
    for room_id, room in live.items():
        if room["web_rid"] in broken_shelves | missing_id_rooms:
            continue
        for item in truth["shelves"].get(room["web_rid"], []):
            product = db.products.find_one({"platform": "douyin", "product_id": item["product_id"]})
            assert product is not None, item
            assert product["title"] == item["title"]
            assert product["price"] == pytest.approx(item["min_price"] / 100)
            assert product["shop_id"] == item["shop_id"]
            snap = db.product_snapshots.find_one({"platform": "douyin", "product_id": item["product_id"],
                                                  "room_id": room_id})
            assert snap["rank_in_room"] == item["index"]
            assert snap["price"] == pytest.approx(item["min_price"] / 100)
            checked += 1
    assert checked > 50


def test_only_room_pages_needed_the_browser(crawled):
    stats, truth = crawled["stats"], crawled["truth"]
    rendered = stat_sum(stats, "livefleet/spider/pages/douyin/room_page")
    assert rendered == len(_live(truth)) - len(truth["faults"]["truncated_json"])
    # One signer page signs everything (a new one only after a browser recycle).
    assert stat_sum(stats, "livefleet/douyin/signer_pages") == 1 + stat_sum(stats, "livefleet/browser/recycled")
    api_calls = sum(stat_sum(stats, f"livefleet/spider/pages/douyin/{kind}")
                    for kind in ("partition_rooms", "shelf", "product_detail", "user_profile"))
    assert stat_sum(stats, "livefleet/douyin/signed") >= api_calls > 3 * rendered


def test_room_pages_render_in_reused_pages_and_the_worker_still_closes_idle(crawled):
    stats = crawled["stats"]
    # Room pages are rendered in pages kept open between requests, at most 4 per session context...
    opened = stat_sum(stats, "livefleet/browser/pages_opened")
    reused = stat_sum(stats, "livefleet/browser/pages_reused")
    assert reused > opened > 0
    assert opened <= 4 * 3 * (1 + stat_sum(stats, "livefleet/browser/recycled"))
    # ... and pages held open for reuse do not keep the worker busy: it went idle and closed by itself.
    assert [s["finish_reason"] for s in stats] == ["finished"]


def test_broken_pages_are_kept_in_quarantine(crawled):
    truth, db = crawled["truth"], crawled["db"]
    records = list(db.quarantine.find({"platform": "douyin"}))
    assert all(r.get("payload") for r in records), "the raw payload is kept"
    pages = {r["url"].rsplit("/", 1)[1]: r for r in records if "/live.douyin.com/" in r["url"] and "?" not in r["url"]}
    for web_rid in truth["faults"]["truncated_json"]:  # the page's own API call broke: no state
        assert pages[web_rid]["reason"].startswith("PermanentPageError: no room state")
    shelves = [r for r in records if "/live/promotions/page/" in r["url"]]
    live = _live(truth)
    room_of = {r["web_rid"]: rid for rid, r in live.items()}
    for web_rid in truth["faults"]["html_page"]:  # an error page instead of the shelf: retried, then kept
        assert any(f"room_id={room_of[web_rid]}" in r["url"] and r["reason"].startswith("GaveUp: ")
                   for r in shelves)
    missing = [r for r in shelves if "product_id" in r["reason"]]
    assert len(missing) == len(truth["faults"]["missing_id"])
