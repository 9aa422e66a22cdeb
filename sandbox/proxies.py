"""Real HTTP proxies for tests and benchmarks: Debian's tinyproxy, one process per egress address.

The fleet's "egress identities" send requests through several HTTP proxies, each leaving from
its own source address, and the sandbox judges clients by address as real platforms do. To test
that without the internet, each proxy here is a real ``tinyproxy`` listening on 127.0.0.1 and
connecting out from its own loopback address (``Bind 127.0.0.11`` ...: all of 127.0.0.0/8 is
local on Linux), so the sandbox sees that address as the client. A proxy can require Basic
credentials, and can be SIGKILLed to play a proxy dying mid-crawl.

Only the standard library (and ``sandbox.process``, which uses only it too): benchmarks and tools can use it
without livefleet's imports.
``make install`` installs the binary (Debian's ``tinyproxy-bin``); tinyproxy cannot bind port 0,
so a free port is picked by binding a socket to 127.0.0.1:0 and closing it, and the start is
retried on another port should someone take that one first.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from sandbox.process import terminate

__all__ = ["LISTEN", "ProxyProcess", "ProxyStartError", "start_proxies", "start_proxy", "tinyproxy_binary"]

#: Where every proxy listens (and the only client address it allows).
LISTEN = "127.0.0.1"
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_ATTEMPTS = 5
#: What tinyproxy 1.11 logs once its listening sockets are up ("Starting main loop. Accepting connections.").
_READY_LINE = "Accepting connections"
#: What tinyproxy's configuration grammar accepts for a BasicAuth user or password.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]+")


class ProxyStartError(RuntimeError):
    """tinyproxy is missing, or did not come up (the message holds its output and log tail)."""


def tinyproxy_binary() -> str:
    """The ``tinyproxy`` executable: ``$TINYPROXY``, else on ``PATH``, else Debian's ``/usr/bin/tinyproxy``."""
    found = os.environ.get("TINYPROXY") or shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not os.access(found, os.X_OK):
        raise ProxyStartError(f"tinyproxy not found ({found}): `make install` installs Debian's tinyproxy-bin")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LISTEN, 0))
        port: int = sock.getsockname()[1]
        return port


def _loopback(source: str) -> str:
    try:
        address = ipaddress.ip_address(source)
    except ValueError as exc:
        raise ValueError(f"source must be an IPv4 address, not {source!r}") from exc
    if address not in _LOOPBACK:
        raise ValueError(f"source must be a loopback address (127.0.0.0/8), not {source}")
    return str(address)


def _config(port: int, source: str, auth: tuple[str, str] | None, log: Path) -> str:
    """A tinyproxy 1.11 configuration (see tinyproxy.conf(5)).

    No ``ConnectPort`` line: then CONNECT may reach any port (a single ``ConnectPort 0`` would
    forbid it). No ``User``/``Group``: run as root, tinyproxy warns and stays root; run as anyone
    else, it cannot switch anyway. No ``PidFile``: the caller holds the process. No error or stats
    files: tinyproxy's built-in pages.
    """
    lines = [
        f"Port {port}",
        f"Listen {LISTEN}",
        f"Bind {source}",
        f"Allow {LISTEN}",
        "DisableViaHeader Yes",
        "MaxClients 100",
        "Timeout 30",
        "LogLevel Info",
        f'LogFile "{log}"',
    ]
    if auth is not None:
        if not all(_CREDENTIAL.fullmatch(value) for value in auth):
            raise ValueError(f"tinyproxy takes credentials of [A-Za-z0-9._-] only, not {auth!r}")
        lines.append("BasicAuth {} {}".format(*auth))
    return "\n".join(lines) + "\n"


