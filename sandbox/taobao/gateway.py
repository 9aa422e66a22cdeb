"""The sandbox's replica of Taobao's mtop H5 gateway: tokens, signature check, envelopes.

Independent of ``spiders/taobao/sign.py`` on purpose (the sandbox never imports the
spiders): it verifies what a client sends by the published rule, so a client that
signs wrongly fails here.

* ``_m_h5_tk`` = ``<32-hex token>_<expiry epoch ms>``, with ``_m_h5_tk_enc`` beside it.
  Tokens are derived from a secret, the token generation and the expiry, so nothing is
  stored per client; ``expire_all`` bumps the generation and every issued token turns
  stale at once. Expiry is wall-clock time (the world clock may be frozen).
* ``sign`` must be the lowercase hex MD5 of ``token&t&appKey&data``, ``data`` being the
  decoded query parameter exactly as sent.
* Answers are ``{"api", "data", "ret", "v"}`` (key order of the captured answers), as
  JSONP ``mtopjsonp1({...})`` when ``type=jsonp``, else plain JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.base import JSON_TYPE, raw_response
from sandbox.world import mix

JSONP_TYPE = "application/javascript; charset=utf-8"
SUCCESS = "SUCCESS::调用成功"
TOKEN_EMPTY = "FAIL_SYS_TOKEN_EMPTY::令牌为空"
TOKEN_EXPIRED = "FAIL_SYS_TOKEN_EXOIRED::令牌过期"  # sic, as the gateway spells it
ILLEGAL_SIGN = "FAIL_SYS_ILEGEL_SIGN::非法签名"  # sic
API_NOT_FOUND = "FAIL_SYS_API_NOT_FOUNDED::请求API不存在"
RISK = ["FAIL_SYS_USER_VALIDATE", "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"]
#: Not seen in public captures: what this sandbox answers for bad data and unknown lives.
PARAM_ERROR = "FAIL_SYS_PARAM_ERROR::参数错误"
LIVE_NOT_EXIST = "FAIL_BIZ_LIVE_NOT_EXIST::直播不存在"
ITEM_NOT_EXIST = "ERRCODE_QUERY_DETAIL_FAIL::宝贝不存在"

_CALLBACK_RE = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class Tokens:
    """Issues and checks ``_m_h5_tk`` tokens (see the module docstring)."""

    #: Wall seconds a token lives. Short, so tests and long runs meet the refresh path.
    LIFETIME_SECONDS = 600.0

    def __init__(self, seed: int, wall: Callable[[], float] = time.time) -> None:
        self.seed = seed
        self.generation = 0
        self.lifetime = self.LIFETIME_SECONDS
        self._wall = wall

    def _token(self, expiry_ms: int) -> str:
        return _md5(f"{mix(self.seed, 0x7A0C, self.generation)}|{expiry_ms}")

    def _enc(self, token: str) -> str:
        return _md5(f"{token}|enc|{mix(self.seed, 0xE9C)}")

    def issue(self) -> tuple[str, str]:
        """A fresh ``(_m_h5_tk, _m_h5_tk_enc)`` cookie pair."""
        expiry = int((self._wall() + self.lifetime) * 1000)
        token = self._token(expiry)
        return f"{token}_{expiry}", self._enc(token)

    def check(self, tk: str | None, enc: str | None) -> tuple[str, str]:
        """``("empty" | "expired" | "ok", token)`` for the cookies a request carried.

        A token this gateway did not issue (or issued before ``expire_all``), one past its
        expiry, or one whose ``_m_h5_tk_enc`` does not match, is "expired", as the real
        gateway calls any token it will not accept.
        """
        if not tk:
            return "empty", ""
        token, _, suffix = tk.strip().strip('"').partition("_")
        if not suffix.isdigit() or token != self._token(int(suffix)) or enc != self._enc(token):
            return "expired", token
        if self._wall() * 1000 >= int(suffix):
            return "expired", token
        return "ok", token

    def expire_all(self) -> None:
        """Make every token issued so far stale."""
        self.generation += 1

    def as_dict(self) -> dict[str, Any]:
        """The token settings, JSON-ready."""
        return {"lifetime_seconds": self.lifetime, "generation": self.generation}


def expected_sign(token: str, query: Any) -> str:
    """The sign the gateway expects for ``query`` (a mapping of the decoded parameters)."""
    return _md5(f"{token}&{query.get('t', '')}&{query.get('appKey', '')}&{query.get('data', '')}")


def envelope_bytes(request: web.Request, api: str, v: str, ret: list[str], data: Any) -> tuple[bytes, str]:
    """``(body, content type)`` of an answer, JSONP when the request asked for it."""
    text = json.dumps({"api": api, "data": data, "ret": ret, "v": v}, ensure_ascii=False, separators=(",", ":"))
    if request.query.get("type", "").lower() == "jsonp":
        callback = request.query.get("callback", "mtopjsonp1")
        callback = callback if _CALLBACK_RE.match(callback) else "mtopjsonp1"
        return f"{callback}({text})".encode(), JSONP_TYPE
    return text.encode(), JSON_TYPE


def answer(
    request: web.Request, api: str, v: str, ret: list[str], data: Any, headers: dict[str, str] | None = None
) -> web.Response:
    """An mtop answer with HTTP 200, whatever ``ret`` says (as the real gateway)."""
    body, content_type = envelope_bytes(request, api, v, ret, data)
    return raw_response(body, content_type=content_type, headers=headers)


def set_token_cookies(response: web.Response, tokens: Tokens) -> web.Response:
    """Hand out a fresh token pair (no Domain: clients talk to 127.0.0.1, not .taobao.com)."""
    tk, enc = tokens.issue()
    response.set_cookie("_m_h5_tk", tk, path="/")
    response.set_cookie("_m_h5_tk_enc", enc, path="/")
    return response


def risk_answer(request: web.Request, api: str, v: str, seed: int, n: int) -> web.Response:
    """Risk control: ``FAIL_SYS_USER_VALIDATE`` + ``RGV587_ERROR`` with the slider at ``data.url`` (HTTP 200)."""
    secdata = _md5(f"{seed}|{n}")
    url = f"https://h5api.m.taobao.com:443/h5/{api}/{v}/_____tmd_____/punish?x5secdata={secdata}&x5step=1"
    return answer(request, api, v, list(RISK), {"url": url}, headers={"bxpunish": "1"})
