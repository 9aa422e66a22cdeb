"""The shared seen-set, on scrapy-redis's ``RFPDupeFilter``.

Differences from scrapy-redis: fingerprints come from the crawler's own
request fingerprinter (so they agree with Scrapy's), the key carries our
prefix, and ``close()`` never deletes the set — one worker stopping must not
make the rest of the fleet forget what it has seen.
"""

from __future__ import annotations

from typing import Any

import redis
from scrapy import Request
from scrapy_redis.dupefilter import RFPDupeFilter


class FleetDupeFilter(RFPDupeFilter):
    """Redis seen-set of request fingerprints shared by all workers of a spider."""

    def __init__(self, server: redis.Redis, key: str, fingerprinter: Any, debug: bool = False) -> None:
        super().__init__(server, key=key, debug=debug)
        self.fingerprinter = fingerprinter

    def request_fingerprint(self, request: Request) -> str:
        return self.fingerprinter.fingerprint(request).hex()

    def close(self, reason: str = "") -> None:
        """Keep the set: it belongs to the fleet, not to this worker."""
