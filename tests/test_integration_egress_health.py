"""Egress identities' health and politeness, fleet-wide in a real Redis: rests, probes, retirement, buckets."""

from __future__ import annotations

import time
import uuid

import pytest

from crawlers.download.egress import PROBE_VERDICT_SECONDS, EgressPool
from crawlers.download.egress_health import EgressHealth, HealthPolicy, identity_report
from crawlers.download.identities import IdentitySource
from crawlers.download.ratelimit import FleetRateLimiter

pytestmark = pytest.mark.integration

POLICY = HealthPolicy(strikes=3, cooldown=0.3, max_cooldown=1.2, retire_after=3, probe_ttl=5)


@pytest.fixture
def health(redis_client):
    return EgressHealth(redis_client, f"eh{uuid.uuid4().hex[:6]}", POLICY)


def test_failures_in_a_row_rest_an_identity_and_one_success_in_between_forgives_them(health):
    for _ in range(2):
        assert health.record("douyin", "px-a", "http://127.0.0.1:1", "block")[0] == "ok"
    health.record("douyin", "px-a", "http://127.0.0.1:1", "ok", count=5, latency_ms=500)
    assert health.record("douyin", "px-a", "http://127.0.0.1:1", "error", error="ConnectionRefusedError")[0] == "ok"
    assert health.record("douyin", "px-a", "http://127.0.0.1:1", "block")[0] == "ok"
    state, left = health.record("douyin", "px-a", "http://127.0.0.1:1", "block")
    assert state == "cooling" and 0.25 < left <= 0.3
    # another platform's record of the same proxy is its own
    assert health.standings([("bilibili", "px-a")])[("bilibili", "px-a")].state == "ok"
    row = next(r for r in identity_report(health.server, health.keys.prefix) if r["identity"] == "px-a")
    assert row == {**row, "platform": "douyin", "label": "http://127.0.0.1:1", "state": "cooling", "requests": 10,
                   "ok": 5, "blocks": 4, "errors": 1, "latency_ms": 100.0, "rests_total": 1}
    assert row["last_error"] is None  # a block has no error text; an error keeps its own


def test_an_identity_refused_far_more_often_than_answered_rests_though_never_three_times_in_a_row(health):
    # one answer between every two refusals (a crowded address): strikes 1, 2, 1, 2, 3 -> rested
    states = []
    for outcome in ("block", "block", "ok", "block", "block"):
        states.append(health.record("bilibili", "px-c", "http://127.0.0.1:3", outcome)[0])
    assert states == ["ok", "ok", "ok", "ok", "cooling"]
    row = next(r for r in identity_report(health.server, health.keys.prefix) if r["identity"] == "px-c")
    assert row["rests_total"] == 1 and row["blocks"] == 4 and row["ok"] == 1


def test_a_block_page_counted_a_success_when_it_downloaded_is_moved_to_the_blocks(health):
    """The egress middleware counts every page that downloads; the spider tells a block page later. Each
    block takes its page's success back: an address refused two times in three rests (before, each block
    cancelled its own success, and such an identity rested only if its refusals outran the sync)."""
    source = IdentitySource(["http://127.0.0.1:4", "http://127.0.0.1:5"])
    pool = EgressPool(source, health)
    crowded, other = pool.identities()

    def download(identity: str, blocked: bool) -> None:
        pool.begin("bilibili", identity)
        pool.end("bilibili", identity, "ok", latency=0.1)
        if blocked:
            pool.blocked("bilibili", identity)

    def send_failures() -> None:
        while not pool._failures.empty():
            pool._send_failure(pool._failures.get_nowait())

    def row(identity: str) -> dict:
        return next(r for r in identity_report(health.server, health.keys.prefix) if r["identity"] == identity)

    # two block pages and an answer a second, the successes still waiting in the worker's tally
    for second in range(2):
        for blocked in (True, True, False):
            download(crowded.id, blocked)
        send_failures()
        pool.sync()
        assert row(crowded.id)["state"] == ("ok", "cooling")[second]  # strikes 2, (the answer) 1, then 3
    assert {k: row(crowded.id)[k] for k in ("requests", "ok", "blocks", "latency_ms", "rests_total")} == \
        {"requests": 6, "ok": 2, "blocks": 4, "latency_ms": 100.0, "rests_total": 1}
    # the success already went to Redis (the once-a-second sync came between): taken back there
    download(other.id, False)
    pool.begin("bilibili", other.id)
    pool.end("bilibili", other.id, "ok", latency=0.1)
    pool.sync()
    pool.blocked("bilibili", other.id)
    send_failures()
    assert {k: row(other.id)[k] for k in ("requests", "ok", "blocks")} == {"requests": 2, "ok": 1, "blocks": 1}


