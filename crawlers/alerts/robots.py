"""Alerts to chat robots: DingTalk, Feishu/Lark and WeCom group robots, and the generic signed webhook.

An :class:`Alert` is one event; :func:`render_text` makes its short Chinese+English text;
:func:`build_request` makes the exact request a channel wants (pure: the clock is an argument);
:func:`answer_ok` reads the channel's answer; :func:`send_alert` sends, retrying what may pass later.
A value the alert does not carry is shown as ``—``, never as 0.

Channels (``kind``), each request as its publisher documents it
---------------------------------------------------------------

``dingtalk``: DingTalk custom robot (自定义机器人). ``POST https://oapi.dingtalk.com/robot/send?access_token=<token>``,
UTF-8 JSON ``{"msgtype": "markdown", "markdown": {"title": <title>, "text": <markdown>}}`` (消息类型及数据格式,
https://open.dingtalk.com/document/orgapp/custom-robot-access). With 加签 (a secret ``SEC...``,
https://open.dingtalk.com/document/robots/customize-robot-security-settings): ``timestamp`` is the time in
milliseconds (at most one hour off the robot's clock), ``sign = urlencode(base64(HmacSHA256(key=secret,
msg=f"{timestamp}\\n{secret}")))``, both appended to the URL as ``&timestamp=...&sign=...``. Known answer:
timestamp ``1700000000000``, secret ``secret`` -> ``OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D``
(the test of docs.rs crate ``dingding`` 0.1.1, ``src/signature.rs``). It answers HTTP 200 with
``{"errcode": 0, "errmsg": "ok"}``; a rejection is ``errcode`` 310000 (``sign not match``, ``invalid timestamp``,
``keywords not in content``, ``ip X.X.X.X not in whitelist``: the same page), 300001 (no such token),
130101 ``send too fast, exceed 20 times per minute`` (seen in the wild, ccfos/nightingale#369; the
documented limit is 20 a minute per robot) and 410100 (treated as a rate limit by public clients).

``feishu``: Feishu/Lark custom bot (自定义机器人). ``POST https://open.feishu.cn/open-apis/bot/v2/hook/<token>``
(or ``open.larksuite.com``), JSON ``{"msg_type": "post", "content": {"post": {"zh_cn": {"title": <title>,
"content": [[{"tag": "text", "text": <line>}], ...]}}}}`` (rich text, 富文本, one paragraph a line). With
签名校验 (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, its ``gen_sign`` sample):
``timestamp`` in SECONDS (within one hour), ``sign = base64(HmacSHA256(key=f"{timestamp}\\n{secret}",
msg=b""))`` -- the string is the KEY and the message is empty, unlike DingTalk -- both sent in the body as
``"timestamp": "<str>", "sign": "<b64>"``. It answers ``{"code": 0, "msg": "success", "data": {}}`` (older
bots: ``{"StatusCode": 0, "StatusMessage": "success"}``); 19021 ``sign match fail or timestamp is not within
one hour from current time``, 19024 keywords, 19022 IP, 19001 bad token, 9499 ``Bad Request`` (HTTP 400),
11232 ``frequency limited psm[...]`` (rate limited; seen in the wild, e.g. openclaw/openclaw#70879).

``wecom``: WeCom (企业微信) group robot. ``POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>``,
JSON ``{"msgtype": "markdown", "markdown": {"content": <markdown, at most 4096 UTF-8 bytes>}}``
(群机器人配置说明, https://developer.work.weixin.qq.com/document/path/91770). There is no signature: the
``key`` in the URL is the secret (whoever has the URL can post), so a secret given for WeCom is ignored
and the URL must be kept like a password. It answers ``{"errcode": 0, "errmsg": "ok"}``; 45009 ``api freq
out of limit`` (20 a minute per robot) and 45033 (too many at once) are rate limits, 93000 ``invalid
webhook url`` a bad key (global error codes, https://developer.work.weixin.qq.com/document/path/90313).

``webhook``: livefleet's own signed JSON (``crawlers.feeds.delivery``): body ``{"alert": {...}}``
(:func:`alert_json`), headers from :func:`crawlers.feeds.delivery.signed_headers` (HMAC-SHA256 of
``<timestamp>.<body>``), ``X-Livefleet-Delivery`` set to the alert's :attr:`Alert.key` so a receiver can drop
the same event sent by two workers. Success is any 2xx; 408, 429 and 5xx are retried.

Retries and secrets
-------------------
:func:`send_alert` retries only what may pass later: no answer, HTTP 408/429/5xx, and the rate-limit
codes above (and the busy code -1); a signature, keyword, token or format error is final. A robot's
secret, its token (``access_token``, ``key``, the Feishu hook token) and a ``sign`` never appear in a log
line, an exception text or a result: :func:`redact_url` shows URLs as ``access_token=***``, and error
texts (which may echo them) are scrubbed. The request goes to the address ``crawlers.feeds.urlcheck``
checked, bounded in time, through ``crawlers.feeds.delivery.exchange`` (the webhooks' ``post``, keeping
the answer's body, where the robots put their error codes).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from crawlers.feeds.delivery import DELIVERY_HEADER, exchange, signed_headers
from crawlers.feeds.urlcheck import AllowList, UrlRefused
from models.platforms import PLATFORMS

logger = logging.getLogger(__name__)

EVENTS = ("stream_started", "stream_ended", "product_listed", "product_delisted", "price_cut", "viewers_crossed")
KINDS = ("webhook", "dingtalk", "feishu", "wecom")
UNKNOWN = "—"
#: WeCom's cap on ``markdown.content``, in UTF-8 bytes.
WECOM_MAX_BYTES = 4096
#: Query parameters whose values are credentials (DingTalk's token and sign, WeCom's key, and the usual
#: names of others): shown as ``***``.
SECRET_PARAMS = frozenset({"access_token", "key", "token", "secret", "sign"})
_FEISHU_HOOK = re.compile(r"(/open-apis/bot/v2/hook/)([^/?#]+)")
#: Answers worth another try: rate limits and "system busy", per channel (see the module docstring).
_RETRY_CODES = {"dingtalk": frozenset({-1, 130101, 410100}), "wecom": frozenset({-1, 45009, 45033}),
                "feishu": frozenset({11232})}
#: HTTP answers worth another try (as ``crawlers.feeds.delivery`` retries them).
_RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
_RATE_WORDS = re.compile(r"frequen|too many|rate limit", re.I)

# -- the alert ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One event. ``data`` by event: ``stream_ended``: ``duration_s``, ``peak_viewers``, ``gmv_estimate``,
    ``gmv_low``, ``gmv_high``; product events: ``product_id`` (required), ``title``, ``price``, ``old_price``
    (``price_cut`` requires ``price``); ``viewers_crossed``: ``threshold`` (required), ``viewers``."""

    event: str
    platform: str
    streamer_id: str
    streamer_name: str | None = None
    room_id: str | None = None
    session_id: str | None = None
    at: datetime
    watchlist: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown alert event {self.event!r}; one of {', '.join(EVENTS)}")
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r}; one of {', '.join(PLATFORMS)}")
        if not self.streamer_id:
            raise ValueError("an alert needs a streamer_id")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ValueError(f"alert time must be an aware datetime, got {self.at!r}")
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))
        needed = {"product_listed": ("product_id",), "product_delisted": ("product_id",),
                  "price_cut": ("product_id", "price"), "viewers_crossed": ("threshold",)}.get(self.event, ())
        missing = [name for name in needed if self.data.get(name) in (None, "")]
        if missing:
            raise ValueError(f"a {self.event} alert needs data {', '.join(missing)}")

    @property
    def key(self) -> str:
        """A stable id of the real-world event (sha1 hex): the same for every worker that sees it.

        Made of the event, platform, streamer, the broadcast (``session_id``, else ``room_id``) and what
        tells two events of a broadcast apart: the product (and, for a price cut, the new price) or the
        viewer threshold. Not the time, the name or the counts, which differ between workers."""
        data = self.data
        extra = {"product_listed": ("product_id",), "product_delisted": ("product_id",),
                 "price_cut": ("product_id", "price"), "viewers_crossed": ("threshold",)}.get(self.event, ())
        parts = [self.event, self.platform, self.streamer_id, self.session_id or self.room_id or "",
                 *(_canonical(data.get(name)) for name in extra)]
        return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def _canonical(value: Any) -> str:
    """One spelling per value: 10000, 10000.0 and "10000" are one threshold; 19.9 and "19.90" one price."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal | str) and not isinstance(value, bool):
        try:
            return format(Decimal(str(value).strip()).normalize(), "f")
        except InvalidOperation:
            pass
    return str(value).strip()


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert as JSON (the generic webhook's ``{"alert": ...}``), with its rendered title and text."""
    title, text = render_text(alert)
    return {"key": alert.key, "event": alert.event, "platform": alert.platform, "streamer_id": alert.streamer_id,
            "streamer_name": alert.streamer_name, "room_id": alert.room_id, "session_id": alert.session_id,
            "at": alert.at.isoformat(), "watchlist": alert.watchlist, "data": dict(alert.data),
            "title": title, "text": text}


