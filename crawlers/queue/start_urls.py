"""scrapy-redis start URLs as livefleet seeds: one entry of ``<spider>:start_urls`` in, a seed or a refusal out.

A scrapy-redis spider makes a request of each entry of its start-URL key: a JSON
object ``{"url": ..., "meta": {...}, "method": ..., <form fields>}``, or (deprecated
there, common still) a bare URL. A livefleet spider fetches no arbitrary URL: it
reads a platform's rooms and streamers through the platform's own APIs, starting
from a seed. So an entry is **taken** when its URL is a page of the spider's
platform that names a room or a streamer (:func:`crawlers.targets.parse_target`):
it becomes that target's seed, without ``follow``, so the spider goes as deep as
it does by default. Everything else is **refused** with a reason a person can act
on (:class:`Refusal`); the seed feeder moves refused entries, unchanged, to
``<key>:rejected``.

What scrapy-redis would have put on the request besides the URL (``meta``, a
``method``, form fields) has nowhere to go: livefleet builds its own requests for
a page. A taken entry names those fields in :attr:`StartUrl.unused`, so the
feeder can say they were not used instead of losing them silently.

Pure: no Redis, no spider; :class:`StartUrlsConfig` reads the scrapy-redis
settings that say where the entries are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from crawlers.redis.keys import START_URLS_KEY_TEMPLATE, StartUrlsKeys
from crawlers.targets import PLATFORM_HOSTS, SHORT_HOSTS, Target, TargetError, parse_target

__all__ = ["REFUSALS", "Refusal", "StartUrl", "StartUrlsConfig", "read_entry", "shown"]

#: Why an entry is refused (the stats qualifier ``livefleet/start_urls/rejected/<code>``) -> what it means.
REFUSALS: dict[str, str] = {
    "not_text": "the entry is not UTF-8 text",
    "not_json": "the entry starts like a JSON object but is not valid JSON",
    "no_url": "a JSON object without a \"url\" string, or an empty entry",
    "not_a_url": "not an http(s) URL",
    "other_platform": "a page of another platform",
    "short_link": "a short link (it would have to be fetched to learn where it goes)",
    "not_a_target": "a page of the platform that names no room or streamer the spider knows",
    "no_seed": "the spider refused the seed the page maps to",
}

#: Entries are shown in logs up to this many characters.
SHOWN_CHARS = 200

_HTTP = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class StartUrl:
    """An entry taken: the page it names and the seed the spider gets for it."""

    url: str
    target: Target
    #: The target's seed, in the spider's terms (``{"kind": "room", "room_id": "21452505"}``).
    seed: dict[str, Any]
    #: What scrapy-redis would have put on the request and livefleet cannot (``meta.job-id``,
    #: ``method=POST``, a form field's name), sorted; empty for a bare URL or ``{"url": ...}``.
    unused: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """An entry refused: :data:`REFUSALS`'s ``code`` and a reason naming what would have been accepted."""

    code: str
    reason: str

    def __post_init__(self) -> None:
        if self.code not in REFUSALS:
            raise ValueError(f"unknown refusal code {self.code!r} (known: {', '.join(REFUSALS)})")


