"""Which URLs livefleet may POST to: webhooks reach public addresses only, unless the operator says so.

A webhook URL comes from whoever holds an API token or writes a campaign
file; without this check the fleet would POST wherever it points: its own
Redis on 127.0.0.1:6379, the cloud metadata service on 169.254.169.254, the
office network. So a URL is checked twice:

* when it is added (:func:`check_url`): its syntax, its host name, and the
  addresses the name resolves to (a name that does not resolve yet is
  accepted: it is checked again before every delivery);
* before every delivery (:func:`resolve_checked`): the name is resolved once,
  every address it resolves to is checked, and the connection is made to one
  of those checked addresses (``crawlers.feeds.delivery``), with the name as
  Host header and TLS server name, so a name that resolves to a public address
  for the check and to 127.0.0.1 a moment later (DNS rebinding) gets nowhere.

Refused, each with its reason in :class:`UrlRefused`: a scheme other than http
and https, control characters, spaces, non-ASCII and backslashes, userinfo
(``user:pass@``), a missing host or bad port, an IPv4 address spelled other
than as four decimal numbers (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
``127.1``), scoped IPv6 addresses, the names of metadata services and of the
machine itself (``localhost``, ``metadata.google.internal``, ...), and every
address that is not public: loopback, private, link-local, multicast,
reserved, unspecified, shared (100.64/10), also when embedded in an IPv6
address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo).

The operator's allow-list (``LIVEFLEET_WEBHOOK_ALLOW``, e.g.
``127.0.0.1:8765,hooks.internal,10.1.0.0/16``: hosts, ``host:port``,
``[v6]:port``, IP addresses or CIDR networks) lets named internal receivers
through; nothing else does.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolver(host, port)`` -> the addresses to connect to (``socket.getaddrinfo`` by default).
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2048
#: Names of cloud metadata services and of the machine itself, refused whatever they resolve to.
METADATA_NAMES = frozenset({
    "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "metadata", "metadata.google.internal",
    "metadata.goog", "instance-data", "instance-data.ec2.internal", "metadata.azure.internal",
    "metadata.tencentyun.com", "metadata.platformequinix.com", "kubernetes.default", "kubernetes.default.svc",
})
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_COMPAT = ipaddress.IPv6Network("::/96")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class UrlRefused(ValueError):
    """A URL livefleet will not POST to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``), and the name it is sent for."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions: names, networks, each for any port or one."""

    names: frozenset[tuple[str, int | None]] = frozenset()
    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None], ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> AllowList:
        names: set[tuple[str, int | None]] = set()
        networks = []
        for entry in (e.strip() for e in (raw or "").split(",")):
            if not entry:
                continue
            host, port = _split_entry(entry)
            try:
                networks.append((ipaddress.ip_network(host, strict=False), port))
            except ValueError:
                if not re.fullmatch(r"[a-z0-9.-]+", host):
                    raise ValueError(f"LIVEFLEET_WEBHOOK_ALLOW: not a host, host:port or CIDR: {entry!r}") from None
                names.add((host.rstrip("."), port))
        return cls(frozenset(names), tuple(networks))

    @classmethod
    def of(cls, allow: AllowList | str | None) -> AllowList:
        """``allow`` as an AllowList; None: the deployment's (``LIVEFLEET_WEBHOOK_ALLOW``)."""
        if isinstance(allow, AllowList):
            return allow
        if allow is None:
            from settings.config import Config

            allow = Config.from_env().webhook_allow
        return cls.parse(allow)

    def names_host(self, host: str, port: int) -> bool:
        return (host, None) in self.names or (host, port) in self.names

    def holds(self, address: IPAddress, port: int) -> bool:
        return any(address in net and p in (None, port) for net, p in self.networks if net.version == address.version)


def _split_entry(entry: str) -> tuple[str, int | None]:
    entry = entry.lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry, None


