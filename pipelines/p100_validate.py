"""Validate every item against the data contract before anything is stored.

Spiders yield pydantic records, already typed; this stage checks what a type
cannot (the platform is the spider's own, the record was fetched, not in the
future) and accepts plain ``{"type": ..., ...}`` dicts from other sources.
An item that fails becomes a :class:`QuarantineRecord` carrying the item and
the reason (error class, field path, message), so the crawl goes on and
nothing is lost.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import ValidationError
from scrapy.crawler import Crawler

from models.entities import QuarantineRecord, Record
from pipelines.store.ops import record_from_json

logger = logging.getLogger(__name__)

#: How far ahead of our clock a platform timestamp may be (clock skew).
_FUTURE_SLACK = timedelta(minutes=10)


class ValidatePipeline:
    """Checks records; turns the ones that fail into quarantine records."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, QuarantineRecord):
            return item
        spider = self.crawler.spider
        try:
            record = item if isinstance(item, Record) else record_from_json(dict(item))
            problem = contract_problem(record, getattr(spider, "platform", None))
        except (ValidationError, ValueError, TypeError) as exc:
            problem = _reason(exc)
            record = None
        if problem is None:
            self.crawler.stats.inc_value(f"livefleet/validate/ok/{record.kind}")
            return record
        self.crawler.stats.inc_value("livefleet/validate/failed")
        payload = item.to_json_dict() if isinstance(item, Record) else item
        return QuarantineRecord(
            platform=getattr(spider, "platform", None),
            spider=getattr(spider, "name", None),
            url=getattr(record, "source_url", None) or (item.get("source_url") if isinstance(item, dict) else None),
            reason=problem,
            payload=json.dumps(payload, ensure_ascii=False, default=str),
            fetched_at=getattr(record, "fetched_at", None),
            quarantined_at=datetime.now(UTC),
        )


def contract_problem(record: Record, platform: str | None) -> str | None:
    """What is wrong with ``record`` beyond its types, or None."""
    if platform and record.platform != platform:
        return f"ContractError: platform: {record.platform!r} from a {platform} spider"
    now = datetime.now(UTC) + _FUTURE_SLACK
    for name in ("fetched_at", "captured_at"):
        value = getattr(record, name, None)
        if value is not None and value > now:
            return f"ContractError: {name}: {value.isoformat()} is in the future"
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "(root)"
        return f"ValidationError: {path}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"
