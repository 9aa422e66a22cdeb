"""Downloader middlewares of livefleet workers."""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares import cookies as scrapy_cookies
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from tldextract import TLDExtract


class OfflineCookiesMiddleware(CookiesMiddleware):
    """Scrapy's cookie middleware, using the Public Suffix List bundled with tldextract.

    Scrapy's module-level ``TLDExtract()`` downloads the list from the internet on
    first use, and logs a traceback and waits when it cannot. A fleet worker must
    not depend on that download (nor on its timing), so the bundled snapshot is used.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        scrapy_cookies._split_domain = TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)
        return super().from_crawler(crawler)
