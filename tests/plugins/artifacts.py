"""Pytest plugin: folders for what tests leave to be looked at (screenshots), named at the session's end.

Listed in ``pytest_plugins`` by the top-level conftest. The ``artifacts`` fixture (session) is a
function: ``artifacts("console")`` gives ``<repo>/var/test-artifacts/console/``, emptied the first
time a session asks for it (so it holds this run's files only). The terminal summary lists every
folder written during the session, with its number of files, so ``make test`` ends by saying where
they are (read from the disk: under pytest-xdist the tests run in other processes).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

#: Where artifacts go: under the repository's var/, which git ignores.
ROOT = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"

_FOLDERS = pytest.StashKey[dict[str, Path]]()
_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = time.time()


@pytest.fixture(scope="session")
def artifacts(pytestconfig: pytest.Config) -> Callable[[str], Path]:
    """``artifacts(name)``: the folder ``var/test-artifacts/<name>/``, created empty on first use."""
    folders = pytestconfig.stash.setdefault(_FOLDERS, {})

    def folder(name: str) -> Path:
        if name not in folders:
            path = ROOT / name
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            folders[name] = path
        return folders[name]

    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    started = config.stash.get(_STARTED, time.time())
    written = sorted(path for path in ROOT.iterdir() if path.is_dir() and path.stat().st_mtime >= started - 1) \
        if ROOT.is_dir() else []
    if not written:
        return
    terminalreporter.section("test artifacts")
    for path in written:
        files = sum(1 for p in path.rglob("*") if p.is_file())
        terminalreporter.write_line(f"{path.name}: {files} files in {path}")
