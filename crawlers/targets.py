"""Rooms and streamers as people write them: a platform's room URL, profile URL or bare ID.

One parser for every place a person names a target: monitors (``livefleet
monitor add``, the API) and campaign files. ``parse_target(platform, text)``
accepts only what the platform's own public URLs and IDs look like
(PLATFORMS.md 1.1, 2.1, 3.1, 4.1) and returns a :class:`Target`; anything else
raises :class:`TargetError` with a message a person can act on, naming the
shapes that would have been accepted. ``kind="room"`` or ``kind="streamer"``
asks for that kind only (a campaign's ``rooms`` and ``streamers`` lists).

The text is never fetched to find out what it is: a short link
(``v.douyin.com/...``) would have to be followed to learn where it goes, so it
is refused too. Refused, whatever the platform: schemes other than http(s)
(``file:``, ``ftp:``, ``data:``, ``javascript:``), user info in the authority
(``https://live.douyin.com@evil.io/``), IP literals, ``localhost``, ports other
than 80/443, hosts that only end or start like the platform's
(``live.douyin.com.evil.io``), whitespace, control characters and backslashes,
and IDs of the wrong shape.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from models.platforms import PLATFORMS, check_keys

__all__ = ["PLATFORM_HOSTS", "SHORT_HOSTS", "Target", "TargetError", "parse_target"]


class TargetError(ValueError):
    """Text that is not one of the platform's room/profile URLs or IDs (never fetched)."""


@dataclass(frozen=True)
class Target:
    """One room or streamer, in the platform's own terms."""

    platform: str
    #: ``room`` or ``streamer`` (the spider's seed kind).
    kind: str
    #: The platform ID: Douyin web_rid / sec_uid, Kuaishou principalId, Taobao liveId, Bilibili room id / uid.
    id: str
    #: The public page of the target on the platform's real host.
    url: str

    def seed(self, follow: Sequence[str]) -> dict[str, Any]:
        """The seed the platform's spider takes for this target, following ``follow``."""
        return {"kind": self.kind, _SEED_KEYS[(self.platform, self.kind)]: self.id, "follow": list(follow)}

    def as_dict(self) -> dict[str, str]:
        return {"platform": self.platform, "kind": self.kind, "id": self.id, "url": self.url}


_SEED_KEYS = {("douyin", "room"): "web_rid", ("douyin", "streamer"): "sec_uid",
              ("kuaishou", "room"): "principal_id", ("taobao", "room"): "live_id",
              ("bilibili", "room"): "room_id", ("bilibili", "streamer"): "uid"}

# -- ID shapes (PLATFORMS.md 1.1, 2.1, 3.1, 4.1) ------------------------------------------------------
#: Douyin web_rid: the stable room number, up to 16 digits (a 19-digit room_id changes every broadcast).
DOUYIN_WEB_RID = re.compile(r"[1-9][0-9]{5,15}")
#: Douyin sec_uid: base64url starting "MS4wLjABAAAA", 55 or 76 characters in all.
DOUYIN_SEC_UID = re.compile(r"MS4wLjABAAAA(?:[A-Za-z0-9_-]{43}|[A-Za-z0-9_-]{64})")
#: Kuaishou principalId: a kwaiId (letters, digits, ``_`` and ``-``: ``qiuyu-620``) or a user eid (``3x...``).
KUAISHOU_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,39}")
#: Taobao liveId.
TAOBAO_LIVE_ID = re.compile(r"[1-9][0-9]{5,19}")
#: Bilibili room id (long or short) and uid (mid).
BILIBILI_ID = re.compile(r"[1-9][0-9]{0,15}")

#: Per (platform, kind): the ID's pattern and how a person would recognise it.
_IDS: dict[tuple[str, str], tuple[re.Pattern[str], str]] = {
    ("douyin", "room"): (DOUYIN_WEB_RID, "web_rid, 6-16 digits"),
    ("douyin", "streamer"): (DOUYIN_SEC_UID, "sec_uid, MS4wLjABAAAA..., 55 or 76 characters"),
    ("kuaishou", "room"): (KUAISHOU_PRINCIPAL, "principalId, 3-40 letters, digits, _ or -"),
    ("taobao", "room"): (TAOBAO_LIVE_ID, "liveId, 6-20 digits"),
    ("bilibili", "room"): (BILIBILI_ID, "room id, digits"),
    ("bilibili", "streamer"): (BILIBILI_ID, "uid, digits"),
}
#: The kinds a bare ID is tried as when no kind is asked for, in order (Bilibili digits are a room id;
#: a uid needs its space URL or ``kind="streamer"``).
_BARE_KINDS = {"douyin": ("room", "streamer"), "kuaishou": ("room",), "taobao": ("room",), "bilibili": ("room",)}

