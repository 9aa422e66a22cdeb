"""No two livefleet components of one kind share a priority: Scrapy would order them arbitrarily."""

from __future__ import annotations

from collections import defaultdict

import pytest
from scrapy.settings import Settings

KINDS = ("DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "ITEM_PIPELINES", "EXTENSIONS")
OURS = ("crawlers.", "spiders.", "pipelines.")


@pytest.mark.parametrize("kind", KINDS)
def test_livefleet_components_have_distinct_priorities(kind):
    settings = Settings()
    settings.setmodule("settings.scrapy_settings")
    by_priority: dict[int, list[str]] = defaultdict(list)
    for path, priority in settings.getdict(kind).items():
        if priority is not None and str(path).startswith(OURS):
            by_priority[int(priority)].append(str(path))
    shared = {priority: paths for priority, paths in by_priority.items() if len(paths) > 1}
    assert not shared, f"{kind}: components sharing a priority run in an undefined order: {shared}"


def test_signing_runs_after_the_fleet_rate_limit_and_before_cookies():
    settings = Settings()
    settings.setmodule("settings.scrapy_settings")
    order = settings.getdict("DOWNLOADER_MIDDLEWARES")
    fleet = order["crawlers.download.ratelimit.FleetRateLimitMiddleware"]
    cookies = order["crawlers.download.cookies.OfflineCookiesMiddleware"]
    for signer in ("spiders.taobao.middleware.MtopSignMiddleware", "spiders.douyin.middleware.PageSignMiddleware"):
        assert fleet < order[signer] < cookies
