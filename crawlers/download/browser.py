"""The browser, for the few pages that need one: scrapy-playwright, tuned and kept bounded.

Only requests with ``meta["playwright"] = True`` use it; everything else goes
through Scrapy's plain HTTP handler, and spiders that never render do not
install this handler at all (see ``browser_settings``).

What the tuning does, and why (``bench/README.md`` has the measurements):

* pages are reused (``crawlers/download/pages.py``): each browser context keeps
  the pages it opened and renders the next request in one that is free,
  instead of a new page (a new renderer process) per request; no request of
  a rendered page is routed through Python (the browser sends its own
  headers, ``PLAYWRIGHT_PROCESS_REQUEST_HEADERS = None``: the sites check that
  they match it), and the page's own script is waited for inside the page;
* images, media and fonts are never downloaded (the data is in the page
  state, not in pixels): Blink loads no images at all, and media and font
  requests are failed inside the browser;
* Chromium keeps at most a few renderer processes (``CHROMIUM_ARGS``), and a
  page keeps its frame from one document to the next (``DISABLED_FEATURES``);
* pages live in a few long-lived contexts (one per platform session), so
  cookies a first visit sets are reused, not fetched again per page;
* the browser is recycled after ``LIVEFLEET_BROWSER_RECYCLE_PAGES`` pages or
  when its processes exceed ``LIVEFLEET_BROWSER_MAX_RSS_MB`` (long crawls with
  scrapy-playwright are known to grow without bound): new pages wait, renders
  in progress finish, the browser closes (with the pages kept for reuse), and
  the next page starts a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler
from scrapy_playwright.page import PageMethod

from crawlers.download.pages import KEEP_PAGE, PageReusingHandler, abort_heavy_resources, wait_for_js

__all__ = ["KEEP_PAGE", "RENDER", "RecyclingPlaywrightHandler", "RenderMiddleware", "abort_heavy_resources",
           "browser_settings", "chromium_args", "process_tree_rss", "wait_for_js", "warm_context"]

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024
#: Flags that keep Chromium quiet on a machine with no internet (see STACK.md), and two that
#: make rendering cheaper:
#:
#: * Blink loads no images at all (cheaper than aborting each request). A later
#:   ``--blink-settings`` replaces an earlier one, so Playwright's headless pointer
#:   settings are repeated here;
#: * a renderer process limit: once this many renderers run, Chromium lets pages of the
#:   same site and context share one, and stops keeping a "spare" renderer ready. With
#:   one context per session, the spare (made for the context of the last navigation)
#:   is thrown away and made again for nearly every page: a process started for nothing.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4,"
    "imagesEnabled=false",
    "--renderer-process-limit=4",
)
#: Chromium features turned off on top of the ones Playwright turns off. ``RenderDocument``
#: gives every new document a new frame, in the browser and in the renderer; a page that
#: goes from one room to the next keeps its frame without it, and Chromium's work per page
#: fell by about a third (``bench/README.md``).
DISABLED_FEATURES = ("RenderDocument",)


@functools.cache
def playwright_disabled_features() -> tuple[str, ...] | None:
    """The Chromium features Playwright's driver turns off, read from the driver itself.

    Chromium keeps only the last ``--disable-features`` switch, and Playwright's comes
    first: a switch of ours alone would silently turn theirs back on, so ours repeats
    them. None when the driver's list is not where playwright 1.65 keeps it.
    """
    import playwright

    bundle = Path(playwright.__file__).parent / "driver" / "package" / "lib" / "coreBundle.js"
    try:
        found = re.search(r"disabledFeatures = \[(.*?)\]\.filter", bundle.read_text(encoding="utf-8"), re.S)
    except OSError:
        return None
    names = re.findall(r'^\s*"([A-Za-z0-9_]+)",?\s*$', found.group(1), re.M) if found else []
    return tuple(names) or None


def chromium_args() -> list[str]:
    """``CHROMIUM_ARGS``, and Playwright's disabled features with ``DISABLED_FEATURES`` added."""
    args = list(CHROMIUM_ARGS)
    theirs = playwright_disabled_features()
    if theirs is None:
        logger.warning("Playwright's list of disabled Chromium features not found: %s stay enabled",
                       ", ".join(DISABLED_FEATURES))
    else:
        args.append("--disable-features=" + ",".join(dict.fromkeys([*theirs, *DISABLED_FEATURES])))
    return args


