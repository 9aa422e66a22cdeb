"""Kuaishou envelopes and the room page's embedded state: blocks, gone entities, errors, data.

* ``initial_state(html)``: the ``window.__INITIAL_STATE__={...};(function(){var s;...`` object of a
  ``live.kuaishou.com/u/{principalId}`` page. The object is a JavaScript literal, not JSON: it
  is cut out by a brace-balanced, string-aware scan and its bare ``undefined`` values become
  ``null`` (src: pcccccc/LiveParse Resources/lp_plugin_ks_1.0.3_index.js
  ``_ks_extractInitialStateText``; OrdinaryRoad KuaishouApis.java replaces undefined too).
* ``check_live_api(payload, ...)``: the ``{"data": {"result": n, ...}}`` envelope of every
  ``/live_api/...`` endpoint: 1 OK; 2 请求过快 and 400002 需要进行验证 -> ``BlockedError``;
  22 (bad room URL) and 21 (userinfo: no such user / banned) -> ``GoneError``; 671/677 (not
  live) are returned to the caller, which knows what "offline" means for its kind (src: biliup
  crates/biliup/src/downloader/live/kuaishou.rs ``get_room_info``; OrdinaryRoad-Project
  ordinaryroad-live-chat-client KuaishouApis.java ``responseInterceptor``).
* ``check_result(payload, ...)``: the app API's and the shop open platform's top-level
  ``result`` (1 = OK, anything else an error naming ``result``/``error_msg``).
* ``check_error_type(obj, ...)``: the page state's ``errorType{type,title,content}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from models.errors import BlockedError, GoneError, PermanentPageError, RetryablePageError

__all__ = [
    "BLOCK_RESULTS",
    "NOT_LIVE_RESULTS",
    "PLATFORM",
    "check_error_type",
    "check_live_api",
    "check_result",
    "initial_state",
]

PLATFORM = "kuaishou"
#: data.result codes that mean "refused": 2 请求过快, 400002 需要进行验证 (slider captcha).
BLOCK_RESULTS = frozenset({2, 400002})
#: data.result codes of a room that is not broadcasting (671 未开播或非直播; 677 treated alike).
NOT_LIVE_RESULTS = frozenset({671, 677})
#: 22 直播间地址错误 (no such room); 21 用户不存在/封禁 on userinfo/byid.
GONE_RESULTS = frozenset({21, 22})

_MARKERS = ("window.__INITIAL_STATE__=", "__INITIAL_STATE__=")
_UNDEFINED = "undefined"
# Captcha/verification pages that carry no state at all.
_PAGE_BLOCK_RE = re.compile(r"captcha|验证码|安全验证|滑动验证|访问频繁|请求过快", re.I)


def _cut_object(text: str, start: int) -> str | None:
    """The balanced ``{...}`` literal starting at or after ``start``, ``undefined`` -> ``null``.

    Strings (double- or single-quoted) are skipped with their escapes, so braces and the word
    ``undefined`` inside them are left alone.
    """
    i = text.find("{", start)
    if i < 0 or text[start:i].strip():
        return None
    out: list[str] = []
    depth = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
            continue
        if ch == "u" and text.startswith(_UNDEFINED, i) and not (text[i - 1].isalnum() or text[i - 1] == "_"):
            end = i + len(_UNDEFINED)
            if end >= n or not (text[end].isalnum() or text[end] == "_"):
                out.append("null")
                i = end
                continue
        out.append(ch)
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return "".join(out)
        i += 1
    return None


def initial_state(body: bytes | str | None, *, url: str | None) -> dict[str, Any]:
    """The page's ``__INITIAL_STATE__`` as a dict; raises a page error when there is none.

    * empty body -> ``RetryablePageError``;
    * no state but a captcha/verification marker -> ``BlockedError``;
    * no state and ``错误代码22`` -> ``GoneError`` (biliup's offline/error page markers);
    * a state that is cut short or not JSON after the ``undefined`` fix -> ``PermanentPageError``.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if exc.end < len(body):  # bad bytes inside; a char cut at the very end is a truncation
                raise PermanentPageError(f"page is not UTF-8 at byte {exc.start}", platform=PLATFORM, url=url) from None
            text = body[: exc.start].decode("utf-8-sig")
    else:
        text = body or ""
    if not text.strip():
        raise RetryablePageError("empty body where the room page was expected", platform=PLATFORM, url=url)
    for marker in _MARKERS:
        at = text.find(marker)
        if at >= 0:
            break
    else:
        if "错误代码22" in text:
            raise GoneError("room page says 错误代码22 (no such room)", platform=PLATFORM, url=url)
        if _PAGE_BLOCK_RE.search(text[:8192]):
            raise BlockedError("verification page instead of the room page", platform=PLATFORM, url=url)
        raise PermanentPageError("no window.__INITIAL_STATE__ in the page", platform=PLATFORM, url=url)
    literal = _cut_object(text, at + len(marker))
    if literal is None:
        raise PermanentPageError("window.__INITIAL_STATE__ is cut short", platform=PLATFORM, url=url)
    try:
        state = json.loads(literal)
    except RecursionError:
        raise PermanentPageError("window.__INITIAL_STATE__ is nested too deep", platform=PLATFORM, url=url) from None
    except json.JSONDecodeError as exc:
        raise PermanentPageError(
            f"window.__INITIAL_STATE__ is not JSON: {exc.msg} at char {exc.pos}", platform=PLATFORM, url=url
        ) from None
    if not isinstance(state, dict):
        raise PermanentPageError("window.__INITIAL_STATE__ is not an object", platform=PLATFORM, url=url)
    return state


def _code(value: Any, where: str, url: str | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PermanentPageError(f"{where} is not a number: {value!r}", platform=PLATFORM, url=url)
    try:
        return int(value)
    except ValueError:
        raise PermanentPageError(f"{where} is not a number: {value!r}", platform=PLATFORM, url=url) from None


def check_live_api(payload: Any, *, url: str | None) -> tuple[int, dict[str, Any]]:
    """``(result, data)`` of a ``/live_api`` answer whose result is 1 or a not-live code.

    Raises ``BlockedError`` (2, 400002), ``GoneError`` (21, 22) and ``PermanentPageError`` for
    any other code, a missing ``data`` or a missing ``data.result``.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise PermanentPageError('expected {"data": {...}} (data missing)', platform=PLATFORM, url=url)
    if "result" not in data:
        raise PermanentPageError("data.result missing", platform=PLATFORM, url=url)
    result = _code(data["result"], "data.result", url)
    message = str(data.get("error_msg") or data.get("msg") or "")
    reason = f"Kuaishou data.result {result}" + (f": {message}" if message else "")
    if result in BLOCK_RESULTS:
        raise BlockedError(reason, platform=PLATFORM, url=url, code=result)
    if result in GONE_RESULTS:
        raise GoneError(reason, platform=PLATFORM, url=url)
    if result != 1 and result not in NOT_LIVE_RESULTS:
        raise PermanentPageError(reason, platform=PLATFORM, url=url)
    return result, data


def check_result(payload: Any, *, url: str | None) -> dict[str, Any]:
    """The payload itself when its top-level ``result`` is 1 (app API, shop open platform)."""
    if not isinstance(payload, dict):
        raise PermanentPageError(f"expected a JSON object, got {type(payload).__name__}", platform=PLATFORM, url=url)
    if "result" not in payload:
        raise PermanentPageError("result missing", platform=PLATFORM, url=url)
    result = _code(payload["result"], "result", url)
    if result != 1:
        message = str(payload.get("error_msg") or payload.get("msg") or payload.get("sub_msg") or "")
        reason = f"Kuaishou result {result}" + (f": {message}" if message else "")
        if result in BLOCK_RESULTS:
            raise BlockedError(reason, platform=PLATFORM, url=url, code=result)
        raise PermanentPageError(reason, platform=PLATFORM, url=url)
    return payload


def check_error_type(obj: Any, where: str, *, url: str | None) -> str | None:
    """Classify a page state's ``errorType``; returns ``"offline"`` for 主播尚未开播, else ``None``.

    ``type`` 1 (the old page's OK) or no errorType: nothing to say. 22 -> ``GoneError``; 671/677
    or a 未开播 title -> ``"offline"``; any other type (2 请求过快, 31 risk control, 400002
    verification) -> ``BlockedError``: a refusal shown instead of the room.
    """
    if not isinstance(obj, dict):
        return None
    error = obj.get("errorType")
    if not isinstance(error, dict) or error.get("type") in (None, 0, 1, "0", "1"):
        return None
    kind = _code(error.get("type"), f"{where}.errorType.type", url)
    title = str(error.get("title") or "")
    reason = f"room page errorType {kind}" + (f": {title}" if title else "")
    if kind in GONE_RESULTS:
        raise GoneError(reason, platform=PLATFORM, url=url)
    if kind in NOT_LIVE_RESULTS or "未开播" in title:
        return "offline"
    raise BlockedError(reason, platform=PLATFORM, url=url, code=kind)
