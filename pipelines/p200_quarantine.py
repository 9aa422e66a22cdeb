"""Route what could not be used to the ``quarantine`` collection.

Quarantine records come from spiders (a payload that can never parse, with
its raw bytes) and from the validate stage (a record that broke the
contract). They are expected: logged at INFO once per reason kind, then only
counted, and handed to the store, which writes them to ``quarantine``.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from scrapy.crawler import Crawler

from models.entities import QuarantineRecord

logger = logging.getLogger(__name__)


class QuarantinePipeline:
    """Counts and logs quarantine records; the store pipeline writes them."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._logged: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, QuarantineRecord):
            return item
        kind = item.reason.split(":", 1)[0]
        self.crawler.stats.inc_value(f"livefleet/quarantine/{item.platform or 'unknown'}")
        self.crawler.stats.inc_value(f"livefleet/quarantine/reason/{kind}")
        if kind not in self._logged:
            self._logged.add(kind)
            logger.info("Quarantined %s: %s (further %s are only counted)", item.url, item.reason, kind)
        return item