def browser_settings(chromium: str, *, headless: bool = True) -> dict[str, Any]:
    """Scrapy settings a rendering spider adds (its ``custom_settings``)."""
    handler = "crawlers.download.browser.RecyclingPlaywrightHandler"
    return {
        "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": chromium, "headless": headless,
                                      "args": chromium_args()},
        "PLAYWRIGHT_MAX_CONTEXTS": 4,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 4,
        "PLAYWRIGHT_ABORT_REQUEST": "crawlers.download.pages.abort_heavy_resources",
        "PLAYWRIGHT_PROCESS_REQUEST_HEADERS": None,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": 30_000,
        "PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER": True,
    }


def process_tree_rss(root: int, *, include_root: bool = True) -> int:
    """Memory (bytes) of ``root`` and all its descendants, from /proc.

    Each process counts its proportional set size (PSS): Chromium's processes
    share most of their pages, and summing plain RSS would count those pages
    once per process. Falls back to RSS where smaps_rollup is unavailable.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] is the parent pid
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if include_root or pid != root:
            total += _memory(pid)
        stack.extend(children.get(pid, ()))
    return total


def pss(pid: int) -> int | None:
    """Proportional set size of one process in bytes (None when /proc has no smaps_rollup for it)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _memory(pid: int) -> int:
    found = pss(pid)
    if found is not None:
        return found
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class RecyclingPlaywrightHandler(PageReusingHandler):
    """scrapy-playwright's download handler with reused pages, bounded browser lifetime and memory."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.recycle_pages = settings.getint("LIVEFLEET_BROWSER_RECYCLE_PAGES", 300)
        self.max_rss = settings.getint("LIVEFLEET_BROWSER_MAX_RSS_MB", 1200) * _MIB
        # Reading the memory of a dozen Chromium processes takes ~0.1 s of CPU (the kernel walks
        # their page tables), so it is done every so many pages, on a thread.
        self.rss_check_every = max(1, settings.getint("LIVEFLEET_BROWSER_RSS_CHECK_PAGES", 50))
        self._pages_on_browser = 0
        self._over_memory = False
        self._active = 0  # renders (and scrapy-playwright's own pages) in progress on the current browser
        self._generation = 0  # browsers recycled so far: releases from an older browser do not count
        self._recycle_lock = asyncio.Lock()
        self._memory_check: asyncio.Future[None] | None = None

    def browser_rss(self) -> int:
        """Bytes (PSS) of the Playwright driver and the browsers it started.

        Those are this worker's child processes (Playwright exposes no pid), so
        this is the memory of every descendant of this process.
        """
        return process_tree_rss(os.getpid(), include_root=False)

    # -- every page, reused or not, is counted here --------------------------------------------
    async def _reserve(self, counted: bool = True) -> int:
        """Count one more page on the browser, recycling it first when due; returns its generation.

        Check-and-count under the lock, so a burst of concurrent pages cannot all slip past it.
        """
        async with self._recycle_lock:
            if self._due():
                await self._recycle()
            self._pages_on_browser += 1
            self._active += 1 if counted else 0
            if self._pages_on_browser % self.rss_check_every == 0 and self._memory_check is None:
                self._memory_check = asyncio.ensure_future(self._check_memory())
            return self._generation

    def _release(self, generation: int) -> None:
        if generation == self._generation:
            self._active -= 1

    async def _check_memory(self) -> None:
        generation = self._generation
        try:
            rss = await asyncio.to_thread(self.browser_rss)
        finally:
            self._memory_check = None
        peak = self.stats.get_value("livefleet/browser/rss_peak_mb") or 0
        self.stats.set_value("livefleet/browser/rss_peak_mb", max(peak, rss // _MIB))
        if rss > self.max_rss and generation == self._generation:
            self._over_memory = True  # the next page recycles the browser

    def _due(self) -> bool:
        return self._over_memory or (self.recycle_pages > 0 and self._pages_on_browser >= self.recycle_pages)

    async def _recycle(self) -> None:
        """Close the browser once its renders are done (called with the lock held)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while self._active > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)  # let renders in progress finish; new ones wait on the lock
        self._forget_idle_pages()  # they close with the browser
        browser = getattr(self, "browser", None)
        if browser is not None:
            logger.info("Recycling the browser after %d pages (%d MiB resident)",
                        self._pages_on_browser, self.browser_rss() // _MIB)
            await browser.close()  # the disconnect callback drops it; the next page launches anew
            if getattr(self, "browser", None) is browser:
                del self.browser
        self._pages_on_browser = 0
        self._over_memory = False
        self._active = 0
        self._generation += 1
        self.stats.inc_value("livefleet/browser/recycled")

    async def _close(self) -> None:
        if self._memory_check is not None:
            await asyncio.gather(self._memory_check, return_exceptions=True)
        await super()._close()

    # -- scrapy-playwright's own path (pages the caller keeps, POSTs, Scrapy's headers) -------
    async def _create_page(self, request: Any, spider: Any) -> Any:
        # A page kept open on purpose (a signer page) does not hold a recycle back: it is
        # closed with the browser, and its owner opens a new one when it finds it closed.
        kept = bool(request.meta.get(KEEP_PAGE))
        generation = await self._reserve(counted=not kept)
        try:
            page = await super()._create_page(request, spider)
        except BaseException:
            if not kept:
                self._release(generation)
            raise
        if not kept:
            page.on("close", lambda *_: self._release(generation))
        return page



#: ``meta[RENDER] = {"wait_for": <JS expression>, "warm_url": <url>, "warm_cookie": <name>}``
#: asks for a page rendered in the browser (JSON-able, so it can wait in the shared queue).
RENDER = "livefleet_render"
#: Meta keys the browser handler fills with live objects; never sent back to the queue.
BROWSER_META = ("playwright_page_methods", "playwright_page", "playwright_page_init_callback")


class RenderMiddleware:
    """Turns ``meta["livefleet_render"]`` into scrapy-playwright meta at download time.

    The objects scrapy-playwright wants (``PageMethod``) cannot travel through
    Redis as JSON, so requests carry a plain description and the worker that
    downloads one builds them: render in the browser, wait until
    ``wait_for`` is true in the page (the page's own script has built its
    state), and warm the browser context first when it lacks ``warm_cookie``.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RenderMiddleware:
        return cls()

    def process_request(self, request: Any) -> None:
        render = request.meta.get(RENDER)
        if not render:
            return None
        request.meta["playwright"] = True
        if render.get("wait_for"):
            request.meta["playwright_page_methods"] = [
                PageMethod(wait_for_js, render["wait_for"], timeout=render.get("timeout_ms", 20_000))]
        if render.get("warm_url"):
            request.meta["playwright_page_init_callback"] = "crawlers.download.browser.warm_context"
        return None


async def warm_context(page: Any, request: Any) -> None:
    """``playwright_page_init_callback``: visit ``warm_url`` first if the context lacks its cookie.

    A browser context is a session; a new one (or one recreated after a browser
    recycle) has none of the cookies the site hands out on a first visit.
    """
    render = request.meta.get(RENDER) or {}
    name = render.get("warm_cookie")
    cookies = await page.context.cookies()
    if name and any(cookie["name"] == name for cookie in cookies):
        return
    await page.goto(render["warm_url"], wait_until="domcontentloaded")
