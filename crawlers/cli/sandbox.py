"""``livefleet sandbox [...]``: serve the platform replicas (``sandbox/``); it has its own option parser."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any


def add_parsers(sub: Any) -> None:
    sub.add_parser("sandbox", help="serve the platform replicas (options: livefleet sandbox --help)", add_help=False)


def run_sandbox(argv: Sequence[str]) -> int:
    """Become ``python -m sandbox ARGS``: the fleet starts the sandbox, it never imports its insides."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "sandbox", *argv])
    return 0  # not reached
