"""Rendering on request: ``meta["livefleet_render"]`` becomes scrapy-playwright meta at download time.

A request that needs the browser says so with a plain JSON description (it may
wait in Redis and run on any worker); the worker that downloads it builds the
live objects scrapy-playwright wants. Everything else goes through plain HTTP.
"""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy_playwright.page import PageMethod

from crawlers.download.page_pool import wait_for_js
from spiders.meta import RENDER_META

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
        render = request.meta.get(RENDER_META)
        if not render:
            return None
        request.meta["playwright"] = True
        if render.get("wait_for"):
            request.meta["playwright_page_methods"] = [
                PageMethod(wait_for_js, render["wait_for"], timeout=render.get("timeout_ms", 20_000))]
        if render.get("warm_url"):
            request.meta["playwright_page_init_callback"] = "crawlers.download.render.warm_context"
        return None


async def warm_context(page: Any, request: Any) -> None:
    """``playwright_page_init_callback``: visit ``warm_url`` first if the context lacks its cookie.

    A browser context is a session; a new one (or one recreated after a browser
    recycle) has none of the cookies the site hands out on a first visit.
    """
    render = request.meta.get(RENDER_META) or {}
    name = render.get("warm_cookie")
    cookies = await page.context.cookies()
    if name and any(cookie["name"] == name for cookie in cookies):
        return
    await page.goto(render["warm_url"], wait_until="domcontentloaded")
