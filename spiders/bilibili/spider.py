"""The Bilibili Live spider: builds requests, calls the pure parsers, yields records.

Seeds (pushed by ``livefleet crawl bilibili``, or given as ``-a seeds=JSON``):

* ``{"kind": "areas"}``: every area of the area tree, then as for ``area``.
* ``{"kind": "area", "parent_area_id": 2, "area_id": 0, "max_pages": 5}``:
  the live rooms of an area (``area_id`` 0 = the whole parent area), page by
  page; each room's details and its streamer's profile follow.
* ``{"kind": "room", "room_id": "5440"}`` (long or short id): room_init,
  then the room's details.
* ``{"kind": "streamer", "uid": "9617619"}``: the streamer's card, master
  info, space profile (``x/space/wbi/acc/info``, WBI-signed at download time by
  ``middleware.WbiSignMiddleware``), follower counts (``x/relation/stat``) and room.

* ``{"kind": "status", "uids": ["9617619", "2", ...]}``: the live status of many streamers at
  once, ``room/v1/Room/get_status_info_by_uids`` (``STATUS_BATCH`` uids per request): one answer
  gives each uid's room, live status, title, online count, area and live start. The cheap way to
  check a watchlist: by default nothing is followed (``follow`` ``["rooms"]`` fetches the details
  of the rooms that are live).

``follow`` (a list, default ``["rooms", "streamers"]``) says how deep to go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, ClassVar

import scrapy
from scrapy.http import Response

from models.entities import Room, Streamer
from spiders.base import PlatformSpider
from spiders.bilibili import pages
from spiders.meta import PAGE_META, WBI_META

LIVE_API = "api.live.bilibili.com"
MAIN_API = "api.bilibili.com"
DEFAULT_FOLLOW = ("rooms", "streamers")
PAGE_SIZE = 30
#: uids per get_status_info_by_uids request (the site's own pages ask for tens at a time; a GET
#: of 50 ``uids[]=`` stays well under URL length limits).
STATUS_BATCH = 50

# Detail pages go before new list pages, so a crawl finishes rooms it has found
# before it discovers more (bounded memory in the queue, fresher snapshots).
_PRIORITY = {"area_list": 0, "area_room_list": 0, "status_by_uids": 0, "room_init": 10, "room_info": 20,
             "info_by_room": 20,
             "user_card": 20, "master_info": 20, "room_info_old": 20, "acc_info": 20, "relation_stat": 20}


class BilibiliSpider(PlatformSpider):
    """Bilibili Live: areas, live rooms, streamers."""

    name = "bilibili"
    platform: ClassVar[str] = "bilibili"
    use_sessions: ClassVar[bool] = True
    # Bilibili sends its block answer (-412) with HTTP 412: the parser reads it as a block.
    handle_httpstatus_list: ClassVar[list[int]] = [412]
    #: The host of x/web-interface/nav, where WbiSignMiddleware reads the WBI keys.
    nav_host: ClassVar[str] = MAIN_API

    def warmup_request(self, session: str) -> scrapy.Request:
        """A new session gets its own ``buvid3`` device cookie, as the web page does
        (risk control answers -352 without one; a blocked session is warmed again)."""
        return scrapy.Request(self.url(MAIN_API, "/x/frontend/finger/spi"), dont_filter=True)

    def parse_payload(self, body: bytes, *, url: str, fetched_at: datetime, kind: str) -> list[Any]:
        return pages.parse(body, url=url, fetched_at=fetched_at, kind=kind)

    # -- requests ----------------------------------------------------------------------------

    def _request(self, kind: str, host: str, path: str, params: dict[str, Any], *, follow: Iterable[str],
                 dont_filter: bool = False, **context: Any) -> scrapy.Request:
        return self.page_request(kind, self.url(host, path, params), priority=_PRIORITY.get(kind, 0),
                                 dont_filter=dont_filter, follow=list(follow), **context)

    def area_page(self, parent_area_id: int, area_id: int, page: int, *, max_pages: int,
                  follow: Iterable[str], dont_filter: bool = False) -> scrapy.Request:
        params = {"parent_area_id": parent_area_id, "area_id": area_id, "page": page,
                  "page_size": PAGE_SIZE, "sort_type": "online"}
        return self._request("area_room_list", LIVE_API, "/room/v1/Area/getRoomList", params, follow=follow,
                             dont_filter=dont_filter, page=page, max_pages=max_pages,
                             parent_area_id=parent_area_id, area_id=area_id)

    def room_requests(self, room_id: str, follow: Iterable[str]) -> list[scrapy.Request]:
        return [self._request("room_info", LIVE_API, "/room/v1/Room/get_info", {"room_id": room_id},
                              follow=follow)]

    def streamer_requests(self, uid: str, follow: Iterable[str]) -> list[scrapy.Request]:
        return [
            self._request("user_card", MAIN_API, "/x/web-interface/card", {"mid": uid}, follow=follow),
            self._request("master_info", LIVE_API, "/live_user/v1/Master/info", {"uid": uid}, follow=follow),
        ]

    def space_requests(self, uid: str, follow: Iterable[str]) -> list[scrapy.Request]:
        """The space profile (WBI-signed at download time) and the follower counts."""
        info = self._request("acc_info", MAIN_API, "/x/space/wbi/acc/info", {"mid": uid}, follow=follow)
        info.meta[WBI_META] = True
        return [info, self._request("relation_stat", MAIN_API, "/x/relation/stat", {"vmid": uid}, follow=follow)]

    def status_requests(self, uids: Iterable[str], follow: Iterable[str], *,
                        dont_filter: bool = False) -> list[scrapy.Request]:
        """``get_status_info_by_uids`` for ``uids``, ``STATUS_BATCH`` at a time (sorted: the same
        watchlist gives the same requests)."""
        ordered = sorted(set(uids), key=int)
        return [self._request("status_by_uids", LIVE_API, "/room/v1/Room/get_status_info_by_uids",
                              {"uids[]": ordered[i:i + STATUS_BATCH]}, follow=follow, dont_filter=dont_filter)
                for i in range(0, len(ordered), STATUS_BATCH)]

    def requests_from_seed(self, seed: dict[str, Any]) -> Iterable[scrapy.Request]:
        kind = seed.get("kind")
        if kind == "status":
            uids = seed.get("uids")
            if not isinstance(uids, list) or not uids:
                raise ValueError("a bilibili status seed needs a non-empty list of uids")
            return self.status_requests([_id({"uid": u}, "uid") for u in uids], seed.get("follow", ()),
                                        dont_filter=True)
        follow = seed.get("follow", DEFAULT_FOLLOW)
        if kind == "areas":
            return [self._request("area_list", LIVE_API, "/room/v1/Area/getList", {}, follow=follow,
                                  dont_filter=True, max_pages=int(seed.get("max_pages", 5)))]
        if kind == "area":
            return [self.area_page(int(seed["parent_area_id"]), int(seed.get("area_id", 0)), 1,
                                   max_pages=int(seed.get("max_pages", 5)), follow=follow, dont_filter=True)]
        if kind == "room":
            return [self._request("room_init", LIVE_API, "/room/v1/Room/room_init",
                                  {"id": _id(seed, "room_id")}, follow=follow, dont_filter=True)]
        if kind == "streamer":
            uid = _id(seed, "uid")
            return [
                *(r.replace(dont_filter=True) for r in self.streamer_requests(uid, follow)),
                *(r.replace(dont_filter=True) for r in self.space_requests(uid, follow)),
                self._request("room_info_old", LIVE_API, "/room/v1/Room/getRoomInfoOld", {"mid": uid},
                              follow=follow, dont_filter=True),
            ]
        raise ValueError(f"unknown bilibili seed kind {kind!r} (areas, area, room, streamer, status)")

    def follow(self, response: Response, kind: str, records: list[Any]) -> Iterable[scrapy.Request]:
        context = response.meta[PAGE_META]
        follow = context.get("follow", DEFAULT_FOLLOW)
        rooms = [r for r in records if isinstance(r, Room)]
        if kind == "area_list":
            max_pages = context.get("max_pages", 5)
            for area in records:
                if getattr(area, "parent_id", None):  # sub-areas only: their parents list the same rooms
                    yield self.area_page(int(area.parent_id), int(area.area_id), 1, max_pages=max_pages,
                                         follow=follow)
            return
        if kind == "area_room_list":
            page, max_pages = context["page"], context["max_pages"]
            if len(rooms) >= PAGE_SIZE and page < max_pages:
                yield self.area_page(context["parent_area_id"], context["area_id"], page + 1,
                                     max_pages=max_pages, follow=follow)
            if "rooms" in follow:
                for room in rooms:
                    yield from self.room_requests(room.room_id, follow)
        if kind == "status_by_uids" and "rooms" in follow:
            for room in rooms:
                if room.status == "live":
                    yield from self.room_requests(room.room_id, follow)
        if kind in ("room_init", "room_info_old") and "rooms" in follow:
            for room in rooms:
                yield from self.room_requests(room.room_id, follow)
                # A room asked for by name gets the richer page too (needs the buvid3 cookie).
                yield self._request("info_by_room", LIVE_API, "/xlive/web-room/v1/index/getInfoByRoom",
                                    {"room_id": room.room_id}, follow=follow)
        if kind in ("area_room_list", "room_info", "room_init") and "streamers" in follow:
            uids = {r.streamer_id for r in rooms if r.streamer_id}
            uids |= {s.streamer_id for s in records if isinstance(s, Streamer)}
            for uid in sorted(uids):
                yield from self.streamer_requests(uid, follow)

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        """The base parse (``PlatformSpider.parse_page``). Its contract, for ``scrapy check`` against the
        sandbox (``spiders/contracts.py``):

        @seed {"kind": "room", "room_id": "13401884"}
        @returns items 1 1
        @returns requests 1
        @records rooms room_id streamer_id status
        """
        async for item in super().parse_page(response):
            yield item


def _id(seed: dict[str, Any], name: str) -> str:
    value = str(seed.get(name) or "").strip()
    if not value.isdigit():
        raise ValueError(f"bilibili seed needs a numeric {name}, got {seed.get(name)!r}")
    return value