#: The hosts whose URLs each platform accepts (exact names, no subdomains of them).
PLATFORM_HOSTS: dict[str, frozenset[str]] = {
    "douyin": frozenset({"live.douyin.com", "www.douyin.com", "douyin.com", "www.iesdouyin.com"}),
    "kuaishou": frozenset({"live.kuaishou.com", "www.kuaishou.com"}),
    "taobao": frozenset({"tbzb.taobao.com", "huodong.m.taobao.com"}),
    "bilibili": frozenset({"live.bilibili.com", "space.bilibili.com"}),
}
#: Short-link hosts: they redirect, so what they point at is unknown until fetched.
SHORT_HOSTS: dict[str, frozenset[str]] = {
    "douyin": frozenset({"v.douyin.com"}),
    "kuaishou": frozenset({"v.kuaishou.com"}),
    "taobao": frozenset({"m.tb.cn", "e.tb.cn"}),
    "bilibili": frozenset({"b23.tv"}),
}
_Form = tuple[str, re.Pattern[str], str | None]
#: host -> (kind, path pattern (group 1 = the ID, else the query parameter names it), query parameter).
#: A Kuaishou profile page is the same principalId as its room: a room.
_URL_FORMS: dict[str, dict[str, tuple[_Form, ...]]] = {
    "douyin": {
        "live.douyin.com": (("room", re.compile(r"/([^/]+)"), None),),
        "www.douyin.com": (("streamer", re.compile(r"/user/([^/]+)"), None),),
        "douyin.com": (("streamer", re.compile(r"/user/([^/]+)"), None),),
        "www.iesdouyin.com": (("streamer", re.compile(r"/share/user/([^/]+)"), None),),
    },
    "kuaishou": {
        "live.kuaishou.com": (("room", re.compile(r"/(?:u|profile)/([^/]+)"), None),),
        "www.kuaishou.com": (("room", re.compile(r"/profile/([^/]+)"), None),),
    },
    "taobao": {
        "tbzb.taobao.com": (("room", re.compile(r"/live"), "liveId"),),
        "huodong.m.taobao.com": (("room", re.compile(r"/act/talent/live\.html"), "id"),),
    },
    "bilibili": {
        "live.bilibili.com": (("room", re.compile(r"/(?:blanc/|h5/)?([^/]+)"), None),),
        "space.bilibili.com": (("streamer", re.compile(r"/([^/]+)"), None),),
    },
}
#: The page a target's ID names, written the one way (also what error messages offer as accepted).
_CANONICAL: dict[tuple[str, str], str] = {
    ("douyin", "room"): "https://live.douyin.com/{}",
    ("douyin", "streamer"): "https://www.douyin.com/user/{}",
    ("kuaishou", "room"): "https://live.kuaishou.com/u/{}",
    ("taobao", "room"): "https://tbzb.taobao.com/live?liveId={}",
    ("bilibili", "room"): "https://live.bilibili.com/{}",
    ("bilibili", "streamer"): "https://space.bilibili.com/{}",
}
_EXAMPLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("douyin", "room"): ("https://live.douyin.com/<web_rid>",),
    ("douyin", "streamer"): ("https://www.douyin.com/user/<sec_uid>", "https://www.iesdouyin.com/share/user/<sec_uid>"),
    ("kuaishou", "room"): ("https://live.kuaishou.com/u/<principalId>",
                           "https://www.kuaishou.com/profile/<principalId>"),
    ("taobao", "room"): ("https://tbzb.taobao.com/live?liveId=<liveId>",),
    ("bilibili", "room"): ("https://live.bilibili.com/<room_id>",),
    ("bilibili", "streamer"): ("https://space.bilibili.com/<uid>",),
}
# Every table above covers every platform (models/platforms.py), no more.
for _what, _table in (("_SEED_KEYS", {p for p, _ in _SEED_KEYS}), ("_IDS", {p for p, _ in _IDS}),
                      ("_BARE_KINDS", _BARE_KINDS), ("PLATFORM_HOSTS", PLATFORM_HOSTS),
                      ("SHORT_HOSTS", SHORT_HOSTS), ("_URL_FORMS", _URL_FORMS),
                      ("_CANONICAL", {p for p, _ in _CANONICAL}), ("_EXAMPLES", {p for p, _ in _EXAMPLES})):
    check_keys(_table, f"crawlers.targets.{_what}")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BAD_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")


