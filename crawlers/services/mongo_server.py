"""An embedded SecantusDB (MongoDB wire protocol) on 127.0.0.1, for when MONGO_URI is not given.

SecantusDB is GPL-2.0: livefleet only ever runs it as a separate process via
its ``secantusd-py`` command and talks to it over the wire with pymongo. It is
never imported here.

On a first start the server binds a free port itself (``--port 0``) and logs
``secantus listening on 127.0.0.1:N``; that line gives the port. A restart asks
for the same port again and reopens the same storage directory.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from pathlib import Path
from typing import ClassVar

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from crawlers.services.base import LOCALHOST, EmbeddedServer, PortInUseError, ServiceError

log = logging.getLogger(__name__)

COMMAND = "secantusd-py"
_LISTENING = re.compile(r"secantus listening on [0-9.]+:(\d+)")
_IN_USE = "Address already in use"
_STORAGE_BUSY = "Device or resource busy"


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
        ]  # fmt: skip

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
