"""The Taobao Live spider: the mtop H5 gateway over plain HTTP, signed per session.

Every call goes to ``h5api.m.taobao.com/h5/{api}/{v}/`` and is signed when it
is downloaded (``spiders/taobao/middleware.py``) with the ``_m_h5_tk`` token
of the session that sends it. A new session is warmed with one unsigned call,
which the gateway answers with ``FAIL_SYS_TOKEN_EMPTY`` and the token cookie;
a token that expires mid-crawl comes back the same way and the retry is
signed with the fresh one. Nothing here needs a browser.

Seeds (``livefleet crawl taobao``):

* ``{"kind": "room", "live_id": "523417747786"}``: the live room (and its anchor),
  its viewer counts, its item shelf and each item's detail;
* ``{"kind": "item", "item_id": "583789686010"}``: one item's detail (mtop) and its
  Tmall mobile page (``_DATA_Detail`` + ``_DATA_Mdskip``).

Taobao offers no public anchor-to-live lookup (see PLATFORMS.md): rooms are
seeded by live id, as the pages' own links carry it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, ClassVar

import scrapy
from scrapy.http import Response

from models.entities import Product, Room
from spiders.base import PlatformSpider
from spiders.meta import PAGE_META
from spiders.taobao import pages
from spiders.taobao.sign import mtop_url

GATEWAY = "h5api.m.taobao.com"
TMALL = "detail.m.tmall.com"
SHELF_PAGE = 20
DEFAULT_FOLLOW = ("products",)
API = {
    "live_detail": ("mtop.mediaplatform.live.livedetail", "4.0"),
    "live_stats": ("mtop.mediaplatform.live.pulltopicstat", "1.0"),
    "item_list": ("mtop.mediaplatform.video.livedetail.itemlist.withpagination", "2.0"),
    "item_detail": ("mtop.taobao.detail.getdetail", "6.0"),
}
_PRIORITY = {"live_detail": 10, "live_stats": 20, "item_list": 20, "item_detail": 30, "tmall_page": 30}


class TaobaoSpider(PlatformSpider):
    """Taobao Live: live rooms, anchors, shelves, item details."""

    name = "taobao"
    platform: ClassVar[str] = "taobao"
    use_sessions: ClassVar[bool] = True

    def warmup_request(self, session: str) -> scrapy.Request:
        """One unsigned gateway call: the answer sets this session's ``_m_h5_tk`` token."""
        url = mtop_url(self.url(GATEWAY, ""), *API["live_detail"], {"liveId": "0"}, token="", t="0")
        return scrapy.Request(url, dont_filter=True, meta={"mtop": True})

    def parse_payload(self, body: bytes, *, url: str, fetched_at: datetime, kind: str) -> list[Any]:
        return pages.parse(body, url=url, fetched_at=fetched_at, kind=kind)

    def mtop(self, kind: str, data: dict[str, Any], *, follow: Iterable[str], dont_filter: bool = False,
             **context: Any) -> scrapy.Request:
        """A gateway call; ``t`` and ``sign`` are set when it is downloaded."""
        api, version = API[kind]
        url = mtop_url(self.url(GATEWAY, ""), api, version, data, token="", t="0")
        request = self.page_request(kind, url, priority=_PRIORITY.get(kind, 0), dont_filter=dont_filter,
                                    follow=list(follow), **context)
        request.meta["mtop"] = True
        return request

    def shelf_page(self, live_id: str, creator_id: str, group: int, follow: Iterable[str]) -> scrapy.Request:
        data = {"liveId": live_id, "creatorId": creator_id, "n": SHELF_PAGE, "groupNum": group}
        return self.mtop("item_list", data, follow=follow, live_id=live_id, creator_id=creator_id, group=group)

    def requests_from_seed(self, seed: dict[str, Any]) -> Iterable[scrapy.Request]:
        kind, follow = seed.get("kind"), seed.get("follow", DEFAULT_FOLLOW)
        if kind == "room":
            live_id = _digits(seed, "live_id")
            return [self.mtop("live_detail", {"liveId": live_id, "creatorId": None}, follow=follow,
                              dont_filter=True, live_id=live_id)]
        if kind == "item":
            item_id = _digits(seed, "item_id")
            return [self.mtop("item_detail", {"itemNumId": item_id}, follow=follow, dont_filter=True),
                    self.page_request("tmall_page", self.url(TMALL, "/item.htm", {"id": item_id}),
                                      priority=_PRIORITY["tmall_page"], dont_filter=True, follow=list(follow))]
        raise ValueError(f"unknown taobao seed kind {kind!r} (room, item)")

    def follow(self, response: Response, kind: str, records: list[Any]) -> Iterable[scrapy.Request]:
        context = response.meta[PAGE_META]
        follow = context.get("follow", DEFAULT_FOLLOW)
        if kind == "live_detail":
            for room in records:
                if isinstance(room, Room):
                    # The pages ask for the counts by topic; the live id names the room in the answer.
                    yield self.mtop("live_stats", {"topic": room.room_id, "liveId": room.room_id}, follow=follow)
                    if room.streamer_id and "products" in follow:
                        yield self.shelf_page(room.room_id, room.streamer_id, 0, follow)
        if kind == "item_list":
            products = [p for p in records if isinstance(p, Product)]
            if len(products) >= SHELF_PAGE:
                yield self.shelf_page(context["live_id"], context["creator_id"], context["group"] + 1, follow)
            if "products" in follow:
                for product in products:
                    yield self.mtop("item_detail", {"itemNumId": product.product_id}, follow=follow)

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        """The base parse (``PlatformSpider.parse_page``). Its contract, for ``scrapy check`` against the
        sandbox (``spiders/contracts.py``):

        @seed {"kind": "room", "live_id": "543695972350"}
        @returns items 1
        @returns requests 1
        @records rooms room_id streamer_id status
        """
        async for item in super().parse_page(response):
            yield item


def _digits(seed: dict[str, Any], name: str) -> str:
    value = str(seed.get(name) or "").strip()
    if not value.isdigit():
        raise ValueError(f"taobao seed needs a numeric {name}, got {seed.get(name)!r}")
    return value
