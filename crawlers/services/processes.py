"""The process and file machinery under the embedded servers: pids, ports, detached launches,
log tails, private files. Nothing here knows Redis or MongoDB (``base.py`` does).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from crawlers.redis.connection import redact
from pipelines.store.spool import pid_alive

log = logging.getLogger(__name__)

#: The only address embedded servers listen on.
LOCALHOST = "127.0.0.1"

#: Poll interval of every readiness / exit wait.
POLL_SECONDS = 0.02


class ServiceError(RuntimeError):
    """An embedded server could not be found, started or stopped."""


class PortInUseError(ServiceError):
    """The server could not bind its port (another process holds it)."""


# --------------------------------------------------------------------------- processes


def process_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` joined by spaces, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone or ``timeout`` seconds pass; True if it is gone."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def terminate_pid(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` seconds, then SIGKILL it.

    For processes that are not children of this one (detached servers).
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    continue_process(pid)  # a stopped (SIGSTOP) process acts on SIGTERM only once continued
    if wait_for_exit(pid, timeout):
        return
    log.warning("pid %d did not exit %.1fs after SIGTERM; sending SIGKILL", pid, timeout)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_for_exit(pid, 10.0):
        raise ServiceError(f"pid {pid} survived SIGKILL")


def continue_process(pid: int) -> None:
    """SIGCONT ``pid`` so a stopped process can act on a pending SIGTERM."""
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def free_port(host: str = LOCALHOST) -> int:
    """A port that was free a moment ago: a *candidate* only, callers must handle losing it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortReservation:
    """A free port held for a server that cannot bind port 0 itself (``redis-server``).

    Picking a free port, closing it and letting the server bind it later is a race:
    any process binding port 0 in between may be handed the same port. So the port
    stays bound here, with ``SO_REUSEADDR`` and never listening, until the server
    listens on it: Linux then refuses it to every other ``bind`` (port 0 or not) that
    does not itself set ``SO_REUSEADDR``, while the server (which sets it, as servers
    do) binds and listens. A process that does set it can still take the port first;
    the server then reports the address in use and the start tries another port.
    """

    def __init__(self, host: str = LOCALHOST) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port = int(self._sock.getsockname()[1])

    def close(self) -> None:
        self._sock.close()


def port_from_url(url: str) -> int:
    """The TCP port of a ``redis://`` or ``mongodb://`` URL on 127.0.0.1."""
    match = re.search(r"://(?:[^@/]*@)?[^:/]+:(\d+)", url)
    if match is None:
        raise ValueError(f"no port in URL {redact(url)!r}")
    return int(match.group(1))


#: Run by ``python -c`` to double-fork a server into its own session. argv[1] is a JSON
#: object {"argv", "cwd", "log"}; prints the server's pid and exits at once.
_LAUNCHER = """
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab") as out:
    proc = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            cwd=spec["cwd"], start_new_session=True, close_fds=True)
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


def spawn_detached(argv: list[str], *, cwd: Path, log_path: Path) -> int:
    """Start ``argv`` in a new session, reparented away from this process; return its pid."""
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _LAUNCHER,
            json.dumps({"argv": argv, "cwd": str(cwd), "log": str(log_path)}),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise ServiceError(
            f"could not launch {argv[0]} detached (exit {result.returncode}): "
            f"{result.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return int(result.stdout)


class LogTail:
    """Reads what a log file gained since a given offset."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.text = ""

    def read(self) -> str:
        """Return all text written since the start offset (accumulated)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return self.text
        self.offset += len(chunk)
        self.text += chunk.decode("utf-8", errors="replace")
        return self.text

    def last_lines(self, count: int = 15) -> str:
        """The last ``count`` lines read so far, for error messages."""
        return "\n".join(self.read().splitlines()[-count:])


# --------------------------------------------------------------------------- secrets


def write_private(path: Path, text: str, *, exclusive: bool) -> bool:
    """Write ``text`` to ``path`` with mode 0600, atomically: a temporary file, then a link or rename.

    ``exclusive``: keep an existing ``path`` (returns False; another process made it first).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def ensure_password(path: Path) -> str:
    """The password kept in ``path``: read, or generated once (mode 0600, atomically: racing starters agree)."""
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n", exclusive=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # someone loosened it: a password others can read is no password
    password = path.read_text(encoding="utf-8").strip()
    if not password:
        raise ServiceError(f"{path} is empty; remove it to generate a new password")
    return password


# --------------------------------------------------------------------------- servers
