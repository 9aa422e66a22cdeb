"""A tiny Scrapy extension that timestamps the steady part of a crawl.

Throughput is ``items / (last item time - first page response time)``, so it
leaves out what is not crawling: interpreter and reactor start-up, opening the
store, fetching the session cookie, and the idle wait before a worker closes
itself (``LIVEFLEET_IDLE_CLOSE_SECONDS``). The times are ``time.monotonic()``
values (seconds, system-wide clock) written to the crawler's stats at close:

* ``bench/first_response``: the first response to a *page* request (one with
  ``meta["livefleet"]``, i.e. not the ``buvid3`` cookie fetched at start-up);
* ``bench/last_item``: the last ``item_scraped`` signal. In the full stack an
  item is scraped only once the store has written its batch, so this includes
  the final flush;
* ``bench/items``: how many ``item_scraped`` signals were seen.
"""

from __future__ import annotations

import time
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response

#: The stats keys this extension writes.
FIRST_RESPONSE = "bench/first_response"
LAST_ITEM = "bench/last_item"
ITEMS = "bench/items"


class TimingExtension:
    """Records the monotonic time of the first page response and of the last scraped item."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.first_response: float | None = None
        self.last_item: float | None = None
        self.items = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        ext = cls(crawler)
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def response_received(self, response: Response, request: Request, **_: Any) -> None:
        if self.first_response is None and "livefleet" in request.meta:
            self.first_response = time.monotonic()

    def item_scraped(self, **_: Any) -> None:
        self.last_item = time.monotonic()
        self.items += 1

    def spider_closed(self, spider: Spider) -> None:
        stats = self.crawler.stats
        assert stats is not None
        if self.first_response is not None:
            stats.set_value(FIRST_RESPONSE, self.first_response)
        if self.last_item is not None:
            stats.set_value(LAST_ITEM, self.last_item)
        stats.set_value(ITEMS, self.items)
