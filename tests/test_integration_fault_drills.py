"""Fault drills: the fleet loses nothing when a worker dies, Redis restarts or MongoDB goes away,
and a request that crashes its callback every time ends as a dead letter without stopping anything.

Each drill runs real worker processes against a fault-free Bilibili sandbox and
compares MongoDB with the sandbox's ground truth afterwards.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis as redis_lib
import scrapy
from pymongo import MongoClient

from crawlers.queue.lease_queue import LeaseQueue, dead_letters
from crawlers.services import EmbeddedMongo, EmbeddedRedis
from sandbox.process import SandboxProcess, start_sandbox
from spiders.bilibili.spider import BilibiliSpider
from tests.crawl_helpers import Fleet, stat_sum, wait_for

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]

SEEDS = [{"kind": "areas", "max_pages": 10}]
#: Short leases, so a dead worker's requests come back within seconds.
DRILL_ENV = {"LIVEFLEET_LEASE_SECONDS": "3"}


@pytest.fixture(scope="module")
def drill_sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox("--time-scale", "0", "--streamers", "120", "--no-faults") as sandbox:
        yield sandbox


def _assert_equals_truth(mongo_uri: str, db_name: str, sandbox: SandboxProcess) -> None:
    """Every live room and its streamer landed, each exactly once."""
    truth = sandbox.truth("bilibili")
    live = {str(r["room_id"]): r for r in truth["rooms"] if r["live_status"] == 1}
    with MongoClient(mongo_uri) as client:
        db = client[db_name]
        rooms = list(db.rooms.find({"platform": "bilibili"}, {"room_id": 1, "title": 1, "status": 1}))
        assert sorted(d["room_id"] for d in rooms) == sorted(live), "every live room, each exactly once"
        for doc in rooms:
            assert doc["title"] == live[doc["room_id"]]["title"] and doc["status"] == "live"
        streamers = [d["streamer_id"] for d in db.streamers.find({"platform": "bilibili"}, {"streamer_id": 1})]
        assert sorted(streamers) == sorted(str(r["uid"]) for r in live.values())
        with_snapshot = set(db.room_snapshots.distinct("room_id", {"platform": "bilibili"}))
        assert with_snapshot == set(live)
        client.drop_database(db_name)


def _assert_queue_drained(client: redis_lib.Redis, fleet: Fleet) -> None:
    keys = fleet.keys
    assert client.zcard(keys.requests) == 0 and client.zcard(keys.leases) == 0 and client.hlen(keys.leased) == 0
    assert client.llen(keys.dead) == 0, dead_letters(client, keys)


@contextmanager
def _drill(tmp_path, sandbox: SandboxProcess, redis_url: str, mongo_uri: str, **env: str
           ) -> Iterator[tuple[Fleet, redis_lib.Redis]]:
    """A seeded Bilibili crawl (workers not started yet) and a Redis client to watch it; both cleaned up."""
    fleet = Fleet(tmp_path, sandbox, redis_url, mongo_uri, spider="bilibili", **{**DRILL_ENV, **env})
    fleet.push_seeds(SEEDS)
    client = redis_lib.Redis.from_url(redis_url)
    try:
        yield fleet, client
    finally:
        fleet.stop()
        client.close()


def _handled(client: redis_lib.Redis, fleet: Fleet) -> int:
    return int(client.scard(fleet.keys.seen("default")))


def test_kill_9_a_worker_mid_crawl_and_the_crawl_still_completes(tmp_path, drill_sandbox, redis_server,
                                                                  mongo_server):
    with _drill(tmp_path, drill_sandbox, redis_server.url, mongo_server.url, rate=25) as (fleet, client):
        fleet.start(2)
        wait_for("the crawl to get going", lambda: _handled(client, fleet) >= 40, 120, interval=0.1)
        victim = fleet.procs[0]
        held = [lease for lease in client.zrange(fleet.keys.leases, 0, -1)
                if lease.decode().split(":")[1] == str(victim.pid)]
        os.kill(victim.pid, signal.SIGKILL)
        assert held, "the killed worker held leases"
        stats = fleet.wait()
        assert stats[0] is None
        survivor = stats[1]
        assert survivor is not None and survivor.get("livefleet/queue/expired", 0) >= 1
        _assert_queue_drained(client, fleet)
    _assert_equals_truth(mongo_server.url, fleet.db_name, drill_sandbox)


def test_redis_restarts_mid_crawl_and_nothing_is_lost(tmp_path, drill_sandbox, mongo_server):
    with (EmbeddedRedis(tmp_path / "redis", persistent=True) as server,
          _drill(tmp_path, drill_sandbox, server.url, mongo_server.url, rate=25) as (fleet, client)):
        fleet.start(1)
        wait_for("the crawl to get going", lambda: _handled(client, fleet) >= 40, 120, interval=0.1)
        before = _handled(client, fleet)
        time.sleep(1.2)  # the append-only file is synced every second
        server.restart()
        assert _handled(client, fleet) >= before, "the queue and seen-set survived the restart"
        (stats,) = fleet.wait()
        assert stats["finish_reason"] == "finished"
        _assert_queue_drained(client, fleet)
    _assert_equals_truth(mongo_server.url, fleet.db_name, drill_sandbox)


def _room_page_fingerprints(sandbox: SandboxProcess) -> set[bytes]:
    """Fingerprints of every live room's detail page (a page that always yields items)."""
    from scrapy.utils.request import fingerprint

    truth = sandbox.truth("bilibili")
    return {fingerprint(scrapy.Request(f"{sandbox.url}/api.live.bilibili.com/room/v1/Room/get_info?room_id="
                                       f"{r['room_id']}")).hex().encode()
            for r in truth["rooms"] if r["live_status"] == 1}


