"""scrapy-redis start-URL entries -> livefleet seeds or refusals (crawlers/queue/start_urls.py).

Real URL shapes of every platform, as people copy them from a browser (query strings,
trailing slashes, the ``h5``/``blanc`` Bilibili variants), in both of scrapy-redis's entry
forms; every seed taken is checked to be one the platform's real spider makes requests for.
"""

from __future__ import annotations

import importlib
import json

import pytest
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawlers.queue.start_urls import REFUSALS, Refusal, StartUrl, StartUrlsConfig, read_entry, shown
from crawlers.redis.keys import StartUrlsKeys
from models.platforms import PLATFORMS
from spiders.platforms import PLATFORMS as SPIDERS

SEC_UID = "MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1qkDZYo1apxgzaxdBSeIuPiM"

#: (platform, URL as copied from the platform's site, the seed it must become).
TAKEN = [
    ("bilibili", "https://live.bilibili.com/21452505", {"kind": "room", "room_id": "21452505"}),
    ("bilibili", "https://live.bilibili.com/5440?spm_id_from=333.1007.0.0&live_from=85001",
     {"kind": "room", "room_id": "5440"}),
    ("bilibili", "https://live.bilibili.com/h5/21452505", {"kind": "room", "room_id": "21452505"}),
    ("bilibili", "https://live.bilibili.com/blanc/5440?liteVersion=true", {"kind": "room", "room_id": "5440"}),
    ("bilibili", "http://live.bilibili.com/5440/", {"kind": "room", "room_id": "5440"}),
    ("bilibili", "https://space.bilibili.com/9617619/", {"kind": "streamer", "uid": "9617619"}),
    ("bilibili", "https://space.bilibili.com/9617619?spm_id_from=333.337.0.0", {"kind": "streamer", "uid": "9617619"}),
    ("douyin", "https://live.douyin.com/604946797621", {"kind": "room", "web_rid": "604946797621"}),
    ("douyin", "https://live.douyin.com/604946797621?enter_from_merge=web_search&enter_method=web_card",
     {"kind": "room", "web_rid": "604946797621"}),
    ("douyin", f"https://www.douyin.com/user/{SEC_UID}", {"kind": "streamer", "sec_uid": SEC_UID}),
    ("douyin", f"https://www.douyin.com/user/{SEC_UID}?from_tab_name=main&vid=7312345678901234567",
     {"kind": "streamer", "sec_uid": SEC_UID}),
    ("douyin", f"https://www.iesdouyin.com/share/user/{SEC_UID}?from_ssr=1", {"kind": "streamer", "sec_uid": SEC_UID}),
    ("kuaishou", "https://live.kuaishou.com/u/3x59tkbj2kecvgi", {"kind": "room", "principal_id": "3x59tkbj2kecvgi"}),
    ("kuaishou", "https://live.kuaishou.com/u/Chen-0222C?csr=true", {"kind": "room", "principal_id": "Chen-0222C"}),
    ("kuaishou", "https://live.kuaishou.com/profile/3x59tkbj2kecvgi",
     {"kind": "room", "principal_id": "3x59tkbj2kecvgi"}),
    ("kuaishou", "https://www.kuaishou.com/profile/3x59tkbj2kecvgi",
     {"kind": "room", "principal_id": "3x59tkbj2kecvgi"}),
    ("taobao", "https://tbzb.taobao.com/live?liveId=523417747786", {"kind": "room", "live_id": "523417747786"}),
    ("taobao", "https://tbzb.taobao.com/live?spm=a21tn.8216370&liveId=523417747786",
     {"kind": "room", "live_id": "523417747786"}),
    ("taobao", "https://huodong.m.taobao.com/act/talent/live.html?id=523417747786&type=508",
     {"kind": "room", "live_id": "523417747786"}),
]


def test_every_platform_has_taken_shapes():
    assert {platform for platform, _url, _seed in TAKEN} == set(PLATFORMS)


