"""Subprocess entry point: render Douyin room pages in Chromium ONCE and print one JSON line.

``python -m bench.render_run --mode tuned|default --sandbox-url URL --web-rids JSON --pages N ...``

A Twisted reactor cannot restart, so :mod:`bench.render` runs every measured
crawl in its own process. Each crawl renders ``--pages`` room pages
(``/live.douyin.com/{web_rid}``, cycling over ``--web-rids``) through
scrapy-playwright and waits in each page for the state the page's own script
builds, exactly as livefleet's Douyin spider does (a ``wait_for_function``
PageMethod on ``document.body.dataset.ready``).

* ``tuned``: livefleet's browser: :func:`settings.browser.browser_settings`
  (the :class:`~crawlers.download.browser.RecyclingPlaywrightHandler`, rendering in
  reused pages, images, media and fonts blocked inside Chromium,
  ``PLAYWRIGHT_PROCESS_REQUEST_HEADERS=None`` and no route, at most 4
  contexts of 4 pages), requests described with ``meta["livefleet_render"]``
  and turned into browser meta by :class:`~crawlers.download.render.RenderMiddleware`
  (which also installs :func:`~crawlers.download.render.warm_context`), pages spread
  round-robin over ``LIVEFLEET_SESSIONS_PER_PLATFORM`` (3) long-lived contexts
  named like the worker's sessions (``douyin-0`` ...), as
  :class:`crawlers.download.sessions.SessionMiddleware` does.
* ``default``: scrapy-playwright as it comes: its own
  ``ScrapyPlaywrightDownloadHandler``, launch options limited to what Chromium
  needs on this machine (``executable_path`` and STACK.md's flags), no request
  aborting, default header processing (Scrapy's headers on the navigation,
  Scrapy's User-Agent on every sub-request), the one ``default`` context with
  as many pages as ``CONCURRENT_REQUESTS``; the same PageMethod in
  ``meta["playwright_page_methods"]``.

Both sides use the same ``CONCURRENT_REQUESTS`` (and per-domain concurrency).
A room page without the ``ttwid`` cookie is a captcha page, so every context
first renders the home page (``/live.douyin.com/``, which sets the cookie);
only then are the room pages issued and the clock started. ``seconds`` runs
from that moment (the last warm-up response) to the last room page's response.

A page counts as ``ok`` when its rendered HTML carries the state its script
pushed (``self.__pace_f.push`` with ``roomStore``) and ``data-ready="live"``;
anything else (captcha, a ``blocked`` page whose signed API call was refused,
a timeout) is a failure, counted by cause in ``failures``.

Memory: the browser processes (every descendant of this process: the
Playwright driver and the Chromium it started) are measured with
:func:`crawlers.download.memory.process_tree_rss` (PSS). With ``--settle-at 25,150``
the room pages are issued in waves (25, then up to 150, then the rest); after
each wave, and at the end, the crawl waits until no page is rendering and
takes a *settled* sample (``rss_settled_mb``: ``[pages done, MiB]``). Settled
samples are comparable (no page at work in any of them; the tuned side's
pages kept for reuse are open in all of them, as in a worker), so their
differences are growth, not pages that happened to be busy. ``rss_peak_mb`` is the
largest sample, also taken every ``--sample-every`` pages while pages are
open (``rss_trace``). ``rss_settled_by_kind_mb`` splits each settled sample
into the Playwright driver, the browser process, renderers and other helpers.

What-if options, for looking for the bottleneck (:func:`bench.render.run`
never uses them): ``--contexts N`` (tuned: how many contexts the pages are
spread over), ``--reuse-pages K`` (K long-lived pages, each navigated again
for the next room, instead of a new page per room) and ``--set NAME=JSON``.

The last stdout line is ``RENDER_RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import psutil
import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response
from scrapy.settings import Settings

from crawlers.download.memory import process_tree_rss, pss
from settings.browser import browser_settings
from spiders.meta import RENDER_META as RENDER

RESULT_PREFIX = "RENDER_RESULT "
MIB = 1024 * 1024
#: What livefleet's Douyin spider waits for in a room page (``spiders/douyin/spider.py``).
WAIT_FOR = "document.body && document.body.dataset.ready"
WAIT_TIMEOUT_MS = 20_000
#: The launch flags STACK.md lists as needed on this machine (the default side gets only these).
STACK_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: livefleet's sessions (browser contexts) per platform in a worker (``LIVEFLEET_SESSIONS_PER_PLATFORM``).
TUNED_CONTEXTS = 3


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every descendant, live or already reaped.

    A live process's own times plus the times of the children it has reaped
    (``children_*``) cover renderer processes that exited with their page.
    """
    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def memory_by_kind() -> dict[str, float]:
    """MiB (PSS) of this process's descendants by kind: the Playwright ``driver`` (node), the
    Chromium ``browser`` process, its ``renderers``, and ``other`` Chromium helpers (GPU,
    network, zygotes), so growth can be pinned on one of them."""
    found: dict[str, float] = {"driver": 0.0, "browser": 0.0, "renderers": 0.0, "other": 0.0}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        name = os.path.basename(cmdline[0]) if cmdline else ""
        if "node" in name:
            kind = "driver"
        elif "--type=renderer" in cmdline:
            kind = "renderers"
        elif any(arg.startswith("--type=") for arg in cmdline):
            kind = "other"
        else:
            kind = "browser" if "chrom" in name else "other"
        found[kind] += (pss(proc.pid) or 0) / MIB
    return {kind: round(value, 1) for kind, value in found.items()}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), for the other-load figure."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class RoomRenderSpider(scrapy.Spider):
    """Warms each browser context on the home page, then renders room pages and checks each one."""

    name = "render_bench"

    def __init__(self, *, mode: str, sandbox_url: str, web_rids: list[str], pages: int, settle_at: list[int],
                 sample_every: int, user_agent: str = "scrapy", contexts: int = TUNED_CONTEXTS,
                 reuse_pages: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.ua_choice = user_agent
        self.browser_ua: str | None = None
        self.base = sandbox_url.rstrip("/") + "/live.douyin.com"
        self.web_rids = web_rids
        self.pages = pages
        #: Page counts after which the crawl lets every page close and samples memory, then goes on.
        self.settle_at = sorted({n for n in settle_at if 0 < n < pages})
        self.sample_every = max(1, sample_every)
        self.contexts = [f"douyin-{n}" for n in range(contexts)] if mode == "tuned" else ["default"]
        self._context_turn = itertools.cycle(self.contexts)
        self._rids = itertools.cycle(web_rids)
        self._warm_left = len(self.contexts)
        self.reuse_pages = reuse_pages
        self.issued = 0
        self.phase_end = 0  # pages issued once the current wave is all out
        self.done = 0
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self.samples: list[int] = []
        self.trace: list[tuple[int, float]] = []  # (pages done, MiB) at every sample
        self.t_start: float | None = None
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.cpu_start = self.cpu_end = 0.0
        self.machine_start = self.machine_end = 0.0
        self.settled: list[tuple[int, int]] = []  # (pages done, bytes) with no page open
        self.settled_by_kind: list[tuple[int, dict[str, float]]] = []

    # -- requests ----------------------------------------------------------------------------
    async def start(self) -> Any:
        include_page = self.mode == "default" and self.ua_choice == "browser"
        for context in self.contexts:
            yield scrapy.Request(f"{self.base}/", callback=self.warmed, errback=self.warm_failed, dont_filter=True,
                                 meta={"playwright": True, "playwright_context": context,
                                       "playwright_include_page": include_page})

    def room_request(self, page: Any = None, context: str | None = None) -> scrapy.Request:
        self.issued += 1
        url = f"{self.base}/{next(self._rids)}"
        meta: dict[str, Any]
        if self.mode == "tuned":
            # As spiders/douyin/spider.py room_page() describes it; RenderMiddleware builds the PageMethod.
            meta = {RENDER: {"wait_for": WAIT_FOR, "warm_url": f"{self.base}/", "warm_cookie": "ttwid",
                             "timeout_ms": WAIT_TIMEOUT_MS},
                    "playwright_context": context or next(self._context_turn)}
        else:
            from scrapy_playwright.page import PageMethod

            meta = {"playwright": True,
                    "playwright_page_methods": [PageMethod("wait_for_function", WAIT_FOR, timeout=WAIT_TIMEOUT_MS)]}
        if self.reuse_pages:  # what-if: keep the page and navigate it again for a later request
            meta["playwright_include_page"] = True
            if page is not None and not page.is_closed():
                meta["playwright_page"] = page
        headers = {"User-Agent": self.browser_ua} if self.browser_ua else None
        return scrapy.Request(url, callback=self.rendered, errback=self.render_failed, dont_filter=True, meta=meta,
                              headers=headers)

    def wave(self, count: int) -> list[scrapy.Request]:
        """Issue ``count`` more pages: all at once, or (``--reuse-pages K``) K lanes that each reuse a page."""
        self.phase_end = self.issued + count
        return [self.room_request() for _ in range(min(count, self.reuse_pages) if self.reuse_pages else count)]

    def next_on_lane(self, response: Response | None) -> list[scrapy.Request]:
        """``--reuse-pages``: the page just used goes on to the next room of this wave, if any."""
        if not self.reuse_pages or response is None:
            return []
        page = response.meta.get("playwright_page")
        if self.issued >= self.phase_end:
            return []
        return [self.room_request(page, response.meta.get("playwright_context"))]

    # -- callbacks ---------------------------------------------------------------------------
    async def warmed(self, response: Response) -> Any:
        page = response.meta.get("playwright_page")
        if page is not None:  # default side, --user-agent browser: learn the UA the page signs with
            self.browser_ua = await page.evaluate("navigator.userAgent")
            await page.close()
        for request in self._after_warm():
            yield request

    def warm_failed(self, failure: Any) -> Any:
        self.logger.error("warm-up failed: %s", failure.value)
        self.failures["warm-up"] += 1
        return self._after_warm()

    def _after_warm(self) -> list[scrapy.Request]:
        self._warm_left -= 1
        if self._warm_left > 0:
            return []
        self.sample()
        self.t_start = time.monotonic()
        self.cpu_start, self.machine_start = tree_cpu_seconds(), machine_busy_seconds()
        return self.wave(self._wave_end() - self.done)

    async def rendered(self, response: Response) -> Any:
        body = response.text
        ready = response.css("body::attr(data-ready)").get()
        if "self.__pace_f.push" in body and "roomStore" in body and ready == "live":
            self.ok += 1
        elif "captcha" in body:
            self.failures["captcha"] += 1
        else:
            self.failures[f"ready={ready}"] += 1
        for request in [*self.next_on_lane(response), *await self._page_done()]:
            yield request

    async def render_failed(self, failure: Any) -> Any:
        self.failures[type(failure.value).__name__] += 1
        self.logger.warning("page failed: %s", failure.value)
        requests = [self.room_request()] if self.reuse_pages and self.issued < self.phase_end else []
        for request in [*requests, *await self._page_done()]:
            yield request

    async def _page_done(self) -> list[scrapy.Request]:
        now = time.monotonic()
        self.t_first = self.t_first or now
        self.t_last = now
        self.done += 1
        if self.done == self.pages:
            self.cpu_end, self.machine_end = tree_cpu_seconds(), machine_busy_seconds()
        if self.done % self.sample_every == 0:
            self.sample()
        if self.done in self.settle_at or self.done == self.pages:
            self.settled.append((self.done, await self.settled_rss()))
            self.settled_by_kind.append((self.done, memory_by_kind()))
            if self.done < self.pages:
                return self.wave(self._wave_end() - self.done)
        return []

    def _wave_end(self) -> int:
        return next((n for n in self.settle_at if n > self.done), self.pages)

    # -- memory ------------------------------------------------------------------------------
    def sample(self) -> int:
        rss = process_tree_rss(os.getpid(), include_root=False)
        self.samples.append(rss)
        self.trace.append((self.done, round(rss / MIB, 1)))
        return rss

    async def settled_rss(self) -> int:
        """Browser memory a second after the wave's last page (closed, or kept idle for reuse)."""
        await asyncio.sleep(1.0)
        return self.sample()


def settings_for(args: argparse.Namespace) -> Settings:
    """The two sides' settings: all they differ in is the browser handler and its options."""
    common: dict[str, Any] = {
        "LOG_LEVEL": "WARNING",
        "REMOTE_CONTROL_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": args.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
        "DOWNLOAD_TIMEOUT": 60,
        "RETRY_ENABLED": False,
        "COOKIES_ENABLED": False,  # the browser contexts keep the cookies; Scrapy's jar is not involved
    }
    if args.mode == "tuned":
        tuned = browser_settings(args.chromium) | {
            "DOWNLOADER_MIDDLEWARES": {"crawlers.download.render.RenderMiddleware": 550},
            "LIVEFLEET_BROWSER_RECYCLE_PAGES": args.recycle_pages,
            "LIVEFLEET_BROWSER_MAX_RSS_MB": args.max_rss_mb,
        }
        return Settings(common | tuned)
    handler = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
    return Settings(common | {
        "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": args.chromium, "headless": True, "args": STACK_ARGS},
    })