def read_entry(platform: str, entry: bytes | str) -> StartUrl | Refusal:
    """What one start-URL entry of ``platform``'s spider is: a :class:`StartUrl` to take, or a :class:`Refusal`."""
    if isinstance(entry, bytes):
        try:
            text = entry.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Refusal("not_text", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    else:
        text = entry
    text = text.strip()
    if not text:
        return Refusal("no_url", "an empty entry")
    unused: tuple[str, ...] = ()
    if text.startswith("{"):  # scrapy-redis's test too: a JSON object is the request's fields, else a bare URL
        try:
            fields = json.loads(text)
        except ValueError as exc:
            return Refusal("not_json", f"starts like a JSON object but is not JSON ({exc})")
        if not isinstance(fields, dict):  # "{" starting a JSON value can only be an object; kept for type checkers
            return Refusal("not_json", "not a JSON object")
        url = fields.get("url")
        if not isinstance(url, str) or not url.strip():
            got = "no \"url\"" if url is None else f"\"url\" {url!r}"
            return Refusal("no_url", f"a JSON object with {got}: scrapy-redis's entry is {{\"url\": \"https://...\"}}")
        url = url.strip()
        unused = _unused(fields)
    else:
        url = text
    return _page(platform, url, unused)


def _unused(fields: dict[str, Any]) -> tuple[str, ...]:
    """The fields of a scrapy-redis entry that would have changed its request, none of which livefleet can apply."""
    names: list[str] = []
    meta = fields.get("meta")
    if isinstance(meta, dict):
        names += [f"meta.{key}" for key in meta]
    elif meta is not None:
        names.append("meta")
    method = fields.get("method")
    if method is not None and str(method).upper() != "GET":
        names.append(f"method={str(method)[:20]}")
    names += [name for name in fields if name not in ("url", "meta", "method")]  # scrapy-redis's form data
    return tuple(sorted(names))


def _page(platform: str, url: str, unused: tuple[str, ...]) -> StartUrl | Refusal:
    if not _HTTP.match(url):
        return Refusal("not_a_url", f"{url[:80]!r} is not an http(s) URL: a start URL is a page's full address "
                                    f"(`livefleet crawl {platform} --room ID` takes bare IDs)")
    host = _host(url)
    owner = _platform_of(host)
    if owner is not None and owner != platform:
        return Refusal("other_platform", f"a {owner} URL, not a {platform} one: push it to the {owner} spider's "
                                         "start URLs")
    if host in SHORT_HOSTS.get(platform, ()):
        return Refusal("short_link", f"a {platform} short link: it is not fetched to find out where it goes; "
                                     "push the room or profile URL it lands on")
    try:
        target = parse_target(platform, url)
    except TargetError as exc:
        return Refusal("not_a_target", str(exc))
    # No "follow": the spider's own default, as for a `livefleet crawl --room`.
    seed = {key: value for key, value in target.seed(()).items() if key != "follow"}
    return StartUrl(url=url, target=target, seed=seed, unused=unused)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:  # a malformed authority: parse_target says why
        return ""


def _platform_of(host: str) -> str | None:
    """The platform whose pages or short links live on ``host``, if any."""
    for platform in PLATFORM_HOSTS:
        if host in PLATFORM_HOSTS[platform] or host in SHORT_HOSTS[platform]:
            return platform
    return None


def shown(entry: bytes | str) -> str:
    """``entry`` as a log shows it: its repr, cut to :data:`SHOWN_CHARS` characters."""
    text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else entry
    cut = text[:SHOWN_CHARS]
    return repr(cut) + (f"... ({len(text)} characters)" if len(text) > SHOWN_CHARS else "")


@dataclass(frozen=True)
class StartUrlsConfig:
    """Where a spider's start URLs are, from scrapy-redis's own settings (read as plain Scrapy settings).

    ``REDIS_START_URLS_KEY`` (a template; ``%(name)s`` is the spider's name) and
    ``REDIS_START_URLS_AS_SET`` / ``REDIS_START_URLS_AS_ZSET`` (the key is a set, popped
    at random, or a sorted set, highest score first; a list, popped from the left, when
    neither). As in scrapy-redis, ``AS_SET`` wins when both are on, and a spider's
    ``redis_key`` attribute (``-a redis_key=...``) wins over the setting.
    """

    template: str = START_URLS_KEY_TEMPLATE
    kind: Literal["list", "set", "zset"] = "list"

    def __post_init__(self) -> None:
        self.keys("spider")  # a template that cannot make a key fails at start, not at the first poll

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        template = settings.get("REDIS_START_URLS_KEY") or START_URLS_KEY_TEMPLATE
        kind: Literal["list", "set", "zset"] = "list"
        if settings.getbool("REDIS_START_URLS_AS_SET"):
            kind = "set"
        elif settings.getbool("REDIS_START_URLS_AS_ZSET"):
            kind = "zset"
        return cls(template=str(template), kind=kind)

    def keys(self, spider: str, redis_key: str | None = None) -> StartUrlsKeys:
        """The start-URL keys of ``spider`` (its ``redis_key`` attribute first); ValueError for a bad template."""
        template = redis_key or self.template
        try:
            keys = StartUrlsKeys.of(spider, template)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"REDIS_START_URLS_KEY {template!r} is not a key template with %(name)s: {exc}") from None
        if not keys.key.strip():
            raise ValueError(f"REDIS_START_URLS_KEY {template!r} makes an empty key")
        return keys
