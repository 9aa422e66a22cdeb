"""Egress identities: the ways out to a platform, and where the list of them comes from.

An *identity* is what a platform sees as one client address: the machine's own
("direct"), or one proxy. Platforms rate-limit and block per address, so the
fleet's politeness, its sessions and its health bookkeeping are all kept per
identity (``crawlers/download/egress.py``).

Proxies come from three places, merged and de-duplicated:

* ``LIVEFLEET_PROXIES``: a list in the settings (``LIVEFLEET_PROXIES`` in the
  environment, comma- or newline-separated);
* ``LIVEFLEET_PROXY_FILE``: a file, one proxy URL per line, ``#`` comments; read
  again when it changes;
* ``LIVEFLEET_PROXY_PROVIDER_URL``: a provider's list, fetched again every
  ``LIVEFLEET_PROXY_REFRESH_SECONDS``: plain text (one URL or ``host:port`` per
  line) or JSON (a list of strings or of objects with ``url``, or
  ``{"proxies": [...]}``/``{"data": [...]}``). A fetch that fails keeps the last
  good list (and says so once).

The direct identity is used when no proxy is configured (``LIVEFLEET_EGRESS_DIRECT``
``auto``), always (``always``: the machine's address is one more identity) or
never (``never``: with no proxy there is no way out, and requests wait).

Proxy URLs may carry credentials (``http://user:pass@host:port``). An identity's
id and label never do: the id is a digest of scheme, host and port (stable across
workers and restarts, so the fleet shares one rate and one health record per
proxy), the label is ``scheme://host:port``. The URL with its credentials is kept
only in memory, for the downloader. SOCKS proxies are refused with a clear
error: Scrapy's HTTP downloader speaks HTTP proxies (plain and CONNECT) only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

DIRECT = "direct"
DIRECT_MODES = ("auto", "always", "never")
_SCHEMES = ("http", "https")
#: Largest provider answer read (a list of many thousands of proxies fits).
_PROVIDER_MAX_BYTES = 4 * 1024 * 1024


class ProxyError(ValueError):
    """A proxy URL livefleet cannot use (the message never contains its credentials)."""


@dataclass(frozen=True)
class Identity:
    """One way out: ``proxy`` None is the machine's own address."""

    id: str
    label: str
    proxy: str | None = field(default=None, repr=False)  # with credentials: never logged, never stored
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def direct(self) -> bool:
        return self.proxy is None

    def proxy_without_credentials(self) -> str | None:
        """``scheme://host:port`` (what the browser's ``proxy.server`` takes), or None for direct."""
        return None if self.proxy is None else self.label

    def __str__(self) -> str:
        return f"{self.id} ({self.label})"


DIRECT_IDENTITY = Identity(DIRECT, DIRECT)