def mb(value: float | None) -> float | None:
    return round(value / MIB, 1) if value is not None else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the crawl to its end and return the figures."""
    web_rids = json.loads(args.web_rids)
    settings = settings_for(args)
    for pair in args.set:
        name, _, raw = pair.partition("=")
        try:
            settings.set(name, json.loads(raw))
        except ValueError:
            settings.set(name, raw)
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(RoomRenderSpider)
    process.crawl(crawler, mode=args.mode, sandbox_url=args.sandbox_url, web_rids=web_rids, pages=args.pages,
                  settle_at=args.settle_at, sample_every=args.sample_every, user_agent=args.user_agent,
                  contexts=args.contexts, reuse_pages=args.reuse_pages)
    process.start()
    spider: RoomRenderSpider = crawler.spider  # type: ignore[assignment]
    assert crawler.stats is not None
    stats = crawler.stats.get_stats()
    seconds = (spider.t_last - spider.t_start) if spider.t_start and spider.t_last else None
    peak = max([*spider.samples, (stats.get("livefleet/browser/rss_peak_mb") or 0) * MIB], default=None)
    return {
        "mode": args.mode,
        "pages": spider.done,
        "ok": spider.ok,
        "failures": dict(spider.failures),
        "seconds": seconds,
        "first_page_s": (spider.t_first - spider.t_start) if spider.t_start and spider.t_first else None,
        "pages_per_s": spider.done / seconds if seconds else None,
        "ok_per_s": spider.ok / seconds if seconds else None,
        "cpu_s": spider.cpu_end - spider.cpu_start,
        "machine_cpu_s": spider.machine_end - spider.machine_start,
        "rss_peak_mb": mb(peak),
        "rss_settled_mb": [(done, mb(rss)) for done, rss in spider.settled],
        "rss_settled_by_kind_mb": spider.settled_by_kind,
        "recycled": int(stats.get("livefleet/browser/recycled", 0)),
        "browser_launches": int(stats.get("playwright/browser_count", 0)),
        "contexts": int(stats.get("playwright/context_count", 0)),
        "pages_created": int(stats.get("playwright/page_count", 0)),
        "browser_requests": int(stats.get("playwright/request_count", 0)),
        "browser_requests_aborted": int(stats.get("playwright/request_count/aborted", 0)),
        "browser_requests_by_type": {k.rsplit("/", 1)[1]: v for k, v in stats.items()
                                     if k.startswith("playwright/request_count/resource_type/")},
        "rss_trace": spider.trace,
        "finish_reason": stats.get("finish_reason"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.render_run", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("tuned", "default"), required=True)
    p.add_argument("--sandbox-url", required=True)
    p.add_argument("--web-rids", required=True, help="JSON list of live rooms' web_rids (cycled over)")
    p.add_argument("--pages", type=int, required=True, help="room pages to render")
    p.add_argument("--settle-at", type=lambda text: [int(n) for n in text.split(",") if n], default=[],
                   metavar="N,N,...", help="after these many pages let every page close and sample memory")
    p.add_argument("--sample-every", type=int, default=10, help="sample browser memory every N pages")
    p.add_argument("--concurrency", type=int, default=16, help="CONCURRENT_REQUESTS (both sides)")
    p.add_argument("--recycle-pages", type=int, default=300, help="tuned: LIVEFLEET_BROWSER_RECYCLE_PAGES")
    p.add_argument("--max-rss-mb", type=int, default=1200, help="tuned: LIVEFLEET_BROWSER_MAX_RSS_MB")
    p.add_argument("--user-agent", choices=("scrapy", "browser"), default="scrapy",
                   help="default side: the User-Agent Scrapy sends (its own, or the browser's navigator.userAgent)")
    p.add_argument("--contexts", type=int, default=TUNED_CONTEXTS, help="tuned: browser contexts (sessions) used")
    p.add_argument("--reuse-pages", type=int, default=0, metavar="K",
                   help="what-if: K pages, each navigated again for the next room instead of a new page per room")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                   help="override one more setting (what-if runs when looking for a bottleneck; the bench never does)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    result = run(parse_args(argv))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["finish_reason"] == "finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