# -- the text ----------------------------------------------------------------------------------------------------

_HEADS = {"stream_started": ("开播提醒", "开播了", "Stream started"),
          "stream_ended": ("下播提醒", "下播了", "Stream ended"),
          "product_listed": ("上架提醒", "上架了商品", "Product listed"),
          "product_delisted": ("下架提醒", "下架了商品", "Product delisted"),
          "price_cut": ("降价提醒", "降价了", "Price cut"),
          "viewers_crossed": ("人气提醒", "在线人数突破 {threshold}", "Viewers crossed {threshold}")}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _count(value: Any) -> str:
    number = _number(value)
    return UNKNOWN if number is None else f"{round(number):,}"


def _amount(number: float, decimals: int) -> str:
    if abs(number) >= 1e8:
        return f"{number / 1e8:.1f}亿"
    if abs(number) >= 1e4:
        return f"{number / 1e4:.1f}万"
    return f"{number:,.{decimals}f}"


def _money(value: Any, decimals: int = 2) -> str:
    number = _number(value)
    return UNKNOWN if number is None else f"¥{_amount(number, decimals)}"


def _duration(value: Any) -> str:
    number = _number(value)
    if number is None or number < 0:
        return UNKNOWN
    seconds = int(number)
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m" if minutes else f"{seconds}s"


