"""Where a record came from: the crawl (campaign run) and the monitor that asked for its page.

A request carries them in its meta (``livefleet_crawl``, ``livefleet_monitor``);
:class:`crawlers.queue.middleware.LeaseSpiderMiddleware` copies them from a
page's request onto every record its callback yields, so later stages (the
store's feed publisher, per-crawl counters, per-campaign and per-monitor
webhooks) know whom a stored change concerns. The origin is process-local: it
is not stored in MongoDB and a record replayed from the spool has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spiders.meta import CRAWL_META, MONITOR_META

#: The meta keys that make a record's origin, and their names in it.
ORIGIN_META = {CRAWL_META: "crawl", MONITOR_META: "monitor"}


def origin_from_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    """``{"crawl": .., "monitor": ..}`` from a request's meta (keys left out when unset)."""
    return {name: str(meta[key]) for key, name in ORIGIN_META.items() if meta.get(key)}


def set_origin(record: Any, origin: Mapping[str, str]) -> None:
    """Attach ``origin`` to a record (a :class:`models.entities.Record`; anything else is left alone)."""
    if origin and hasattr(record, "_origin"):
        record._origin = dict(origin)


def origin_of(record: Any) -> dict[str, str]:
    """The origin attached to ``record`` (empty when it has none)."""
    return dict(getattr(record, "_origin", None) or {})
