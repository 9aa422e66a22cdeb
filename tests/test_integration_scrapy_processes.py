"""A plain ``scrapy crawl`` from the repository root, as a real process (crawlers/services/addon.py):
what it starts it reports, with the command that stops it; ``-s REDIS_URL`` is obeyed; what it stores
reaches MongoDB and the feeds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from pymongo import MongoClient

from crawlers.redis.keys import FleetKeys, SpiderKeys
from crawlers.services import pid_alive, read_record
from crawlers.services.processes import port_from_url
from tests.crawl_helpers import ROOT

pytestmark = pytest.mark.integration

SEEDS = json.dumps([{"kind": "area", "parent_area_id": 2, "area_id": 0, "max_pages": 1}])
#: The add-on's line about the servers a command started (crawlers/services/addon.py started_servers_line).
STARTED = re.compile(r"This command started embedded (?P<servers>.*?) under (?P<var>\S+); .*? To stop (?:them|it): "
                     r"(?P<command>.+?)(?: \(this also stops .*)?$", re.MULTILINE)


def _scrapy_crawl(var_dir: Path, sandbox_url: str, prefix: str, db: str, *settings: str) -> str:
    """``scrapy crawl bilibili`` from the repo root, without REDIS_URL/MONGO_URI in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONGO_URI")}
    env.update(LIVEFLEET_VAR_DIR=str(var_dir), LIVEFLEET_SANDBOX_URL=sandbox_url, LIVEFLEET_KEY_PREFIX=prefix,
               LIVEFLEET_MONGO_DB=db, LIVEFLEET_RATE_BILIBILI="0", LIVEFLEET_LOG_LEVEL="INFO")
    argv = [sys.executable, "-m", "scrapy", "crawl", "bilibili", "-a", f"seeds={SEEDS}",
            "-s", "LIVEFLEET_IDLE_CLOSE_SECONDS=3", *(a for s in settings for a in ("-s", s))]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def _feed_lengths(client: redis.Redis, prefix: str) -> dict[str, int]:
    keys = FleetKeys(prefix)
    return {c: int(client.xlen(keys.feed(c))) for c in ("streamers", "rooms", "room_snapshots")}


