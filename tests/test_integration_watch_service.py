"""The watcher (``crawlers.watch.service``) on a real Redis and MongoDB, and end to end with a real worker.

* claims: the checks of 120 entries are spread over the interval, and two claimers never take one
  entry twice in an interval;
* two watchers fed the same "live" and "ended" documents start one monitor, queue each alert once per
  subscriber, and deliver each once;
* end to end on Bilibili: a sandbox streamer going live gets a monitor and one ``stream_started``
  alert from the checks alone; its end stops the monitor and queues ``stream_ended``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib
from pymongo import MongoClient

from crawlers.monitor.registry import Registry
from crawlers.redis.keys import FleetKeys, SpiderKeys
from crawlers.watch import lists, subscribing
from crawlers.watch.service import CHECKS, Watcher, check_seeds, deliver_pending
from sandbox.bilibili.world import BiliWorld
from sandbox.process import SandboxProcess, start_sandbox
from tests.crawl_helpers import Fleet, wait_for
from tests.plugins.robots import serve_robots

pytestmark = pytest.mark.integration

SECRET = "watch-secret"


@pytest.fixture
def prefix() -> str:
    return f"ws{uuid.uuid4().hex[:8]}"


def _uids(n: int, start: int = 100_000) -> list[str]:
    return [str(start + i) for i in range(n)]


# -- claims -------------------------------------------------------------------------------------------------------


def test_checks_are_spread_over_the_interval_and_claimed_once(redis_client, prefix):
    lists.add_entries(redis_client, prefix, "many", [f"https://space.bilibili.com/{u}" for u in _uids(120)],
                      platform="bilibili")
    watcher = Watcher(redis_client, prefix, None, platforms=["bilibili"], check_interval=60.0, deliver=False)
    watcher.sync()
    due = FleetKeys(prefix).watch_due("bilibili")
    scores = [int(s) for _, s in redis_client.zrange(due, 0, -1, withscores=True)]
    assert len(scores) == 120
    now_ms = int(redis_client.time()[0]) * 1000
    assert all(now_ms - 1000 <= s <= now_ms + 61_000 for s in scores)
    per_second = Counter((s % 60_000) // 1000 for s in scores)
    assert max(per_second.values()) <= 3, per_second  # 120 over 60 s: two a second, never a burst
    assert len(per_second) >= 55

    # A second watcher (another worker, its own connection) syncing the same lists changes nothing.
    second = redis_lib.Redis(connection_pool=redis_lib.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    other = Watcher(second, prefix, None, platforms=["bilibili"], check_interval=60.0, deliver=False)
    other.sync()
    assert sorted(int(s) for _, s in redis_client.zrange(due, 0, -1, withscores=True)) == sorted(scores)

    # Everything due at once (as after an outage): two claimers racing take each entry exactly once.
    redis_client.zadd(due, {_text(m): now_ms - 5000 for m in redis_client.zrange(due, 0, -1)})
    taken: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def claimer(name: str, w: Watcher) -> None:
        barrier.wait()
        for _ in range(120):
            taken[name] += w.claim("bilibili", limit=1)[1]

    threads = [threading.Thread(target=claimer, args=("a", watcher)),
               threading.Thread(target=claimer, args=("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = taken["a"] + taken["b"]
    assert len(both) == len(set(both)) == 120, (len(both), len(set(both)))
    # ... and each moved to its next slot, one interval on: nothing is due again in this interval.
    assert watcher.claim("bilibili")[1] == [] and other.claim("bilibili")[1] == []
    assert all(now_ms + 50_000 <= int(s) <= now_ms + 62_000
               for _, s in redis_client.zrange(due, 0, -1, withscores=True))

    # Removing entries takes them out of the due set; entries outside their window are claimed, not checked.
    lists.remove_entries(redis_client, prefix, "many", [f"https://space.bilibili.com/{u}" for u in _uids(20)])
    watcher.sync()
    assert redis_client.zcard(due) == 100
    second.close()


def test_the_cheapest_check_per_platform():
    def entry(platform: str, kind: str, ident: str) -> lists.WatchEntry:
        from crawlers.targets import parse_target

        target = parse_target(platform, ident, kind)
        return lists.WatchEntry(key=lists.target_key(target), target=target.as_dict(), tier="normal", windows=None,
                                added_at="", source="test")

    bili = [entry("bilibili", "streamer", u) for u in _uids(120)] + [entry("bilibili", "room", "5440")]
    seeds = check_seeds("bilibili", bili)
    status = [s for s in seeds if s["kind"] == "status"]
    assert [len(s["uids"]) for s in status] == [50, 50, 20] and all(s["follow"] == [] for s in status)
    assert {"kind": "room", "room_id": "5440", "follow": []} in seeds
    assert check_seeds("taobao", [entry("taobao", "room", "523417747786")]) == [
        {"kind": "room", "live_id": "523417747786", "follow": []}]
    assert set(CHECKS) == {("bilibili", "streamer"), ("bilibili", "room"), ("douyin", "streamer"),
                           ("douyin", "room"), ("kuaishou", "room"), ("taobao", "room")}


# -- two watchers, one Redis: one monitor, alerts once ------------------------------------------------------------


def _publish(client: redis_lib.Redis, prefix: str, collection: str, doc: dict[str, Any]) -> None:
    client.xadd(FleetKeys(prefix).feed(collection),
                {"doc": json.dumps(doc), "op": "update", "at": datetime.now(UTC).isoformat()})


def _room(uid: str, room_id: str, status: str, at: datetime, started: datetime | None) -> dict[str, Any]:
    return {"type": "room", "platform": "bilibili", "room_id": room_id, "streamer_id": uid, "status": status,
            "started_at": started.isoformat() if started else None, "fetched_at": at.isoformat(),
            "viewers_now": 100}


def _race(watchers: list[Watcher]) -> None:
    """Each watcher reads one message at a time, all at once, until the feeds are drained."""
    barrier = threading.Barrier(len(watchers))
    errors: list[BaseException] = []

    def run(w: Watcher) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                w.sync()
                w.observe(count=1)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_watchers_start_one_monitor_and_queue_each_alert_once(redis_client, mongo_db, prefix):
    keys = FleetKeys(prefix)
    lists.add_entries(redis_client, prefix, "evening", ["https://space.bilibili.com/1001",
                                                        "https://space.bilibili.com/1002"],
                      tier="hot", platform="bilibili")
    lists.add_entries(redis_client, prefix, "alerts-only", ["https://space.bilibili.com/1001"],
                      platform="bilibili", notify_only=True)
    with serve_robots(dingtalk={"tok": "SECdt"}, feishu={}, wecom=set(), webhook_secret=SECRET) as robots:
        sub = subscribing.add_subscriber(redis_client, prefix, "evening", "webhook", robots.url("webhook"), SECRET,
                                         allow="127.0.0.1")
        ding = subscribing.add_subscriber(redis_client, prefix, "alerts-only", "dingtalk", robots.url("dingtalk"),
                                          "SECdt", events="stream_started", allow="127.0.0.1")
        # The second checks only Douyin: the group still hands it Bilibili news, which it handles as well.
        watchers = [Watcher(redis_client, prefix, mongo_db, platforms=[platform], check_interval=5,
                            consumer=f"w{i}", deliver=False) for i, platform in enumerate(["bilibili", "douyin"])]
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        seen = datetime.now(UTC)
        for i in range(4):  # four checks saw it live, a streamers document too
            _publish(redis_client, prefix, "rooms", _room("1001", "5001", "live", seen + timedelta(seconds=i), start))
        _publish(redis_client, prefix, "streamers", {"type": "streamer", "platform": "bilibili", "streamer_id": "1001",
                                                     "is_live": True, "room_id": "5001",
                                                     "fetched_at": seen.isoformat()})
        _publish(redis_client, prefix, "rooms", _room("1002", "5002", "offline", seen, None))
        _race(watchers)

        registry = Registry(redis_client, prefix)
        monitors = registry.list()
        assert len(monitors) == 1, monitors  # one list is not notify-only: the entry gets a monitor
        monitor = monitors[0]
        assert monitor.target["kind"] == "room" and monitor.target["id"] == "5001" and monitor.every_s == 30.0
        record = json.loads(redis_client.get(keys.watch_live("bilibili:streamer:1001")))
        assert record["monitor_id"] == monitor.id and record["phase"] == "live"
        assert record["session_id"] == f"5001:{int(start.timestamp())}"
        assert redis_client.get(keys.watch_live("bilibili:streamer:1002")) is None
        outbox = [json.loads(x) for x in redis_client.lrange(keys.alert_outbox(sub), 0, -1)]
        assert [o["alert"]["event"] for o in outbox] == ["stream_started"]
        assert outbox[0]["alert"]["room_id"] == "5001" and outbox[0]["alert"]["watchlist"] == "evening"
        assert redis_client.llen(keys.alert_outbox(ding)) == 1

        # The session builder's figures, then the end seen twice: one end, one stream_ended.
        mongo_db.live_sessions.insert_one({
            "platform": "bilibili", "session_id": record["session_id"], "room_id": "5001", "streamer_id": "1001",
            "status": "ended", "duration_s": 3600.0, "viewers_peak": 1234, "gmv_estimate": None, "gmv_low": None,
            "gmv_high": None, "last_seen_live_at": seen})
        ended = seen + timedelta(minutes=1)
        for i in range(3):
            _publish(redis_client, prefix, "rooms", _room("1001", "5001", "ended", ended + timedelta(seconds=i), None))
        _race(watchers)
        assert registry.get(monitor.id).state == "stopped"
        assert redis_client.get(keys.watch_live("bilibili:streamer:1001")) is None
        outbox = [json.loads(x) for x in redis_client.lrange(keys.alert_outbox(sub), 0, -1)]
        assert [o["alert"]["event"] for o in outbox] == ["stream_started", "stream_ended"]
        assert outbox[1]["alert"]["data"] == {"duration_s": 3600.0, "peak_viewers": 1234, "gmv_estimate": None,
                                              "gmv_low": None, "gmv_high": None, "units_sold": None,
                                              "estimator_version": None}
        assert redis_client.llen(keys.alert_outbox(ding)) == 1  # it takes stream_started only

        # A "live" document captured before the end, read late, starts nothing.
        _publish(redis_client, prefix, "rooms", _room("1001", "5001", "live", seen + timedelta(seconds=30), start))
        _race(watchers)
        assert redis_client.get(keys.watch_live("bilibili:streamer:1001")) is None and len(registry.list()) == 1

        # Both watchers deliver at once: each alert reaches its robot once.
        barrier = threading.Barrier(2)

        def deliver() -> None:
            barrier.wait()
            deliver_pending(redis_client, prefix, "127.0.0.1")

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hooks = robots.of("webhook")
        assert sorted(r.json["alert"]["event"] for r in hooks) == ["stream_ended", "stream_started"]
        assert all(r.accepted for r in hooks)
        assert len(robots.of("dingtalk")) == 1 and robots.of("dingtalk")[0].accepted
        assert redis_client.llen(keys.alert_failures) == 0
        assert not redis_client.smembers(keys.alert_outboxes)


def test_a_closing_window_ends_the_stream_and_outside_it_nothing_is_checked(redis_client, mongo_db, prefix):
    keys = FleetKeys(prefix)
    hour = datetime.now(UTC).hour
    open_now = f"{(hour - 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00@UTC"
    closed_now = f"{(hour + 3) % 24:02d}:00-{(hour + 4) % 24:02d}:00@UTC"
    target = "https://space.bilibili.com/2001"
    lists.add_entries(redis_client, prefix, "nights", [target], windows=open_now, platform="bilibili")
    sub = subscribing.add_subscriber(redis_client, prefix, "nights", "webhook", "http://127.0.0.1:9/hook", SECRET,
                                     allow="127.0.0.1")
    watcher = Watcher(redis_client, prefix, mongo_db, platforms=["bilibili"], check_interval=5, deliver=False)
    watcher.sync()
    seen = datetime.now(UTC)
    _publish(redis_client, prefix, "rooms", _room("2001", "7001", "live", seen, seen - timedelta(minutes=3)))
    watcher.observe()
    (monitor,) = Registry(redis_client, prefix).list()
    assert monitor.state == "active" and monitor.every_s == 60.0  # the default tier: normal

    # The window closes (here: the entry's window changes): the sweep ends the stream.
    lists.add_entries(redis_client, prefix, "nights", [target], windows=closed_now)
    watcher.sync()
    watcher.sweep()
    assert Registry(redis_client, prefix).get(monitor.id).state == "stopped"
    assert not redis_client.exists(keys.watch_live("bilibili:streamer:2001"))
    events = [json.loads(x)["alert"]["event"] for x in redis_client.lrange(keys.alert_outbox(sub), 0, -1)]
    assert events == ["stream_started", "stream_ended"]

    # Outside its window an entry is claimed (moved on) but not checked, and "live" starts nothing.
    redis_client.zadd(keys.watch_due("bilibili"), {"bilibili:streamer:2001": 0})
    assert watcher.check() == 0 and redis_client.llen(SpiderKeys(prefix, "bilibili").seeds) == 0
    _publish(redis_client, prefix, "rooms", _room("2001", "7001", "live", datetime.now(UTC), seen))
    watcher.observe()
    assert not redis_client.exists(keys.watch_live("bilibili:streamer:2001"))
    assert len(Registry(redis_client, prefix).list()) == 1


def test_a_start_or_end_left_half_done_is_finished_by_another_watcher(redis_client, mongo_db, prefix):
    keys = FleetKeys(prefix)
    lists.add_entries(redis_client, prefix, "evening", ["https://space.bilibili.com/3001"], platform="bilibili")
    sub = subscribing.add_subscriber(redis_client, prefix, "evening", "webhook", "http://127.0.0.1:9/hook", SECRET,
                                     allow="127.0.0.1")
    entry = "bilibili:streamer:3001"
    now_ms = int(redis_client.time()[0]) * 1000
    record = {"entry": entry, "platform": "bilibili", "room_id": "8001", "streamer_id": "3001",
              "session_id": "8001:1780000000", "started_at": "2026-05-28T20:26:40+00:00", "seen_ms": now_ms - 130_000,
              "monitor_id": None, "notify_only": False, "lists": ["evening"], "phase": "starting",
              "phase_ms": now_ms - 120_000, "owner": "dead-worker"}
    redis_client.set(keys.watch_live(entry), json.dumps(record))  # a worker died right after winning the start
    redis_client.sadd(keys.watch_lives("bilibili"), entry)
    watcher = Watcher(redis_client, prefix, mongo_db, platforms=["bilibili"], check_interval=5, deliver=False)
    watcher.sync()
    watcher.sweep()
    (monitor,) = Registry(redis_client, prefix).list()
    assert monitor.target["id"] == "8001" and monitor.state == "active"
    finished = json.loads(redis_client.get(keys.watch_live(entry)))
    assert finished["phase"] == "live" and finished["monitor_id"] == monitor.id
    watcher.sweep()  # not stale any more: nothing redone
    assert len(Registry(redis_client, prefix).list()) == 1

    # Still live when its monitor runs out (MONITOR_FOR_S): another monitor, no second alert.
    definition = json.loads(redis_client.hget(keys.monitors, monitor.id))
    redis_client.hset(keys.monitors, monitor.id, json.dumps({**definition, "until_ms": now_ms - 1}))
    watcher.sweep()
    renewed = json.loads(redis_client.get(keys.watch_live(entry)))
    assert renewed["phase"] == "live" and renewed["monitor_id"] not in (None, monitor.id)
    assert Registry(redis_client, prefix).get(renewed["monitor_id"]).state == "active"
    assert redis_client.llen(keys.alert_outbox(sub)) == 1
    finished, monitor = renewed, Registry(redis_client, prefix).get(renewed["monitor_id"])

    # A worker died half way through the end: another one stops the monitor and queues stream_ended.
    redis_client.set(keys.watch_live(entry), json.dumps({**finished, "phase": "ending", "phase_ms": now_ms - 120_000,
                                                         "ended_ms": now_ms - 119_000, "reason": "ended"}))
    watcher.sweep()
    assert Registry(redis_client, prefix).get(monitor.id).state == "stopped"
    assert not redis_client.exists(keys.watch_live(entry))
    events = [json.loads(x)["alert"]["event"] for x in redis_client.lrange(keys.alert_outbox(sub), 0, -1)]
    assert events == ["stream_started", "stream_ended"]


def test_a_douyin_streamer_is_known_by_its_sec_uid_and_a_new_room_is_a_new_broadcast(redis_client, mongo_db, prefix):
    keys = FleetKeys(prefix)
    sec_uid = "MS4wLjABAAAA" + "w" * 43
    lists.add_entries(redis_client, prefix, "dy", [f"https://www.douyin.com/user/{sec_uid}"], platform="douyin")
    sub = subscribing.add_subscriber(redis_client, prefix, "dy", "webhook", "http://127.0.0.1:9/hook", SECRET,
                                     allow="127.0.0.1")
    watcher = Watcher(redis_client, prefix, mongo_db, platforms=["douyin"], check_interval=5, deliver=False)
    watcher.sync()
    entry = f"douyin:streamer:{sec_uid}"
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    # The profile check: a streamers document naming the sec_uid, live in room R1.
    _publish(redis_client, prefix, "streamers", {"platform": "douyin", "streamer_id": "900", "sec_id": sec_uid,
                                                 "is_live": True, "room_id": "7600000000000000001",
                                                 "fetched_at": t0.isoformat()})
    watcher.observe()
    record = json.loads(redis_client.get(keys.watch_live(entry)))
    assert record["room_id"] == "7600000000000000001" and record["session_id"] is None
    assert redis_client.hget(keys.watch_aliases("douyin"), sec_uid) == b"900"
    (monitor,) = Registry(redis_client, prefix).list()
    assert monitor.target["kind"] == "streamer" and monitor.target["id"] == sec_uid

    # A room document names the streamer by its numeric id only (the alias maps it); a room of its own
    # other than R1, live: R1's broadcast is over and a new one began.
    _publish(redis_client, prefix, "rooms", {"platform": "douyin", "room_id": "7600000000000000002",
                                             "streamer_id": "900", "status": "live",
                                             "fetched_at": (t0 + timedelta(seconds=20)).isoformat()})
    watcher.observe()
    record = json.loads(redis_client.get(keys.watch_live(entry)))
    assert record["room_id"] == "7600000000000000002" and record["phase"] == "live"
    alerts = [json.loads(x)["alert"] for x in redis_client.lrange(keys.alert_outbox(sub), 0, -1)]
    assert [(a["event"], a["room_id"]) for a in alerts] == [
        ("stream_started", "7600000000000000001"), ("stream_ended", "7600000000000000001"),
        ("stream_started", "7600000000000000002")]
    states = sorted(m.state for m in Registry(redis_client, prefix).list())
    assert states == ["active", "stopped"]

    # A "live" document from long ago (a replayed history) starts nothing.
    _publish(redis_client, prefix, "rooms", {"platform": "douyin", "room_id": "7600000000000000003",
                                             "streamer_id": "900", "status": "live",
                                             "fetched_at": (t0 - timedelta(hours=3)).isoformat()})
    watcher.observe()
    assert json.loads(redis_client.get(keys.watch_live(entry)))["room_id"] == "7600000000000000002"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- end to end: a real worker, the real sandbox ------------------------------------------------------------------

MINUTE0 = int(datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp() // 60)  # the sandbox's start, 20:00 Beijing


def _plan() -> tuple[str, int, int, list[str]]:
    """From the sandbox's own (deterministic) world: a streamer offline at the start that goes live within
    the hour, the minutes (from the start) of its start and end, and two streamers offline all along."""
    world = BiliWorld(7, 300, True, start=MINUTE0 * 60)
    best: tuple[int, int, str] | None = None
    quiet: list[str] = []
    for room in world.rooms:
        schedule = room.schedule
        if room.fault or schedule.always_since is not None:
            continue
        starts = schedule.starts_between(MINUTE0 + 2, MINUTE0 + 60)
        if schedule.session_start(MINUTE0) is None and starts:
            end = schedule.session_end(starts[0])
            if end is not None and end - MINUTE0 <= 150 and (best is None or starts[0] < best[0]):
                best = (starts[0], end, str(room.uid))
        elif all(schedule.session_start(MINUTE0 + m) is None for m in range(0, 200, 5)):
            quiet.append(str(room.uid))
    assert best is not None and len(quiet) >= 2
    start, end, uid = best
    return uid, start - MINUTE0, end - MINUTE0, quiet[:2]


@pytest.fixture(scope="module")
def moving_sandbox() -> Iterator[SandboxProcess]:
    """A sandbox of its own (its clock is moved by the test), frozen until then."""
    with start_sandbox("--platforms", "bilibili", "--time-scale", "0", "--no-chaos") as sandbox:
        yield sandbox


def _live(sandbox: SandboxProcess, uid: str) -> bool:
    return any(str(r["uid"]) == uid and r["live_status"] == 1 for r in sandbox.truth("bilibili")["rooms"])


def test_a_watched_streamer_going_live_gets_a_monitor_and_alerts_by_itself(tmp_path, moving_sandbox, redis_server,
                                                                           mongo_server):
    sandbox = moving_sandbox
    uid, live_at, end_at, quiet = _plan()
    assert not _live(sandbox, uid)
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili")
    client = redis_lib.Redis.from_url(redis_server.url)
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    db = mongo[fleet.db_name]
    keys = FleetKeys(fleet.prefix)
    registry = Registry(client, fleet.prefix)
    entry = f"bilibili:streamer:{uid}"
    moved = [0]

    def advance_to(minute: int) -> None:
        sandbox.clock(advance_seconds=(minute - moved[0]) * 60)
        moved[0] = minute

    stop = threading.Event()
    with serve_robots(dingtalk={}, feishu={}, wecom=set(), webhook_secret=SECRET) as robots:
        lists.add_entries(client, fleet.prefix, "evening", [f"https://space.bilibili.com/{u}" for u in [uid, *quiet]],
                          tier="hot", platform="bilibili")
        subscribing.add_subscriber(client, fleet.prefix, "evening", "webhook", robots.url("webhook"), SECRET,
                                   allow="127.0.0.1")
        # Two watchers (two workers' worth) on the one Redis.
        watchers = [Watcher(client, fleet.prefix, db, platforms=["bilibili"], check_interval=2.0,
                            allow="127.0.0.1", check_every=0.5, consumer=f"watch-{i}") for i in range(2)]
        threads = [threading.Thread(target=w.run, args=(stop,), kwargs={"block_ms": 200}, daemon=True)
                   for w in watchers]

        def detail() -> str:
            return (f"watchers {[w.stats for w in watchers]}\nmonitors {registry.list()}\n"
                    f"worker log:\n{fleet.log(0)[-3000:]}")

        try:
            fleet.start(1, idle_close=0)
            for thread in threads:
                thread.start()
            # Offline: the checks (status seeds, nothing followed) store the rooms as they are; no monitor.
            wait_for("the checks of the three streamers", lambda: db.rooms.count_documents(
                {"platform": "bilibili", "streamer_id": {"$in": [uid, *quiet]}}) == 3, 60, detail=detail)
            assert registry.list() == [] and not client.exists(keys.watch_live(entry))
            assert client.llen(SpiderKeys(fleet.prefix, "bilibili").seeds + ":rejected") == 0

            # Live: the watcher starts a monitor of the streamer's room and alerts once.
            advance_to(live_at + 1)
            assert _live(sandbox, uid)
            monitor = wait_for("a monitor started by the watcher", lambda: next(iter(registry.list()), None), 30,
                               detail=detail)
            room_id = str(db.rooms.find_one({"platform": "bilibili", "streamer_id": uid})["room_id"])
            assert monitor.target == {"platform": "bilibili", "kind": "room", "id": room_id,
                                      "url": f"https://live.bilibili.com/{room_id}"}
            assert monitor.every_s == 30.0 and monitor.state == "active"
            wait_for("stream_started delivered", lambda: robots.of("webhook"), 30, detail=detail)
            started = robots.of("webhook")[0].json["alert"]
            assert started["event"] == "stream_started" and started["streamer_id"] == uid
            assert started["room_id"] == room_id and started["watchlist"] == "evening"
            wait_for("the monitor's first tick", lambda: registry.get(monitor.id).ticks >= 1, 30, detail=detail)

            # Ended: the monitor is stopped, the record gone, stream_ended delivered.
            advance_to(end_at + 1)
            assert not _live(sandbox, uid)
            wait_for("the monitor stopped", lambda: registry.get(monitor.id).state == "stopped", 30, detail=detail)
            wait_for("stream_ended delivered", lambda: len(robots.of("webhook")) >= 2, 30, detail=detail)
            assert not client.exists(keys.watch_live(entry))
            time.sleep(3)  # more checks go by: nothing is sent again, no monitor added
            events = [r.json["alert"]["event"] for r in robots.of("webhook")]
            assert events == ["stream_started", "stream_ended"], events
            assert all(r.accepted for r in robots.of("webhook"))
            ended = robots.of("webhook")[1].json["alert"]
            assert set(ended["data"]) == {"duration_s", "peak_viewers", "gmv_estimate", "gmv_low", "gmv_high",
                                          "units_sold", "estimator_version"}
            assert len(registry.list()) == 1
            assert "get_status_info_by_uids" in " ".join(sandbox.stats()["endpoints"])
            assert sum(w.stats.started for w in watchers) == 1 and sum(w.stats.ended for w in watchers) == 1
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            fleet.stop()
            advance_to(0)
            client.close()
            mongo.close()
