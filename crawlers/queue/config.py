"""The queue scheduler's configuration, read once from the Scrapy settings.

Every value comes from ``settings.defaults.value`` (where each setting's default
and meaning live), so there is no second default here to drift from the
documented one; values are checked where a bad one would misbehave quietly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from crawlers.redis.connection import redis_url_from_settings
from settings.defaults import value


@dataclass(frozen=True)
class SchedulerConfig:
    """What :class:`crawlers.queue.scheduler.RedisScheduler` needs to know, frozen."""

    #: ``LIVEFLEET_REDIS_URL``: the fleet's Redis (``NotConfigured`` when unset).
    redis_url: str
    #: ``LIVEFLEET_KEY_PREFIX``: prefix of every Redis key.
    prefix: str
    #: ``LIVEFLEET_PREFETCH``: leased requests kept ready (at least 1).
    prefetch: int
    #: ``LIVEFLEET_SEEN_TTL_SECONDS``: life of a crawl's seen-set (0: no expiry).
    seen_ttl: int
    #: ``LIVEFLEET_LEASE_SECONDS``: how long a lease lasts before another worker gets the request.
    lease_seconds: float
    #: ``LIVEFLEET_MAX_FAILURES``: failed deliveries before a dead letter.
    max_failures: int
    #: ``LIVEFLEET_CRAWL``: the crawl of requests that name none.
    crawl: str
    #: ``LIVEFLEET_BLOOM_CAPACITY``: fingerprints per crawl for a Bloom filter (0: a plain set).
    bloom_capacity: int
    #: ``LIVEFLEET_BLOOM_ERROR_RATE``: the Bloom filter's false-positive rate.
    bloom_error_rate: float
    #: ``LIVEFLEET_QUEUE_BACKGROUND``: Redis traffic on a background thread.
    background: bool
    #: ``LIVEFLEET_QUEUE_POLL_SECONDS``: first poll interval of an idle queue thread.
    poll: float
    #: ``LIVEFLEET_QUEUE_POLL_MAX_SECONDS``: the interval it backs off to.
    poll_max: float

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise ValueError(f"LIVEFLEET_LEASE_SECONDS must be positive, not {self.lease_seconds}")
        if self.poll <= 0 or self.poll_max < self.poll:
            raise ValueError(f"need 0 < LIVEFLEET_QUEUE_POLL_SECONDS ({self.poll}) <= "
                             f"LIVEFLEET_QUEUE_POLL_MAX_SECONDS ({self.poll_max})")
        if not 0 < self.bloom_error_rate < 1:
            raise ValueError(f"LIVEFLEET_BLOOM_ERROR_RATE must be between 0 and 1, not {self.bloom_error_rate}")

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        """Read every value through ``settings.defaults.value`` (defaults from ``settings/defaults.py``)."""
        return cls(
            redis_url=redis_url_from_settings(settings),
            prefix=value(settings, "LIVEFLEET_KEY_PREFIX"),
            prefetch=max(1, value(settings, "LIVEFLEET_PREFETCH")),
            seen_ttl=value(settings, "LIVEFLEET_SEEN_TTL_SECONDS"),
            lease_seconds=value(settings, "LIVEFLEET_LEASE_SECONDS"),
            max_failures=value(settings, "LIVEFLEET_MAX_FAILURES"),
            crawl=value(settings, "LIVEFLEET_CRAWL"),
            bloom_capacity=value(settings, "LIVEFLEET_BLOOM_CAPACITY"),
            bloom_error_rate=value(settings, "LIVEFLEET_BLOOM_ERROR_RATE"),
            background=value(settings, "LIVEFLEET_QUEUE_BACKGROUND"),
            poll=value(settings, "LIVEFLEET_QUEUE_POLL_SECONDS"),
            poll_max=value(settings, "LIVEFLEET_QUEUE_POLL_MAX_SECONDS"),
        )
