"""A throwaway crawl that renders local pages through livefleet's browser handler.

Run as a subprocess by the tests (a Twisted reactor cannot restart inside one
test process): ``python -m tests.browser_probe URL --pages N --recycle K [--set NAME=JSON ...]``.
Prints one JSON line: what each page's script rendered, and the crawl's stats.
"""

from __future__ import annotations

import argparse
import json
import sys

import psutil
import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from settings.browser import browser_settings
from spiders.meta import RENDER_META


class ProbeSpider(scrapy.Spider):
    name = "probe"

    def __init__(self, url: str, pages: int, render: bool, **kwargs):
        super().__init__(**kwargs)
        self.url, self.pages, self.render, self.seen, self.late = url, pages, render, [], []
        self.switches: list[str] = []

    async def start(self):
        for n in range(self.pages):
            # --render: as livefleet's spiders ask (RenderMiddleware), waiting for the page's late script
            meta = {RENDER_META: {"wait_for": "document.body.dataset.ready"}} if self.render else {"playwright": True}
            yield scrapy.Request(f"{self.url}?n={n}", meta=meta, callback=self.parse)

    def parse(self, response):
        self.seen.append(response.css("#out::text").get())
        self.late.append(response.css("#late::text").get())
        self.switches = self.switches or chromium_feature_switches()


def chromium_feature_switches() -> list[str]:
    """The ``--disable-features`` values the running Chromium got, in command-line order."""
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if cmdline and "chrom" in cmdline[0] and not any(arg.startswith("--type=") for arg in cmdline):
            return [arg.split("=", 1)[1] for arg in cmdline if arg.startswith("--disable-features=")]
    return []


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--recycle", type=int, default=0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--render", action="store_true", help="ask through RenderMiddleware, waiting for the page")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON", help="one more setting")
    args = parser.parse_args()
    settings = Settings({**browser_settings(args.chromium), "LOG_LEVEL": "WARNING",
                         "REMOTE_CONTROL_ENABLED": False, "TELNETCONSOLE_ENABLED": False,
                         "LIVEFLEET_BROWSER_RECYCLE_PAGES": args.recycle, "LIVEFLEET_BROWSER_RSS_CHECK_PAGES": 1,
                         "DOWNLOADER_MIDDLEWARES": {"crawlers.download.render.RenderMiddleware": 550}})
    for pair in args.set:
        name, _, value = pair.partition("=")
        settings.set(name, json.loads(value))
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ProbeSpider)
    process.crawl(crawler, url=args.url, pages=args.pages, render=args.render)
    process.start()
    stats = {k: v for k, v in crawler.stats.get_stats().items() if isinstance(v, (int, float, str))}
    print(json.dumps({"seen": sorted(crawler.spider.seen, key=str), "late": sorted(crawler.spider.late, key=str),
                      "disable_features": crawler.spider.switches, "stats": stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
