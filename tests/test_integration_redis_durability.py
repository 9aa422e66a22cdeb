"""Redis that loses nothing, and says so loudly when it did lose the fleet's state.

- The embedded Redis, with its defaults (what the demo and a single machine use), is
  killed with SIGKILL mid-crawl and brought back by ``ensure_services`` (what
  ``livefleet services start`` and every command run): the crawl finishes and MongoDB equals
  the sandbox's ground truth.
- A Redis flushed under running workers (a Redis that came back without livefleet's state)
  is reported by the workers (ERROR line, stat, a loss record in Redis), by ``livefleet
  status`` (table and JSON), and a campaign run followed to its end is recorded failed with
  the reason, never "done".
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis as redis_lib

from crawlers.campaigns.loader import parse_campaign
from crawlers.campaigns.runs import COLLECTION, follow_run, start_run
from crawlers.cli.main import main
from crawlers.redis.keys import FleetKeys
from crawlers.services import ensure_services, read_record, stop_services
from crawlers.services.processes import wait_for_exit
from sandbox.process import SandboxProcess, start_sandbox
from tests.crawl_helpers import Fleet, wait_for
from tests.test_integration_fault_drills import SEEDS, _assert_equals_truth, _assert_queue_drained

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]


@pytest.fixture(scope="module")
def drill_sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox("--time-scale", "0", "--streamers", "120", "--no-faults") as sandbox:
        yield sandbox


def _handled(client: redis_lib.Redis, fleet: Fleet) -> int:
    return int(client.scard(fleet.keys.seen("default")))


def test_kill_9_the_embedded_redis_mid_crawl_and_services_start_brings_everything_back(
        tmp_path, drill_sandbox, mongo_server):
    var_dir = tmp_path / "var"
    services = ensure_services(var_dir, redis_url=None, mongo_uri=mongo_server.url)  # the embedded defaults
    assert services.started == ("redis",)
    password = redis_lib.connection.parse_url(services.redis_url)["password"]
    fleet = Fleet(tmp_path, drill_sandbox, services.redis_url, mongo_server.url, spider="bilibili", rate=25,
                  LIVEFLEET_LEASE_SECONDS="3", LIVEFLEET_HEARTBEAT_SECONDS="1")
    fleet.push_seeds(SEEDS)
    client = redis_lib.Redis.from_url(services.redis_url)
    try:
        fleet.start(2)
        wait_for("the crawl to get going", lambda: _handled(client, fleet) >= 40, 120, interval=0.1)
        wait_for("the workers' first heartbeats", lambda: client.zcard(FleetKeys(fleet.prefix).workers) >= 2, 30)
        epoch = client.get(FleetKeys(fleet.prefix).epoch)
        assert epoch is not None
        beats = client.mget([FleetKeys(fleet.prefix).worker(w.decode())
                             for w in client.zrange(FleetKeys(fleet.prefix).workers, 0, -1)])
        before = _handled(client, fleet)
        pid = int(read_record(var_dir, "redis")["pid"])  # type: ignore[index]
        os.kill(pid, signal.SIGKILL)  # no SHUTDOWN, no final fsync: what a crash or the OOM killer does
        assert wait_for_exit(pid, 10)
        again = ensure_services(var_dir, redis_url=None, mongo_uri=mongo_server.url)  # = `livefleet services start`
        assert again.started == ("redis",) and again.redis_url == services.redis_url
        after = _handled(client, fleet)
        # The server writes its append-only file before it replies; a kill loses at most what
        # a write the workers never saw acknowledged carried (re-delivered, stored idempotently).
        assert after >= before - 5, (before, after)
        assert client.get(FleetKeys(fleet.prefix).epoch) == epoch, "the fleet's state came back"
        stats = fleet.wait()
        assert all(s is not None and s["finish_reason"] == "finished" for s in stats)
        assert not any(s.get("livefleet/health/state_lost") for s in stats if s is not None)
        assert client.llen(FleetKeys(fleet.prefix).epoch_lost) == 0
        _assert_queue_drained(client, fleet)
        print(f"handled before kill {before}, right after restart {after}")
        # The password is nowhere a person or another process reads: worker logs, stats, heartbeats.
        for n in range(2):
            assert password not in fleet.log(n)
            assert password not in (tmp_path / f"stats-{n}.json").read_text()
        assert all(b is not None and password.encode() not in b for b in beats)
    finally:
        fleet.stop()
        client.close()
        stop_services(var_dir)
    _assert_equals_truth(mongo_server.url, fleet.db_name, drill_sandbox)


def test_a_redis_flushed_under_running_workers_is_reported_loudly(tmp_path, drill_sandbox, redis_server,
                                                                  mongo_server, monkeypatch, capsys):
    fleet = Fleet(tmp_path, drill_sandbox, redis_server.url, mongo_server.url, spider="bilibili", rate=25,
                  LIVEFLEET_HEARTBEAT_SECONDS="0.5")
    fleet.push_seeds(SEEDS)
    client = redis_lib.Redis.from_url(redis_server.url)
    lost_key = FleetKeys(fleet.prefix).epoch_lost
    try:
        fleet.start(1)
        wait_for("the crawl to get going", lambda: _handled(client, fleet) >= 30, 120, interval=0.1)
        assert client.get(FleetKeys(fleet.prefix).epoch) is not None, "the worker made the fleet's epoch"
        client.flushdb()  # what a Redis without persistence that restarted looks like
        flushed = time.monotonic()
        wait_for("the worker to notice", lambda: client.llen(lost_key), 10, interval=0.05)
        noticed = time.monotonic() - flushed
        assert noticed < 3, f"noticed within a few heartbeats (0.5 s), took {noticed:.2f}s"
        (record,) = [json.loads(raw) for raw in client.lrange(lost_key, 0, -1)]
        assert record["found"] is None and record["who"].endswith(":bilibili") and record["at"] > 0

        monkeypatch.setenv("REDIS_URL", redis_server.url)
        monkeypatch.setenv("LIVEFLEET_KEY_PREFIX", fleet.prefix)
        monkeypatch.setenv("LIVEFLEET_VAR_DIR", str(tmp_path))
        assert main(["status"]) == 0
        text = capsys.readouterr().out.splitlines()
        assert text[2].startswith("!! REDIS LOST THE FLEET'S STATE (1 report(s))"), text[:5]
        assert record["lost"] in text[2] and "NOT complete" in "\n".join(text[:6])
        assert main(["status", "--json"]) == 0
        state = json.loads(capsys.readouterr().out)["state"]
        assert state["lost_count"] == 1 and state["lost"] == [record]
        assert state["epoch"] is not None and state["epoch"]["id"] != record["lost"]  # a new epoch from now on

        (stats,) = fleet.wait()
        assert stats is not None and stats["livefleet/health/state_lost"] == 1
        log = fleet.log(0)
        (line,) = [line for line in log.splitlines() if "Redis lost the fleet's state" in line]
        assert "ERROR" in line and "push the crawls' seeds again" in line and record["lost"] in line
        assert client.llen(lost_key) == 1, "reported once, and the record stays"
    finally:
        fleet.stop()
        client.close()


RUN = """\
name: {name}
schedule: {{cron: "0 * * * *", timezone: UTC}}
caps: {{duration: 1h}}
platforms:
  bilibili: {{rooms: [5440], depth: rooms}}