def _gmv(data: Mapping[str, Any]) -> str:
    low, high = _number(data.get("gmv_low")), _number(data.get("gmv_high"))
    if low is not None and high is not None:
        return f"¥{_amount(low, 0)}–{_amount(high, 0)}"
    return _money(data.get("gmv_estimate"), 0)


def _text(value: Any, limit: int = 60) -> str:
    text = " ".join(str(value).split()) if value not in (None, "") else ""
    return UNKNOWN if not text else text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime) -> str:
    offset = at.strftime("%z")
    return f"{at:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:]}"


def render_lines(alert: Alert) -> tuple[str, list[tuple[str, str]]]:
    """``(title, [(label, value), ...])``: the text before it is dressed as markdown or rich text."""
    data = alert.data
    label, verb, english = _HEADS[alert.event]
    threshold = _count(data.get("threshold"))
    name = _text(alert.streamer_name or alert.streamer_id, 40)
    title = f"【{label}】{name} {verb.format(threshold=threshold)} ({alert.platform})"
    lines = [("事件 Event", english.format(threshold=threshold)),
             ("主播 Streamer", f"{name} ({alert.streamer_id})" if alert.streamer_name else name)]
    if alert.event == "stream_started":
        lines += [("房间 Room", _text(alert.room_id))]
    elif alert.event == "stream_ended":
        lines += [("时长 Duration", _duration(data.get("duration_s"))),
                  ("峰值在线 Peak viewers", _count(data.get("peak_viewers"))),
                  ("预估GMV Est. GMV", _gmv(data))]
    elif alert.event == "viewers_crossed":
        lines += [("在线 Viewers", _count(data.get("viewers"))), ("阈值 Threshold", threshold)]
    else:
        product = _text(data.get("title"))
        lines += [("商品 Product", f"{product} ({_text(data.get('product_id'), 40)})")]
        price = _money(data.get("price"))
        if alert.event == "price_cut":
            old, new = _number(data.get("old_price")), _number(data.get("price"))
            cut = f" (-{round((old - new) / old * 100)}%)" if old and new is not None and old > 0 else ""
            price = f"{_money(data.get('old_price'))} → {price}{cut}"
        lines += [("价格 Price", price)]
    lines += [("时间 At", _when(alert.at))]
    if alert.watchlist:
        lines += [("关注列表 Watchlist", _text(alert.watchlist))]
    return title, lines


