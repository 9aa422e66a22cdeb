"""End to end: what a scrapy-redis producer pushes to ``bilibili:start_urls`` is crawled or refused aloud.

Entries are pushed the way scrapy-redis users do (``LPUSH``, JSON objects and bare URLs)
to the literal scrapy-redis key, a real worker runs against the Bilibili sandbox through
real Redis into the real MongoDB-compatible server, and: the pages of Bilibili are
crawled into MongoDB, the rest are in ``bilibili:start_urls:rejected`` byte for byte with
a WARNING each in the worker's log, and nothing is left in ``bilibili:start_urls``.
"""

from __future__ import annotations

import json
import logging

import pytest
import redis as redis_lib
from pymongo import MongoClient
from scrapy.utils.test import get_crawler

from crawlers.queue.feeder import SeedFeeder
from crawlers.redis.keys import StartUrlsKeys
from spiders.bilibili.spider import BilibiliSpider
from tests.crawl_helpers import Fleet

pytestmark = pytest.mark.integration

KEYS = StartUrlsKeys.of("bilibili")


def test_scrapy_redis_start_urls_are_crawled_or_refused_aloud(tmp_path, sandbox, redis_server, mongo_server):
    truth = sandbox.truth("bilibili")
    broken = {r for kind in truth["faults"].values() for r in kind}
    live = [r for r in truth["rooms"] if r["live_status"] == 1 and r["room_id"] not in broken][:2]
    offline = next(r for r in truth["rooms"] if r["live_status"] == 0 and r["room_id"] not in broken)
    good = [
        f"https://live.bilibili.com/{live[0]['room_id']}?spm_id_from=333.1007.0.0".encode(),  # a bare URL
        json.dumps({"url": f"https://live.bilibili.com/h5/{live[1]['room_id']}", "meta": {"job-id": "7"}}).encode(),
        json.dumps({"url": f"https://space.bilibili.com/{offline['uid']}/"}).encode(),
    ]
    bad = [
        json.dumps({"url": "https://live.douyin.com/604946797621"}).encode(),  # another platform
        b'{"url": "https://live.bilibili.com/1", ',  # not JSON
        json.dumps({"meta": {"job-id": "8"}}).encode(),  # no url
        b"https://live.bilibili.com/p/eden/area-tags?parentAreaId=2&areaId=0",  # a page with no seed
        b"\xff\xfejunk",  # not text
    ]
    client = redis_lib.Redis.from_url(redis_server.url)
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili")
    try:
        client.delete(KEYS.key, KEYS.rejected)
        for entry in [good[0], bad[0], bad[1], good[1], bad[2], bad[3], good[2], bad[4]]:
            client.lpush(KEYS.key, entry)  # as `redis-cli lpush bilibili:start_urls ...`
        fleet.start(1, idle_close=1)
        (stats,) = fleet.wait(timeout=60)
        log = fleet.log(0)
        assert stats is not None

        assert client.exists(KEYS.key) == 0, "every entry was taken or moved"
        assert sorted(client.lrange(KEYS.rejected, 0, -1)) == sorted(bad), "refused entries moved unchanged"
        assert stats.get("livefleet/start_urls/taken") == len(good)
        assert stats.get("livefleet/start_urls/rejected") == len(bad)
        for code in ("other_platform", "not_json", "no_url", "not_a_target", "not_text"):
            assert stats.get(f"livefleet/start_urls/rejected/{code}") == 1, code
        assert log.count("Start URL refused and moved to bilibili:start_urls:rejected") == len(bad)
        assert "WARNING" in log and "a douyin URL, not a bilibili one" in log
        assert "Took 3 start URLs from bilibili:start_urls as bilibili seeds" in log
        assert "meta.job-id" in log, "what could not be applied was named"

        with MongoClient(mongo_server.url) as mongo:
            db = mongo[fleet.db_name]
            rooms = {d["room_id"]: d for d in db.rooms.find({})}
            for room in live:
                assert rooms[str(room["room_id"])]["status"] == "live"
                assert rooms[str(room["room_id"])]["title"] == room["title"]
            streamer = db.streamers.find_one({"streamer_id": str(offline["uid"])})
            assert streamer is not None and streamer["room_id"] == str(offline["room_id"])
            assert db.quarantine.count_documents({}) == 0
            mongo.drop_database(fleet.db_name)
    finally:
        fleet.stop()
        client.delete(KEYS.key, KEYS.rejected)
        client.close()


def _feeder(redis_server, scheduled: list, **settings) -> tuple[SeedFeeder, BilibiliSpider]:
    """The real feeder and Bilibili spider in-process, the engine only collecting what it is handed."""
    crawler = get_crawler(BilibiliSpider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": "lfsu",
                                           "LIVEFLEET_SANDBOX_URL": "http://127.0.0.1:9", **settings})
    spider = BilibiliSpider.from_crawler(crawler)
    crawler.spider = spider
    crawler.engine = type("Engine", (), {"crawl": staticmethod(scheduled.append)})()
    return SeedFeeder.from_crawler(crawler), spider


def test_the_scrapy_redis_key_settings_are_honoured(redis_server, redis_client, caplog):
    """REDIS_START_URLS_KEY and ..._AS_SET / ..._AS_ZSET as scrapy-redis reads them; a key of another type
    than the settings say is reported once and left as it is."""
    caplog.set_level(logging.INFO, logger="crawlers.queue.feeder")
    scheduled: list = []
    feeder, spider = _feeder(redis_server, scheduled, REDIS_START_URLS_KEY="jobs:%(name)s:urls",
                             REDIS_START_URLS_AS_SET="True", MAX_IDLE_TIME_BEFORE_CLOSE="30")
    assert "MAX_IDLE_TIME_BEFORE_CLOSE is a scrapy-redis setting livefleet does not read" in caplog.text
    redis_client.sadd("jobs:bilibili:urls", b"https://live.bilibili.com/5440", b"https://b23.tv/BV1xx411c7mD")
    assert feeder._start_urls_waiting(spider) == 2
    assert feeder._take_start_urls(spider) == 1
    assert [r.url for r in scheduled] == ["http://127.0.0.1:9/api.live.bilibili.com/room/v1/Room/room_init?id=5440"]
    assert redis_client.exists("jobs:bilibili:urls") == 0
    assert redis_client.lrange("jobs:bilibili:urls:rejected", 0, -1) == [b"https://b23.tv/BV1xx411c7mD"]
    assert spider.crawler.stats.get_value("livefleet/start_urls/rejected/short_link") == 1

    scheduled.clear()
    feeder, spider = _feeder(redis_server, scheduled, REDIS_START_URLS_AS_ZSET=True)
    redis_client.zadd("bilibili:start_urls", {b"https://live.bilibili.com/1": 1, b"https://live.bilibili.com/3": 3,
                                              b"https://live.bilibili.com/2": 2})
    assert feeder._take_start_urls(spider) == 3
    assert [r.url.rsplit("=", 1)[1] for r in scheduled] == ["3", "2", "1"], "highest score first"

    caplog.clear()
    feeder, spider = _feeder(redis_server, scheduled)  # a list, but the key is a set
    redis_client.sadd("bilibili:start_urls", b"https://live.bilibili.com/5440")
    assert feeder._start_urls_waiting(spider) == 0 and feeder._take_start_urls(spider) == 0
    assert redis_client.smembers("bilibili:start_urls") == {b"https://live.bilibili.com/5440"}, "left as it is"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "REDIS_START_URLS_AS_SET" in errors[0].getMessage()
    assert "it is a set" in errors[0].getMessage()
    redis_client.delete("bilibili:start_urls", "jobs:bilibili:urls:rejected")
