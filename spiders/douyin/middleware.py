"""Sign Douyin web API requests when they are downloaded, with the page's own script.

Douyin's web APIs (room enter, shelf, product detail, profile, category lists)
refuse requests without an ``a_bogus`` computed over the query string (and the
body), the User-Agent and the time. livefleet does not reimplement it: a page
of the site stays open in the browser (the *signer page*), and each request
marked ``meta["douyin_sign"] = True`` is signed by calling the page's own
function, the way the site's scripts call it
(``window.bdms.init._v[2].p[42].apply(null, [0, 1, 8, query, body, ua])``).
Plain HTTP then sends the request with the browser's User-Agent, so only one
page in the whole crawl needs a browser for signing.

Signing happens at download time (a signature is only valid for minutes, and
a request may wait in the shared queue and run on another worker). A closed
signer page (the browser was recycled) is opened again on the next request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self
from urllib.parse import quote

from scrapy import Request
from scrapy.crawler import Crawler

from spiders.meta import KEEP_PAGE_META, PINNED_META

logger = logging.getLogger(__name__)

#: ``meta[SIGN] = True`` marks a request to sign.
SIGN = "douyin_sign"
_SIGN_JS = "([q, b]) => window.bdms.init._v[2].p[42].apply(null, [0, 1, 8, q, b, navigator.userAgent])"


class PageSignMiddleware:
    """Downloader middleware: appends ``a_bogus`` computed by the signer page."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._page: Any = None
        self.user_agent: str | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        if not request.meta.get(SIGN):
            return None
        base, _, query = request.url.partition("?")
        query = "&".join(p for p in query.split("&") if p and not p.startswith("a_bogus="))
        body = request.body.decode("utf-8", "replace")
        signature = await self.sign(query, body)
        request._set_url(f"{base}?{query}&a_bogus={quote(signature, safe='')}")  # this download only
        request.headers["User-Agent"] = self.user_agent or ""
        self.crawler.stats.inc_value("livefleet/douyin/signed")
        return None

    async def sign(self, query: str, body: str = "") -> str:
        for attempt in (1, 2):
            page = await self._signer_page()
            try:
                return str(await page.evaluate(_SIGN_JS, [query, body]))
            except Exception as exc:  # the page died with a recycled browser: open a new one
                if attempt == 2:
                    raise
                if self._page is page:  # concurrent signers must not drop a page just reopened
                    logger.info("Signer page lost (%s); opening a new one", exc)
                    self._page = None
        raise AssertionError("unreachable")

    async def _signer_page(self) -> Any:
        async with self._lock:
            if self._page is None or self._page.is_closed():
                spider = self.crawler.spider
                request = Request(
                    spider.signer_page_url(),  # type: ignore[attr-defined]
                    dont_filter=True,
                    meta={"playwright": True, "playwright_include_page": True, KEEP_PAGE_META: True,
                          PINNED_META: True, "playwright_context": "douyin-signer",
                          "download_slot": "douyin"},
                )
                response = await self.crawler.engine.download_async(request)
                self._page = response.meta["playwright_page"]
                self.user_agent = await self._page.evaluate("navigator.userAgent")
                self.crawler.stats.inc_value("livefleet/douyin/signer_pages")
            return self._page
