"""Douyin live in the sandbox: real paths and formats, a browser-only room page, signed APIs.

Served under ``/live.douyin.com/...`` and ``/www.douyin.com/...``:

* ``GET /live.douyin.com/`` home page: sets ``ttwid`` and ``__ac_nonce``; embeds the
  category tree and the signing script (so it doubles as a signer page);
* ``GET /live.douyin.com/{web_rid}`` room page: without ``ttwid`` the captcha page
  (HTTP 200); with it an HTML shell whose own script signs and calls the enter API,
  then embeds the state and renders; a plain HTTP client never sees room data;
* signed JSON APIs (``a_bogus`` or ``X-Bogus`` over the raw query, the POST body and the
  User-Agent; see ``douyin_sign.py``): ``webcast/room/web/enter/``,
  ``live/promotions/page/`` (GET or POST), ``ecom/product/detail/saas/pc/`` (POST),
  ``webcast/web/partition/detail/room/v2/`` and ``www.douyin.com/aweme/v1/web/user/profile/other/``.
  No ``ttwid`` cookie, or a missing, altered or stale signature: HTTP 200 with an empty
  body, Douyin's risk-control answer (the ``X-Sandbox-Reject`` header says why).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from sandbox.base import Platform, json_bytes, raw_response
from sandbox.douyin import pages as H
from sandbox.douyin import payloads as P
from sandbox.douyin import shop as Shop
from sandbox.douyin.sign import split_query, verify
from sandbox.douyin.world import DouyinWorld, LiveState, Room
from sandbox.world import WorldClock, hex_digest, mix, text_key

LIVE = "/live.douyin.com"
WWW = "/www.douyin.com"
_PAGES = ("douyin:home", "douyin:home_bare", "douyin:room_page")
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class DouyinPlatform(Platform):
    """The Douyin live replica over a ``DouyinWorld``.

    ``wall`` (unix seconds) is the clock signatures are checked against: the browser
    signs with its real clock, whatever the world time is.
    """

    name = "douyin"
    hosts = ("live.douyin.com", "www.douyin.com")

    def __init__(
        self,
        seed: int,
        n_streamers: int,
        faults: bool,
        clock: WorldClock,
        served_limit: int,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(served_limit)
        self.seed = seed
        self.clock = clock
        self.world = DouyinWorld(seed, n_streamers, faults, start=clock.now())
        self._wall = wall
        self._ids = itertools.count(1)
        self._categories = P.category_data()

    # -- Platform ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Register the Douyin endpoints (API paths before the ``{web_rid}`` catch-all)."""
        r = app.router
        r.add_get(f"{LIVE}/webcast/room/web/enter/", self.enter, name="douyin:enter")
        r.add_get(f"{LIVE}/live/promotions/page/", self.promotions, name="douyin:promotions")
        r.add_post(f"{LIVE}/live/promotions/page/", self.promotions, name="douyin:promotions_post")
        r.add_post(f"{LIVE}/ecom/product/detail/saas/pc/", self.product_detail, name="douyin:product_detail")
        r.add_get(f"{LIVE}/webcast/web/partition/detail/room/v2/", self.partition_rooms, name="douyin:partition")
        r.add_get(f"{WWW}/aweme/v1/web/user/profile/other/", self.profile, name="douyin:profile")
        r.add_get(f"{LIVE}/", self.home, name="douyin:home")
        r.add_get(LIVE, self.home, name="douyin:home_bare")
        r.add_get(LIVE + "/{web_rid}", self.room_page, name="douyin:room_page")

    def truth(self) -> dict[str, Any]:
        """Ground truth as of the current world time."""
        return self.world.truth(self.clock.now())

    def client_key(self, request: web.Request) -> str:
        """A client is its ttwid cookie, else its address and User-Agent."""
        ttwid = request.cookies.get("ttwid")
        if ttwid:
            return "t:" + ttwid
        return f"a:{request.remote}|{request.headers.get('User-Agent', '')}"

    def rate_limited(self, request: web.Request) -> web.Response:
        """Douyin does not say "too many requests": pages get the captcha, APIs an empty body."""
        return self.risk_blocked(request)

    def risk_blocked(self, request: web.Request) -> web.Response:
        """HTTP 200 either way: the slider captcha page for pages, an empty body for APIs."""
        if request.match_info.route.name in _PAGES:
            return raw_response(H.CAPTCHA_PAGE, content_type=H.HTML_TYPE)
        return raw_response(b"", headers={"X-Sandbox-Reject": "risk control"})

    # -- helpers ------------------------------------------------------------------------------
    def _now(self) -> tuple[float, int]:
        now = self.clock.now()
        return now, int(now // 60)

    def _log_id(self, now: float) -> str:
        return Shop.log_id(now, next(self._ids))

    def _ttwid(self) -> str:
        n = next(self._ids)
        token = "".join(_B64URL[mix(self.seed, 0x77, n, i) % 64] for i in range(43))
        return f"1%7C{token}%7C{int(self._wall())}%7C{hex_digest(64, self.seed, 0x78, n)}"

    def _odin(self, ttwid: str) -> dict[str, Any]:
        """The page's visitor block: an anonymous user whose ids derive from the ttwid."""
        uid = str(7_000_000_000_000_000_000 + mix(self.seed, text_key(ttwid)) % 10**18)
        return {"user_id": uid, "user_type": 12, "user_is_auth": 0, "user_is_login": 0, "user_unique_id": uid}

    def _set_visitor_cookies(self, response: web.Response, ttwid: str | None) -> None:
        if ttwid is None:
            response.set_cookie("ttwid", self._ttwid(), path="/", max_age=31_536_000, httponly=True)
        response.set_cookie("__ac_nonce", hex_digest(21, self.seed, 0xAC, next(self._ids)), path="/", max_age=1800)

    async def _rejection(self, request: web.Request) -> str | None:
        """Why this API request is refused (no ttwid, bad or stale signature), or None."""
        if not request.cookies.get("ttwid"):
            return "no ttwid"
        query, signature = split_query(request.rel_url.raw_query_string)
        if not signature:
            return "unsigned"
        body = await request.read() if request.method == "POST" else b""
        return verify(signature, query, request.headers.get("User-Agent", ""), body, self._wall())

    @staticmethod
    def _refuse(reason: str) -> web.Response:
        return raw_response(b"", headers={"X-Sandbox-Reject": reason})

    def _room(self, ident: str | None) -> Room | None:
        """A room by web_rid, or by its streamer's unique_id (the real site accepts both in URLs)."""
        if not ident:
            return None
        web_rid = _int(ident)
        room = self.world.room_by_web_rid.get(web_rid) if web_rid is not None else None
        if room is None:
            streamer = self.world.streamer_by_unique_id.get(ident)
            room = self.world.room_by_web_rid[streamer.web_rid] if streamer else None
        return room

    def _served_room(self, endpoint: str, room: Room, st: LiveState, now: float) -> None:
        self.served.add(
            endpoint,
            str(st.room_id),
            st.status,
            st.user_count,
            now,
            {"web_rid": str(room.web_rid), "total_user": st.total_user, "like_count": st.like_count},
        )

    # -- pages ----------------------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.Response:
        """``live.douyin.com/``: categories and the signer; hands out the visitor cookies."""
        ttwid = request.cookies.get("ttwid")
        nonce = hex_digest(21, self.seed, 0x40, next(self._ids))
        body = H.home_page(nonce, self._odin(ttwid or nonce), self._categories)
        response = raw_response(body, content_type=H.HTML_TYPE)
        self._set_visitor_cookies(response, ttwid)
        return response

    async def room_page(self, request: web.Request) -> web.Response:
        """``live.douyin.com/{web_rid}``: captcha without ttwid (cookies set for the retry), else the shell."""
        ttwid = request.cookies.get("ttwid")
        if not ttwid:
            response = raw_response(H.CAPTCHA_PAGE, content_type=H.HTML_TYPE)
            self._set_visitor_cookies(response, None)
            return response
        nonce = hex_digest(21, self.seed, 0x40, next(self._ids))
        body = H.room_shell(nonce, self._odin(ttwid), request.match_info["web_rid"])
        return raw_response(body, content_type=H.HTML_TYPE)

    # -- live.douyin.com APIs ------------------------------------------------------------------
    async def enter(self, request: web.Request) -> web.Response:
        """``webcast/room/web/enter/?web_rid=``: the room (live or ended) and its owner."""
        reason = await self._rejection(request)
        if reason:
            return self._refuse(reason)
        now, minute = self._now()
        room = self._room(request.query.get("web_rid"))
        if room is None:
            return raw_response(json_bytes(P.enter_unknown(int(now * 1000))))
        st = self.world.state(room, minute)
        streamer = self.world.streamer_by_uid[room.uid]
        products = len(self.world.cart(room, minute))
        body = json_bytes(P.enter(room, streamer, st, products, int(now * 1000)))
        if room.fault == "truncated_json":
            body = body[: len(body) // 2]  # the connection dropped mid-answer
        self._served_room("enter", room, st, now)
        return raw_response(body)

    async def promotions(self, request: web.Request) -> web.Response:
        """``live/promotions/page/?room_id=&author_id=&offset=&limit=``: the live shelf, paginated."""
        reason = await self._rejection(request)
        if reason:
            return self._refuse(reason)
        q = request.query
        now, minute = self._now()
        offset = max(0, _int(q.get("offset"), 0) or 0)
        limit = min(100, max(1, _int(q.get("limit"), 20) or 20))
        found = self.world.session_of(_int(q.get("room_id"), 0) or 0, minute)
        author = q.get("author_id")
        if found is None or not found[2] or (author and author != str(found[0].uid)):
            return raw_response(json_bytes(Shop.shelf_empty(minute, self._log_id(now))))
        room, st, _ = found
        if room.fault == "html_page":
            return raw_response(H.error_page(), content_type=H.HTML_TYPE)
        items = self.world.cart(room, minute)
        page = items[offset : offset + limit]
        next_offset = offset + limit if offset + limit < len(items) else -1
        streamer = self.world.streamer_by_uid[room.uid]
        body = Shop.shelf_page(page, len(items), next_offset, room, streamer, st, minute, self._log_id(now))
        for item in page:
            p = item.product
            extra = {
                "web_rid": str(room.web_rid),
                "product_id": str(p.product_id),
                "promotion_id": str(p.promotion_id),
                "index": item.index,
                "min_price": item.min_price,
                "max_price": item.max_price,
                "sale_num": item.sale_num,
            }
            self.served.add("promotions", str(st.room_id), st.status, None, now, extra)
        return raw_response(json_bytes(body))

    async def product_detail(self, request: web.Request) -> web.Response:
        """``ecom/product/detail/saas/pc/`` (POST form ``ec_promotion_id``/``promotion_ids``)."""
        reason = await self._rejection(request)
        if reason:
            return self._refuse(reason)
        form = dict(parse_qsl((await request.read()).decode("utf-8", "replace"), keep_blank_values=True))
        wanted: list[str] = []
        for key in ("ec_promotion_id", "promotion_ids"):
            for part in form.get(key, request.query.get(key, "")).split(","):
                if part.strip() and part.strip() not in wanted:
                    wanted.append(part.strip())
        now, minute = self._now()
        found, missing = [], []
        for ident in wanted:
            hit = self.world.product_by_promotion.get(_int(ident, -1) or -1)
            if hit is None:
                missing.append(ident)
                continue
            product, room = hit
            st = self.world.state(room, minute)
            item = next(i for i in self.world.shelf(room, minute, st.live) if i.product is product)
            found.append((item, room, self.world.streamer_by_uid[room.uid], st))
            extra = {
                "web_rid": str(room.web_rid),
                "product_id": str(product.product_id),
                "promotion_id": ident,
                "min_price": item.min_price,
                "sale_num": item.sale_num,
            }
            self.served.add("product_detail", str(st.room_id), st.status, None, now, extra)
        body = Shop.product_detail(found, missing, int(now * 1000), self._log_id(now))
        return raw_response(json_bytes(body))

    async def partition_rooms(self, request: web.Request) -> web.Response:
        """``webcast/web/partition/detail/room/v2/?partition=&partition_type=&offset=&count=``."""
        reason = await self._rejection(request)
        if reason:
            return self._refuse(reason)
        q = request.query
        now, minute = self._now()
        offset = max(0, _int(q.get("offset"), 0) or 0)
        count = min(50, max(1, _int(q.get("count"), 15) or 15))
        rows = self.world.live_in_partition(q.get("partition", "720"), minute)[offset : offset + count]
        items = []
        for room, st in rows:
            streamer = self.world.streamer_by_uid[room.uid]
            items.append(P.partition_item(room, streamer, st, len(self.world.cart(room, minute))))
            self._served_room("partition", room, st, now)
        body = {"data": {"count": len(items), "data": items}, "extra": {"now": int(now * 1000)}, "status_code": 0}
        return raw_response(json_bytes(body))

    # -- www.douyin.com -------------------------------------------------------------------------
    async def profile(self, request: web.Request) -> web.Response:
        """``aweme/v1/web/user/profile/other/?sec_user_id=``: the streamer's profile."""
        reason = await self._rejection(request)
        if reason:
            return self._refuse(reason)
        now, minute = self._now()
        streamer = self.world.streamer_by_sec_uid.get(request.query.get("sec_user_id", ""))
        if streamer is None:
            return raw_response(json_bytes(Shop.profile_unknown(int(now * 1000), self._log_id(now))))
        room = self.world.room_by_web_rid[streamer.web_rid]
        st = self.world.state(room, minute)
        self.served.add("profile", str(st.room_id), st.status, None, now, {"web_rid": str(room.web_rid)})
        return raw_response(json_bytes(Shop.profile(streamer, st, int(now * 1000), self._log_id(now))))
