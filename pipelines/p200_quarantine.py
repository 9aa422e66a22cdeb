"""Route what could not be used to the ``quarantine`` collection.

Quarantine records come from spiders (a payload that can never parse, with
its raw bytes) and from the validate stage (a record that broke the
contract). They are expected: logged at INFO once per reason kind, then only
counted, and handed to the store, which writes them to ``quarantine``.

Every record leaves here bounded (:meth:`QuarantineRecord.bounded`): at most
``LIVEFLEET_QUARANTINE_PAYLOAD_BYTES`` of its payload, with the whole payload's
size and sha256, and text any store takes. An unbounded body (60 MB of broken
JSON) would otherwise be spooled whole while MongoDB is away and then refused
by it (``DocumentTooLarge``), blocking the spool behind it.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from scrapy.crawler import Crawler

from models.entities import QuarantineRecord
from settings.defaults import value

logger = logging.getLogger(__name__)


class QuarantinePipeline:
    """Counts and logs quarantine records; the store pipeline writes them."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._logged: set[str] = set()
        self.payload_bytes = int(value(crawler.settings, "LIVEFLEET_QUARANTINE_PAYLOAD_BYTES"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, QuarantineRecord):
            return item
        item = item.bounded(self.payload_bytes)
        if item.payload_truncated:
            self.crawler.stats.inc_value("livefleet/quarantine/truncated")
        kind = item.reason.split(":", 1)[0]
        self.crawler.stats.inc_value(f"livefleet/quarantine/{item.platform or 'unknown'}")
        self.crawler.stats.inc_value(f"livefleet/quarantine/reason/{kind}")
        if kind not in self._logged:
            self._logged.add(kind)
            logger.info("Quarantined %s: %s (further %s are only counted)", item.url, item.reason, kind)
        return item
