"""SchedulerConfig: the queue scheduler's settings, read once, defaults only from settings/defaults.py."""

from __future__ import annotations

import dataclasses

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings

from crawlers.queue.config import SchedulerConfig
from settings.defaults import DEFAULTS

URL = "redis://127.0.0.1:6399/0"


def test_defaults_come_from_settings_defaults():
    config = SchedulerConfig.from_settings(Settings({"LIVEFLEET_REDIS_URL": URL}))
    assert config == SchedulerConfig(
        redis_url=URL, prefix=DEFAULTS["LIVEFLEET_KEY_PREFIX"], prefetch=DEFAULTS["LIVEFLEET_PREFETCH"],
        seen_ttl=DEFAULTS["LIVEFLEET_SEEN_TTL_SECONDS"], lease_seconds=DEFAULTS["LIVEFLEET_LEASE_SECONDS"],
        max_failures=DEFAULTS["LIVEFLEET_MAX_FAILURES"], crawl=DEFAULTS["LIVEFLEET_CRAWL"],
        bloom_capacity=DEFAULTS["LIVEFLEET_BLOOM_CAPACITY"], bloom_error_rate=DEFAULTS["LIVEFLEET_BLOOM_ERROR_RATE"],
        background=DEFAULTS["LIVEFLEET_QUEUE_BACKGROUND"], poll=DEFAULTS["LIVEFLEET_QUEUE_POLL_SECONDS"],
        poll_max=DEFAULTS["LIVEFLEET_QUEUE_POLL_MAX_SECONDS"])
    assert (config.poll, config.poll_max) == (0.05, 1.0)  # today's values, now settings


def test_values_are_read_typed_from_the_settings():
    config = SchedulerConfig.from_settings(Settings({
        "LIVEFLEET_REDIS_URL": URL, "LIVEFLEET_KEY_PREFIX": "lf", "LIVEFLEET_PREFETCH": "0",
        "LIVEFLEET_SEEN_TTL_SECONDS": "60", "LIVEFLEET_LEASE_SECONDS": "2.5", "LIVEFLEET_MAX_FAILURES": "5",
        "LIVEFLEET_CRAWL": "camp", "LIVEFLEET_BLOOM_CAPACITY": "1000", "LIVEFLEET_BLOOM_ERROR_RATE": "0.01",
        "LIVEFLEET_QUEUE_BACKGROUND": "false", "LIVEFLEET_QUEUE_POLL_SECONDS": "0.2",
        "LIVEFLEET_QUEUE_POLL_MAX_SECONDS": "3"}))
    assert config.prefix == "lf" and config.prefetch == 1  # at least one request is prefetched
    assert (config.seen_ttl, config.lease_seconds, config.max_failures) == (60, 2.5, 5)
    assert (config.crawl, config.bloom_capacity, config.bloom_error_rate) == ("camp", 1000, 0.01)
    assert config.background is False and (config.poll, config.poll_max) == (0.2, 3.0)


def test_it_is_frozen():
    config = SchedulerConfig.from_settings(Settings({"LIVEFLEET_REDIS_URL": URL}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.prefetch = 3  # type: ignore[misc]


def test_no_redis_url_is_not_configured():
    with pytest.raises(NotConfigured, match="LIVEFLEET_REDIS_URL"):
        SchedulerConfig.from_settings(Settings())


@pytest.mark.parametrize("name, bad", [("LIVEFLEET_LEASE_SECONDS", 0), ("LIVEFLEET_QUEUE_POLL_SECONDS", 0),
                                       ("LIVEFLEET_QUEUE_POLL_MAX_SECONDS", 0.01),
                                       ("LIVEFLEET_BLOOM_ERROR_RATE", 1.5)])
def test_bad_values_are_refused(name, bad):
    with pytest.raises(ValueError, match=name):
        SchedulerConfig.from_settings(Settings({"LIVEFLEET_REDIS_URL": URL, name: bad}))


def test_the_queue_download_redis_and_services_code_has_no_fallback_literals():
    # Every LIVEFLEET_* read goes through settings.defaults.value: no settings.getint("LIVEFLEET_X", 8).
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\.get(?:int|float|bool|dict|list)?\(\s*[\"']LIVEFLEET_")
    offences = [f"{path.relative_to(root)}:{n}: {line.strip()}"
                for folder in ("crawlers/queue", "crawlers/redis", "crawlers/download", "crawlers/services")
                for path in sorted((root / folder).rglob("*.py"))
                for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not offences, "\n".join(offences)
