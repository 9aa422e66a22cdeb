"""Directories of JSON-lines files written whole, claimed by one process at a time.

The mechanism under the store's spool (``pipelines.store.spool``) and the feed
publisher's spill files (``crawlers.feeds.publish``). A file is written under a
temporary name, synced, then renamed into place, so a reader never sees half a
file; when the write fails (the disk is full: ``ENOSPC``) the temporary file is
removed and the error raised, so the caller knows the lines are NOT kept and
keeps them itself (the store fails the items: their requests go back to the
queue). Temporary files left by a process that died mid-write are removed the
next time the directory is listed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
_TMP = ".tmp"


@dataclass(frozen=True)
class SpoolEntry:
    """One file of a spool directory as :meth:`SpoolFiles.inventory` saw it."""

    path: Path
    #: The pid of the live process working on it (None: waiting, or its claimer died).
    claimed_by: int | None


class SpoolFiles:
    """A directory of JSON-lines files, each written whole and claimed by one process at a time.

    ``claim_tag`` marks a file being worked on (``<stem>.jsonl`` becomes ``<stem><tag><pid>``),
    so users of one directory never take each other's files, and a claim whose process is dead
    is offered again.
    """

    def __init__(self, directory: Path, name: str, claim_tag: str = ".replaying-") -> None:
        self.directory = Path(directory)
        self.name = name
        self.claim_tag = claim_tag

    def write(self, lines: Iterable[str]) -> Path:
        """Write ``lines`` (one JSON document each) to a new file, renamed into place once synced.

        On any failure (``OSError`` such as ENOSPC, or an error from ``lines``) nothing is left
        behind and the error is raised: the lines are not kept."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-{os.getpid()}-{time.time_ns()}"
        tmp = self.directory / f".{stem}{_TMP}"
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                for line in lines:
                    handle.write(line)
                    handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            path = self.directory / f"{stem}{SUFFIX}"
            tmp.rename(path)
        except BaseException:
            _unlink(tmp)
            raise
        return path

    def pending(self) -> list[Path]:
        """Files waiting, in name order, then claims left by processes that are gone."""
        return [entry.path for entry in self.inventory() if entry.claimed_by is None]

    def inventory(self) -> list[SpoolEntry]:
        """Every file of the directory: waiting ones in name order, then claims (a live
        claimer's, or a dead one's: offered again). Removes stale temporary files."""
        if not self.directory.is_dir():
            return []
        self.clean_stale_tmp()
        entries = [SpoolEntry(path, None) for path in sorted(self.directory.glob(f"*{SUFFIX}"))]
        for claim in sorted(self.directory.glob(f"*{self.claim_tag}*")):
            pid = claim.name.rsplit(self.claim_tag, 1)[1]
            if not pid.isdigit():
                continue
            alive = pid_alive(int(pid))
            entries.append(SpoolEntry(claim, int(pid) if alive else None))
        return entries

    def clean_stale_tmp(self) -> int:
        """Remove temporary files whose writer is dead (a crash mid-write); return how many."""
        removed = 0
        for tmp in self.directory.glob(f".*{_TMP}"):
            parts = tmp.name[1 : -len(_TMP)].rsplit("-", 2)
            if len(parts) == 3 and parts[1].isdigit() and not pid_alive(int(parts[1])):
                removed += _unlink(tmp)
        if removed:
            logger.warning("Removed %d partial files of dead processes from %s", removed, self.directory)
        return removed

    def claim(self, path: Path) -> Path | None:
        """Take ``path`` for this process (an atomic rename); None when another process took it first."""
        claim = path.with_name(self.stem(path) + f"{self.claim_tag}{os.getpid()}")
        try:
            path.rename(claim)
        except FileNotFoundError:
            return None
        return claim

    def give_back(self, claim: Path) -> None:
        """Return a claimed file to the waiting ones (its work failed; it is tried again later)."""
        claim.rename(claim.with_name(self.stem(claim)))

    def stem(self, path: Path) -> str:
        """The file's name without a claim."""
        return path.name.split(self.claim_tag)[0]


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


# -- whose claim is it: spool files claimed by a process that died are offered again --------

def pid_alive(pid: int | None) -> bool:
    """Return True if ``pid`` names a running process (zombies count as dead)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return False  # vanished between the two checks
    except OSError:
        return True  # no /proc here: trust kill(0)
    if _proc_state(stat) not in _DEAD_STATES:
        return True
    # A zombie leader may still have threads tearing down (holding its sockets and
    # files): the process is gone only once every thread of it is dead.
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            task_stat = (task / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if _proc_state(task_stat) not in _DEAD_STATES:
            return True
    return False


_DEAD_STATES = frozenset({"Z", "X", "x"})


def _proc_state(stat: str) -> str:
    """The state letter of a ``/proc/<pid>/stat`` line (after the parenthesised name)."""
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
