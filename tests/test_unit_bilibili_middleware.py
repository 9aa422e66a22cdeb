"""WbiSignMiddleware: signs marked requests at download time, reads nav once, reads it again
when the keys are old or a signed request drew -352, and never signs an unmarked request."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from scrapy import Request
from scrapy.crawler import Crawler as ScrapyCrawler
from scrapy.http import TextResponse

from settings import scrapy_settings
from spiders.bilibili import wbi
from spiders.bilibili.middleware import WbiSignMiddleware
from spiders.bilibili.spider import BilibiliSpider
from spiders.meta import PAGE_META, PINNED_META
from spiders.meta import WBI_META as WBI

KEYS_A = ("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")
KEYS_B = ("653657f524a547ac981ded72ea172057", "6e4909c702f846728e64f6007736a338")


def _nav(keys: tuple[str, str]) -> bytes:
    wbi_img = {"img_url": f"https://i0.hdslb.com/bfs/wbi/{keys[0]}.png",
               "sub_url": f"https://i0.hdslb.com/bfs/wbi/{keys[1]}.png"}
    return json.dumps({"code": -101, "message": "账号未登录", "ttl": 1,
                       "data": {"isLogin": False, "wbi_img": wbi_img}}).encode()


class Stats(Counter):
    def inc_value(self, key: str, count: int = 1) -> None:
        self[key] += count


class Engine:
    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[Request] = []

    async def download_async(self, request: Request) -> TextResponse:
        self.requests.append(request)
        return TextResponse(request.url, body=self.answers[len(self.requests) - 1], request=request)


class Spider:
    name = "bilibili"
    nav_host = "api.bilibili.com"

    @staticmethod
    def url(host: str, path: str) -> str:
        return f"https://{host}{path}"


class Crawler:
    def __init__(self, answers: list[bytes]) -> None:
        self.stats = Stats()
        self.engine = Engine(answers)
        self.spider = Spider()


def _middleware(*answers: bytes) -> tuple[WbiSignMiddleware, Crawler]:
    crawler = Crawler(list(answers))
    middleware = WbiSignMiddleware(crawler)  # type: ignore[arg-type]
    middleware.clock = lambda: 1702204169.4
    return middleware, crawler


def _signed(url: str) -> Request:
    return Request(url, meta={WBI: True})


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_marked_request_is_signed_with_the_nav_keys() -> None:
    middleware, crawler = _middleware(_nav(KEYS_A))
    request = _signed("https://api.bilibili.com/x/test?foo=114&bar=514&zab=1919810")
    _run(middleware.process_request(request))
    assert urlsplit(request.url).query == (
        "foo=114&bar=514&zab=1919810&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4&wts=1702204169")
    (nav,) = crawler.engine.requests
    assert nav.url == "https://api.bilibili.com/x/web-interface/nav" and nav.meta[PINNED_META]
    assert crawler.stats["livefleet/bilibili/wbi_signed"] == 1


def test_an_unmarked_request_is_left_alone() -> None:
    middleware, crawler = _middleware()
    request = Request("https://api.live.bilibili.com/room/v1/Room/get_info?room_id=1")
    _run(middleware.process_request(request))
    assert request.url.endswith("room_id=1") and not crawler.engine.requests


def test_keys_are_read_once_then_again_when_old() -> None:
    middleware, crawler = _middleware(_nav(KEYS_A), _nav(KEYS_B))
    now = [0.0]
    middleware.monotonic = lambda: now[0]

    async def sign_many() -> None:
        await asyncio.gather(*(middleware.process_request(_signed(f"https://h/x?mid={i}")) for i in range(5)))

    _run(sign_many())
    assert len(crawler.engine.requests) == 1
    now[0] = middleware.max_key_age + 1
    request = _signed("https://h/x?mid=1")
    _run(middleware.process_request(request))
    assert len(crawler.engine.requests) == 2
    query = dict(parse_qsl(urlsplit(request.url).query))
    assert query["w_rid"] == wbi.sign({"mid": "1"}, wbi.WbiKeys(*KEYS_B), 1702204169)["w_rid"]


def test_a_352_answer_drops_the_keys() -> None:
    middleware, crawler = _middleware(_nav(KEYS_A), _nav(KEYS_B))
    request = _signed("https://h/x?mid=1")
    _run(middleware.process_request(request))
    blocked = TextResponse(request.url, body=b'{"code": -352, "message": "-352", "ttl": 1}', request=request)
    assert middleware.process_response(request, blocked) is blocked
    retry = _signed(request.url)  # a retry carries the old signature: it is replaced
    _run(middleware.process_request(retry))
    assert len(crawler.engine.requests) == 2 and crawler.stats["livefleet/bilibili/wbi_keys_dropped"] == 1
    assert urlsplit(retry.url).query.count("w_rid=") == 1
    # An ordinary answer keeps them.
    ok = TextResponse(retry.url, body=b'{"code":0,"data":{}}', request=retry)
    middleware.process_response(retry, ok)
    _run(middleware.process_request(_signed("https://h/x?mid=2")))
    assert len(crawler.engine.requests) == 2


def test_without_keys_the_request_goes_unsigned() -> None:
    middleware, crawler = _middleware(b"<html>oops</html>")
    request = _signed("https://h/x?mid=1")
    _run(middleware.process_request(request))
    assert request.url == "https://h/x?mid=1" and crawler.stats["livefleet/bilibili/wbi_keys_failed"] == 1


@pytest.mark.parametrize("seed", [{"kind": "streamer", "uid": "2"}])
def test_the_streamer_seed_asks_for_the_signed_space_and_the_counts(seed: dict[str, Any]) -> None:
    settings = {k: getattr(scrapy_settings, k) for k in dir(scrapy_settings) if k.isupper()}
    crawler = ScrapyCrawler(BilibiliSpider, settings)  # as a worker's: settings not applied yet
    spider = BilibiliSpider.from_crawler(crawler)
    order = crawler.settings.getdict("DOWNLOADER_MIDDLEWARES")
    # the project's settings list the signer, after the rate limit (signatures carry a time) and the others
    assert order["spiders.bilibili.middleware.WbiSignMiddleware"] > order[
        "crawlers.download.ratelimit.FleetRateLimitMiddleware"]
    requests = {r.meta[PAGE_META]["kind"]: r for r in spider.requests_from_seed(seed)}
    assert requests["acc_info"].url == "https://api.bilibili.com/x/space/wbi/acc/info?mid=2"
    assert requests["acc_info"].meta[WBI] is True and requests["acc_info"].dont_filter
    assert requests["relation_stat"].url == "https://api.bilibili.com/x/relation/stat?vmid=2"
    assert WBI not in requests["relation_stat"].meta
    assert {"user_card", "master_info", "room_info_old"} <= set(requests)
