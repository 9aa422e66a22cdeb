"""Campaign files: validation (file, line, field named for every problem), targets, seeds, firings."""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scrapy.utils.test import get_crawler

from crawlers.campaigns.cron import latest_firing
from crawlers.campaigns.loader import CampaignError, load_campaign, load_folder, parse_campaign
from crawlers.campaigns.spec import Schedule
from crawlers.targets import TargetError, parse_target
from spiders.platforms import PLATFORMS

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "settings" / "campaigns"

GOOD = """\
name: tiny
schedule:
  cron: "0 * * * *"
platforms:
  bilibili:
    areas: ["2:86"]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(CampaignError) as caught:
        parse_campaign(text, "c.yaml")
    return [str(p) for p in caught.value.problems]


def _spider(platform: str):
    info = PLATFORMS[platform]
    module = importlib.import_module(f"spiders.{platform}.spider")
    cls = next(v for v in vars(module).values() if getattr(v, "name", None) == info.spider and isinstance(v, type))
    return cls.from_crawler(get_crawler(cls, {"LIVEFLEET_SANDBOX_URL": "http://127.0.0.1:9"}))


@pytest.mark.parametrize("name", ["example.yaml", "hourly-top-rooms.yaml"])
def test_shipped_campaigns_validate_and_every_seed_is_one_the_spider_takes(name):
    campaign = load_campaign(CAMPAIGNS / name)
    seeds = campaign.seeds("run-1")
    assert set(seeds) == set(campaign.spiders())
    for spider_name, batch in seeds.items():
        spider = _spider(spider_name)
        for seed in batch:
            assert seed["crawl"] == "run-1" and seed["priority"] == campaign.priority
            assert list(spider.requests_from_seed(seed)), seed


def test_the_example_uses_every_field():
    campaign = load_campaign(CAMPAIGNS / "example.yaml")
    assert campaign.schedule and campaign.caps.pages and campaign.caps.duration and campaign.webhook
    assert set(campaign.platforms.given()) == set(PLATFORMS)


def test_seeds_in_the_spiders_terms():
    campaign = parse_campaign("""
name: t
depth: products
max_pages: 4
priority: 7
platforms:
  douyin:
    categories: ["2823:2", {partition: 720, type: 1}]
    rankings: [recommended]
    rooms: ["604946797621", "https://live.douyin.com/604946797621"]
  kuaishou: {category_types: all, rooms: [abc_1], streamers: ["https://www.kuaishou.com/profile/abc_1"]}
  bilibili: {areas: all, streamers: [9617619], depth: rooms}
  taobao: {rooms: ["https://tbzb.taobao.com/live?liveId=523417747786"]}
""")
    seeds = campaign.seeds("r")
    common = {"crawl": "r", "priority": 7}
    assert seeds["douyin"] == [
        {"kind": "category", "partition": "2823", "partition_type": "2", "max_pages": 4,
         "follow": ["rooms", "streamers", "products"], **common},
        {"kind": "category", "partition": "720", "partition_type": "1", "max_pages": 4,
         "follow": ["rooms", "streamers", "products"], **common},  # the ranking is this list: pushed once
        {"kind": "room", "web_rid": "604946797621", "follow": ["rooms", "streamers", "products"], **common},
    ]
    assert seeds["kuaishou"] == [
        {"kind": "categories", "types": [1, 2, 3, 4, 5, 6, 7, 8], "max_pages": 4, "follow": ["rooms", "streamers"],
         **common},
        {"kind": "room", "principal_id": "abc_1", "follow": ["rooms", "streamers"], **common},
    ]
    assert seeds["bilibili"] == [{"kind": "areas", "max_pages": 4, "follow": ["rooms"], **common},
                                 {"kind": "streamer", "uid": "9617619", "follow": ["rooms"], **common}]
    assert seeds["taobao"] == [{"kind": "room", "live_id": "523417747786", "follow": ["products"], **common}]
    assert campaign.notes() == ["kuaishou: depth products is out of its spider's reach; it goes to streamers"]


def test_every_problem_is_reported_with_file_line_and_field():
    problems = _problems("""\
name: Bad Name
schedule:
  cron: "0 * * *"
  timezone: Mars/Olympus
colour: red
caps:
  duration: 20 minutes
platforms:
  douyin:
    keywords: [口红]
    rooms:
      - "604946797621"
      - https://evil.example.com/604946797621
