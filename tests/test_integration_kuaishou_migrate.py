"""``livefleet migrate kuaishou-ids`` on the real MongoDB-compatible server, with documents stored
the old way (keyed by principalId) beside ones stored the new way (keyed by the user id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crawlers.cli.main import main
from crawlers.cli.migrate import migrate_kuaishou_ids
from pipelines.p300_store import ensure_indexes

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=2)
K = "kuaishou"


def _old_and_new(db) -> None:
    ensure_indexes(db)  # the contract's unique keys: a re-key must not collide with them
    db.streamers.insert_many([
        # Old: keyed by principalId (the eid), the user id in sec_id; seen earlier, with a bio.
        {"platform": K, "streamer_id": "3x59tkbj2kecvgi", "sec_id": "932369500", "nickname": "紫霞", "bio": "每晚八点",
         "followers": 100, "room_id": "3x59tkbj2kecvgi", "fetched_at": T0, "first_seen_at": T0 - timedelta(days=5),
         "last_seen_at": T0},
        # New: the same person crawled after the change (eid now in sec_id); newer, no bio.
        {"platform": K, "streamer_id": "932369500", "sec_id": "3x59tkbj2kecvgi", "nickname": "紫霞✨", "followers": 200,
         "room_id": "932369500", "fetched_at": T1, "first_seen_at": T1, "last_seen_at": T1},
        # Old, with a kwaiId key and the user id known: moves alone.
        {"platform": K, "streamer_id": "KS123", "sec_id": "555", "handle": "KS123", "room_id": "KS123",
         "fetched_at": T0, "first_seen_at": T0, "last_seen_at": T0},
        # Old, nothing tells its user id: left as it is.
        {"platform": K, "streamer_id": "qq999", "nickname": "无名", "fetched_at": T0, "first_seen_at": T0,
         "last_seen_at": T0},
        # Another platform is never touched.
        {"platform": "douyin", "streamer_id": "3x59tkbj2kecvgi", "sec_id": "932369500", "fetched_at": T0},
    ])
    db.rooms.insert_many([
        {"platform": K, "room_id": "3x59tkbj2kecvgi", "streamer_id": "3x59tkbj2kecvgi", "title": "旧标题",
         "category": "和平精英", "peak_viewers": 900, "viewers_now": 10, "fetched_at": T0,
         "first_seen_at": T0 - timedelta(days=5), "last_seen_at": T0},
        {"platform": K, "room_id": "932369500", "streamer_id": "932369500", "web_rid": "zixia520", "title": "新标题",
         "peak_viewers": 300, "viewers_now": 250, "fetched_at": T1, "first_seen_at": T1, "last_seen_at": T1},
        {"platform": K, "room_id": "KS123", "streamer_id": "KS123", "fetched_at": T0, "first_seen_at": T0,
         "last_seen_at": T0},
        # Old room whose streamer was never stored; a room stored the new way names it in web_rid.
        {"platform": K, "room_id": "kk777", "streamer_id": "kk777", "title": "老", "fetched_at": T0,
         "first_seen_at": T0, "last_seen_at": T0, "peak_viewers": 70},
        {"platform": K, "room_id": "777", "streamer_id": "777", "web_rid": "kk777", "fetched_at": T1,
         "first_seen_at": T1, "last_seen_at": T1, "peak_viewers": 7},
    ])
    db.room_snapshots.insert_many([
        {"platform": K, "room_id": "3x59tkbj2kecvgi", "captured_at": T0, "viewers_now": 10, "likes": 5},
        {"platform": K, "room_id": "3x59tkbj2kecvgi", "captured_at": T1, "viewers_now": 250, "likes": 6},
        {"platform": K, "room_id": "932369500", "captured_at": T1, "viewers_now": 250},  # the same instant
        {"platform": K, "room_id": "kk777", "captured_at": T0, "viewers_now": 70},
    ])
    db.live_sessions.insert_one({"platform": K, "session_id": "4SLhBtIwqZ4", "room_id": "3x59tkbj2kecvgi",
                                 "streamer_id": "3x59tkbj2kecvgi"})


def _state(db) -> dict:
    return {name: sorted((d for d in db[name].find({}, {"_id": 0})), key=repr)
            for name in ("streamers", "rooms", "room_snapshots", "live_sessions")}


def test_dry_run_changes_nothing_and_says_what_it_would_do(mongo_db):
    _old_and_new(mongo_db)
    before = _state(mongo_db)
    counts = migrate_kuaishou_ids(mongo_db, dry_run=True, log=None)
    assert _state(mongo_db) == before
    assert (counts["streamers.rekeyed"], counts["streamers.merged"], counts["streamers.left"]) == (1, 1, 1)
    assert (counts["rooms.rekeyed"], counts["rooms.merged"]) == (1, 2)
    assert (counts["room_snapshots.rekeyed"], counts["room_snapshots.merged"]) == (2, 1)


def test_rekeys_merges_and_is_idempotent(mongo_db):
    _old_and_new(mongo_db)
    counts = migrate_kuaishou_ids(mongo_db, log=None)
    assert (counts["streamers.rekeyed"], counts["streamers.merged"], counts["streamers.left"]) == (1, 1, 1)
    streamers = {d["streamer_id"]: d for d in mongo_db.streamers.find({"platform": K})}
    assert set(streamers) == {"932369500", "555", "qq999"}
    merged = streamers["932369500"]
    # The newer observation wins field by field; what only the older had is kept; first/last seen span both.
    assert (merged["nickname"], merged["followers"], merged["bio"], merged["sec_id"]) == (
        "紫霞✨", 200, "每晚八点", "3x59tkbj2kecvgi")
    assert merged["room_id"] == "932369500"
    assert merged["first_seen_at"].replace(tzinfo=UTC) == T0 - timedelta(days=5)
    assert merged["last_seen_at"].replace(tzinfo=UTC) == T1
    moved = streamers["555"]
    assert (moved["handle"], moved["room_id"], "sec_id" in moved) == ("KS123", "555", False)
    assert mongo_db.streamers.find_one({"platform": "douyin"})["streamer_id"] == "3x59tkbj2kecvgi"

    rooms = {d["room_id"]: d for d in mongo_db.rooms.find({"platform": K})}
    assert set(rooms) == {"932369500", "555", "777"}
    room = rooms["932369500"]
    assert (room["title"], room["category"]) == ("新标题", "和平精英")
    assert (room["viewers_now"], room["peak_viewers"]) == (250, 900)
    assert (room["streamer_id"], room["web_rid"]) == ("932369500", "zixia520")
    assert (rooms["555"]["web_rid"], rooms["555"]["streamer_id"]) == ("KS123", "555")
    assert (rooms["777"]["title"], rooms["777"]["peak_viewers"], rooms["777"]["web_rid"]) == ("老", 70, "kk777")

    snaps = sorted(mongo_db.room_snapshots.find({}, {"_id": 0}), key=lambda d: (d["room_id"], d["captured_at"]))
    assert [(s["room_id"], s["captured_at"].replace(tzinfo=UTC), s.get("likes")) for s in snaps] == [
        ("777", T0, None), ("932369500", T0, 5), ("932369500", T1, 6)]
    session = mongo_db.live_sessions.find_one({})
    assert (session["room_id"], session["streamer_id"]) == ("932369500", "932369500")

    after = _state(mongo_db)
    again = migrate_kuaishou_ids(mongo_db, log=None)
    assert _state(mongo_db) == after
    assert not any(v for k, v in again.items() if k.endswith((".rekeyed", ".merged")))
    assert again["streamers.left"] == 1


def test_the_command_prints_what_it_did(mongo_db, mongo_server, redis_server, tmp_path, monkeypatch, capsys):
    _old_and_new(mongo_db)
    for name, value in {"REDIS_URL": redis_server.url, "MONGO_URI": mongo_server.url,
                        "LIVEFLEET_MONGO_DB": mongo_db.name, "LIVEFLEET_VAR_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    assert main(["migrate", "kuaishou-ids", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "streamers: would re-key 1, merged into an existing document 1, left (no user id known) 1" in out
    assert mongo_db.streamers.count_documents({"platform": K}) == 4
    assert main(["migrate", "kuaishou-ids"]) == 0
    assert "rooms: re-keyed 1, merged into an existing document 2" in capsys.readouterr().out
    assert mongo_db.streamers.count_documents({"platform": K}) == 3