def parse_proxy(text: str) -> Identity:
    """The identity of one proxy URL (``http://[user:pass@]host:port``; a bare ``host:port`` is http).

    Raises :class:`ProxyError` with a message that shows the proxy without its credentials."""
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ProxyError(f"not a proxy URL: {_shown(raw)!r}") from None
    scheme = parts.scheme.lower()
    shown = f"{scheme}://{parts.hostname or ''}" + (f":{port}" if port else "")
    if scheme.startswith("socks"):
        raise ProxyError(f"{shown}: SOCKS proxies are not supported (Scrapy's downloader speaks HTTP proxies, "
                         "plain and CONNECT); put an HTTP proxy in front of it")
    if scheme not in _SCHEMES:
        raise ProxyError(f"{shown}: unsupported proxy scheme {scheme!r} (http or https)")
    if not parts.hostname or port is None:
        raise ProxyError(f"{shown}: a proxy needs a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyError(f"{shown}: a proxy URL has no path, query or fragment")
    host = parts.hostname
    label = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    digest = hashlib.sha256(label.encode()).hexdigest()[:10]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return Identity(f"px-{digest}", label, raw, username, password)


def _shown(raw: str) -> str:
    """``raw`` with anything between ``://`` and ``@`` hidden."""
    head, sep, rest = raw.partition("://")
    if sep and "@" in rest:
        return f"{head}://***@{rest.rsplit('@', 1)[1]}"
    return raw.rsplit("@", 1)[-1]


def _provider_shown(url: str) -> str:
    """A provider's URL as logged: scheme, host, port and path; no credentials, no query (API keys live there)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "") + parts.path
    except ValueError:
        return "the proxy provider"


def parse_list(text: str) -> list[str]:
    """Proxy URLs in a file's or a provider's answer: JSON (see the module's docstring) or one per line."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise ProxyError("the proxy list looks like JSON but does not parse") from None
        if isinstance(data, dict):
            data = next((data[k] for k in ("proxies", "data", "list") if isinstance(data.get(k), list)), None)
            if data is None:
                raise ProxyError("a JSON proxy list must be a list, or an object with 'proxies' or 'data'")
        found = []
        for entry in data:
            if isinstance(entry, str):
                found.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("url") or entry.get("proxy"), str):
                found.append(entry.get("url") or entry["proxy"])
            elif isinstance(entry, dict) and entry.get("ip") and entry.get("port"):
                found.append(f"{entry['ip']}:{entry['port']}")
        return found
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def identities_of(urls: Iterable[str], *, where: str) -> list[Identity]:
    """Identities of ``urls`` in order, duplicates dropped; a bad one is skipped with a warning naming ``where``."""
    found: dict[str, Identity] = {}
    for url in urls:
        try:
            identity = parse_proxy(url)
        except ProxyError as exc:
            logger.warning("Proxy skipped (%s): %s", where, exc)
            continue
        found.setdefault(identity.id, identity)
    return list(found.values())


def _fetch_provider(url: str, timeout: float) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as answer:
        return answer.read(_PROVIDER_MAX_BYTES).decode("utf-8", "replace")


class IdentitySource:
    """The current identities, from settings, a file and a provider, re-read as they change.

    ``current()`` is cheap and thread-safe (a tuple replaced whole); ``refresh()`` re-reads the
    file (if changed) and the provider (if due). A proxy that disappears from the list is
    dropped from ``current()``: requests already sent through it finish, new ones go elsewhere.
    """

    def __init__(self, proxies: Sequence[str] = (), *, proxy_file: str = "", provider_url: str = "",
                 refresh_seconds: float = 60.0, direct: str = "auto",
                 fetch: Callable[[str, float], str] = _fetch_provider,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if direct not in DIRECT_MODES:
            raise ValueError(f"LIVEFLEET_EGRESS_DIRECT must be one of {DIRECT_MODES}, got {direct!r}")
        bad = []
        for url in proxies:
            try:
                parse_proxy(url)
            except ProxyError as exc:
                bad.append(str(exc))
        if bad:  # the operator's own list: refuse it aloud rather than run with part of it
            raise ProxyError("LIVEFLEET_PROXIES: " + "; ".join(bad))
        self._static = identities_of(proxies, where="LIVEFLEET_PROXIES")
        self.proxy_file = proxy_file
        self.provider_url = provider_url
        self.refresh_seconds = max(1.0, refresh_seconds)
        self.direct = direct
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._file: list[Identity] = []
        self._file_mtime: float | None = None
        self._provider: list[Identity] = []
        self._provider_due = 0.0
        self._provider_failed = False
        self._current: tuple[Identity, ...] = ()
        self.refresh(force=True)

    def current(self) -> tuple[Identity, ...]:
        return self._current

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read what changed; True if the identities changed."""
        with self._lock:
            self._read_file(force)
            self._read_provider(force)
            merged: dict[str, Identity] = {}
            for identity in (*self._static, *self._file, *self._provider):
                merged.setdefault(identity.id, identity)
            proxies = list(merged.values())
            if self.direct == "always" or (self.direct == "auto" and not proxies):
                proxies.insert(0, DIRECT_IDENTITY)
            new = tuple(proxies)
            changed = [i.id for i in new] != [i.id for i in self._current]
            if changed and self._current:
                gone = {i.id for i in self._current} - {i.id for i in new}
                added = {i.id for i in new} - {i.id for i in self._current}
                logger.info("Egress identities: %d (%d added, %d drained)", len(new), len(added), len(gone))
            self._current = new
            return changed

    def _read_file(self, force: bool) -> None:
        if not self.proxy_file:
            return
        try:
            mtime = os.stat(self.proxy_file).st_mtime
        except OSError as exc:
            if force or self._file_mtime is not None:
                logger.warning("Proxy file %s unreadable (%s): keeping its last list", self.proxy_file,
                               exc.strerror or exc)
                self._file_mtime = None
            return
        if not force and mtime == self._file_mtime:
            return
        try:
            with open(self.proxy_file, encoding="utf-8") as handle:
                text = handle.read(_PROVIDER_MAX_BYTES)
            self._file = identities_of(parse_list(text), where=self.proxy_file)
        except (OSError, ProxyError) as exc:
            logger.warning("Proxy file %s not read (%s): keeping its last list", self.proxy_file, exc)
        self._file_mtime = mtime

    def _read_provider(self, force: bool) -> None:
        if not self.provider_url or (not force and self._clock() < self._provider_due):
            return
        self._provider_due = self._clock() + self.refresh_seconds
        where = _provider_shown(self.provider_url)
        try:
            found = identities_of(parse_list(self._fetch(self.provider_url, 10.0)), where=where)
        except (OSError, ProxyError, ValueError) as exc:
            if not self._provider_failed:
                logger.warning("Proxy provider %s failed (%s): keeping its last list", where, exc)
            self._provider_failed = True
            return
        if self._provider_failed:
            logger.info("Proxy provider %s answers again", where)
        self._provider_failed = False
        self._provider = found
