"""The session builder on the real stack: snapshots go through the real store and feeds stages into
MongoDB and Redis Streams; the builder reads the streams through its consumer group and writes
``live_sessions``. Checked: one document per broadcast on each platform's keying, the figures of a
scenario whose truth is known exactly, idempotence (a rebuild from MongoDB gives the same
documents), and a builder killed with SIGKILL mid-backlog and started again ends where one
uninterrupted build ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crawlers.redis.connection import get_redis
from crawlers.sessions.service import GROUP, SessionBuilder, rebuild_since
from models.entities import ProductSnapshot, Room, RoomSnapshot
from tests.plugins.store import run_store, store_and_feeds

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
VOLATILE = ("computed_at", "_id", "inputs")


def _douyin(room: str, minutes: int, *, start: datetime = T0) -> list[Any]:
    """A Douyin broadcast sampled every minute: two products, exact shelf counts, one presented in
    turn, a price change at minute 10, a product listed at minute 5, then the room ends."""
    records: list[Any] = [Room(platform="douyin", room_id=room, streamer_id=f"u{room}", title=f"t{room}",
                               status="live", started_at=start, fetched_at=start)]
    for m in range(minutes):
        at = start + timedelta(minutes=m, seconds=10)
        current = f"{room}-p1" if m < minutes // 2 else f"{room}-p2"
        records.append(RoomSnapshot(platform="douyin", room_id=room, captured_at=at, status="live",
                                    viewers_now=100 + 10 * m, viewers_total=1000 + 50 * m, current_product_id=current))
        records.append(ProductSnapshot(platform="douyin", product_id=f"{room}-p1", captured_at=at, room_id=room,
                                       rank_in_room=1,
                                       sales=500 + 4 * (m + 1), sales_is_lower_bound=False,
                                       price=20.0 if m < 10 else 18.0))
        if m >= 5:
            records.append(ProductSnapshot(platform="douyin", product_id=f"{room}-p2", captured_at=at, room_id=room,
                                           rank_in_room=2, sales=90 + 2 * (m - 4), sales_is_lower_bound=False,
                                           price=50.0))
    end = start + timedelta(minutes=minutes, seconds=30)
    records.append(RoomSnapshot(platform="douyin", room_id=room, captured_at=end, status="ended"))
    return records


def _bilibili(room: str, start: datetime, minutes: int) -> list[Any]:
    sid = f"{room}:{int(start.timestamp())}"
    return [RoomSnapshot(platform="bilibili", room_id=room, captured_at=start + timedelta(minutes=m, seconds=20),
                         status="live", viewers_now=1000 - m, session_id=sid) for m in range(minutes)]


def _store(tmp_path, redis_url: str, mongo_uri: str, db: str, prefix: str, records: list[Any]) -> None:
    stages = store_and_feeds(tmp_path, "sessiontest", LIVEFLEET_MONGO_URI=mongo_uri, LIVEFLEET_MONGO_DB=db,
                             LIVEFLEET_REDIS_URL=redis_url, LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_STORE_BATCH=200,
                             LIVEFLEET_STORE_FLUSH_SECONDS=0.05)
    assert not [r for r in run_store(stages, records) if isinstance(r, BaseException)]


def _sessions(db) -> dict[str, dict[str, Any]]:
    return {d["session_id"]: {k: v for k, v in d.items() if k not in VOLATILE} for d in db.live_sessions.find()}


@pytest.fixture
def stack(tmp_path, redis_server, mongo_server, mongo_db):
    prefix = f"s{uuid.uuid4().hex[:6]}"
    return {"tmp": tmp_path, "redis": redis_server.url, "mongo": mongo_server.url, "db": mongo_db, "prefix": prefix}


def test_one_session_per_broadcast_with_the_figures_of_a_known_scenario(stack):
    db = stack["db"]
    b_start = T0 + timedelta(hours=1)
    records = _douyin("7380000000000000001", 20) + _bilibili("5440", b_start, 15)
    records += _bilibili("5440", b_start + timedelta(hours=2), 5)  # the same room's next broadcast
    _store(stack["tmp"], stack["redis"], stack["mongo"], db.name, stack["prefix"], records)
    builder = SessionBuilder(db, get_redis(stack["redis"]), stack["prefix"], consumer="b1")
    builder.drain()
    sessions = _sessions(db)
    assert set(sessions) == {"7380000000000000001", f"5440:{int(b_start.timestamp())}",
                             f"5440:{int((b_start + timedelta(hours=2)).timestamp())}"}
    d = sessions["7380000000000000001"]
    room = "7380000000000000001"
    assert (d["status"], d["samples"], d["streamer_id"], d["title"]) == ("ended", 20, f"u{room}", f"t{room}")
    assert d["start_latency_s"] == 10.0
    assert d["ended_seen_at"].replace(tzinfo=UTC) == T0 + timedelta(minutes=20, seconds=30)
    assert (d["viewers_peak"], d["viewers_total"], d["coverage"]) == (290, 1950, 1.0)
    # Time-weighted mean of 100, 110, ..., 280 held for a minute each (the last value ends the curve).
    assert d["viewers_avg"] == pytest.approx(sum(100 + 10 * m for m in range(19)) / 19)
    # p1 sold 4 a minute over 19 observed intervals (+ the unobserved edges at its rate), p2 2 a minute.
    p1_units, p2_units = 4 * 19, 2 * 14
    observed_gmv = 4 * (9 * 20 + 1 * 19 + 9 * 18) + 2 * 14 * 50  # the interval across the price change at its mean
    assert d["units_sold"] >= p1_units + p2_units and d["units_low"] == p1_units + p2_units
    assert d["gmv_low"] <= observed_gmv <= d["gmv_estimate"] <= d["gmv_high"]
    assert d["units_sold_is_lower_bound"] is False  # every count exact
    assert d["avg_order_value"] == pytest.approx(d["gmv_estimate"] / d["units_sold"], rel=0.01)
    assert d["conversion"] == pytest.approx(d["units_sold"] / 1950, rel=0.02)
    p1, p2 = "7380000000000000001-p1", "7380000000000000001-p2"
    assert [(p["product_id"], p["from"].minute, p["to"].minute) for p in d["products_presented"]] == [
        (p1, 0, 9), (p2, 10, 19)]
    assert [(e["event"], e["product_id"], e["at"].minute) for e in d["shelf_events"]] == [
        ("listed", p2, 5), ("price_changed", p1, 10)]
    assert d["products_count"] == 2 and d["estimator_version"]
    # What sold, per product: exact counts, so each product's lower bound is its observed units.
    sold = {p["product_id"]: p for p in d["products_sold"]}
    assert set(sold) == {p1, p2} and (sold[p1]["units_low"], sold[p2]["units_low"]) == (p1_units, p2_units)
    assert [p["gmv"] for p in d["products_sold"]] == sorted((p["gmv"] for p in d["products_sold"]), reverse=True)
    assert all(p["gmv_low"] <= p["gmv"] <= p["gmv_high"] and not p["units_is_lower_bound"] for p in sold.values())
    assert (sold[p1]["price"], sold[p2]["price"], sold[p1]["readings"]) == (18.0, 50.0, 20)
    assert sum(p["units"] for p in sold.values()) == d["units_sold"]
    assert sum(p["gmv"] for p in sold.values()) == pytest.approx(d["gmv_estimate"], abs=0.02)
    b = sessions[f"5440:{int(b_start.timestamp())}"]
    assert (b["samples"], b["viewers_peak"], b["started_at"].replace(tzinfo=UTC)) == (15, 1000, b_start)
    assert b["units_sold"] is None and b["gmv_estimate"] is None  # no shelf: unknown, not zero
    assert b["status"] == "ended"  # the room's next broadcast was seen two hours later
    assert db.live_sessions.count_documents({"status": "live"}) == 1
    # Idempotent: a rebuild from MongoDB alone gives the same documents.
    rebuild_since(db, T0 - timedelta(hours=1))
    assert _sessions(db) == sessions


def _backlog(n_rooms: int, minutes: int) -> list[Any]:
    records: list[Any] = []
    for r in range(n_rooms):
        records += _douyin(f"73800000000000{r:05d}", minutes, start=T0 + timedelta(minutes=r))
    return records


def test_a_builder_killed_mid_backlog_ends_where_one_uninterrupted_build_ends(stack, mongo_server):
    db = stack["db"]
    _store(stack["tmp"], stack["redis"], stack["mongo"], db.name, stack["prefix"], _backlog(12, 30))
    env = {**os.environ, "REDIS_URL": stack["redis"], "MONGO_URI": stack["mongo"],
           "LIVEFLEET_MONGO_DB": db.name, "LIVEFLEET_KEY_PREFIX": stack["prefix"],
           "LIVEFLEET_VAR_DIR": str(stack["tmp"] / "var")}
    cmd = [sys.executable, "-m", "crawlers", "sessions", "run", "--consumer", "killed", "--batch", "10"]
    redis = get_redis(stack["redis"])
    keys = [f"{stack['prefix']}:feed:{feed}" for feed in ("room_snapshots", "product_snapshots")]

    def drained() -> bool:
        for key in keys:
            group = {g["name"].decode(): g for g in redis.xinfo_groups(key)}.get(GROUP)
            last = redis.xinfo_stream(key)["last-generated-id"]
            if group is None or group["pending"] or group["last-delivered-id"] != last:
                return False
        return True

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and db.live_sessions.count_documents({}) < 1:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-backlog: some sessions written, messages handed out and not acknowledged
    proc.wait(10)
    partial = db.live_sessions.count_documents({})
    assert not drained()
    # Started again under the same name, it first reads what it had been handed and not acknowledged.
    again = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not drained():
        time.sleep(0.1)
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=30)
    assert again.returncode == 0, err.decode()[-2000:]
    built = _sessions(db)
    assert len(built) == 12 and partial < 12
    rebuild_since(db, T0 - timedelta(hours=1))  # from MongoDB alone, uninterrupted
    assert _sessions(db) == built


def test_two_builders_sharing_the_group_end_where_one_build_ends(stack):
    """Two consumers of the group split the messages; neither holds rooms in memory then (each
    may miss messages of a room the other took), so both rebuild from MongoDB, and the result is
    the one build's."""
    db = stack["db"]
    _store(stack["tmp"], stack["redis"], stack["mongo"], db.name, stack["prefix"], _backlog(6, 20))
    server = get_redis(stack["redis"])
    one, two = (SessionBuilder(db, server, stack["prefix"], consumer=name) for name in ("one", "two"))
    for reader in one.readers + two.readers:  # both registered before either reads
        reader.ensure_group()
        server.xgroup_createconsumer(reader.key, GROUP, reader.consumer)
    while one.step(count=25, block_ms=None) + two.step(count=25, block_ms=None):
        pass
    assert one.stats.messages and two.stats.messages
    assert one.stats.rooms_from_memory == two.stats.rooms_from_memory == 0
    built = _sessions(db)
    rebuild_since(db, T0 - timedelta(hours=1))
    assert _sessions(db) == built and len(built) == 6


