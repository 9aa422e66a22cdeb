"""Kuaishou live in the sandbox: the room page, the live_api endpoints and the 小店 item APIs.

Served under ``/live.kuaishou.com/...``, ``/www.kuaishou.com/...`` and ``/openapi.kwaixiaodian.com/...``:

* ``GET /live.kuaishou.com/`` -- the first visit: sets ``did=web_<32 hex>`` (when the client has
  none), ``clientid=3`` and ``kpn=GAME_ZONE``. Every other live.kuaishou.com answer needs ``did``:
  without it the room page is the verification state (HTTP 200, errorType 400002) and the APIs
  answer ``{"data":{"result":400002,"url":captcha}}``; the rate-limit key is the did.
* ``GET /u/{principalId}`` (or the user's eid), ``GET /live_api/liveroom/livedetail?principalId=``,
  ``/live_api/baseuser/userinfo/byid?principalId=``, ``/live_api/category/data?type=&page=&pageSize=``,
  ``/live_api/gameboard/list`` and ``/live_api/non-gameboard/list?gameId=&page=&pageSize=``.
* ``GET /live_api/follow/living`` -- the logged-in viewer's followed streamers who are live (``follow.py``).
* ``POST /www.kuaishou.com/graphql`` -- the main site's GraphQL (``visionProfile``; ``vision.py``).
* ``GET /openapi.kwaixiaodian.com/open/item/list/get?access_token=&param={"pageNumber","pageSize"}``
  and ``/open/item/get?access_token=&param={"kwaiItemId"}`` -- a seller's items (token in truth).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.base import Platform, json_bytes, raw_response
from sandbox.kuaishou import follow, vision
from sandbox.kuaishou import payloads as P
from sandbox.kuaishou.world import CATEGORIES, KsRoom, KsWorld
from sandbox.world import WorldClock, hex_digest

LIVE = "/live.kuaishou.com"
SHOP = "/openapi.kwaixiaodian.com"
HTML_TYPE = "text/html; charset=utf-8"
CAPTCHA = "https://captcha.zt.kuaishou.com/iframe/index.html?captchaSession={}&type=1&bizName=ANTICRAWL_DEFAULT"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class KuaishouPlatform(Platform):
    """The Kuaishou replica over a ``KsWorld``."""

    name = "kuaishou"
    hosts = ("live.kuaishou.com", "www.kuaishou.com", "openapi.kwaixiaodian.com")

    def __init__(self, seed: int, n_streamers: int, faults: bool, clock: WorldClock, served_limit: int) -> None:
        super().__init__(served_limit)
        self.seed = seed
        self.clock = clock
        self.world = KsWorld(seed, n_streamers, faults, start=clock.now())
        self._ids = itertools.count(1)

    # -- Platform ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Register the Kuaishou endpoints."""
        routes: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            (f"{LIVE}/", "home", self.home),
            (f"{LIVE}/u/{{principal}}", "room_page", self.room_page),
            (f"{LIVE}/live_api/liveroom/livedetail", "livedetail", self.livedetail),
            (f"{LIVE}/live_api/baseuser/userinfo/byid", "userinfo_byid", self.userinfo),
            (f"{LIVE}/live_api/category/data", "category_data", self.category_data),
            (f"{LIVE}/live_api/gameboard/list", "gameboard_list", self.board_list),
            (f"{LIVE}/live_api/non-gameboard/list", "non_gameboard_list", self.board_list),
            (f"{LIVE}/live_api/follow/living", "follow_living", self.follow_living),
            (f"{SHOP}/open/item/list/get", "open_item_list_get", self.item_list),
            (f"{SHOP}/open/item/get", "open_item_get", self.item_get),
        ]
        for path, endpoint, handler in routes:
            app.router.add_get(path, handler, name=f"kuaishou:{endpoint}")
        app.router.add_post(f"{vision.WWW}/graphql", self.www_graphql, name="kuaishou:www_graphql")

    def truth(self) -> dict[str, Any]:
        """Ground truth as of the current world time."""
        return self.world.truth(self.clock.now())

    def client_key(self, request: web.Request) -> str:
        """A client is its did cookie (the seller's token on the open platform), else address + UA."""
        did = request.cookies.get("did")
        if did:
            return "d:" + did
        token = request.query.get("access_token")
        if token:
            return "t:" + token
        return f"a:{request.remote}|{request.headers.get('User-Agent', '')}"

    def rate_limited(self, request: web.Request) -> web.Response:
        """result 2 (请求过快): the page's errorType 2, the APIs' ``data.result`` 2."""
        return self._refusal(request, P.TOO_FAST)

    def risk_blocked(self, request: web.Request) -> web.Response:
        """The slider-captcha state, HTTP 200: errorType / data.result 400002 with the captcha URL."""
        return self._refusal(request, P.VERIFY)

    # -- helpers --------------------------------------------------------------------------------
    def _request_id(self) -> str:
        return hex_digest(16, self.seed, 0x1D, next(self._ids))

    def _refusal(self, request: web.Request, error: dict[str, Any]) -> web.Response:
        path = request.path
        if path.startswith(SHOP):
            return raw_response(json_bytes(P.open_error(error["title"], self._request_id())))
        if path.startswith(f"{LIVE}/u/"):
            refused = {"liveStream": {}, "author": {}, "gameInfo": {}, "isLiving": False, "errorType": error}
            return raw_response(P.page_html(refused, "快手直播"), content_type=HTML_TYPE)
        data: dict[str, Any] = {"result": error["type"]}
        if error["type"] == 400002:
            session = hex_digest(24, self.seed, 0xCA, next(self._ids))
            data.update(url=CAPTCHA.format(session), jsSdkUrl="//static.yximgs.com/udata/pkg/iv.umd.js")
        return raw_response(json_bytes({"data": data}))

    def _now(self) -> tuple[float, int]:
        now = self.clock.now()
        return round(now, 3), int(now // 60)

    def _served(self, endpoint: str, room: KsRoom, minute: int, now: float) -> Any:
        st = self.world.live_now(room, minute)
        extra = {"likeCount": st.likes, "liveStreamId": st.live_stream_id}
        self.served.add(endpoint, room.user.principal_id, int(st.living), st.watching, now, extra)
        return st

    def _room(self, request: web.Request) -> KsRoom | None:
        return self.world.by_any.get(request.query.get("principalId", ""))

    async def follow_living(self, request: web.Request) -> web.Response:
        """``follow/living``: the logged-in viewer's followed streamers live now (``follow.py``)."""
        if not request.cookies.get("did"):
            return self.risk_blocked(request)
        _, minute = self._now()
        rooms = ((room, self.world.live_now(room, minute)) for room in self.world.rooms)
        return raw_response(json_bytes(follow.living(self.seed, request.cookies.get("userId"), rooms)))

    # -- www.kuaishou.com ---------------------------------------------------------------------
    async def www_graphql(self, request: web.Request) -> web.Response:
        """``POST www.kuaishou.com/graphql``: the main site's GraphQL (``vision.py``)."""
        room_of = self.world.by_any.get
        return await vision.graphql(request, lambda key: room.user if (room := room_of(key)) else None)

    # -- live.kuaishou.com --------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.Response:
        """The first visit: mints the did cookie (and clientid, kpn) as the home page does."""
        response = raw_response(P.home_html(), content_type=HTML_TYPE)
        if not request.cookies.get("did"):
            response.set_cookie("did", "web_" + hex_digest(32, self.seed, 0xD1D, next(self._ids)), path="/")
        response.set_cookie("clientid", "3", path="/")
        response.set_cookie("kpn", "GAME_ZONE", path="/")
        return response

    async def room_page(self, request: web.Request) -> web.Response:
        """``/u/{principalId}``: the page state; verification without did; errorType 22 if unknown."""
        if not request.cookies.get("did"):
            return self.risk_blocked(request)
        room = self.world.by_any.get(request.match_info["principal"])
        if room is None:
            missing = {"liveStream": {}, "author": {}, "gameInfo": {}, "isLiving": False, "errorType": P.NO_ROOM}
            return raw_response(P.page_html(missing, "快手直播"), content_type=HTML_TYPE)
        now, minute = self._now()
        st = self._served("room_page", room, minute, now)
        title = f"{room.user.name}的直播间 - 快手直播"
        return raw_response(P.page_html(P.play_item(room, st), title), content_type=HTML_TYPE)

    async def livedetail(self, request: web.Request) -> web.Response:
        """``livedetail?principalId=``: result 1 / 671 / 22; fault rooms answer broken."""
        if not request.cookies.get("did"):
            return self.risk_blocked(request)
        room = self._room(request)
        if room is None:
            return raw_response(json_bytes({"data": {"result": 22}}))
        now, minute = self._now()
        st = self._served("livedetail", room, minute, now)
        payload = P.livedetail(room, st, self.seed)
        if room.fault == "html_page":
            return raw_response(P.home_html(), content_type=HTML_TYPE)
        if room.fault == "missing_result":
            del payload["data"]["result"]
        body = json_bytes(payload)
        if room.fault == "malformed_json":
            body = body[: len(body) // 2]
        return raw_response(body)

    async def userinfo(self, request: web.Request) -> web.Response:
        """``baseuser/userinfo/byid?principalId=``: the public profile; result 21 for unknown users."""
        if not request.cookies.get("did"):
            return self.risk_blocked(request)
        room = self._room(request)
        if room is None:
            return raw_response(json_bytes({"data": {"result": 21}}))
        _, minute = self._now()
        living = self.world.live_now(room, minute).living
        return raw_response(json_bytes({"data": {"result": 1, "userInfo": P.author(room.user, living)}}))

    async def category_data(self, request: web.Request) -> web.Response:
        """``category/data?type=&page=&pageSize=``: the categories of a top type, with hasMore."""
        if not request.cookies.get("did"):
            return self.risk_blocked(request)
        q = request.query
        top, page, size = _int(q.get("type"), 1), max(1, _int(q.get("page"), 1)), max(1, _int(q.get("pageSize"), 20))
        _, minute = self._now()
        cats = P.categories_of(top)
        chunk = cats[(page - 1) * size : page * size]
        counts = {c[0]: len(self._live_in(c[0], minute)) for c in chunk}
        data = {"list": [P.category(c, counts[c[0]]) for c in chunk], "hasMore": page * size < len(cats)}
        return raw_response(json_bytes({"data": data}))

    def _live_in(self, game_id: str, minute: int) -> list[tuple[KsRoom, Any]]:
        rows = []
        for room in self.world.rooms:
            if room.category[0] == game_id:
                st = self.world.live_now(room, minute)
                if st.living:
                    rows.append((room, st))
        rows.sort(key=lambda rs: (-rs[1].watching, rs[0].user.user_id))
        return rows

    async def board_list(self, request: web.Request) -> web.Response:
        """``(non-)gameboard/list?gameId=&page=&pageSize=``: live rooms of a category, most watched first."""
        if not request.cookies.get("did"):
            return self.risk_blocked(request)
        q = request.query
        game = q.get("gameId", "")
        page, size = max(1, _int(q.get("page"), 1)), min(50, max(1, _int(q.get("pageSize"), 20)))
        is_game = request.path.endswith("/gameboard/list") and "/non-" not in request.path
        if not any(c[0] == game for c in CATEGORIES) or (len(game) < 7) != is_game:
            return raw_response(json_bytes({"data": {"list": [], "hasMore": False}}))
        now, minute = self._now()
        rows = self._live_in(game, minute)
        chunk = rows[(page - 1) * size : page * size]
        for room, st in chunk:
            self.served.add("board_list", room.user.principal_id, 1, st.watching, now, {"likeCount": st.likes})
        data = {"list": [P.list_item(room, st) for room, st in chunk], "hasMore": page * size < len(rows)}
        return raw_response(json_bytes({"data": data}))

    # -- openapi.kwaixiaodian.com ---------------------------------------------------------------
    def _shop(self, request: web.Request) -> tuple[KsRoom | None, dict[str, Any]]:
        room = self.world.by_token.get(request.query.get("access_token", ""))
        try:
            param = json.loads(request.query.get("param") or "{}")
        except ValueError:
            param = {}
        return room, param if isinstance(param, dict) else {}

    async def item_list(self, request: web.Request) -> web.Response:
        """``open.item.list.get``: the seller's on-sale items, ``price`` in fen, ``volume`` sold."""
        room, param = self._shop(request)
        if room is None:
            return raw_response(json_bytes(P.open_error("access_token无效", self._request_id())))
        page, size = (
            max(1, _int(str(param.get("pageNumber", 1)), 1)),
            min(100, max(1, _int(str(param.get("pageSize", 20)), 20))),
        )
        now, minute = self._now()
        living = int(self.world.live_now(room, minute).living)
        on_sale = self.world.on_sale(room, minute)
        chunk = on_sale[(page - 1) * size : page * size]
        items = []
        for item in chunk:
            price, volume = self.world.item_now(room, item, minute)
            items.append(P.open_item(room, item, price, volume))
            extra = {"kwaiItemId": item.kwai_item_id, "price": price, "volume": volume}
            self.served.add("open.item.list.get", room.user.principal_id, living, None, now, extra)
        if room.fault == "item_missing_id" and items:
            del items[0]["kwaiItemId"]
        total = len(on_sale)
        data = {
            "totalPage": max(1, -(-total // size)),
            "currentPageNumber": page,
            "currentPageItemCount": len(items),
            "items": items,
            "totalItemCount": total,
        }
        return raw_response(json_bytes(P.open_envelope(data, self._request_id())))

    async def item_get(self, request: web.Request) -> web.Response:
        """``open.item.get``: one of the seller's items."""
        room, param = self._shop(request)
        if room is None:
            return raw_response(json_bytes(P.open_error("access_token无效", self._request_id())))
        found = self.world.item_index.get(_int(str(param.get("kwaiItemId", "")), 0))
        if found is None or found[0] is not room:
            return raw_response(json_bytes(P.open_error("商品不存在", self._request_id())))
        item = found[1]
        now, minute = self._now()
        price, volume = self.world.item_now(room, item, minute)
        extra = {"kwaiItemId": item.kwai_item_id, "price": price, "volume": volume}
        self.served.add(
            "open.item.get", room.user.principal_id, int(self.world.live_now(room, minute).living), None, now, extra
        )
        return raw_response(
            json_bytes(P.open_envelope(P.open_item(room, item, price, volume, detail=True,
                                               on_sale=item in self.world.on_sale(room, minute)), self._request_id()))
        )
