"""Stale workers in ``livefleet status``: summarised, not listed, and forgotten after a while
(crawlers/health/status.py, crawlers/health/heartbeat.py), against a real Redis."""

from __future__ import annotations

import json
import uuid

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawlers.cli.output import plain
from crawlers.cli.status import render
from crawlers.health.heartbeat import FORGET_AFTER_SECONDS, Heartbeat, server_time
from crawlers.health.status import collect_status
from crawlers.redis.keys import FleetKeys
from tests.crawl_helpers import wait_for

pytestmark = pytest.mark.integration


class _Spider(Spider):
    name = "bilibili"


def _heartbeat(url: str, prefix: str, interval: float, spider: str = "bilibili") -> Heartbeat:
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": url, "LIVEFLEET_KEY_PREFIX": prefix,
                                    "LIVEFLEET_HEARTBEAT_SECONDS": interval})
    heartbeat = Heartbeat.from_crawler(crawler)
    heartbeat.open(spider)  # worker id <host>:<pid>:<spider>
    return heartbeat


def test_an_expired_heartbeat_leaves_the_workers_and_is_summarised_then_forgotten(redis_server, redis_client):
    prefix = f"st{uuid.uuid4().hex[:6]}"
    fleet = FleetKeys(prefix)
    now = server_time(redis_client)
    # Left by workers long gone: one within the retention (counted), one beyond it (neither counted nor kept).
    redis_client.zadd(fleet.workers, {"gone:1:douyin": now - 600, "ancient:2:douyin": now - FORGET_AFTER_SECONDS - 60})

    dying = _heartbeat(redis_server.url, prefix, 0.2)
    assert dying.beat(dying.document(), {})
    status = collect_status(redis_client, prefix, spiders=[])
    assert [(w["worker"], w["state"]) for w in status["workers"]] == [(dying.worker_id, "live")]
    assert status["stale"] == {"count": 1, "newest_seen": pytest.approx(now - 600, abs=0.01)}
    # A beat removes the forgotten entry from the sorted set (status itself writes nothing).
    assert redis_client.zscore(fleet.workers, "ancient:2:douyin") is None
    beat_at = redis_client.zscore(fleet.workers, dying.worker_id)

    # The worker stops beating without leaving (killed, hung): its key expires after three intervals.
    wait_for("the heartbeat key to expire", lambda: not redis_client.exists(fleet.worker(dying.worker_id)), 10,
             interval=0.05)
    before = {k: redis_client.dump(k) for k in redis_client.keys(f"{prefix}:*")}
    status = collect_status(redis_client, prefix, spiders=[])
    assert {k: redis_client.dump(k) for k in redis_client.keys(f"{prefix}:*")} == before, "status wrote"
    assert status["workers"] == []
    assert status["stale"] == {"count": 2, "newest_seen": beat_at}
    assert (status["fleet"]["workers_live"], status["fleet"]["workers_stale"]) == (0, 2)
    json.dumps(status)  # the --json document and the API's /v1/status answer
    assert "workers: 0 live, 2 stale" in plain(*render(status))

    # A live worker next to them is listed alone; leaving takes it out without a trace.
    other = _heartbeat(redis_server.url, prefix, 5.0, spider="douyin")
    assert other.beat(other.document(), {})
    status = collect_status(redis_client, prefix, spiders=[])
    assert [w["worker"] for w in status["workers"]] == [other.worker_id]
    assert status["stale"]["count"] == 2
    assert other.leave({})
    status = collect_status(redis_client, prefix, spiders=[])
    assert status["workers"] == [] and status["stale"] == {"count": 2, "newest_seen": beat_at}
    assert redis_client.zcard(fleet.workers) == 2  # the two stale ones, until they are forgotten
