"""The browser, for the few pages that need one: scrapy-playwright, tuned and kept bounded.

Only requests with ``meta["playwright"] = True`` use it; everything else goes
through Scrapy's plain HTTP handler, and spiders that never render do not
install this handler at all (see ``browser_settings``).

What the tuning does, and why (``bench/README.md`` has the measurements):

* pages are reused (``crawlers/download/page_pool.py``): each browser context keeps
  the pages it opened and renders the next request in one that is free,
  instead of a new page (a new renderer process) per request; no request of
  a rendered page is routed through Python (the browser sends its own
  headers, ``PLAYWRIGHT_PROCESS_REQUEST_HEADERS = None``: the sites check that
  they match it), and the page's own script is waited for inside the page;
* images, media and fonts are never downloaded (the data is in the page
  state, not in pixels): Blink loads no images at all, and media and font
  requests are failed inside the browser;
* Chromium keeps at most a few renderer processes (``CHROMIUM_ARGS``), and a
  page keeps its frame from one document to the next (``DISABLED_FEATURES``; both
  in ``settings/browser.py``, with the rest of the browser's Scrapy settings);
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler

from crawlers.download.memory import process_tree_rss
from crawlers.download.page_pool import PageReusingHandler
from settings.browser import CHROMIUM_ARGS, DISABLE_FEATURES_SWITCH, DISABLED_FEATURES
from settings.defaults import value
from spiders.meta import KEEP_PAGE_META

logger = logging.getLogger(__name__)

_MIB = 1024 * 1024


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


def chromium_args(args: Sequence[str] = CHROMIUM_ARGS) -> list[str]:
    """``args`` (the launch options' flags) with Playwright's disabled features merged into ours.

    Every ``--disable-features`` switch of ``args`` becomes one last switch listing
    Playwright's features, then ours; when Playwright's list cannot be read, ours are
    dropped (they would turn Playwright's back on) and a warning says so.
    """
    ours = [name for arg in args if arg.startswith(DISABLE_FEATURES_SWITCH)
            for name in arg[len(DISABLE_FEATURES_SWITCH):].split(",") if name]
    if not ours:
        ours = list(DISABLED_FEATURES)
    out = [arg for arg in args if not arg.startswith(DISABLE_FEATURES_SWITCH)]
    theirs = playwright_disabled_features()
    if theirs is None:
        logger.warning("Playwright's list of disabled Chromium features not found: %s stay enabled", ", ".join(ours))
    else:
        out.append(DISABLE_FEATURES_SWITCH + ",".join(dict.fromkeys([*theirs, *ours])))
    return out


class RecyclingPlaywrightHandler(PageReusingHandler):
    """scrapy-playwright's download handler with reused pages, bounded browser lifetime and memory."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        # Playwright's own disabled features go into our --disable-features switch (see chromium_args).
        options = self.config.launch_options
        options["args"] = chromium_args(options.get("args") or ())
        self.recycle_pages = value(settings, "LIVEFLEET_BROWSER_RECYCLE_PAGES")
        self.max_rss = value(settings, "LIVEFLEET_BROWSER_MAX_RSS_MB") * _MIB
        # Reading the memory of a dozen Chromium processes takes ~0.1 s of CPU (the kernel walks
        # their page tables), so it is done every so many pages, on a thread.
        self.rss_check_every = max(1, value(settings, "LIVEFLEET_BROWSER_RSS_CHECK_PAGES"))
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
        kept = bool(request.meta.get(KEEP_PAGE_META))
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