def parse_target(platform: str, text: str, kind: str | None = None) -> Target:
    """The target ``text`` names on ``platform``: a room URL, a profile URL or a bare ID.

    ``kind`` (``room`` or ``streamer``) accepts that kind only. Raises :class:`TargetError` for
    anything else; nothing is ever fetched here.
    """
    if platform not in PLATFORM_HOSTS:
        raise TargetError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    if kind is not None and (platform, kind) not in _IDS:
        raise TargetError(f"{platform} takes no {kind} IDs")
    what = kind or "room or profile"
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise TargetError(f"empty {platform} target: give {_accepted(platform, kind)}")
    if len(raw) > 2048 or _BAD_CHARS.search(raw):
        raise TargetError(f"refused {platform} target {raw[:80]!r}: it contains spaces, control characters "
                          "or backslashes")
    scheme = _SCHEME.match(raw)
    if scheme and not raw.lower().startswith(("http://", "https://")) and not _host_port(raw):
        raise TargetError(f"refused {platform} target {raw[:80]!r}: only http(s) page URLs of {platform} are "
                          f"accepted, not {scheme.group(1).lower()}: URLs ({_accepted(platform, kind)})")
    if scheme or raw.startswith("//") or "/" in raw or "." in raw or ":" in raw:
        url = raw if scheme and raw.lower().startswith(("http://", "https://")) else "https://" + raw.lstrip("/")
        return _from_url(platform, kind, what, url, raw)
    return _from_id(platform, kind, raw)


def _accepted(platform: str, kind: str | None) -> str:
    """The shapes accepted for ``kind`` (every kind when None), for messages."""
    kinds = [kind] if kind else [k for p, k in _IDS if p == platform]
    ids = [f"{k}: {_IDS[(platform, k)][1]}" for k in kinds]
    urls = [u for k in kinds for u in _EXAMPLES[(platform, k)]]
    return "accepted: " + "; ".join([*urls, *ids])


def _host_port(raw: str) -> bool:
    """``host:port/...`` without a scheme (``localhost:6379``) looks like a scheme to the regex."""
    return bool(re.match(r"^[A-Za-z0-9.-]+:[0-9]+(?:/|$)", raw))


def _target(platform: str, kind: str, value: str) -> Target:
    return Target(platform, kind, value, _CANONICAL[(platform, kind)].format(value))


def _from_id(platform: str, kind: str | None, raw: str) -> Target:
    kinds = (kind,) if kind else _BARE_KINDS[platform]
    for each in kinds:
        if _IDS[(platform, each)][0].fullmatch(raw):
            return _target(platform, each, raw)
    shapes = "; ".join(f"{each}: {_IDS[(platform, each)][1]}" for each in kinds)
    raise TargetError(f"refused {platform} ID {raw[:80]!r}: not of the shape {platform} uses ({shapes}), nor a "
                      f"{platform} {kind or 'room or profile'} URL")


def _from_url(platform: str, kind: str | None, what: str, url: str, raw: str) -> Target:
    shown = f"refused {platform} URL {raw[:80]!r}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"{shown}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise TargetError(f"{shown}: only http(s) page URLs are accepted")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise TargetError(f"{shown}: user info before the host (user@host) is not part of any {platform} URL")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetError(f"{shown}: no host")
    if _is_ip(host) or host == "localhost" or host.endswith(".localhost"):
        raise TargetError(f"{shown}: {host} is a local or IP address, not a {platform} host")
    if port not in (None, 80, 443):
        raise TargetError(f"{shown}: port {port} is not a {platform} web port")
    if host in SHORT_HOSTS[platform]:
        raise TargetError(f"refused {platform} short link {raw[:80]!r}: short links redirect and are not "
                          f"fetched to find out where; open it and give the {what} URL it lands on "
                          f"({_accepted(platform, kind)})")
    if host not in PLATFORM_HOSTS[platform]:
        raise TargetError(f"{shown}: {host} is not a {platform} host ({_accepted(platform, kind)})")
    path = parts.path.rstrip("/") or "/"
    query = parse_qs(parts.query)
    for form_kind, path_re, param in _URL_FORMS[platform].get(host, ()):
        match = path_re.fullmatch(path)
        if not match:
            continue
        if kind and form_kind != kind:
            raise TargetError(f"{raw[:80]!r} is a {platform} {form_kind} URL; list it under {form_kind}s")
        value = match.group(1) if match.groups() else (query.get(param or "", [""])[0])
        pattern, described = _IDS[(platform, form_kind)]
        if pattern.fullmatch(value or ""):
            return _target(platform, form_kind, value)
        raise TargetError(f"{shown}: {value!r} is not a {platform} {form_kind} ID ({described})")
    raise TargetError(f"{shown}: not a {platform} {what} page ({_accepted(platform, kind)})")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # Forms inet_aton takes that ip_address does not: 2130706433, 0x7f.1, 127.1.
        return bool(re.fullmatch(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}", host))
    return True
