"""``livefleet worker --processes N``: N worker processes on one machine, kept running.

One Scrapy worker is one process and uses about one core (its reactor and parsing are single-threaded;
``docs/sizing.md``). To use a machine's cores, run several: this supervisor starts N children, each a normal
``livefleet worker`` with the same arguments minus ``--processes`` (:func:`crawlers.cli.worker.worker_command`),
and keeps them running:

- a child that crashes (a non-zero status, or killed by a signal) is started again after a delay that doubles
  with each crash in a row (:class:`Backoff`: 1 s, 2 s, 4 s ... capped at 60 s), so a worker that cannot start
  (its Redis down) does not spin; a child that ran :attr:`Backoff.reset_after` seconds before it crashed
  starts the count over;
- a child that exits with status 0 by itself (its ``--idle-close``, or someone stopped it with SIGTERM) is done
  and not started again; when every child is done the supervisor exits 0;
- SIGTERM or SIGINT stops them all: SIGTERM to each child (a worker then finishes its requests in flight and
  stores what it holds), a wait of :data:`GRACE_SECONDS`, then SIGKILL for those still running. A second
  signal cuts the wait short. The exit status is 0 when every child ended within the grace period.

Each start, exit and restart is one log line naming the child's slot (``worker 2/4``) and pid. The children
share the supervisor's stdout and stderr (journald or ``docker logs`` collect them as one stream).

The embedded Redis and MongoDB (when ``REDIS_URL`` / ``MONGO_URI`` are unset) are ensured once, by the
supervisor, before any child starts: the children then find them recorded and reuse them instead of N
processes queueing on the services lock to start them.

The children are in their own process group, so a Ctrl-C at the terminal reaches only the supervisor, which
stops them once with SIGTERM (Scrapy takes a second signal as "stop now, unclean"). On Linux each child also
asks the kernel for SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``): a supervisor killed with
SIGKILL (the OOM killer) leaves no orphan crawling on, which a restarted supervisor would double.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from settings.config import Config

logger = logging.getLogger(__name__)

#: Seconds the children get to stop after SIGTERM before they are killed. A worker stops in a few seconds
#: (its requests in flight, its last store batch); the deployment's own stop timeout must be longer
#: (``stop_grace_period`` in deploy/docker-compose.yml, ``TimeoutStopSec`` in deploy/systemd).
GRACE_SECONDS = 30.0
#: Seconds between two looks at the children.
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Backoff:
    """How long a crashed child waits before it is started again."""

    #: The delay after a first crash.
    first: float = 1.0
    #: The longest delay, however many crashes in a row.
    cap: float = 60.0
    #: A child that ran this many seconds before it crashed counts as healthy: the delays start over.
    reset_after: float = 60.0

    def delay(self, crashes: int) -> float:
        """The delay after the ``crashes``-th crash in a row (1, 2, ...)."""
        return min(self.cap, self.first * 2 ** max(0, crashes - 1))


@dataclass
class _Slot:
    """One of the N places a child runs in; a restarted child takes its predecessor's slot."""

    number: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    crashes: int = 0  # in a row
    restart_at: float = 0.0
    done: bool = False


