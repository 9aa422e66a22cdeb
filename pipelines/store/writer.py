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
* a document that cannot be stored for good (larger than BSON's 16 MB, not
  BSON at all: a str with lone surrogates, an int beyond 64 bits; or refused by
  the server, e.g. a key with a dot or dollar): only that operation is taken
  out (a client-side error is pinned on its operation by encoding each one),
  its records become quarantine records with the reason, and the rest of the
  batch is written. A quarantine record the store refuses as well goes to the
  ``reject`` callable (the spool's ``rejected/`` file) with its reason, so
  nothing is lost and nothing blocks the store, the spool or its replay.

Quarantine records are written bounded (:meth:`QuarantineRecord.bounded`,
``quarantine_bytes`` of payload), and ``WriteResult.written`` counts only what
MongoDB took.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import bson
from bson.errors import InvalidDocument
from pymongo import InsertOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from models.entities import QuarantineRecord, Record, payload_fields
from models.errors import StoreUnavailableError
from pipelines.store.ops import StoredRecord, Write, writes
from settings.defaults import DEFAULTS

logger = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
# Codes a replica set answers while it fails over: try again later.
_TRANSIENT_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
#: The largest document MongoDB stores.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: Errors of the client encoding one operation's documents: that operation can never be stored.
_ENCODING_ERRORS = (InvalidDocument, OverflowError, TypeError, ValueError)
#: Payload bytes a quarantine record written by the writer keeps (the rest: size and sha256).
QUARANTINE_BYTES: int = DEFAULTS["LIVEFLEET_QUARANTINE_PAYLOAD_BYTES"]
#: Records nothing can store, with why; kept by the caller (the spool's ``rejected/`` file).
Reject = Callable[[list[tuple[StoredRecord, str]]], object]


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
    #: Records not even quarantine could take, with the reason: given to ``reject``.
    rejected: tuple[tuple[StoredRecord, str], ...] = ()

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
        reject: Reject | None = None,
        quarantine_bytes: int = QUARANTINE_BYTES,
    ) -> None:
        """``reject``: where records nothing can store go (without one they are logged, and
        counted in ``WriteResult.rejected``, by the caller)."""
        self.db = db
        self.reject = reject
        self.quarantine_bytes = quarantine_bytes
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep

    def write(self, records: Sequence[StoredRecord]) -> WriteResult:
        """Store ``records``; :class:`StoreUnavailableError` when the store stays unreachable."""
        created: set[int] = set()
        by_collection: dict[str, list[StoredRecord]] = defaultdict(list)
        for record in records:
            if isinstance(record, QuarantineRecord):
                record = record.bounded(self.quarantine_bytes)
            by_collection[record.collection].append(record)
        written: Counter[str] = Counter()
        quarantined: list[QuarantineRecord] = []
        unstorable: list[tuple[StoredRecord, str]] = []
        for name, group in by_collection.items():
            refused = self._write_collection(name, group, created)
            written[name] += len(group) - len(refused)
            for record, reason in refused:
                if isinstance(record, QuarantineRecord):
                    unstorable.append((record, reason))
                else:
                    quarantined.append(_quarantine(record, reason, self.quarantine_bytes))
        stored = list(records)
        if quarantined:
            refused = self._write_collection(QuarantineRecord.collection, list(quarantined), created)
            written[QuarantineRecord.collection] += len(quarantined) - len(refused)
            unstorable.extend((q._refused, f"{q.reason}; as quarantine: {why}") for q, why in refused)
            refused_ids = {id(q._refused) for q in quarantined}
            failed = {id(q) for q, _ in refused}
            stored = [r for r in records if id(r) not in refused_ids] + [q for q in quarantined if id(q) not in failed]
        if unstorable:
            gone = {id(r) for r, _ in unstorable}
            stored = [r for r in stored if id(r) not in gone]
            if self.reject is None:
                logger.error("%d records nothing can store (no reject file): %s", len(unstorable), unstorable[0][1])
            else:
                try:
                    self.reject(unstorable)
                except OSError as exc:  # the batch is spooled (or fails) whole: nothing is lost
                    raise StoreUnavailableError(f"cannot keep {len(unstorable)} rejected records: {exc}") from exc
        return WriteResult(written, tuple(stored), frozenset(created), tuple(unstorable))

    def _write_collection(self, name: str, records: list[StoredRecord],
                          created: set[int]) -> list[tuple[StoredRecord, str]]:
        """Write ``records`` to ``name``; the records refused for good, with the reason."""
        pending = writes(records)
        refused: list[tuple[StoredRecord, str]] = []
        delay = self.backoff
        attempt = 0
        while attempt < self.retries:
            attempt += 1
            try:
                result = self.db[name].bulk_write([w.op for w in pending], ordered=False)
                _mark_created(created, pending, result.upserted_ids)
                return refused
            except BulkWriteError as exc:
                _mark_created(created, pending, {u["index"]: u["_id"] for u in exc.details.get("upserted", [])})
                retry, lost = self._split(pending, exc.details.get("writeErrors", []))
                refused.extend(lost)
                if exc.details.get("writeConcernErrors") and not exc.details.get("writeErrors"):
                    retry = pending  # taken but not acknowledged as durable: send again (idempotent)
                if not retry:
                    return refused
                pending = retry
                if all(code == _DUPLICATE_KEY for code in _codes(exc)):
                    attempt -= 1  # an upsert race with another worker: the retry updates
                    continue
            except ConnectionFailure as exc:  # network, timeout, no primary: the store is away
                logger.warning("Store write to %s failed (attempt %d/%d): %s", name, attempt, self.retries, exc)
            except OperationFailure as exc:
                if exc.code not in _TRANSIENT_CODES:
                    reason = f"StoreRejected: {str(exc)[:500]}"
                    return refused + [(r, reason) for w in pending for r in w.records]
                logger.warning("Store write to %s failed (attempt %d/%d): %s", name, attempt, self.retries, exc)
            except (*_ENCODING_ERRORS, PyMongoError) as exc:  # some operation cannot be sent at all
                culprits = {i: why for i, w in enumerate(pending) if (why := unstorable_reason(w.op)) is not None}
                if not culprits:  # not one operation's fault: the batch is wrong as a whole
                    reason = f"StoreRejected: {type(exc).__name__}: {str(exc)[:500]}"
                    return refused + [(r, reason) for w in pending for r in w.records]
                refused.extend((r, why) for i, why in culprits.items() for r in pending[i].records)
                pending = [w for i, w in enumerate(pending) if i not in culprits]
                if not pending:
                    return refused
                attempt -= 1  # the rest was never sent: not a failed attempt
                continue
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
                reason = f"StoreRejected: code {code}: {str(error.get('errmsg', ''))[:500]}"
                refused.extend((r, reason) for r in write.records)
        return retry, refused


