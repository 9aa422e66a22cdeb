"""Watchlists: named lists of a platform's streamers and rooms, kept in Redis, with tiers, windows and alerts.

A watchlist is what an operator keeps watched for going live: "the 300 beauty
streamers we follow on Douyin", each with how often it is sampled while live
(its *tier*) and when it is worth watching (its *windows*). This module is the
store only, over a ``redis.Redis``; the workers that check watched accounts
and start monitors read it through :func:`watched` and :func:`version`.

Tiers (:data:`TIERS`), seconds between samples while live::

    hot 30      normal 60 (the default)      tail 300

Windows (:func:`parse_windows`), wall-clock spans in a time zone::

    19:00-24:00                         7 pm to midnight, Asia/Shanghai (the default zone)
    22:00-02:00                         crossing midnight: 10 pm to 2 am the next day
    12:00-14:00,19:00-24:00@UTC         several spans, one zone (any IANA name)
    19:00-24:00@Asia/Shanghai;09:00-11:00@Europe/Paris   spans in several zones
    always (or nothing)                 no windows: always

A span includes its start and excludes its end; ``24:00`` is accepted as an end.
Stored text is canonical (merged, sorted, zone always written), e.g.
``08:00-10:00,22:00-02:00@Asia/Shanghai``.

Redis layout (names from :class:`crawlers.redis.keys.FleetKeys`)::

    <prefix>:watchlists                     hash  name -> JSON {name, platform, notify_only, created_at,
                                                                 state, tier, windows}
    <prefix>:watchlist:<name>:entries       hash  "platform:kind:id" -> JSON {target, tier, windows,
                                                                 added_at, updated_at, source}
    <prefix>:watchlist:<name>:subscribers   hash  id -> JSON {id, list, kind, url, secret, events,
                                                         price_cut_pct, viewers_thresholds, created_at}
    <prefix>:watchlists:version             counter, INCR on every change of any list
    <prefix>:watchlists:version:<platform>  counter, INCR on every change touching that platform's lists

Every change is one MULTI/EXEC that also increments both counters, so a worker
polls :func:`version` (one GET) and reloads :func:`watched` only when it moved.
Read the version *before* loading: a change made while loading then moves it
again and the next poll reloads. Writes that depend on what is stored (an
entry's tier kept when not given, a list's state) WATCH the keys they read and
retry when another writer got in between.

An entry is keyed by its target's stable key ``platform:kind:id`` (the
:class:`crawlers.targets.Target` that :func:`crawlers.targets.parse_target`
makes of the URL or ID), so a room given as a URL and as a bare ID is one
entry. Adding a target that is already there updates its tier and windows
(that is how a tier changes); a tier or window not given keeps the entry's, or
for a new entry takes the list's default. An entry with no windows is watched
always.

Alert subscribers are per list too (:mod:`crawlers.watch.subscribing`), written in the same
transactions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from crawlers.redis.keys import FleetKeys
from crawlers.targets import Target, TargetError, parse_target
from crawlers.watch.windows import (
    DEFAULT_TIER,
    DEFAULT_TZ,
    TIERS,
    Windows,
    _fastest,
    _given_windows,
    parse_tier,
    parse_windows,
)
from models.platforms import PLATFORMS

__all__ = [
    "DEFAULT_TIER", "DEFAULT_TZ", "MAX_IMPORT_LINES", "NAME", "STATES", "TIERS", "AddResult", "ImportRefused",
    "NoSuchList", "ParsedImport", "WatchEntry", "WatchList", "Windows", "add_entries", "check_name", "create_list",
    "delete_list", "entries", "get_list", "import_file", "list_lists", "parse_import", "parse_tier", "parse_windows",
    "remove_entries", "start_list", "stop_list", "target_key", "version", "watched",
]

# -- the store's records ---------------------------------------------------------------------------------------

#: A watchlist's name: lower-case letters, digits, ``_`` and ``-``, up to 64 characters.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STATES = ("active", "stopped")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"not a watchlist name: {str(name)[:70]!r} (lower-case letters, digits, _ and -, "
                         "starting with a letter or digit, up to 64 characters)")
    return name


def target_key(target: Target) -> str:
    """The stable key of a target: ``platform:kind:id`` (the same room as URL or as ID is one key)."""
    return f"{target.platform}:{target.kind}:{target.id}"


@dataclass(frozen=True)
class WatchList:
    """One watchlist's definition; ``counts`` (entries per tier) and ``subscribers`` when listed."""

    name: str
    platform: str
    notify_only: bool
    created_at: str
    state: str
    #: The tier and windows new entries take when none is given.
    tier: str = DEFAULT_TIER
    windows: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    subscribers: int = 0

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    def definition(self) -> dict[str, Any]:
        """What Redis stores of the list."""
        return {"name": self.name, "platform": self.platform, "notify_only": self.notify_only,
                "created_at": self.created_at, "state": self.state, "tier": self.tier, "windows": self.windows}

    def as_dict(self) -> dict[str, Any]:
        return {**self.definition(), "entries": self.size, "counts": dict(self.counts),
                "subscribers": self.subscribers}


