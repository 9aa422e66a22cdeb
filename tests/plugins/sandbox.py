"""Pytest plugin: the sandbox server as a subprocess for tests.

Listed in ``pytest_plugins`` by the top-level conftest. Provides ``start_sandbox``
(re-exported from :mod:`sandbox.process`) and the ``sandbox`` session
fixture: a frozen world (``--time-scale 0``), chaos off, faults on. It is shared
by every test of the session: tests must not change its settings or clear its logs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.process import SandboxProcess, start_sandbox

__all__ = ["SESSION_ARGS", "SandboxProcess", "sandbox", "start_sandbox"]

#: The session sandbox's arguments: frozen time and no chaos, so ground truth is stable.
SESSION_ARGS = ("--time-scale", "0", "--no-chaos")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """One frozen, chaos-free sandbox (faults on) for the whole test session."""
    process = start_sandbox(*SESSION_ARGS)
    try:
        yield process
    finally:
        process.stop()
