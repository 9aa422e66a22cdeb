"""Sign Bilibili WBI requests when they are downloaded, with keys read from the nav endpoint.

A request is built once, unsigned, and may wait in the shared queue and run on any worker;
a signature carries ``wts`` (unix seconds) and the site refuses a stale one, so it is made
here, just before sending (``spiders/bilibili/wbi.py``). The keys come from
``x/web-interface/nav``, read once per worker (logged out it answers -101 and still
carries them) and read again after :attr:`WbiSignMiddleware.max_key_age` seconds (they
rotate daily) or as soon as a signed request is answered -352 (risk control: the keys may
have rotated under us). The -352 itself is a block to the parser (``detect.BLOCK_CODES``),
so the request is retried and signed again with the new keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from spiders.bilibili import wbi
from spiders.meta import PINNED_META
from spiders.meta import WBI_META as WBI

logger = logging.getLogger(__name__)

NAV_PATH = "/x/web-interface/nav"


class WbiSignMiddleware:
    """Downloader middleware: adds ``w_rid``/``wts`` to requests marked ``meta[WBI]``."""

    #: Keys older than this are read again (the site rotates them about daily).
    max_key_age: float = 3 * 3600.0

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._keys: wbi.WbiKeys | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.clock = time.time  # unix seconds, for wts (tests replace it)
        self.monotonic = time.monotonic

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        if not request.meta.get(WBI):
            return None
        try:
            keys = await self.keys()
        except Exception as exc:  # nav unreachable or changed: sent unsigned, the -352 is retried
            logger.warning("Could not read the Bilibili WBI keys (%s): %s goes unsigned", exc, request.url)
            self.crawler.stats.inc_value("livefleet/bilibili/wbi_keys_failed")
            return None
        # This download only: a new Request returned from here would go back to the scheduler.
        request._set_url(wbi.sign_url(request.url, keys, int(self.clock())))
        self.crawler.stats.inc_value("livefleet/bilibili/wbi_signed")
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get(WBI) and b'"code":-352' in response.body[:200].replace(b" ", b""):
            self.forget(self._keys)
        return response

    def forget(self, keys: wbi.WbiKeys | None) -> None:
        """Drop ``keys`` (if still current): the next signed request reads nav first."""
        if keys is not None and self._keys == keys:
            logger.info("Bilibili answered -352 to a WBI-signed request: reading the keys again")
            self.crawler.stats.inc_value("livefleet/bilibili/wbi_keys_dropped")
            self._keys = None

    async def keys(self) -> wbi.WbiKeys:
        async with self._lock:  # one nav request for all the requests waiting for keys
            if self._keys is None or self.monotonic() - self._read_at > self.max_key_age:
                self._keys = await self._read_keys()
                self._read_at = self.monotonic()
            return self._keys

    async def _read_keys(self) -> wbi.WbiKeys:
        spider = self.crawler.spider
        url = spider.url(spider.nav_host, NAV_PATH)  # type: ignore[attr-defined]
        request = Request(url, dont_filter=True, meta={PINNED_META: True, "download_slot": spider.name,
                                                        "handle_httpstatus_all": True})
        response = await self.crawler.engine.download_async(request)
        keys = wbi.keys_from_nav(response.body)
        self.crawler.stats.inc_value("livefleet/bilibili/wbi_keys_read")
        return keys
