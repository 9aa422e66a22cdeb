"""Watch tiers and time windows: how often a live target is sampled, and when it is watched at all.

* A tier names the seconds between samples while live (:data:`TIERS`): ``hot`` 30 s, ``normal`` 60 s,
  ``tail`` 5 min.
* Windows (:func:`parse_windows`): ``19:00-24:00`` (several comma-separated; one crossing midnight,
  ``22:00-02:00``, is allowed) in a time zone, ``Asia/Shanghai`` unless written ``@Zone`` or given;
  several zones joined with ``;``. No windows means always.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_TIER", "DEFAULT_TZ", "TIERS", "Windows", "parse_tier", "parse_windows"]

# -- tiers -----------------------------------------------------------------------------------------------------

#: Seconds between samples of a live target, per tier (fastest first).
TIERS: dict[str, float] = {"hot": 30.0, "normal": 60.0, "tail": 300.0}
DEFAULT_TIER = "normal"


def parse_tier(text: str) -> str:
    """The tier named by ``text`` (``hot``, ``normal`` or ``tail``, any case); ValueError otherwise."""
    tier = str(text).strip().lower()
    if tier not in TIERS:
        known = ", ".join(f"{name} (every {seconds:g}s)" for name, seconds in TIERS.items())
        raise ValueError(f"unknown tier {str(text)[:40]!r}: one of {known}")
    return tier


def _fastest(tiers: Iterable[str]) -> str:
    return min(tiers, key=lambda tier: TIERS[tier])


# -- windows ---------------------------------------------------------------------------------------------------

#: The time zone of windows written without one.
DEFAULT_TZ = "Asia/Shanghai"
_DAY_MIN = 24 * 60
_SPAN = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_WINDOW_HELP = ("write HH:MM-HH:MM, e.g. 19:00-24:00 or 22:00-02:00 (crossing midnight), several separated by "
                "commas, optionally @ZONE (an IANA name, default Asia/Shanghai)")
#: Spans of one zone: half-open minute intervals ``[start, end)`` within one day (0..1440), sorted, disjoint.
_Intervals = tuple[tuple[int, int], ...]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name[:60]!r} (an IANA name such as Asia/Shanghai or UTC)") from None


def _merge(intervals: Iterable[tuple[int, int]]) -> _Intervals:
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Windows:
    """When a target is watched: spans of wall-clock time, each zone's spans apart; none = always.

    ``zones`` holds ``(zone name, intervals)`` sorted by zone name, each interval a half-open
    ``[start, end)`` in minutes of the local day (a span crossing midnight is two intervals,
    one ending at 1440 and one starting at 0). Build one with :func:`parse_windows`.
    """

    zones: tuple[tuple[str, _Intervals], ...] = ()

    @property
    def always(self) -> bool:
        return not self.zones

    @property
    def text(self) -> str | None:
        """The canonical text (``08:00-10:00,22:00-02:00@Asia/Shanghai``); None for always."""
        if self.always:
            return None
        groups = []
        for zone, intervals in self.zones:
            spans = list(intervals)
            if len(spans) > 1 and spans[0][0] == 0 and spans[-1][1] == _DAY_MIN:  # crossing midnight
                spans = [(spans[-1][0], spans[0][1]), *spans[1:-1]]
            spans.sort()
            groups.append(",".join(f"{_clock(s)}-{_clock(e)}" for s, e in spans) + f"@{zone}")
        return ";".join(groups)

    def __str__(self) -> str:
        return self.text or "always"

    def contains(self, at: datetime) -> bool:
        """Whether the (timezone-aware) instant ``at`` is inside a window; always True without windows."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("Windows.contains needs a timezone-aware datetime")
        if self.always:
            return True
        for zone, intervals in self.zones:
            local = at.astimezone(ZoneInfo(zone))
            minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
            if any(start <= minute < end for start, end in intervals):
                return True
        return False

    def next_change(self, at: datetime) -> datetime | None:
        """The first instant after ``at`` when :meth:`contains` changes (a window opens or closes), in
        ``at``'s time zone; None when it never changes (always, or windows covering the whole day)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("Windows.next_change needs a timezone-aware datetime")
        if self.always:
            return None
        candidates: set[datetime] = set()
        for zone_name, intervals in self.zones:
            zone = ZoneInfo(zone_name)
            today = at.astimezone(zone).date()
            for offset in range(-1, 3):
                day = today + timedelta(days=offset)
                for start, end in intervals:
                    for minute in (start, end):
                        candidates.add(_local(day, minute, zone))
        now = self.contains(at)
        at_utc = at.astimezone(UTC)  # aware datetimes of one tzinfo compare as wall clocks: compare in UTC
        for candidate in sorted(c for c in candidates if c > at_utc):
            if self.contains(candidate) != now:
                return candidate.astimezone(at.tzinfo)
        return None

    def union(self, other: Windows) -> Windows:
        """Watched when either is: always if either is always."""
        if self.always or other.always:
            return Windows()
        zones: dict[str, list[tuple[int, int]]] = {}
        for zone, intervals in (*self.zones, *other.zones):
            zones.setdefault(zone, []).extend(intervals)
        return _windows(zones)


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """``minute`` of local ``day`` in ``zone`` (1440 is the next midnight), in UTC."""
    day += timedelta(days=minute // _DAY_MIN)
    minute %= _DAY_MIN
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)


def _windows(zones: dict[str, list[tuple[int, int]]]) -> Windows:
    """Windows of merged intervals per zone; always when one zone's cover the whole day."""
    merged = {zone: _merge(intervals) for zone, intervals in zones.items() if intervals}
    if any(intervals == ((0, _DAY_MIN),) for intervals in merged.values()):
        return Windows()
    return Windows(tuple(sorted(merged.items())))