def test_a_rested_identity_comes_back_through_one_probe_and_is_retired_after_failed_probes(health):
    for _ in range(3):
        health.record("kuaishou", "px-b", "http://127.0.0.1:2", "error")
    assert not health.take_probe("kuaishou", "px-b"), "no probe before the rest is over"
    # a request sent before the rest answers well during it: counted, but the rest holds (only a
    # probe's answer ends it)
    state, left = health.record("kuaishou", "px-b", "http://127.0.0.1:2", "ok", count=4)
    assert state == "cooling" and left > 0.2
    rests = []
    for _attempt in range(3):
        time.sleep(health.standings([("kuaishou", "px-b")])[("kuaishou", "px-b")].rest_left + 0.02)
        assert health.take_probe("kuaishou", "px-b")
        assert not health.take_probe("kuaishou", "px-b"), "one probe at a time, fleet-wide"
        state, left = health.record("kuaishou", "px-b", "http://127.0.0.1:2", "error")  # the probe failed
        rests.append((state, round(left, 1)))
    # rests double after each failed probe (0.3 first, then 0.6, then retired at the longest)
    assert rests == [("cooling", 0.6), ("retired", 1.2), ("retired", 1.2)]
    time.sleep(1.25)
    assert health.take_probe("kuaishou", "px-b")
    assert health.record("kuaishou", "px-b", "http://127.0.0.1:2", "ok", probe=True)[0] == "ok"  # back
    assert health.take_probe("kuaishou", "px-b")  # ok: no probe needed
    state, _ = health.record("kuaishou", "px-b", "http://127.0.0.1:2", "error")
    assert state == "ok", "its rests are forgotten: strikes start again"
    row = next(r for r in identity_report(health.server, health.keys.prefix) if r["identity"] == "px-b")
    assert row["rests_total"] == 4, "but every rest it ever began is still counted"


def test_the_pool_spreads_requests_and_skips_resting_identities(health):
    source = IdentitySource([f"http://127.0.0.1:{n}" for n in (1, 2, 3)])
    pool = EgressPool(source, health)
    ids = [i.id for i in pool.identities()]
    picked = []
    for _ in range(6):
        identity, wait = pool.pick("taobao")
        pool.begin("taobao", identity.id)
        picked.append(identity.id)
    assert sorted(picked) == sorted(ids * 2), "fewest in flight first"
    for _ in range(3):
        health.record("taobao", ids[0], "x", "block")
    pool.sync()
    assert all(pool.pick("taobao")[0].id != ids[0] for _ in range(6))
    for identity in ids[1:]:
        for _ in range(3):
            health.record("taobao", identity, "x", "block")
    pool.sync()
    identity, wait = pool.pick("taobao")
    assert identity is None and 0 < wait <= 0.3, "all resting: wait for the first rest to end"
    time.sleep(0.35)
    pool.sync()
    identity, wait = pool.pick("taobao")
    assert identity is not None and wait == -1  # a probe
    assert pool.take_probe("taobao", identity.id)
    pool.begin("taobao", identity.id)
    pool.end("taobao", identity.id, "ok")
    # the probe's page downloaded; it may still be a block page, so it waits for the spider's verdict
    assert pool._failures.empty() and pool.state("taobao", identity.id)[0] == "probing"
    pool.sync()
    assert health.standings([("taobao", identity.id)])[("taobao", identity.id)].state == "probing"
    time.sleep(PROBE_VERDICT_SECONDS)
    pool.sync()  # no block page came: the identity is back
    assert health.standings([("taobao", identity.id)])[("taobao", identity.id)].state == "ok"
    assert pool.state("taobao", identity.id)[0] == "ok"


def test_a_probe_answered_by_a_block_page_is_a_failed_probe(health):
    """A burnt proxy's probes draw captcha pages, not connection errors: each is a failed probe (the
    next rest twice as long, then retirement), never the identity's recovery."""
    pool = EgressPool(IdentitySource(["http://127.0.0.1:6"]), health)
    (identity,) = pool.identities()
    pool.pick("douyin")  # the pool follows the platforms it picked for
    for _ in range(3):
        health.record("douyin", identity.id, identity.label, "block")
    rests = []
    for _attempt in range(3):
        time.sleep(health.standings([("douyin", identity.id)])[("douyin", identity.id)].rest_left + 0.02)
        pool.sync()
        assert pool.pick("douyin") == (identity, -1.0) and pool.take_probe("douyin", identity.id)
        pool.begin("douyin", identity.id)
        pool.end("douyin", identity.id, "ok")  # the page downloaded...
        pool.blocked("douyin", identity.id)  # ... and the spider read a captcha in it
        pool._send_failure(pool._failures.get_nowait())
        standing = health.standings([("douyin", identity.id)])[("douyin", identity.id)]
        rests.append((standing.state, round(standing.rest_left, 1)))
    assert rests == [("cooling", 0.6), ("retired", 1.2), ("retired", 1.2)]
    row = next(r for r in identity_report(health.server, health.keys.prefix) if r["identity"] == identity.id)
    assert (row["ok"], row["blocks"]) == (0, 6)


def test_an_identity_bucket_and_the_platform_ceiling_are_taken_together(redis_client):
    prefix = f"rl{uuid.uuid4().hex[:6]}"
    limiter = FleetRateLimiter(redis_client, prefix)
    # two identities at 10/s each, under a ceiling of 10/s: together they get 10/s, not 20
    sends = [limiter.reserve("douyin", 10, identity=f"px-{n % 2}", ceiling=10) for n in range(10)]
    assert all(s.granted for s in sends)
    gaps = [round(b.send_at - a.send_at, 3) for a, b in zip(sends, sends[1:], strict=False)]
    assert all(0.099 <= g <= 0.101 for g in gaps), gaps
    # without a ceiling each identity has its own bucket: 10 sends in 0.5 s of reservations
    free = [limiter.reserve("bilibili", 10, identity=f"px-{n % 2}") for n in range(10)]
    assert max(s.wait for s in free) == pytest.approx(0.4, abs=0.02)
