"""A throwaway crawl that renders local pages through livefleet's browser handler.

Run as a subprocess by the tests (a Twisted reactor cannot restart inside one
test process): ``python -m tests.browser_probe URL --pages N --recycle K``.
Prints one JSON line: what each page's script rendered, and the crawl's stats.
"""

from __future__ import annotations

import argparse
import json
import sys

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawlers.browser import browser_settings


class ProbeSpider(scrapy.Spider):
    name = "probe"

    def __init__(self, url: str, pages: int, **kwargs):
        super().__init__(**kwargs)
        self.url, self.pages, self.seen = url, pages, []

    async def start(self):
        for n in range(self.pages):
            yield scrapy.Request(f"{self.url}?n={n}", meta={"playwright": True}, callback=self.parse)

    def parse(self, response):
        self.seen.append(response.css("#out::text").get())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--recycle", type=int, default=0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    settings = Settings({**browser_settings(args.chromium), "LOG_LEVEL": "WARNING",
                         "REMOTE_CONTROL_ENABLED": False, "TELNETCONSOLE_ENABLED": False,
                         "LIVEFLEET_BROWSER_RECYCLE_PAGES": args.recycle, "LIVEFLEET_BROWSER_RSS_CHECK_PAGES": 1})
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ProbeSpider)
    process.crawl(crawler, url=args.url, pages=args.pages)
    process.start()
    stats = {k: v for k, v in crawler.stats.get_stats().items() if isinstance(v, (int, float, str))}
    print(json.dumps({"seen": sorted(crawler.spider.seen, key=str), "stats": stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
