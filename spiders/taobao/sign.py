"""Signing of Taobao's mtop H5 gateway requests (``h5api.m.taobao.com/h5/{api}/{v}/``).

Pure functions, used by the Taobao downloader middleware:

* the token is the part of the ``_m_h5_tk`` cookie before its first ``_``; the cookie
  value is ``<32-hex token>_<expiry, epoch milliseconds>``;
* ``sign`` is the lowercase hex MD5 of ``token&t&appKey&data``, ``t`` being the
  millisecond timestamp sent in the same URL and ``data`` the exact JSON text sent;
* a request without a token, or with a stale one, gets ``FAIL_SYS_TOKEN_EMPTY`` /
  ``FAIL_SYS_TOKEN_EXOIRED`` (sic) and fresh ``_m_h5_tk``/``_m_h5_tk_enc`` cookies: the
  retry is re-signed with ``resign_url``, which keeps the data string byte for byte.

Sources (PLATFORMS.md section 3.2): ihmily/DouyinLiveRecorder ``spider.py``,
xinlingqudongX/TSDK ``h5.py``, ztj7728/TaobaoLiveWebFetcher ``liveMan.py``,
nastgaer/highest_flow_web ``SignServiceImpl.java`` agree on the formula.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote, unquote_plus

__all__ = [
    "APP_KEY",
    "JSV",
    "mtop_data",
    "mtop_sign",
    "mtop_url",
    "parse_ret",
    "resign_url",
    "token_expired",
    "token_from_cookie",
]

#: The H5 appKey of the Taobao web pages (live room, item pages).
APP_KEY = "12574478"
#: The mtop JS SDK version the web pages send (``jsv``); the server does not sign it.
JSV = "2.7.2"


def token_from_cookie(value: str) -> tuple[str, int | None]:
    """Split an ``_m_h5_tk`` cookie value into ``(token, expiry epoch ms)``.

    ``"0a1b..._1717236000000"`` -> ``("0a1b...", 1717236000000)``. A value without a
    numeric suffix gives ``(token, None)``. An empty value raises ``ValueError``:
    there is no token to sign with.
    """
    text = (value or "").strip().strip('"')
    token, _, suffix = text.partition("_")
    if not token:
        raise ValueError(f"no token in _m_h5_tk cookie value {value!r}")
    return token, int(suffix) if suffix.isdigit() else None


def token_expired(value: str, now_ms: int) -> bool:
    """Whether the ``_m_h5_tk`` cookie ``value`` is past its expiry at ``now_ms``.

    A cookie without an expiry is never taken as expired here: the gateway says so.
    """
    _, expiry = token_from_cookie(value)
    return expiry is not None and now_ms >= expiry


def mtop_sign(token: str, t: str, app_key: str, data: str) -> str:
    """Lowercase hex MD5 of ``token&t&appKey&data``."""
    return hashlib.md5(f"{token}&{t}&{app_key}&{data}".encode()).hexdigest()


def mtop_data(data: dict[str, Any] | str) -> str:
    """The ``data`` text of a request: a string as given, an object as compact JSON.

    Compact separators as the pages' ``JSON.stringify`` writes them; non-ASCII text
    stays as it is (it is percent-encoded in the URL, and signed decoded).
    """
    if isinstance(data, str):
        return data
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def mtop_url(
    base: str,
    api: str,
    v: str,
    data: dict[str, Any] | str,
    *,
    token: str,
    t: str,
    app_key: str = APP_KEY,
    jsonp: bool = True,
) -> str:
    """A signed gateway URL ``{base}/h5/{api}/{v}/?jsv=..&appKey=..&t=..&sign=..&...&data=..``.

    ``base`` is ``https://h5api.m.taobao.com`` or its sandbox replica. ``jsonp=False``
    asks for plain JSON (``type=originaljson``) instead of ``mtopjsonp1(...)``. Every
    value is percent-encoded with nothing left safe, so the server decodes exactly the
    data text that was signed.
    """
    text = mtop_data(data)
    t = str(t)
    params = [
        ("jsv", JSV),
        ("appKey", app_key),
        ("t", t),
        ("sign", mtop_sign(token, t, app_key, text)),
        ("api", api),
        ("v", v),
    ]
    if jsonp:
        params += [("type", "jsonp"), ("dataType", "jsonp"), ("callback", "mtopjsonp1")]
    else:
        params += [("type", "originaljson"), ("dataType", "json")]
    params.append(("data", text))
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params)
    return f"{base.rstrip('/')}/h5/{api}/{v}/?{query}"


def resign_url(url: str, *, token: str, t: str) -> str:
    """``url`` with a new ``t`` and ``sign`` for ``token``; everything else unchanged.

    The ``data`` parameter is kept byte for byte (its encoded form included) and
    signed as the server decodes it, so the retry after a token refresh asks for
    exactly what the first request asked for. ``appKey`` is read from the URL
    (``APP_KEY`` when absent). Raises ``ValueError`` when the URL has no ``data``.
    """
    base, sep, query = url.partition("?")
    fragment = ""
    if "#" in query:
        query, fragment = query.split("#", 1)
        fragment = "#" + fragment
    pairs = [part.partition("=") for part in query.split("&") if part] if sep else []
    raw = {key: value for key, _, value in pairs}
    if "data" not in raw:
        raise ValueError(f"not an mtop URL (no data parameter): {url[:200]}")
    t = str(t)
    app_key = unquote_plus(raw["appKey"]) if "appKey" in raw else APP_KEY
    sign = mtop_sign(token, t, app_key, unquote_plus(raw["data"]))
    new = {"t": quote(t, safe=""), "sign": sign}
    out = [f"{key}={new.pop(key)}" if key in new else f"{key}={value}" for key, _, value in pairs]
    # A URL that lacked t or sign gets them before data, where the pages put them.
    missing = [f"{key}={value}" for key, value in new.items()]
    if missing:
        at = next(i for i, (key, _, _) in enumerate(pairs) if key == "data")
        out[at:at] = missing
    return f"{base}?{'&'.join(out)}{fragment}"


def parse_ret(ret: list[str]) -> list[tuple[str, str]]:
    """``["CODE::message", ...]`` -> ``[(code, message), ...]``, split on the first ``::``.

    ``"RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"`` -> ``("RGV587_ERROR", "SM::哎哟喂,...")``;
    a bare ``"FAIL_SYS_USER_VALIDATE"`` -> ``("FAIL_SYS_USER_VALIDATE", "")``. Raises
    ``ValueError`` when ``ret`` is not a list of strings.
    """
    if not isinstance(ret, list | tuple) or not all(isinstance(item, str) for item in ret):
        raise ValueError(f"ret must be a list of strings, not {ret!r}")
    out = []
    for item in ret:
        code, _, message = item.partition("::")
        out.append((code.strip(), message.strip()))
    return out