@dataclass(frozen=True)
class WatchEntry:
    """One watched target. From :func:`watched`: merged over every active list holding it."""

    key: str
    #: :meth:`crawlers.targets.Target.as_dict`: platform, kind, id, url.
    target: dict[str, str]
    tier: str
    #: Canonical windows text (:func:`parse_windows`); None: always.
    windows: str | None
    added_at: str
    #: Where it came from: ``cli``, ``import:FILE:LINE``, ...
    source: str
    updated_at: str = ""
    #: The lists holding it.
    lists: tuple[str, ...] = ()
    #: True when every list holding it is notify-only (alerts, no snapshots stored).
    notify_only: bool = False

    @property
    def every_s(self) -> float:
        """Seconds between samples while live (the tier's)."""
        return TIERS[self.tier]

    @property
    def platform(self) -> str:
        return self.target["platform"]

    def window_set(self) -> Windows:
        return parse_windows(self.windows)

    def in_window(self, at: datetime) -> bool:
        return self.window_set().contains(at)

    def as_target(self) -> Target:
        return Target(**self.target)

    def stored(self) -> dict[str, Any]:
        """What Redis stores of the entry (the key is the hash field)."""
        return {"target": self.target, "tier": self.tier, "windows": self.windows, "added_at": self.added_at,
                "updated_at": self.updated_at or self.added_at, "source": self.source}

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, **self.stored(), "every_s": self.every_s, "lists": list(self.lists),
                "notify_only": self.notify_only}


def _entry(key: str, raw: bytes | str, lists: tuple[str, ...] = (), notify_only: bool = False) -> WatchEntry:
    data = json.loads(raw)
    return WatchEntry(key=key, target=dict(data["target"]), tier=data["tier"], windows=data.get("windows"),
                      added_at=data.get("added_at", ""), source=data.get("source", ""),
                      updated_at=data.get("updated_at", ""), lists=lists, notify_only=notify_only)


def _list(raw: bytes | str, counts: dict[str, int] | None = None, subscribers: int = 0) -> WatchList:
    data = json.loads(raw)
    return WatchList(name=data["name"], platform=data["platform"], notify_only=bool(data.get("notify_only")),
                     created_at=data.get("created_at", ""), state=data.get("state", "active"),
                     tier=data.get("tier", DEFAULT_TIER), windows=data.get("windows"), counts=counts or {},
                     subscribers=subscribers)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _now(server: redis.Redis) -> str:
    """Redis server time, ISO 8601 UTC with milliseconds (every process agrees on it)."""
    seconds, micros = server.time()
    at = datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(micros))
    return at.isoformat(timespec="milliseconds")


def _bump(pipe: Any, keys: FleetKeys, platform: str) -> None:
    """Queue the version increments every change carries (the global one last: its value is returned)."""
    pipe.incr(keys.watch_platform_version(platform))
    pipe.incr(keys.watch_version)


class NoSuchList(ValueError):
    """A name that is no watchlist."""


def _missing(name: str) -> NoSuchList:
    return NoSuchList(f"no watchlist {name!r} (see livefleet watch list)")


def version(server: redis.Redis, prefix: str, platform: str | None = None) -> int:
    """The change counter of every watchlist (or of ``platform``'s lists): poll it, reload when it moved."""
    keys = FleetKeys(prefix)
    raw = server.get(keys.watch_platform_version(platform) if platform else keys.watch_version)
    return int(raw) if raw is not None else 0


