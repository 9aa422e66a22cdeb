"""Bilibili Live in the sandbox: real paths, envelopes, error codes and anti-bot answers.

Served under ``/api.live.bilibili.com/...`` and ``/api.bilibili.com/...``. Envelopes differ
per endpoint exactly as on the real site (``msg`` + ``message`` on the old live API,
``message`` + ``ttl`` on the newer ones); see ``tests/fixtures/sandbox_shapes/bilibili``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.base import Platform, json_bytes, raw_response
from sandbox.bilibili import listing as L
from sandbox.bilibili import payloads as P
from sandbox.bilibili import space as S
from sandbox.bilibili.world import BiliWorld, LiveState, Room
from sandbox.world import WorldClock, hex_digest

LIVE = "/api.live.bilibili.com"
MAIN = "/api.bilibili.com"

_HTML_ERROR = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>出错啦! - bilibili.com</title></head>'
    '<body><div class="error-container"><h2>服务器开小差了，请稍后再试</h2>'
    "<p>错误号: 500</p></div></body></html>"
).encode()


def _msg(code: int, message: str, data: Any) -> dict[str, Any]:
    """The old live API envelope: ``{code, msg, message, data}``."""
    return {"code": code, "msg": message, "message": message, "data": data}


def _ttl(code: int, message: str, data: Any) -> dict[str, Any]:
    """The newer envelope: ``{code, message, ttl, data}``."""
    return {"code": code, "message": message, "ttl": 1, "data": data}


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _ids(request: web.Request, *names: str) -> list[int]:
    """Integer ids from repeated and/or comma-separated query parameters."""
    out = []
    for name in names:
        for raw in request.query.getall(name, []):
            out.extend(i for i in (_int(part.strip()) for part in raw.split(",")) if i is not None)
    return out


def _uuid(*parts: int) -> str:
    h = hex_digest(32, *parts).upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class BilibiliPlatform(Platform):
    """The Bilibili Live replica over a ``BiliWorld``."""

    name = "bilibili"
    hosts = ("api.live.bilibili.com", "api.bilibili.com")

    def __init__(
        self, seed: int, n_streamers: int, faults: bool, clock: WorldClock, served_limit: int
    ) -> None:
        super().__init__(served_limit)
        self.seed = seed
        self.clock = clock
        self.world = BiliWorld(seed, n_streamers, faults, start=clock.now())
        self._area_list = json_bytes(_msg(0, "success", L.area_list()))
        self._static: dict[tuple[str, int], bytes] = {}
        self._dynamic: dict[tuple[str, int], tuple[int, bytes]] = {}
        self._ids = itertools.count(1)
        #: Encoded getRoomList pages of the current world minute, with the rows they show.
        self._pages: dict[tuple[int, ...], tuple[int, bytes, list[tuple[Room, LiveState]]]] = {}
        #: The wall clock WBI's ``wts`` is checked against (real unix seconds, whatever the world time).
        self.wall: Callable[[], float] = time.time

    # -- Platform ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Register the Bilibili endpoints."""
        r = app.router
        routes: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            (f"{LIVE}/room/v1/Room/get_info", "get_info", self.get_info),
            (f"{LIVE}/room/v1/Room/room_init", "room_init", self.room_init),
            (f"{LIVE}/room/v1/Room/getRoomInfoOld", "getRoomInfoOld", self.room_info_old),
            (f"{LIVE}/live_user/v1/Master/info", "master_info", self.master_info),
            (f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom", "getInfoByRoom", self.info_by_room),
            (f"{LIVE}/xlive/app-room/v1/index/getInfoByRoom", "getInfoByRoom_app", self.info_by_room),
            (f"{LIVE}/room/v1/Area/getList", "area_getList", self.area_list),
            (f"{LIVE}/room/v1/Area/getRoomList", "area_getRoomList", self.room_list),
            (f"{LIVE}/room/v1/Room/get_status_info_by_uids", "get_status_info_by_uids", self.status_by_uids),
            (f"{LIVE}/xlive/web-room/v1/index/getRoomBaseInfo", "getRoomBaseInfo", self.room_base_info),
            (f"{MAIN}/x/web-interface/card", "card", self.card),
            (f"{MAIN}/x/frontend/finger/spi", "finger_spi", self.finger_spi),
            (f"{MAIN}/x/web-interface/nav", "nav", self.nav),
            (f"{MAIN}/x/space/wbi/acc/info", "acc_info", self.acc_info),
            (f"{MAIN}/x/relation/stat", "relation_stat", self.relation_stat),
        ]
        for path, endpoint, handler in routes:
            r.add_get(path, handler, name=f"bilibili:{endpoint}")
        r.add_post(
            f"{LIVE}/room/v1/Room/get_status_info_by_uids",
            self.status_by_uids,
            name="bilibili:get_status_info_by_uids_post",
        )

    def truth(self) -> dict[str, Any]:
        """Ground truth as of the current world time."""
        return self.world.truth(self.clock.now())

    def client_key(self, request: web.Request) -> str:
        """A client is its buvid3 cookie, else its address and User-Agent."""
        buvid = request.cookies.get("buvid3")
        if buvid:
            return "b:" + buvid
        return f"a:{request.remote}|{request.headers.get('User-Agent', '')}"

    def rate_limited(self, request: web.Request) -> web.Response:
        """HTTP 412 with -412, as Bilibili answers an IP it has flagged."""
        return raw_response(json_bytes(_ttl(-412, "请求被拦截", None)), status=412)

    def risk_blocked(self, request: web.Request) -> web.Response:
        """HTTP 200 with -352 and a gaia voucher (risk control)."""
        voucher = "voucher_" + _uuid(self.seed, 0x352, next(self._ids)).lower()
        body = json_bytes(_ttl(-352, "-352", {"v_voucher": voucher}))
        return raw_response(body, headers={"x-bili-gaia-vvoucher": voucher})

    # -- helpers ------------------------------------------------------------------------------
    def _room(self, request: web.Request, param: str) -> Room | None:
        room_id = _int(request.query.get(param))
        return self.world.room_index.get(room_id) if room_id else None

    def _now(self) -> tuple[float, int]:
        now = self.clock.now()
        return round(now, 3), int(now // 60)

    def _cached(self, endpoint: str, key: int, second: int, build: Callable[[], Any]) -> bytes:
        """Encoded answer for ``key``, rebuilt only when the world second changed."""
        hit = self._dynamic.get((endpoint, key))
        if hit is not None and hit[0] == second:
            return hit[1]
        body = json_bytes(build())
        self._dynamic[(endpoint, key)] = (second, body)
        return body

    def _static_body(self, endpoint: str, key: int, build: Callable[[], Any]) -> bytes:
        body = self._static.get((endpoint, key))
        if body is None:
            body = self._static[(endpoint, key)] = json_bytes(build())
        return body

    # -- api.live.bilibili.com -------------------------------------------------------------
    async def get_info(self, request: web.Request) -> web.Response:
        """``room/v1/Room/get_info?room_id=`` (long or short id); fault rooms answer broken."""
        room = self._room(request, "room_id")
        if room is None:
            return raw_response(json_bytes(_msg(1, "未找到该房间", [])))
        now, minute = self._now()
        st = self.world.state(room, minute)
        streamer = self.world.streamer_by_uid[room.uid]
        if room.fault == "html_page":
            return raw_response(_HTML_ERROR, content_type="text/html; charset=utf-8")
        if room.fault == "malformed_json":
            full = json_bytes(_msg(0, "ok", P.get_info(room, streamer, st)))
            return raw_response(full[: full.rindex(b",", 0, len(full) // 2)])
        if room.fault == "missing_field":
            data = P.get_info(room, streamer, st)
            del data["room_id"]
            body = json_bytes(_msg(0, "ok", data))
        else:
            body = self._cached(
                "get_info", room.room_id, int(now), lambda: _msg(0, "ok", P.get_info(room, streamer, st))
            )
        self.served.add("get_info", room.room_id, st.live_status, st.online, now)
        return raw_response(body)

    async def room_init(self, request: web.Request) -> web.Response:
        """``room/v1/Room/room_init?id=``: resolves a short id; 60004 for unknown rooms."""
        room = self._room(request, "id")
        if room is None:
            return raw_response(json_bytes(_msg(60004, "房间不存在", [])))
        now, minute = self._now()
        st = self.world.state(room, minute)
        self.served.add("room_init", room.room_id, st.live_status, None, now)
        return raw_response(
            self._cached("room_init", room.room_id, int(now), lambda: _msg(0, "ok", P.room_init(room, st)))
        )

    async def room_info_old(self, request: web.Request) -> web.Response:
        """``room/v1/Room/getRoomInfoOld?mid=``: roomStatus 0 for users without a room."""
        mid = _int(request.query.get("mid"))
        if mid is None:
            return raw_response(json_bytes(_ttl(-400, "请求错误", None)))
        room = self.world.room_by_uid.get(mid)
        if room is None:
            return raw_response(json_bytes(_ttl(0, "0", P.room_info_old(None, None))))
        now, minute = self._now()
        st = self.world.state(room, minute)
        data = P.room_info_old(room, st)
        self.served.add(
            "getRoomInfoOld", room.room_id, data["live_status"], None, now, {"popularity": st.popularity}
        )
        return raw_response(json_bytes(_ttl(0, "0", data)))

    async def master_info(self, request: web.Request) -> web.Response:
        """``live_user/v1/Master/info?uid=``: static anchor profile."""
        uid = _int(request.query.get("uid"))
        streamer = self.world.streamer_by_uid.get(uid) if uid else None
        if streamer is None:
            return raw_response(json_bytes(_msg(1, "参数错误", [])))
        room = self.world.room_by_uid[streamer.uid]
        return raw_response(
            self._static_body("master_info", streamer.uid, lambda: _msg(0, "", L.master_info(streamer, room)))
        )

    async def info_by_room(self, request: web.Request) -> web.Response:
        """``xlive/web-room/v1/index/getInfoByRoom``: needs a buvid3 cookie, else -352."""
        if not request.cookies.get("buvid3"):
            return self.risk_blocked(request)
        room = self._room(request, "room_id")
        if room is None:
            return raw_response(json_bytes(_ttl(19002000, "获取初始化数据失败", None)))
        now, minute = self._now()
        st = self.world.state(room, minute)
        streamer = self.world.streamer_by_uid[room.uid]
        body = self._cached(
            "getInfoByRoom",
            room.room_id,
            int(now),
            lambda: _ttl(0, "0", P.info_by_room(room, streamer, st, int(now))),
        )
        self.served.add("getInfoByRoom", room.room_id, st.live_status, st.online, now)
        return raw_response(body)

    async def area_list(self, request: web.Request) -> web.Response:
        """``room/v1/Area/getList``: the (static) area tree."""
        return raw_response(self._area_list)

    async def room_list(self, request: web.Request) -> web.Response:
        """``room/v1/Area/getRoomList``: live rooms of an area by viewers, paginated (30 a page)."""
        q = request.query
        parent = _int(q.get("parent_area_id"), 0) or 0
        area = _int(q.get("area_id"), 0) or 0
        page = max(1, _int(q.get("page"), 1) or 1)
        size = min(100, max(1, _int(q.get("page_size"), 30) or 30))
        sort = "live_time" if q.get("sort_type") == "live_time" else "online"
        now, minute = self._now()
        key = (parent, area, page, size, sort)
        hit = self._pages.get(key)
        if hit is None or hit[0] != minute:
            rows = self.world.live_in_area(parent, area, minute)
            if sort == "live_time":
                rows = sorted(rows, key=lambda rs: (-rs[1].start, rs[0].room_id))
            chunk = rows[(page - 1) * size : page * size]
            items = [L.room_list_item(room, self.world.streamer_by_uid[room.uid], st) for room, st in chunk]
            if len(self._pages) > 10_000:
                self._pages.clear()  # crawls walk pages forward: old keys are dead weight
            hit = self._pages[key] = (minute, json_bytes(_msg(0, "success", items)), chunk)
        for room, st in hit[2]:
            self.served.add("getRoomList", room.room_id, st.live_status, st.online, now)
        return raw_response(hit[1])

    async def status_by_uids(self, request: web.Request) -> web.Response:
        """``room/v1/Room/get_status_info_by_uids``: GET ``uids[]=``, or POST ``{"uids": [...]}``."""
        uids = _ids(request, "uids[]", "uids")
        if request.method == "POST":
            uids.extend(await self._posted_uids(request))
        if not uids:
            return raw_response(json_bytes(_msg(-400, "参数错误", [])))
        now, minute = self._now()
        data: dict[str, Any] = {}
        for uid in uids:
            room = self.world.room_by_uid.get(uid)
            if room is None:
                continue
            st = self.world.state(room, minute)
            data[str(uid)] = L.status_by_uid(room, self.world.streamer_by_uid[uid], st)
            self.served.add("get_status_info_by_uids", room.room_id, st.live_status, st.online, now)
        return raw_response(json_bytes(_msg(0, "success", data)))

    @staticmethod
    async def _posted_uids(request: web.Request) -> list[int]:
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                return []
            raw = body.get("uids", []) if isinstance(body, dict) else []
            return [u for u in (_int(str(v)) for v in raw if not isinstance(v, bool)) if u is not None]
        form = await request.post()
        return [u for u in (_int(str(v)) for k in ("uids[]", "uids") for v in form.getall(k, [])) if u]

    async def room_base_info(self, request: web.Request) -> web.Response:
        """``xlive/web-room/v1/index/getRoomBaseInfo?room_ids=..&uids=..`` (batch)."""
        now, minute = self._now()
        by_rooms: dict[str, Any] = {}
        by_uids: dict[str, Any] = {}
        for key_ids, target, lookup in (
            (_ids(request, "room_ids", "room_ids[]"), by_rooms, self.world.room_index),
            (_ids(request, "uids", "uids[]"), by_uids, self.world.room_by_uid),
        ):
            for ident in key_ids:
                room = lookup.get(ident)
                if room is None:
                    continue
                st: LiveState = self.world.state(room, minute)
                streamer = self.world.streamer_by_uid[room.uid]
                key = str(room.room_id) if target is by_rooms else str(room.uid)
                target[key] = L.room_base_info(room, streamer, st, self.seed)
                self.served.add("getRoomBaseInfo", room.room_id, st.live_status, st.online, now)
        return raw_response(json_bytes(_ttl(0, "0", {"by_uids": by_uids, "by_room_ids": by_rooms})))

    # -- api.bilibili.com -----------------------------------------------------------------------
    async def card(self, request: web.Request) -> web.Response:
        """``x/web-interface/card?mid=``: -400 for a bad mid, -404 for an unknown one."""
        found = self._streamer_of(request, "mid")
        if isinstance(found, web.Response):
            return found
        mid, streamer = found
        return raw_response(self._static_body("card", mid, lambda: _ttl(0, "0", L.card(streamer, self.seed))))

    def _streamer_of(self, request: web.Request, param: str) -> tuple[int, Any] | web.Response:
        """The user a ``mid``/``vmid`` query names, or the site's answer: -400 for a bad id, -404 for an
        unknown one (documented for ``card``; ``acc/info`` and ``relation/stat`` are answered alike)."""
        uid = _int(request.query.get(param))
        if uid is None:
            return raw_response(json_bytes({"code": -400, "message": "请求错误", "ttl": 1}))
        streamer = self.world.streamer_by_uid.get(uid)
        if streamer is None:
            return raw_response(json_bytes({"code": -404, "message": "啥都木有", "ttl": 1}))
        return uid, streamer

    async def finger_spi(self, request: web.Request) -> web.Response:
        """``x/frontend/finger/spi``: hands out a buvid3/buvid4 pair and sets them as cookies."""
        n = next(self._ids)
        b3 = f"{_uuid(self.seed, 0xB3, n)}{n % 100000:05d}infoc"
        b4 = f"{_uuid(self.seed, 0xB4, n)}-{n % 10**9:09d}-{hex_digest(24, self.seed, 0xB5, n)}"
        response = raw_response(json_bytes({"code": 0, "data": {"b_3": b3, "b_4": b4}, "message": "ok"}))
        response.set_cookie("buvid3", b3, path="/")
        response.set_cookie("buvid4", b4, path="/")
        return response

    async def nav(self, request: web.Request) -> web.Response:
        """``x/web-interface/nav``: no SESSDATA here, so always the logged-out -101 with today's WBI keys."""
        return raw_response(json_bytes(S.nav_logged_out(self.seed, self.clock.now())))

    async def acc_info(self, request: web.Request) -> web.Response:
        """``x/space/wbi/acc/info?mid=``: -352 without buvid3 or without a valid, fresh WBI signature."""
        pairs = [(k, v) for k, v in request.query.items()]
        if not request.cookies.get("buvid3") or not S.wbi_ok(pairs, self.seed, self.clock.now(), self.wall()):
            return self.risk_blocked(request)
        found = self._streamer_of(request, "mid")
        if isinstance(found, web.Response):
            return found
        mid, streamer = found
        now, minute = self._now()
        room = self.world.room_by_uid[mid]
        st = self.world.state(room, minute)
        self.served.add("acc_info", room.room_id, st.live_status, None, now)
        return raw_response(json_bytes(_ttl(0, "0", S.acc_info(streamer, room, st, self.seed))))

    async def relation_stat(self, request: web.Request) -> web.Response:
        """``x/relation/stat?vmid=``: follower and following counts (no signature, no cookie)."""
        found = self._streamer_of(request, "vmid")
        if isinstance(found, web.Response):
            return found
        vmid, streamer = found
        return raw_response(self._static_body("relation_stat", vmid, lambda: _ttl(0, "0", S.relation_stat(streamer))))
