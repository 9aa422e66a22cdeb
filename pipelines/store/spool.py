"""The spool: batches the store could not take, kept on disk until it can.

Each spilled batch is one JSON-lines file (one ``to_json_dict()`` record per
line) written under a temporary name and renamed into place, so a reader
never sees half a file (:class:`~pipelines.store.files.SpoolFiles`; a write
that fails, e.g. on a full disk, leaves nothing and raises: the batch is then
*not* spooled and its items fail). Replaying claims a file by renaming it to
``*.replaying-<pid>`` — rename is atomic, so two workers replaying at once
never write the same file twice — and deletes it only after its records are
stored. A claim left by a process that died is taken over.

The first line of a file names where its records belong (:class:`SpoolTarget`:
the database and the server, without credentials): a var folder is shared by
every worker started in it, whatever database each writes to, and a record is
only ever replayed into its own database; the others leave the file alone
(and say so once). Files without that line (older ones) go to any store.

A file whose replay fails for any reason but the store being away is handed
back and skipped: it never blocks the files after it, a worker's start, or
``livefleet spool replay``. Records nothing can store (refused even as
quarantine records) end in ``<spool>/rejected/*.jsonl`` with their reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import StoreUnavailableError
from pipelines.store.files import SUFFIX, SpoolEntry, SpoolFiles, pid_alive
from pipelines.store.ops import StoredRecord, record_from_json

__all__ = ["ReplayResult", "Spool", "SpoolEntry", "SpoolFiles", "SpoolTarget", "pid_alive", "server_identity"]

logger = logging.getLogger(__name__)

_CLAIM = ".replaying-"
_HEADER = "spool"
_LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def server_identity(uri: str) -> str:
    """``scheme://host:port[,...]`` of a MongoDB ``uri``: no credentials, database or options."""
    scheme, _, rest = uri.partition("://")
    hosts = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{hosts}" if rest else uri.rsplit("@", 1)[-1]


@dataclass(frozen=True)
class SpoolTarget:
    """Where spooled records belong: a database on a server (``server_identity`` of its URI)."""

    db: str
    server: str

    @classmethod
    def of(cls, uri: str, db: str) -> SpoolTarget:
        return cls(db=db, server=server_identity(uri))

    def accepts(self, other: SpoolTarget) -> bool:
        """Same database on the same server. A loopback server is this machine's embedded one,
        whose port changes at each start: for it only the host is compared."""
        if self.db != other.db:
            return False
        if self.server == other.server:
            return True
        return _loopback(self.server) and _loopback(other.server)

    def to_line(self) -> str:
        return json.dumps({_HEADER: {"db": self.db, "server": self.server}}, ensure_ascii=True)

    def __str__(self) -> str:
        return f"database {self.db!r} on {self.server}"


def _loopback(server: str) -> bool:
    hosts = server.partition("://")[2].split(",")
    return all(host.startswith(_LOOPBACK) for host in hosts)


@dataclass(frozen=True)
class ReplayResult:
    files: int
    records: int
    bad_lines: int
    #: Files left for another database's workers.
    foreign: int = 0
    #: ``file: error`` of files whose replay failed (handed back, tried again later).
    errors: tuple[str, ...] = field(default=())


