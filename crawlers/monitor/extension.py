"""A Scrapy extension in every worker: serve the due monitors of this worker's spider.

Every ``LIVEFLEET_MONITOR_POLL_SECONDS`` the extension claims the due ticks of
its platform's monitors (:meth:`Registry.claim`, one Lua script: any worker
can serve any monitor, each tick is claimed once) and schedules each tick's
requests: the spider's own requests for the monitor's seed, with
``dont_filter`` (a room is fetched again each tick), the monitor's id and tick
in their meta, and their priority raised by ``LIVEFLEET_MONITOR_PRIORITY`` so a
tick goes before the bulk of a campaign. They go through the shared queue like
any request, so the tick is served by whichever worker of the spider takes it.

A late tick (claimed more than ``LIVEFLEET_MONITOR_LATE_FRACTION`` of its
interval after it was due, or due while the previous one was unanswered) is
logged as a warning and counted (``livefleet/monitor/late``); the registry
keeps the count and the reason for ``livefleet monitor list``.

The claim runs on a thread, never on the reactor: Redis round trips do not
stall the crawl, and a slow Redis only delays the next claim.
"""

from __future__ import annotations

import logging
from typing import Any, Self

import redis
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from twisted.internet import task, threads

from crawlers.monitor.middleware import registry_from_settings
from crawlers.monitor.registry import Registry
from crawlers.queue.feeder import seed_requests
from settings.defaults import value
from spiders.meta import MONITOR_META, ROOT_META, TICK_META

logger = logging.getLogger(__name__)


class MonitorServer:
    """Claims the due ticks of the spider's platform and schedules their requests.

    Settings (their defaults: ``settings/defaults.py``): ``LIVEFLEET_MONITORS_ENABLED``,
    ``LIVEFLEET_MONITOR_POLL_SECONDS`` (how often due ticks are looked for),
    ``LIVEFLEET_MONITOR_LATE_FRACTION`` (a tick claimed later than this share of its interval is late),
    ``LIVEFLEET_MONITOR_PRIORITY`` (added to the priority of a tick's requests),
    ``LIVEFLEET_MONITOR_CLAIM_BATCH`` (ticks claimed at once).
    """

    def __init__(self, crawler: Crawler, registry: Registry, poll: float, late_fraction: float, priority: int,
                 batch: int) -> None:
        self.crawler = crawler
        self.registry = registry
        self.poll = poll
        self.late_fraction = late_fraction
        self.priority = priority
        self.batch = batch
        self._loop: task.LoopingCall | None = None
        self._busy = False
        self._failing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        ext = cls(crawler, registry_from_settings(settings),
                  poll=value(settings, "LIVEFLEET_MONITOR_POLL_SECONDS"),
                  late_fraction=value(settings, "LIVEFLEET_MONITOR_LATE_FRACTION"),
                  priority=value(settings, "LIVEFLEET_MONITOR_PRIORITY"),
                  batch=value(settings, "LIVEFLEET_MONITOR_CLAIM_BATCH"))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        platform = getattr(spider, "platform", "")
        if not platform or not hasattr(spider, "requests_from_seed"):
            return  # not a platform spider: nothing to monitor
        self._loop = task.LoopingCall(self._tick, spider, platform)
        self._loop.start(self.poll, now=True)

    def spider_closed(self, spider: Spider) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self, spider: Spider, platform: str) -> None:
        if self._busy:  # the last claim is still out (Redis slow): do not pile up threads
            return
        self._busy = True
        d = threads.deferToThread(self.registry.claim, platform, self.batch, self.late_fraction)
        d.addCallbacks(self._claimed, self._claim_failed, callbackArgs=(spider,))
        d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self._busy = False

    def _claim_failed(self, failure: Any) -> None:
        if failure.check(redis.RedisError):
            if not self._failing:  # a Redis outage is logged once, then counted
                logger.warning("Claiming monitor ticks failed: %s", failure.getErrorMessage())
            self._failing = True
            self.crawler.stats.inc_value("livefleet/monitor/claim_failed")
            return
        logger.error("Monitor extension failed: %s", failure.getTraceback())

    def _claimed(self, claims: list[dict[str, Any]], spider: Spider) -> None:
        self._failing = False
        stats = self.crawler.stats
        for claim in claims:
            monitor = str(claim.get("id"))
            if claim.get("expired"):
                logger.info("Monitor %s ran out of time: stopped", monitor)
                stats.inc_value("livefleet/monitor/expired")
                continue
            if claim.get("reason"):
                stats.inc_value("livefleet/monitor/late")
                logger.warning("Monitor %s is late (%s; %d slot(s) skipped)%s", monitor, claim["reason"],
                               int(claim.get("skipped") or 0), "" if claim.get("send") else ": tick skipped")
            if claim.get("send"):
                self._schedule(spider, monitor, int(claim["tick"]), claim.get("seed"))

    def _schedule(self, spider: Spider, monitor: str, tick: int, seed: Any) -> None:
        engine = self.crawler.engine
        if engine is None:
            return
        if not isinstance(seed, dict):
            definition = self.registry.definition(monitor) or {}
            seed = definition.get("seed")
        try:
            requests = seed_requests(spider, seed)
        except Exception as exc:  # a seed the spider no longer takes: reported, the monitor goes on
            logger.error("Monitor %s: its seed %r was refused by %s: %s", monitor, seed, spider.name, exc)
            self.crawler.stats.inc_value("livefleet/monitor/bad_seed")
            return
        for request in requests:
            request = request.replace(dont_filter=True, priority=request.priority + self.priority)
            request.meta.update({MONITOR_META: monitor, TICK_META: tick, ROOT_META: True})
            engine.crawl(request)
        self.crawler.stats.inc_value("livefleet/monitor/ticks")