def render_text(alert: Alert) -> tuple[str, str]:
    """``(title, markdown)``, e.g. ``【下播提醒】小杨 下播了 (douyin)`` and lines such as
    ``**时长 Duration**: 1h23m``, ``**峰值在线 Peak viewers**: 12,345``, ``**预估GMV Est. GMV**: ¥1.2万–1.5万``.
    Paragraphs (blank-line separated) render as lines in both DingTalk's and WeCom's markdown; the last
    line says ``livefleet`` (a keyword a robot's 自定义关键词 can require)."""
    title, lines = render_lines(alert)
    body = "\n\n".join(f"**{label}**: {value}" for label, value in lines)
    return title, f"### {title}\n\n{body}\n\n###### livefleet"


# -- the requests ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RobotRequest:
    """One POST: where (the URL with its credentials: print :func:`redact_url` of it), headers, raw body."""

    url: str
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"RobotRequest(url={redact_url(self.url)!r}, body=<{len(self.body)} bytes>)"


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's 加签: base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret)), before URL encoding."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: str) -> str:
    """Feishu/Lark's 签名校验: base64(HmacSHA256(key=timestamp + "\\n" + secret, msg=empty))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _with_params(url: str, **params: str) -> str:
    """``url`` with ``params`` set (replacing any of the same name), encoded like DingTalk's quote_plus."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*kept, *params.items()])))


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _cap_utf8(text: str, limit: int) -> str:
    raw = text.encode()
    return text if len(raw) <= limit else raw[: limit - 3].decode(errors="ignore") + "…"


_JSON_HEADERS = MappingProxyType({"Content-Type": "application/json; charset=utf-8"})