def test_a_scrapy_crawl_reports_what_it_started_obeys_redis_url_and_feeds_what_it_stores(
        tmp_path, sandbox, redis_server, redis_client):
    var_dir = tmp_path / "var"
    first, second = f"sp{uuid.uuid4().hex[:6]}", f"sp{uuid.uuid4().hex[:6]}"
    db = f"scrapy_{uuid.uuid4().hex[:8]}"

    # 1. Nothing configured: the add-on starts the embedded servers, and the crawl says so when it ends.
    output = _scrapy_crawl(var_dir, sandbox.url, first, db)
    redis_record, mongo_record = read_record(var_dir, "redis"), read_record(var_dir, "mongo")
    assert redis_record is not None and mongo_record is not None
    [line] = STARTED.finditer(output)
    pids = {name: int(record["pid"]) for name, record in (("redis", redis_record), ("mongo", mongo_record))}
    ports = {name: port_from_url(str(record["url"])) for name, record in (("redis", redis_record),
                                                                           ("mongo", mongo_record))}
    assert line["servers"] == (f"redis (pid {pids['redis']}, port {ports['redis']}), "
                               f"mongo (pid {pids['mongo']}, port {ports['mongo']})")
    assert line["var"] == str(var_dir)
    embedded = redis.Redis.from_url(str(redis_record["url"]))
    mongo: MongoClient = MongoClient(str(mongo_record["url"]), serverSelectionTimeoutMS=10_000)
    try:
        stored = {c: mongo[db][c].count_documents({}) for c in ("streamers", "rooms", "room_snapshots")}
        assert stored["rooms"] > 5 and stored["room_snapshots"] > 5, stored
        # Every stored change is in its feed (one message per write, so at least one per document).
        feeds = _feed_lengths(embedded, first)
        assert all(feeds[c] >= stored[c] > 0 for c in stored), (feeds, stored)
    finally:
        embedded.close()
        mongo.close()

    # 2. -s REDIS_URL: that Redis (the test's) gets the queue, stats and feeds; no embedded Redis is started.
    #    The embedded MongoDB of the var dir is reused: not this command's, so not reported.
    output = _scrapy_crawl(var_dir, sandbox.url, second, db, f"REDIS_URL={redis_server.url}")
    assert STARTED.search(output) is None, output[-3000:]
    assert "started shared embedded" not in output
    assert read_record(var_dir, "redis") == redis_record and read_record(var_dir, "mongo") == mongo_record
    feeds = _feed_lengths(redis_client, second)
    assert feeds["rooms"] > 5 and feeds["room_snapshots"] > 5, feeds
    assert redis_client.hget(SpiderKeys(second, "bilibili").stats, "item_scraped_count") is not None

    # 3. The command it printed stops the servers it started.
    stop = subprocess.run(line["command"], shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "stopped: mongo, redis" in stop.stdout, stop.stdout + stop.stderr
    assert not any(pid_alive(pid) for pid in pids.values())
    assert read_record(var_dir, "redis") is None and read_record(var_dir, "mongo") is None


@pytest.mark.parametrize(("given", "expected", "logged"), [
    ({"REDIS_URL": "redis://u:secret@127.0.0.1:7001/0"}, "redis://u:secret@127.0.0.1:7001/0", None),
    ({"REDIS_URL": "redis://127.0.0.1:7001/0", "project": "redis://127.0.0.1:7002/0"}, "redis://127.0.0.1:7001/0",
     "Setting REDIS_URL (redis://127.0.0.1:7001/0) overrides the environment variable REDIS_URL"),
    ({"REDIS_URL": "redis://u:secret@127.0.0.1:7001/0", "LIVEFLEET_REDIS_URL": "redis://127.0.0.1:7003/0"},
     "redis://127.0.0.1:7003/0", "Settings LIVEFLEET_REDIS_URL (redis://127.0.0.1:7003/0) and REDIS_URL "
     "(redis://u:***@127.0.0.1:7001/0) disagree: using LIVEFLEET_REDIS_URL, the more specific one"),
])
def test_redis_url_as_a_setting_means_the_variable_and_the_more_specific_setting_wins(given, expected, logged, caplog):
    from scrapy.settings import Settings

    from crawlers.services.addon import take_plain_urls

    settings = Settings()
    settings.setmodule("settings.scrapy_settings", priority="project")
    # What settings.scrapy_settings sets from the REDIS_URL / MONGO_URI environment variables.
    settings.set("LIVEFLEET_REDIS_URL", given.get("project"), priority="project")
    settings.set("LIVEFLEET_MONGO_URI", None, priority="project")
    for name in ("REDIS_URL", "LIVEFLEET_REDIS_URL"):
        if name in given:
            settings.set(name, given[name], priority="cmdline")
    settings.set("MONGO_URI", "mongodb://127.0.0.1:7004/", priority="cmdline")
    with caplog.at_level("WARNING", logger="crawlers.services.addon"):
        take_plain_urls(settings)
    assert settings.get("LIVEFLEET_REDIS_URL") == expected
    assert settings.get("LIVEFLEET_MONGO_URI") == "mongodb://127.0.0.1:7004/"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == (1 if logged else 0) and all(m.startswith(logged or "") for m in messages), messages
    assert "secret" not in caplog.text


def test_a_worker_given_redis_url_with_s_uses_that_redis_and_starts_none(tmp_path, sandbox, redis_server,
                                                                          redis_client, mongo_server):
    """``livefleet worker -s REDIS_URL=...`` means what the environment variable means (as ``scrapy crawl -s``):
    its seeds are read from that Redis, its feeds written there, and no embedded Redis is started."""
    from crawlers.cli.worker import worker_command
    from crawlers.queue.feeder import push_seeds

    prefix, db = f"ws{uuid.uuid4().hex[:6]}", f"worker_{uuid.uuid4().hex[:8]}"
    push_seeds(redis_client, SpiderKeys(prefix, "bilibili"), json.loads(SEEDS))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(MONGO_URI=mongo_server.url, LIVEFLEET_VAR_DIR=str(tmp_path / "var"), LIVEFLEET_SANDBOX_URL=sandbox.url,
               LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_MONGO_DB=db, LIVEFLEET_RATE_BILIBILI="0")
    cmd = worker_command(["bilibili"], idle_close=3, settings={"REDIS_URL": redis_server.url})
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert read_record(tmp_path / "var", "redis") is None  # nothing started
    assert redis_client.llen(SpiderKeys(prefix, "bilibili").seeds) == 0
    feeds = _feed_lengths(redis_client, prefix)
    assert feeds["rooms"] > 5 and feeds["room_snapshots"] > 5, feeds
