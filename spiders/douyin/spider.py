"""The Douyin Live spider: rendered room pages, page-signed API calls over plain HTTP.

Douyin's room page carries no data until its own script has run (it signs and
calls the enter API, then pushes the state into ``self.__pace_f`` chunks), so
room pages are rendered in Chromium and parsed from the rendered HTML. The
web APIs (category lists, shelf, product detail, profile) want an
``a_bogus`` signature computed by the site's own script: a signer page does
that (``spiders/douyin/middleware.py``) and plain HTTP sends the requests.
Everything that can go without a browser does.

Seeds (``livefleet crawl douyin``):

* ``{"kind": "category", "partition": "720", "partition_type": "1", "max_pages": 3}``:
  the live rooms of a category (720/1 is the recommended list), 15 a page;
* ``{"kind": "room", "web_rid": "604946797621"}``: a room page, its shelf and streamer;
* ``{"kind": "streamer", "sec_uid": "MS4wLjABAAAA..."}``: a streamer's profile and, while they are
  live, their room page;
* ``{"kind": "push", "room_id": "7646341264819790154"}``: one poll of the live session's message
  channel (``webcast/im/fetch/``, protobuf: ``wire.py``), which gives exact viewer counts (now and
  cumulative), likes, the presented product and shelf changes, where the page shows rounded text.
  A room page reached with ``"push"`` in ``follow`` polls its channel too.

The channel's websocket (``webcast{N}-ws-web-*.douyin.com/webcast/im/push/v2/``) carries the
same protobuf ``Response`` s; the fleet polls ``im/fetch`` instead, so the requests go through
the shared queue, its rate limits and egress identities like every other page (a socket per
room would not).

A profile names the session's 19-digit ``room_id``, not the ``web_rid`` the room page
wants; but the room page also answers at ``live.douyin.com/{unique_id}`` (the
streamer's handle), so a live streamer's profile follows there when ``"rooms"`` is
followed. A profile reached from a room page does not follow back (the same room
would be rendered twice under two URLs), nor a room page reached by handle to the
profile it came from.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response
from scrapy.settings import BaseSettings

from models.entities import Product, Room, Streamer
from models.errors import BlockedError
from settings.browser import browser_settings
from settings.defaults import value
from spiders.base import PlatformSpider
from spiders.douyin import pages, push
from spiders.douyin.middleware import SIGN
from spiders.meta import PAGE_META, RENDER_META

logger = logging.getLogger(__name__)

LIVE = "live.douyin.com"
WWW = "www.douyin.com"
PARTITION_PAGE = 15
SHELF_PAGE = 20
DEFAULT_FOLLOW = ("rooms", "streamers", "products")
#: Query parameters the web client sends with every live API call.
WEB_PARAMS = {"aid": "6383", "app_name": "douyin_web", "live_id": "1", "device_platform": "web",
              "language": "zh-CN", "browser_language": "zh-CN", "browser_platform": "Win32",
              "browser_name": "Chrome", "browser_version": "124.0.0.0"}
_PRIORITY = {"partition_rooms": 0, "room_page": 10, "im_fetch": 10, "shelf": 20, "user_profile": 20,
             "product_detail": 30}
#: What the web client sends to poll the room's message channel (besides WEB_PARAMS' browser fields).
IM_PARAMS = {"resp_content_type": "protobuf", "did_rule": "3", "device_id": "", "app_name": "douyin_web",
             "endpoint": "live_pc", "support_wrds": "1", "identity": "audience", "need_persist_msg_count": "15",
             "insert_task_id": "", "live_reason": "", "version_code": "180800", "last_rtt": "0", "live_id": "1",
             "aid": "6383", "fetch_rule": "1", "internal_ext": "", "device_platform": "web", "cookie_enabled": "true",
             "browser_language": "zh-CN", "browser_platform": "Win32", "browser_name": "Mozilla",
             "browser_online": "true", "tz_name": "Asia/Shanghai"}


class DouyinSpider(PlatformSpider):
    """Douyin Live: categories, rooms (rendered), shelves, products, streamers."""

    name = "douyin"
    platform: ClassVar[str] = "douyin"
    use_sessions: ClassVar[bool] = True

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """Install the browser download handler, for this spider only."""
        super().update_settings(settings)
        for name, setting in browser_settings(value(settings, "LIVEFLEET_CHROMIUM")).items():
            settings.set(name, setting, priority="spider")

    def warmup_request(self, session: str) -> scrapy.Request:
        """The home page hands a visitor its ``ttwid`` cookie, which every API call needs."""
        return scrapy.Request(self.url(LIVE, "/"), dont_filter=True)

    def signer_page_url(self) -> str:
        """A page of the site whose script can sign API calls (any page carries it)."""
        return self.url(LIVE, "/")

    def parse_payload(self, body: bytes, *, url: str, fetched_at: datetime, kind: str) -> list[Any]:
        if kind == "im_fetch":
            if not body.strip() or body.strip() == b"blocked":
                raise BlockedError("empty body: Douyin's risk-control answer", platform=self.platform, url=url)
            return push.parse(body, url=url, fetched_at=fetched_at).records
        return pages.parse(body, url=url, fetched_at=fetched_at, kind=kind)

    # -- requests ----------------------------------------------------------------------------

    def _api(self, kind: str, host: str, path: str, params: dict[str, Any], *, follow: Iterable[str],
             dont_filter: bool = False, method: str = "GET", form: dict[str, Any] | None = None,
             **context: Any) -> scrapy.Request:
        request = self.page_request(kind, self.url(host, path, params), priority=_PRIORITY.get(kind, 0),
                                    dont_filter=dont_filter, follow=list(follow), **context)
        request.meta[SIGN] = True
        if form is not None:
            return request.replace(method="POST", body=urlencode(form),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        return request.replace(method=method) if method != "GET" else request

    def room_page(self, ident: str, follow: Iterable[str], *, dont_filter: bool = False,
                  by_handle: bool = False) -> scrapy.Request:
        """The rendered room page: ``ident`` is its web_rid or, ``by_handle``, the streamer's unique_id."""
        context = {"handle": ident} if by_handle else {}
        request = self.page_request("room_page", self.url(LIVE, f"/{ident}"), priority=_PRIORITY["room_page"],
                                    dont_filter=dont_filter, follow=list(follow), **context)
        request.meta[RENDER_META] = {
            # The page marks <body data-ready> once its script has built (or failed to build) the state.
            "wait_for": "document.body && document.body.dataset.ready",
            "warm_url": self.url(LIVE, "/"),
            "warm_cookie": "ttwid",
        }
        return request

    def partition_page(self, partition: str, partition_type: str, page: int, *, max_pages: int,
                       follow: Iterable[str], dont_filter: bool = False) -> scrapy.Request:
        params = {**WEB_PARAMS, "enter_from": "link_share", "count": PARTITION_PAGE,
                  "offset": (page - 1) * PARTITION_PAGE, "partition": partition,
                  "partition_type": partition_type, "req_from": 2}
        return self._api("partition_rooms", LIVE, "/webcast/web/partition/detail/room/v2/", params,
                         follow=follow, dont_filter=dont_filter, partition=partition,
                         partition_type=partition_type, page=page, max_pages=max_pages)

    def shelf_page(self, room_id: str, author_id: str, offset: int, follow: Iterable[str]) -> scrapy.Request:
        params = {"device_platform": "webapp", "aid": "6383", "channel": "channel_pc_web", "room_id": room_id,
                  "author_id": author_id, "offset": offset, "limit": SHELF_PAGE}
        return self._api("shelf", LIVE, "/live/promotions/page/", params, follow=follow, room_id=room_id,
                         author_id=author_id, offset=offset)

    def profile(self, sec_uid: str, follow: Iterable[str], *, dont_filter: bool = False,
                via_room: bool = False) -> scrapy.Request:
        """The streamer's profile; ``via_room`` when a room page led here (it will not lead back)."""
        params = {"device_platform": "webapp", "aid": "6383", "channel": "channel_pc_web",
                  "sec_user_id": sec_uid}
        context = {"via_room": True} if via_room else {}
        return self._api("user_profile", WWW, "/aweme/v1/web/user/profile/other/", params, follow=follow,
                         dont_filter=dont_filter, **context)

    def product_detail(self, product: Product, room_id: str | None, follow: Iterable[str]) -> scrapy.Request:
        promotion = product.promotion_id or product.product_id
        params = {"device_platform": "webapp", "aid": "6383", "is_h5": 1, "origin_type": "638301"}
        form = {"bff_type": 2, "ec_promotion_id": promotion, "promotion_ids": promotion, "is_h5": 1,
                "item_id": 0, "room_id": room_id or "", "origin_type": "638301", "use_new_price": 1}
        return self._api("product_detail", LIVE, "/ecom/product/detail/saas/pc/", params, follow=follow,
                         form=form)

    def im_fetch(self, room_id: str, *, dont_filter: bool = False) -> scrapy.Request:
        """One poll of the live session's message channel (a protobuf ``Response``)."""
        params = {**IM_PARAMS, "room_id": room_id, "cursor": ""}
        return self._api("im_fetch", LIVE, "/webcast/im/fetch/", params, follow=(), dont_filter=dont_filter,
                         room_id=room_id)

    def requests_from_seed(self, seed: dict[str, Any]) -> Iterable[scrapy.Request]:
        kind, follow = seed.get("kind"), seed.get("follow", DEFAULT_FOLLOW)
        if kind == "category":
            return [self.partition_page(_digits(seed, "partition"), _digits(seed, "partition_type"), 1,
                                        max_pages=int(seed.get("max_pages", 3)), follow=follow, dont_filter=True)]
        if kind == "room":
            return [self.room_page(_digits(seed, "web_rid"), follow, dont_filter=True)]
        if kind == "streamer":
            sec_uid = str(seed.get("sec_uid") or "")
            if not sec_uid.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"douyin streamer seed needs a sec_uid, got {seed.get('sec_uid')!r}")
            return [self.profile(sec_uid, follow, dont_filter=True)]
        if kind == "push":
            return [self.im_fetch(_digits(seed, "room_id"), dont_filter=True)]
        raise ValueError(f"unknown douyin seed kind {kind!r} (category, room, streamer, push)")

    def follow(self, response: Response, kind: str, records: list[Any]) -> Iterable[scrapy.Request]:
        context = response.meta[PAGE_META]
        follow = context.get("follow", DEFAULT_FOLLOW)
        rooms = [r for r in records if isinstance(r, Room)]
        if kind == "partition_rooms":
            if len(rooms) >= PARTITION_PAGE and context["page"] < context["max_pages"]:
                yield self.partition_page(context["partition"], context["partition_type"], context["page"] + 1,
                                          max_pages=context["max_pages"], follow=follow)
            if "rooms" in follow:
                for room in rooms:
                    if room.web_rid:
                        yield self.room_page(room.web_rid, follow)
        if kind == "room_page":
            for room in rooms:
                if "products" in follow and room.status == "live" and room.streamer_id:
                    yield self.shelf_page(room.room_id, room.streamer_id, 0, follow)
                if "push" in follow and room.status == "live":
                    yield self.im_fetch(room.room_id)
            if "streamers" in follow and not context.get("handle"):  # by handle: the profile led here
                for streamer in records:
                    if isinstance(streamer, Streamer) and streamer.sec_id:
                        yield self.profile(streamer.sec_id, follow, via_room=True)
        if kind == "user_profile" and "rooms" in follow and not context.get("via_room"):
            yield from self._live_room_of(records, follow)
        if kind == "shelf":
            products = [p for p in records if isinstance(p, Product)]
            if len(products) >= SHELF_PAGE:
                yield self.shelf_page(context["room_id"], context["author_id"], context["offset"] + SHELF_PAGE,
                                      follow)
            if "products" in follow:
                for product in products:
                    yield self.product_detail(product, context["room_id"], follow)

    def _live_room_of(self, records: list[Any], follow: Iterable[str]) -> Iterable[scrapy.Request]:
        """A live streamer's room page, by their handle (the profile names no web_rid)."""
        for streamer in records:
            if not isinstance(streamer, Streamer) or not streamer.is_live:
                continue
            if streamer.handle:
                yield self.room_page(streamer.handle, follow, by_handle=True)
            else:
                self.crawler.stats.inc_value("livefleet/spider/douyin/profile_without_handle")
                logger.debug("Douyin streamer %s is live but their profile names no handle: no room page to "
                             "follow", streamer.streamer_id)

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        """The base parse; a room page asked for by handle echoes that handle as its ``web_rid``: dropped.

        Its contract, for ``scrapy check`` against the sandbox (``spiders/contracts.py``): a room page,
        rendered in Chromium.

        @seed {"kind": "room", "web_rid": "591632295043"}
        @returns items 1
        @returns requests 1
        @records rooms room_id web_rid streamer_id status
        """
        handle = (response.meta.get(PAGE_META) or {}).get("handle")
        async for item in super().parse_page(response):
            if handle and isinstance(item, Room) and item.web_rid == handle:
                item = item.model_copy(update={"web_rid": None})
            yield item


def _digits(seed: dict[str, Any], name: str) -> str:
    value = str(seed.get(name) or "").strip()
    if not value.isdigit():
        raise ValueError(f"douyin seed needs a numeric {name}, got {seed.get(name)!r}")
    return value