# -- lists -----------------------------------------------------------------------------------------------------


def _new_definition(now: str, name: str, platform: str, notify_only: bool, tier: str | None,
                    windows: str | Windows | None, tz: str | None) -> WatchList:
    check_name(name)
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    default_windows = _given_windows(windows, tz)
    return WatchList(name=name, platform=platform, notify_only=bool(notify_only), created_at=now,
                     state="active", tier=parse_tier(tier) if tier is not None else DEFAULT_TIER,
                     windows=default_windows.text if default_windows else None)


def _check_same(existing: WatchList, platform: str | None, notify_only: bool | None) -> None:
    if platform is not None and platform != existing.platform:
        raise ValueError(f"watchlist {existing.name!r} is a {existing.platform} list, not {platform}")
    if notify_only is not None and bool(notify_only) != existing.notify_only:
        raise ValueError(f"watchlist {existing.name!r} is {'' if existing.notify_only else 'not '}notify-only; "
                         "notify-only is chosen when a list is created")


def create_list(server: redis.Redis, prefix: str, name: str, platform: str, *, notify_only: bool = False,
                tier: str | None = None, windows: str | Windows | None = None, tz: str | None = None,
                exist_ok: bool = False) -> WatchList:
    """Create the watchlist ``name`` of ``platform``, active, with the default tier and windows of its new
    entries. An existing list is an error, unless ``exist_ok`` (then it is returned as it is, if its platform
    and notify-only agree)."""
    keys = FleetKeys(prefix)
    definition = _new_definition(_now(server), name, platform, notify_only, tier, windows, tz)

    def write(pipe: redis.client.Pipeline) -> WatchList:
        raw = pipe.hget(keys.watchlists, name)
        if raw is not None:
            existing = _list(raw)
            if not exist_ok:
                raise ValueError(f"watchlist {name!r} exists (a {existing.platform} list)")
            _check_same(existing, platform, notify_only)
            return existing
        pipe.multi()
        pipe.hset(keys.watchlists, name, _dumps(definition.definition()))
        _bump(pipe, keys, platform)
        return definition

    return server.transaction(write, keys.watchlists, value_from_callable=True)  # type: ignore[no-any-return]


def get_list(server: redis.Redis, prefix: str, name: str) -> WatchList | None:
    """The watchlist ``name`` with its counts per tier and subscribers; None if there is none."""
    raw = server.hget(FleetKeys(prefix).watchlists, check_name(name))
    if raw is None:
        return None
    (found,) = _with_counts(server, FleetKeys(prefix), [_list(raw)])
    return found


def list_lists(server: redis.Redis, prefix: str, platform: str | None = None) -> list[WatchList]:
    """Every watchlist (of ``platform``), by name, with its entries counted per tier and its subscribers."""
    keys = FleetKeys(prefix)
    found = [_list(raw) for raw in server.hvals(keys.watchlists)]
    found = sorted((w for w in found if platform is None or w.platform == platform), key=lambda w: w.name)
    return _with_counts(server, keys, found)


def _with_counts(server: redis.Redis, keys: FleetKeys, found: list[WatchList]) -> list[WatchList]:
    pipe = server.pipeline(transaction=False)
    for w in found:
        pipe.hvals(keys.watch_entries(w.name))
        pipe.hlen(keys.watch_subscribers(w.name))
    replies = pipe.execute()
    out = []
    for i, w in enumerate(found):
        counts = dict.fromkeys(TIERS, 0)
        for raw in replies[2 * i]:
            tier = json.loads(raw).get("tier", DEFAULT_TIER)
            counts[tier] = counts.get(tier, 0) + 1
        out.append(WatchList(**{**w.definition(), "counts": counts, "subscribers": int(replies[2 * i + 1])}))
    return out


