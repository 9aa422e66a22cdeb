"""An embedded SecantusDB (MongoDB wire protocol) on 127.0.0.1, for when MONGO_URI is not given.

SecantusDB is GPL-2.0: livefleet only ever runs it as a separate process via
its ``secantusd-py`` command and talks to it over the wire with pymongo. It is
never imported here.

On a first start the server binds a free port itself (``--port 0``) and logs
``secantus listening on 127.0.0.1:N``; that line gives the port. A restart asks
for the same port again and reopens the same storage directory.

``secure=True`` (the default): SCRAM-SHA-256 authentication (``--auth``). SecantusDB
provisions users only over an unauthenticated connection, so the first start of a new
data directory runs once without ``--auth`` (127.0.0.1 only, a few seconds), creates the
user ``livefleet`` (role ``root``) with a generated password (``<data_dir>/mongo.password``,
mode 0600), drops any other user that appeared meanwhile, marks the directory provisioned
(``auth.provisioned``) and restarts with ``--auth`` on the same port. From then on every
start has ``--auth``; the client URL carries the credentials (print it only through
``crawlers.redis.connection.redact``). Limits: during that first provisioning start any
local user could connect without a password; and every local user can still reach the
port (the handshake commands answer without authentication).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from crawlers.services.base import EmbeddedServer
from crawlers.services.processes import LOCALHOST, PortInUseError, ServiceError, ensure_password

log = logging.getLogger(__name__)

COMMAND = "secantusd-py"
_LISTENING = re.compile(r"secantus listening on [0-9.]+:(\d+)")
_IN_USE = "Address already in use"
_STORAGE_BUSY = "Device or resource busy"
#: livefleet's user on a secure embedded SecantusDB.
USER = "livefleet"
PASSWORD_FILE = "mongo.password"
PROVISIONED_FILE = "auth.provisioned"


def find_secantusd(search_path: str | None = None) -> str:
    """Path of ``secantusd-py``: next to ``sys.executable`` (the virtualenv) first, then PATH.

    ``search_path`` replaces PATH for the second lookup (None: the process's PATH).
    """
    beside = Path(sys.executable).parent / COMMAND
    if beside.is_file():
        return str(beside)
    on_path = shutil.which(COMMAND, path=search_path)
    if on_path:
        return on_path
    raise ServiceError(
        f"no {COMMAND} found: not next to the Python interpreter ({beside}) and not on PATH. "
        "Install the embedded extra (pip install 'livefleet[embedded]', which brings SecantusDB) "
        "or set MONGO_URI to a MongoDB server."
    )


class EmbeddedMongo(EmbeddedServer):
    """A ``secantusd-py`` process on 127.0.0.1 with its storage under ``data_dir``.

    Layout: ``data_dir/db`` (WiredTiger home), ``data_dir/secantusd.toml`` (an empty
    config file, passed with ``--config`` so no stray ``secantusd.toml`` from the
    working or home directory is picked up).
    """

    name: ClassVar[str] = "mongo"

    def __init__(
        self,
        data_dir: Path,
        *,
        secure: bool = True,
        binary: str | None = None,
        log_path: Path | None = None,
        detached: bool = False,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        super().__init__(
            data_dir,
            log_path=log_path,
            detached=detached,
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
        )
        self._binary = binary
        self.secure = secure
        self._password: str | None = None

    @property
    def provisioned(self) -> bool:
        """True once livefleet's user exists in this data directory (starts use ``--auth`` from then on)."""
        return self.secure and (self.data_dir / PROVISIONED_FILE).exists()

    @property
    def password(self) -> str:
        """livefleet's password on this server (generated on first use)."""
        if self._password is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._password = ensure_password(self.data_dir / PASSWORD_FILE)
        return self._password

    def start(self, *, preferred_port: int | None = None) -> str:
        """Start the server (see :meth:`EmbeddedServer.start`); a secure one is provisioned first if new."""
        if self.secure and not self.provisioned and not self.running():
            super().start(preferred_port=preferred_port)
            try:
                self._provision()
            finally:
                self.stop()
        return super().start(preferred_port=preferred_port)

    def _provision(self) -> None:
        """Create livefleet's user on the unauthenticated first start; drop any other; mark the directory."""
        client: MongoClient[dict[str, object]] = MongoClient(self.url, serverSelectionTimeoutMS=10_000)
        try:
            client.admin.command("createUser", USER, pwd=self.password, roles=["root"])
            users = list(client.admin["system.users"].find({}, {"user": 1, "db": 1}))  # every db's users
            for user in users:
                if (user.get("user"), user.get("db")) != (USER, "admin"):
                    log.warning("dropping user %r of db %r, created by someone else while SecantusDB was "
                                "being provisioned", user.get("user"), user.get("db"))
                    client[str(user.get("db"))].command("dropUser", user.get("user"))
        finally:
            client.close()
        (self.data_dir / PROVISIONED_FILE).write_text(f"user {USER}\n", encoding="utf-8")

    @classmethod
    def adopt(cls, url: str, pid: int, data_dir: Path, **kwargs: object) -> EmbeddedMongo:
        """The running server of a record: its password is the one in ``url``."""
        server = super().adopt(url, pid, data_dir, **kwargs)
        password = urlsplit(url).password
        if password:
            server._password = unquote(password)
        return server

    @property
    def binary(self) -> str:
        """The secantusd-py executable (looked up on first use)."""
        if self._binary is None:
            self._binary = find_secantusd()
        return self._binary

    @property
    def storage_path(self) -> Path:
        """The WiredTiger home directory."""
        return self.data_dir / "db"

    @property
    def config_path(self) -> Path:
        """The (empty) config file that disables config auto-discovery."""
        return self.data_dir / "secantusd.toml"

    def _prepare(self) -> None:
        super()._prepare()
        os.chmod(self.data_dir, 0o700)  # the data and the password are nobody else's
        self.storage_path.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.config_path.write_text("# livefleet: settings are passed as flags\n", encoding="utf-8")

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            "--config", str(self.config_path),
            "--host", LOCALHOST,
            "--port", str(port),
            "--storage-path", str(self.storage_path),
            "--log-level", "INFO",
        ] + (["--auth"] if self.provisioned else [])  # fmt: skip

    def _first_port(self) -> int:
        return 0  # the server binds a free port itself and logs it

    def _ready_port(self, output: str, port: int) -> int | None:
        if _IN_USE in output:
            raise PortInUseError(f"port {port} in use")
        if _STORAGE_BUSY in output:
            raise ServiceError(
                f"storage {self.storage_path} is held by another SecantusDB process (stop it first, e.g. `make stop`)"
            )
        match = _LISTENING.search(output)
        return int(match.group(1)) if match else None

    def make_url(self, port: int) -> str:
        if self.provisioned:
            return f"mongodb://{USER}:{self.password}@{LOCALHOST}:{port}/?directConnection=true"
        return f"mongodb://{LOCALHOST}:{port}/?directConnection=true"

    @classmethod
    def ping(cls, url: str, timeout: float = 2.0) -> bool:
        millis = max(int(timeout * 1000), 100)
        client: MongoClient[dict[str, object]] = MongoClient(
            url,
            serverSelectionTimeoutMS=millis,
            connectTimeoutMS=millis,
            socketTimeoutMS=millis,
            appname="livefleet-probe",
        )
        try:
            reply = client.admin.command("hello")
            return bool(reply.get("ok"))
        except PyMongoError:
            return False
        finally:
            client.close()

    def _identity_markers(self, port: int | None) -> tuple[str, ...]:
        return (COMMAND, str(self.storage_path))
