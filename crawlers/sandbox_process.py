"""Start the sandbox as a child process and learn its address.

Used by ``livefleet demo``, the benchmarks and the tests. The sandbox binds
port 0 itself and prints ``sandbox listening on http://127.0.0.1:PORT``; we
wait for that line (no port picked then rebound, no sleeps).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

_READY = "sandbox listening on "


class SandboxProcess:
    """A running sandbox server (``python -m crawlers.sandbox``)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: IO[bytes] | None) -> None:
        self.proc = proc
        self.url = url
        self._log = log

    @classmethod
    def start(cls, args: Sequence[str] = (), *, log_path: Path | None = None, timeout: float = 60) -> Self:
        log = log_path.open("ab") if log_path else None
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawlers.sandbox", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=log if log else subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            text = line.decode("utf-8", "replace").strip()
            if text.startswith(_READY):
                url = text[len(_READY):]
                break
        if url is None:
            proc.kill()
            proc.wait()
            if log:
                log.close()
            raise RuntimeError(f"sandbox did not start (exit {proc.returncode}); see {log_path}")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
        return cls(proc, url, log)

    def control(self, path: str, body: dict[str, Any] | None = None, method: str | None = None) -> Any:
        """Call a ``/__sandbox__/`` control endpoint and return its JSON."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/__sandbox__/{path}", data=data, method=method or ("POST" if data else "GET"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def truth(self, platform: str) -> Any:
        return self.control(f"truth?platform={platform}")

    def served(self, platform: str) -> Any:
        return self.control(f"served?platform={platform}")

    def set_config(self, **config: Any) -> Any:
        return self.control("config", config)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _drain(stream: IO[bytes], log: IO[bytes] | None) -> None:
    for line in iter(stream.readline, b""):
        if log and not log.closed:
            try:
                log.write(line)
            except ValueError:
                return
