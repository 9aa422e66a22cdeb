"""One Redis connection pool per process, and where the Redis URL comes from.

Every component of a worker (scheduler, dupefilter, seeds, stats) asks
:func:`get_redis` for a client; clients for the same URL share one pool.
Connection errors are retried with exponential backoff inside redis-py, so a
Redis restart is ridden out instead of killing the worker.
"""

from __future__ import annotations

import re
import threading

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings

from settings.defaults import value

#: ``scheme://[user][:password]@`` - the credentials part of a URL (the last ``@`` before the path ends it).
_CREDENTIALS = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<auth>[^/?#]*)@")

#: ``password=...`` in a query string (redis-py and pymongo take credentials there too).
_SECRET_PARAM = re.compile(r"([?&;](?:password|pass|pwd)=)[^&;#]*", re.IGNORECASE)

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def redact(url: object) -> str:
    """``url`` with its password replaced by ``***``, for anything printed, logged or stored.

    The embedded Redis's URL carries livefleet's credentials
    (``redis://livefleet:<password>@127.0.0.1:<port>/0``), and so may a REDIS_URL or
    MONGO_URI: every place that shows a URL to a person or writes it where others read it
    (logs, ``livefleet status``, heartbeats, stats) passes it through here. Works on any
    text without raising: no URL, no credentials -> unchanged; a user without password is
    kept only when a ``:`` separates it from a password; ``password=`` query parameters are
    hidden too; a malformed URL with an ``@`` loses everything between ``://`` and that ``@``.
    """
    text = url.decode(errors="replace") if isinstance(url, bytes | bytearray) else str(url)
    text = _SECRET_PARAM.sub(r"\g<1>***", text)
    match = _CREDENTIALS.match(text)
    if match is None:
        return text
    user, colon, _password = match.group("auth").partition(":")
    # Without a ":" the one field may be a password (``redis://secret@host``): hide it too.
    auth = f"{user}:***" if colon and "@" not in user else "***"
    return f"{match.group('head')}{auth}@{text[match.end():]}"


def get_redis(url: str) -> redis.Redis:
    """Return the process-wide client for ``url`` (created on first use)."""
    with _lock:
        client = _clients.get(url)
        if client is None:
            pool = redis.ConnectionPool.from_url(
                url,
                decode_responses=False,
                health_check_interval=30,
                socket_connect_timeout=5,
                socket_timeout=30,
                retry=Retry(ExponentialBackoff(cap=5.0, base=0.1), retries=8),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
            )
            client = redis.Redis(connection_pool=pool)
            _clients[url] = client
        return client


def close_all() -> None:
    """Disconnect every pool (end of process, or tests)."""
    with _lock:
        for client in _clients.values():
            client.close()
            client.connection_pool.disconnect()
        _clients.clear()


def redis_url_from_settings(settings: BaseSettings) -> str:
    """The Redis URL of the fleet (``LIVEFLEET_REDIS_URL``); ``NotConfigured`` when it is unset.

    A component gets its server's address, it never starts one: ``livefleet worker``
    ensures the embedded servers and passes their URLs, and a plain ``scrapy crawl``
    gets them from the services add-on (``crawlers/services/addon.py``), which also
    turns a ``REDIS_URL`` setting (``-s REDIS_URL=...``, a Scrapyd job's) into this one
    before any component is built. Nothing here reads ``REDIS_URL``: one place decides.
    """
    url = value(settings, "LIVEFLEET_REDIS_URL")
    if not url:
        raise NotConfigured("LIVEFLEET_REDIS_URL is not set (run `livefleet worker`, set REDIS_URL in the "
                            "environment or as a setting, or enable LIVEFLEET_EMBEDDED_SERVICES for the embedded "
                            "servers)")
    return str(url)
