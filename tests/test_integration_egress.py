"""End to end: workers go out through real proxies (tinyproxy, each leaving from its own loopback
address), and the sandbox judges clients by address as the platforms do.

* one identity pushed over the platform's per-address limit (another tenant of the same
  rented proxy) is blocked and rests, while the others carry the crawl: MongoDB still equals
  the sandbox's ground truth;
* a proxy killed in the middle of a crawl costs nothing: its requests go out through the others;
* a proxy refusing our credentials is an error of that identity, not a page: retried elsewhere;
* a rendered Douyin page goes out through its identity's proxy, like every plain request;
* a proxy's credentials reach no log, stats file, Redis key, MongoDB document or status output.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from pymongo import MongoClient

from crawlers.download.egress_health import identity_report
from crawlers.download.identities import parse_proxy
from sandbox.process import SandboxProcess, start_sandbox
from tests.crawl_helpers import ROOT, Fleet, run_crawl, stat_sum, wait_for

# serial: its figures are rates, leases or cadences, measured while nothing else loads the machine
pytestmark = [pytest.mark.integration, pytest.mark.serial]

#: The sandbox's per-address limit on Bilibili (requests/s), and the fleet's rate per identity.
ADDRESS_RATE = 6.0


@pytest.fixture(scope="module")
def address_sandbox():
    """A frozen, fault-free world whose Bilibili refuses more than ADDRESS_RATE requests/s per address."""
    with start_sandbox("--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", "120",
                       "--address-rate-limit", str(ADDRESS_RATE)) as sandbox:
        yield sandbox


def _live_rooms(sandbox: SandboxProcess) -> set[str]:
    return {str(r["room_id"]) for r in sandbox.truth("bilibili")["rooms"] if r["live_status"] == 1}


def _stored_rooms(mongo_url: str, db_name: str) -> set[str]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    try:
        return {d["room_id"] for d in client[db_name].rooms.find({"platform": "bilibili"}, {"room_id": 1})}
    finally:
        client.drop_database(db_name)
        client.close()


def _health(redis_url: str, prefix: str) -> dict[str, dict[str, Any]]:
    client = redis_lib.Redis.from_url(redis_url)
    try:
        return {row["label"]: row for row in identity_report(client, prefix) if row["platform"] == "bilibili"}
    finally:
        client.close()


class _Neighbour:
    """Another tenant of a rented proxy: sends its own requests to the platform through it, fast.

    Several senders, each on a fixed timetable (a late one catches up), so the tenant keeps its
    rate however slow the answers are on a loaded machine: one sender waiting for each answer
    would fall below the address limit and stop crowding it."""

    def __init__(self, proxy_url: str, target: str, rate: float, senders: int = 4) -> None:
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url}))
        self.target, self.interval = target, senders / rate
        self.halt = threading.Event()
        self._counts = [0] * senders
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(senders)]

    @property
    def sent(self) -> int:
        return sum(self._counts)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _send(self, index: int) -> None:
        due = time.monotonic() + index * self.interval / len(self._threads)
        while not self.halt.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.interval, time.monotonic() - self.interval)  # catch up, never burst more
            try:
                self.opener.open(self.target, timeout=5).read()
            except OSError:
                pass
            self._counts[index] += 1


def test_an_identity_over_its_address_limit_rests_while_the_others_carry_the_crawl(
        tmp_path, address_sandbox, proxies, redis_server, mongo_server):
    sandbox = address_sandbox
    crowded = proxies[0]
    neighbour = _Neighbour(crowded.url, f"{sandbox.url}/api.live.bilibili.com/room/v1/Area/getList", 4 * ADDRESS_RATE)
    neighbour.start()
    try:
        # The crawl starts once the neighbour alone holds the address over its limit: on a loaded machine
        # it reaches its rate only after a while, and below the limit it would crowd nobody.
        wait_for("the neighbour to crowd its proxy's address",
                 lambda: sandbox.address_stats().get(crowded.source, {}).get("limited", 0) >= 3 * ADDRESS_RATE,
                 timeout=60, detail=lambda: f"sent {neighbour.sent}; {sandbox.address_stats()}")
        prefix, db_name, stats = run_crawl(
            tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili", workers=2,
            seeds=[{"kind": "areas", "max_pages": 10}], timeout=240,
            LIVEFLEET_PROXIES=",".join(p.url for p in proxies),
            LIVEFLEET_IDENTITY_RATE_BILIBILI=str(ADDRESS_RATE))
    finally:
        neighbour.halt.set()
        neighbour.join()
    assert neighbour.sent > 50
    assert _stored_rooms(mongo_server.url, db_name) == _live_rooms(sandbox), "MongoDB equals the ground truth"
    health = _health(redis_server.url, prefix)
    seen_at = sandbox.address_stats().get
    print(json.dumps({"health": health, "neighbour_sent": neighbour.sent, "crowded_address": seen_at(crowded.source)},
                     indent=1))  # shown when an assertion below fails
    crowded_row = health[parse_proxy(crowded.url).label]
    others = [health[parse_proxy(p.url).label] for p in proxies[1:]]
    assert crowded_row["blocks"] >= 3, crowded_row  # it drew the platform's blocks...
    assert crowded_row["rests_total"] >= 1, (crowded_row, neighbour.sent, seen_at(crowded.source))  # ... rested
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    crowded_id = parse_proxy(crowded.url).id
    assert f"Egress identity {crowded_id} ({crowded_row['label']}) cooling toward bilibili" in logs  # ... said so
    # ... and the others carried the crawl, each far more than it, and were (nearly) never blocked: on a
    # loaded machine a late wake-up can still put two sends of one identity closer than the sandbox allows
    # (On a loaded machine the neighbour sends less, so the crowded proxy is refused less and carries a
    # little more: quiet runs measure the others at 6-11 times its successes, a block page no longer
    # counted a success; 1.5 times their mean is what "far more" must survive.)
    oks = [row["ok"] for row in others]
    assert sum(oks) / len(oks) > 1.5 * crowded_row["ok"], ("ok", crowded_row["ok"], oks)
    assert all(row["blocks"] <= 0.05 * row["requests"] for row in others), others
    assert crowded_row["blocks"] > 5 * max(row["blocks"] for row in others), (crowded_row, others)
    # the platform saw the four proxies' addresses, and never the machine's own
    seen = sandbox.address_stats()
    assert {p.source for p in proxies} <= set(seen) and "127.0.0.1" not in seen, seen


def test_a_proxy_killed_mid_crawl_costs_nothing(tmp_path, address_sandbox, proxies, start_extra_proxy,
                                                 redis_server, mongo_server):
    sandbox = address_sandbox
    doomed = start_extra_proxy("127.0.0.19")
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili",
                  LIVEFLEET_PROXIES=",".join([doomed.url, proxies[1].url, proxies[2].url]),
                  LIVEFLEET_IDENTITY_RATE_BILIBILI=str(ADDRESS_RATE))
    fleet.push_seeds([{"kind": "areas", "max_pages": 10}])
    label = parse_proxy(doomed.url).label
    fleet.start(2, idle_close=2)
    try:
        wait_for("requests through the doomed proxy",
                 lambda: _health(redis_server.url, fleet.prefix).get(label, {}).get("ok", 0) >= 10, timeout=60)
        doomed.kill()
        stats = fleet.wait(timeout=240)
    finally:
        fleet.stop()
    assert _stored_rooms(mongo_server.url, fleet.db_name) == _live_rooms(sandbox)
    row = _health(redis_server.url, fleet.prefix)[label]
    assert row["errors"] >= 3 and row["state"] in ("cooling", "retired"), row
    assert "Connection" in (row["last_error"] or "") or "refused" in (row["last_error"] or ""), row
    assert stat_sum(stats, "livefleet/queue/dead") == 0
    client = redis_lib.Redis.from_url(redis_server.url)
    try:
        assert client.llen(fleet.keys.dead) == 0, "no request was given up"
    finally:
        client.close()


def test_credentials_stay_secret_and_a_refusing_proxy_is_an_identity_error(
        tmp_path, sandbox, start_extra_proxy, redis_server, mongo_server):
    secret = "s3cretPass"
    good = start_extra_proxy("127.0.0.17", auth=("fleet", secret))
    refusing = start_extra_proxy("127.0.0.18", auth=("fleet", secret))
    refusing_url = refusing.url.replace(secret, "wrongPass")
    rooms = [str(r["room_id"]) for r in sandbox.truth("bilibili")["rooms"] if r["live_status"] == 1][:12]
    prefix, db_name, stats = run_crawl(
        tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili", workers=1,
        seeds=[{"kind": "room", "room_id": room, "follow": ["rooms"]} for room in rooms],
        LIVEFLEET_PROXIES=f"{good.url},{refusing_url}", LIVEFLEET_IDENTITY_RATE_BILIBILI="20")
    health = _health(redis_server.url, prefix)
    refused = health[parse_proxy(refusing_url).label]
    assert refused["errors"] >= 1 and "401" in (refused["last_error"] or ""), refused
    assert health[parse_proxy(good.url).label]["ok"] > 0
    client = redis_lib.Redis.from_url(redis_server.url)
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    try:
        assert client.llen(f"{prefix}:bilibili:dead") == 0
        stored = {d["room_id"] for d in mongo[db_name].rooms.find({}, {"room_id": 1})}
        assert stored == set(rooms), "every page came through the good proxy"
        # Where a secret could leak: every value under the fleet's keys, every stored document,
        # worker logs and stats files, and what `livefleet status` prints.
        dumps = [json.dumps(list(mongo[db_name][name].find({}, {"_id": 0})), default=str)
                 for name in mongo[db_name].list_collection_names()]
        for key in client.scan_iter(match=f"{prefix}:*"):
            kind = client.type(key).decode()
            if kind == "string":
                dumps.append(repr(client.get(key)))
            elif kind == "hash":
                dumps.append(repr(client.hgetall(key)))
            elif kind == "list":
                dumps.append(repr(client.lrange(key, 0, -1)))
            elif kind == "zset":
                dumps.append(repr(client.zrange(key, 0, -1)))
            elif kind == "set":
                dumps.append(repr(client.smembers(key)))
            elif kind == "stream":
                dumps.append(repr(client.xrange(key)))
        dumps += [p.read_text(errors="replace") for p in Path(tmp_path).rglob("*") if p.is_file()]
        env = {"REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": prefix, "PATH": "/usr/bin:/bin"}
        for args in (["status"], ["status", "--json"]):
            shown = subprocess.run([sys.executable, "-m", "crawlers", *args], cwd=ROOT, env=env, capture_output=True,
                                   text=True, timeout=60)
            assert shown.returncode == 0, shown.stderr
            dumps.append(shown.stdout + shown.stderr)
        assert parse_proxy(good.url).label in dumps[-2], "status shows the identities, by label"
    finally:
        mongo.drop_database(db_name)
        mongo.close()
        client.close()
    header = base64.b64encode(f"fleet:{secret}".encode()).decode()
    leaks = [text[:200] for text in dumps if secret in text or header in text]
    assert not leaks, leaks


def test_a_rendered_douyin_page_goes_out_through_its_identitys_proxy(tmp_path, proxies, redis_server, mongo_server):
    only = proxies[2]
    with start_sandbox("--time-scale", "0", "--no-chaos") as sandbox:
        truth = sandbox.truth("douyin")
        web_rids = [str(r["web_rid"]) for r in truth["rooms"] if r["status"] == 2 and not r.get("fault")][:2]
        assert web_rids
        prefix, db_name, stats = run_crawl(
            tmp_path, sandbox, redis_server.url, mongo_server.url, spider="douyin", workers=1,
            seeds=[{"kind": "room", "web_rid": rid, "follow": []} for rid in web_rids],
            LIVEFLEET_PROXIES=only.url, LIVEFLEET_IDENTITY_RATE_DOUYIN="20")
        seen = sandbox.address_stats()
        endpoints = sandbox.stats()["endpoints"]
    assert stat_sum(stats, "livefleet/spider/pages/douyin/room_page") == len(web_rids)
    assert endpoints.get("douyin:room_page", 0) >= len(web_rids), endpoints
    # the browser's page loads (room pages, the warm-up, the signer page) and the plain requests all
    # reached the platform from the proxy's address: none from the machine's own
    assert set(seen) == {only.source}, seen
    assert seen[only.source]["ok"] >= len(web_rids) + 1
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    try:
        assert mongo[db_name].rooms.count_documents({"platform": "douyin"}) == len(web_rids)
    finally:
        mongo.drop_database(db_name)
        mongo.close()


def test_a_proxy_that_leaves_the_list_is_drained(tmp_path, address_sandbox, proxies, redis_server, mongo_server):
    """The proxy file is read again when it changes: a proxy taken out of it gets no new request (those
    under way finish), and the crawl goes on through the rest."""
    sandbox = address_sandbox
    staying, leaving = proxies[0], proxies[3]
    listed = tmp_path / "proxies.txt"
    listed.write_text(f"# rented\n{staying.url}\n{leaving.url}\n")
    before = sandbox.address_stats().get(leaving.source, {}).get("requests", 0)
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili",
                  LIVEFLEET_PROXY_FILE=str(listed), LIVEFLEET_IDENTITY_RATE_BILIBILI=str(ADDRESS_RATE))
    fleet.push_seeds([{"kind": "areas", "max_pages": 10}])
    fleet.start(1, idle_close=2)
    try:
        wait_for("requests through the leaving proxy",
                 lambda: sandbox.address_stats().get(leaving.source, {}).get("requests", 0) - before >= 10,
                 timeout=60)
        listed.write_text(f"# rented\n{staying.url}\n")
        time.sleep(3)  # the file is looked at every second; a request under way finishes
        drained = sandbox.address_stats()[leaving.source]["requests"]
        fleet.wait(timeout=240)
    finally:
        fleet.stop()
    assert sandbox.address_stats()[leaving.source]["requests"] == drained, "no request after it left the list"
    assert _stored_rooms(mongo_server.url, fleet.db_name) == _live_rooms(sandbox)
    assert "1 drained" in fleet.log(0) or "left the list" in fleet.log(0)