def _set_state(server: redis.Redis, prefix: str, name: str, state: str) -> WatchList:
    keys = FleetKeys(prefix)
    check_name(name)

    def write(pipe: redis.client.Pipeline) -> WatchList:
        raw = pipe.hget(keys.watchlists, name)
        if raw is None:
            raise _missing(name)
        current = _list(raw)
        updated = WatchList(**{**current.definition(), "state": state})
        if current.state != state:
            pipe.multi()
            pipe.hset(keys.watchlists, name, _dumps(updated.definition()))
            _bump(pipe, keys, current.platform)
        return updated

    server.transaction(write, keys.watchlists, value_from_callable=True)
    found = get_list(server, prefix, name)
    if found is None:
        raise _missing(name)
    return found


def stop_list(server: redis.Redis, prefix: str, name: str) -> WatchList:
    """Stop watching a list: :func:`watched` leaves it out; its entries and subscribers are kept."""
    return _set_state(server, prefix, name, "stopped")


def start_list(server: redis.Redis, prefix: str, name: str) -> WatchList:
    """Watch a stopped list again."""
    return _set_state(server, prefix, name, "active")


def delete_list(server: redis.Redis, prefix: str, name: str) -> bool:
    """Delete a list, its entries and its subscribers; False if there was no such list."""
    keys = FleetKeys(prefix)
    check_name(name)

    def write(pipe: redis.client.Pipeline) -> bool:
        raw = pipe.hget(keys.watchlists, name)
        if raw is None:
            return False
        pipe.multi()
        pipe.hdel(keys.watchlists, name)
        pipe.delete(keys.watch_entries(name), keys.watch_subscribers(name))
        _bump(pipe, keys, _list(raw).platform)
        return True

    return server.transaction(write, keys.watchlists, value_from_callable=True)  # type: ignore[no-any-return]


# -- entries ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddResult:
    """What an add or an import wrote."""

    #: Distinct targets written (new + updated).
    entries: int
    new: int
    updated: int
    #: Lines (or texts) naming a target named earlier in the same input.
    duplicates: int
    #: :func:`version` after the write.
    version: int
    #: Whether the list was created by this write.
    created: bool = False


@dataclass(frozen=True)
class _Row:
    """One target to write: tier and windows as given on its line (None: not given)."""

    key: str
    target: Target
    tier: str | None
    windows: Windows | None
    source: str


def _again(before: _Row, after: _Row) -> _Row:
    """A target named again: the later tier/windows where given, the earlier ones otherwise."""
    return _Row(after.key, after.target, after.tier or before.tier,
                after.windows if after.windows is not None else before.windows, after.source)


@dataclass(frozen=True)
class ParsedImport:
    """An import file, checked: one row per distinct target, in the order of their last lines."""

    rows: tuple[_Row, ...]
    lines: int
    duplicates: int


class ImportRefused(ValueError):
    """Lines of an import that cannot be read; nothing was written. ``refusals``: (line number, reason)."""

    def __init__(self, refusals: Sequence[tuple[int, str]], lines: int) -> None:
        self.refusals = list(refusals)
        self.lines = lines
        shown = [f"line {n}: {reason}" for n, reason in self.refusals]
        super().__init__(f"{len(self.refusals)} of {lines} lines refused, nothing imported\n" + "\n".join(shown))


#: Most targets one import takes.
MAX_IMPORT_LINES = 200_000
_HEADER_FIELDS = {"target", "tier", "window", "windows"}
_SPAN_START = re.compile(r"\d{1,2}:\d{2}-")


def _tokens(line: str) -> list[str]:
    """The fields of an import line: separated by whitespace or commas, CSV quotes dropped."""
    return [t for t in (raw.strip("\"'") for raw in re.split(r"[\s,]+", line)) if t]


