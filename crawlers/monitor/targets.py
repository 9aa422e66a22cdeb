"""What a monitor may watch: a platform's room URL, profile URL or bare ID, checked before anything is fetched.

``parse_target(platform, text)`` accepts only what the platform's own public
URLs and IDs look like (PLATFORMS.md) and returns a :class:`Target`; anything
else raises :class:`TargetError` with a message a person can act on. The text
is never fetched to find out what it is: a short link (``v.douyin.com/...``)
would have to be followed to learn where it goes, so it is refused too.

Refused, whatever the platform: schemes other than http(s) (``file:``,
``ftp:``, ``data:``, ``javascript:``), user info in the authority
(``https://live.douyin.com@evil.io/``), IP literals, ``localhost``, ports other
than 80/443, hosts that only end or start like the platform's
(``live.douyin.com.evil.io``), whitespace, control characters and backslashes,
and IDs of the wrong shape.

A target becomes the seed its platform's spider already takes (``room`` or
``streamer``), with ``follow`` limited to the shelf: a monitor watches one
room and its products, not the streamers and rooms around it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["PLATFORM_HOSTS", "Target", "TargetError", "parse_target"]


class TargetError(ValueError):
    """A monitor target that is not one of the platform's room/profile URLs or IDs (never fetched)."""


@dataclass(frozen=True)
class Target:
    """One account or room to watch, in the platform's own terms."""

    platform: str
    #: ``room`` or ``streamer`` (the spider's seed kind).
    kind: str
    #: The platform ID: Douyin web_rid / sec_uid, Kuaishou principalId, Taobao liveId, Bilibili room id / uid.
    id: str
    #: The public page of the target on the platform's real host.
    url: str

    def seed(self) -> dict[str, Any]:
        """The seed the platform's spider takes for this target, following the shelf only."""
        key = _SEED_KEYS[(self.platform, self.kind)]
        return {"kind": self.kind, key: self.id, "follow": list(_FOLLOW[self.platform])}

    def as_dict(self) -> dict[str, str]:
        return {"platform": self.platform, "kind": self.kind, "id": self.id, "url": self.url}


_SEED_KEYS = {("douyin", "room"): "web_rid", ("douyin", "streamer"): "sec_uid",
              ("kuaishou", "room"): "principal_id", ("taobao", "room"): "live_id",
              ("bilibili", "room"): "room_id", ("bilibili", "streamer"): "uid"}
#: What a monitored page may lead to: the room's shelf ("products") where the platform has one.
_FOLLOW = {"douyin": ("products",), "kuaishou": ("rooms",), "taobao": ("products",), "bilibili": ("rooms",)}

# -- ID shapes (PLATFORMS.md 1.1, 2.1, 3.1, 4.1) ------------------------------------------------------
#: Douyin web_rid: the stable room number, up to 16 digits (a 19-digit room_id changes every broadcast).
DOUYIN_WEB_RID = re.compile(r"[1-9][0-9]{5,15}")
#: Douyin sec_uid: base64url starting "MS4wLjABAAAA", 55 or 76 characters in all.
DOUYIN_SEC_UID = re.compile(r"MS4wLjABAAAA(?:[A-Za-z0-9_-]{43}|[A-Za-z0-9_-]{64})")
#: Kuaishou principalId (kwaiId or user eid).
KUAISHOU_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{2,39}")
#: Taobao liveId.
TAOBAO_LIVE_ID = re.compile(r"[1-9][0-9]{5,19}")
#: Bilibili room id (long or short) and uid (mid).
BILIBILI_ID = re.compile(r"[1-9][0-9]{0,15}")

#: The hosts whose URLs each platform's monitor accepts (exact names, no subdomains of them).
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
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BAD_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")


def parse_target(platform: str, text: str) -> Target:
    """The target ``text`` names on ``platform``: a room URL, a profile URL or a bare ID.

    Raises :class:`TargetError` for anything else; nothing is ever fetched here.
    """
    if platform not in PLATFORM_HOSTS:
        raise TargetError(f"unknown platform {platform!r} (known: {', '.join(sorted(PLATFORM_HOSTS))})")
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise TargetError(f"empty {platform} target: give a room URL, a profile URL or an ID")
    if len(raw) > 2048 or _BAD_CHARS.search(raw):
        raise TargetError(f"refused {platform} target {raw[:80]!r}: it contains spaces, control characters "
                          "or backslashes")
    scheme = _SCHEME.match(raw)
    if scheme and not raw.lower().startswith(("http://", "https://")) and not _host_port(raw):
        raise TargetError(f"refused {platform} target {raw[:80]!r}: only http(s) URLs of {platform} are "
                          f"accepted, not {scheme.group(1).lower()}: URLs")
    if scheme or raw.startswith("//") or "/" in raw or "." in raw or ":" in raw:
        url = raw if scheme and raw.lower().startswith(("http://", "https://")) else "https://" + raw.lstrip("/")
        return _from_url(platform, url, raw)
    return _from_id(platform, raw)


