"""Spider middleware: what a leased request's callback output inherits, and what it must not.

* A new request inherits the crawl (dedup namespace) of the page it came from.
* Only a retry of the same page (same URL) carries the page's lease, so the
  scheduler hands the lease on to it; any other request that copied the
  page's meta wholesale has the lease removed (it gets its own when taken).
"""

from __future__ import annotations

from scrapy import Request
from scrapy.http import Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawlers.queue.queue import CRAWL_META, LEASE_META


class LeaseSpiderMiddleware(BaseSpiderMiddleware):
    """Sets ``meta["livefleet_crawl"]`` on new requests and keeps leases where they belong."""

    def get_processed_request(self, request: Request, response: Response | None) -> Request | None:
        if response is None:
            return request
        parent = response.meta
        crawl = parent.get(CRAWL_META)
        if crawl and CRAWL_META not in request.meta:
            request.meta[CRAWL_META] = crawl
        lease = request.meta.get(LEASE_META)
        if lease is not None and (lease != parent.get(LEASE_META) or request.url != response.request.url):
            del request.meta[LEASE_META]
        return request
