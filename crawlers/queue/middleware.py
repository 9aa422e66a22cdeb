"""Spider middleware: what a leased request's callback output inherits, and what it must not.

* A new request inherits the crawl (dedup namespace) of the page it came from.
* A new request inherits the monitor its page was fetched for, and every
  record the callback yields carries the page's origin (``crawlers.queue.origin``).
* A new request inherits its page's priority offset (a campaign's priority,
  ``livefleet_priority``), added once to its own priority.
* Only a retry of the same page (same URL) carries the page's lease, so the
  scheduler hands the lease on to it; any other request that copied the
  page's meta wholesale has the lease removed (it gets its own when taken).
"""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.http import Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawlers.queue.origin import origin_from_meta, set_origin
from spiders.meta import CRAWL_META, LEASE_META, MONITOR_META, PRIORITY_META


class LeaseSpiderMiddleware(BaseSpiderMiddleware):
    """Sets ``meta["livefleet_crawl"]`` on new requests and keeps leases where they belong."""

    def get_processed_request(self, request: Request, response: Response | None) -> Request | None:
        if response is None:
            return request
        parent = response.meta
        for key in (CRAWL_META, MONITOR_META):
            value = parent.get(key)
            if value and key not in request.meta:
                request.meta[key] = value
        offset = parent.get(PRIORITY_META)
        if offset and PRIORITY_META not in request.meta:  # the seed's priority offset holds for the whole crawl
            request.meta[PRIORITY_META] = offset
            request.priority += int(offset)
        lease = request.meta.get(LEASE_META)
        if lease is not None and (lease != parent.get(LEASE_META) or request.url != response.request.url):
            del request.meta[LEASE_META]
        return request

    def get_processed_item(self, item: Any, response: Response | None) -> Any:
        if response is not None:
            set_origin(item, origin_from_meta(response.meta))
        return item