def _host_port(raw: str) -> bool:
    """``host:port/...`` without a scheme (``localhost:6379``) looks like a scheme to the regex."""
    return bool(re.match(r"^[A-Za-z0-9.-]+:[0-9]+(?:/|$)", raw))


def _from_id(platform: str, raw: str) -> Target:
    for kind, pattern, _ in _ID_FORMS[platform]:
        if pattern.fullmatch(raw):
            return Target(platform, kind, raw, _CANONICAL[(platform, kind)](raw))
    shapes = "; ".join(f"{kind}: {what}" for kind, _, what in _ID_FORMS[platform])
    raise TargetError(f"refused {platform} ID {raw[:80]!r}: not of the shape {platform} uses ({shapes})")


def _from_url(platform: str, url: str, raw: str) -> Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: only http(s) URLs are accepted")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: user info before the host (user@host) is not "
                          f"part of any {platform} URL")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: no host")
    if _is_ip(host) or host == "localhost" or host.endswith(".localhost"):
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: {host} is a local or IP address, not a "
                          f"{platform} host")
    if port not in (None, 80, 443):
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: port {port} is not a {platform} web port")
    if host in SHORT_HOSTS[platform]:
        raise TargetError(f"refused {platform} short link {raw[:80]!r}: short links redirect and are not "
                          "fetched to find out where; open it and give the room or profile URL it lands on")
    if host not in PLATFORM_HOSTS[platform]:
        known = ", ".join(sorted(PLATFORM_HOSTS[platform]))
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: {host} is not a {platform} host ({known})")
    path = parts.path.rstrip("/") or "/"
    query = parse_qs(parts.query)
    for kind, path_re, param in _URL_FORMS[platform].get(host, ()):
        match = path_re.fullmatch(path)
        if not match:
            continue
        value = match.group(1) if match.groups() else (query.get(param or "", [""])[0])
        if _ID_PATTERN[(platform, kind)].fullmatch(value or ""):
            return Target(platform, kind, value, _CANONICAL[(platform, kind)](value))
        raise TargetError(f"refused {platform} URL {raw[:80]!r}: {value!r} is not a {platform} {kind} ID")
    raise TargetError(f"refused {platform} URL {raw[:80]!r}: not a {platform} room or profile page "
                      f"({'; '.join(_EXAMPLES[platform])})")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # Forms inet_aton takes that ip_address does not: 2130706433, 0x7f.1, 127.1.
        return bool(re.fullmatch(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}", host))
    return True


_ID_PATTERN = {("douyin", "room"): DOUYIN_WEB_RID, ("douyin", "streamer"): DOUYIN_SEC_UID,
               ("kuaishou", "room"): KUAISHOU_PRINCIPAL, ("taobao", "room"): TAOBAO_LIVE_ID,
               ("bilibili", "room"): BILIBILI_ID, ("bilibili", "streamer"): BILIBILI_ID}
#: Bare IDs, tried in order (Bilibili digits are a room id; a uid needs its space URL).
_ID_FORMS: dict[str, list[tuple[str, re.Pattern[str], str]]] = {
    "douyin": [("room", DOUYIN_WEB_RID, "web_rid, 6-16 digits"),
               ("streamer", DOUYIN_SEC_UID, "sec_uid, MS4wLjABAAAA..., 55 or 76 characters")],
    "kuaishou": [("room", KUAISHOU_PRINCIPAL, "principalId, 3-40 letters, digits or _")],
    "taobao": [("room", TAOBAO_LIVE_ID, "liveId, 6-20 digits")],
    "bilibili": [("room", BILIBILI_ID, "room id, digits")],
}
_Form = tuple[str, re.Pattern[str], str | None]
#: host -> (kind, path pattern (group 1 = the ID, else the query parameter names it), query parameter).
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
_CANONICAL: dict[tuple[str, str], Callable[[str], str]] = {
    ("douyin", "room"): lambda i: f"https://live.douyin.com/{i}",
    ("douyin", "streamer"): lambda i: f"https://www.douyin.com/user/{i}",
    ("kuaishou", "room"): lambda i: f"https://live.kuaishou.com/u/{i}",
    ("taobao", "room"): lambda i: f"https://tbzb.taobao.com/live?liveId={i}",
    ("bilibili", "room"): lambda i: f"https://live.bilibili.com/{i}",
    ("bilibili", "streamer"): lambda i: f"https://space.bilibili.com/{i}",
}
_EXAMPLES = {
    "douyin": ["https://live.douyin.com/<web_rid>", "https://www.douyin.com/user/<sec_uid>"],
    "kuaishou": ["https://live.kuaishou.com/u/<principalId>", "https://www.kuaishou.com/profile/<principalId>"],
    "taobao": ["https://tbzb.taobao.com/live?liveId=<liveId>"],
    "bilibili": ["https://live.bilibili.com/<room id>", "https://space.bilibili.com/<uid>"],
}
