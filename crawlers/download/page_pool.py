"""Reused pages for scrapy-playwright: the fast path of livefleet's browser handler.

scrapy-playwright opens a new page for every request and closes it after
the download. For Chromium a new page is a new renderer process (with one
context per session, more than one: see ``CHROMIUM_ARGS`` in
``crawlers/download/browser.py``), the largest single cost of a rendered page. And it
routes every request of every page through the Playwright driver and
Python (``page.route("**")``) to set Scrapy's headers and to abort requests,
which also turns Chromium's cache off.

:class:`PageReusingHandler` keeps, per browser context, the pages it opened
and renders the next request in one that is free (``page.goto``):

* at most ``PLAYWRIGHT_MAX_PAGES_PER_CONTEXT`` renders run in a context at a
  time (scrapy-playwright's own per-context semaphore), so a context never
  holds more pages than that;
* a page is closed after ``LIVEFLEET_BROWSER_PAGE_USES`` renders, on any
  error, after ``LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS`` unused (a page left on
  a live room keeps running its scripts and sockets), and with its context
  or browser; a download always ends, and no page is held by a request, so
  nothing keeps the crawl from going idle;
* no route: the page sends the browser's own headers
  (``PLAYWRIGHT_PROCESS_REQUEST_HEADERS = None``, the only setting it serves),
  and images, media and fonts are failed inside the browser: each page's
  DevTools session pauses only requests of those resource types (CDP
  ``Fetch.enable`` with resource-type patterns), the rest go their way;
* every ``LIVEFLEET_BROWSER_GC_PAGES`` renders in a context, its renderer's
  JavaScript garbage is collected (a renderer that navigates page after page
  otherwise keeps the documents it left for a long while);
* ``playwright_page_init_callback`` runs once per page (on a new page), not
  per request;
* a request for one :func:`wait_for_js` waits and reads the page's HTML in
  one call.

Requests it cannot serve exactly as asked (a page the caller keeps,
``playwright_include_page``; a POST; Scrapy's headers on the page's requests;
another abort rule; page event handlers) take scrapy-playwright's own path,
unchanged. It reuses a few of scrapy-playwright's private helpers (pinned at
0.0.48).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from time import time
from typing import Any

from scrapy.crawler import Crawler
from scrapy.http import Headers, Request, Response
from scrapy.responsetypes import responsetypes
from scrapy_playwright._utils import (
    _encode_body,
    _get_page_content,
    _maybe_execute_page_init_callback,
    _set_redirect_meta,
)
from scrapy_playwright.handler import DEFAULT_CONTEXT_NAME, ScrapyPlaywrightDownloadHandler
from scrapy_playwright.page import PageMethod

from settings.defaults import value
from spiders.meta import KEEP_PAGE_META

_HEAVY = frozenset({"image", "media", "font"})
#: The same resource types as DevTools names them, for ``Fetch.enable`` patterns.
_HEAVY_CDP = ("Image", "Media", "Font")


def abort_heavy_resources(request: Any) -> bool:
    """``PLAYWRIGHT_ABORT_REQUEST``: skip images, media and fonts."""
    return request.resource_type in _HEAVY


@dataclass(eq=False)
class _PooledPage:
    """A page the handler keeps for the next render in its context."""

    page: Any
    context: Any
    session: Any  # the page's own DevTools session
    uses: int = 0
    idle_timer: asyncio.TimerHandle | None = None


class PageReusingHandler(ScrapyPlaywrightDownloadHandler):
    """scrapy-playwright's download handler, rendering in reused pages where it can."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        #: Renders per page before it is replaced (0: a new page per request, as scrapy-playwright does).
        self.page_uses = value(settings, "LIVEFLEET_BROWSER_PAGE_USES")
        self.page_idle_seconds = value(settings, "LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS")
        self.gc_every = value(settings, "LIVEFLEET_BROWSER_GC_PAGES")
        self._renders: dict[str, int] = {}  # context name -> pages rendered in it
        self._idle: dict[str, list[_PooledPage]] = {}  # context name -> free pages, most recently used last
        self._closing: set[asyncio.Task[None]] = set()

    async def _reserve(self, counted: bool = True) -> int:
        """Hook: a page is about to render (or open); returns a token for :meth:`_release`."""
        return 0

    def _release(self, token: int) -> None:
        """Hook: the render :meth:`_reserve` announced is over."""

    async def _close(self) -> None:
        self._forget_idle_pages()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await super()._close()

    def _reusable(self, request: Request) -> bool:
        """Whether a pooled page can render ``request`` exactly as asked."""
        meta = request.meta
        return (self.page_uses > 0 and self.process_request_headers is None
                and self.abort_request in (None, abort_heavy_resources)
                and request.method == "GET" and not request.body
                and not meta.get("playwright_include_page") and not meta.get(KEEP_PAGE_META)
                and meta.get("playwright_page") is None and not meta.get("playwright_page_event_handlers"))

    async def _download_request_with_retry(self, request: Request, spider: Any) -> Response:
        if not self._reusable(request):
            return await super()._download_request_with_retry(request=request, spider=spider)
        token = await self._reserve()
        try:
            return await self._render_pooled(request, spider)
        finally:
            self._release(token)

    async def _render_pooled(self, request: Request, spider: Any) -> Response:
        name = request.meta.setdefault("playwright_context", DEFAULT_CONTEXT_NAME)
        async with self.context_launch_lock:
            wrapper = self.context_wrappers.get(name)
            if wrapper is None:
                wrapper = await self._create_browser_context(
                    name=name, context_kwargs=request.meta.get("playwright_context_kwargs"), spider=spider)
        # The context's page semaphore bounds renders in progress, so the pool never holds
        # more pages than PLAYWRIGHT_MAX_PAGES_PER_CONTEXT.
        async with wrapper.semaphore:
            pooled = self._take_idle(name, wrapper.context)
            fresh = pooled is None
            if pooled is None:
                pooled = await self._open_page(wrapper.context)
            else:
                self.stats.inc_value("livefleet/browser/pages_reused")
            try:
                if fresh:  # the init callback prepares a page (and its context) once, not per render
                    await _maybe_execute_page_init_callback(page=pooled.page, request=request, context_name=name,
                                                            spider=spider)
                response = await self._render(pooled.page, request, spider)
            except BaseException:
                await self._discard(pooled)
                raise
            pooled.uses += 1
            await self._maybe_collect_garbage(name, pooled)
            if pooled.uses >= self.page_uses or self.context_wrappers.get(name) is not wrapper:
                await self._discard(pooled)
            else:
                self._park(name, pooled)
            return response

    async def _open_page(self, context: Any) -> _PooledPage:
        page = await context.new_page()
        try:
            if self.config.navigation_timeout_ms is not None:
                page.set_default_navigation_timeout(self.config.navigation_timeout_ms)
            session = await context.new_cdp_session(page)
            if self.abort_request is not None:
                await self._block_heavy(session)
        except BaseException:
            with contextlib.suppress(Exception):
                await page.close()
            raise
        self.stats.inc_value("playwright/page_count")
        self.stats.inc_value("livefleet/browser/pages_opened")
        return _PooledPage(page, context, session)

    async def _maybe_collect_garbage(self, name: str, pooled: _PooledPage) -> None:
        """Every ``LIVEFLEET_BROWSER_GC_PAGES`` renders in a context, collect its renderer's garbage.

        A renderer that navigates page after page keeps the documents it left in its
        JavaScript heap until V8 finds a reason to collect them, and V8 is in no hurry:
        over a few hundred room pages the renderers grew by ~1 MiB a page. The pages of
        a context share a renderer (``--renderer-process-limit``), so one collection a
        few pages keeps all of them small, for ~20 ms of that renderer's time.
        """
        self._renders[name] = count = self._renders.get(name, 0) + 1
        if self.gc_every > 0 and count % self.gc_every == 0:
            with contextlib.suppress(Exception):  # a page that died is dropped on its next use
                await pooled.session.send("HeapProfiler.collectGarbage")
                self.stats.inc_value("livefleet/browser/garbage_collections")

    async def _block_heavy(self, session: Any) -> None:
        """Fail the page's image, media and font requests inside the browser.

        Only requests of those resource types are paused (and reported to Python); every
        other request goes its way untouched, and Chromium's cache stays on.
        """

        async def fail(event: dict[str, Any]) -> None:
            self.stats.inc_value("livefleet/browser/heavy_blocked")
            with contextlib.suppress(Exception):  # the page may be gone already
                await session.send("Fetch.failRequest", {"requestId": event["requestId"],
                                                         "errorReason": "BlockedByClient"})

        session.on("Fetch.requestPaused", fail)
        await session.send("Fetch.enable", {"patterns": [{"resourceType": kind, "requestStage": "Request"}
                                                         for kind in _HEAVY_CDP]})

    async def _render(self, page: Any, request: Request, spider: Any) -> Response:
        """Navigate ``page`` to the request's URL, run its page methods, return the rendered HTML."""
        started = time()
        goto = dict(request.meta.get("playwright_page_goto_kwargs") or {})
        goto.pop("url", None)
        answer = await page.goto(request.url, **goto)
        headers, status = Headers(), 200
        if answer is not None:
            await _set_redirect_meta(request=request, response=answer)
            headers = Headers(await answer.all_headers())
            headers.pop("Content-Encoding", None)
            status = answer.status
        methods = request.meta.get("playwright_page_methods")
        if (isinstance(methods, (list, tuple)) and len(methods) == 1 and isinstance(methods[0], PageMethod)
                and methods[0].method is wait_for_js):  # what RenderMiddleware asks: wait and read in one call
            methods[0].result, text = await wait_for_js_then_content(page, *methods[0].args, **methods[0].kwargs)
        else:
            await self._apply_page_methods(page, request, spider)
            text = await _get_page_content(page=page, spider=spider, context_name=request.meta["playwright_context"],
                                           scrapy_request_url=request.url, scrapy_request_method=request.method)
        request.meta["download_latency"] = time() - started
        body, encoding = _encode_body(headers=headers, text=text)
        respcls = responsetypes.from_args(headers=headers, url=page.url, body=body)
        return respcls(url=page.url, status=status, headers=headers, body=body, request=request,
                       flags=["playwright"], encoding=encoding)

    # -- the pool -----------------------------------------------------------------------------
    def _take_idle(self, name: str, context: Any) -> _PooledPage | None:
        idle = self._idle.get(name)
        while idle:
            pooled = idle.pop()  # the most recently used: the others may idle out
            if pooled.idle_timer is not None:
                pooled.idle_timer.cancel()
                pooled.idle_timer = None
            if pooled.context is context and not pooled.page.is_closed():
                return pooled
            self._close_later(pooled)  # from a context that is gone, or its renderer crashed
        return None

    def _park(self, name: str, pooled: _PooledPage) -> None:
        loop = asyncio.get_running_loop()
        pooled.idle_timer = loop.call_later(self.page_idle_seconds, self._idle_out, name, pooled)
        self._idle.setdefault(name, []).append(pooled)

    def _idle_out(self, name: str, pooled: _PooledPage) -> None:
        """A page unused for ``LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS``: stop whatever it still runs."""
        idle = self._idle.get(name, [])
        if pooled in idle:
            idle.remove(pooled)
            pooled.idle_timer = None
            self._close_later(pooled)

    def _close_later(self, pooled: _PooledPage) -> None:
        task = asyncio.ensure_future(self._discard(pooled))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _discard(self, pooled: _PooledPage) -> None:
        if not pooled.page.is_closed():
            with contextlib.suppress(Exception):
                await pooled.page.close()
            self.stats.inc_value("playwright/page_count/closed")

    def _forget_idle_pages(self) -> None:
        """Drop the free pages (their browser or contexts are about to close, taking them along)."""
        for idle in self._idle.values():
            for pooled in idle:
                if pooled.idle_timer is not None:
                    pooled.idle_timer.cancel()
        self._idle.clear()


