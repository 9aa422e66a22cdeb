"""Normalizers for the count, money and time formats the platforms send.

Pure functions, no platform knowledge: parsers call them on a single field and
turn the ``ValueError`` they raise on garbage into a page error naming that field.

* ``parse_count``: ``1.2万`` -> 12000, ``10w+`` -> 100000 (a lower bound), ``1,024`` -> 1024.
* ``parse_money``: ``¥59.9`` -> 59.9, ``"5980"`` in fen -> 59.8, ranges -> their low end.
* ``parse_beijing_time`` / ``from_unix``: platform times -> timezone-aware UTC datetimes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal, NamedTuple

__all__ = ["BEIJING", "CountValue", "from_unix", "parse_beijing_time", "parse_count", "parse_money"]

#: China Standard Time: every platform we crawl shows times in UTC+8 without saying so.
BEIJING = timezone(timedelta(hours=8), "UTC+08:00")


class CountValue(NamedTuple):
    """A normalized count.

    ``text`` is the original text when it needed interpretation (``"1.2万"``), else
    ``None``; ``is_lower_bound`` is true when the platform only showed a floor
    (``"10w+"``, ``">10000"``).
    """

    value: int
    text: str | None
    is_lower_bound: bool


# Multipliers of the unit suffixes platforms append to counts.
_UNITS: dict[str, int] = {
    "k": 1_000,
    "千": 1_000,
    "w": 10_000,
    "万": 10_000,
    "亿": 100_000_000,
    "万亿": 1_000_000_000_000,
}
_EMPTY = frozenset({"", "-", "--", "—", "/", "null", "none", "n/a"})
_COUNT_RE = re.compile(
    r"""
    (?P<floor>[>≥])?\s*
    (?P<num>\d+(?:\.\d+)?)\s*
    (?P<unit>万亿|[kK千wW万亿])?\s*
    (?P<plus>\+)?\s*
    # Trailing words only, CJK ones (人看过, 在线, 次观看) that are not units: "12abc" and
    # "1.2万万" stay garbage.
    (?P<words>(?:(?![万亿千])[\u3400-\u9fff\s])*)
    """,
    re.VERBOSE,
)
# Thousands separators inside a number: "1,024", "1 024", "1'024", thin spaces.
_SEPARATOR_RE = re.compile(r"(?<=\d)[,\s'\u2009\u202f](?=\d{3}(?!\d))")


#: Longest count, price or time text read. Real ones are a few characters ("10万+人看过",
#: "¥59.9-99"); the regexes above backtrack over runs of spaces, so a megabyte of them
#: took minutes. Longer text is refused at once, its error showing only its start.
MAX_TEXT_CHARS = 100


def _check_length(value: str, what: str) -> None:
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"not a {what}: {len(value)} characters (at most {MAX_TEXT_CHARS}): {value[:20]!r}...")


def _normalize_text(text: str) -> str:
    # NFKC folds full-width digits, "＋", "，" and "￥" into their ASCII forms.
    return unicodedata.normalize("NFKC", text).strip()


def parse_count(value: object) -> CountValue | None:
    """Normalize a count as a platform sends it.

    Accepts non-negative ints (not bools), integral floats, numeric strings and
    display text: ``1.2万``, ``10w+``, ``3.5亿``, ``1,024``, ``1 024``, ``2.3k``,
    ``999+``, ``10万+人看过``, full-width digits. ``None``, ``""`` and ``"-"`` give
    ``None``. Anything else raises ``ValueError`` saying what was wrong.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"count must be a number or text, not a bool: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"count must not be negative: {value!r}")
        return CountValue(value, None, False)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"count must be a whole number: {value!r}")
        return parse_count(int(value))
    if not isinstance(value, str):
        raise ValueError(f"count must be a number or text, not {type(value).__name__}: {value!r}")

    _check_length(value, "count")
    original = value.strip()
    text = _SEPARATOR_RE.sub("", _normalize_text(value))
    if text.lower() in _EMPTY:
        return None
    match = _COUNT_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a count: {value!r}")
    number = Decimal(match["num"])
    unit = match["unit"]
    if unit:
        number *= _UNITS[unit.lower()]
    elif number != number.to_integral_value():
        # "12.5" without a unit cannot be a count of people or items.
        raise ValueError(f"count must be a whole number: {value!r}")
    count = int(number.to_integral_value(rounding=ROUND_HALF_UP))
    lower_bound = bool(match["plus"] or match["floor"])
    # A plain numeric string needed no interpretation: keep no text, as for an int.
    needed_interpretation = original != match["num"]
    return CountValue(count, original if needed_interpretation else None, lower_bound)


