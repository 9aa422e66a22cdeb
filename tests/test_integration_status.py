"""``collect_status`` (crawlers/health/status.py) and its tables (crawlers/cli/status.py) on hand-built fleet state
in a real Redis."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from crawlers.cli.output import plain
from crawlers.cli.status import render
from crawlers.health.heartbeat import items_minute_key, server_time
from crawlers.health.status import collect_status, queue_depth
from crawlers.redis.keys import FleetKeys, SpiderKeys

pytestmark = pytest.mark.integration

BAND = 2**32


def _queue(client, keys: SpiderKeys, per_priority: dict[int, int]) -> None:
    """Requests as the queue stores them: score = -priority * 2**32 + arrival sequence."""
    seq = 0
    mapping = {}
    for priority, count in per_priority.items():
        for _ in range(count):
            seq += 1
            mapping[json.dumps({"url": f"https://example.invalid/{seq}"})] = -priority * BAND + seq
    client.zadd(keys.requests, mapping)


@pytest.fixture
def fleet(redis_client):
    """Two platforms' queues, leases, dead letters, seeds, flushed stats, and three workers."""
    prefix = f"st{uuid.uuid4().hex[:6]}"
    client = redis_client
    now = server_time(client)
    bili, douyin = SpiderKeys(prefix, "bilibili"), SpiderKeys(prefix, "douyin")
    _queue(client, bili, {10: 3, 0: 5, -5: 2})
    _queue(client, douyin, {1: 4})
    now_ms = int(now * 1000)
    client.zadd(bili.leases, {"1": now_ms + 60_000, "2": now_ms + 30_000, "3": now_ms - 5_000})
    client.hset(bili.leased, mapping={"1": "{}", "2": "{}", "3": "{}"})
    for n in range(2):
        client.rpush(bili.dead, json.dumps({"entry": "{}", "score": 0, "error": f"boom {n}", "attempts": 3,
                                            "worker": "w", "at": now}))
    client.rpush(douyin.seeds, "{}", "{}", "{}")
    client.rpush(f"{douyin.seeds}:rejected", "{}")
    client.hset(bili.stats, mapping={"item_scraped_count": 250, "livefleet/spider/pages/bilibili/room": 60,
                                     "livefleet/spider/pages/bilibili/list": 30,
                                     "livefleet/spider/blocked/bilibili": 5,
                                     "livefleet/spider/retryable/bilibili": 2,
                                     "livefleet/spider/failed/bilibili": 1, "livefleet/spider/gone/bilibili": 2,
                                     "downloader/response_bytes": "1234.5"})
    minute = int(now // 60)
    for back, items in {0: 999, 1: 50, 2: 40, 3: 30, 4: 20, 5: 10, 6: 777}.items():
        client.set(items_minute_key(bili, minute - back), items)  # now's minute and the 6th back: not counted
    client.set(items_minute_key(douyin, minute - 2), 60)  # douyin's items began two minutes ago
    client.set(items_minute_key(douyin, minute - 1), 30)
    workers = FleetKeys(prefix)
    live = {"worker": "a:1:bilibili", "host": "a", "pid": 1, "spider": "bilibili", "interval": 5.0, "leases": 2,
            "prefetched": 3, "counters": {"items": 200, "pages": 80, "blocked": 4, "errors": 3},
            "started_at": now - 100, "beat_at": now - 1}
    client.set(workers.worker("a:1:bilibili"), json.dumps(live), px=15_000)
    client.zadd(workers.workers, {"a:1:bilibili": now - 1})
    old = {**live, "worker": "b:2:bilibili", "host": "b", "pid": 2}  # key still there, beat too old
    client.set(workers.worker("b:2:bilibili"), json.dumps(old))
    client.zadd(workers.workers, {"b:2:bilibili": now - 60})
    client.zadd(workers.workers, {"c:3:douyin": now - 2})  # beat recent, but its key expired
    return SimpleNamespace(prefix=prefix, now=now)


def test_collect_status_reads_queues_leases_dead_letters_rates_and_workers(redis_client, fleet):
    # At the counters' time: read a second later, across a minute's end, the minutes would shift by one.
    status = collect_status(redis_client, fleet.prefix, spiders=["bilibili", "douyin", "kuaishou"], now=fleet.now)
    bili, douyin, kuaishou = (status["platforms"][n] for n in ("bilibili", "douyin", "kuaishou"))
    assert bili["queue"] == {"total": 10, "other": 0, "by_priority": [
        {"priority": 10, "requests": 3}, {"priority": 0, "requests": 5}, {"priority": -5, "requests": 2}]}
    assert douyin["queue"]["by_priority"] == [{"priority": 1, "requests": 4}]
    assert kuaishou["queue"] == {"total": 0, "by_priority": [], "other": 0}
    assert (bili["leased"], bili["leases_expired"], bili["dead_letters"]) == (3, 1, 2)
    assert (douyin["seeds"], douyin["seeds_rejected"], bili["seeds"]) == (3, 1, 0)
    assert bili["items_by_minute"] == [10, 20, 30, 40, 50] and bili["items_per_minute"] == 30.0
    counters = bili["counters"]
    assert (counters["items"], counters["pages"], counters["blocked"], counters["errors"]) == (250, 90, 5, 3)
    assert bili["attempts"] == 90 + 5 + 2 + 1 + 2  # parsed, blocked, retryable, failed, gone
    assert bili["block_rate"] == 0.05 and bili["error_rate"] == 0.03
    assert bili["stats"]["downloader/response_bytes"] == 1234.5
    assert douyin["items_by_minute"] == [0, 0, 0, 60, 30] and douyin["items_per_minute"] == 45.0  # not 18
    assert douyin["block_rate"] is None and kuaishou["items_per_minute"] == 0.0
    # workers whose heartbeat expired are summarised, not listed
    assert [(w["worker"], w["state"]) for w in status["workers"]] == [("a:1:bilibili", "live")]
    assert status["stale"]["count"] == 2
    assert status["workers"][0]["worker"] == "a:1:bilibili" and status["workers"][0]["leases"] == 2
    fleet_view = status["fleet"]
    assert (fleet_view["workers_live"], fleet_view["workers_stale"]) == (1, 2)
    assert (fleet_view["queued"], fleet_view["leased"], fleet_view["leases_expired"]) == (14, 3, 1)
    assert (fleet_view["dead_letters"], fleet_view["seeds"], fleet_view["items_per_minute"]) == (2, 3, 75.0)
    assert fleet_view["counters"]["items"] == 250 and fleet_view["block_rate"] == 0.05
    json.dumps(status)  # the --json document


def test_collect_status_writes_nothing(redis_client, fleet):
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    collect_status(redis_client, fleet.prefix)
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == before


def test_queue_depth_reads_two_commands_per_priority_not_the_queue(redis_client):
    keys = SpiderKeys("deep", "bilibili")
    _queue(redis_client, keys, {3: 20_000, 0: 30_000, -1: 1})
    redis_client.config_resetstat()
    depth = queue_depth(redis_client, keys.requests)
    assert depth["total"] == 50_001
    assert [(p["priority"], p["requests"]) for p in depth["by_priority"]] == [(3, 20_000), (0, 30_000), (-1, 1)]
    calls = {name: info["calls"] for name, info in redis_client.info("commandstats").items()}
    assert calls.get("cmdstat_zrangebyscore") == 3 and calls.get("cmdstat_zcount") == 3
    assert "cmdstat_zrange" not in calls
    capped = queue_depth(redis_client, keys.requests, max_priorities=2)
    assert capped["other"] == 1 and len(capped["by_priority"]) == 2


def test_render_status_shows_workers_platforms_and_what_the_rates_mean(redis_client, fleet):
    status = collect_status(redis_client, fleet.prefix, now=fleet.now)
    text = plain(*render(status, source="redis://127.0.0.1:1/0 (REDIS_URL)"))
    lines = text.splitlines()
    assert lines[0].startswith("livefleet status at ") and f"key prefix {fleet.prefix!r}" in lines[0]
    assert "workers: 1 live, 2 stale" in text  # the stale ones only counted
    row = next(line for line in lines if line.strip().startswith("a:1:bilibili"))
    cells = row.split()
    assert cells[:3] == ["a:1:bilibili", "bilibili", "live"] and cells[3].endswith("s") and cells[4:6] == ["2", "3"]
    bili = next(line for line in lines if line.strip().startswith("bilibili ")).split()
    assert bili[:8] == ["bilibili", "10", "10:3", "0:5", "-5:2", "3", "1", "2"]
    assert bili[-2:] == ["5.0%", "3.0%"]
    assert any(line.strip().startswith("fleet ") for line in lines)
    assert "per page attempt" in text
