"""The web console (``/console``) in Debian's Chromium, driven by Playwright, on a real API and a live fleet.

One uvicorn serves the API over the test Redis and MongoDB-compatible server while a real
``livefleet worker`` monitors live rooms of the session sandbox (every second) and builds their
sessions. The browser logs in, reads the fleet, watches a monitored room's online curve grow,
stops a monitor, stops a watchlist and retries a dead letter; then a second and a third API,
pointed at a closed Redis port and a closed MongoDB port, show their banners on every page.
Each page's screenshot goes to ``var/test-artifacts/console/``.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis as redis_lib
import scrapy
from pymongo import MongoClient
from scrapy.utils.test import get_crawler

from crawlers.api.app import ApiContext
from crawlers.api.console.auth import COOKIE
from crawlers.monitor.registry import Registry
from crawlers.queue.lease_queue import LeaseQueue
from crawlers.redis.keys import SpiderKeys
from crawlers.watch import lists
from settings.browser import launch_options
from settings.defaults import DEFAULTS
from tests.crawl_helpers import Fleet, wait_for
from tests.plugins.api import free_port, serve_api

pytestmark = pytest.mark.integration

TOKEN = "console-token-7f3a"
#: A campaign of a platform no worker of this test serves: its run starts, and ends at its 1 s cap.
CAMPAIGN = """\
name: nightly
description: one Taobao room
schedule: {cron: "0 3 * * *", timezone: UTC}
caps: {duration: 1s}
platforms:
  taobao: {rooms: ["523417747786"]}
"""
PAGES = ["/", "/monitors", "/sessions", "/watchlists", "/campaigns", "/dead", "/rooms/bilibili/1"]


class Stack:
    """The API, the fleet behind it and the handles a test looks through."""

    def __init__(self, base: str, fleet: Fleet, client: redis_lib.Redis, db: Any, rooms: list[str]) -> None:
        self.base, self.fleet, self.client, self.db, self.rooms = base, fleet, client, db, rooms
        self.registry = Registry(client, fleet.prefix)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sandbox, redis_server, mongo_server) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console")
    fleet = Fleet(tmp, sandbox, redis_server.url, mongo_server.url, spider="bilibili")
    client = redis_lib.Redis.from_url(redis_server.url)
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    registry = Registry(client, fleet.prefix)
    # Three live rooms, in case one of them is among the sandbox's deliberately broken ones.
    rooms = [str(r["room_id"]) for r in sandbox.truth("bilibili")["rooms"] if r["live_status"] == 1][:3]
    for room in rooms:
        registry.add("bilibili", f"https://live.bilibili.com/{room}", "1s", "10m")
    (tmp / "nightly.yaml").write_text(CAMPAIGN)
    lists.create_list(client, fleet.prefix, "evening", "bilibili")
    lists.add_entries(client, fleet.prefix, "evening", ["https://space.bilibili.com/2"], platform="bilibili")
    fleet.start(1, idle_close=0, sessions=True)
    context = ApiContext(token=TOKEN, redis=client, db=mongo[fleet.db_name], prefix=fleet.prefix,
                         campaigns_dir=tmp, heartbeat_seconds=1.0)
    try:
        with serve_api(context) as api:
            yield Stack(api.base, fleet, client, mongo[fleet.db_name], rooms)
    finally:
        fleet.stop()
        mongo.drop_database(fleet.db_name)
        mongo.close()
        client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = DEFAULTS["LIVEFLEET_CHROMIUM"]
    assert Path(chromium).exists(), f"Chromium is not installed at {chromium} (make install puts it there)"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(**launch_options(chromium))
        try:
            yield launched
        finally:
            launched.close()


def _request(base: str, method: str, path: str, body: str = "", **headers: str) -> tuple[int, dict[str, str], str]:
    """One HTTP request, redirects not followed: (status, headers lower-cased, body text)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        if body:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection.request(method, path, body=body.encode() or None, headers=headers)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read().decode()
    finally:
        connection.close()


