"""The spool: batches the store could not take, kept on disk until it can.

Each spilled batch is one JSON-lines file (one ``to_json_dict()`` record per
line) written under a temporary name and renamed into place, so a reader
never sees half a file. Replaying claims a file by renaming it to
``*.replaying-<pid>`` — rename is atomic, so two workers replaying at once
never write the same file twice — and deletes it only after its records are
stored. A claim left by a process that died is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
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


class Spool:
    """A directory of spilled record batches."""

    def __init__(self, directory: Path, name: str = "store") -> None:
        self.directory = Path(directory)
        self.name = name

    def spill(self, records: Sequence[StoredRecord]) -> Path:
        """Write ``records`` to a new spool file and return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-{os.getpid()}-{time.time_ns()}"
        tmp = self.directory / f".{stem}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record.to_json_dict(), ensure_ascii=False))
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        path = self.directory / f"{stem}{_SUFFIX}"
        tmp.rename(path)
        return path

    def pending(self) -> list[Path]:
        """Spool files waiting to be replayed (including claims of dead processes)."""
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob(f"*{_SUFFIX}"))
        for claim in self.directory.glob(f"*{_CLAIM}*"):
            pid = claim.name.rsplit(_CLAIM, 1)[1]
            if pid.isdigit() and not _alive(int(pid)):
                files.append(claim)
        return files

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
            claim = path.with_name(path.name.split(_CLAIM)[0] + f"{_CLAIM}{os.getpid()}")
            try:
                path.rename(claim)
            except FileNotFoundError:
                continue  # another process took it
            try:
                loaded, bad_lines = _load(claim)
                for start in range(0, len(loaded), batch):
                    write(loaded[start : start + batch])
            except Exception:
                claim.rename(claim.with_name(claim.name.split(_CLAIM)[0]))  # give it back
                raise
            if bad_lines:
                aside = claim.with_name(claim.name.split(_CLAIM)[0] + ".bad")
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