def build_request(kind: str, url: str, secret: str | None, alert: Alert, *, now: float) -> RobotRequest:
    """The request ``kind`` wants for ``alert`` at ``now`` (epoch seconds), signed when ``secret`` is set.

    ValueError for an unknown kind, a URL that is not that robot's (no ``access_token`` for DingTalk, no
    ``key`` for WeCom, no ``/open-apis/bot/v2/hook/<token>`` for Feishu), or a generic webhook without a
    secret. The error shows the URL redacted."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert channel {kind!r}; one of {', '.join(KINDS)}")
    title, text = render_text(alert)
    if kind == "webhook":
        if not secret:
            raise ValueError("the generic webhook is always signed: it needs a secret")
        body = _json_bytes({"alert": alert_json(alert)})
        headers = signed_headers(secret, body, now=now)
        headers[DELIVERY_HEADER] = alert.key  # one id per event, whichever worker sends it
        return RobotRequest(url, headers, body)
    if kind == "dingtalk":
        if not _query(url).get("access_token"):
            raise ValueError(f"not a DingTalk robot URL (no access_token): {redact_url(url)}")
        if secret:
            timestamp = str(int(round(now * 1000)))
            url = _with_params(url, timestamp=timestamp, sign=dingtalk_sign(secret, timestamp))
        payload: dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    elif kind == "feishu":
        if not _FEISHU_HOOK.search(urlsplit(url).path):
            raise ValueError(f"not a Feishu/Lark bot URL (no /open-apis/bot/v2/hook/<token>): {redact_url(url)}")
        _, lines = render_lines(alert)
        paragraphs = [[{"tag": "text", "text": text}] for text in (*(f"{k}: {v}" for k, v in lines), "livefleet")]
        payload = {"msg_type": "post", "content": {"post": {"zh_cn": {"title": title, "content": paragraphs}}}}
        if secret:
            timestamp = str(int(now))
            payload = {"timestamp": timestamp, "sign": feishu_sign(secret, timestamp), **payload}
    else:  # wecom: the key in the URL is the only credential
        if not _query(url).get("key"):
            raise ValueError(f"not a WeCom robot URL (no key): {redact_url(url)}")
        payload = {"msgtype": "markdown", "markdown": {"content": _cap_utf8(text, WECOM_MAX_BYTES)}}
    return RobotRequest(url, dict(_JSON_HEADERS), _json_bytes(payload))


# -- the answers -------------------------------------------------------------------------------------------------


class Answer(NamedTuple):
    """How a channel answered: accepted, why not (its code and message), and whether to try again."""

    ok: bool
    reason: str
    retryable: bool = False
    code: int | None = None


def _code(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _vendor(kind: str, answer: Any) -> tuple[int | None, str]:
    """The channel's own ``(code, message)`` in its answer, or ``(None, "")``."""
    if not isinstance(answer, dict):
        return None, ""
    if kind == "feishu":  # "code" first: a failure may carry a stale "StatusCode": 0 beside it
        for code_key, msg_key in (("code", "msg"), ("StatusCode", "StatusMessage")):
            if (code := _code(answer.get(code_key))) is not None:
                return code, str(answer.get(msg_key) or "")
        return None, ""
    return _code(answer.get("errcode")), str(answer.get("errmsg") or "")


