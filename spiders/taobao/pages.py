"""Pure parsers of Taobao Live and Taobao/Tmall item payloads: response bytes in, records out.

``parse(body, url=, fetched_at=, kind=)`` checks the input (punish pages, JSON/JSONP),
then the mtop envelope (``check_envelope``), then hands the data to the parser of the
kind: from the argument, else the URL path, else the payload's own shape (``detect.py``).

Kinds, and what each yields:

* ``live_detail`` (``mtop.mediaplatform.live.livedetail``, and the CDN variant
  ``alive-interact.alicdn.com/livedetail/common/{liveId}``): Room + RoomSnapshot +
  Streamer (``broadCaster``).
* ``live_stats`` (``mtop.mediaplatform.live.pulltopicstat``): RoomSnapshot of the room
  named by the request's ``data.liveId``; nothing when the URL does not say which room.
* ``item_list`` (``mtop.mediaplatform.video.livedetail.itemlist[.withpagination]``, and the
  中控台 goods list): Product + ProductSnapshot per shelf item (``items.py``).
* ``item_detail`` (``mtop.taobao.detail.getdetail`` v6 / wdetail): Product (+ snapshot).
* ``tmall_detail`` / ``tmall_mdskip``: the two data objects of Tmall's mobile item page,
  each a partial Product of the same ID (merged by ``livefleet parse`` given both);
  ``tmall_page``: the page itself (``detail.m.tmall.com/item.htm``), both read and merged.
* ``xianyu_search`` (``mtop.taobao.idlemtopsearch.pc.search``): Xianyu (闲鱼) second-hand
  listings of private sellers, not live commerce and not Taobao products (another ID
  space, no shop): recognised and yields nothing.

Mapping decisions for the live room (Taobao -> SCHEMA.md):

* status: ``roomStatus`` 2 -> ended (the CDN capture: ``roomStatus`` 2, ``streamStatus`` 0,
  a ``replayUrl``, downloaded as a replay by ftyszyx/live_down); ``streamStatus`` "1" ->
  live (ihmily/DouyinLiveRecorder reads it so); ``roomStatus`` 1 -> live and 0 -> offline
  (预告, not started) are inferred, not documented; any other value -> unknown.
* ``viewCount`` (shown as 观看) -> viewers_total; ``joinCount`` (``onlineCount``) ->
  viewers_now; ``praiseCount`` -> likes; ``curItemNum`` -> product_count;
  ``startTime`` (epoch ms) -> started_at (src: nastgaer/highest_flow_web getLiveDetail).
* pulltopicstat sends pv, uv, online and likes (a public client calls it "获取直播间pv、uv、
  在线、点赞"): ``onlineNum`` -> viewers_now, ``totalNum`` (uv, unique viewers, the smaller
  of the two totals) -> viewers_total, ``digNum`` -> likes; ``visitNum`` (pv, visits) and
  ``msgNum`` (comments) have no field. The topic's viewer lists are never requested.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from models.entities import Record, Room, RoomSnapshot, Streamer
from models.errors import (
    BlockedError,
    GoneError,
    PageError,
    PermanentPageError,
    RetryablePageError,
    UnknownPayloadError,
)
from spiders.payload import Page, dig, first_text, load_json
from spiders.taobao import items
from spiders.taobao.detect import KINDS, detect, kind_from_url, request_data
from spiders.taobao.sign import parse_ret

__all__ = ["PARSERS", "TokenExpiredError", "check_envelope", "detect", "kind_from_url", "parse"]

PLATFORM = "taobao"

#: The token is missing, stale or signed wrongly: refresh the cookies, re-sign, retry.
TOKEN_CODES = frozenset({"FAIL_SYS_TOKEN_EMPTY", "FAIL_SYS_TOKEN_EXOIRED", "FAIL_SYS_TOKEN_EXPIRED",
                         "FAIL_SYS_ILEGEL_SIGN"})  # fmt: skip
#: Risk control (slider at ``data.url``), flow limit, login expired: cool down, retry.
BLOCK_CODES = frozenset({"FAIL_SYS_USER_VALIDATE", "RGV587_ERROR", "FAIL_SYS_SESSION_EXPIRED",
                         "FAIL_SYS_TRAFFIC_LIMIT", "ANDROID_SYS_API_FLOW_LIMIT_LOCKED"})  # fmt: skip
# Punish pages (HTTP 200 HTML): x5 slider (src: xinlingqudongX/TSDK h5.py), #nocaptcha
# (src: VictoriaMR/shop crawler.js).
_PUNISH_RE = re.compile(rb"x5referer|x5secdata|_____tmd_____|nocaptcha|nc_1_n1z", re.I)


class TokenExpiredError(RetryablePageError):
    """The mtop token is missing, expired or the sign was refused (``FAIL_SYS_TOKEN_*``,
    ``FAIL_SYS_ILEGEL_SIGN``). The answer carried fresh ``_m_h5_tk`` cookies: the retry,
    re-signed with them (``sign.resign_url``), succeeds. ``code`` is the mtop code."""

    def __init__(self, reason: str, *, platform: str | None = None, url: str | None = None, code: str = "") -> None:
        super().__init__(reason, platform=platform, url=url)
        self.code = code


def check_envelope(payload: Any, url: str | None) -> Any:
    """Raise for an mtop error answer; return the data to parse.

    An answer with ``ret`` is an mtop envelope: ``SUCCESS`` -> its ``data``; token codes
    -> ``TokenExpiredError``; risk-control/flow-limit/session codes -> ``BlockedError``;
    "does not exist" (``ERRCODE_QUERY_DETAIL_FAIL::宝贝不存在``) -> ``GoneError``; any other
    code -> ``PermanentPageError``. A payload without ``ret`` (the CDN live detail, the
    Tmall page's objects, the 中控台 list) is the data itself.
    """
    if not isinstance(payload, dict) or "ret" not in payload:
        return payload
    try:
        codes = parse_ret(payload["ret"])
    except ValueError as exc:
        raise PermanentPageError(f"ValueError: ret: {exc}", platform=PLATFORM, url=url) from None
    names = {code for code, _ in codes}
    shown = ", ".join("::".join(filter(None, pair)) for pair in codes) or "(empty ret)"
    if names & TOKEN_CODES:
        code = next(code for code, _ in codes if code in TOKEN_CODES)
        raise TokenExpiredError(f"mtop {shown}", platform=PLATFORM, url=url, code=code)
    if names & BLOCK_CODES:
        code = next(code for code, _ in codes if code in BLOCK_CODES)
        slider = dig(payload, "data.url")
        where = " (slider at data.url)" if isinstance(slider, str) and slider else ""
        raise BlockedError(f"mtop {shown}{where}", platform=PLATFORM, url=url, code=code)
    if codes and codes[0][0] == "SUCCESS":
        return payload.get("data")
    # A system code (FAIL_SYS_API_NOT_FOUNDED::请求API不存在) is about the request, not the entity.
    if any(not code.startswith("FAIL_SYS_") and ("不存在" in message or "NOT_EXIST" in code)
           for code, message in codes):  # fmt: skip
        raise GoneError(f"mtop {shown}", platform=PLATFORM, url=url)
    raise PermanentPageError(f"mtop {shown}", platform=PLATFORM, url=url)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _status(d: Any) -> str | None:
    """SCHEMA status from ``roomStatus``/``streamStatus`` (rule in the module docstring)."""
    raw_room, raw_stream = dig(d, "roomStatus"), dig(d, "streamStatus")
    if raw_room is None and raw_stream is None:
        return None
    room, stream = _int(raw_room), _int(raw_stream)
    if room == 2:
        return "ended"
    if stream == 1 or room == 1:
        return "live"
    if room == 0 or (room is None and stream == 0):
        return "offline"
    return "unknown"


def _live_detail(page: Page, d: Any, url: str | None) -> list[Record]:
    if not isinstance(d, dict):
        raise page.fail(f"data: expected an object, got {type(d).__name__}")
    room_id = page.id(dig(d, "liveId", "id"), "data.liveId")
    streamer_id = page.id(dig(d, "broadCaster.accountId", "accountId"), "data.broadCaster.accountId")
    status = _status(d)
    now = page.count(dig(d, "joinCount", "onlineCount"), "data.joinCount", "viewers_now")
    total = page.count(dig(d, "viewCount"), "data.viewCount", "viewers_total")
    likes = page.count(dig(d, "praiseCount"), "data.praiseCount", "likes")
    products = page.count(dig(d, "curItemNum"), "data.curItemNum", "product_count", text=False)
    records: list[Record] = [
        page.build(
            Room,
            room_id=room_id,
            streamer_id=streamer_id,
            title=first_text(d, "title"),
            status=status,
            started_at=page.time(dig(d, "startTime"), "data.startTime"),
            **now,
            **total,
            **likes,
            **products,
            cover_url=first_text(d, "coverImg", "coverImg169"),
            description=first_text(d, "descInfo"),
            fetched_at=page.fetched_at,
        )
    ]
    if status is not None or now or total or likes or products:
        records.append(
            page.build(
                RoomSnapshot,
                room_id=room_id,
                captured_at=page.fetched_at,
                status=status,
                viewers_now=now.get("viewers_now"),
                viewers_total=total.get("viewers_total"),
                likes=likes.get("likes"),
                product_count=products.get("product_count"),
            )
        )
    about = {
        "nickname": first_text(d, "broadCaster.accountName"),
        "avatar_url": first_text(d, "broadCaster.headImg"),
        **page.count(dig(d, "broadCaster.fansNum"), "data.broadCaster.fansNum", "followers"),
    }
    if streamer_id and any(value is not None for value in about.values()):
        is_live = None if status is None else status == "live"
        records.append(
            page.build(Streamer, streamer_id=streamer_id, room_id=room_id, is_live=is_live, **about,
                       fetched_at=page.fetched_at)  # fmt: skip
        )
    return records


def _live_stats(page: Page, d: Any, url: str | None) -> list[Record]:
    # The answer names no room: only the request's data does (liveId beside the topic).
    room_id = page.id(request_data(url).get("liveId"), "url.data.liveId")
    counts = {
        **page.count(dig(d, "onlineNum"), "data.onlineNum", "viewers_now", text=False),
        **page.count(dig(d, "totalNum"), "data.totalNum", "viewers_total", text=False),
        **page.count(dig(d, "digNum"), "data.digNum", "likes", text=False),
    }
    if room_id is None or not counts:
        return []
    return [page.build(RoomSnapshot, room_id=room_id, captured_at=page.fetched_at, **counts)]


_PARSE: dict[str, Callable[[Page, Any, str | None], list[Record]]] = {
    "live_detail": _live_detail,
    "live_stats": _live_stats,
    "item_list": lambda page, d, url: items.item_list(page, d, request_data(url)),
    "item_detail": lambda page, d, url: items.item_detail(page, d),
    "tmall_detail": lambda page, d, url: items.tmall_detail(page, d),
    "tmall_mdskip": lambda page, d, url: items.tmall_mdskip(page, d),
    "xianyu_search": lambda page, d, url: [],
}
if set(_PARSE) | {"tmall_page"} != set(KINDS):  # pragma: no cover - a guard for whoever adds a kind
    raise RuntimeError("detect.KINDS and pages._PARSE must name the same kinds")


def _load(body: bytes, url: str | None) -> Any:
    """``load_json``, except that Taobao's punish pages are blocks whatever their title says."""
    try:
        return load_json(body, platform=PLATFORM, url=url)
    except PageError as exc:
        if isinstance(body, bytes) and _PUNISH_RE.search(body[:20000]):
            raise BlockedError(f"Taobao punish/slider page: {exc.reason}", platform=PLATFORM, url=url) from None
        raise


def _is_tmall_page(body: bytes) -> bool:
    return isinstance(body, bytes) and b"_DATA_Detail" in body[:400000] and body.lstrip()[:1] not in (b"{", b"[")


def parse(
    body: bytes, *, url: str | None = None, fetched_at: datetime, kind: str | None = None
) -> list[Record]:
    """Parse one Taobao/Tmall response into records.

    The kind comes from ``kind``, else from ``url``'s path, else from the payload's
    shape; none of them, or an unknown ``kind`` -> ``UnknownPayloadError``. Raises only
    ``PageError`` subclasses: ``TokenExpiredError`` and ``BlockedError`` are retryable.
    """
    if kind is not None and kind not in KINDS:
        raise UnknownPayloadError(f"no Taobao parser of kind {kind!r}", platform=PLATFORM, url=url)
    page = Page(PLATFORM, url, fetched_at)
    kind = kind or kind_from_url(url)
    if kind == "tmall_page" or (kind is None and _is_tmall_page(body)):
        return items.tmall_page(page, body)
    payload = _load(body, url)
    data = check_envelope(payload, url)
    kind = kind or detect(payload)
    if kind is None:
        raise UnknownPayloadError("not a known Taobao payload", platform=PLATFORM, url=url)
    return _PARSE[kind](page, data, url)


#: Kind name -> its parser ``(body, *, url=None, fetched_at) -> list[Record]``.
PARSERS: dict[str, Callable[..., list[Record]]] = {
    kind: functools.partial(parse, kind=kind) for kind in KINDS
}
