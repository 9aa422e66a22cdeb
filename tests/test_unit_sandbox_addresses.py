"""The sandbox judges clients by address, as real platforms do: the per-address rate limit
(GCRA with a jitter allowance, per platform), its refusals in each platform's own words, and
the per-address counters of ``/__sandbox__/stats``.

The limiter is tested with an injected clock (exact, no waiting); the middleware in process
with a rate so low that real time cannot matter; one integration test sends from several
loopback source addresses to a sandbox started with ``--address-rate-limit``.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import math
import random
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox.chaos import AddressLimiter, ChaosSettings
from sandbox.douyin import pages as H
from sandbox.process import start_sandbox
from sandbox.server import SandboxConfig, build_app, parse_args

GET_LIST = "/api.live.bilibili.com/room/v1/Area/getList"
DOUYIN_HOME = "/live.douyin.com/"
CAPTCHA: bytes = H.CAPTCHA_PAGE


def _run(limiter: AddressLimiter, key: Any, times: list[float], rate: float, burst: float = 1.0) -> list[bool]:
    return [limiter.allow(key, rate, burst, t) for t in times]


# -- the limiter, on an injected clock ------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.5, 5.0, 10.0, 200.0])
def test_a_client_at_exactly_the_rate_is_never_refused_whatever_its_jitter(rate: float) -> None:
    interval = 1.0 / rate
    allowance = max(AddressLimiter.JITTER_SHARE * interval, AddressLimiter.JITTER_FLOOR)
    on_time = [100.0 + k * interval for k in range(300)]
    assert all(_run(AddressLimiter(), "a", on_time, rate))
    # Each request late by anything up to the allowance (so some gaps are shorter than the interval).
    draw = random.Random(rate)
    late = [t + draw.uniform(0, allowance * 0.999) for t in on_time]
    assert all(_run(AddressLimiter(), "a", late, rate))
    # Pacing by "sleep one interval after each send" (a sleep ends late, never early), each request then
    # delayed on its way by anything up to the allowance: some gaps are far shorter than the interval.
    sent, paced = 100.0, []
    for _ in range(300):
        paced.append(sent + draw.uniform(0, allowance * 0.999))
        sent += interval + draw.uniform(0, interval * 0.2)
    assert min(b - a for a, b in itertools.pairwise(paced)) < interval * 0.7
    assert all(_run(AddressLimiter(), "a", paced, rate))


@pytest.mark.parametrize("rate", [2.0, 10.0, 100.0])
def test_twice_the_rate_gets_half_refused(rate: float) -> None:
    times = [100.0 + k / (2 * rate) for k in range(400)]
    allowed = _run(AddressLimiter(), "a", times, rate)
    # The long-run rate is exactly ``rate``; the jitter allowance adds at most ceil(allowance * rate) + 1 at the start.
    allowance = max(AddressLimiter.JITTER_SHARE / rate, AddressLimiter.JITTER_FLOOR)
    assert 200 <= allowed.count(True) <= 201 + math.ceil(allowance * rate)
    assert not all(allowed[-10:]) and any(allowed[-10:]), "refusals are spread, not a block at the end"


def test_burst_is_what_an_idle_client_may_send_at_once() -> None:
    limiter = AddressLimiter()
    # 1 token: one request at once (a second at the same instant is refused), then one per interval.
    assert _run(limiter, "a", [100.0, 100.0, 100.001], 1.0) == [True, False, False]
    assert _run(limiter, "a", [100.999], 1.0) == [True]  # a millisecond early: the jitter allowance
    assert _run(AddressLimiter(), "b", [100.0] * 5, 1.0, burst=3.0) == [True, True, True, False, False]
    # A refused request costs nothing: the client is back to its rate at once.
    limiter = AddressLimiter()
    assert _run(limiter, "c", [100.0] + [100.01] * 50 + [101.0, 102.0], 1.0) == [True] + [False] * 50 + [True, True]


def test_addresses_and_platforms_have_their_own_limits() -> None:
    limiter = AddressLimiter()
    rate = 10.0
    # A hammering address does not eat a well-behaved one's share, nor its own share of another platform.
    fast = [(("douyin", "127.0.0.11"), 100.0 + k / (4 * rate)) for k in range(200)]
    slow = [(("douyin", "127.0.0.12"), 100.0 + k / rate + 0.001) for k in range(50)]
    other = [(("bilibili", "127.0.0.11"), 100.0 + k / rate + 0.002) for k in range(50)]
    results: dict[Any, list[bool]] = {}
    for key, t in sorted(fast + slow + other, key=lambda kt: kt[1]):
        results.setdefault(key, []).append(limiter.allow(key, rate, 1.0, t))
    assert all(results[("douyin", "127.0.0.12")]) and all(results[("bilibili", "127.0.0.11")])
    assert 50 <= results[("douyin", "127.0.0.11")].count(True) <= 52


def test_idle_keys_are_forgotten_when_the_table_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AddressLimiter, "_MAX_KEYS", 10)
    limiter = AddressLimiter()
    for i in range(10):
        assert limiter.allow(i, 1.0, 1.0, 100.0)
    assert limiter.allow("new", 1.0, 1.0, 200.0)  # every old slot has passed: all forgotten
    assert len(limiter._slots) == 1
    assert not limiter.allow("new", 1.0, 1.0, 200.0)


# -- settings and flags --------------------------------------------------------------------------------------
def test_settings_and_flags() -> None:
    settings = ChaosSettings()
    assert (settings.address_rate_limit, settings.address_burst) == (0.0, 1.0)
    settings.update({"address_rate_limit": 4, "address_burst": 2})
    assert settings.as_dict()["address_rate_limit"] == 4.0 and settings.address_burst == 2.0
    for bad in ({"address_burst": 0.5}, {"address_rate_limit": -1}, {"address_rate_limit": 1, "address_burst": 0}):
        with pytest.raises(ValueError):
            settings.update(bad)
    assert (settings.address_rate_limit, settings.address_burst) == (4.0, 2.0), "all or nothing"

    cfg = parse_args(["--no-chaos", "--address-rate-limit", "5", "--address-burst", "2"])
    assert cfg.rate_limit == cfg.error_rate == cfg.block_rate == cfg.slow_rate == 0, "--no-chaos: no random chaos"
    assert (cfg.address_rate_limit, cfg.address_burst) == (5.0, 2.0), "...but the address limit given stays"
    assert cfg.chaos_settings().address_rate_limit == 5.0
    assert parse_args([]).address_rate_limit == 0.0
    for bad in (["--address-burst", "0.5"], ["--address-rate-limit", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


# -- the middleware, in process --------------------------------------------------------------------------
def test_the_address_limit_ignores_cookies_answers_in_the_platforms_words_and_is_counted() -> None:
    # 0.2/s: one request per 5 s (allowance 2.5 s), so back-to-back requests are refused however slow the machine.
    config = SandboxConfig(streamers=20, time_scale=0, rate_limit=0, error_rate=0, slow_rate=0, block_rate=0,
                           address_rate_limit=0.2, platforms=("bilibili", "douyin"))  # fmt: skip

    async def run() -> None:
        async with TestClient(TestServer(build_app(config))) as client:
            first = await client.get(GET_LIST, cookies={"buvid3": "visitor-1"})
            assert first.status == 200 and (await first.json())["code"] == 0
            # A fresh visitor cookie does not make a new client to the edge.
            second = await client.get(GET_LIST, cookies={"buvid3": "visitor-2"})
            assert second.status == 412 and json.loads(await second.read())["code"] == -412
            # Douyin has its own limit for the same address; over it, the captcha page (HTTP 200).
            page = await client.get(DOUYIN_HOME)
            assert page.status == 200 and await page.read() != CAPTCHA
            refused = await client.get(DOUYIN_HOME)
            assert refused.status == 200 and await refused.read() == CAPTCHA

            stats = await (await client.get("/__sandbox__/stats")).json()
            assert stats["outcomes"] == {"address_limited": 2, "ok": 2}
            assert set(stats["endpoints"]) == {"bilibili:area_getList", "douyin:home"}
            [(address, counts)] = stats["addresses"].items()
            assert address == "127.0.0.1"
            assert {k: counts[k] for k in ("requests", "limited", "ok")} == {"requests": 4, "limited": 2, "ok": 2}
            assert 0 < counts["first"] <= counts["last"] <= time.monotonic()

            reset = await client.post("/__sandbox__/stats/reset")
            assert reset.status == 200 and (await reset.json()) == {"ok": True}
            stats = await (await client.get("/__sandbox__/stats")).json()
            del stats["served_rows"]  # not a counter: the served logs stay
            assert stats == {"endpoints": {}, "outcomes": {}, "oversized": {}, "total": 0, "addresses": {}}

            # Off at run time: the same address is served again; the cookie limit still counts as "limited".
            changed = await client.post("/__sandbox__/config", json={"address_rate_limit": 0, "rate_limit": 0.2})
            assert changed.status == 200
            assert (await client.get(GET_LIST, cookies={"buvid3": "v"})).status == 200
            assert (await client.get(GET_LIST, cookies={"buvid3": "v"})).status == 412
            stats = await (await client.get("/__sandbox__/stats")).json()
            assert stats["outcomes"] == {"ok": 1, "rate_limited": 1}
            counts = stats["addresses"]["127.0.0.1"]
            assert (counts["requests"], counts["limited"], counts["ok"]) == (2, 1, 1)
            assert counts["first"] == counts["last"]
            bad = await client.post("/__sandbox__/config", json={"address_burst": 0})
            assert bad.status == 400

    asyncio.run(run())


# -- a sandbox process, clients on several loopback addresses -------------------------------------------------
def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"User-Agent": "address-test"})
    resp = conn.getresponse()
    return resp.status, resp.read()


@pytest.mark.integration
def test_sandbox_limits_and_counts_each_source_address() -> None:
    rate = 5.0
    process = start_sandbox(
        "--time-scale", "0", "--no-chaos", "--streamers", "20", "--platforms", "bilibili,douyin",
        "--address-rate-limit", str(rate),
    )  # fmt: skip
    host, port = process.url.removeprefix("http://").split(":")
    conns = {
        src: http.client.HTTPConnection(host, int(port), timeout=10, source_address=(src, 0))
        for src in ("127.0.0.21", "127.0.0.22")
    }
    try:
        assert process.config()["address_rate_limit"] == rate and process.config()["rate_limit"] == 0
        # .21 paces itself at the rate: every request is served. (It never catches up after a late send: that
        # would be faster than the rate for a moment, which the limiter refuses as a real edge would.)
        paced, sent = [], -1.0
        for _ in range(11):
            time.sleep(max(0.0, sent + 1 / rate - time.monotonic()))
            sent = time.monotonic()
            paced.append(_get(conns["127.0.0.21"], GET_LIST)[0])
        assert paced == [200] * 11
        # .22 sends back to back: Bilibili's own refusal (412, code -412) for all but the first few.
        burst = [_get(conns["127.0.0.22"], GET_LIST) for _ in range(12)]
        refused = [body for status, body in burst if status == 412]
        assert len(refused) >= 9 and all(json.loads(body)["code"] == -412 for body in refused)
        assert burst[0][0] == 200
        # Its Douyin limit is its own: the first page is served, the next is the captcha page.
        assert _get(conns["127.0.0.22"], DOUYIN_HOME)[1] != CAPTCHA
        assert _get(conns["127.0.0.22"], DOUYIN_HOME)[1] == CAPTCHA

        addresses = process.address_stats()
        assert set(addresses) == {"127.0.0.21", "127.0.0.22"}
        calm, rushed = addresses["127.0.0.21"], addresses["127.0.0.22"]
        assert (calm["requests"], calm["limited"], calm["ok"]) == (11, 0, 11)
        granted = (calm["ok"] - 1) / (calm["last"] - calm["first"])
        assert rate * 0.9 < granted < rate * 1.1, granted
        assert rushed["requests"] == 14 and rushed["limited"] == len(refused) + 1
        assert rushed["ok"] == rushed["requests"] - rushed["limited"]
        assert process.stats()["outcomes"]["address_limited"] == rushed["limited"]

        assert process.reset_stats() == {"ok": True}
        assert process.address_stats() == {} and process.stats()["total"] == 0
    finally:
        for conn in conns.values():
            conn.close()
        process.stop()
