"""Taobao Live in the sandbox: the mtop H5 gateway, the live-detail CDN and Tmall's item page.

Routes (each real host is a path prefix):

* ``GET /h5api.m.taobao.com/h5/{api}/{v}/?jsv&appKey&t&sign&api&v&type&dataType&callback&data``:
  the gateway (``taobao_gateway``): ``_m_h5_tk`` + ``_m_h5_tk_enc`` cookies and a valid
  ``sign`` required; APIs ``mtop.mediaplatform.live.livedetail`` 4.0 ``{"liveId"}``,
  ``mtop.mediaplatform.video.livedetail.itemlist.withpagination`` 2.0 (and ``itemlist``
  1.0/2.0) ``{liveId, creatorId, n, groupNum}``, ``mtop.taobao.detail.getdetail`` 6.0
  ``{"itemNumId"}``, ``mtop.mediaplatform.live.pulltopicstat`` 1.0 ``{"topic"}`` or
  ``{"liveId"}`` (the real API takes the room's topic; the liveId is accepted so a client
  can name the room its counts belong to).
* ``GET /alive-interact.alicdn.com/livedetail/common/{liveId}``: the CDN live detail, no token.
* ``GET /detail.m.tmall.com/item.htm?id=``: the Tmall item page (HTML with its data scripts).
* ``GET|POST /__sandbox__/taobao/tokens``: token lifetime and "expire every token now"
  (``{"lifetime_seconds": s, "expire_now": true}``), for tests.

No anchor -> live lookup API was found in public sources: crawls are seeded by liveId
(``truth()["anchors"][i]["liveId"]``). Blocks (rate limit, risk control) are HTTP 200:
the gateway's ``FAIL_SYS_USER_VALIDATE``/``RGV587_ERROR`` answer with ``data.url``, or the
x5 punish HTML page on the other hosts.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.base import JSON_TYPE, Platform, json_bytes, raw_response
from sandbox.taobao import gateway as gw
from sandbox.taobao import items as items
from sandbox.taobao import payloads as payloads
from sandbox.taobao.world import Anchor, TaoWorld
from sandbox.world import WorldClock

H5 = "/h5api.m.taobao.com"
CDN = "/alive-interact.alicdn.com"
TMALL = "/detail.m.tmall.com"
HTML_TYPE = "text/html; charset=utf-8"

ApiHandler = Callable[[web.Request, str, str, dict[str, Any]], Awaitable[web.Response]]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


class TaobaoPlatform(Platform):
    """The Taobao Live replica over a ``TaoWorld``."""

    name = "taobao"
    hosts = ("h5api.m.taobao.com", "alive-interact.alicdn.com", "detail.m.tmall.com")

    def __init__(self, seed: int, n_streamers: int, faults: bool, clock: WorldClock, served_limit: int) -> None:
        super().__init__(served_limit)
        self.seed = seed
        self.clock = clock
        self.world = TaoWorld(seed, n_streamers, faults, start=clock.now())
        self.tokens = gw.Tokens(seed)
        self._ids = itertools.count(1)
        #: (api, v) -> handler of that API's data.
        self.apis: dict[tuple[str, str], ApiHandler] = {
            ("mtop.mediaplatform.live.livedetail", "4.0"): self.livedetail,
            ("mtop.mediaplatform.video.livedetail.itemlist.withpagination", "2.0"): self.itemlist,
            ("mtop.mediaplatform.video.livedetail.itemlist", "1.0"): self.itemlist,
            ("mtop.mediaplatform.video.livedetail.itemlist", "2.0"): self.itemlist,
            ("mtop.taobao.detail.getdetail", "6.0"): self.getdetail,
            ("mtop.mediaplatform.live.pulltopicstat", "1.0"): self.pulltopicstat,
        }

    # -- Platform ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Register the gateway (one named route per API), the CDN, the Tmall page, the token control."""
        r = app.router
        for api, v in self.apis:
            handler = functools.partial(self.mtop, api=api, v=v)
            r.add_get(f"{H5}/h5/{api}/{v}/", handler, name=f"taobao:{api}-v{v.replace('.', '_')}")
        r.add_get(H5 + "/h5/{api}/{v}/", self.mtop_unknown, name="taobao:mtop_unknown")
        r.add_get(CDN + "/livedetail/common/{live_id}", self.cdn_livedetail, name="taobao:cdn_livedetail")
        r.add_get(f"{TMALL}/item.htm", self.tmall_item, name="taobao:tmall_item")
        r.add_get("/__sandbox__/taobao/tokens", self.token_control)
        r.add_post("/__sandbox__/taobao/tokens", self.token_control)

    def truth(self) -> dict[str, Any]:
        """Ground truth as of the current world time, plus the gateway's token settings."""
        return {**self.world.truth(self.clock.now()), "tokens": self.tokens.as_dict()}

    def client_key(self, request: web.Request) -> str:
        """A client is its ``cna`` cookie (Taobao's device ID), else its address and User-Agent."""
        cna = request.cookies.get("cna")
        if cna:
            return "c:" + cna
        return f"a:{request.remote}|{request.headers.get('User-Agent', '')}"

    def _block(self, request: web.Request) -> web.Response:
        parts = request.path.split("/")
        n = next(self._ids)
        if parts[1:3] == ["h5api.m.taobao.com", "h5"] and len(parts) > 4:
            return gw.risk_answer(request, parts[3], parts[4], self.seed, n)
        return raw_response(items.punish_page(parts[1] if len(parts) > 1 else "", self.seed, n),
                            content_type=HTML_TYPE, headers={"bxpunish": "1"})  # fmt: skip

    def rate_limited(self, request: web.Request) -> web.Response:
        """Too many requests: the same risk-control answer (HTTP 200) as the real gateway."""
        return self._block(request)

    def risk_blocked(self, request: web.Request) -> web.Response:
        """Risk control: ``FAIL_SYS_USER_VALIDATE`` + ``RGV587_ERROR`` (gateway) or the punish page."""
        return self._block(request)

    # -- the gateway ---------------------------------------------------------------------------
    async def mtop(self, request: web.Request, *, api: str, v: str) -> web.Response:
        """Token, then signature, then the API's own answer."""
        state, token = self.tokens.check(request.cookies.get("_m_h5_tk"), request.cookies.get("_m_h5_tk_enc"))
        if state != "ok":
            ret = gw.TOKEN_EMPTY if state == "empty" else gw.TOKEN_EXPIRED
            return gw.set_token_cookies(gw.answer(request, api, v, [ret], {}), self.tokens)
        if request.query.get("sign", "").lower() != gw.expected_sign(token, request.query):
            return gw.answer(request, api, v, [gw.ILLEGAL_SIGN], {})
        try:
            data = json.loads(request.query.get("data") or "{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return gw.answer(request, api, v, [gw.PARAM_ERROR], {})
        return await self.apis[(api, v)](request, api, v, data)

    async def mtop_unknown(self, request: web.Request) -> web.Response:
        """An API (or version) this gateway does not serve."""
        return gw.answer(request, request.match_info["api"], request.match_info["v"], [gw.API_NOT_FOUND], {})

    def _now(self) -> tuple[float, int]:
        now = self.clock.now()
        return round(now, 3), int(now // 60)

    def _anchor(self, data: dict[str, Any]) -> Anchor | None:
        live_id = _int(data.get("liveId"))
        if live_id is not None:
            return self.world.anchor_by_live.get(live_id)
        topic = data.get("topic")
        return self.world.anchor_by_topic.get(topic) if isinstance(topic, str) else None

    async def livedetail(self, request: web.Request, api: str, v: str, data: dict[str, Any]) -> web.Response:
        """``mtop.mediaplatform.live.livedetail``; a truncated_json fault room answers cut short."""
        anchor = self._anchor(data)
        if anchor is None:
            return gw.answer(request, api, v, [gw.LIVE_NOT_EXIST], {})
        now, minute = self._now()
        st = self.world.state(anchor, minute)
        body, content_type = gw.envelope_bytes(
            request, api, v, [gw.SUCCESS], payloads.livedetail_mtop(self.seed, anchor, st)
        )
        if anchor.fault == "truncated_json":
            body = body[: len(body) * 2 // 3]
        self.served.add("livedetail", str(anchor.live_id), st.room_status, st.join_count, now,
                        {"viewCount": st.view_count, "praiseCount": st.praise_count})  # fmt: skip
        return raw_response(body, content_type=content_type)

    async def itemlist(self, request: web.Request, api: str, v: str, data: dict[str, Any]) -> web.Response:
        """The shelf, newest first, ``n`` a page from page ``groupNum``; faults: HTML, an item without ID."""
        anchor = self._anchor({"liveId": data.get("liveId")})
        if anchor is None:
            return gw.answer(request, api, v, [gw.LIVE_NOT_EXIST], {})
        if anchor.fault == "html_page":
            return raw_response(items.LOGIN_PAGE, content_type=HTML_TYPE)
        size = min(100, max(1, _int(data.get("n")) or 20))
        group = max(0, _int(data.get("groupNum")) or 0)
        now, minute = self._now()
        st = self.world.state(anchor, minute)
        shelf = self.world.shelf(anchor, minute)
        page = shelf[group * size : (group + 1) * size]
        broken = 0 if anchor.fault == "missing_item_id" and group == 0 and page else None
        for entry in page:
            self.served.add("itemlist", str(anchor.live_id), st.room_status, None, now,
                            {"item_id": str(entry.item.item_id), "goodsIndex": entry.goods_index,
                             "price": entry.price_fen / 100, "sales": entry.sales})  # fmt: skip
        body = payloads.itemlist(anchor, page, len(shelf), broken_index=broken)
        return gw.answer(request, api, v, [gw.SUCCESS], body)

    async def getdetail(self, request: web.Request, api: str, v: str, data: dict[str, Any]) -> web.Response:
        """``mtop.taobao.detail.getdetail`` 6.0; ``宝贝不存在`` for unknown items."""
        item = self.world.item_by_id.get(_int(data.get("itemNumId", data.get("id"))) or 0)
        if item is None:
            return gw.answer(request, api, v, [gw.ITEM_NOT_EXIST], {})
        now, minute = self._now()
        price, sales = self.world.detail_price_fen(item, minute), self.world.sales(item, minute)
        self.served.add("getdetail", None, 0, None, now,
                        {"item_id": str(item.item_id), "price": price / 100, "sales": sales})  # fmt: skip
        body = items.getdetail(item, price, sales, broken=item.fault == "broken_api_stack")
        return gw.answer(request, api, v, [gw.SUCCESS], body)

    async def pulltopicstat(self, request: web.Request, api: str, v: str, data: dict[str, Any]) -> web.Response:
        """The room's pv/uv/online/likes by its topic (or liveId)."""
        anchor = self._anchor(data)
        if anchor is None:
            return gw.answer(request, api, v, [gw.LIVE_NOT_EXIST], {})
        now, minute = self._now()
        st = self.world.state(anchor, minute)
        self.served.add("pulltopicstat", str(anchor.live_id), st.room_status, st.join_count, now,
                        {"totalNum": st.view_count, "visitNum": st.visit_num, "digNum": st.praise_count})  # fmt: skip
        return gw.answer(request, api, v, [gw.SUCCESS], payloads.pulltopicstat(st))

    # -- the CDN and the Tmall page ----------------------------------------------------------------
    async def cdn_livedetail(self, request: web.Request) -> web.Response:
        """``livedetail/common/{liveId}``: plain JSON, numbers as numbers; 404 for unknown rooms."""
        anchor = self._anchor({"liveId": request.match_info["live_id"]})
        if anchor is None:
            raise web.HTTPNotFound(text="404 Not Found", content_type="text/html")
        now, minute = self._now()
        st = self.world.state(anchor, minute)
        body = json_bytes(payloads.livedetail_cdn(self.seed, anchor, st))
        if anchor.fault == "truncated_json":
            body = body[: len(body) * 2 // 3]
        self.served.add("cdn_livedetail", str(anchor.live_id), st.room_status, None, now,
                        {"viewCount": st.view_count})  # fmt: skip
        return raw_response(body, content_type=JSON_TYPE)

    async def tmall_item(self, request: web.Request) -> web.Response:
        """``item.htm?id=``: the page with ``_DATA_Detail``/``_DATA_Mdskip``; the not-found page otherwise."""
        item = self.world.item_by_id.get(_int(request.query.get("id")) or 0)
        if item is None:
            return raw_response(items.NOT_FOUND_PAGE, content_type=HTML_TYPE)
        now, minute = self._now()
        price = self.world.detail_price_fen(item, minute)
        self.served.add("tmall_item", None, 0, None, now, {"item_id": str(item.item_id), "price": price / 100})
        return raw_response(items.tmall_page(item, price), content_type=HTML_TYPE)

    # -- control -----------------------------------------------------------------------------------
    async def token_control(self, request: web.Request) -> web.Response:
        """GET: token settings; POST ``{"lifetime_seconds": s, "expire_now": bool}``: change them."""
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None
            lifetime = body.get("lifetime_seconds") if isinstance(body, dict) else None
            if not isinstance(body, dict) or set(body) - {"lifetime_seconds", "expire_now"} or (
                lifetime is not None and (isinstance(lifetime, bool) or not isinstance(lifetime, int | float)
                                          or lifetime <= 0)
            ):  # fmt: skip
                return web.json_response({"error": "expected {lifetime_seconds: > 0, expire_now: bool}"}, status=400)
            if lifetime is not None:
                self.tokens.lifetime = float(lifetime)
            if body.get("expire_now"):
                self.tokens.expire_all()
        return web.json_response(self.tokens.as_dict())
