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

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from sandbox.base import Platform, json_bytes, raw_response
from sandbox.douyin import im as IM
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
    hosts = ("live.douyin.com", "www.douyin.com", *IM.PUSH_HOSTS)
    #: Seconds between two frames of the push channel, and of silence after which a client is dropped.
    push_interval = 1.0
    idle_timeout = 30.0

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
        r.add_get(f"{LIVE}/webcast/im/fetch/", self.im_fetch, name="douyin:im_fetch")
        for host in IM.PUSH_HOSTS:
            r.add_get(f"/{host}/webcast/im/push/v2/", self.im_push, name=f"douyin:im_push:{host}")
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

    # -- the room's message channel (webcast IM: im.py) -------------------------------------------------
    def _channel_room(self, room_id: str | None) -> tuple[Room, LiveState] | None:
        found = self.world.session_of(_int(room_id, 0) or 0, self._now()[1])
        return (found[0], found[1]) if found is not None else None

    def _served_channel(self, endpoint: str, room: Room, now: float, minute: int) -> None:
        st = self.world.state(room, minute)
        self._served_room(endpoint, room, st, now)

    async def im_fetch(self, request: web.Request) -> web.Response:
        """``webcast/im/fetch/?room_id=&cursor=&resp_content_type=protobuf``: one protobuf ``Response``."""
        reason = await self._rejection(request)
        if reason:
            return self._refuse(reason)
        now, minute = self._now()
        found = self._channel_room(request.query.get("room_id"))
        if found is None:
            return raw_response(b"", headers={"X-Sandbox-Reject": "unknown room"})
        room, _ = found
        since = _cursor_minute(request.query.get("cursor", ""))
        now_ms = int(now * 1000)
        envelopes = IM.RoomChannel(self.world, room).messages(minute, since, now_ms)
        body = IM.response(envelopes, cursor=_cursor(now_ms), now_ms=now_ms,
                           internal_ext=_internal_ext(room, now_ms), need_ack=False)
        self._served_channel("im_fetch", room, now, minute)
        return raw_response(body, content_type="application/protobuf")

    async def im_push(self, request: web.Request) -> web.StreamResponse:
        """The push websocket: refused like an API (HTTP 200, empty) without ttwid or a valid signature."""
        reason = self._push_rejection(request)
        if reason:
            return self._refuse(reason)
        found = self._channel_room(request.query.get("room_id"))
        if found is None:
            return self._refuse("unknown room")
        room, _ = found
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        channel = IM.RoomChannel(self.world, room)
        heard = asyncio.get_running_loop().time()
        since: int | None = None
        seq = 0
        try:
            while not ws.closed:
                now, minute = self._now()
                now_ms = int(now * 1000)
                envelopes = channel.messages(minute, since, now_ms)
                seq += 1
                payload = IM.response(envelopes, cursor=_cursor(now_ms), now_ms=now_ms,
                                      internal_ext=_internal_ext(room, now_ms), need_ack=True)
                await ws.send_bytes(IM.push_frame(payload, log_id=mix(self.seed, room.web_rid, now_ms) % 10**18,
                                                  seq_id=seq))
                self._served_channel("im_push", room, now, minute)
                since = minute
                if envelopes and envelopes[0].method == "WebcastControlMessage":
                    break  # the broadcast ended: said once, then the channel closes
                deadline = asyncio.get_running_loop().time() + self.push_interval
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    try:
                        incoming = await ws.receive(timeout=left)
                    except TimeoutError:
                        break
                    if incoming.type == WSMsgType.BINARY:
                        try:
                            IM.read_client_frame(incoming.data)  # hb or ack: the client is alive
                            heard = asyncio.get_running_loop().time()
                        except ValueError:
                            await ws.close(code=1003, message=b"bad frame")
                    elif incoming.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                           WSMsgType.ERROR):
                        break
                if asyncio.get_running_loop().time() - heard > self.idle_timeout:
                    await ws.close(code=1000, message=b"idle")
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    def _push_rejection(self, request: web.Request) -> str | None:
        """Why a push handshake is refused: no ttwid, a stub that does not match, a bad or stale signature."""
        if not request.cookies.get("ttwid"):
            return "no ttwid"
        query = request.query
        signature = query.get("signature", "")
        if not signature:
            return "unsigned"
        stub = IM.ms_stub({name: query.get(name, "") for name in IM.STUB_PARAMS})
        return verify(signature, f"X-MS-STUB={stub}", request.headers.get("User-Agent", ""), b"", self._wall())


_CURSOR_RE = re.compile(r"(?:^|_)t-(\d{10,16})(?:_|$)")


def _cursor(now_ms: int) -> str:
    """A cursor in the real shape (``t-<ms>_r-1_d-1_u-1_h-1``): when this client was last served."""
    return f"t-{now_ms}_r-1_d-1_u-1_h-1"


def _cursor_minute(cursor: str) -> int | None:
    found = _CURSOR_RE.search(cursor or "")
    return int(found.group(1)) // 60_000 if found else None


def _internal_ext(room: Room, now_ms: int) -> str:
    return f"internal_src:dim|wss_push_room_id:{room.web_rid}|first_req_ms:{now_ms}|fetch_time:{now_ms}"
