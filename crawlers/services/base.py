"""Shared machinery of the embedded servers: launching, readiness, shutdown.

An embedded server is a separate process (``redis-server`` or ``secantusd-py``)
that writes its output to a log file. Readiness is decided by reading that log
(the server's own "ready" line) and then asking the server (PING / ``hello``);
every wait is a bounded poll loop with a deadline, never a fixed sleep.

A server is started either *attached* (a child of this process, in its own
process group so a terminal Ctrl-C reaches the owner first and the owner stops
it in order) or *detached* (double-forked into a new session through a tiny
launcher, so it outlives the starting process and never becomes its zombie).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from crawlers.redis.connection import redact
from crawlers.services.processes import (
    LOCALHOST,
    POLL_SECONDS,
    LogTail,
    PortInUseError,
    PortReservation,
    ServiceError,
    continue_process,
    port_from_url,
    process_cmdline,
    spawn_detached,
    terminate_pid,
    wait_for_exit,
)
from pipelines.store.spool import pid_alive

log = logging.getLogger(__name__)

class EmbeddedServer(ABC):
    """One embedded server process with start / stop / restart on a stable port.

    Subclasses say how to build the command line, how to recognise readiness
    in the log, and how to ask the server whether it answers.
    """

    #: Short name used in logs, log files and registry records ("redis", "mongo").
    name: ClassVar[str]
    #: How many times a start is retried after losing its port.
    port_attempts: ClassVar[int] = 8

    def __init__(
        self,
        data_dir: Path,
        *,
        log_path: Path | None = None,
        detached: bool = False,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.log_path = Path(log_path).absolute() if log_path is not None else self.data_dir / f"{self.name}.log"
        self.detached = detached
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        #: Seconds the last successful start took (launch to answering), None before.
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._port: int | None = None
        self._reservation: PortReservation | None = None

    # ----------------------------------------------------------- subclass hooks

    @abstractmethod
    def _command(self, port: int) -> list[str]:
        """The server's argv for listening on ``port`` (0: let the server choose)."""

    @abstractmethod
    def _first_port(self) -> int:
        """The port to try on a first start (0 lets the server choose one itself).

        A server that needs a port chosen for it takes one with :meth:`_reserve_port`, so
        no other process is handed it before the server listens."""

    def _reserve_port(self) -> int:
        """A free port, held (:class:`PortReservation`) until the start that uses it ends."""
        self._drop_reservation()
        self._reservation = PortReservation(LOCALHOST)
        return self._reservation.port

    def _drop_reservation(self) -> None:
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None

    @abstractmethod
    def _ready_port(self, output: str, port: int) -> int | None:
        """The listening port once ``output`` shows readiness, else None.

        Raises :class:`PortInUseError` when the output shows a bind failure.
        """

    @abstractmethod
    def make_url(self, port: int) -> str:
        """The client URL of this server on ``port``."""

    @classmethod
    @abstractmethod
    def ping(cls, url: str, timeout: float = 2.0) -> bool:
        """True if a server at ``url`` answers (never raises)."""

    @abstractmethod
    def _identity_markers(self, port: int | None) -> tuple[str, ...]:
        """Substrings the server's command line must contain to be recognised as ours."""

    # ----------------------------------------------------------- properties

    @property
    def port(self) -> int | None:
        """The TCP port, kept after stop() so a restart comes back on it."""
        return self._port

    @property
    def url(self) -> str:
        """The client URL (valid from the first successful start on)."""
        if self._port is None:
            raise ServiceError(f"embedded {self.name} was never started")
        return self.make_url(self._port)

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        return self._pid if self.running() else None

    def running(self) -> bool:
        """True if the server process exists (it may not answer yet)."""
        if self._proc is not None:
            return self._proc.poll() is None
        if self._pid is None or not pid_alive(self._pid):
            return False
        return self.owns_pid(self._pid)

    def alive(self) -> bool:
        """True if the server process runs AND answers."""
        return self.running() and self._port is not None and self.ping(self.url, timeout=2.0)

    def owns_pid(self, pid: int) -> bool:
        """True if ``pid``'s command line looks like this server (guards against pid reuse)."""
        cmdline = process_cmdline(pid)
        if cmdline is None:
            return True  # cannot tell (no /proc): trust the record
        for marker in self._identity_markers(self._port):
            if marker.startswith("re:"):
                if re.search(marker[3:], cmdline) is None:
                    return False
            elif marker not in cmdline:
                return False
        return True

    @classmethod
    def adopt(cls, url: str, pid: int, data_dir: Path, **kwargs: object) -> Self:
        """An instance controlling an already running (detached) server, e.g. from a record."""
        server = cls(Path(data_dir), detached=True, **kwargs)  # type: ignore[arg-type]
        server._pid = int(pid)
        server._port = port_from_url(url)
        return server

    # ----------------------------------------------------------- lifecycle

    def start(self, *, preferred_port: int | None = None) -> str:
        """Start the server (no-op if it runs) and return its URL once it answers.

        After a first start the server always comes back on the same port. On a
        first start ``preferred_port`` is tried first (e.g. the port of a dead
        predecessor, so clients holding its URL reconnect); if it is taken, a
        free port is used instead.
        """
        if self.running():
            return self.url
        self._prepare()
        started = time.monotonic()
        deadline = started + self.startup_timeout
        fixed_port = self._port  # a restart must come back on the same port
        attempt = 0
        while True:
            attempt += 1
            if fixed_port is not None:
                port = fixed_port
            elif preferred_port:
                port, preferred_port = preferred_port, None
            else:
                port = self._first_port()
            try:
                self._launch_and_wait(port, deadline)
                break
            except PortInUseError:
                if attempt >= self.port_attempts or time.monotonic() >= deadline:
                    raise ServiceError(
                        f"embedded {self.name} could not bind a port after {attempt} attempts"
                        + (f" (port {fixed_port} is held by another process)" if fixed_port else "")
                    ) from None
                if fixed_port is not None:
                    log.warning("port %d of embedded %s is taken; retrying it", fixed_port, self.name)
                    time.sleep(min(0.25 * attempt, 1.0))  # only the holder can free it
                else:
                    log.info("port %d was taken before embedded %s bound it; trying another", port, self.name)
            finally:
                self._drop_reservation()  # the server listens on it now (or the start failed)
        self.startup_seconds = time.monotonic() - started
        log.info(
            "embedded %s ready at %s (pid %s, %s) in %.3fs; log %s",
            self.name,
            redact(self.url),
            self._pid,
            "detached" if self.detached else "attached",
            self.startup_seconds,
            self.log_path,
        )
        return self.url

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent."""
        timeout = self.stop_timeout if timeout is None else timeout
        proc, pid = self._proc, self._pid
        if proc is not None:
            if proc.poll() is None:
                log.info("stopping embedded %s (pid %d)", self.name, proc.pid)
                proc.terminate()
                continue_process(proc.pid)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "embedded %s (pid %d) ignored SIGTERM for %.1fs; killing",
                        self.name,
                        proc.pid,
                        timeout,
                    )
                    proc.kill()
                    proc.wait(10.0)
        elif pid is not None and pid_alive(pid):
            if self.owns_pid(pid):
                log.info("stopping embedded %s (pid %d)", self.name, pid)
                terminate_pid(pid, timeout)
            else:
                log.warning("pid %d is no longer embedded %s; not signalling it", pid, self.name)
        self._proc = None
        self._pid = None

    def restart(self) -> str:
        """Stop and start again on the same port with the same data directory."""
        if self._port is None:
            raise ServiceError(f"embedded {self.name} was never started; nothing to restart")
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} port={self._port} pid={self._pid} data_dir={str(self.data_dir)!r}>"

    # ----------------------------------------------------------- internals

    def _prepare(self) -> None:
        """Hook run before each start: create the data and log directories."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _launch_and_wait(self, port: int, deadline: float) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = self._command(port)
        log.debug("launching embedded %s: %s", self.name, argv)
        if self.detached:
            self._pid = spawn_detached(argv, cwd=self.data_dir, log_path=self.log_path)
        else:
            with self.log_path.open("ab") as out:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    process_group=0,
                    close_fds=True,
                )
            self._pid = self._proc.pid
        tail = LogTail(self.log_path, offset)
        try:
            while True:
                ready = self._ready_port(tail.read(), port)
                if ready is not None and self.ping(self.make_url(ready), timeout=1.0):
                    self._port = ready
                    return
                if not self._process_exists():
                    self._ready_port(tail.read(), port)  # raises PortInUseError on a bind failure
                    raise ServiceError(
                        f"embedded {self.name} exited during start-up; last lines of {self.log_path}:\n"
                        f"{tail.last_lines()}"
                    )
                if time.monotonic() >= deadline:
                    raise ServiceError(
                        f"embedded {self.name} not ready after {self.startup_timeout:.0f}s; "
                        f"last lines of {self.log_path}:\n{tail.last_lines()}"
                    )
                time.sleep(POLL_SECONDS)
        except BaseException:
            self._discard()
            raise

    def _process_exists(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return pid_alive(self._pid)

    def _discard(self) -> None:
        """Kill a process whose start failed (or was interrupted) and forget it."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(10.0)
        elif self._pid is not None and pid_alive(self._pid):
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for_exit(self._pid, 10.0)
        self._proc = None
        self._pid = None
