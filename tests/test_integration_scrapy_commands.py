"""Scrapy's own commands, run for real from the repo root: shell, crawl, check, settings.

Each command is a child process (``python -m scrapy``, cwd the repo root, so ``scrapy.cfg`` points at
``settings/scrapy_settings.py``) on the test session's Redis, MongoDB and sandbox, under a key prefix
and database of its own. The commands run side by side (they mostly wait on each other's I/O), so the
file costs about as long as its slowest command, ``scrapy check`` with Douyin's rendered room page.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import scrapy
from scrapy.utils.test import get_crawler
from twisted.internet.defer import Deferred

from crawlers.queue import scheduler as scheduler_module
from crawlers.queue.scheduler import RedisScheduler
from crawlers.redis.keys import SpiderKeys
from settings.config import child_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
#: A room of the sandbox's default world (seed 7, 300 streamers) that is no fault room.
BILIBILI_ROOM = "13401884"
#: The spiders whose contracts ``scrapy check`` runs (every spider of the project).
SPIDERS = ("bilibili", "douyin", "kuaishou", "taobao")
#: How long any one command may take before the test calls it hung.
HUNG = 90


@dataclass
class Run:
    """A finished command: exit code, output, wall time."""

    code: int
    out: str
    err: str
    seconds: float


class Commands:
    """Start commands in the background, collect them later."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path, self.env = tmp_path, env
        self.procs: dict[str, tuple[subprocess.Popen[str], float]] = {}

    def start(self, name: str, *args: str) -> None:
        proc = subprocess.Popen([sys.executable, "-m", "scrapy", *args], cwd=ROOT, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.procs[name] = (proc, time.monotonic())

    def result(self, name: str) -> Run:
        proc, started = self.procs[name]
        try:
            out, err = proc.communicate(timeout=max(1.0, HUNG - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"scrapy {name} did not end within {HUNG}s:\n{err[-4000:]}") from None
        return Run(proc.returncode, out, err, time.monotonic() - started)

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def commands(tmp_path_factory, sandbox, redis_server, mongo_server) -> Iterator[Commands]:
    """Every command of this file, started at once (each under its own key prefix)."""
    tmp_path = tmp_path_factory.mktemp("scrapy-commands")
    db_name = f"scrapy_cmd_{uuid.uuid4().hex[:8]}"
    env = child_environment(
        REDIS_URL=redis_server.url, MONGO_URI=mongo_server.url, LIVEFLEET_SANDBOX_URL=sandbox.url,
        LIVEFLEET_MONGO_DB=db_name, LIVEFLEET_VAR_DIR=str(tmp_path), LIVEFLEET_LOG_LEVEL="INFO",
        LIVEFLEET_RATE_BILIBILI="0", LIVEFLEET_RATE_DOUYIN="0", LIVEFLEET_RATE_KUAISHOU="0",
        LIVEFLEET_RATE_TAOBAO="0")
    runs = Commands(tmp_path, env)
    runs.db_name = db_name  # type: ignore[attr-defined]

    def prefixed(name: str, *args: str) -> None:
        runs.start(name, *args, "-s", f"LIVEFLEET_KEY_PREFIX=t{uuid.uuid4().hex[:8]}")

    area_list = f"{sandbox.url}/api.live.bilibili.com/room/v1/Area/getList"
    room_init = f"{sandbox.url}/api.live.bilibili.com/room/v1/Room/room_init?id={BILIBILI_ROOM}"
    # The fleet's work under the check's prefix: a seed and a queued request that the check must leave alone.
    runs.check_prefix = f"t{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    fleet = SpiderKeys(runs.check_prefix, "bilibili")  # type: ignore[attr-defined]
    with redis.Redis.from_url(redis_server.url) as client:
        client.rpush(fleet.seeds, json.dumps({"kind": "room", "room_id": BILIBILI_ROOM}))
        client.zadd(fleet.requests, {"another worker's request": 0})
    try:
        runs.start("check", "check", "-v", "-s", f"LIVEFLEET_KEY_PREFIX={runs.check_prefix}")  # type: ignore[attr-defined]
        prefixed("broken", "check", "-v", "-s", "SPIDER_MODULES=tests.scrapy_check_spiders")
        seeds = json.dumps([{"kind": "room", "room_id": BILIBILI_ROOM, "follow": ["rooms"]}])
        prefixed("crawl", "crawl", "bilibili", "-a", f"seeds={seeds}", "-O", str(tmp_path / "items.jsonl"))
        prefixed("shell", "shell", area_list, "-c",
                 f"fetch({room_init!r}) or (response.status, response.url, response.json()['code'])")
        runs.start("settings", "settings", "--get", "LIVEFLEET_IDLE_CLOSE_SECONDS",
                   "-s", "LIVEFLEET_IDLE_CLOSE_SECONDS=7.5")
        yield runs
    finally:
        runs.stop()


def test_scrapy_shell_opens_in_seconds_and_fetch_works(commands, sandbox):
    run = commands.result("shell")
    assert run.code == 0, run.err[-4000:]
    room_init = f"{sandbox.url}/api.live.bilibili.com/room/v1/Room/room_init?id={BILIBILI_ROOM}"
    assert run.out.strip().splitlines()[-1] == repr((200, room_init, 0))
    # The shell's requests call a Deferred, which no other worker could rebuild: kept in the process, said once.
    assert run.err.count("kept in this process, not the fleet's queue") == 1
    assert "is not an instance method" not in run.err


def test_scrapy_crawl_with_seeds_ends_by_itself_and_exports_its_items(commands, mongo_client):
    run = commands.result("crawl")
    assert run.code == 0, run.err[-4000:]
    assert "'finish_reason': 'finished'" in run.err  # closed when idle (the seed feeder), not by a signal
    lines = [json.loads(line) for line in (commands.tmp_path / "items.jsonl").read_text().splitlines()]
    rooms = [item for item in lines if item.get("room_id") == BILIBILI_ROOM and "status" in item]
    assert rooms and all(item["platform"] == "bilibili" for item in rooms), lines[:3]
    assert any(item.get("title") for item in rooms)  # the room_info page's record, not only room_init's
    db = mongo_client[commands.db_name]
    assert db.rooms.find_one({"platform": "bilibili", "room_id": BILIBILI_ROOM}) is not None


def _cases(output: str) -> dict[str, list[str]]:
    """``scrapy check -v``'s result line per contract, by spider: ``[spider] method (@x hook) ... ok``."""
    cases: dict[str, list[str]] = {}
    for match in re.finditer(r"^\[(\w+)\] (\w+ \(.*?\)) \.\.\. (\w+)$", output, re.MULTILINE):
        cases.setdefault(match[1], []).append(f"{match[2]}: {match[3]}")
    return cases


def test_scrapy_check_runs_every_spiders_contracts_and_passes_and_takes_no_fleet_work(commands, redis_server):
    run = commands.result("check")
    output = run.err + run.out
    assert run.code == 0, output[-6000:]
    cases = _cases(output)
    assert sorted(cases) == sorted(SPIDERS), output[-6000:]
    for spider in SPIDERS:
        assert len(cases[spider]) >= 3 and all(c.endswith(": ok") for c in cases[spider]), cases[spider]
    ran = int(re.search(r"Ran (\d+) contracts", output)[1])  # type: ignore[index]
    assert ran == sum(len(c) for c in cases.values())
    assert re.search(r"^OK$", output, re.MULTILINE)
    # The check took nothing of the fleet's work (SCRAPY_CHECK: no seed feeder, no queue taken from).
    fleet = SpiderKeys(commands.check_prefix, "bilibili")
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.llen(fleet.seeds) == 1 and client.zcard(fleet.requests) == 1


def test_scrapy_check_fails_a_broken_callback_a_wrong_id_and_a_seed_of_another_callback(commands):
    run = commands.result("broken")
    output = run.err + run.out
    assert run.code == 1, output[-6000:]
    assert re.search(r"^FAILED \(", output, re.MULTILINE)
    cases = _cases(output)
    # The parser leaves a field None: @records names it.
    assert "parse_page (@records post-hook): FAIL" in cases["bilibili_broken_parser"]
    assert "a rooms record has no status" in output
    # A room the sandbox does not have: nothing comes back.
    assert "parse_page (@returns post-hook): FAIL" in cases["bilibili_wrong_room"]
    # A contract on a method the seed's request does not call is an error, before any request.
    assert "leads to callback 'parse_page', not 'parse_other'" in output
    assert cases["bilibili_broken_parser"].count("parse_page (@seed post-hook): ok") == 1  # the page itself parsed


def test_scrapy_settings_shows_the_effective_value(commands):
    run = commands.result("settings")
    assert run.code == 0, run.err[-2000:]
    assert run.out.strip() == "7.5"


class _Spider(scrapy.Spider):
    name = "localtest"

    def parse_page(self, response):  # pragma: no cover - referenced by name only
        pass


def test_the_scheduler_keeps_unqueueable_requests_in_the_process_ahead_of_the_fleet(redis_server, redis_client,
                                                                                     caplog, monkeypatch):
    monkeypatch.setattr(scheduler_module, "_local_noted", False)  # the note is said once per process
    prefix = f"t{uuid.uuid4().hex[:8]}"
    crawler = get_crawler(_Spider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": prefix,
                                    "LIVEFLEET_QUEUE_BACKGROUND": False})
    spider = _Spider()
    spider.crawler = crawler
    crawler.spider = spider
    scheduler = RedisScheduler.from_crawler(crawler)
    scheduler.open(spider)
    try:
        assert scheduler.enqueue_request(scrapy.Request("https://example.test/queued", callback=spider.parse_page))
        shell: Deferred[object] = Deferred()
        with caplog.at_level(logging.INFO, logger="crawlers.queue.scheduler"):
            for n in range(3):
                local = scrapy.Request(f"https://example.test/local/{n}", callback=shell.callback,
                                       errback=shell.errback, priority=n)
                assert scheduler.enqueue_request(local)
            again = scrapy.Request("https://example.test/local/0", callback=shell.callback)
            assert not scheduler.enqueue_request(again)  # deduplicated within the process
            assert scheduler.enqueue_request(again.replace(dont_filter=True))
        notes = [r.getMessage() for r in caplog.records if "kept in this process" in r.getMessage()]
        assert len(notes) == 1 and "Deferred.callback" in notes[0], notes
        # A spider method's request that still cannot be encoded (a meta value JSON cannot hold) is handed back.
        assert scheduler.enqueue_request(scrapy.Request("https://example.test/odd", callback=spider.parse_page,
                                                        meta={"odd": object()}))
        assert redis_client.zcard(SpiderKeys(prefix, _Spider.name).requests) == 1  # only the first one
        assert scheduler.has_pending_requests() and len(scheduler) == 6
        urls = [scheduler.next_request().url for _ in range(6)]
        assert urls == [f"https://example.test/local/{n}" for n in (2, 1, 0, 0)] + [
            "https://example.test/odd", "https://example.test/queued"]
        assert scheduler.stats.get_value("livefleet/queue/local") == 5
        assert scheduler.stats.get_value("livefleet/queue/local_duplicate") == 1
    finally:
        scheduler.close("finished")
