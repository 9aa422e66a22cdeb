"""End to end: workers crawl the Bilibili sandbox through real Redis into the real
MongoDB-compatible server, and what landed equals the sandbox's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from sandbox.process import SandboxProcess, start_sandbox
from tests import crawl_helpers

pytestmark = pytest.mark.integration


def run_crawl(tmp_path: Path, sandbox: SandboxProcess, redis_url: str, mongo_uri: str, *, workers: int,
              seeds: list[dict[str, Any]], rate: float = 0) -> tuple[str, str, list[dict[str, Any]]]:
    return crawl_helpers.run_crawl(tmp_path, sandbox, redis_url, mongo_uri, spider="bilibili", workers=workers,
                                   seeds=seeds, rate=rate)


_stat_sum = crawl_helpers.stat_sum


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, sandbox, redis_server, mongo_server):
    """Two workers crawl every area of the frozen, chaos-free sandbox (faults on)."""
    tmp = tmp_path_factory.mktemp("crawl")
    prefix, db_name, stats = run_crawl(tmp, sandbox, redis_server.url, mongo_server.url, workers=2,
                                       seeds=[{"kind": "areas", "max_pages": 10}])
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    yield {"db": client[db_name], "stats": stats, "truth": sandbox.truth("bilibili"),
           "served": sandbox.served("bilibili"), "prefix": prefix}
    client.drop_database(db_name)
    client.close()


def test_rooms_equal_the_sandbox_ground_truth(crawled):
    truth, db = crawled["truth"], crawled["db"]
    faults = {str(r) for kind in ("malformed_json", "html_page", "missing_field") for r in truth["faults"][kind]}
    live = {str(r["room_id"]): r for r in truth["rooms"] if r["live_status"] == 1}
    rooms = {d["room_id"]: d for d in db.rooms.find({"platform": "bilibili"})}
    assert set(rooms) == set(live), "every live room listed by the sandbox, and nothing else"
    for room_id, expected in live.items():
        doc = rooms[room_id]
        assert doc["streamer_id"] == str(expected["uid"])
        assert doc["title"] == expected["title"]
        assert doc["category"] == expected["area_name"]
        assert doc["parent_category"] == expected["parent_area_name"]
        assert doc["viewers_now"] == expected["online"] == doc["peak_viewers"]
        if room_id not in faults:  # these come from the detail page, which faults break
            assert doc.get("web_rid") == (str(expected["short_id"]) if expected["short_id"] else None)
            assert doc["status"] == "live"
            assert doc["cover_url"] == expected["user_cover"]
            assert doc.get("description") == (expected["description"] or None)  # "" is no description


def test_streamers_equal_the_sandbox_ground_truth(crawled):
    truth, db = crawled["truth"], crawled["db"]
    live_uids = {str(r["uid"]) for r in truth["rooms"] if r["live_status"] == 1}
    expected = {str(s["uid"]): s for s in truth["streamers"] if str(s["uid"]) in live_uids}
    docs = {d["streamer_id"]: d for d in db.streamers.find({"platform": "bilibili"})}
    assert set(docs) == set(expected)
    for uid, s in expected.items():
        doc = docs[uid]
        assert doc["nickname"] == s["uname"]
        assert doc["avatar_url"] == s["face"]
        assert doc.get("bio") == (s["sign"] or None)
        assert doc["followers"] == s["fans"]
        assert doc["following"] == s["attention"]
        assert doc["room_id"] == str(s["room_id"])
        assert doc["verified"] is (s["official_type"] >= 0)
        assert doc["level"] == s["level"]


def test_snapshots_are_values_the_sandbox_served(crawled):
    served: dict[str, set[int]] = {}
    for row in crawled["served"]:
        if row.get("online") is not None:
            served.setdefault(str(row["room_id"]), set()).add(row["online"])
    snapshots = list(crawled["db"].room_snapshots.find({"platform": "bilibili"}))
    assert snapshots
    for snap in snapshots:
        assert snap["viewers_now"] in served[snap["room_id"]]
    # One snapshot per page that showed the room: the list page and the detail page.
    per_room = Counter(s["room_id"] for s in snapshots)
    assert set(per_room.values()) <= {1, 2}


def test_two_workers_shared_the_crawl_and_no_page_was_fetched_twice(crawled):
    truth, stats = crawled["truth"], crawled["stats"]
    faults = truth["faults"]
    live = [r for r in truth["rooms"] if r["live_status"] == 1]
    for worker in stats:
        assert worker.get("livefleet/queue/dequeued", 0) > 0, "both workers took requests from the queue"
    # Every room's detail page and every streamer's card were fetched exactly once fleet-wide
    # (the broken detail pages are counted separately, below).
    broken = len(faults["malformed_json"]) + len(faults["missing_field"]) + len(faults["html_page"])
    assert _stat_sum(stats, "livefleet/spider/pages/bilibili/room_info") == len(live) - broken
    assert _stat_sum(stats, "livefleet/spider/pages/bilibili/user_card") == len(live)
    assert _stat_sum(stats, "livefleet/spider/pages/bilibili/master_info") == len(live)


def test_bad_pages_are_quarantined_with_payload_and_reason(crawled):
    truth, db = crawled["truth"], crawled["db"]
    faults = truth["faults"]
    records = {d["url"].split("room_id=")[1]: d for d in db.quarantine.find({"platform": "bilibili"})}
    for room_id in faults["malformed_json"]:
        record = records.pop(str(room_id))
        assert record["reason"].startswith("PermanentPageError: ")
        assert "JSON" in record["reason"] and record["payload"]
    for room_id in faults["missing_field"]:
        record = records.pop(str(room_id))
        assert record["reason"].startswith("PermanentPageError: ValidationError: room_id")
        assert json.loads(record["payload"])["code"] == 0
    for room_id in faults["html_page"]:  # an error page is retried, then kept
        record = records.pop(str(room_id))
        assert record["reason"].startswith("GaveUp: RetryablePageError")
        assert "<html" in record["payload"].lower()
    assert records == {}, "nothing else was quarantined"


def test_blocks_errors_and_rate_limits_lose_nothing(tmp_path, redis_server, mongo_server):
    """With the sandbox misbehaving (blocks, 5xx, slow answers, a tight rate limit) every room still lands."""
    with start_sandbox("--time-scale", "0", "--streamers", "60", "--no-faults", "--block-rate", "0.08",
                       "--error-rate", "0.08", "--slow-rate", "0.03", "--slow-seconds", "0.3",
                       "--rate-limit", "25") as sandbox:
        _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, workers=1,
                                      seeds=[{"kind": "area", "parent_area_id": 0, "area_id": 0, "max_pages": 5}],
                                      rate=30)
        truth = sandbox.truth("bilibili")
        chaos = sandbox.stats()
    with MongoClient(mongo_server.url) as client:
        db = client[db_name]
        live = {str(r["room_id"]) for r in truth["rooms"] if r["live_status"] == 1}
        assert {d["room_id"] for d in db.rooms.find({}, {"room_id": 1})} == live
        assert {d["room_id"] for d in db.rooms.find({"status": "live"}, {"room_id": 1})} == live
        assert db.quarantine.count_documents({}) == 0
        client.drop_database(db_name)
    assert _stat_sum(stats, "livefleet/spider/blocked/bilibili") > 0
    assert _stat_sum(stats, "retry/count") > 0
    assert sum(chaos["outcomes"].get(k, 0) for k in ("blocked", "error_5xx")) > 0


def test_room_and_streamer_seeds_reach_every_endpoint(tmp_path, sandbox, redis_server, mongo_server):
    """A room asked for by its short id, and a streamer by uid: room_init, get_info, getInfoByRoom
    (which needs the worker's own buvid3 cookie), card, Master/info, getRoomInfoOld, the WBI-signed
    space acc/info (keys read from nav at download time) and relation/stat."""
    truth = sandbox.truth("bilibili")
    broken = {r for kind in truth["faults"].values() for r in kind}
    room = next(r for r in truth["rooms"] if r["short_id"] and r["live_status"] == 1 and r["room_id"] not in broken)
    offline = next(r for r in truth["rooms"] if r["live_status"] == 0 and r["room_id"] not in broken)
    _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, workers=1, seeds=[
        {"kind": "room", "room_id": str(room["short_id"])},
        {"kind": "streamer", "uid": str(offline["uid"])},
    ])
    (worker,) = stats
    for kind in ("room_init", "room_info", "info_by_room", "user_card", "master_info", "room_info_old",
                 "acc_info", "relation_stat"):
        assert worker.get(f"livefleet/spider/pages/bilibili/{kind}", 0) >= 1, kind
    assert worker.get("livefleet/spider/blocked/bilibili", 0) == 0, "the buvid3 cookie and WBI were right"
    assert worker.get("livefleet/bilibili/wbi_signed", 0) >= 1 and worker.get("livefleet/bilibili/wbi_keys_read") == 1
    with MongoClient(mongo_server.url) as client:
        db = client[db_name]
        doc = db.rooms.find_one({"room_id": str(room["room_id"])})
        assert doc["web_rid"] == str(room["short_id"]) and doc["status"] == "live"
        assert doc["title"] == room["title"] and doc["viewers_now"] == room["online"]
        streamer = db.streamers.find_one({"streamer_id": str(offline["uid"])})
        assert streamer["room_id"] == str(offline["room_id"]) and streamer["is_live"] is False
        assert db.rooms.find_one({"room_id": str(offline["room_id"])})["status"] == "offline"
        client.drop_database(db_name)


def test_a_status_seed_checks_many_streamers_in_batches(tmp_path, sandbox, redis_server, mongo_server):
    """``{"kind": "status", "uids": [...]}``: get_status_info_by_uids, 50 uids a request, gives every
    streamer's room and live status at once; ``follow: ["rooms"]`` fetches the details of the
    live rooms only, nothing else."""
    truth = sandbox.truth("bilibili")
    broken = {r for kind in truth["faults"].values() for r in kind}
    rooms = [r for r in truth["rooms"] if r["room_id"] not in broken][:120]
    uids = [str(r["uid"]) for r in rooms]
    _, db_name, stats = run_crawl(tmp_path, sandbox, redis_server.url, mongo_server.url, workers=1,
                                  seeds=[{"kind": "status", "uids": [*uids, "999999999999"], "follow": ["rooms"]}])
    (worker,) = stats
    live = {str(r["room_id"]) for r in rooms if r["live_status"] == 1}
    assert live and len(live) < len(rooms)
    assert worker.get("livefleet/spider/pages/bilibili/status_by_uids") == 3  # 121 uids, 50 a request
    assert worker.get("livefleet/spider/pages/bilibili/room_info") == len(live)  # the live ones only
    assert worker.get("livefleet/spider/pages/bilibili/user_card", 0) == 0
    with MongoClient(mongo_server.url) as client:
        db = client[db_name]
        stored = {d["room_id"]: d for d in db.rooms.find({})}
        assert set(stored) == {str(r["room_id"]) for r in rooms}
        assert {k for k, d in stored.items() if d["status"] == "live"} == live
        assert all(stored[str(r["room_id"])]["streamer_id"] == str(r["uid"]) for r in rooms)
        client.drop_database(db_name)


