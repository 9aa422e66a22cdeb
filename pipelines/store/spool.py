"""The spool: batches the store could not take, kept on disk until it can.

Each spilled batch is one JSON-lines file (one ``to_json_dict()`` record per
line) written under a temporary name and renamed into place, so a reader
never sees half a file. Replaying claims a file by renaming it to
``*.replaying-<pid>`` — rename is atomic, so two workers replaying at once
never write the same file twice — and deletes it only after its records are
stored. A claim left by a process that died is taken over.

:class:`SpoolFiles` is that mechanism alone (write whole, list, claim, give
back), shared with the feed publisher's spill files (``crawlers.feeds.publish``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.store.ops import StoredRecord, record_from_json

logger = logging.getLogger(__name__)

_SUFFIX = ".jsonl"
_CLAIM = ".replaying-"


@dataclass(frozen=True)
class ReplayResult:
    files: int
    records: int
    bad_lines: int


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
        """Write ``lines`` (one JSON document each) to a new file, renamed into place once synced."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-{os.getpid()}-{time.time_ns()}"
        tmp = self.directory / f".{stem}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        path = self.directory / f"{stem}{_SUFFIX}"
        tmp.rename(path)
        return path

    def pending(self) -> list[Path]:
        """Files waiting, in name order, then claims left by processes that are gone."""
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob(f"*{_SUFFIX}"))
        for claim in self.directory.glob(f"*{self.claim_tag}*"):
            pid = claim.name.rsplit(self.claim_tag, 1)[1]
            if pid.isdigit() and not pid_alive(int(pid)):
                files.append(claim)
        return files

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


class Spool(SpoolFiles):
    """A directory of spilled record batches."""

    def __init__(self, directory: Path, name: str = "store") -> None:
        super().__init__(directory, name, _CLAIM)

    def spill(self, records: Sequence[StoredRecord]) -> Path:
        """Write ``records`` to a new spool file and return its path."""
        return self.write(json.dumps(record.to_json_dict(), ensure_ascii=False) for record in records)

    def count_records(self) -> int:
        total = 0
        for path in self.pending():
            with path.open(encoding="utf-8") as handle:
                total += sum(1 for line in handle if line.strip())
        return total

    def replay(self, write: Callable[[list[StoredRecord]], object], batch: int = 500) -> ReplayResult:
        """Write every pending file with ``write`` (which raises if the store is down)."""
        files = records = bad = 0
        for path in self.pending():
            claim = self.claim(path)
            if claim is None:
                continue  # another process took it
            try:
                loaded, bad_lines = _load(claim)
                for start in range(0, len(loaded), batch):
                    write(loaded[start : start + batch])
            except Exception:
                self.give_back(claim)
                raise
            if bad_lines:
                aside = claim.with_name(self.stem(claim) + ".bad")
                aside.write_text("".join(bad_lines), encoding="utf-8")
                logger.error("%d unreadable spool lines kept in %s", len(bad_lines), aside)
            claim.unlink()
            files += 1
            records += len(loaded)
            bad += len(bad_lines)
        return ReplayResult(files=files, records=records, bad_lines=bad)


def _load(path: Path) -> tuple[list[StoredRecord], list[str]]:
    records: list[StoredRecord] = []
    bad: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                records.append(record_from_json(json.loads(line)))
            except ValueError:
                bad.append(line)
    return records, bad


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
