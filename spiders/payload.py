"""Platform-neutral helpers for pure parsers: bytes -> JSON, field lookup, record building.

Every platform's ``pages.py`` goes through these, so the rules for what counts as
a retryable page, a permanent one and a validation failure are the same everywhere:

* ``load_json``: decode and check the input before anything is extracted from it.
* ``dig``: look a field up by meaning, trying the paths each variant of an API uses.
* ``build``: construct a record; a validation failure becomes a ``PermanentPageError``
  whose reason names the field path.
* ``as_id``: platform IDs as strings, with ``0``/``""`` meaning "none".
* ``sales_fields``: one parsed sales count as a product's fields: cumulative ``sales`` with
  its text and lower-bound flag, or a rolling 月销 count in ``sales_30d``.
* ``Page``: the explicit inputs of one parse (platform, url, fetched_at) with the
  field converters a parser needs, each turning a bad value into a
  ``PermanentPageError`` that names the field's path in the payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ValidationError

from models.errors import BlockedError, PermanentPageError, RetryablePageError
from models.normalize import from_unix, parse_beijing_time, parse_count

__all__ = [
    "ROLLING_SALES_RE", "SALES_FIELDS", "Page", "as_id", "build", "dig", "first_text", "html_title", "load_json",
    "sales_fields",
]

M = TypeVar("M", bound=BaseModel)

# "cb({...});", "/**/ jQuery123_456({...})", "window.cb && cb([...])" is not supported on purpose.
_JSONP_RE = re.compile(r"^\s*(?:/\*\*/\s*)?[A-Za-z_$][\w$.]*\s*\((?P<json>.*)\)\s*;?\s*$", re.DOTALL)
_HTML_RE = re.compile(r"^\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml|<!--|<[a-z][a-z0-9]*[\s>/])", re.I)
# Markers looked for in the <title> and the first _HTML_SNIFF_CHARS of an HTML page; numbers
# and short English words only as whole words, so a hash or "asterisk" does not match.
_BLOCK_RE = re.compile(
    r"captcha|验证码|安全验证|人机验证|滑动验证|访问验证|风控|拦截|访问频繁|请求过于频繁|拒绝访问"
    r"|too many requests|access denied|precondition failed|\b(?:risk|forbidden|blocked|403|412|429)\b",
    re.I,
)
_TRANSIENT_RE = re.compile(
    r"bad gateway|service (?:temporarily )?unavailable|gateway time-?out|internal server error"
    r"|服务器错误|服务器繁忙|系统繁忙|稍后再试|网络错误|维护中|\b(?:maintenance|500|502|503|504)\b",
    re.I,
)
_HTML_SNIFF_CHARS = 4096
# Literal patterns: one search is one linear scan (no backtracking).
_TITLE_OPEN_RE = re.compile(r"<title", re.I)
_TITLE_CLOSE_RE = re.compile(r"</title", re.I)
#: Longest <title> text kept: a block page's title is a line, not a page.
_TITLE_CHARS = 512


#: Words that make a shown sales count a rolling one (units sold in the last 30 days: it can go
#: down), not a cumulative one: 月销 / 月销量 / 月售 (Taobao), 30天销量, 近30天已售. Only such words
#: say so; 已售, 总销量, 销量 and a bare number are cumulative.
ROLLING_SALES_RE = re.compile(r"^\s*(?:月销|月售|近?\s*30\s*天)")


def sales_fields(value: int, text: str | None, is_lower_bound: bool) -> dict[str, Any]:
    """A product's (or its snapshot's) fields for one parsed sales count (SCHEMA.md, ``products``).

    Cumulative: ``sales`` and ``sales_is_lower_bound`` (False for an exact count: an int or a
    plain number; True for a floor such as ``6.6万+``), plus ``sales_text`` when the count was
    text. A text that says the count is rolling (:data:`ROLLING_SALES_RE`, ``月销1000+``):
    ``sales_30d`` and ``sales_30d_text`` instead, never ``sales``.
    """
    if text is not None and ROLLING_SALES_RE.match(text):
        return {"sales_30d": value, "sales_30d_text": text}
    fields: dict[str, Any] = {"sales": value, "sales_is_lower_bound": is_lower_bound}
    if text is not None:
        fields["sales_text"] = text
    return fields


#: The sales fields of a product that its snapshot carries too.
SALES_FIELDS = ("sales", "sales_text", "sales_is_lower_bound", "sales_30d", "sales_30d_text")


def html_title(text: str) -> str:
    """The first ``<title>``'s text, whitespace collapsed, at most 512 chars ("" if none).

    Two literal searches and a ``str.find`` instead of the regex ``<title[^>]*>(.*?)</title>``: that regex
    restarts its lazy scan to the end of the text at every unclosed ``<title``, so a
    280 KB page of repeated ``<title>`` took 50 s on the reactor thread. This is linear
    and finds the same title: if the first ``<title`` has no ``>`` or no ``</title``
    after it, no later one has either.
    """
    opening = _TITLE_OPEN_RE.search(text)
    end_tag = text.find(">", opening.end()) if opening else -1
    closing = _TITLE_CLOSE_RE.search(text, end_tag) if end_tag >= 0 else None
    if closing is None:
        return ""
    return " ".join(text[end_tag + 1 : min(closing.start(), end_tag + 1 + _TITLE_CHARS)].split())


def _html_error(text: str, *, platform: str | None, url: str | None) -> Exception:
    """Classify an HTML page served where JSON was expected.

    The rule: only the page's ``<title>`` and its first 4 KiB are read, because a
    real web page mentions "verify" or "403" somewhere in its scripts while a block
    or error page says so up front.

    * a block/captcha/risk-control marker there -> ``BlockedError`` (retry after a cool-down);
    * a transient server-error marker (502, 503, "稍后再试") -> ``RetryablePageError``;
    * any other HTML (a login page, the site's normal HTML, a redirect target) ->
      ``PermanentPageError``: fetching the same URL again gives the same page.
    """
    title = html_title(text)
    head = title + " " + text[:_HTML_SNIFF_CHARS]
    shown = f" (title {title!r})" if title else ""
    if _BLOCK_RE.search(head):
        return BlockedError(f"HTML block/captcha page instead of JSON{shown}", platform=platform, url=url)
    if _TRANSIENT_RE.search(head):
        return RetryablePageError(f"HTML error page instead of JSON{shown}", platform=platform, url=url)
    return PermanentPageError(f"HTML page instead of JSON{shown}", platform=platform, url=url)


def load_json(body: bytes | str | None, *, platform: str | None, url: str | None) -> Any:
    """Decode a JSON (or JSONP) response body, checking it is data before returning it.

    * empty or whitespace-only body -> ``RetryablePageError`` (the server sent nothing);
    * HTML where JSON was expected -> see ``_html_error`` for the retryable/permanent rule;
    * bytes that are not UTF-8, or malformed JSON -> ``PermanentPageError`` whose reason
      carries the position of the error.

    A UTF-8 BOM is tolerated and a JSONP wrapper ``cb({...});`` is unwrapped.
    """
    if body is None:
        body = b""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PermanentPageError(
                f"body is not UTF-8: {exc.reason} at byte {exc.start}", platform=platform, url=url
            ) from None
    else:
        text = body.removeprefix("\ufeff")
    if not text.strip():  # checked after decoding: a lone BOM is empty too
        raise RetryablePageError("empty body where JSON was expected", platform=platform, url=url)
    if _HTML_RE.match(text):
        raise _html_error(text, platform=platform, url=url)
    stripped = text.strip()
    if stripped[:1] not in ("{", "[") and (match := _JSONP_RE.match(stripped)):
        stripped = match["json"]
    try:
        return json.loads(stripped)
    except RecursionError:  # "[[[[..." 100,000 deep: data no platform sends
        raise PermanentPageError("malformed JSON: nested too deep", platform=platform, url=url) from None
    except json.JSONDecodeError as exc:
        raise PermanentPageError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            platform=platform,
            url=url,
        ) from None


_MISSING = object()


def _step(obj: Any, key: str | int) -> Any:
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        # JSON object keys are strings: "data.by_uids.672328094" and ("by_uids", 672328094) both work.
        return obj.get(str(key), _MISSING)
    if isinstance(obj, list | tuple) and not isinstance(key, bool):
        try:
            return obj[int(key)]
        except (ValueError, IndexError):
            return _MISSING
    return _MISSING


def dig(obj: Any, *paths: str | Sequence[str | int], default: Any = None) -> Any:
    """Return the value at the first of ``paths`` that leads to a non-``None`` value.

    A path is a dotted string (``"data.room_info.title"``, ``"data.list.0.roomid"``:
    a number indexes a list) or a sequence of keys when a key itself contains a dot.
    A path "exists" when every step exists and the value is not ``None``: APIs send
    ``null`` for what they lack, and the next path is then the better answer.
    Missing keys, wrong types along the way and out-of-range indexes never raise.
    """
    for path in paths:
        keys = path.split(".") if isinstance(path, str) else path
        value = obj
        for key in keys:
            value = _step(value, key)
            if value is _MISSING or value is None:
                break
        if value is not _MISSING and value is not None:
            return value
    return default


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(record)"


def build(model_cls: type[M], *, platform: str, url: str | None, **fields: Any) -> M:
    """Construct ``model_cls(platform=platform, **fields)`` as a parser's output.

    ``None`` fields are dropped, so a required field the payload lacked reads
    "Field required" rather than a type error, and the model's defaults apply.
    ``source_url`` is filled from ``url`` when the model has that field.
    A ``ValidationError`` becomes a ``PermanentPageError`` whose reason names the
    error class, the field path and the message, e.g.
    ``"ValidationError: room_id: Field required (Room)"``.
    """
    values = {name: value for name, value in fields.items() if value is not None}
    if "source_url" in model_cls.model_fields and url is not None:
        values.setdefault("source_url", url)
    try:
        return model_cls(platform=platform, **values)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        more = f"; and {len(errors) - 1} more" if len(errors) > 1 else ""
        reason = f"ValidationError: {_loc(first['loc'])}: {first['msg']} ({model_cls.__name__}{more})"
        raise PermanentPageError(reason, platform=platform, url=url) from None


def as_id(value: Any) -> str | None:
    """A platform ID as a string; ``0``, ``""``, ``"0"``, negatives and ``None`` mean "none".

    Ints and integral floats become their decimal string (no exponent, no ``.0``);
    strings are stripped. Bools and other types raise ``ValueError``: an ID field
    holding one means the payload is not what the parser thinks it is.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"an ID cannot be a bool: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"an ID cannot be a fraction: {value!r}")
        value = int(value)
    if isinstance(value, int):
        # Platforms send 0 or -1 for "no such thing" (Bilibili short_id 0 = no short ID).
        return str(value) if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        return None if text in ("", "0") or text.startswith("-") else text
    raise ValueError(f"an ID must be a number or text, not {type(value).__name__}: {value!r}")


def first_text(obj: Any, *paths: str | Sequence[str | int]) -> str | None:
    """The first non-blank string at ``paths`` (platforms send ``""`` for "none")."""
    for path in paths:
        value = dig(obj, path)
        if isinstance(value, str) and value.strip():
            return value
    return None


@dataclass(frozen=True)
class Page:
    """The explicit inputs of one parse, and field converters that fail with the field's path.

    Each converter raises ``PermanentPageError("ValueError: <where>: <why>")`` on a
    value it cannot read, ``where`` being the path in the payload (``data.online``),
    so a quarantined payload says which field broke it.
    """

    platform: str
    url: str | None
    fetched_at: datetime

    def build(self, model_cls: type[M], **fields: Any) -> M:
        """``build(model_cls, ...)`` with this page's platform and url."""
        return build(model_cls, platform=self.platform, url=self.url, **fields)

    def fail(self, reason: str) -> PermanentPageError:
        """A permanent error about this page (to ``raise``)."""
        return PermanentPageError(reason, platform=self.platform, url=self.url)

    def query(self, *names: str) -> str | None:
        """The first of the request URL's query parameters ``names`` that is present."""
        params = parse_qs(urlsplit(self.url or "").query)
        return next((params[name][0] for name in names if params.get(name)), None)

    def id(self, value: Any, where: str) -> str | None:
        """``as_id(value)``."""
        try:
            return as_id(value)
        except ValueError as exc:
            raise self.fail(f"ValueError: {where}: {exc}") from None

    def count(self, value: Any, where: str, name: str, *, text: bool = True) -> dict[str, Any]:
        """``{name: n}`` for a record, plus ``<name>_text`` and ``<name>_is_lower_bound``
        when the count was text and the record has those fields (``text=True``)."""
        try:
            parsed = parse_count(value)
        except ValueError as exc:
            raise self.fail(f"ValueError: {where}: {exc}") from None
        if parsed is None:
            return {}
        if parsed.text is None or not text:
            return {name: parsed.value}
        lower_bound = parsed.is_lower_bound
        return {name: parsed.value, f"{name}_text": parsed.text, f"{name}_is_lower_bound": lower_bound}

    def time(self, value: Any, where: str) -> datetime | None:
        """A time sent as Beijing wall-clock text or as Unix seconds/milliseconds, in UTC."""
        try:
            if isinstance(value, str) and not value.strip().isdigit():
                return parse_beijing_time(value)
            return from_unix(value)
        except ValueError as exc:
            raise self.fail(f"ValueError: {where}: {exc}") from None
