"""One embedded Redis and one embedded MongoDB shared by every livefleet command.

When REDIS_URL / MONGO_URI are unset, several commands (workers, ``crawl``,
``status``) run at once and must use the SAME embedded servers. Each running
embedded server is recorded in ``<var_dir>/run/<name>.json``::

    {"url": "...", "pid": 1234, "data_dir": "...", "log": "...", "started_at": 1.7e9}

:func:`ensure_services` reuses a recorded server when its pid is alive and it
answers, and otherwise starts a new *detached* one (its own session; it outlives
the command that started it) and records it; a replacement for a dead server
first tries the dead one's port, so commands still holding its URL reconnect.
The check-and-start runs under an exclusive ``fcntl.flock`` on
``<var_dir>/run/services.lock``, so two commands starting at the same moment
end up with one server. :func:`stop_services`
(``make stop``) stops every recorded server.

:func:`owned_services` is for one-shot commands (the demo): fresh servers that
belong to the ``with`` block and are stopped when it exits, however it exits.

Layout under ``var_dir``: ``data/<name>/`` (server data), ``log/<name>.log``
(server output), ``run/<name>.json`` and ``run/services.lock``.

The embedded Redis is persistent and password-protected by default
(``crawlers/services/redis_server.py``): a kill -9 and the next ``ensure_services``
bring the fleet's state back. Its record holds the URL with the password, so records
are written mode 0600; everything logged about a server goes through ``redact``.

Nothing here reads the environment: callers pass the URLs (None = embedded).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from crawlers.redis.connection import redact
from crawlers.services.base import EmbeddedServer
from crawlers.services.mongo_server import EmbeddedMongo
from crawlers.services.processes import ServiceError
from crawlers.services.redis_server import EmbeddedRedis

log = logging.getLogger(__name__)

#: Service names, in start order (stopped in reverse).
SERVICE_NAMES: tuple[str, ...] = ("redis", "mongo")
LOCK_NAME = "services.lock"


@dataclass(frozen=True)
class Services:
    """The URLs to use, and which embedded servers this call started."""

    redis_url: str
    mongo_uri: str
    #: Names ("redis", "mongo") of embedded servers started by this call (not reused ones).
    started: tuple[str, ...] = ()


def run_dir(var_dir: Path) -> Path:
    """Where the service records and the lock file live."""
    return Path(var_dir).absolute() / "run"


def record_path(var_dir: Path, name: str) -> Path:
    """The record file of embedded service ``name``."""
    return run_dir(var_dir) / f"{name}.json"


def read_record(var_dir: Path, name: str) -> dict[str, object] | None:
    """The record of embedded service ``name``, or None (missing or unreadable)."""
    path = record_path(var_dir, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable service record %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not {"url", "pid", "data_dir"} <= data.keys():
        log.warning("ignoring malformed service record %s", path)
        return None
    return data


def _write_record(var_dir: Path, name: str, server: EmbeddedServer) -> None:
    path = record_path(var_dir, name)
    record: dict[str, object] = {
        "url": server.url,
        "pid": server.pid,
        "data_dir": str(server.data_dir),
        "log": str(server.log_path),
        "started_at": time.time(),
    }
    if isinstance(server, EmbeddedRedis):
        record["persistent"] = server.persistent
    if isinstance(server, EmbeddedRedis | EmbeddedMongo):
        record["secure"] = server.secure
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the URL carries the Redis password
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _server_class(name: str) -> type[EmbeddedRedis] | type[EmbeddedMongo]:
    if name == "redis":
        return EmbeddedRedis
    if name == "mongo":
        return EmbeddedMongo
    raise ValueError(f"unknown embedded service {name!r}")


def _adopt(name: str, record: dict[str, object]) -> EmbeddedServer:
    pid = record["pid"]
    if not isinstance(pid, int):
        raise ValueError(f"bad pid {pid!r}")
    url, data_dir = str(record["url"]), Path(str(record["data_dir"]))
    log_path = Path(str(record["log"])) if record.get("log") else None
    if _server_class(name) is EmbeddedRedis:
        persistent = bool(record.get("persistent", False))
        secure = bool(record.get("secure", False))  # records from before passwords: a server without one
        return EmbeddedRedis.adopt(url, pid, data_dir, persistent=persistent, secure=secure, log_path=log_path)
    secure = bool(record.get("secure", False))
    return EmbeddedMongo.adopt(url, pid, data_dir, secure=secure, log_path=log_path)


@contextmanager
def _services_lock(var_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the exclusive flock on ``run/services.lock`` (polling, bounded by ``timeout``)."""
    directory = run_dir(var_dir)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ServiceError(
                        f"could not lock {directory / LOCK_NAME} within {timeout:.0f}s "
                        "(another livefleet command is starting services)"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _reusable(var_dir: Path, name: str) -> EmbeddedServer | int | None:
    """The recorded server if it runs and answers.

    Otherwise stop what is left of it, remove its record and return the port it
    had (so its replacement can try to come back on it), or None without a record.
    """
    record = read_record(var_dir, name)
    if record is None:
        return None
    try:
        server = _adopt(name, record)
    except ValueError as exc:
        log.warning("ignoring bad %s record: %s", name, exc)
        record_path(var_dir, name).unlink(missing_ok=True)
        return None
    if server.alive():
        log.info("reusing embedded %s at %s (pid %s)", name, redact(server.url), record["pid"])
        return server
    if server.running():
        # The process is there but does not answer: stop it, or its data directory stays locked.
        log.warning("recorded embedded %s (pid %s) does not answer; stopping it", name, record["pid"])
        server.stop()
    else:
        log.info("recorded embedded %s (pid %s) is gone; starting a new one", name, record["pid"])
    record_path(var_dir, name).unlink(missing_ok=True)
    return server.port


def _new_server(name: str, *, data_dir: Path, log_path: Path, persistent_redis: bool, detached: bool) -> EmbeddedServer:
    if _server_class(name) is EmbeddedRedis:
        return EmbeddedRedis(data_dir, persistent=persistent_redis, log_path=log_path, detached=detached)
    return EmbeddedMongo(data_dir, log_path=log_path, detached=detached)


def ensure_services(
    var_dir: Path,
    *,
    redis_url: str | None,
    mongo_uri: str | None,
    persistent_redis: bool = True,
    lock_timeout: float = 120.0,
) -> Services:
    """Return the Redis and MongoDB URLs to use, starting shared embedded servers as needed.

    A given (non-empty) URL is used as it is and nothing is started for it. For a
    missing one, the embedded server recorded under ``var_dir/run`` is reused if it
    is alive and answers; otherwise a new detached one is started and recorded.
    A newly started Redis keeps an append-only file (``persistent_redis``, on by default: a
    Redis killed mid-crawl comes back with the fleet's state) and has a password.
    """
    if redis_url and mongo_uri:
        return Services(redis_url=redis_url, mongo_uri=mongo_uri, started=())
    var_dir = Path(var_dir).absolute()
    given = {"redis": redis_url or None, "mongo": mongo_uri or None}
    urls: dict[str, str] = {}
    started: list[str] = []
    with _services_lock(var_dir, lock_timeout):
        for name in SERVICE_NAMES:
            url = given[name]
            if url is not None:
                urls[name] = url
                continue
            found = _reusable(var_dir, name)
            if isinstance(found, EmbeddedServer):
                server = found
            else:
                server = _new_server(
                    name,
                    data_dir=var_dir / "data" / name,
                    log_path=var_dir / "log" / f"{name}.log",
                    persistent_redis=persistent_redis,
                    detached=True,
                )
                server.start(preferred_port=found)
                try:
                    _write_record(var_dir, name, server)
                except BaseException:
                    server.stop()
                    raise
                started.append(name)
                log.info(
                    "started shared embedded %s at %s (pid %s) in %.2fs",
                    name,
                    redact(server.url),
                    server.pid,
                    server.startup_seconds or 0.0,
                )
            urls[name] = server.url
    return Services(redis_url=urls["redis"], mongo_uri=urls["mongo"], started=tuple(started))


def restart_service(var_dir: Path, name: str, *, lock_timeout: float = 120.0) -> str:
    """Restart the recorded shared embedded server ``name`` on its port (fault drills).

    Returns its URL (unchanged). Its data survives when it keeps data on disk
    (MongoDB always; Redis unless started with ``persistent_redis=False``).
    Raises :class:`ServiceError` when no such server is recorded.
    """
    var_dir = Path(var_dir).absolute()
    with _services_lock(var_dir, lock_timeout):
        record = read_record(var_dir, name)
        if record is None:
            raise ServiceError(f"no embedded {name} is recorded under {run_dir(var_dir)}")
        try:
            server = _adopt(name, record)
        except ValueError as exc:
            raise ServiceError(f"bad {name} record: {exc}") from None
        url = server.restart()
        _write_record(var_dir, name, server)
        log.info("restarted shared embedded %s at %s (pid %s)", name, redact(url), server.pid)
        return url


def stop_services(var_dir: Path, *, lock_timeout: float = 120.0) -> list[str]:
    """Stop every recorded embedded server under ``var_dir`` and remove the records.

    Returns the names of the servers that were running and have been stopped
    (records of servers that were already gone are just removed).
    """
    var_dir = Path(var_dir).absolute()
    if not run_dir(var_dir).is_dir():
        return []
    stopped: list[str] = []
    with _services_lock(var_dir, lock_timeout):
        for name in reversed(SERVICE_NAMES):
            record = read_record(var_dir, name)
            if record is not None:
                try:
                    server = _adopt(name, record)
                except ValueError as exc:
                    log.warning("ignoring bad %s record: %s", name, exc)
                else:
                    if server.running():
                        server.stop()
                        stopped.append(name)
                        log.info("stopped embedded %s (pid %s)", name, record["pid"])
                    else:
                        log.info("embedded %s (pid %s) was not running", name, record["pid"])
            record_path(var_dir, name).unlink(missing_ok=True)
    return stopped


@contextmanager
def owned_services(
    var_dir: Path,
    *,
    redis_url: str | None = None,
    mongo_uri: str | None = None,
    persistent_redis: bool = True,
    keep_data: bool = False,
) -> Iterator[Services]:
    """Fresh embedded servers owned by the ``with`` block (for one-shot commands).

    Servers are started (attached to this process) for the URLs that are None,
    with their data under ``var_dir/owned/<pid>-<tag>/<name>`` and output in
    ``var_dir/log/owned-<pid>-<tag>-<name>.log``. They are not recorded, so shared
    commands never pick them up. On exit - normal, exception or
    KeyboardInterrupt - every started server is stopped, then the data folder is
    removed unless ``keep_data``.
    """
    var_dir = Path(var_dir).absolute()
    tag = f"{os.getpid()}-{secrets.token_hex(3)}"
    scratch = var_dir / "owned" / tag
    given = {"redis": redis_url or None, "mongo": mongo_uri or None}
    urls: dict[str, str] = {}
    started: list[str] = []
    with ExitStack() as stack:
        if not keep_data and None in given.values():
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)  # runs after the servers stop
        for name in SERVICE_NAMES:
            url = given[name]
            if url is None:
                server = _new_server(
                    name,
                    data_dir=scratch / name,
                    log_path=var_dir / "log" / f"owned-{tag}-{name}.log",
                    persistent_redis=persistent_redis,
                    detached=False,
                )
                url = stack.enter_context(server).url
                started.append(name)
            urls[name] = url
        yield Services(redis_url=urls["redis"], mongo_uri=urls["mongo"], started=tuple(started))
