"""``livefleet sandbox [...]``: serve the platform replicas (``sandbox/``); it has its own option parser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def add_parsers(sub: Any) -> None:
    sub.add_parser("sandbox", help="serve the platform replicas (options: livefleet sandbox --help)", add_help=False)


def run_sandbox(argv: Sequence[str]) -> int:
    from sandbox.server import main  # the sandbox's own command line, untouched by ours

    return main(list(argv)) or 0