def answer_ok(kind: str, status: int, body: bytes) -> Answer:
    """Whether ``kind`` accepted the request, judged on its HTTP status AND its JSON body.

    The robots answer HTTP 200 to most failures, with ``errcode`` (DingTalk, WeCom) or ``code`` / older
    ``StatusCode`` (Feishu) not 0. Retryable: 408, 429, 5xx, and the rate-limit / busy codes (a Feishu 9499
    only when its message says the rate was limited); a signature, keyword, token or format error is not.
    The reason quotes the channel's message (up to 200 characters): :func:`send_alert` scrubs credentials."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert channel {kind!r}")
    if kind == "webhook":
        if 200 <= status < 300:
            return Answer(True, f"HTTP {status}")
        return Answer(False, f"HTTP {status}", status in _RETRY_STATUS)
    try:
        parsed = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, ValueError):
        parsed = None
    code, message = _vendor(kind, parsed)
    said = f"{kind} error {code}: {message[:200]}" if code is not None else ""
    retryable = code is not None and (code in _RETRY_CODES[kind] or (
        kind == "feishu" and code == 9499 and bool(_RATE_WORDS.search(message))))
    if not 200 <= status < 300:
        return Answer(False, f"HTTP {status}" + (f" ({said})" if said else ""),
                      status in _RETRY_STATUS or retryable, code)
    if code is None:
        return Answer(False, f"HTTP {status} without the {kind} robot's result code in its answer")
    if code == 0:
        return Answer(True, "ok", False, 0)
    return Answer(False, said, retryable, code)


# -- sending -----------------------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` safe to print: credential query values (:data:`SECRET_PARAMS`) and a Feishu hook token as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"

    def pair(text: str) -> str:
        name = text.partition("=")[0]
        return f"{name}=***" if name.lower() in SECRET_PARAMS else text

    query = "&".join(pair(text) for text in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(path=_FEISHU_HOOK.sub(r"\1***", parts.path), query=query))


def _credentials(urls: tuple[str, ...], secret: str | None) -> list[str]:
    """Every credential a text could echo, longest first (encoded and decoded spellings alike)."""
    found = {secret} if secret else set()
    for url in urls:
        parts = urlsplit(url)
        found |= {v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS}
        found |= {m.group(2) for m in _FEISHU_HOOK.finditer(parts.path)}
    found |= {quote(v, safe="") for v in list(found)} | {quote(v) for v in list(found)}
    return sorted((v for v in found if v), key=len, reverse=True)


def _scrub(text: str, urls: tuple[str, ...], secret: str | None) -> str:
    for url in urls:
        text = text.replace(url, redact_url(url))
    for value in _credentials(urls, secret):
        text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class RobotDelivery:
    """How one alert's delivery ended (like ``crawlers.feeds.delivery.Delivery``); ``code`` is the channel's
    own result code, ``url`` the redacted URL. No field holds a secret or a token."""

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    refused: bool = False
    code: int | None = None
    kind: str = ""
    key: str = ""
    url: str = ""


#: ``send(url, body, headers, timeout) -> (status, answer bytes)``
Send = Callable[[str, bytes, Mapping[str, str], float], tuple[int, bytes]]


def send_alert(kind: str, url: str, secret: str | None, alert: Alert, *, allow: AllowList | str | None,
               attempts: int = 3, backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0,
               connect_timeout: float = 5.0, now: float | None = None,
               sleep: Callable[[float], object] = time.sleep, send: Send | None = None) -> RobotDelivery:
    """Build ``alert``'s request for ``kind`` and POST it, retrying with exponential backoff only what may
    pass later (no answer, 408/429/5xx, a rate-limit code). Each attempt is signed afresh at ``now`` (the
    clock when None). ``allow``: the operator's allow-list (None: ``LIVEFLEET_WEBHOOK_ALLOW``). Never raises
    for a delivery problem; ``refused`` when the URL may never be posted to (refused address, not a robot URL)."""
    shown = redact_url(url)
    post: Send = send or functools.partial(exchange, allow=AllowList.of(allow), connect_timeout=connect_timeout)

    def ended(result: RobotDelivery) -> RobotDelivery:
        if not result.ok:
            logger.warning("alert %s (%s) to %s %s not delivered after %d attempt(s): %s", result.key[:12],
                           alert.event, kind, shown, result.attempts, result.error)
        return result

    common = {"kind": kind, "key": alert.key, "url": shown}
    delay, status, code, error = backoff, None, None, ""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            request = build_request(kind, url, secret, alert, now=time.time() if now is None else now)
        except ValueError as exc:
            return ended(RobotDelivery(False, attempt, None, _scrub(str(exc), (url,), secret), True, **common))
        urls = (request.url, url)
        try:
            status, answer = post(request.url, request.body, request.headers, timeout)
        except UrlRefused as exc:
            return ended(RobotDelivery(False, attempt, None, _scrub(f"refused: {exc}", urls, secret), True,
                                       **common))
        except Exception as exc:  # noqa: BLE001 (unreachable, timed out, a broken answer: retried)
            status, code, retryable = None, None, True
            error = _scrub(f"{type(exc).__name__}: {exc}", urls, secret)
        else:
            verdict = answer_ok(kind, status, answer)
            if verdict.ok:
                logger.debug("alert %s (%s) delivered to %s %s", alert.key[:12], alert.event, kind, shown)
                return RobotDelivery(True, attempt, status, None, False, verdict.code, **common)
            code, retryable, error = verdict.code, verdict.retryable, _scrub(verdict.reason, urls, secret)
        if not retryable:
            return ended(RobotDelivery(False, attempt, status, error, False, code, **common))
        if attempt < attempts:
            sleep(delay)
            delay = min(delay * 2, max_backoff)
    return ended(RobotDelivery(False, max(1, attempts), status, error, False, code, **common))