def _read_line(platform: str, tokens: list[str], tier: str | None, windows: Windows | None,
               tz: str | None) -> tuple[Target, str | None, Windows | None]:
    """Target, tier and windows of one line's tokens (the import's tier/windows when the line gives none)."""
    target = parse_target(platform, tokens[0])
    line_tier: str | None = None
    window_parts: list[str] | None = None
    in_window = False
    for token in tokens[1:]:
        name, eq, value = token.partition("=")
        if eq:
            in_window = False
            field_name = name.strip().lower()
            if field_name == "tier":
                if line_tier is not None:
                    raise ValueError("tier given twice")
                line_tier = parse_tier(value)
            elif field_name in ("window", "windows"):
                if window_parts is not None:
                    raise ValueError("window given twice")
                window_parts, in_window = [value], True
            else:
                raise ValueError(f"unknown field {name[:30]!r} (tier=hot|normal|tail, window=HH:MM-HH:MM)")
        elif in_window and window_parts is not None and (_SPAN_START.match(token) or token.startswith("@")):
            window_parts.append(token if token.startswith("@") else "," + token)
        elif token.lower() in TIERS and line_tier is None:  # a CSV column: target,tier,window
            line_tier = token.lower()
        elif (_SPAN_START.match(token) or token.lower() == "always") and window_parts is None:
            window_parts, in_window = [token], True
        else:
            raise ValueError(f"unexpected {token[:40]!r} after the target (tier=hot|normal|tail, "
                             "window=HH:MM-HH:MM[@ZONE])")
    line_windows = parse_windows("".join(window_parts), tz) if window_parts is not None else None
    return target, line_tier or tier, line_windows if line_windows is not None else windows


