"""Spiders whose contracts must fail: ``scrapy check -s SPIDER_MODULES=tests.scrapy_check_spiders``.

Each is the real Bilibili spider with one thing wrong, so that ``tests/test_integration_scrapy_commands.py``
proves ``scrapy check`` catches it without editing the spiders' code: a parser that loses a field, a
contract naming a room the sandbox does not have, and a contract on a method its seed does not lead to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from scrapy.http import Response

from models.entities import Room
from spiders.bilibili.spider import BilibiliSpider


class BrokenParserSpider(BilibiliSpider):
    """Rooms come out of the parser without their status."""

    name = "bilibili_broken_parser"

    def parse_payload(self, body: bytes, *, url: str, fetched_at: datetime, kind: str) -> list[Any]:
        records = super().parse_payload(body, url=url, fetched_at=fetched_at, kind=kind)
        return [r.model_copy(update={"status": None}) if isinstance(r, Room) else r for r in records]


class WrongRoomSpider(BilibiliSpider):
    """The spider is right; its contract names a room that does not exist."""

    name = "bilibili_wrong_room"

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        """@seed {"kind": "room", "room_id": "987654321", "follow": []}
        @returns items 1
        """
        async for item in super().parse_page(response):
            yield item


class OtherCallbackSpider(BilibiliSpider):
    """A contract on a method that no request of its seed calls."""

    name = "bilibili_other_callback"

    async def parse_other(self, response: Response) -> AsyncIterator[Any]:
        """@seed {"kind": "room", "room_id": "1"}
        @returns items 1
        """
        async for item in super().parse_page(response):
            yield item
