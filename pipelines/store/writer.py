"""Batched, idempotent writes to MongoDB with retry (runs off the reactor thread).

``BulkWriter.write(records)`` groups records by collection and sends one
unordered ``bulk_write`` per collection (records of one entity merged into one
upsert, snapshots as inserts: see ``ops``). It returns a :class:`WriteResult`
(what went where, what was stored, which upserts created their document), so
the writer keeps no state between calls and later stages (the feeds) learn what
was stored from the result, not from the writer. Four kinds of failure are told apart:

* the store cannot be reached (network, election, timeout): retried with
  exponential backoff, then :class:`StoreUnavailableError` — the caller spools;
* two workers upserting the same new key at the same moment (E11000 on an
  upsert): those operations are simply sent again, they now update;
* E11000 on an insert (a snapshot): that observation is already stored — a
  replayed spool file, a batch retried after its reply was lost — so it is done;
* a document the server refuses for good (too large, invalid): its records
  become quarantine records with the server's reason, so nothing is lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from models.entities import QuarantineRecord
from models.errors import StoreUnavailableError
from pipelines.store.ops import StoredRecord, Write, writes

logger = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
# Codes a replica set answers while it fails over: try again later.
_TRANSIENT_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}


@dataclass(frozen=True, eq=False)
class WriteResult(Mapping[str, int]):
    """What one :meth:`BulkWriter.write` did. As a mapping: records written per collection."""

    #: Records written per collection (refused ones count under ``quarantine``).
    written: Mapping[str, int]
    #: What was actually stored, in place of the input: the records, with the ones the server
    #: refused for good replaced by the quarantine records written for them.
    stored: tuple[StoredRecord, ...]
    #: ``id()`` of the records whose upsert created their document (the first record of each merged
    #: upsert that inserted): the feeds tell an insert from an update. The records are in ``stored``.
    created: frozenset[int]

    def __getitem__(self, collection: str) -> int:
        return self.written[collection]

    def __iter__(self) -> Iterator[str]:
        return iter(self.written)

    def __len__(self) -> int:
        return len(self.written)

    def __repr__(self) -> str:
        return f"WriteResult({dict(self.written)!r}, stored={len(self.stored)}, created={len(self.created)})"


class BulkWriter:
    """Writes record batches; raises :class:`StoreUnavailableError` when the store stays down."""

    def __init__(
        self,
        db: Database,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep

    def write(self, records: Sequence[StoredRecord]) -> WriteResult:
        """Store ``records``; :class:`StoreUnavailableError` when the store stays unreachable."""
        created: set[int] = set()
        by_collection: dict[str, list[StoredRecord]] = defaultdict(list)
        for record in records:
            by_collection[record.collection].append(record)
        written: Counter[str] = Counter()
        rejected: list[QuarantineRecord] = []
        for name, group in by_collection.items():
            refused = self._write_collection(name, group, created)
            rejected.extend(refused)
            written[name] += len(group) - len(refused)
        stored = list(records)
        if rejected:
            self._write_collection(QuarantineRecord.collection, rejected, created)
            written[QuarantineRecord.collection] += len(rejected)
            refused_ids = {id(q._refused) for q in rejected if q._refused is not None}
            stored = [r for r in records if id(r) not in refused_ids] + rejected
        return WriteResult(written, tuple(stored), frozenset(created))

    def _write_collection(self, name: str, records: list[StoredRecord], created: set[int]) -> list[QuarantineRecord]:
        pending = writes(records)
        rejected: list[QuarantineRecord] = []
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            try:
                result = self.db[name].bulk_write([w.op for w in pending], ordered=False)
                _mark_created(created, pending, result.upserted_ids)
                return rejected
            except BulkWriteError as exc:
                _mark_created(created, pending, {u["index"]: u["_id"] for u in exc.details.get("upserted", [])})
                retry, refused = self._split(pending, exc.details.get("writeErrors", []))
                rejected.extend(_quarantine(record, reason) for record, reason in refused)
                if not retry:
                    return rejected
                pending = retry
                if all(code == _DUPLICATE_KEY for code in _codes(exc)):
                    continue  # an upsert race with another worker: the retry updates
            except ConnectionFailure as exc:  # network, timeout, no primary: the store is away
                logger.warning("Store write to %s failed (attempt %d/%d): %s", name, attempt, self.retries, exc)
            except OperationFailure as exc:
                if exc.code not in _TRANSIENT_CODES:
                    return rejected + [_quarantine(r, f"StoreRejected: {exc}") for w in pending for r in w.records]
                logger.warning("Store write to %s failed (attempt %d/%d): %s", name, attempt, self.retries, exc)
            except (PyMongoError, TypeError, ValueError) as exc:  # the batch itself is wrong: keep it whole
                if name == QuarantineRecord.collection:
                    raise
                reason = f"StoreRejected: {type(exc).__name__}: {exc}"
                return rejected + [_quarantine(r, reason) for w in pending for r in w.records]
            if attempt < self.retries:
                self.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise StoreUnavailableError(f"{len(pending)} writes to {name} failed after {self.retries} attempts")

    @staticmethod
    def _split(pending: list[Write], errors: list[dict]) -> tuple[list[Write], list[tuple[StoredRecord, str]]]:
        retry: list[Write] = []
        refused: list[tuple[StoredRecord, str]] = []
        for error in errors:
            write = pending[error["index"]]
            code = error.get("code")
            if code == _DUPLICATE_KEY and write.append_only:
                continue  # already stored
            if code == _DUPLICATE_KEY or code in _TRANSIENT_CODES:
                retry.append(write)
            else:
                refused.extend((r, f"StoreRejected: code {code}: {error.get('errmsg', '')}") for r in write.records)
        return retry, refused


def _mark_created(created: set[int], pending: list[Write], upserted: dict[int, object] | None) -> None:
    for index in upserted or {}:
        created.add(id(pending[index].records[0]))


def _codes(exc: BulkWriteError) -> list[int]:
    return [e.get("code") for e in exc.details.get("writeErrors", [])]


def _quarantine(record: StoredRecord, reason: str) -> QuarantineRecord:
    quarantined = QuarantineRecord(
        platform=getattr(record, "platform", None),
        url=getattr(record, "source_url", None),
        reason=reason,
        payload=json.dumps(record.to_json_dict(), ensure_ascii=False),
        fetched_at=getattr(record, "fetched_at", None) or getattr(record, "captured_at", None),
        quarantined_at=datetime.now(UTC),
    )
    quarantined._refused = record
    return quarantined