def parse_windows(text: str | None, tz: str | None = None) -> Windows:
    """The windows ``text`` names (see the module's docstring); ``tz`` is the zone of spans written
    without ``@ZONE`` (default :data:`DEFAULT_TZ`). ``None``, ``""`` and ``always`` mean always.

    Raises ValueError naming what is wrong: a bad span (``25:00-26:00``, ``19:00-19:00``, a start of
    ``24:00``), an unknown zone, or a zone written twice in one group."""
    return _parse_windows(None if text is None else str(text), tz)


@functools.lru_cache(maxsize=4096)
def _parse_windows(text: str | None, tz: str | None) -> Windows:
    default_zone = (tz or DEFAULT_TZ).strip()
    _zone(default_zone)
    raw = (text or "").strip()
    if raw.lower() in ("", "always"):
        return Windows()
    zones: dict[str, list[tuple[int, int]]] = {}
    for group in raw.split(";"):
        spans_text, at, zone_name = group.partition("@")
        zone_name = zone_name.strip() if at else default_zone
        if at and not zone_name:
            raise ValueError(f"no time zone after '@' in {group.strip()[:80]!r} ({_WINDOW_HELP})")
        if "," in zone_name:
            raise ValueError(f"@ZONE ends a group of spans: in {group.strip()[:80]!r} write the spans first "
                             "(19:00-20:00,21:00-22:00@UTC), or separate zones with ';'")
        _zone(zone_name)
        spans = [s.strip() for s in spans_text.split(",")]
        if not any(spans):
            raise ValueError(f"no time span in {group.strip()[:80]!r} ({_WINDOW_HELP})")
        for span in spans:
            zones.setdefault(zone_name, []).extend(_span(span))
    return _windows(zones)


def _span(span: str) -> list[tuple[int, int]]:
    """The intervals of one ``HH:MM-HH:MM`` span (two when it crosses midnight)."""
    match = _SPAN.fullmatch(span)
    if not match:
        raise ValueError(f"not a time window: {span[:60]!r} ({_WINDOW_HELP})")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"not a time of day in {span!r}: hours 00-23 (24:00 only as an end), minutes 00-59")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"empty window {span!r}: it starts when it ends (for the whole day write 00:00-24:00)")
    if end == _DAY_MIN or start < end:
        return [(start, end)]
    return [(start, _DAY_MIN), (0, end)] if end else [(start, _DAY_MIN)]


def _given_windows(windows: str | Windows | None, tz: str | None) -> Windows | None:
    """``windows`` as Windows; None when not given (keep what is stored). ``"always"`` is given."""
    if windows is None:
        return None
    return windows if isinstance(windows, Windows) else parse_windows(windows, tz)