@pytest.mark.parametrize(("platform", "url", "seed"), TAKEN, ids=[url for _p, url, _s in TAKEN])
@pytest.mark.parametrize("form", ["bare", "json"])
def test_a_page_of_the_platform_becomes_its_targets_seed(platform, url, seed, form):
    entry = url if form == "bare" else json.dumps({"url": url})
    result = read_entry(platform, entry.encode())
    assert isinstance(result, StartUrl), result
    assert result.seed == seed  # no "follow": the spider's default depth, as for `livefleet crawl --room`
    assert result.url == url and result.unused == ()
    assert (result.target.platform, result.target.kind) == (platform, seed["kind"])


@pytest.fixture(scope="module")
def spiders():
    """The real spider of each platform, built from real settings (the sandbox address: nothing is fetched)."""
    built = {}
    for platform in PLATFORMS:
        info = SPIDERS[platform]
        module = importlib.import_module(f"spiders.{platform}.spider")
        cls = next(v for v in vars(module).values() if getattr(v, "name", None) == info.spider and isinstance(v, type))
        built[platform] = cls.from_crawler(get_crawler(cls, {"LIVEFLEET_SANDBOX_URL": "http://127.0.0.1:9"}))
    return built


def test_every_seed_taken_is_one_the_platforms_spider_makes_requests_for(spiders):
    for platform, url, _seed in TAKEN:
        result = read_entry(platform, url)
        assert isinstance(result, StartUrl)
        requests = spiders[platform].seed_requests(result.seed)
        assert requests, url
        assert all(r.url.startswith("http://127.0.0.1:9/") for r in requests)


def test_what_scrapy_redis_would_have_put_on_the_request_is_named_as_unused():
    entry = {"url": "https://live.bilibili.com/5440", "meta": {"job-id": "123xsd", "start-date": "dd/mm/yy"},
             "url_cookie_key": "fertxsas", "method": "POST"}
    result = read_entry("bilibili", json.dumps(entry))
    assert isinstance(result, StartUrl)
    assert result.seed == {"kind": "room", "room_id": "5440"}
    assert result.unused == ("meta.job-id", "meta.start-date", "method=POST", "url_cookie_key")
    quiet = read_entry("bilibili", json.dumps({"url": "https://live.bilibili.com/5440", "meta": {}, "method": "get"}))
    assert isinstance(quiet, StartUrl) and quiet.unused == ()


#: (platform, entry, refusal code, a word the reason must contain).
REFUSED = [
    ("bilibili", b"\xff\xfe not utf-8", "not_text", "UTF-8"),
    ("bilibili", b"", "no_url", "empty"),
    ("bilibili", b"   \n", "no_url", "empty"),
    ("bilibili", b'{"url": "https://live.bilibili.com/5440"', "not_json", "not JSON"),
    ("bilibili", b"{not json at all}", "not_json", "not JSON"),
    ("bilibili", b'{"meta": {"a": 1}}', "no_url", "no \"url\""),
    ("bilibili", b'{"url": null}', "no_url", "no \"url\""),
    ("bilibili", b'{"url": 5440}', "no_url", "5440"),
    ("bilibili", b'{"url": ""}', "no_url", "url"),
    ("bilibili", b"5440", "not_a_url", "livefleet crawl bilibili --room"),
    ("bilibili", b"live.bilibili.com/5440", "not_a_url", "http(s)"),
    ("bilibili", b'["https://live.bilibili.com/5440"]', "not_a_url", "http(s)"),
    ("bilibili", b"ftp://live.bilibili.com/5440", "not_a_url", "http(s)"),
    ("bilibili", b"https://live.douyin.com/604946797621", "other_platform", "douyin"),
    ("bilibili", b'{"url": "https://www.kuaishou.com/profile/3x59tkbj2kecvgi"}', "other_platform", "kuaishou"),
    ("douyin", b"https://v.kuaishou.com/abc123", "other_platform", "kuaishou"),
    ("taobao", b"https://space.bilibili.com/9617619", "other_platform", "bilibili"),
    ("bilibili", b"https://b23.tv/BV1xx411c7mD", "short_link", "short link"),
    ("douyin", b"https://v.douyin.com/iRNBho6u/", "short_link", "short link"),
    ("taobao", b"https://m.tb.cn/h.5Z9kqhB", "short_link", "short link"),
    ("bilibili", b"https://www.bilibili.com/video/BV1xx411c7mD", "not_a_target", "not a bilibili host"),
    ("bilibili", b"https://live.bilibili.com/p/eden/area-tags?parentAreaId=2&areaId=0", "not_a_target",
     "not a bilibili room or profile page"),
    ("bilibili", b"https://live.bilibili.com/abc", "not_a_target", "room ID"),
    ("douyin", b"https://www.douyin.com/video/7312345678901234567", "not_a_target", "not a douyin"),
    ("douyin", b"https://www.douyin.com/user/not-a-sec-uid", "not_a_target", "sec_uid"),
    ("douyin", b"https://live.douyin.com.evil.io/604946797621", "not_a_target", "not a douyin host"),
    ("douyin", b"https://live.douyin.com@evil.io/604946797621", "not_a_target", "user info"),
    ("douyin", b"https://live.douyin.com:8443/604946797621", "not_a_target", "port"),
    ("kuaishou", b"https://live.kuaishou.com/u/a/../../admin", "not_a_target", "not a kuaishou"),
    ("taobao", b"https://item.taobao.com/item.htm?id=736912488123", "not_a_target", "not a taobao host"),
    ("taobao", b"https://tbzb.taobao.com/live?liveId=52341x", "not_a_target", "liveId"),
    ("bilibili", b"http://127.0.0.1:8080/live.bilibili.com/5440", "not_a_target", "local or IP"),
]