def _handled_rooms(client: redis_lib.Redis, fleet: Fleet, pages: set[bytes]) -> int:
    return len(pages & set(client.smembers(fleet.keys.seen("default"))))


def test_mongodb_outage_spools_and_acknowledges_nothing_until_stored(tmp_path, drill_sandbox, redis_server):
    with (EmbeddedMongo(tmp_path / "mongo") as mongo,
          _drill(tmp_path, drill_sandbox, redis_server.url, mongo.url, rate=25) as (fleet, client)):
        fleet.start(1)
        wait_for("the crawl to get going", lambda: _handled(client, fleet) >= 30, 120, interval=0.1)
        pages = _room_page_fingerprints(drill_sandbox)
        mongo.stop()
        time.sleep(1)  # a batch already written when it went away may still be acknowledged
        during = _handled_rooms(client, fleet, pages)
        assert during < len(pages)
        # The store retries its write, then spools the batch; meanwhile the crawl goes on.
        wait_for("items to be spooled", lambda: list((tmp_path / "spool").glob("*.jsonl*")), 90, interval=0.1)
        time.sleep(3)
        # Pages without items (an empty list page) may still be handled; a room page may not.
        assert _handled_rooms(client, fleet, pages) == during, "no room page acknowledged while MongoDB is away"
        assert client.zcard(fleet.keys.leases) > 0, "the worker holds its requests meanwhile"
        mongo.restart()
        (stats,) = fleet.wait()
        assert stats.get("livefleet/store/spooled", 0) > 0 and stats.get("livefleet/store/replayed", 0) > 0
        _assert_queue_drained(client, fleet)
        assert _handled_rooms(client, fleet, pages) == len(pages)
        _assert_equals_truth(mongo.url, fleet.db_name, drill_sandbox)


def test_a_poison_request_ends_as_a_dead_letter_and_the_fleet_goes_on(tmp_path, drill_sandbox, redis_server,
                                                                       mongo_server):
    with _drill(tmp_path, drill_sandbox, redis_server.url, mongo_server.url, rate=25,
                LIVEFLEET_MAX_FAILURES="2") as (fleet, client):
        spider = BilibiliSpider()
        # A request whose callback raises every time (it is called with an argument it does not take).
        poison = scrapy.Request(f"{drill_sandbox.url}/api.live.bilibili.com/room/v1/Room/get_info?room_id=1",
                                callback=spider.parse_page, errback=spider.on_error, cb_kwargs={"poison": 1},
                                meta={"download_slot": "bilibili", "livefleet": {"kind": "room_info"}},
                                dont_filter=True)
        LeaseQueue(client, spider, fleet.keys, worker="test").push(poison, "poison", "default")
        fleet.start(1)
        (stats,) = fleet.wait()
        (letter,) = dead_letters(client, fleet.keys)
        assert letter["url"] == poison.url and letter["attempts"] == 2
        assert letter["error"].startswith("callback error: TypeError") and "poison" in letter["error"]
        assert stat_sum([stats], "livefleet/queue/dead") == 1
    _assert_equals_truth(mongo_server.url, fleet.db_name, drill_sandbox)