def parse_import(platform: str, lines: Iterable[str], *, tier: str | None = None,
                 windows: str | Windows | None = None, tz: str | None = None,
                 source_name: str = "-") -> ParsedImport:
    """Check every line of an import (see :func:`import_file`) without writing; :class:`ImportRefused`
    lists every line that cannot be read."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    default_tier = parse_tier(tier) if tier is not None else None
    default_windows = _given_windows(windows, tz)
    rows: dict[str, _Row] = {}
    refusals: list[tuple[int, str]] = []
    duplicates = 0
    number = 0
    content = 0
    for number, raw in enumerate(lines, 1):
        line = raw.lstrip("\ufeff").strip() if number == 1 else raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _tokens(line)
        if not tokens:
            continue
        content += 1
        if content == 1 and tokens[0].lower() == "target" and {t.lower() for t in tokens} <= _HEADER_FIELDS:
            continue  # a CSV header
        if content > MAX_IMPORT_LINES:
            refusals.append((number, f"more than {MAX_IMPORT_LINES} targets in one import: split the file"))
            break
        try:
            target, line_tier, line_windows = _read_line(platform, tokens, default_tier, default_windows, tz)
        except ValueError as exc:  # TargetError included
            refusals.append((number, str(exc)))
            continue
        key = target_key(target)
        row = _Row(key, target, line_tier, line_windows, f"import:{source_name}:{number}")
        if key in rows:  # as if added again: what this line gives wins, what it does not give is kept
            duplicates += 1
            row = _again(rows.pop(key), row)
        rows[key] = row
    if refusals:
        raise ImportRefused(refusals, number)
    return ParsedImport(tuple(rows.values()), number, duplicates)


def _parse_texts(platform: str, texts: Iterable[str], tier: str | None, windows: Windows | None,
                 source: str) -> tuple[list[_Row], int]:
    rows: dict[str, _Row] = {}
    refused = []
    duplicates = 0
    for text in texts:
        try:
            target = parse_target(platform, text)
        except TargetError as exc:
            refused.append(str(exc))
            continue
        key = target_key(target)
        duplicates += key in rows
        rows[key] = _Row(key, target, tier, windows, source)
    if refused:
        raise ValueError(f"{len(refused)} target(s) refused, nothing added: " + "; ".join(refused))
    if not rows:
        raise ValueError("no targets given")
    return list(rows.values()), duplicates


def add_entries(server: redis.Redis, prefix: str, name: str, texts: Iterable[str], tier: str | None = None,
                windows: str | Windows | None = None, source: str = "cli", *, tz: str | None = None,
                platform: str | None = None, notify_only: bool | None = None) -> AddResult:
    """Add targets (room/profile URLs or IDs of the list's platform) to a list, in one transaction.

    A target already in the list is updated: ``tier``/``windows`` when given (``"always"`` clears its
    windows), else its own are kept; a new one takes them, else the list's defaults. Every text is checked
    first; one refused text adds nothing (ValueError naming each). With ``platform`` a missing list is
    created (``notify_only``, default tier and windows from ``tier``/``windows``) in the same transaction.
    """
    check_name(name)
    given_tier = parse_tier(tier) if tier is not None else None
    given_windows = _given_windows(windows, tz)
    listed = _known_platform(server, prefix, name, platform)
    rows, duplicates = _parse_texts(listed, list(texts), given_tier, given_windows, source)
    return _write_rows(server, prefix, name, rows, duplicates, platform, notify_only, given_tier, given_windows)


def import_file(server: redis.Redis, prefix: str, name: str, lines: Iterable[str], *, tier: str | None = None,
                windows: str | Windows | None = None, tz: str | None = None, source_name: str,
                platform: str | None = None, notify_only: bool | None = None) -> AddResult:
    """Import targets from the lines of a file into a list: all of them in one transaction, or none.

    Each line that is neither blank nor a ``#`` comment names one target (a room/profile URL or ID), then
    optionally ``tier=hot|normal|tail`` and ``window=19:00-24:00[@ZONE]``, separated by spaces or commas;
    a first line ``target,tier,window`` is a CSV header, and then bare values are read by their shape::

        https://live.douyin.com/604946797621 tier=hot window=19:00-24:00
        604946797621,hot,19:00-24:00
        MS4wLjABAAAA...  window=22:00-02:00@Asia/Shanghai

    A line's tier/window win over ``tier``/``windows``, which win over what an existing entry has. Every
    line is checked first (:func:`parse_import`); if any is refused nothing is written and
    :class:`ImportRefused` lists each as ``line N: reason``. A target named by several lines is written
    once, as if added line after line (a later line's tier/window win, one it does not give is kept), and
    the later lines are counted as duplicates. Sources are ``import:<source_name>:<line>``. With
    ``platform`` a missing list is created in the same transaction.
    """
    check_name(name)
    listed = _known_platform(server, prefix, name, platform)
    parsed = parse_import(listed, lines, tier=tier, windows=windows, tz=tz, source_name=source_name)
    if not parsed.rows:
        raise ValueError(f"{source_name}: no targets to import")
    given_tier = parse_tier(tier) if tier is not None else None
    return _write_rows(server, prefix, name, list(parsed.rows), parsed.duplicates, platform, notify_only,
                       given_tier, _given_windows(windows, tz))


def _known_platform(server: redis.Redis, prefix: str, name: str, platform: str | None) -> str:
    """The platform of list ``name``: its own, else ``platform`` (it will be created); checked to agree."""
    raw = server.hget(FleetKeys(prefix).watchlists, name)
    if raw is not None:
        existing = _list(raw)
        _check_same(existing, platform, None)
        return existing.platform
    if platform is None:
        raise ValueError(f"no watchlist {name!r}: give --platform to create it")
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    return platform


def _write_rows(server: redis.Redis, prefix: str, name: str, rows: list[_Row], duplicates: int,
                platform: str | None, notify_only: bool | None, tier: str | None,
                windows: Windows | None) -> AddResult:
    keys = FleetKeys(prefix)
    entries_key = keys.watch_entries(name)
    now = _now(server)
    fields = [row.key for row in rows]
    outcome: dict[str, Any] = {}

    def write(pipe: redis.client.Pipeline) -> None:
        raw = pipe.hget(keys.watchlists, name)
        if raw is None:
            if platform is None:
                raise _missing(name)
            definition = _new_definition(now, name, platform, bool(notify_only), tier, windows, None)
            created = True
        else:
            definition = _list(raw)
            _check_same(definition, platform, notify_only)
            created = False
        if any(row.target.platform != definition.platform for row in rows):  # deleted and re-made meanwhile
            raise ValueError(f"watchlist {name!r} is a {definition.platform} list")
        stored = pipe.hmget(entries_key, fields) if fields else []
        mapping: dict[str, str] = {}
        new = 0
        for row, old_raw in zip(rows, stored, strict=True):
            old = json.loads(old_raw) if old_raw is not None else None
            new += old is None
            entry = {
                "target": row.target.as_dict(),
                "tier": row.tier or (old["tier"] if old else definition.tier),
                "windows": row.windows.text if row.windows is not None else
                (old.get("windows") if old else definition.windows),
                "added_at": old["added_at"] if old else now,
                "updated_at": now,
                "source": row.source,
            }
            mapping[row.key] = _dumps(entry)
        pipe.multi()
        if created:
            pipe.hset(keys.watchlists, name, _dumps(definition.definition()))
        pipe.hset(entries_key, mapping=mapping)
        _bump(pipe, keys, definition.platform)
        outcome.update(new=new, created=created)

    replies = server.transaction(write, keys.watchlists, entries_key)  # MULTI ... EXEC, retried if WATCH fails
    return AddResult(entries=len(rows), new=outcome["new"], updated=len(rows) - outcome["new"],
                     duplicates=duplicates, version=int(replies[-1]), created=outcome["created"])


def remove_entries(server: redis.Redis, prefix: str, name: str, texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """Remove targets (URLs, IDs or entry keys ``platform:kind:id``) from a list, in one transaction.

    Returns (removed keys, keys that were not in the list). A text that is no target of the list's
    platform removes nothing (ValueError)."""
    keys = FleetKeys(prefix)
    check_name(name)
    raw = server.hget(keys.watchlists, name)
    if raw is None:
        raise _missing(name)
    platform = _list(raw).platform
    wanted: list[str] = []
    refused = []
    for text in texts:
        text = str(text).strip()
        if text.startswith(f"{platform}:") and text.count(":") == 2:
            wanted.append(text)
            continue
        try:
            wanted.append(target_key(parse_target(platform, text)))
        except TargetError as exc:
            refused.append(str(exc))
    if refused:
        raise ValueError(f"{len(refused)} target(s) refused, nothing removed: " + "; ".join(refused))
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        raise ValueError("no targets given")

    def write(pipe: redis.client.Pipeline) -> tuple[list[str], list[str]]:
        present = pipe.hmget(keys.watch_entries(name), wanted)
        removed = [k for k, v in zip(wanted, present, strict=True) if v is not None]
        if removed:
            pipe.multi()
            pipe.hdel(keys.watch_entries(name), *removed)
            _bump(pipe, keys, platform)
        return removed, [k for k in wanted if k not in removed]

    return server.transaction(write, keys.watch_entries(name), value_from_callable=True)  # type: ignore[no-any-return]


def entries(server: redis.Redis, prefix: str, name: str) -> list[WatchEntry]:
    """The entries of one list (stopped or not), oldest first."""
    keys = FleetKeys(prefix)
    raw_list = server.hget(keys.watchlists, check_name(name))
    if raw_list is None:
        raise _missing(name)
    notify_only = _list(raw_list).notify_only
    found = [_entry(_text(k), v, (name,), notify_only) for k, v in server.hgetall(keys.watch_entries(name)).items()]
    return sorted(found, key=lambda e: (e.added_at, e.key))


def watched(server: redis.Redis, prefix: str, platform: str) -> list[WatchEntry]:
    """Every target of every active list of ``platform``, once each, by key.

    A target in several lists takes the fastest of their tiers and the union of their windows (always if
    any list watches it always), the earliest ``added_at`` with its source, and names every list holding
    it; it is ``notify_only`` only if every such list is. Read :func:`version` before calling this to know
    when to call it again."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    keys = FleetKeys(prefix)
    lists = sorted((w for w in (_list(raw) for raw in server.hvals(keys.watchlists))
                    if w.platform == platform and w.active), key=lambda w: w.name)
    pipe = server.pipeline(transaction=True)  # every list's entries as of one moment
    for w in lists:
        pipe.hgetall(keys.watch_entries(w.name))
    merged: dict[str, WatchEntry] = {}
    for w, found in zip(lists, pipe.execute() if lists else [], strict=True):
        for raw_key, raw in found.items():
            entry = _entry(_text(raw_key), raw, (w.name,), w.notify_only)
            have = merged.get(entry.key)
            merged[entry.key] = entry if have is None else _merge_entries(have, entry)
    return [merged[key] for key in sorted(merged)]


def _merge_entries(a: WatchEntry, b: WatchEntry) -> WatchEntry:
    first = a if (a.added_at, a.source) <= (b.added_at, b.source) else b
    windows = parse_windows(a.windows).union(parse_windows(b.windows))
    return WatchEntry(key=a.key, target=first.target, tier=_fastest((a.tier, b.tier)), windows=windows.text,
                      added_at=first.added_at, source=first.source, updated_at=max(a.updated_at, b.updated_at),
                      lists=tuple(sorted({*a.lists, *b.lists})), notify_only=a.notify_only and b.notify_only)
