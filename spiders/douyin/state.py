"""The room state a live.douyin.com page carries, dug out of its HTML.

Two formats (PLATFORMS.md §1.3):

* **Current** (React Server Components, "Flight"): inline scripts
  ``self.__pace_f.push([1, "<rows>"])``. Each argument is a JSON array whose
  second item is a string; concatenated in order, the strings form one Flight
  stream of rows ``<hex id>:<json>\\n``, or ``<hex id>:T<hex byte length>,<text>``
  for long text (no newline). A row may be split over two pushes (the real page
  splits one mid-number), so rows are read from the concatenation; when that
  stream cannot be framed (a page fragment that starts mid-row), each push is
  read on its own. The row holding the room is an array whose element is a dict
  ``{"state": {"roomStore": {"roomInfo": {"room", "roomId", "web_rid", "anchor"}}, ...}}``.
* **Legacy** (≤ 2023): ``<script id="RENDER_DATA" type="application/json">`` with
  percent-encoded JSON; the state is ``app.initialState``.

Nothing here depends on the page's ``<head>`` formatting or on script attributes:
pages saved by a browser (``page.content()`` after the page's own script appended
the chunks) and pages reformatted by an editor read the same. The state is found
by meaning: a dict whose ``roomStore`` is a dict, wherever it sits; when several
do, the one with a room wins, then the last (the page's final word).

The page also carries the enter API's verdict in a dict with ``enterRoomApi``
(``errorPrompts``, ``status_code``): ``status()`` returns it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from spiders.payload import html_title

__all__ = ["PageData", "extract", "find_state", "find_status", "is_captcha", "looks_like_page"]

_DECODER = json.JSONDecoder()
_PUSH_RE = re.compile(r"self\.__pace_f\.push\(")
# The legacy state's <script> is found tag by tag (_render_scripts), never by one regex over
# the page: "<script\b[^>]*...(?P<data>.*?)</script>" rescans to the end at every unclosed tag.
_SCRIPT_OPEN_RE = re.compile(r"<script\b", re.I)
_SCRIPT_CLOSE_RE = re.compile(r"</script\s*>", re.I)
_RENDER_DATA_ID_RE = re.compile(r"\bid\s*=\s*[\"']?RENDER_DATA\b", re.I)
_ROW_ID_RE = re.compile(rb"[0-9a-fA-F]+:")
_TAG_RE = re.compile(r"^[A-Z]+(?=[\[{\"])")
# The slider page (PLATFORMS.md §1.4). The bare word "captcha" is no marker: real room pages
# list "/captcha/*" among the paths their security SDK signs.
_CAPTCHA_RE = re.compile(r"验证码中间页|captcha_container|captcha-verify-image|secsdk_captcha_refresh")
_HTML_START_RE = re.compile(r"^\s*(?:<!doctype|<html|<head|<body|<script|<div|<meta|<title)", re.I)
# Rows worth decoding: the state and the enter verdict. Other rows (module imports, stream
# URLs, the category tree) are skipped without being parsed.
_WANTED = ("roomStore", "enterRoomApi", "errorPrompts")
_MAX_NODES = 500_000


@dataclass(frozen=True)
class PageData:
    """What a room page says: its state (``None`` when absent) and the enter API verdict."""

    state: dict[str, Any] | None
    status: dict[str, Any] | None


def looks_like_page(text: str) -> bool:
    """Whether ``text`` is (a piece of) an HTML page rather than an API's JSON."""
    return bool(_PUSH_RE.search(text) or _HTML_START_RE.match(text) or next(_render_scripts(text), None))


def page_title(text: str) -> str:
    """The page's ``<title>``, whitespace collapsed ("" if none); linear (``payload.html_title``)."""
    return html_title(text)


def _render_scripts(text: str) -> Iterator[str]:
    """The content of each ``<script id="RENDER_DATA">``, in one pass over ``text``.

    Each ``<script`` tag's attributes run to its ``>``; the next search starts after the
    tag (or after its ``</script>``), so no character is scanned twice over: linear even
    on a page of a million unclosed ``<script`` tags.
    """
    pos = 0
    while (opening := _SCRIPT_OPEN_RE.search(text, pos)) is not None:
        end_tag = text.find(">", opening.end())
        if end_tag < 0:
            return
        closing = _SCRIPT_CLOSE_RE.search(text, end_tag + 1)
        if closing is None:
            return
        if _RENDER_DATA_ID_RE.search(text, opening.end(), end_tag):
            yield text[end_tag + 1 : closing.start()]
        pos = closing.end()


