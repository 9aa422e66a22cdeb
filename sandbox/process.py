"""Start the sandbox as a child process, learn its address, and talk to it.

Used by ``livefleet demo``, the benchmarks and the tests. The sandbox binds
port 0 itself and prints ``sandbox listening on http://127.0.0.1:PORT``; we
wait for that line (no port picked then rebound, no sleeps).
"""


from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
READY = "sandbox listening on "
#: The session sandbox's arguments: frozen time and no chaos, so ground truth is stable.
SESSION_ARGS = ("--time-scale", "0", "--no-chaos")

# Loopback only: never let an environment proxy see sandbox traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def terminate(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a child, wait up to ``timeout`` seconds, then SIGKILL it; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers (lower-cased names) and raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    set_cookies: tuple[str, ...] = ()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class SandboxProcess:
    """A running sandbox: its URL, HTTP helpers and control-endpoint shortcuts."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, stderr: IO[bytes]) -> None:
        self.proc = proc
        self.url = url
        self._stderr = stderr

    # -- plain HTTP --------------------------------------------------------------------------
    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        """Send a request to ``url + path`` (JSON ``body`` if given); HTTP errors are returned, not raised."""
        url = (
            self.url
            + path
            + (("&" if "?" in path else "?") + urlencode(params, doseq=True) if params else "")
        )
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        if cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return Reply(
                    resp.status,
                    {k.lower(): v for k, v in resp.headers.items()},
                    resp.read(),
                    tuple(resp.headers.get_all("Set-Cookie") or ()),
                )
        except urllib.error.HTTPError as err:
            try:
                return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())
            finally:
                err.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        """``request`` with GET."""
        return self.request(path, **kwargs)

    # -- control endpoints ---------------------------------------------------------------------
    def control(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """Call ``/__sandbox__/<path>`` and return its JSON; raises on a non-2xx answer."""
        reply = self.request(
            f"/__sandbox__/{path}", method=method or ("POST" if body is not None else "GET"), body=body
        )
        if not 200 <= reply.status < 300:
            raise RuntimeError(f"sandbox control {path}: HTTP {reply.status}: {reply.body[:300]!r}")
        return reply.json()

    def truth(self, platform: str = "bilibili") -> Any:
        """``GET /__sandbox__/truth``: the world as of now, in the platform's own field names."""
        return self.control(f"truth?platform={platform}")

    def served(self, platform: str = "bilibili", room_id: Any = None) -> Any:
        """``GET /__sandbox__/served``: every live value served (optionally of one room)."""
        extra = f"&room_id={room_id}" if room_id is not None else ""
        return self.control(f"served?platform={platform}{extra}")

    def clear_served(self, platform: str = "bilibili") -> Any:
        """``DELETE /__sandbox__/served``."""
        return self.control(f"served?platform={platform}", method="DELETE")

    def config(self) -> Any:
        """``GET /__sandbox__/config``: chaos settings in force."""
        return self.control("config")

    def set_config(self, **settings: Any) -> Any:
        """``POST /__sandbox__/config``: change chaos settings; returns them all."""
        return self.control("config", settings)

    def clock(self, **changes: Any) -> Any:
        """``GET``/``POST /__sandbox__/clock`` (``time_scale``, ``advance_seconds``)."""
        return self.control("clock", changes) if changes else self.control("clock")

    def stats(self) -> Any:
        """``GET /__sandbox__/stats``."""
        return self.control("stats")

    def address_stats(self) -> dict[str, dict[str, Any]]:
        """Per client address: ``requests``, ``limited``, ``ok``, ``first``/``last`` (sandbox monotonic
        seconds of the first/last request no rate limit refused, None before one)."""
        addresses: dict[str, dict[str, Any]] = self.stats()["addresses"]
        return addresses

    def reset_stats(self) -> Any:
        """``POST /__sandbox__/stats/reset``: zero every counter of ``stats()``."""
        return self.control("stats/reset", method="POST")

    # -- lifecycle ---------------------------------------------------------------------------
    def stderr_text(self) -> str:
        """What the server wrote to stderr so far (for failure messages)."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, wait, and return the exit code (the server exits 0 on SIGTERM)."""
        terminate(self.proc, timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(*args: str, timeout: float = 60, log_path: Path | None = None) -> SandboxProcess:
    """Start the sandbox with extra command-line ``args`` and wait for its address line.

    Its stderr (the access and error log) goes to ``log_path``, or to a temporary file.
    """
    stderr = log_path.open("w+b") if log_path else tempfile.TemporaryFile()
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            if selector.select(deadline - time.monotonic()):
                chunk = proc.stdout.readline()
                if not chunk:
                    break  # the process exited before printing its address
                line += chunk
    text = line.decode("utf-8", "replace").strip()
    if not text.startswith(READY):
        sandbox = SandboxProcess(proc, "", stderr)
        detail = sandbox.stderr_text()
        sandbox.stop()
        raise RuntimeError(f"sandbox did not start (args {args}): stdout {text!r}; stderr:\n{detail[-3000:]}")
    return SandboxProcess(proc, text[len(READY) :], stderr)