class Spool(SpoolFiles):
    """A directory of spilled record batches (``target``: where this process's records belong)."""

    def __init__(self, directory: Path, name: str = "store", target: SpoolTarget | None = None) -> None:
        super().__init__(directory, name, _CLAIM)
        self.target = target
        self._foreign_noted: set[str] = set()

    def spill(self, records: Sequence[StoredRecord]) -> Path:
        """Write ``records`` to a new spool file and return its path (``OSError``: nothing kept)."""
        header = [self.target.to_line()] if self.target is not None else []
        return self.write(header + [_dumps(record.to_json_dict()) for record in records])

    def reject(self, rejected: Sequence[tuple[StoredRecord, str]]) -> Path:
        """Keep records nothing can store, with why, in ``<spool>/rejected/`` (never replayed)."""
        files = SpoolFiles(self.directory / "rejected", self.name)
        path = files.write(json.dumps({"reason": reason, "record": record.to_json_dict()}, ensure_ascii=True)
                           for record, reason in rejected)
        logger.error("%d records nothing can store kept in %s (first: %s)", len(rejected), path, rejected[0][1])
        return path

    def size(self) -> tuple[int, int]:
        """Files and bytes waiting in the spool (claimed ones too; the rejected/ folder not): a few
        ``stat`` calls, cheap enough for every heartbeat."""
        files = size = 0
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.name.endswith(SUFFIX) or self.claim_tag in path.name:
                    try:
                        size += path.stat().st_size
                    except FileNotFoundError:  # replayed meanwhile
                        continue
                    files += 1
        return files, size

    def count_records(self) -> int:
        return sum(records for _, records, _ in self.status())

    def status(self) -> list[tuple[SpoolEntry, int, SpoolTarget | None]]:
        """Every file (claimed ones too), with its record count and target; files that move
        while being counted (claimed, replayed) are looked up again."""
        for _ in range(5):
            rows = []
            try:
                for entry in self.inventory():
                    target, lines = _peek(entry.path)
                    rows.append((entry, lines, target))
            except FileNotFoundError:
                continue
            return rows
        return rows

    def replay(self, write: Callable[[list[StoredRecord]], object], batch: int = 500) -> ReplayResult:
        """Write every pending file of this spool's target with ``write``.

        :class:`StoreUnavailableError` (the store is away) hands the file back and is raised;
        any other error hands it back, is logged and counted in ``errors``, and the next file goes on."""
        files = records = bad = foreign = 0
        errors: list[str] = []
        for path in self.pending():
            try:
                target, _ = _peek(path, count=False)
            except FileNotFoundError:
                continue  # another process took it
            if target is not None and self.target is not None and not self.target.accepts(target):
                foreign += 1
                self._note_foreign(path, target)
                continue
            claim = self.claim(path)
            if claim is None:
                continue
            try:
                loaded, bad_lines = _load(claim)
                for start in range(0, len(loaded), batch):
                    write(loaded[start : start + batch])
            except StoreUnavailableError:
                self.give_back(claim)
                raise
            except Exception as exc:  # noqa: BLE001 - one bad file must not block the spool
                self.give_back(claim)
                errors.append(f"{self.stem(claim)}: {type(exc).__name__}: {str(exc)[:300]}")
                logger.error("Spool file %s not replayed (kept, tried again later): %s", claim, errors[-1])
                continue
            if bad_lines:
                self._keep_aside(claim, bad_lines)
            claim.unlink()
            files += 1
            records += len(loaded)
            bad += len(bad_lines)
        return ReplayResult(files=files, records=records, bad_lines=bad, foreign=foreign, errors=tuple(errors))

    def _note_foreign(self, path: Path, target: SpoolTarget) -> None:
        key = str(target)
        if key not in self._foreign_noted:
            self._foreign_noted.add(key)
            logger.info("Spool files for %s (e.g. %s) left for that database's workers; this one writes to %s",
                        target, path.name, self.target)

    def _keep_aside(self, claim: Path, bad_lines: list[str]) -> None:
        aside = claim.with_name(self.stem(claim) + ".bad")
        try:
            aside.write_text("".join(bad_lines), encoding="utf-8", errors="backslashreplace")
            logger.error("%d unreadable spool lines kept in %s", len(bad_lines), aside)
        except OSError as exc:
            logger.error("%d unreadable spool lines of %s lost: %s", len(bad_lines), claim, exc)


def _dumps(data: dict[str, Any]) -> str:
    """One JSON line; text the UTF-8 file cannot hold (lone surrogates) is escaped."""
    line = json.dumps(data, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, ensure_ascii=True)
    return line


def _header(line: bytes) -> SpoolTarget | None:
    try:
        data = json.loads(line)
        spec = data[_HEADER]
        return SpoolTarget(db=str(spec["db"]), server=str(spec["server"]))
    except (ValueError, TypeError, KeyError):
        return None


def _peek(path: Path, count: bool = True) -> tuple[SpoolTarget | None, int]:
    """The file's target (None: no header line) and, with ``count``, its records."""
    with path.open("rb") as handle:
        first = handle.readline()
        target = _header(first)
        if not count:
            return target, 0
        lines = 0 if target is not None or not first.strip() else 1
        lines += sum(1 for line in handle if line.strip())
    return target, lines


def _load(path: Path) -> tuple[list[StoredRecord], list[str]]:
    """The file's records, and its lines that are no record (half-written, not UTF-8, invalid)."""
    records: list[StoredRecord] = []
    bad: list[str] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle):
            if not raw.strip() or (number == 0 and _header(raw) is not None):
                continue
            try:
                records.append(record_from_json(json.loads(raw.decode("utf-8"))))
            except (ValueError, TypeError, AttributeError):
                bad.append(raw.decode("utf-8", errors="backslashreplace"))
    return records, bad