def address_problem(address: IPAddress) -> str | None:
    """Why a webhook may not go to ``address``, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in _COMPAT and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address))
        if embedded is not None and (problem := address_problem(embedded)):
            return f"{problem}, inside the IPv6 address {address}"
    for attribute, name in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                            ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                            ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(address, attribute):
            return f"{name} address {address}"
    if not address.is_global:
        return f"not a public address: {address}"
    return None


def check_syntax(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a well-formed http(s) URL; UrlRefused otherwise. No DNS."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("a webhook URL must be http:// or https:// with a host, got an empty one")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"a webhook URL is at most {MAX_URL_LENGTH} characters, got {len(url)}")
    bad = next((c for c in url if ord(c) <= 0x20 or ord(c) >= 0x7F or c == "\\"), None)
    if bad is not None:
        kind = ("a space" if bad == " " else "a backslash" if bad == "\\" else
                "a control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "a non-ASCII character")
        raise UrlRefused(f"a webhook URL may not contain {kind} ({bad!r}; percent-encode it, punycode a host), "
                         f"got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"a webhook URL must be http:// or https:// with a host, got {url!r}")
    if "@" in parts.netloc:
        raise UrlRefused(f"a webhook URL may not carry userinfo (user:password@), got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise UrlRefused(f"a webhook URL's port must be a number from 1 to 65535, got {url!r}") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif port == 0:
        raise UrlRefused(f"a webhook URL's port must be a number from 1 to 65535, got {url!r}")
    host = parts.hostname.rstrip(".")
    if "%" in host:
        raise UrlRefused(f"a webhook URL may not name a scoped IPv6 address, got {url!r}")
    if ":" not in host and _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise UrlRefused(f"an IPv4 address must be written as four decimal numbers (not as an integer, octal, "
                             f"hex or short form), got {parts.hostname!r}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port, path


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_addresses(url: str, host: str, port: int, addresses: Iterable[str], allow: AllowList) -> None:
    if allow.names_host(host, port):
        return
    for raw in addresses:
        address = ipaddress.ip_address(raw.split("%", 1)[0])
        problem = address_problem(address)
        if problem and not allow.holds(address, port):
            shown = "" if raw == host else f" ({host} resolves to {raw})"
            raise UrlRefused(f"a webhook may not go to a {problem}{shown}: {url!r} (an operator can allow it "
                             "with LIVEFLEET_WEBHOOK_ALLOW)")


def _check_name(url: str, host: str, port: int, allow: AllowList) -> None:
    if allow.names_host(host, port):
        return
    if host in METADATA_NAMES or host.endswith(".localhost"):
        raise UrlRefused(f"a webhook may not go to {host!r}, a name of this machine or of a metadata service: "
                         f"{url!r} (an operator can allow it with LIVEFLEET_WEBHOOK_ALLOW)")


def getaddrinfo_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, allow: AllowList | str | None = None, *, resolver: Resolver | None = None) -> str:
    """``url`` if livefleet may POST to it now (the check when a webhook is added); UrlRefused otherwise.

    A name that does not resolve is accepted here: every delivery resolves and checks it again."""
    try:
        resolve_checked(url, allow, resolver=resolver)
    except UrlRefused:
        raise
    except OSError:  # not resolvable now
        pass
    return url


def resolve_checked(url: str, allow: AllowList | str | None = None, *,
                    resolver: Resolver | None = None) -> Target:
    """The URL resolved once and checked (the check before a delivery): connect to ``addresses`` only.

    UrlRefused when the URL or any address its host resolves to is refused;
    OSError (``socket.gaierror``) when the name does not resolve."""
    allowed = AllowList.of(allow)
    scheme, host, port, path = check_syntax(url)
    _check_name(url, host, port, allowed)
    literal = _literal(host)
    addresses = [str(literal)] if literal is not None else (resolver or getaddrinfo_resolver)(host, port)
    if not addresses:
        raise socket.gaierror(f"{host} resolves to no address")
    _check_addresses(url, host, port, addresses, allowed)
    return Target(scheme, host, port, path, tuple(addresses))
