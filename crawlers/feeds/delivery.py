"""One webhook delivery: signed, sent to the address that was checked, bounded in time, retried.

:func:`post` resolves the URL once (``crawlers.feeds.urlcheck.resolve_checked``:
refused addresses never get a connection) and connects to that checked
address, sending the URL's name as Host header and TLS server name (the
certificate is verified against the name), so DNS cannot send the request
elsewhere between the check and the connection. It never follows a redirect
(http.client does not): a 3xx is a final answer, the body goes nowhere else.
Every attempt is bounded: ``connect_timeout`` for the TCP connection and
``timeout`` for the whole exchange, enforced by a watchdog that shuts the
socket down, so a receiver that accepts and never answers, or drips its
answer a byte at a time, costs at most ``timeout``. At most ``MAX_ANSWER``
bytes of the answer are read.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crawlers.feeds.urlcheck import AllowList, Resolver, UrlRefused, resolve_checked

SIGNATURE_HEADER = "X-Livefleet-Signature"
TIMESTAMP_HEADER = "X-Livefleet-Timestamp"
DELIVERY_HEADER = "X-Livefleet-Delivery"
#: Bytes of a receiver's answer read at most (the status is all that counts).
MAX_ANSWER = 64 * 1024
_RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


# -- signing ---------------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body), DELIVERY_HEADER: uuid.uuid4().hex}


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str], *, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """What a receiver checks: the signature matches the raw body and timestamp, and the timestamp is recent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# -- sending ---------------------------------------------------------------------------------------------------


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to one checked address, for the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, total: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address, self.total = address, total

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.settimeout(self.total)  # connected: the exchange may take up to the total bound


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to one checked address; SNI and the certificate check use the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, total: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address, self.total = address, total

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.settimeout(self.total)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float, *,
         allow: AllowList | str | None = None, connect_timeout: float | None = None,
         resolver: Resolver | None = None, cancel: threading.Event | None = None) -> int:
    """POST to the checked address and return the HTTP status (any status).

    Raises UrlRefused (the URL or an address it resolves to is refused), or
    OSError when there is no complete answer within ``timeout`` seconds (or
    ``cancel`` is set)."""
    return exchange(url, body, headers, timeout, allow=allow, connect_timeout=connect_timeout, resolver=resolver,
                    cancel=cancel)[0]


def exchange(url: str, body: bytes, headers: Mapping[str, str], timeout: float, *,
             allow: AllowList | str | None = None, connect_timeout: float | None = None,
             resolver: Resolver | None = None, cancel: threading.Event | None = None) -> tuple[int, bytes]:
    """:func:`post`, keeping the answer: ``(status, at most MAX_ANSWER bytes of the body)``. Chat robots
    answer HTTP 200 to a refused message and say so in the body."""
    target = resolve_checked(url, allow, resolver=resolver)
    address = target.addresses[0]
    connection_class = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = connection_class(target.host, target.port, address, min(timeout, connect_timeout or timeout), timeout)
    done, expired = threading.Event(), threading.Event()

    def watchdog() -> None:  # the total bound: a socket shut down ends any read or write on it
        deadline = time.monotonic() + timeout
        while not done.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                expired.set()
                sock = conn.sock
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return

    threading.Thread(target=watchdog, name="livefleet-webhook-watchdog", daemon=True).start()
    try:
        conn.request("POST", target.path, body=body, headers=dict(headers))
        response = conn.getresponse()
        answer = response.read(MAX_ANSWER)
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout:g}s")
        return int(response.status), answer
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout:g}s") from None
        if isinstance(exc, OSError):
            raise
        raise OSError(f"a broken answer: {type(exc).__name__}: {exc}") from None
    finally:
        done.set()
        conn.close()


@dataclass(frozen=True)
class Delivery:
    """How one delivery ended; ``refused``: the URL may not be posted to (retrying will not help)."""

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    refused: bool = False


def deliver(url: str, secret: str, body: bytes, *, attempts: int = 5, backoff: float = 0.5,
            max_backoff: float = 30.0, timeout: float = 10.0, connect_timeout: float = 5.0,
            sleep: Callable[[float], object] = time.sleep,
            send: Callable[[str, bytes, Mapping[str, str], float], int] | None = None,
            allow: AllowList | str | None = None, resolver: Resolver | None = None,
            cancel: threading.Event | None = None) -> Delivery:
    """POST ``body`` signed, retrying transient failures with exponential backoff. Never raises."""
    if send is None:
        send = functools.partial(post, allow=AllowList.of(allow), connect_timeout=connect_timeout,
                                 resolver=resolver, cancel=cancel)
    delay = backoff
    status: int | None = None
    error = ""
    for attempt in range(1, max(1, attempts) + 1):
        headers = signed_headers(secret, body)  # a fresh timestamp for every attempt
        try:
            status = send(url, body, headers, timeout)
        except UrlRefused as exc:
            return Delivery(False, attempt, None, f"refused: {exc}", refused=True)
        except Exception as exc:  # noqa: BLE001 (refused, unreachable, timed out, a broken answer, a bug: retried)
            status, error = None, f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                return Delivery(True, attempt, status)
            error = f"HTTP {status}"
            if status not in _RETRY_STATUS:
                return Delivery(False, attempt, status, error)
        if attempt < attempts:
            if cancel is not None and cancel.is_set():
                return Delivery(False, attempt, status, error)
            sleep(delay)
            delay = min(delay * 2, max_backoff)
    return Delivery(False, max(1, attempts), status, error)
