"""Rooms and streamers as people write them: a bare ID or a page URL, per platform.

A campaign file may name a room or a streamer by the ID its spider takes or by
the URL of its page as a browser shows it. Only the URL shapes each platform
really uses are accepted (``/work/shared/PLATFORMS.md`` sections 1.1, 2.1, 3.1,
4.1), over http(s), on the platform's own hosts, with no user, password or
port; anything else (another host, a short link that would have to be fetched
to be resolved, a file URL, an address) is refused with the shapes that would
have been accepted. Nothing here fetches anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Shape:
    """One accepted URL shape: a host and a path pattern whose group ``id`` is the target's ID."""

    host: str
    path: re.Pattern[str]
    example: str
    query: str | None = None  # the ID is this query parameter instead of a path group


def _shape(host: str, path: str, example: str, query: str | None = None) -> Shape:
    return Shape(host, re.compile(path), example, query)


#: What a bare ID of each kind looks like, per platform (what the spider's seed takes).
ID_PATTERNS: dict[tuple[str, str], tuple[re.Pattern[str], str]] = {
    ("douyin", "room"): (re.compile(r"\d{6,20}"), "a web_rid (digits)"),
    ("douyin", "streamer"): (re.compile(r"[A-Za-z0-9_-]{20,120}"), "a sec_uid (MS4wLjABAAAA...)"),
    ("kuaishou", "room"): (re.compile(r"[A-Za-z0-9_.-]{2,64}"), "a principalId"),
    ("kuaishou", "streamer"): (re.compile(r"[A-Za-z0-9_.-]{2,64}"), "a principalId"),
    ("bilibili", "room"): (re.compile(r"\d{1,15}"), "a room id (digits)"),
    ("bilibili", "streamer"): (re.compile(r"\d{1,15}"), "a uid (digits)"),
    ("taobao", "room"): (re.compile(r"\d{6,20}"), "a liveId (digits)"),
}

#: The page URLs accepted for each platform and kind.
URL_SHAPES: dict[tuple[str, str], tuple[Shape, ...]] = {
    ("douyin", "room"): (_shape("live.douyin.com", r"/(?P<id>\d{6,20})/?", "https://live.douyin.com/<web_rid>"),),
    ("douyin", "streamer"): (
        _shape("www.douyin.com", r"/user/(?P<id>[A-Za-z0-9_-]{20,120})/?", "https://www.douyin.com/user/<sec_uid>"),
        _shape("www.iesdouyin.com", r"/share/user/(?P<id>[A-Za-z0-9_-]{20,120})/?",
               "https://www.iesdouyin.com/share/user/<sec_uid>"),
    ),
    ("kuaishou", "room"): (
        _shape("live.kuaishou.com", r"/u/(?P<id>[A-Za-z0-9_.-]{2,64})/?", "https://live.kuaishou.com/u/<principalId>"),
    ),
    ("kuaishou", "streamer"): (
        _shape("live.kuaishou.com", r"/u/(?P<id>[A-Za-z0-9_.-]{2,64})/?", "https://live.kuaishou.com/u/<principalId>"),
        _shape("live.kuaishou.com", r"/profile/(?P<id>[A-Za-z0-9_.-]{2,64})/?",
               "https://live.kuaishou.com/profile/<principalId>"),
        _shape("www.kuaishou.com", r"/profile/(?P<id>[A-Za-z0-9_.-]{2,64})/?",
               "https://www.kuaishou.com/profile/<principalId>"),
    ),
    ("bilibili", "room"): (
        _shape("live.bilibili.com", r"/(?:blanc/)?(?P<id>\d{1,15})/?", "https://live.bilibili.com/<room_id>"),
    ),
    ("bilibili", "streamer"): (
        _shape("space.bilibili.com", r"/(?P<id>\d{1,15})/?", "https://space.bilibili.com/<uid>"),
    ),
    ("taobao", "room"): (
        _shape("tbzb.taobao.com", r"/live/?", "https://tbzb.taobao.com/live?liveId=<liveId>", query="liveId"),
    ),
}

#: Hosts of links that only redirect: resolving them means fetching them, which a campaign file never does.
SHORT_LINK_HOSTS = frozenset({"v.douyin.com", "v.kuaishou.com", "b23.tv", "m.tb.cn", "e.tb.cn"})


class TargetError(ValueError):
    """A room or streamer that is neither an ID nor an accepted page URL of its platform."""


def parse_target(platform: str, kind: str, value: str) -> str:
    """The ID the spider's seed takes, from a bare ID or a page URL; :class:`TargetError` otherwise.

    ``kind`` is ``room`` or ``streamer``.
    """
    key = (platform, kind)
    if key not in ID_PATTERNS:
        raise TargetError(f"{platform} takes no {kind} IDs")
    text = value.strip()
    pattern, described = ID_PATTERNS[key]
    if "/" not in text and ":" not in text:
        if pattern.fullmatch(text):
            return text
        raise TargetError(f"{text!r} is not {described} nor a {platform} {kind} URL ({_examples(key)})")
    return _from_url(platform, kind, text)


def _examples(key: tuple[str, str]) -> str:
    return ", ".join(shape.example for shape in URL_SHAPES[key])


def _from_url(platform: str, kind: str, text: str) -> str:
    key = (platform, kind)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"{text!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"{text!r}: only http(s) page URLs are accepted ({_examples(key)})")
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or port is not None:
        raise TargetError(f"{text!r}: a page URL carries no user, password or port")
    if host in SHORT_LINK_HOSTS:
        raise TargetError(f"{text!r} is a short link; livefleet does not fetch it to see where it leads: "
                          f"open it and give the page URL ({_examples(key)})")
    for shape in URL_SHAPES[key]:
        if host != shape.host:
            continue
        match = shape.path.fullmatch(parts.path or "/")
        if not match:
            continue
        if shape.query is None:
            return match.group("id")
        found = parse_qs(parts.query).get(shape.query, [])
        pattern, _described = ID_PATTERNS[key]
        if len(found) == 1 and pattern.fullmatch(found[0]):
            return found[0]
    other = "streamer" if kind == "room" else "room"
    if (platform, other) in URL_SHAPES and any(
        host == s.host and s.path.fullmatch(parts.path or "/") for s in URL_SHAPES[(platform, other)]
    ) and not any(host == s.host and s.path.fullmatch(parts.path or "/") for s in URL_SHAPES[key]):
        raise TargetError(f"{text!r} is a {platform} {other} URL; list it under {other}s")
    raise TargetError(f"{text!r} is not a {platform} {kind} URL (accepted: {_examples(key)})")
