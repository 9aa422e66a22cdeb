"""Local imitations of the chat robots livefleet alerts: DingTalk, Feishu/Lark, WeCom, and the generic webhook.

One stdlib HTTP server on 127.0.0.1 (port 0, chosen by the kernel) answers like the real services:

* ``POST /robot/send?access_token=<token>[&timestamp=<ms>&sign=<urlencoded b64>]``: DingTalk. With a
  secret (加签) it recomputes ``base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}"))`` from the
  received timestamp and refuses a timestamp more than an hour off (``errcode`` 310000 ``invalid timestamp``
  / ``sign not match``); 300001 for an unknown token; 43004 without a JSON Content-Type; 40035 for a
  markdown message without title or text; rate limited: 130101 ``send too fast, exceed 20 times per minute``.
* ``POST /open-apis/bot/v2/hook/<token>``: Feishu/Lark. With a secret it recomputes
  ``base64(HmacSHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` from the body's ``timestamp`` (seconds) and
  answers 19021 ``sign match fail or timestamp is not within one hour from current time``; 19001 for an
  unknown token; HTTP 400 ``{"code": 9499, "msg": "Bad Request"}`` for a body that is not a text/post
  message; rate limited: 11232 ``frequency limited psm[...]``.
* ``POST /cgi-bin/webhook/send?key=<key>``: WeCom. 93000 ``invalid webhook url`` for an unknown key, 40058
  for markdown over 4096 bytes; rate limited: 45009 ``api freq out of limit``.
* ``POST /hook``: livefleet's generic webhook: HMAC-SHA256 hex of ``<timestamp>.<body>`` in
  ``X-Livefleet-Signature: sha256=...``, timestamp within 300 s; 401 when wrong, 429 when rate limited.

Everything is verified from the receiver's own copy of the secrets, written here again rather than
imported from ``crawlers.alerts`` or ``crawlers.feeds``, so a wrong signer fails against it. Every request
is recorded (:attr:`RobotReceiver.received`); :meth:`RobotReceiver.rate_limit` makes the next N requests of
a kind get the rate-limit answer (after the signature is checked, as a real robot counts signed calls).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, dict[str, Any]]

DINGTALK_OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
WECOM_OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
FEISHU_OK: dict[str, Any] = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
RATE_LIMITED: dict[str, Reply] = {
    "dingtalk": (200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}),
    "feishu": (200, {"code": 11232, "data": {},
                     "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}),
    "wecom": (200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
    "webhook": (429, {"error": "too many requests"}),
}
WEBHOOK_OK: dict[str, Any] = {"ok": True}
_ACCEPTED = (DINGTALK_OK, WECOM_OK, FEISHU_OK, WEBHOOK_OK)
FEISHU_BAD_SIGN = {"code": 19021, "data": {},
                   "msg": "sign match fail or timestamp is not within one hour from current time"}
ONE_HOUR = 3600


@dataclass
class Received:
    """One request as the receiver saw it, and what it answered."""

    kind: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    accepted: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class RobotReceiver:
    """The robots' imitation: tokens and secrets per robot, the requests it got, rate limits to come.

    ``dingtalk`` / ``feishu``: token -> secret (None: a robot without signing); ``wecom``: the keys;
    ``webhook_secret``: the generic webhook's secret; ``keywords``: when set, DingTalk and Feishu refuse a
    message that contains none of them (their 自定义关键词)."""

    def __init__(self, *, dingtalk: dict[str, str | None], feishu: dict[str, str | None], wecom: set[str],
                 webhook_secret: str, keywords: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.dingtalk, self.feishu, self.wecom = dict(dingtalk), dict(feishu), set(wecom)
        self.webhook_secret, self.keywords, self.clock = webhook_secret, keywords, clock
        self.received: list[Received] = []
        self._limited: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, kind: str, token: str | None = None) -> str:
        """The URL of a robot of ``kind`` (its first token, or ``token``)."""
        if kind == "dingtalk":
            return f"{self.base}/robot/send?access_token={token or next(iter(self.dingtalk))}"
        if kind == "feishu":
            return f"{self.base}/open-apis/bot/v2/hook/{token or next(iter(self.feishu))}"
        if kind == "wecom":
            return f"{self.base}/cgi-bin/webhook/send?key={token or next(iter(self.wecom))}"
        return f"{self.base}/hook"

    def rate_limit(self, kind: str, count: int) -> None:
        """Answer the next ``count`` signed requests of ``kind`` as rate limited."""
        with self._lock:
            self._limited[kind] = count

    def of(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.kind == kind]

    def _take_limit(self, kind: str) -> bool:
        with self._lock:
            if self._limited.get(kind, 0) > 0:
                self._limited[kind] -= 1
                return True
            return False

    def _has_keyword(self, text: str) -> bool:
        return not self.keywords or any(word in text for word in self.keywords)

    # -- each robot's checks, in the order the services document them --------------------------------------

    def answer(self, request: Received) -> Reply:
        try:
            return {"dingtalk": self._dingtalk, "feishu": self._feishu, "wecom": self._wecom,
                    "webhook": self._webhook}[request.kind](request)
        except (ValueError, KeyError, TypeError, AttributeError):
            if request.kind == "webhook":
                return 400, {"error": "not an alert"}
            if request.kind == "feishu":
                return 400, {"code": 9499, "msg": "Bad Request", "data": {}}
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}

    def _dingtalk(self, request: Received) -> Reply:
        token = request.query.get("access_token", [""])[0]
        if token not in self.dingtalk:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        secret = self.dingtalk[token]
        if secret is not None:
            timestamp = request.query.get("timestamp", [""])[0]
            if not timestamp.isdigit() or abs(self.clock() * 1000 - int(timestamp)) > ONE_HOUR * 1000:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            string_to_sign = f"{timestamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(expected, request.query.get("sign", [""])[0]):  # parse_qs decoded it once
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
        if not request.headers.get("content-type", "").startswith("application/json"):
            return 200, {"errcode": 43004, "errmsg": "无效的HTTP HEADER Content-Type"}
        message = request.json
        if message["msgtype"] == "markdown":
            title, text = message["markdown"]["title"], message["markdown"]["text"]
            if not (isinstance(title, str) and title and isinstance(text, str) and text):
                raise ValueError("markdown without title or text")
        elif message["msgtype"] == "text":
            text = message["text"]["content"]
        else:
            raise ValueError(f"unexpected msgtype {message['msgtype']!r}")
        if not self._has_keyword(text):
            return 200, {"errcode": 310000, "errmsg": "keywords not in content"}
        if self._take_limit("dingtalk"):
            return RATE_LIMITED["dingtalk"]
        return 200, DINGTALK_OK

    def _feishu(self, request: Received) -> Reply:
        token = request.path.rsplit("/", 1)[-1]
        if token not in self.feishu:
            return 200, {"code": 19001, "data": {}, "msg": "param invalid: incoming webhook access token invalid"}
        message = request.json
        secret = self.feishu[token]
        if secret is not None:
            timestamp = str(message.get("timestamp", ""))
            key = f"{timestamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if (not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > ONE_HOUR
                    or not hmac.compare_digest(expected, str(message.get("sign", "")))):
                return 200, FEISHU_BAD_SIGN
        if message["msg_type"] == "text":
            text = message["content"]["text"]
        elif message["msg_type"] == "post":
            posts = message["content"]["post"]
            text = "\n".join(element["text"] for post in posts.values() for paragraph in post["content"]
                             for element in paragraph if element["tag"] == "text")
            text += "".join(str(post.get("title", "")) for post in posts.values())
        else:
            raise ValueError(f"unexpected msg_type {message['msg_type']!r}")
        if not isinstance(text, str) or not text:
            raise ValueError("empty message")
        if not self._has_keyword(text):
            return 200, {"code": 19024, "data": {}, "msg": "Key Words Not Found"}
        if self._take_limit("feishu"):
            return RATE_LIMITED["feishu"]
        return 200, FEISHU_OK

    def _wecom(self, request: Received) -> Reply:
        key = request.query.get("key", [""])[0]
        if key not in self.wecom:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1700000000_1_abc]"}
        message = request.json
        if message["msgtype"] != "markdown":
            raise ValueError(f"unexpected msgtype {message['msgtype']!r}")
        content = message["markdown"]["content"]
        if not isinstance(content, str) or not content:
            raise ValueError("empty markdown")
        if len(content.encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        if self._take_limit("wecom"):
            return RATE_LIMITED["wecom"]
        return 200, WECOM_OK

    def _webhook(self, request: Received) -> Reply:
        timestamp = request.headers.get("x-livefleet-timestamp", "")
        signature = request.headers.get("x-livefleet-signature", "")
        expected = "sha256=" + hmac.new(self.webhook_secret.encode(), timestamp.encode() + b"." + request.body,
                                        hashlib.sha256).hexdigest()
        if (not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > 300
                or not hmac.compare_digest(expected, signature)):
            return 401, {"error": "bad signature"}
        if self._take_limit("webhook"):
            return RATE_LIMITED["webhook"]
        if not isinstance(json.loads(request.body)["alert"]["key"], str):
            raise ValueError("an alert without its key")
        return 200, WEBHOOK_OK


def _kind_of(path: str) -> str | None:
    if path == "/robot/send":
        return "dingtalk"
    if path.startswith("/open-apis/bot/v2/hook/"):
        return "feishu"
    if path == "/cgi-bin/webhook/send":
        return "wecom"
    if path == "/hook":
        return "webhook"
    return None


def _handler_for(receiver: RobotReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = _kind_of(parts.path)
            if kind is None:
                self._reply(404, {"error": "no such robot"})
                return
            request = Received(kind, parts.path, parse_qs(parts.query, keep_blank_values=True),
                               {k.lower(): v for k, v in self.headers.items()}, body)
            request.status, request.answer = receiver.answer(request)
            request.accepted = request.status == 200 and any(request.answer is ok for ok in _ACCEPTED)
            with receiver._lock:
                receiver.received.append(request)
            self._reply(request.status, request.answer)

        def _reply(self, status: int, answer: dict[str, Any]) -> None:
            raw = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the requests are recorded instead."""

    return Handler


@contextmanager
def serve_robots(**config: Any) -> Iterator[RobotReceiver]:
    """A :class:`RobotReceiver` (``config`` as its arguments) serving in a thread until the block ends."""
    receiver = RobotReceiver(**config)
    thread = threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=10)