def unstorable_reason(op: object) -> str | None:
    """Why ``op``'s documents can never be stored (not BSON, or larger than MongoDB takes), or None."""
    doc = op._doc if isinstance(op, InsertOne) else {"q": op._filter, "u": op._doc}  # type: ignore[attr-defined]
    try:
        size = len(bson.encode(doc))
    except _ENCODING_ERRORS as exc:
        return f"StoreRejected: not BSON: {type(exc).__name__}: {str(exc)[:300]}"
    if size > MAX_DOCUMENT_BYTES:
        return f"StoreRejected: DocumentTooLarge: {size} bytes, more than {MAX_DOCUMENT_BYTES}"
    return None


def _mark_created(created: set[int], pending: list[Write], upserted: dict[int, object] | None) -> None:
    for index in upserted or {}:
        created.add(id(pending[index].records[0]))


def _codes(exc: BulkWriteError) -> list[int]:
    return [e.get("code") for e in exc.details.get("writeErrors", [])]


def _quarantine(record: StoredRecord, reason: str, limit: int = QUARANTINE_BYTES) -> QuarantineRecord:
    """The quarantine record of a record the store refused: its JSON as payload, bounded."""
    data = record.to_json_dict()
    payload = json.dumps(data, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    # The record's own key in the reason: two records of one page refused alike are two quarantine
    # records, not one (the quarantine's unique key is platform, spider, url, fetched_at, reason).
    key = record.key() if isinstance(record, Record) else {}
    quarantined = QuarantineRecord(
        platform=getattr(record, "platform", None),
        url=getattr(record, "source_url", None),
        reason=f"{reason} [{record.kind} {json.dumps(key, ensure_ascii=True, default=str)}]",
        fetched_at=getattr(record, "fetched_at", None) or getattr(record, "captured_at", None),
        quarantined_at=datetime.now(UTC),
        **payload_fields(payload, limit),
    ).bounded(limit)
    quarantined._refused = record
    return quarantined
