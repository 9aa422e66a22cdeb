"""Which requests the Redis scheduler keeps in its own process (``crawlers.queue.scheduler.local_reason``).

The scheduler itself, on a real Redis, is in ``tests/test_integration_scrapy_commands.py``.
"""

from __future__ import annotations

import scrapy
from scrapy.spiders import Spider
from twisted.internet.defer import Deferred

from crawlers.queue.scheduler import local_reason


class _Spider(Spider):
    name = "localunit"

    def parse(self, response):  # pragma: no cover - referenced only
        pass

    def parse_page(self, response):  # pragma: no cover - referenced only
        pass

    def on_error(self, failure):  # pragma: no cover - referenced only
        pass

    #: The same function under a second name: ``to_dict`` finds it by either.
    alias = parse_page


class _NoParse(Spider):
    name = "noparse"

    def parse_page(self, response):  # pragma: no cover - referenced only
        pass


class _Other(Spider):
    name = "other"

    def parse_page(self, response):  # pragma: no cover - referenced only
        pass


def test_requests_other_workers_can_rebuild_go_to_the_fleet():
    spider = _Spider()
    for request in (scrapy.Request("https://example.test/a"),
                    scrapy.Request("https://example.test/b", callback=spider.parse_page, errback=spider.on_error),
                    scrapy.Request("https://example.test/c", callback=spider.alias),
                    scrapy.Request("https://example.test/d", callback=_Spider().parse_page)):  # another instance
        assert local_reason(request, spider) is None
        request.to_dict(spider=spider)  # what the queue does with it: no error either
    assert local_reason(scrapy.Request("https://example.test/e", callback=_NoParse().parse_page), _NoParse()) is None
    # No callback: another worker's spider answers with its parse (the scheduler looks again one reactor turn
    # later, as scrapy shell sets its own callback just after scheduling).
    assert local_reason(scrapy.Request("https://example.test/f"), _NoParse()) is None


def test_requests_no_other_worker_could_rebuild_or_handle_stay_in_the_process():
    spider, shell = _Spider(), Deferred()
    cases = {
        "its callback 'Deferred.callback' is not a method": scrapy.Request("https://example.test/a",
                                                                           callback=shell.callback),
        "its errback 'Deferred.errback' is not a method": scrapy.Request("https://example.test/b",
                                                                         callback=spider.parse_page,
                                                                         errback=shell.errback),
        "its callback '_Other.parse_page' is not a method": scrapy.Request("https://example.test/c",
                                                                           callback=_Other().parse_page),
        ".<lambda>' is not a method": scrapy.Request("https://example.test/d",
                                                                  callback=lambda response: None),
    }
    for expected, request in cases.items():
        reason = local_reason(request, spider)
        assert reason is not None and expected in reason and reason.endswith("no other worker could rebuild it")