def _login(page: Any, base: str, token: str = TOKEN) -> None:
    page.goto(f"{base}/console/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


def test_the_console_door_cookie_and_csrf_checks(stack):
    base = stack.base
    origin = {"Origin": base}
    # Without the cookie: pages redirect to the login page, JSON answers 401, nothing is read.
    for path in PAGES:
        code, headers, _ = _request(base, "GET", f"/console{path}")
        assert (code, headers.get("location")) == (303, "/console/login"), path
    assert _request(base, "GET", "/console/api/rooms/bilibili/1")[0] == 401
    # A wrong token: the 401 page; a login without Origin or Referer, or from another site: 403.
    code, _, text = _request(base, "POST", "/console/login", "token=wrong", **origin)
    assert code == 401 and "not the API token" in text
    assert _request(base, "POST", "/console/login", f"token={TOKEN}")[0] == 403
    assert _request(base, "POST", "/console/login", f"token={TOKEN}", Origin="http://evil.example")[0] == 403
    # The right token: a cookie that is not the token, HttpOnly, SameSite=Strict, Path=/, not Secure on http.
    code, headers, _ = _request(base, "POST", "/console/login", f"token={TOKEN}", **origin)
    assert (code, headers["location"]) == (303, "/console/")
    cookie = headers["set-cookie"]
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")}
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value and TOKEN not in cookie and "httponly" in attributes and "secure" not in attributes
    assert attributes["samesite"].lower() == "samesite=strict" and attributes["path"] == "Path=/"
    jar = f"{COOKIE}={value}"
    assert _request(base, "GET", "/console/", Cookie=jar)[0] == 200
    # The cookie opens the console only: /v1 stays bearer-only.
    assert _request(base, "GET", "/v1/status", Cookie=jar)[0] == 401
    # A state change needs the console's origin as well as the cookie.
    monitor = stack.registry.list()[0].id
    for headers in ({}, {"Origin": "http://evil.example"}, {"Referer": "http://evil.example/console/monitors"}):
        assert _request(base, "POST", f"/console/monitors/{monitor}/stop", Cookie=jar, **headers)[0] == 403
    assert stack.registry.get(monitor).state == "active"
    # A forged or altered cookie is no login.
    issued, signature = value.split(".")
    for forged in (f"{int(issued) + 1}.{signature}", f"{issued}.{'0' * len(signature)}", TOKEN):
        assert _request(base, "GET", "/console/", Cookie=f"{COOKIE}={forged}")[0] == 303


def test_an_operator_logs_in_watches_a_room_stops_a_monitor_and_retries_a_dead_letter(stack, browser, artifacts):
    shots = artifacts("console")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        _login(page, stack.base, "wrong")
        assert page.locator("#refused").is_visible()
        page.screenshot(path=shots / "login-refused.png")
        _login(page, stack.base)
        page.wait_for_url("**/console/")
        (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]

        # The fleet: the worker's heartbeat and the bilibili row.
        def worker_listed() -> bool:
            page.reload()
            return page.locator("#workers td", has_text="bilibili").count() > 0

        wait_for("the worker on the fleet page", worker_listed, 60, interval=0.5,
                 detail=lambda: stack.fleet.log(0)[-3000:])
        assert page.locator("#platforms tr", has_text="bilibili").count() == 1
        page.screenshot(path=shots / "fleet.png", full_page=True)

        # A monitored room's page: its online curve grows while the page is open (the script reads again).
        room = wait_for("a monitored room with snapshots", lambda: next(
            (r for r in stack.rooms if stack.db.room_snapshots.count_documents({"room_id": r}) >= 2), None), 60,
            detail=lambda: stack.fleet.log(0)[-3000:])
        page.goto(f"{stack.base}/console/monitors")
        page.screenshot(path=shots / "monitors.png", full_page=True)
        page.click(f"a[href='/console/rooms/bilibili/{room}']")
        page.wait_for_url(f"**/console/rooms/bilibili/{room}")
        points = "() => Chart.getChart('curve') ? Chart.getChart('curve').data.datasets[0].data.length : 0"
        page.wait_for_function(f"({points})() >= 2", timeout=20_000)
        first = page.evaluate(points)
        page.wait_for_function(f"({points})() > {first}", timeout=20_000)
        assert page.evaluate(points) > first
        page.screenshot(path=shots / "room.png", full_page=True)
        page.goto(f"{stack.base}/console/sessions")
        page.screenshot(path=shots / "sessions.png", full_page=True)

        # Add monitors from the console: a target on another host is refused with the reason, nothing stored.
        page.goto(f"{stack.base}/console/monitors")
        before = len(stack.registry.list())
        page.fill("#add-monitor input[name=target]", "https://live.bilibili.com.evil.io/5440")
        page.click("#add-monitor button")
        page.wait_for_url("**/console/monitors?error=*")
        assert "live.bilibili.com" in page.inner_text(".banner.error") and len(stack.registry.list()) == before
        page.fill("#add-monitor input[name=target]", "https://live.bilibili.com/5440")
        page.fill("#add-monitor input[name=every]", "1h")
        page.click("#add-monitor button")
        page.wait_for_url("**/console/monitors?note=*")
        added = [m for m in stack.registry.list() if m.target["id"] == "5440"]
        assert len(added) == 1 and added[0].every_s == 3600
        assert page.locator(f"tr[data-monitor='{added[0].id}']").count() == 1

        # Stop that room's monitor from the console.
        monitor = next(m for m in stack.registry.list() if m.target["id"] == room)
        page.goto(f"{stack.base}/console/monitors")
        page.click(f"tr[data-monitor='{monitor.id}'] button.stop")
        page.wait_for_url("**/console/monitors?note=*")
        assert page.locator(f"tr[data-monitor='{monitor.id}'] .state").inner_text() == "stopped"
        assert stack.registry.get(monitor.id).state == "stopped"

        # Stop the watchlist.
        page.goto(f"{stack.base}/console/watchlists")
        page.click("tr[data-list='evening'] button")
        page.wait_for_url("**/console/watchlists?note=*")
        assert page.locator("tr[data-list='evening'] .state").inner_text() == "stopped"
        assert lists.get_list(stack.client, stack.fleet.prefix, "evening").state == "stopped"
        page.screenshot(path=shots / "watchlists.png", full_page=True)
        # Run a campaign now: its run is recorded and listed.
        page.goto(f"{stack.base}/console/campaigns")
        assert "T03:00:00+00:00" in page.inner_text("tr[data-campaign='nightly']")  # the next firing
        page.click("tr[data-campaign='nightly'] button")
        page.wait_for_url("**/console/campaigns?note=*")
        assert "started" in page.inner_text(".banner.note")
        assert page.locator("#runs tr", has_text="nightly").count() == 1
        page.screenshot(path=shots / "campaigns.png", full_page=True)

        # A dead letter (a request that failed twice), retried from the console back into the queue.
        keys = _dead_letter(stack)
        page.goto(f"{stack.base}/console/dead")
        assert page.locator("tr[data-platform='kuaishou'] .count").inner_text() == "1"
        assert page.locator("table.letters[data-platform='kuaishou']", has_text="example.test/page/1").count() == 1
        page.screenshot(path=shots / "dead.png", full_page=True)
        page.click("tr[data-platform='kuaishou'] button.retry-one")
        page.wait_for_url("**/console/dead?note=*")
        assert "1 kuaishou dead letters back in the queue" in page.inner_text(".banner.note")
        assert stack.client.llen(keys.dead) == 0 and stack.client.zcard(keys.requests) == 1
        page.screenshot(path=shots / "dead-retried.png", full_page=True)

        # Logging out clears the cookie: the console asks for the token again.
        page.click("nav button")
        page.wait_for_url("**/console/login")
        assert not [c for c in context.cookies() if c["name"] == COOKIE]
        page.goto(f"{stack.base}/console/monitors")
        assert page.url.endswith("/console/login")
    finally:
        context.close()


def _dead_letter(stack: Stack) -> SpiderKeys:
    """Make a kuaishou dead letter the way the queue makes one (no kuaishou worker runs to take it back)."""

    class _Spider(scrapy.Spider):
        name = "console"

    spider = _Spider()
    spider.crawler = get_crawler(_Spider, {"LIVEFLEET_KEY_PREFIX": stack.fleet.prefix})
    keys = SpiderKeys(stack.fleet.prefix, "kuaishou")
    queue = LeaseQueue(stack.client, spider, keys, worker="console-test", max_failures=2)
    queue.push(scrapy.Request("https://example.test/page/1", meta={"download_slot": "kuaishou"}), fingerprint="fp1")
    for _ in range(2):
        (item,) = queue.take(1)
        queue.release(item.lease, "download error: connection refused")
    assert stack.client.llen(keys.dead) == 1
    return keys


def test_every_page_says_which_server_does_not_answer(stack, browser, artifacts, redis_server, mongo_server):
    shots = artifacts("console")
    closed = f"redis://127.0.0.1:{free_port()}/0"
    no_redis = redis_lib.Redis.from_url(closed, socket_connect_timeout=1, socket_timeout=1)
    no_mongo: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{free_port()}/",
                                                        serverSelectionTimeoutMS=300, connectTimeoutMS=300)
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    live = redis_lib.Redis.from_url(redis_server.url)
    cases = [("Redis", no_redis, mongo), ("MongoDB", live, no_mongo)]
    try:
        for server, redis_client, mongo_client in cases:
            context = ApiContext(token=TOKEN, redis=redis_client, db=mongo_client[stack.fleet.db_name],
                                 prefix=stack.fleet.prefix, campaigns_dir=Path(stack.fleet.tmp_path))
            with serve_api(context) as api:
                browsing = browser.new_context(viewport={"width": 1280, "height": 800})
                page = browsing.new_page()
                try:
                    _login(page, api.base)
                    page.wait_for_url("**/console/")
                    for path in PAGES:
                        started = time.monotonic()
                        answer = page.goto(f"{api.base}/console{path}")
                        assert answer is not None and answer.status == 200, (server, path)
                        banner = page.locator(f".banner.down[data-down='{server}']")
                        reads = {"Redis": {"/", "/monitors", "/watchlists", "/dead"},
                                 "MongoDB": {"/monitors", "/sessions", "/campaigns", "/rooms/bilibili/1"}}[server]
                        assert banner.count() == (1 if path in reads else 0), (server, path, page.content()[:2000])
                        assert time.monotonic() - started < 5, (server, path)
                        if path in reads:
                            shown = path.strip("/").replace("/", "-") or "fleet"
                            page.screenshot(path=shots / f"{server.lower()}-down-{shown}.png")
                    status, data = page.evaluate("""async () => {
                        const r = await fetch('/console/api/rooms/bilibili/1'); return [r.status, await r.json()]; }""")
                    assert status == 200 and (server in data["down"]) == (server == "MongoDB"), data
                finally:
                    browsing.close()
    finally:
        no_redis.close()
        no_mongo.close()
        mongo.close()
        live.close()