#: Waits inside the page until ``__EXPRESSION__`` is truthy (checked now, then every 25 ms);
#: with ``content`` true, resolves to ``[value, the page's HTML]`` at that moment.
_WAIT_JS = """([timeout, content]) => new Promise((resolve, reject) => {
  const deadline = Date.now() + timeout;
  const check = () => {
    let value;
    try { value = (__EXPRESSION__); } catch (error) { value = undefined; }
    if (value) {
      if (typeof value === "object" || typeof value === "function") value = true;
      if (!content) return resolve(value);
      const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : "";
      resolve([value, doctype + (document.documentElement ? document.documentElement.outerHTML : "")]);
    } else if (Date.now() > deadline) {
      reject(new Error("Timeout " + timeout + "ms exceeded waiting for " + __SOURCE__));
    } else {
      setTimeout(check, 25);
    }
  };
  check();
})"""


def _wait_js(expression: str) -> str:
    return _WAIT_JS.replace("__SOURCE__", json.dumps(expression)).replace("__EXPRESSION__", expression)


async def wait_for_js(page: Any, expression: str, timeout: float = 20_000) -> Any:
    """PageMethod: wait until the JS ``expression`` is truthy in the page; returns its value.

    What ``page.wait_for_function`` does, at less cost: Playwright polls on
    every animation frame by default, which keeps the page producing frames
    (and the browser compositing them) while its script works; this is one
    call that resolves inside the page, checking on a 25 ms timer.
    """
    return await page.evaluate(_wait_js(expression), [timeout, False])


async def wait_for_js_then_content(page: Any, expression: str, timeout: float = 20_000) -> tuple[Any, str]:
    """``wait_for_js`` and then ``page.content()``, in one call (the handler's fast path uses it)."""
    value, html = await page.evaluate(_wait_js(expression), [timeout, True])
    return value, html
