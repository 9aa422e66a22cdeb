"""Pytest plugin: folders for what tests leave to be looked at (screenshots), named at the session's end.

Listed in ``pytest_plugins`` by the top-level conftest. The ``artifacts`` fixture (session) is a
function: ``artifacts("console")`` gives ``<repo>/var/test-artifacts/console/``, emptied the first
time a session asks for it (so it holds this run's files only). The terminal summary lists every
folder a test asked for, with its number of files, so ``make test`` ends by saying where they are.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

#: Where artifacts go: under the repository's var/, which git ignores.
ROOT = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"

_FOLDERS = pytest.StashKey[dict[str, Path]]()


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
    folders = config.stash.get(_FOLDERS, {})
    if not folders:
        return
    terminalreporter.section("test artifacts")
    for name, path in sorted(folders.items()):
        files = sum(1 for p in path.rglob("*") if p.is_file())
        terminalreporter.write_line(f"{name}: {files} files in {path}")
