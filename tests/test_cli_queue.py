"""``livefleet queue dead|retry-dead`` against a real Redis."""

from __future__ import annotations

import json

import pytest
import scrapy

from crawlers.cli.main import main
from crawlers.queue.lease_queue import LeaseQueue
from crawlers.redis.keys import SpiderKeys
from spiders.bilibili.spider import BilibiliSpider

pytestmark = pytest.mark.integration


def test_dead_letters_are_listed_and_put_back(redis_server, redis_client, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("LIVEFLEET_KEY_PREFIX", "clitest")
    keys = SpiderKeys("clitest", "bilibili")
    queue = LeaseQueue(redis_client, BilibiliSpider(), keys, worker="w", max_failures=1)
    queue.push(scrapy.Request("https://api.live.bilibili.com/x?room_id=1", priority=3), "fp", "default")
    (item,) = queue.take(1)
    queue.release(item.lease, "download failed: TimeoutError: took too long")

    assert main(["queue", "dead", "--spider", "bilibili", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["total"] == {"bilibili": 1}
    (letter,) = listed["dead"]["bilibili"]
    assert letter["url"] == "https://api.live.bilibili.com/x?room_id=1"
    assert letter["error"] == "download failed: TimeoutError: took too long" and letter["attempts"] == 1

    assert main(["queue", "dead", "--spider", "bilibili"]) == 0
    assert "bilibili: 1 dead letters" in capsys.readouterr().out

    assert main(["queue", "retry-dead", "--spider", "bilibili"]) == 0
    assert "bilibili: 1 dead letters back in the queue" in capsys.readouterr().out
    assert redis_client.llen(keys.dead) == 0
    (again,) = queue.take(1)
    assert again.request.url == "https://api.live.bilibili.com/x?room_id=1" and again.request.priority == 3
