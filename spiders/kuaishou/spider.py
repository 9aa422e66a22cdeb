"""The Kuaishou Live spider: plain HTTP, with sessions warmed by a home-page visit.

Kuaishou hands a visitor its ``did`` cookie on the first visit to
``live.kuaishou.com`` and answers everything else without it with its
verification state (``result: 400002``); each session of the pool is warmed
with that visit. Nothing here needs a browser.

Seeds (``livefleet crawl kuaishou``):

* ``{"kind": "categories", "types": [1, 6], "max_pages": 3}``: the categories
  of top types (1热门 2网游 3单机 4手游 5棋牌 6娱乐 7综合 8文化), then their live rooms;
* ``{"kind": "category", "game_id": "1000005", "max_pages": 3}``: one category's live rooms;
* ``{"kind": "room", "principal_id": "3x59tkbj2kecvgi"}``: a room page and its streamer;
* ``{"kind": "profile", "eid": "3x27q2f82gnxn4e"}``: a www.kuaishou.com profile (the eid of
  ``www.kuaishou.com/profile/{eid}``): the ``visionProfile`` GraphQL operation as the site's own page
  posts it, whose answer names the user by eid only (a ``Lead``), then the live site's room and
  profile answers for that eid, which carry the numeric user id the documents are keyed by;
* ``{"kind": "shop", "access_token": "...", "max_pages": 5}``: a shop's items through
  the 小店 open platform, with a token the shop granted. Kuaishou's public web has
  no live-room shelf API (see docs/kuaishou_formats.md), so products come from the
  shops that authorise livefleet.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, ClassVar

import scrapy
from scrapy.http import Response

from models.entities import Product, Room, Streamer
from spiders.base import PlatformSpider
from spiders.kuaishou import pages
from spiders.kuaishou.records import Lead
from spiders.meta import PAGE_META

LIVE = "live.kuaishou.com"
WWW = "www.kuaishou.com"
SHOP = "openapi.kwaixiaodian.com"
PAGE_SIZE = 20
DEFAULT_FOLLOW = ("rooms", "streamers", "products")
_PRIORITY = {"category_list": 0, "category_rooms": 0, "shelf": 0, "vision_profile": 10, "live_page": 20,
             "live_detail": 20, "profile": 20, "product_detail": 20}
#: The ``visionProfile`` operation as www.kuaishou.com's profile page sends it (operation, query, variables).
VISION_PROFILE_QUERY = (
    "query visionProfile($userId: String) {\n  visionProfile(userId: $userId) {\n    result\n    hostName\n"
    "    userProfile {\n      ownerCount {\n        fan\n        photo\n        follow\n        photo_public\n"
    "        __typename\n      }\n      profile {\n        gender\n        user_name\n        user_id\n"
    "        headurl\n        user_text\n        user_profile_bg_url\n        __typename\n      }\n"
    "      isFollowing\n      __typename\n    }\n    __typename\n  }\n}\n"
)


class KuaishouSpider(PlatformSpider):
    """Kuaishou Live: categories, live rooms, streamers, shop items."""

    name = "kuaishou"
    platform: ClassVar[str] = "kuaishou"
    use_sessions: ClassVar[bool] = True

    def warmup_request(self, session: str) -> scrapy.Request:
        """The first visit: the home page sets ``did`` (and ``clientid``, ``kpn``)."""
        return scrapy.Request(self.url(LIVE, "/"), dont_filter=True)

    def parse_payload(self, body: bytes, *, url: str, fetched_at: datetime, kind: str) -> list[Any]:
        records = pages.parse(body, url=url, fetched_at=fetched_at, kind=kind)
        if "access_token=" not in url:
            return records
        # A shop's token is a credential: it never reaches the store inside a source URL.
        clean = _redact(url)
        return [r.model_copy(update={"source_url": clean}) if getattr(r, "source_url", None) else r
                for r in records]

    def _request(self, kind: str, host: str, path: str, params: dict[str, Any] | None, *,
                 follow: Iterable[str], dont_filter: bool = False, **context: Any) -> scrapy.Request:
        return self.page_request(kind, self.url(host, path, params), priority=_PRIORITY.get(kind, 0),
                                 dont_filter=dont_filter, follow=list(follow), **context)

    def category_page(self, game_id: str, page: int, *, max_pages: int, follow: Iterable[str],
                      dont_filter: bool = False) -> scrapy.Request:
        # Kuaishou lists games (ids under 7 characters) and other categories on two boards.
        board = "gameboard" if len(game_id) < 7 else "non-gameboard"
        params = {"filterType": 0, "page": page, "pageSize": PAGE_SIZE, "gameId": game_id}
        return self._request("category_rooms", LIVE, f"/live_api/{board}/list", params, follow=follow,
                             dont_filter=dont_filter, game_id=game_id, page=page, max_pages=max_pages)

    def shop_page(self, token: str, page: int, *, max_pages: int, follow: Iterable[str],
                  dont_filter: bool = False) -> scrapy.Request:
        param = json.dumps({"pageNumber": page, "pageSize": PAGE_SIZE}, separators=(",", ":"))
        return self._request("shelf", SHOP, "/open/item/list/get", {"access_token": token, "param": param},
                             follow=follow, dont_filter=dont_filter, token=token, page=page, max_pages=max_pages)

    def room_requests(self, principal_id: str, follow: Iterable[str], **context: Any) -> list[scrapy.Request]:
        return [self._request("live_detail", LIVE, "/live_api/liveroom/livedetail",
                              {"principalId": principal_id}, follow=follow, **context)]

    def streamer_requests(self, principal_id: str, follow: Iterable[str], **context: Any) -> list[scrapy.Request]:
        return [self._request("profile", LIVE, "/live_api/baseuser/userinfo/byid",
                              {"principalId": principal_id}, follow=follow, **context)]

    def vision_profile_request(self, eid: str, follow: Iterable[str], *, dont_filter: bool = False) -> scrapy.Request:
        """``POST www.kuaishou.com/graphql`` visionProfile for ``eid``, with the page's Referer."""
        body = json.dumps({"operationName": "visionProfile", "variables": {"userId": eid},
                           "query": VISION_PROFILE_QUERY}, separators=(",", ":"), ensure_ascii=False)
        request = self._request("vision_profile", WWW, "/graphql", None, follow=follow, dont_filter=dont_filter)
        return request.replace(method="POST", body=body.encode(), headers={
            "Content-Type": "application/json", "Accept": "*/*",
            "Origin": "https://www.kuaishou.com", "Referer": f"https://www.kuaishou.com/profile/{eid}"})

    def requests_from_seed(self, seed: dict[str, Any]) -> Iterable[scrapy.Request]:
        kind, follow = seed.get("kind"), seed.get("follow", DEFAULT_FOLLOW)
        max_pages = int(seed.get("max_pages", 3))
        if kind == "categories":
            types = seed.get("types") or [1]
            return [self._request("category_list", LIVE, "/live_api/category/data",
                                  {"type": int(t), "page": 1, "pageSize": PAGE_SIZE}, follow=follow,
                                  dont_filter=True, max_pages=max_pages) for t in types]
        if kind == "category":
            return [self.category_page(_text(seed, "game_id"), 1, max_pages=max_pages, follow=follow,
                                       dont_filter=True)]
        if kind == "room":
            principal = _text(seed, "principal_id")
            return [self._request("live_page", LIVE, f"/u/{principal}", None, follow=follow, dont_filter=True),
                    *(r.replace(dont_filter=True) for r in self.streamer_requests(principal, follow))]
        if kind == "profile":
            return [self.vision_profile_request(_text(seed, "eid"), follow, dont_filter=True)]
        if kind == "shop":
            return [self.shop_page(_text(seed, "access_token"), 1, max_pages=max_pages, follow=follow,
                                   dont_filter=True)]
        raise ValueError(f"unknown kuaishou seed kind {kind!r} (categories, category, room, profile, shop)")

    def follow(self, response: Response, kind: str, records: list[Any]) -> Iterable[scrapy.Request]:
        context = response.meta[PAGE_META]
        follow = context.get("follow", DEFAULT_FOLLOW)
        if kind == "category_list":
            for category in records:
                if getattr(category, "category_id", None):
                    yield self.category_page(str(category.category_id), 1, max_pages=context["max_pages"],
                                             follow=follow)
            return
        rooms = [r for r in records if isinstance(r, Room)]
        if kind == "category_rooms":
            if len(rooms) >= PAGE_SIZE and context["page"] < context["max_pages"]:
                yield self.category_page(context["game_id"], context["page"] + 1,
                                         max_pages=context["max_pages"], follow=follow)
            # Rooms are keyed by user id, requests by the principalId of their URL (web_rid), and a
            # list item that names no user id is a Lead to that principalId (records.py).
            principals = [r.web_rid for r in rooms if r.web_rid]
            principals += [lead.principal_id for lead in records if isinstance(lead, Lead)]
            yield from self._principal_requests(principals, follow)
        if kind == "vision_profile":  # an eid only: the live site's answers name the user id
            leads = [r.principal_id for r in records if isinstance(r, Lead)]
            yield from self._principal_requests(leads, follow, eid=True)
        if kind == "shelf":
            products = [p for p in records if isinstance(p, Product)]
            if len(products) >= PAGE_SIZE and context["page"] < context["max_pages"]:
                yield self.shop_page(context["token"], context["page"] + 1, max_pages=context["max_pages"],
                                     follow=follow)
            if "products" in follow:
                for product in products:
                    param = json.dumps({"kwaiItemId": int(product.product_id)}, separators=(",", ":"))
                    yield self._request("product_detail", SHOP, "/open/item/get",
                                        {"access_token": context["token"], "param": param}, follow=follow)


    def _principal_requests(self, principals: Iterable[str], follow: Iterable[str], *,
                            eid: bool = False) -> Iterable[scrapy.Request]:
        """The live site's room and profile answers for each principalId, once each; ``eid``: the
        principalIds are eids (www.kuaishou.com named them so), remembered for ``annotate``."""
        for principal in dict.fromkeys(principals):
            context = {"eid": principal} if eid else {}
            if "rooms" in follow:
                yield from self.room_requests(principal, follow, **context)
            if "streamers" in follow:
                yield from self.streamer_requests(principal, follow, **context)

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        """The base parse (``PlatformSpider.parse_page``). Its contract, for ``scrapy check`` against the
        sandbox (``spiders/contracts.py``):

        @seed {"kind": "room", "principal_id": "ks9416533321"} live_page
        @returns items 1
        @records rooms room_id streamer_id status
        @records streamers streamer_id nickname
        """
        async for item in super().parse_page(response):
            yield item

    def annotate(self, response: Response, kind: str, records: list[Any]) -> list[Any]:
        """A live-site answer fetched for an eid www.kuaishou.com gave: its one streamer gets that
        eid as ``sec_id`` (the live site omits the eid of a user who set a kwaiId)."""
        eid = response.meta[PAGE_META].get("eid")
        streamers = [r for r in records if isinstance(r, Streamer)]
        if not eid or len(streamers) != 1 or streamers[0].sec_id:
            return records
        return [r.model_copy(update={"sec_id": eid}) if r is streamers[0] else r for r in records]


def _redact(url: str) -> str:
    base, _, query = url.partition("?")
    kept = [p if not p.startswith("access_token=") else "access_token=REDACTED" for p in query.split("&")]
    return f"{base}?{'&'.join(kept)}"


def _text(seed: dict[str, Any], name: str) -> str:
    value = str(seed.get(name) or "").strip()
    if not value or any(c in value for c in "/?#&"):
        raise ValueError(f"kuaishou seed needs a plain {name}, got {seed.get(name)!r}")
    return value
