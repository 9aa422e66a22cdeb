"""Worker heartbeats and the fleet's stats, against a real Redis (crawlers/health/heartbeat.py)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawlers.health.heartbeat import Flush, Heartbeat, StatsFlusher, counter_values, items_minute_key, server_time
from crawlers.health.status import collect_status
from crawlers.redis.keys import FleetKeys, SpiderKeys
from crawlers.services import EmbeddedRedis
from tests.crawl_helpers import run_crawl, wait_for

pytestmark = pytest.mark.integration


class _Spider(Spider):
    name = "bilibili"


def _heartbeat(url: str, prefix: str, interval: float, server: redis.Redis | None = None) -> Heartbeat:
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": url, "LIVEFLEET_KEY_PREFIX": prefix,
                                    "LIVEFLEET_HEARTBEAT_SECONDS": interval})
    heartbeat = (Heartbeat.from_crawler(crawler) if server is None
                 else Heartbeat(crawler, server, prefix, interval))
    heartbeat.open("bilibili")
    return heartbeat


def _stats_hash(client: redis.Redis, keys: SpiderKeys) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(keys.stats).items()}


def test_heartbeat_document_expiry_and_leaving(redis_server, redis_client):
    prefix = f"hb{uuid.uuid4().hex[:6]}"
    heartbeat = _heartbeat(redis_server.url, prefix, 2.0)
    stats = heartbeat.crawler.stats
    stats.set_value("item_scraped_count", 7)
    stats.set_value("livefleet/spider/pages/bilibili/room", 5)
    stats.set_value("livefleet/spider/blocked/bilibili", 1)
    stats.set_value("livefleet/spider/failed/bilibili", 2)
    stats.set_value("memusage/max", 123456)  # a peak: never added up over workers
    stats.set_value("elapsed_time_seconds", 3.5)
    fleet, keys = FleetKeys(prefix), SpiderKeys(prefix, "bilibili")

    assert heartbeat.beat(heartbeat.document(), stats.get_stats())

    worker_id = f"{socket.gethostname()}:{os.getpid()}:bilibili"
    assert heartbeat.worker_id == worker_id
    document = json.loads(redis_client.get(fleet.worker(worker_id)))
    assert {k: document[k] for k in ("worker", "host", "pid", "spider", "leases", "prefetched", "interval")} == {
        "worker": worker_id, "host": socket.gethostname(), "pid": os.getpid(), "spider": "bilibili",
        "leases": 0, "prefetched": 0, "interval": 2.0}
    assert document["counters"] | {"items": 7, "pages": 5, "blocked": 1, "failed": 2, "errors": 2} \
        == document["counters"]
    assert document["started_at"] == document["beat_at"] == redis_client.zscore(fleet.workers, worker_id)
    assert abs(document["beat_at"] - server_time(redis_client)) < 5
    assert 0 < redis_client.pttl(fleet.worker(worker_id)) <= 6000  # three intervals
    assert _stats_hash(redis_client, keys) == {
        "item_scraped_count": "7", "livefleet/spider/pages/bilibili/room": "5",
        "livefleet/spider/blocked/bilibili": "1", "livefleet/spider/failed/bilibili": "2"}
    minute = int(document["beat_at"] // 60)
    assert int(redis_client.get(items_minute_key(keys, minute))) == 7
    assert 0 < redis_client.ttl(items_minute_key(keys, minute)) <= 7200

    stats.inc_value("item_scraped_count", 3)
    stats.inc_value("livefleet/spider/pages/bilibili/room", 4)
    stats.set_value("downloader/response_bytes", 1.5)  # a float counter takes HINCRBYFLOAT
    assert heartbeat.beat(heartbeat.document(), stats.get_stats())
    assert heartbeat.beat(heartbeat.document(), stats.get_stats())  # nothing grew: nothing added
    later = json.loads(redis_client.get(fleet.worker(worker_id)))
    assert later["started_at"] == document["started_at"] and later["beat_at"] >= document["beat_at"]
    assert later["counters"]["items"] == 10
    flushed = _stats_hash(redis_client, keys)
    assert (flushed["item_scraped_count"], flushed["livefleet/spider/pages/bilibili/room"]) == ("10", "9")
    assert float(flushed["downloader/response_bytes"]) == 1.5

    stats.inc_value("item_scraped_count", 5)
    assert heartbeat.leave(stats.get_stats())
    assert _stats_hash(redis_client, keys)["item_scraped_count"] == "15"
    assert redis_client.get(fleet.worker(worker_id)) is None
    assert redis_client.zscore(fleet.workers, worker_id) is None
    assert redis_client.exists(heartbeat.flusher.marker_key) == 0


def test_a_worker_that_stops_beating_leaves_the_list_for_the_stale_count(redis_server, redis_client):
    prefix = f"hb{uuid.uuid4().hex[:6]}"
    heartbeat = _heartbeat(redis_server.url, prefix, 0.2)
    assert heartbeat.beat(heartbeat.document(), {})
    [worker] = collect_status(redis_client, prefix, spiders=[])["workers"]
    assert (worker["worker"], worker["state"]) == (heartbeat.worker_id, "live")
    key = FleetKeys(prefix).worker(heartbeat.worker_id)
    wait_for("the heartbeat key to expire", lambda: not redis_client.exists(key), 10, interval=0.05)  # 3 x 0.2 s
    status = collect_status(redis_client, prefix, spiders=[])
    assert status["workers"] == []
    assert status["stale"]["count"] == 1 and status["stale"]["newest_seen"] is not None


def test_two_workers_flushing_at_once_add_up_exactly(redis_server, redis_client):
    keys = SpiderKeys(f"hb{uuid.uuid4().hex[:6]}", "bilibili")
    rounds = 300
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        client = redis.Redis.from_url(redis_server.url)
        flusher = StatsFlusher(client, keys, f"w{n}")
        stats: dict[str, int | float] = {}
        try:
            barrier.wait()
            for i in range(rounds):
                stats["item_scraped_count"] = stats.get("item_scraped_count", 0) + i % 7 + 1
                stats["downloader/response_bytes"] = stats.get("downloader/response_bytes", 0.0) + 0.25
                stats[f"only/{n}"] = i + 1
                flusher.flush(stats, server_time(client))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    flushed = _stats_hash(redis_client, keys)
    per_worker_items = sum(i % 7 + 1 for i in range(rounds))
    assert int(flushed["item_scraped_count"]) == 2 * per_worker_items
    assert float(flushed["downloader/response_bytes"]) == 2 * rounds * 0.25
    assert (flushed["only/0"], flushed["only/1"]) == (str(rounds), str(rounds))
    minutes = [int(v) for k in redis_client.keys(f"{keys.stats}:items:*") for v in [redis_client.get(k)]]
    assert sum(minutes) == 2 * per_worker_items


def test_a_flush_whose_reply_was_lost_is_not_added_twice(redis_server, redis_client):
    keys = SpiderKeys(f"hb{uuid.uuid4().hex[:6]}", "bilibili")
    flusher = StatsFlusher(redis_client, keys, "host:1:bilibili")
    now = server_time(redis_client)
    assert flusher.flush({"item_scraped_count": 4}, now) == 1
    landed = redis_client.get(flusher.marker_key).decode()
    # The same flush again, as after an EXEC whose reply never came back: skipped.
    assert not flusher.send(Flush(landed, {"item_scraped_count": 4}, {"item_scraped_count": 4}, 4), now)
    assert _stats_hash(redis_client, keys) == {"item_scraped_count": "4"}
    # A new run under the same worker id (a restarted container is pid 1 again) is a new worker.
    again = StatsFlusher(redis_client, keys, "host:1:bilibili")
    assert again.flush({"item_scraped_count": 4}, now) == 1
    assert _stats_hash(redis_client, keys) == {"item_scraped_count": "8"}


def test_a_redis_outage_is_ridden_out_and_nothing_is_counted_twice(tmp_path, caplog):
    with EmbeddedRedis(tmp_path / "redis", persistent=False) as server:  # comes back empty
        client = redis.Redis.from_url(server.url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 1))
        try:
            heartbeat = _heartbeat(server.url, "outage", 1.0, server=client)
            keys = SpiderKeys("outage", "bilibili")
            stats = heartbeat.crawler.stats
            stats.set_value("item_scraped_count", 3)
            assert heartbeat.beat(heartbeat.document(), stats.get_stats())
            server.stop()
            stats.inc_value("item_scraped_count", 4)
            with caplog.at_level(logging.INFO, logger="crawlers.health.heartbeat"):
                assert not heartbeat.beat(heartbeat.document(), stats.get_stats())
                stats.inc_value("item_scraped_count", 2)
                assert not heartbeat.beat(heartbeat.document(), stats.get_stats())
                server.start()  # same port, empty (no persistence): what was flushed before is gone
                assert heartbeat.beat(heartbeat.document(), stats.get_stats())
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "could not reach Redis" in warnings[0].getMessage()
            assert any("reached Redis again after 2 failed beats" in r.getMessage() for r in caplog.records)
            # The first flush's 3 died with the old server; the growth since (4 + 2) arrives once.
            assert client.hget(keys.stats, "item_scraped_count") == b"6"
            assert client.zscore(FleetKeys("outage").workers, heartbeat.worker_id) is not None
            # ... and the empty Redis is reported, once: the fleet's state is gone with it.
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and errors[0].startswith("Redis lost the fleet's state: epoch ")
            assert stats.get_value("livefleet/health/state_lost") == 1
            assert client.llen(FleetKeys("outage").epoch_lost) == 1
        finally:
            client.close()


@pytest.mark.parametrize("value", [0, 0.0])
def test_heartbeat_off_with_zero_interval(redis_server, value):
    from scrapy.exceptions import NotConfigured

    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_HEARTBEAT_SECONDS": value})
    with pytest.raises(NotConfigured):
        Heartbeat.from_crawler(crawler)


def test_crawling_workers_beat_and_their_stats_add_up_in_redis(tmp_path, sandbox, redis_server, mongo_server,
                                                                redis_client):
    """Two real workers crawl the sandbox: both show up live while they work, leave when they
    close, and the fleet's stats hash holds exactly the sum of their final counters."""
    result: dict[str, object] = {}

    def crawl() -> None:
        try:
            result["crawl"] = run_crawl(
                tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili", workers=2,
                seeds=[{"kind": "area", "parent_area_id": 2, "area_id": 0, "max_pages": 2}],
                LIVEFLEET_HEARTBEAT_SECONDS="0.3")
        except BaseException as exc:  # reported by the test thread
            result["error"] = exc

    thread = threading.Thread(target=crawl)
    thread.start()
    seen: dict[str, dict] = {}
    prefix = None
    while thread.is_alive():
        if prefix is None:  # run_crawl picks a fresh prefix and pushes its seeds first
            prefix = next((k.decode().split(":")[0] for k in redis_client.keys("t*:bilibili:*")), None)
        if prefix is not None:
            for worker in collect_status(redis_client, prefix, spiders=[])["workers"]:
                if worker["state"] == "live":
                    seen[worker["worker"]] = worker
        time.sleep(0.1)
    thread.join()
    assert "error" not in result, result.get("error")
    prefix, _, stats = result["crawl"]
    assert len(seen) == 2, f"both workers were seen live, got {sorted(seen)}"
    for worker in seen.values():
        assert worker["spider"] == "bilibili" and worker["host"] == socket.gethostname()
        assert worker["worker"] == f"{worker['host']}:{worker['pid']}:bilibili"
        assert set(worker["counters"]) >= {"items", "pages", "blocked", "errors"}
    status = collect_status(redis_client, prefix, spiders=["bilibili"])
    assert status["workers"] == [], "a worker that closes removes its heartbeat"
    fleet_stats = status["platforms"]["bilibili"]["stats"]
    expected: dict[str, float] = {}
    for worker_stats in stats:
        for name, value in counter_values(worker_stats).items():
            if not name.startswith("log_count/"):  # lines logged after the last flush
                expected[name] = expected.get(name, 0) + value
    assert {k: v for k, v in fleet_stats.items() if not k.startswith("log_count/")} == pytest.approx(expected)
    items = sum(int(s.get("item_scraped_count", 0)) for s in stats)
    assert items > 0 and status["platforms"]["bilibili"]["counters"]["items"] == items
    minute_keys = redis_client.keys(f"{prefix}:bilibili:stats:items:*")
    assert sum(int(redis_client.get(k)) for k in minute_keys) == items