def describe(returncode: int) -> str:
    """A child's end in words: ``exited with status 1``, ``killed by SIGKILL``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent dies (Linux), or None."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would signal us
            os._exit(1)

    return preexec


class Supervisor:
    """Runs ``count`` children, ``command(slot)`` each (slot 1..count), until stopped; see the module docstring."""

    def __init__(self, command: Callable[[int], Sequence[str]], count: int, *, grace: float = GRACE_SECONDS,
                 backoff: Backoff | None = None, poll: float = POLL_SECONDS) -> None:
        if count < 1:
            raise ValueError(f"a supervisor runs at least one worker, not {count}")
        self.command, self.count, self.grace, self.poll = command, count, grace, poll
        self.backoff = backoff or Backoff()
        self.slots = [_Slot(number) for number in range(1, count + 1)]
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._preexec = _parent_death_signal()

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Stop the children (a signal handler); called again while they stop, kill them now."""
        if self._stopping.is_set():
            self._hurry.set()
            logger.warning("stop requested again: killing the workers still running")
            return
        name = signal.Signals(signum).name if signum else "a stop request"
        logger.info("%s: stopping %d worker(s)", name, sum(1 for slot in self.slots if slot.proc is not None))
        self._stopping.set()

    def run(self) -> int:
        """Supervise until stopped by a signal (or :meth:`stop`) or until every child is done; the exit status."""
        handlers = {signum: signal.signal(signum, self.stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            logger.info("supervising %d worker processes (restart backoff %.0f-%.0fs, stop grace %.0fs)",
                        self.count, self.backoff.first, self.backoff.cap, self.grace)
            while not self._stopping.is_set():
                now = time.monotonic()
                for slot in self.slots:
                    if slot.done:
                        continue
                    if slot.proc is None:
                        if now >= slot.restart_at:
                            self._start(slot)
                    elif (code := slot.proc.poll()) is not None:
                        self._ended(slot, code)
                if all(slot.done for slot in self.slots):
                    logger.info("every worker finished by itself: exiting")
                    return 0
                self._stopping.wait(self.poll)
            return self._stop_all()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    def _label(self, slot: _Slot) -> str:
        return f"worker {slot.number}/{self.count}"

    def _start(self, slot: _Slot) -> None:
        restart = slot.crashes > 0
        try:
            slot.proc = subprocess.Popen(list(self.command(slot.number)), stdin=subprocess.DEVNULL,
                                         process_group=0, preexec_fn=self._preexec)
        except OSError as exc:  # the interpreter or the var dir gone: count it as a crash, try again later
            slot.crashes += 1
            delay = self.backoff.delay(slot.crashes)
            slot.restart_at = time.monotonic() + delay
            logger.error("%s could not start: %s; trying again in %.0fs", self._label(slot), exc, delay)
            return
        slot.started_at = time.monotonic()
        logger.info("%s %s (pid %d)%s", self._label(slot), "restarted" if restart else "started", slot.proc.pid,
                    f" after {slot.crashes} crash(es) in a row" if restart else "")

    def _ended(self, slot: _Slot, code: int) -> None:
        assert slot.proc is not None
        pid, ran = slot.proc.pid, time.monotonic() - slot.started_at
        slot.proc = None
        if code == 0:
            slot.done = True
            logger.info("%s (pid %d) exited with status 0 after %.1fs: done, not restarted",
                        self._label(slot), pid, ran)
            return
        if ran >= self.backoff.reset_after:
            slot.crashes = 0
        slot.crashes += 1
        delay = self.backoff.delay(slot.crashes)
        slot.restart_at = time.monotonic() + delay
        logger.warning("%s (pid %d) %s after %.1fs; restarting in %.0fs", self._label(slot), pid, describe(code),
                       ran, delay)

    def _stop_all(self) -> int:
        running = [slot for slot in self.slots if slot.proc is not None]
        for slot in running:
            assert slot.proc is not None
            if slot.proc.poll() is None:
                slot.proc.terminate()
        deadline = time.monotonic() + self.grace
        while any(slot.proc.poll() is None for slot in running if slot.proc is not None):
            if time.monotonic() >= deadline or self._hurry.is_set():
                break
            self._hurry.wait(self.poll)
        clean = True
        for slot in running:
            assert slot.proc is not None
            proc, ran = slot.proc, time.monotonic() - slot.started_at
            if proc.poll() is None:
                proc.kill()
                clean = False
                logger.warning("%s (pid %d) still running %.0fs after SIGTERM: killed", self._label(slot), proc.pid,
                               self.grace)
            code = proc.wait()
            logger.info("%s (pid %d) %s after %.1fs", self._label(slot), proc.pid, describe(code), ran)
            slot.proc = None
        logger.info("every worker stopped%s", "" if clean else " (some were killed)")
        return 0 if clean else 1


def processes_for(value: int) -> int:
    """``--processes``'s value: N as given, or 0 for one per core this process may run on."""
    if value < 0:
        raise ValueError(f"--processes takes a number of workers, or 0 for one per core; got {value}")
    if value == 0:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return value


def _stats_file(stats_file: Path | None, slot: int) -> Path | None:
    """Each child's own ``--stats-file``: ``stats.json`` becomes ``stats-1.json``, ``stats-2.json`` ..."""
    if stats_file is None:
        return None
    return stats_file.with_name(f"{stats_file.stem}-{slot}{stats_file.suffix}")


def supervise_workers(config: Config, args: Any, spiders: Sequence[str], overrides: dict[str, str]) -> int:
    """``livefleet worker --processes N``: ensure the servers, then supervise N ``livefleet worker`` children."""
    from crawlers.cli.worker import ensure_worker_services, worker_command

    count = processes_for(args.processes)
    ensure_worker_services(config, overrides)  # once, before N children would race for the services lock
    loudness = ["-v"] * int(getattr(args, "verbose", 0) or 0) + (["-q"] if getattr(args, "quiet_logs", False) else [])

    def command(slot: int) -> list[str]:
        cmd = worker_command(spiders, idle_close=args.idle_close, stats_file=_stats_file(args.stats_file, slot),
                             sessions=args.sessions, watch=args.watch, settings=overrides)
        return [*cmd[:3], *loudness, *cmd[3:]]  # global options go before the command

    return Supervisor(command, count).run()