@pytest.mark.parametrize(("platform", "entry", "code", "word"), REFUSED, ids=[e[:60].decode("utf-8", "replace")
                                                                           for _p, e, _c, _w in REFUSED])
def test_anything_else_is_refused_with_a_reason(platform, entry, code, word):
    result = read_entry(platform, entry)
    assert isinstance(result, Refusal), result
    assert result.code == code, result.reason
    assert word in result.reason


def test_every_refusal_code_a_mapping_gives_is_exercised():
    assert {code for _p, _e, code, _w in REFUSED} == set(REFUSALS) - {"no_seed"}  # no_seed: the spider's say
    with pytest.raises(ValueError, match="unknown refusal code"):
        Refusal("whatever", "x")


def test_shown_cuts_long_entries():
    assert shown(b"abc") == "'abc'"
    long = shown("x" * 1000)
    assert long.startswith("'xxx") and long.endswith("... (1000 characters)") and len(long) < 260


def test_the_keys_follow_scrapy_redis_settings():
    default = StartUrlsConfig.from_settings(Settings())
    assert (default.kind, default.keys("bilibili")) == ("list", StartUrlsKeys("bilibili:start_urls"))
    assert default.keys("bilibili").rejected == "bilibili:start_urls:rejected"
    assert default.keys("bilibili", redis_key="jobs:%(name)s").key == "jobs:bilibili"  # a spider's redis_key wins
    custom = StartUrlsConfig.from_settings(Settings({"REDIS_START_URLS_KEY": "seeds:%(name)s:urls",
                                                     "REDIS_START_URLS_AS_SET": "True"}))
    assert (custom.kind, custom.keys("douyin").key) == ("set", "seeds:douyin:urls")
    assert StartUrlsConfig.from_settings(Settings({"REDIS_START_URLS_AS_ZSET": True})).kind == "zset"
    both = Settings({"REDIS_START_URLS_AS_SET": True, "REDIS_START_URLS_AS_ZSET": True})
    assert StartUrlsConfig.from_settings(both).kind == "set"  # as in scrapy-redis
    assert StartUrlsConfig.from_settings(Settings({"REDIS_START_URLS_KEY": "fixed"})).keys("x").key == "fixed"


@pytest.mark.parametrize("template", ["%(spider)s:start_urls", "%(name)d", "%(name)", " "])
def test_a_key_template_that_makes_no_key_fails_at_start(template):
    with pytest.raises(ValueError, match="REDIS_START_URLS_KEY"):
        StartUrlsConfig.from_settings(Settings({"REDIS_START_URLS_KEY": template}))