class ProxyProcess:
    """A running tinyproxy: its URL, egress source address and lifecycle (a context manager)."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        source: str,
        port: int,
        auth: tuple[str, str] | None,
        config_path: Path,
        log_path: Path,
        output: IO[bytes],
    ) -> None:
        self.proc = proc
        self.source = source
        self.port = port
        self.auth = auth
        self.config_path = config_path
        self.log_path = log_path
        self._output = output

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, with ``user:password@`` when the proxy needs them."""
        if self.auth is None:
            return f"http://{LISTEN}:{self.port}"
        user, password = self.auth  # [A-Za-z0-9._-]: nothing to percent-encode
        return f"http://{user}:{password}@{LISTEN}:{self.port}"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: where to connect, without credentials."""
        return f"{LISTEN}:{self.port}"

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (a proxy dying mid-crawl: open connections are cut, new ones refused) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 5) -> int | None:
        """SIGTERM, wait up to ``timeout`` (then SIGKILL); return the exit code."""
        terminate(self.proc, timeout)
        if not self._output.closed:
            self._output.close()
        return self.proc.returncode

    def log_text(self) -> str:
        """tinyproxy's own output and log file so far (for failure messages)."""
        parts = []
        for path in (self._output.name, self.log_path):
            try:
                parts.append(Path(path).read_text("utf-8", "replace"))
            except (OSError, TypeError):
                pass
        return "\n".join(parts)

    def __repr__(self) -> str:
        state = "alive" if self.alive() else f"exited {self.proc.returncode}"
        return f"<ProxyProcess {self.address} via {self.source} auth={self.auth is not None} {state}>"

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _wait_ready(proxy: ProxyProcess, deadline: float) -> bool:
    """True once tinyproxy says it serves and a connection is accepted; False if it exited or time ran out.

    A connection alone proves nothing: had another process taken the port between ``_free_port``
    and tinyproxy's bind, the connection would reach that process while tinyproxy exits ("Could
    not create listening sockets"). tinyproxy logs ``Accepting connections`` (LogLevel Info) only
    once it listens.
    """
    while time.monotonic() < deadline:
        if not proxy.alive():
            return False
        try:
            listening = _READY_LINE in proxy.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            listening = False
        if listening:
            try:
                with socket.create_connection((LISTEN, proxy.port), timeout=0.5):
                    return proxy.alive()
            except OSError:
                pass
        time.sleep(0.02)
    return False


def start_proxy(
    source: str = "127.0.0.1",
    *,
    auth: tuple[str, str] | None = None,
    workdir: Path,
    timeout: float = 10,
) -> ProxyProcess:
    """Start a tinyproxy on a free port of 127.0.0.1 whose outgoing connections leave from ``source``.

    ``auth`` = ``(user, password)`` makes it answer 407 to requests without those Basic credentials.
    Its configuration, log and output go to ``workdir`` (created if needed). Raises
    ``ProxyStartError`` with tinyproxy's output if it does not accept connections within ``timeout``.
    """
    source = _loopback(source)
    binary = tinyproxy_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    failures: list[str] = []
    for _ in range(_ATTEMPTS):
        port = _free_port()
        stem = f"tinyproxy-{source}-{port}"  # not Path.with_suffix: the address has dots
        config_path, log_path = workdir / f"{stem}.conf", workdir / f"{stem}.log"
        config_path.write_text(_config(port, source, auth, log_path))
        output = (workdir / f"{stem}.out").open("w+b")
        proc = subprocess.Popen(
            [binary, "-d", "-c", str(config_path)], stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        proxy = ProxyProcess(
            proc, source=source, port=port, auth=auth, config_path=config_path, log_path=log_path, output=output
        )
        if _wait_ready(proxy, deadline):
            return proxy
        timed_out = proxy.alive()
        proxy.stop(timeout=2)
        failures.append(f"port {port}: {'no answer in time' if timed_out else f'exit {proc.returncode}'}\n"
                        f"{proxy.log_text()[-2000:]}")  # fmt: skip
        if timed_out or time.monotonic() >= deadline:
            break
    raise ProxyStartError(f"tinyproxy via {source} did not start:\n" + "\n".join(failures))


def start_proxies(
    n: int,
    *,
    first_source: str = "127.0.0.11",
    auth: tuple[str, str] | None = None,
    workdir: Path,
    timeout: float = 10,
) -> list[ProxyProcess]:
    """Start ``n`` proxies leaving from ``first_source`` and the next addresses (127.0.0.11, .12, ...).

    All or nothing: if one fails, those already started are stopped and the error raised.
    """
    first = ipaddress.ip_address(_loopback(first_source))
    started: list[ProxyProcess] = []
    try:
        for i in range(n):
            started.append(start_proxy(str(first + i), auth=auth, workdir=workdir, timeout=timeout))
    except BaseException:
        for proxy in started:
            proxy.stop()
        raise
    return started
