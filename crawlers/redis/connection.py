"""One Redis connection pool per process, and where the Redis URL comes from.

Every component of a worker (scheduler, dupefilter, seeds, stats) asks
:func:`get_redis` for a client; clients for the same URL share one pool.
Connection errors are retried with exponential backoff inside redis-py, so a
Redis restart is ridden out instead of killing the worker.
"""

from __future__ import annotations

import threading
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from scrapy.settings import BaseSettings

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
    """The Redis URL a worker uses: the configured one, else the embedded server."""
    url = settings.get("LIVEFLEET_REDIS_URL")
    if url:
        return str(url)
    from crawlers.services.registry import ensure_services

    services = ensure_services(
        Path(settings.get("LIVEFLEET_VAR_DIR") or "var"),
        redis_url=None,
        mongo_uri=settings.get("LIVEFLEET_MONGO_URI") or None,
    )
    return services.redis_url