_MONEY_NOISE_RE = re.compile(r"^(?:¥|RMB|CNY|人民币)\s*|\s*(?:元|RMB|CNY|起)$", re.IGNORECASE)
_RANGE_RE = re.compile(r"^(?P<low>[^-~至]+?)\s*(?:-|~|至)\s*(?P<high>.+)$")
_CENT = Decimal("0.01")


def parse_money(value: object, *, unit: Literal["yuan", "fen"] = "yuan") -> float | None:
    """Normalize a price to yuan, rounded to 2 decimals.

    ``unit`` says what a bare number means: ``"yuan"`` (default) or ``"fen"``
    (1/100 yuan: ``34900`` -> ``349.0``, ``"5980"`` -> ``59.8``). Text may carry
    ``¥``/``￥``/``元`` and thousands separators. A range (``¥59.9-99``,
    ``59.9~99``) gives its **low end**: that is the price a buyer can actually pay
    for the cheapest variant, and the one platforms sort by. ``None``, ``""`` and
    ``"-"`` give ``None``; negative or unreadable values raise ``ValueError``.
    """
    if unit not in ("yuan", "fen"):
        raise ValueError(f"unit must be 'yuan' or 'fen', not {unit!r}")
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"price must be a number or text, not a bool: {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"not a price: {value!r}")
        amount = Decimal(str(value))
    elif isinstance(value, str):
        _check_length(value, "price")
        text = _normalize_text(value)
        if text.lower() in _EMPTY:
            return None
        # Strip currency marks until none is left: "¥59.9元起" has a prefix and two suffixes.
        while (stripped := _MONEY_NOISE_RE.sub("", text)) != text:
            text = stripped
        text = text.replace(",", "")
        if (match := _RANGE_RE.match(text)) is not None:
            text = match["low"]
        try:
            amount = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"not a price: {value!r}") from None
        if not amount.is_finite():
            raise ValueError(f"not a price: {value!r}")
    else:
        raise ValueError(f"price must be a number or text, not {type(value).__name__}: {value!r}")
    if amount < 0:
        raise ValueError(f"price must not be negative: {value!r}")
    if unit == "fen":
        amount /= 100
    return float(amount.quantize(_CENT, rounding=ROUND_HALF_UP))


# "0000-00-00 00:00:00" is how Bilibili (and MySQL-backed APIs in general) say "never".
_ZERO_TIME_RE = re.compile(r"^0{4}-0{2}-0{2}(?:[ T]0{2}:0{2}(?::0{2})?)?$")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def parse_beijing_time(text: str | None) -> datetime | None:
    """Parse a wall-clock time shown in Beijing time (UTC+8) into an aware UTC datetime.

    ``"2021-03-01 19:20:00"`` -> ``2021-03-01 11:20:00+00:00``. A string that
    carries its own offset (ISO 8601) keeps it. ``None``, ``""`` and
    ``"0000-00-00 00:00:00"`` give ``None``; anything else unreadable raises
    ``ValueError``.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"time must be text, not {type(text).__name__}: {text!r}")
    _check_length(text, "time")
    stripped = text.strip()
    if not stripped or _ZERO_TIME_RE.match(stripped):
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(stripped, fmt).replace(tzinfo=BEIJING).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"not a time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=BEIJING)
    return parsed.astimezone(UTC)


# Unix seconds reach 1e11 only in the year 5138, while Unix milliseconds passed 1e11
# in 1973: anything at or above it is milliseconds.
_MS_THRESHOLD = 100_000_000_000


def from_unix(value: int | float | str | None) -> datetime | None:
    """Convert Unix seconds or milliseconds (detected by magnitude) to an aware UTC datetime.

    ``0``, ``None`` and ``""`` give ``None``, and so do negative values: platforms use
    them as "not started" (Bilibili ``room_init.live_time`` is ``-62170012800``
    before a first broadcast), never as a real date before 1970.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be a number, not a bool: {value!r}")
    if isinstance(value, str):
        _check_length(value, "timestamp")
        stripped = value.strip()
        if not stripped:
            return None
        try:
            value = float(stripped) if "." in stripped else int(stripped)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a timestamp: {value!r}")
    if value <= 0:
        return None
    seconds = value / 1000 if value >= _MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp out of range: {value!r}") from None