def test_the_sessions_command_lists_and_rebuilds(stack, monkeypatch, capsys):
    import json

    from crawlers.cli.main import main

    db = stack["db"]
    _store(stack["tmp"], stack["redis"], stack["mongo"], db.name, stack["prefix"], _douyin("7380000000000000009", 8))
    for name, value in (("REDIS_URL", stack["redis"]), ("MONGO_URI", stack["mongo"]), ("LIVEFLEET_MONGO_DB", db.name),
                        ("LIVEFLEET_KEY_PREFIX", stack["prefix"]), ("LIVEFLEET_VAR_DIR", str(stack["tmp"] / "var"))):
        monkeypatch.setenv(name, value)
    assert main(["sessions", "rebuild", "--since", "2026-11-01T00:00:00", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sessions"] == 1
    assert main(["sessions", "list", "--since", "2026-11-01T00:00:00", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["session_id"], row["status"], row["samples"]) == ("7380000000000000009", "ended", 8)
    assert main(["sessions", "list", "--since", "not a time"]) == 2


def test_the_sessions_command_shows_one_session_whole(stack, monkeypatch, capsys):
    import json

    from crawlers.cli.main import main

    db = stack["db"]
    room = "7380000000000000010"
    _store(stack["tmp"], stack["redis"], stack["mongo"], db.name, stack["prefix"], _douyin(room, 20))
    db.products.insert_one({"platform": "douyin", "product_id": f"{room}-p2", "title": "新款保温杯 500ml"})
    for name, value in (("REDIS_URL", stack["redis"]), ("MONGO_URI", stack["mongo"]), ("LIVEFLEET_MONGO_DB", db.name),
                        ("LIVEFLEET_KEY_PREFIX", stack["prefix"]), ("LIVEFLEET_VAR_DIR", str(stack["tmp"] / "var"))):
        monkeypatch.setenv(name, value)
    assert main(["sessions", "rebuild", "--since", "2026-11-01T00:00:00"]) == 0
    capsys.readouterr()
    assert main(["sessions", "show", "douyin", room]) == 0
    text = capsys.readouterr().out
    for shown in ("douyin session 7380000000000000010 (ended)", "units sold", "GMV estimate", "what sold (top 2 of 2",
                  "presented (讲解)", "shelf changes", "price_changed", "20.00 -> 18.00", "新款保温杯 500ml",
                  "2026-11-01T12:00:10Z / 2026-11-01T12:19:10Z", "0m10s, 19m10s", "20, 100.0%", "290 / 190 / 1,950"):
        assert shown in text, (shown, text)
    # Products by GMV, highest first: the rows of the "what sold" table name them in that order.
    assert main(["sessions", "show", "douyin", room, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    order = [p["product_id"] for p in doc["products_sold"]]
    sold_rows = text.split("what sold")[1].split("presented")[0]
    assert len(order) == 2 and sold_rows.index(order[0]) < sold_rows.index(order[1])
    assert doc["first_seen_live_at"] == "2026-11-01T12:00:10+00:00" and "_id" not in doc and "inputs" not in doc
    assert main(["sessions", "show", "douyin", "1"]) == 1
    assert "no session 1 on douyin" in capsys.readouterr().err
    assert main(["sessions", "show", "douyin"]) == 2
    assert main(["sessions", "list", "douyin", room]) == 2
