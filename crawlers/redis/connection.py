"""One Redis connection pool per process, and where the Redis URL comes from.

Every component of a worker (scheduler, dupefilter, seeds, stats) asks
:func:`get_redis` for a client; clients for the same URL share one pool.
Connection errors are retried with exponential backoff inside redis-py, so a
Redis restart is ridden out instead of killing the worker.
"""

from __future__ import annotations

import threading

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings

from settings.defaults import value

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


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
    gets them from the services add-on (``crawlers/services/addon.py``).
    """
    url = value(settings, "LIVEFLEET_REDIS_URL")
    if not url:
        raise NotConfigured("LIVEFLEET_REDIS_URL is not set (run `livefleet worker`, set REDIS_URL, or enable "
                            "LIVEFLEET_EMBEDDED_SERVICES for the embedded servers)")
    return str(url)