def test_a_heartbeat_carries_what_waits_in_the_store_spool(redis_server, redis_client, tmp_path):
    """Each beat sizes the worker's store spool (files and bytes, claimed ones too): ``/metrics`` sums them."""
    from pipelines.store.spool import Spool

    prefix = f"hb{uuid.uuid4().hex[:6]}"
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": prefix,
                                    "LIVEFLEET_HEARTBEAT_SECONDS": 5.0, "LIVEFLEET_VAR_DIR": str(tmp_path)})
    heartbeat = Heartbeat.from_crawler(crawler)
    heartbeat.open("bilibili")
    assert heartbeat.document()["spool"] == {"dir": str(tmp_path / "spool"), "files": 0, "bytes": 0}
    spool = Spool(tmp_path / "spool")
    first = spool.write(['{"a": 1}', '{"b": 2}'])
    spool.write(['{"c": 3}'])
    assert spool.claim(first) is not None  # being replayed: still waiting to be written back
    (spool.directory / "rejected").mkdir()
    (spool.directory / "rejected" / "x.jsonl").write_text("{}\n")  # kept aside for good: not waiting
    size = sum(p.stat().st_size for p in spool.directory.iterdir() if p.is_file())
    assert heartbeat.beat(heartbeat.document(), {})
    [worker] = collect_status(redis_client, prefix, spiders=[])["workers"]
    assert worker["spool"] == {"dir": str(tmp_path / "spool"), "files": 2, "bytes": size}
    assert heartbeat.leave({})