"""


def test_a_run_whose_redis_lost_its_state_ends_failed_not_done(redis_client, mongo_db):
    prefix = "runlost"
    run_id = start_run(redis_client, mongo_db, prefix, parse_campaign(RUN.format(name="lost")), None)
    document = mongo_db[COLLECTION].find_one({"_id": run_id})
    assert document["epoch"] == json.loads(redis_client.get(FleetKeys(prefix).epoch))["id"]
    redis_client.flushdb()  # the run's seeds, queue and epoch are gone: an empty queue looks "done"
    assert follow_run(redis_client, mongo_db, prefix, run_id, poll=0.01) == "failed"
    document = mongo_db[COLLECTION].find_one({"_id": run_id})
    assert document["status"] == "failed" and document["ended_at"] is not None
    assert document["state_lost"]["reason"].startswith("Redis state lost: the fleet's epoch")
    assert document["state_lost"]["reason"] in document["errors"]
    # A run on a Redis that kept its state still ends by its cap (the check is no false alarm).
    other = start_run(redis_client, mongo_db, prefix, parse_campaign(RUN.replace("1h", "1s").format(name="kept")),
                      None)
    started = time.monotonic()
    assert follow_run(redis_client, mongo_db, prefix, other, poll=0.05) == "capped_duration"
    assert time.monotonic() - started < timedelta(seconds=30).total_seconds()
