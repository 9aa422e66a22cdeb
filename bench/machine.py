"""How busy the machine is apart from the bench: benchmarks on a shared 2-core box.

Other people's test runs on the same machine take CPU from the crawler, the
sandbox and the store, and the figures drop for reasons that have nothing to do
with livefleet. Before each measurement the bench waits (bounded) until the rest
of the machine is quiet, and every measurement reports the cores the rest of the
machine used meanwhile, so a disturbed figure can be recognised as such.
"""

from __future__ import annotations

import sys
import time

import psutil

#: Cores used by others above which the machine does not count as quiet.
QUIET_CORES = 0.3


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def busy_cores(interval: float = 1.0) -> float:
    """Cores the whole machine keeps busy, averaged over ``interval`` seconds."""
    before, started = busy_cpu_seconds(), time.monotonic()
    time.sleep(interval)
    return (busy_cpu_seconds() - before) / (time.monotonic() - started)


def wait_for_quiet(timeout: float, what: str) -> float:
    """Wait until the machine is quiet (our own servers idle, so what is busy is others).

    Returns the load seen last; after ``timeout`` seconds goes on anyway, saying so on stderr.
    """
    deadline = time.monotonic() + timeout
    load = busy_cores()
    warned = False
    while load > QUIET_CORES and time.monotonic() < deadline:
        if not warned:
            print(f"# machine busy ({load:.2f} cores used by others): waiting up to {timeout:.0f}s "
                  f"before {what}", file=sys.stderr, flush=True)
            warned = True
        load = busy_cores()
    if load > QUIET_CORES:
        print(f"# machine still busy ({load:.2f} cores): measuring {what} anyway; its figures are disturbed",
              file=sys.stderr, flush=True)
    return load