def is_captcha(text: str) -> bool:
    """Whether the page is Douyin's slider/captcha page (served with HTTP 200)."""
    return "验证码中间页" in page_title(text) or bool(_CAPTCHA_RE.search(text))


def _push_strings(text: str) -> list[str]:
    """The string of every ``self.__pace_f.push([1, "..."])``, in page order.

    Each push is decoded from its own stretch of the page (up to the next push), so a
    page of a million broken pushes costs one pass: decoding from the whole page made
    each failure scan to the page's end (and count its lines for the error message).
    """
    strings = []
    starts = [match.end() for match in _PUSH_RE.finditer(text)]
    for index, after in enumerate(starts):
        start = text.find("[", after, after + 64)
        if start < 0:
            continue
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        try:
            value, _ = _DECODER.raw_decode(text[start:end])
        except (ValueError, RecursionError):
            continue
        if isinstance(value, list) and len(value) >= 2 and value[0] == 1 and isinstance(value[1], str):
            strings.append(value[1])
    return strings


def _rows(stream: str) -> Iterator[str]:
    """The payload of each Flight row of ``stream`` that may hold what we want, until framing is lost."""
    data = stream.encode("utf-8")
    pos = 0
    while pos < len(data):
        match = _ROW_ID_RE.match(data, pos)
        if match is None:
            return
        pos = match.end()
        if data[pos : pos + 1] == b"T":
            comma = data.find(b",", pos)
            try:
                length = int(data[pos + 1 : comma], 16) if comma > 0 else -1
            except ValueError:
                return
            if length < 0:
                return
            # The length counts UTF-8 bytes, hence the work on bytes rather than str.
            payload, pos = data[comma + 1 : comma + 1 + length], comma + 1 + length
        else:
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            payload, pos = data[pos:end], end + 1
        text = payload.decode("utf-8", "replace")
        if any(word in text for word in _WANTED):
            yield text


def _decode_row(text: str) -> Any:
    try:
        return json.loads(_TAG_RE.sub("", text, count=1))
    except (ValueError, RecursionError):
        return None


def _walk(obj: Any) -> Iterator[dict[str, Any]]:
    """Every dict in ``obj``, depth first, bounded (a page is not trusted to be small)."""
    stack, seen = [obj], 0
    while stack and seen < _MAX_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            yield node
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _score(state: dict[str, Any]) -> int:
    room_info = state["roomStore"].get("roomInfo")
    if not isinstance(room_info, dict):
        return 0
    return 2 if isinstance(room_info.get("room"), dict) else 1


def find_state(obj: Any) -> dict[str, Any] | None:
    """The dict holding ``roomStore`` in ``obj`` (rule in the module docstring), or ``None``."""
    best: dict[str, Any] | None = None
    for node in _walk(obj):
        if isinstance(node.get("roomStore"), dict) and (best is None or _score(node) >= _score(best)):
            best = node
    return best


def find_status(obj: Any) -> dict[str, Any] | None:
    """The enter API verdict the page carries (``{"errorPrompts", "status_code", ...}``), or ``None``."""
    for node in _walk(obj):
        if "enterRoomApi" in node or ("errorPrompts" in node and "status_code" in node):
            return node
    return None


def _flight_values(text: str) -> list[Any]:
    strings = _push_strings(text)
    values = [value for row in _rows("".join(strings)) if (value := _decode_row(row)) is not None]
    if find_state(values) is None:
        # Framing lost (a fragment, a chunk the page never pushed): rows whole within one push.
        values += [value for s in strings for row in _rows(s) if (value := _decode_row(row)) is not None]
    return values


def _render_data(text: str) -> list[Any]:
    values = []
    for data in _render_scripts(text):
        try:
            values.append(json.loads(unquote(data.strip())))
        except (ValueError, RecursionError):
            continue
    return values


def extract(text: str) -> PageData:
    """The room state and enter verdict of a room page's HTML (either format)."""
    values = _flight_values(text) + _render_data(text)
    return PageData(state=find_state(values), status=find_status(values))
