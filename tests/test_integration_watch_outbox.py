"""Alert delivery from Redis: an alert whose sender died is sent by another; failures are kept and replayed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from crawlers.alerts.robots import Alert
from crawlers.redis.keys import FleetKeys
from crawlers.watch import lists, subscribing
from crawlers.watch.outbox import TAKE, alert_failures, deliver_pending, queue_alert, replay_failures
from tests.crawl_helpers import ROOT
from tests.plugins.robots import serve_robots

pytestmark = pytest.mark.integration

SECRET = "outbox-secret"
ALLOW = "127.0.0.0/8"


def _alert(n: int = 1) -> Alert:
    return Alert(event="stream_started", platform="bilibili", streamer_id=f"{1000 + n}", room_id=f"{2000 + n}",
                 session_id=f"{2000 + n}:1780000000", at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC))


@pytest.fixture
def prefix() -> str:
    return f"ob{uuid.uuid4().hex[:8]}"


def test_an_alert_whose_sender_died_mid_send_is_sent_by_another_once_its_lease_is_over(redis_client, prefix):
    with serve_robots(dingtalk={}, feishu={}, wecom=set(), webhook_secret=SECRET) as robots:
        lists.create_list(redis_client, prefix, "evening", "bilibili")
        sub_id = subscribing.add_subscriber(redis_client, prefix, "evening", "webhook", robots.url("webhook"), SECRET,
                                            allow=ALLOW)
        (sub,) = subscribing.subscribers(redis_client, prefix, "evening")
        assert queue_alert(redis_client, prefix, sub, _alert(1)) and queue_alert(redis_client, prefix, sub, _alert(2))
        assert not queue_alert(redis_client, prefix, sub, _alert(1)), "queued once per subscriber"
        keys = FleetKeys(prefix)
        # a deliverer takes the first alert, then is killed before sending it
        taken = redis_client.register_script(TAKE)(keys=[keys.alert_outbox(sub_id), keys.alert_inflight],
                                                   args=["dead-sender", sub_id])
        assert json.loads(taken)["alert"]["streamer_id"] == "1001"
        counts = deliver_pending(redis_client, prefix, ALLOW)  # its lease is not over: only the second goes
        assert counts == {"sent": 1, "failed": 0, "recovered": 0}
        assert [r.json["alert"]["streamer_id"] for r in robots.of("webhook")] == ["1002"]
        counts = deliver_pending(redis_client, prefix, ALLOW, lease_ms=0)  # the lease is over: taken back
        assert counts == {"sent": 1, "failed": 0, "recovered": 1}
        assert sorted(r.json["alert"]["streamer_id"] for r in robots.of("webhook")) == ["1001", "1002"]
        assert all(r.accepted for r in robots.of("webhook"))
        assert redis_client.hlen(keys.alert_inflight) == 0 and redis_client.llen(keys.alert_outbox(sub_id)) == 0


def test_an_undeliverable_alert_is_kept_with_its_error_and_replayed_when_the_robot_is_fixed(redis_client, prefix):
    with serve_robots(dingtalk={"tok": "SECgood"}, feishu={}, wecom=set(), webhook_secret=SECRET) as robots:
        lists.create_list(redis_client, prefix, "evening", "bilibili")
        subscribing.add_subscriber(redis_client, prefix, "evening", "dingtalk", robots.url("dingtalk", "tok"),
                                   "SECwrong", allow=ALLOW)
        (sub,) = subscribing.subscribers(redis_client, prefix, "evening")
        queue_alert(redis_client, prefix, sub, _alert())
        counts = deliver_pending(redis_client, prefix, ALLOW, backoff=0.01)
        assert counts["failed"] == 1 and counts["sent"] == 0
        (failed,) = alert_failures(redis_client, prefix)
        assert "310000" in failed["error"] or "sign" in failed["error"].lower(), failed
        assert "SECwrong" not in json.dumps(failed)
        env = {"REDIS_URL": _url(redis_client),
               "LIVEFLEET_KEY_PREFIX": prefix, "PATH": "/usr/bin:/bin"}
        shown = subprocess.run([sys.executable, "-m", "crawlers", "watch", "alert", "failures"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and "stream_started bilibili:1001" in shown.stdout, shown.stderr
        # the secret is put right; the failure is replayed and goes through
        subscribing.add_subscriber(redis_client, prefix, "evening", "dingtalk", robots.url("dingtalk", "tok"),
                                   "SECgood", allow=ALLOW)
        assert replay_failures(redis_client, prefix) == 1
        assert deliver_pending(redis_client, prefix, ALLOW)["sent"] == 1
        assert robots.of("dingtalk")[-1].accepted and alert_failures(redis_client, prefix) == []


def _url(client) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