""")
    assert problems == [
        "c.yaml:1: name: a campaign name is a slug (lowercase letters, digits, '-'; up to 64), got 'Bad Name'",
        "c.yaml:3: schedule.cron: a cron expression has 5 fields (minute hour day month weekday), got 4",
        "c.yaml:4: schedule.timezone: unknown time zone 'Mars/Olympus' (an IANA name such as Asia/Shanghai or UTC)",
        "c.yaml:5: colour: unknown key (not a campaign field here)",
        "c.yaml:7: caps.duration: not a duration: '20 minutes' (write it like 20m, 1h30m, 45s)",
        "c.yaml:10: platforms.douyin.keywords: douyin has no keyword search in livefleet (its spider crawls no "
        "search results); list categories, rooms or streamers instead",
        "c.yaml:13: platforms.douyin.rooms[1]: refused douyin URL 'https://evil.example.com/604946797621': "
        "evil.example.com is not a douyin host (accepted: https://live.douyin.com/<web_rid>; room: web_rid, "
        "6-16 digits)",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ('name: t\nschedule: {cron: "61 * * * *"}\nplatforms: {taobao: {rooms: [1234567]}}',
     "c.yaml:2: schedule.cron: not a valid cron expression: '61 * * * *'"),
    ('name: t\nschedule: {cron: "0 0 * * * *"}\nplatforms: {taobao: {rooms: [1234567]}}',
     "c.yaml:2: schedule.cron: a cron expression has 5 fields (minute hour day month weekday), got 6"),
    ("name: t\nplatforms:\n  kuaishou:\n    keywords: [x]\n",
     "c.yaml:4: platforms.kuaishou.keywords: kuaishou has no keyword search"),
    ("name: t\nplatforms:\n  bilibili:\n    rankings: [hot]\n",
     "c.yaml:4: platforms.bilibili.rankings: bilibili has no ranking list in livefleet"),
    ("name: t\nplatforms:\n  taobao:\n    streamers: [x]\n",
     "c.yaml:4: platforms.taobao.streamers: taobao offers no public anchor-to-room lookup"),
    ("name: t\nplatforms:\n  bilibili:\n    depth: shelves\n    areas: all\n",
     "c.yaml:4: platforms.bilibili.depth: bilibili crawls from lists down to streamers only, not shelves"),
    ("name: t\nplatforms:\n  douyin:\n    max_pages: 2\n",
     "c.yaml:3: platforms.douyin: no seeds for douyin: give categories, rankings, rooms, streamers"),
    ("name: t\nplatforms: {}\n", "c.yaml:2: platforms: no platform: give at least one of"),
    ("name: t\nplatforms:\n  weibo: {rooms: [1]}\n", "c.yaml:3: platforms.weibo: unknown key"),
    ("platforms:\n  taobao: {rooms: [1234567]}\n", "c.yaml:1: name: Field required"),
    ("name: t\nname: u\nplatforms: {taobao: {rooms: [1234567]}}\n",
     "c.yaml:2: name: key written twice in the same mapping"),
    ("name: t\nplatforms: [\n", "c.yaml:3: not valid YAML"),
    ("- just\n- a list\n", "c.yaml:1: a campaign file is a YAML mapping"),
    ("name: t\nwebhook: {url: ftp://x/y}\nplatforms: {taobao: {rooms: [1234567]}}\n",
     "c.yaml:2: webhook.url: a webhook URL is http(s)://host/path"),
    ("name: t\nwebhook: {url: 'https://x/y', secret_env: 'my secret'}\nplatforms: {taobao: {rooms: [1234567]}}\n",
     "c.yaml:2: webhook.secret_env: secret_env names an environment variable"),
])
def test_each_kind_of_problem(text, expected):
    problems = _problems(text)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(("platform", "kind", "value", "expected"), [
    ("douyin", "room", "https://live.douyin.com/604946797621", "604946797621"),
    ("douyin", "room", "http://live.douyin.com/604946797621/?from=share", "604946797621"),
    ("douyin", "streamer", "https://www.douyin.com/user/MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1qkDZYo1apxgzaxdBSeIuPiM",
     "MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1qkDZYo1apxgzaxdBSeIuPiM"),
    ("douyin", "streamer", "https://www.iesdouyin.com/share/user/MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1qkDZYo1apxgzaxdBSeIuPiM",
     "MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1qkDZYo1apxgzaxdBSeIuPiM"),
    ("kuaishou", "room", "https://live.kuaishou.com/u/3x59tkbj2kecvgi", "3x59tkbj2kecvgi"),
    ("kuaishou", "room", "https://live.kuaishou.com/profile/3x59tkbj2kecvgi", "3x59tkbj2kecvgi"),
    ("kuaishou", "room", "qiuyu-620", "qiuyu-620"),  # a real kwaiId, with its hyphen
    ("bilibili", "room", "https://live.bilibili.com/blanc/5440", "5440"),
    ("bilibili", "room", "21", "21"),
    ("bilibili", "streamer", "9617619", "9617619"),  # a bare uid, since the campaign says it is a streamer
    ("bilibili", "streamer", "https://space.bilibili.com/9617619", "9617619"),
    ("taobao", "room", "https://tbzb.taobao.com/live?liveId=523417747786&spm=a", "523417747786"),
])
def test_targets_accepted(platform, kind, value, expected):
    assert parse_target(platform, value, kind=kind).id == expected


@pytest.mark.parametrize(("platform", "kind", "value", "reason"), [
    ("douyin", "room", "https://live.douyin.com.evil.cn/604946797621",
     "live.douyin.com.evil.cn is not a douyin host (accepted: https://live.douyin.com/<web_rid>; room: web_rid"),
    ("douyin", "room", "file:///etc/passwd", "only http(s) page URLs"),
    ("douyin", "room", "https://127.0.0.1/604946797621", "127.0.0.1 is a local or IP address"),
    ("douyin", "room", "https://user:pw@live.douyin.com/604946797621", "user info before the host"),
    ("douyin", "room", "https://live.douyin.com:8443/604946797621", "port 8443 is not a douyin web port"),
    ("douyin", "room", "https://v.douyin.com/iRNBho6u/", "short link"),
    ("douyin", "room", "https://live.douyin.com/some_douyin_id", "'some_douyin_id' is not a douyin room ID"),
    ("douyin", "room", "7312345678901234567", "not of the shape douyin uses (room: web_rid, 6-16 digits)"),
    ("douyin", "streamer", "https://live.douyin.com/604946797621", "is a douyin room URL; list it under rooms"),
    ("douyin", "streamer", "x;rm", "not of the shape douyin uses (streamer: sec_uid"),
    ("douyin", "streamer", "x;rm -rf", "contains spaces"),
    ("douyin", "streamer", "MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1", "not of the shape douyin uses (streamer: sec_uid"),
    ("bilibili", "room", "https://live.bilibili.com/abc", "'abc' is not a bilibili room ID"),
    ("bilibili", "streamer", "https://space.bilibili.com.example.org/1", "not a bilibili host"),
    ("taobao", "room", "https://tbzb.taobao.com/live?id=1234567", "'' is not a taobao room ID"),
    ("taobao", "room", "https://m.tb.cn/h.5QnTgQu", "short link"),
    ("taobao", "streamer", "1234567", "taobao takes no streamer IDs"),
    ("kuaishou", "room", "https://live.kuaishou.com/u/a/../../admin", "not a kuaishou room page"),
])
def test_targets_refused(platform, kind, value, reason):
    with pytest.raises(TargetError, match=re.escape(reason)):
        parse_target(platform, value, kind=kind)


def test_a_folder_reports_every_bad_file_and_keeps_the_good_ones(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad-cron.yaml").write_text(GOOD.replace("name: tiny", "name: other").replace("0 * * * *", "0 *"))
    (tmp_path / "bad-key.yml").write_text(GOOD.replace("name: tiny", "name: third\nfoo: 1"))
    (tmp_path / "notes.txt").write_text("not a campaign")
    campaigns, problems = load_folder(tmp_path)
    assert [p.name for p in campaigns] == ["good.yaml"]
    assert sorted((Path(p.file).name, p.line, p.path) for p in problems) == [
        ("bad-cron.yaml", 3, "schedule.cron"), ("bad-key.yml", 2, "foo")]


def test_two_files_with_one_name_are_both_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    campaigns, problems = load_folder(tmp_path)
    assert campaigns == {}
    assert [(Path(p.file).name, p.line, p.path) for p in problems] == [("a.yaml", 1, "name"), ("b.yaml", 1, "name")]


def test_latest_firing_is_read_in_the_campaigns_time_zone():
    schedule = Schedule(cron="30 9 * * *", timezone="Asia/Shanghai")
    # 01:29:59 UTC is 09:29:59 in Shanghai: the latest firing is yesterday's.
    assert latest_firing(schedule, datetime(2026, 3, 2, 1, 29, 59, tzinfo=UTC)) == \
        datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    assert latest_firing(schedule, datetime(2026, 3, 2, 1, 30, 0, tzinfo=UTC)) == \
        datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    utc = Schedule(cron="30 9 * * *", timezone="UTC")
    assert latest_firing(utc, datetime(2026, 3, 2, 9, 30, 0, 500_000, tzinfo=UTC)) == \
        datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
