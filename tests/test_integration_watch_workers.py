"""Watching with real workers (``livefleet worker --watch``): two of them, one killed -9 while a watched
streamer is offline; its going live is still noticed, its monitor started once, its alerts sent once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest
import redis as redis_lib

from crawlers.monitor.registry import Registry
from crawlers.watch import lists, subscribing
from tests.crawl_helpers import Fleet, wait_for
from tests.plugins.robots import serve_robots
from tests.test_integration_watch_service import _live, _plan

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]

SECRET = "workers-secret"


@pytest.fixture(scope="module")
def moving_sandbox():
    from sandbox.process import start_sandbox

    with start_sandbox("--platforms", "bilibili", "--time-scale", "0", "--no-chaos") as sandbox:
        yield sandbox


def test_two_watching_workers_and_a_kill_9_give_one_monitor_and_each_alert_once(tmp_path, moving_sandbox,
                                                                                redis_server, mongo_server):
    sandbox = moving_sandbox
    uid, live_at, end_at, quiet = _plan()
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili",
                  LIVEFLEET_WATCH_INTERVAL_SECONDS="2", LIVEFLEET_WEBHOOK_ALLOW="127.0.0.0/8")
    client = redis_lib.Redis.from_url(redis_server.url)
    registry = Registry(client, fleet.prefix)
    moved = [0]

    def advance_to(minute: int) -> None:
        sandbox.clock(advance_seconds=(minute - moved[0]) * 60)
        moved[0] = minute

    def detail() -> str:
        return f"monitors {registry.list()}\nworker 1 log:\n{fleet.log(1)[-3000:]}"

    with serve_robots(dingtalk={"tok": "SECdt"}, feishu={}, wecom=set(), webhook_secret=SECRET) as robots:
        lists.add_entries(client, fleet.prefix, "evening", [f"https://space.bilibili.com/{u}" for u in [uid, *quiet]],
                          tier="hot", platform="bilibili")
        subscribing.add_subscriber(client, fleet.prefix, "evening", "webhook", robots.url("webhook"), SECRET,
                                   allow="127.0.0.1")
        subscribing.add_subscriber(client, fleet.prefix, "evening", "dingtalk", robots.url("dingtalk", "tok"), "SECdt",
                                   events="stream_started,stream_ended", allow="127.0.0.1")
        try:
            fleet.start(2, idle_close=0, watch=True)
            # both workers check (status seeds) while everyone is offline; then one dies without a word
            wait_for("the watched streamers checked", lambda: _status_calls(sandbox) >= 3, 90, detail=detail)
            fleet.procs[0].send_signal(signal.SIGKILL)
            fleet.procs[0].wait()
            advance_to(live_at + 1)
            assert _live(sandbox, uid)
            monitor = wait_for("a monitor started", lambda: next(iter(registry.list()), None), 60, detail=detail)
            wait_for("stream_started at both subscribers",
                     lambda: robots.of("webhook") and robots.of("dingtalk"), 60, detail=detail)
            advance_to(end_at + 1)
            wait_for("the monitor stopped", lambda: registry.get(monitor.id).state == "stopped", 60, detail=detail)
            wait_for("stream_ended at both subscribers",
                     lambda: len(robots.of("webhook")) >= 2 and len(robots.of("dingtalk")) >= 2, 120, detail=detail)
            time.sleep(4)  # more checks: nothing more
            for kind in ("webhook", "dingtalk"):
                events = Counter(r.json["alert"]["event"] if kind == "webhook" else _ding_event(r.json)
                                 for r in robots.of(kind))
                assert events == {"stream_started": 1, "stream_ended": 1}, (kind, events)
                assert all(r.accepted for r in robots.of(kind))
            assert len(registry.list()) == 1, "one monitor, though two workers watched"
        finally:
            fleet.stop()
            client.close()


def _status_calls(sandbox: Any) -> int:
    return sum(n for name, n in sandbox.stats()["endpoints"].items() if "get_status_info_by_uids" in name)


def _ding_event(body: dict[str, Any]) -> str:
    title = body["markdown"]["title"]
    return "stream_started" if "开播" in title else "stream_ended" if "下播" in title else title


def test_a_notify_only_check_stores_the_rooms_state_but_no_snapshots(tmp_path, redis_server, mongo_server):
    from pymongo import MongoClient

    from sandbox.process import start_sandbox
    from tests.crawl_helpers import run_crawl

    with start_sandbox("--platforms", "bilibili", "--time-scale", "0", "--no-chaos", "--no-faults",
                       "--streamers", "40") as sandbox:
        uids = sorted({str(r["uid"]) for r in sandbox.truth("bilibili")["rooms"]})[:30]
        counts = {}
        for notify_only in (True, False):
            seed: dict[str, Any] = {"kind": "status", "uids": uids, "follow": []}
            if notify_only:
                seed["snapshots"] = False
            (tmp_path / str(notify_only)).mkdir()
            _, db_name, _ = run_crawl(tmp_path / str(notify_only), sandbox, redis_server.url, mongo_server.url,
                                      spider="bilibili", seeds=[seed])
            client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
            try:
                db = client[db_name]
                counts[notify_only] = (db.rooms.count_documents({}), db.room_snapshots.count_documents({}))
            finally:
                client.drop_database(db_name)
                client.close()
    assert counts[True][0] == counts[False][0] == 30, counts
    assert counts[True][1] == 0 and counts[False][1] > 0, counts
