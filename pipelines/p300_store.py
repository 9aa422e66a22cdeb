"""Store records in MongoDB: batched, idempotent, off the reactor thread, never lost.

Items wait in a batch that is written when it holds ``LIVEFLEET_STORE_BATCH``
records or every ``LIVEFLEET_STORE_FLUSH_SECONDS``. Writes run on one
dedicated thread (so the reactor never blocks on MongoDB, and writes keep
their order). An item's processing completes only when its batch is stored
or spooled, so a finished item is a durable item, and a slow store slows the
crawl down instead of filling memory.

When the store stays unreachable through the writer's retries, the batch is
spooled to ``<var>/spool`` (marked with this store's database and server: only
a store of that database replays it) and the circuit opens: for the next
``LIVEFLEET_STORE_COOLDOWN_SECONDS`` batches go straight to the spool. The
first batch written after that replays the spool; so does the next start,
and ``livefleet spool replay``.

A spooled item is safe on this machine's disk but not yet in MongoDB, so its
processing does not complete yet: it is held until the spool is written back
(the store is probed every flush interval once the circuit closes). The
fleet acknowledges a request only when its items completed, so no request is
acknowledged before its items are stored; meanwhile the crawl slows down
instead of running ahead of the store. An item held longer than
``LIVEFLEET_STORE_HOLD_SECONDS``, or when the worker stops, fails with
:class:`StoreUnavailableError`: its request goes back to the fleet's queue (its
data is in the spool as well, and idempotent upserts make the repeat harmless).
When the spool cannot take a batch either (the disk is full), nothing of it is
kept on disk and its items fail the same way at once: their requests go back to
the queue, not to the dead letters (``StoreUnavailableError`` is not the request's
fault). A spool file that cannot be replayed never stops a worker's start.

Every batch written (a new one, or one written back from the spool) is then
announced with the :data:`pipelines.signals.batch_stored` signal, on the same
thread and before the batch's items complete, with the writer's
:class:`~pipelines.store.writer.WriteResult`. The store knows nothing of who
listens: the fleet's feeds stage (``crawlers.feeds.pipeline``) publishes it.

Settings: :class:`~pipelines.store.config.StoreConfig`. The indexes are
created with pymongo on the pipeline's own client (never through a
process-wide connection: one worker process runs a crawler per spider, and one
crawler closing must not cut the others off).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError
from scrapy.crawler import Crawler

from models import documents
from models.entities import QuarantineRecord, Record
from models.errors import StoreUnavailableError
from pipelines.signals import batch_stored
from pipelines.store.config import StoreConfig
from pipelines.store.ops import StoredRecord
from pipelines.store.spool import Spool, SpoolTarget
from pipelines.store.writer import BulkWriter, WriteResult
from settings.defaults import value

logger = logging.getLogger(__name__)


def open_store(uri: str, db_name: str, *, timeout_ms: int | None = None) -> tuple[MongoClient, Database]:
    """A pymongo client of the caller's own and its database. No I/O happens yet.

    ``timeout_ms``: how long an attempt waits for an unreachable store (default:
    ``LIVEFLEET_MONGO_TIMEOUT_MS``'s)."""
    if timeout_ms is None:
        timeout_ms = int(value(None, "LIVEFLEET_MONGO_TIMEOUT_MS"))
    client: MongoClient = MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    return client, client[db_name]


def close_store(client: MongoClient) -> None:
    """Close what :func:`open_store` opened (that client only)."""
    client.close()


def ensure_indexes(db: Database) -> bool:
    """Create the contract's indexes in ``db``; False (and a warning) when the store is unreachable."""
    try:
        documents.ensure_indexes(db)
    except PyMongoError as exc:
        logger.warning("Indexes not created yet, the store is unreachable: %s", exc)
        return False
    return True


class StorePipeline:
    """The last pipeline: writes records and quarantine records to MongoDB."""

    def __init__(self, crawler: Crawler, config: StoreConfig) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self.batch = config.batch
        # Payload bytes of the quarantine records the writer makes of records MongoDB refuses.
        self.quarantine_bytes = int(value(crawler.settings, "LIVEFLEET_QUARANTINE_PAYLOAD_BYTES"))
        self.spool = Spool(config.spool_dir, name=crawler.spider.name if crawler.spider else "store",
                           target=SpoolTarget.of(config.uri, config.db))
        self._pending: list[tuple[StoredRecord, asyncio.Future[None]]] = []
        self._inflight: set[asyncio.Future[Any]] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="livefleet-store")
        self._client: MongoClient | None = None
        self._writer: BulkWriter | None = None
        self._open_until = 0.0  # circuit breaker: spool without trying until this time
        self._spooled_since_replay = False
        self._indexes_ready = False
        self._timer: asyncio.Task[None] | None = None
        self._held: list[tuple[float, list[asyncio.Future[None]]]] = []  # spooled, not yet in MongoDB
        self._probing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """:class:`NotConfigured` without ``LIVEFLEET_MONGO_URI`` (see :class:`StoreConfig`)."""
        return cls(crawler, StoreConfig.from_settings(crawler.settings))

    # -- lifecycle ---------------------------------------------------------------------------

    async def open_spider(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open)
        self._timer = loop.create_task(self._flush_periodically())

    def _open(self) -> None:
        self._client, db = open_store(self.config.uri, self.config.db, timeout_ms=self.config.timeout_ms)
        self._writer = BulkWriter(db, retries=self.config.retries, reject=self._reject,
                                  quarantine_bytes=self.quarantine_bytes)
        self._indexes_ready = ensure_indexes(db)
        if self.spool.pending():
            if self._indexes_ready:
                self._replay()
            else:
                self._spooled_since_replay = True  # replay once the store answers

    async def close_spider(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self._give_up_held(everything=True)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._client is not None:
            close_store(self._client)

    # -- items -------------------------------------------------------------------------------

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, (Record, QuarantineRecord)):
            return item
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if len(self._pending) >= self.batch:
            self._flush()
        await done
        return item

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_seconds)
            self._flush()
            self._give_up_held()
            if self._held and not self._probing and not self._inflight and time.monotonic() >= self._open_until:
                self._probe()

    def _probe(self) -> None:
        """Try to write the spool back; on success the held items complete."""
        self._probing = True
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._probe_store)

        def done(f: asyncio.Future[bool]) -> None:
            self._probing = False
            if not f.cancelled() and f.exception() is None and f.result():
                self._release_held()

        future.add_done_callback(done)

    def _release_held(self) -> None:
        for _, futures in self._held:
            for done in futures:
                if not done.done():
                    done.set_result(None)
        self._held = []

    def _give_up_held(self, everything: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for deadline, futures in self._held:
            if everything or now >= deadline:
                for done in futures:
                    if not done.done():
                        done.set_exception(StoreUnavailableError("in the spool, not yet in MongoDB"))
            else:
                keep.append((deadline, futures))
        self._held = keep

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        records = [record for record, _ in batch]
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._write, records)
        self._inflight.add(future)

        def settle(f: asyncio.Future[tuple[Counter[str], bool, bool]]) -> None:
            self._inflight.discard(f)
            error = f.exception()
            if error is None:
                written, spooled, replayed = f.result()
                self._count(written, spooled, len(records))
                if replayed:  # the spool is back in MongoDB: what waited for it is stored
                    self._release_held()
                if spooled:
                    self._held.append((time.monotonic() + self.config.hold_seconds, [done for _, done in batch]))
                    return
            for _, done in batch:
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

        future.add_done_callback(settle)

    def _count(self, written: Counter[str], spooled: bool, size: int) -> None:
        if spooled:
            self.stats.inc_value("livefleet/store/spooled", size)
        for collection, count in written.items():
            self.stats.inc_value(f"livefleet/store/written/{collection}", count)

    # -- the store thread --------------------------------------------------------------------

    def _write(self, records: list[StoredRecord]) -> tuple[Counter[str], bool, bool]:
        """Runs on the store thread: write, or spool when the store is down.

        Returns (written per collection, spooled, the spool was written back)."""
        assert self._writer is not None
        if time.monotonic() < self._open_until:
            self._spill(records)
            return Counter(), True, False
        try:
            if not self._indexes_ready and not ensure_indexes(self._writer.db):
                raise StoreUnavailableError("cannot create indexes")
            self._indexes_ready = True
            started = time.monotonic()
            result = self._writer.write(records)
            # The time batches took to write (their retries included) and how many: mean = sum / count.
            self.stats.inc_value("livefleet/store/batch_seconds", time.monotonic() - started)
            self.stats.inc_value("livefleet/store/batches")
        except StoreUnavailableError as exc:
            self._open_until = time.monotonic() + self.config.cooldown
            path = self._spill(records)
            self._spooled_since_replay = True
            logger.error("Store unavailable (%s): %d records spooled to %s", exc, len(records), path)
            return Counter(), True, False
        self._announce(result)
        replayed = False
        if self._spooled_since_replay:
            self._spooled_since_replay = False
            replayed = self._replay()
        return Counter(result.written), False, replayed

    def _spill(self, records: list[StoredRecord]) -> Any:
        """Spool ``records``; when the disk refuses (ENOSPC...), nothing is kept and the batch's
        items fail with :class:`StoreUnavailableError` (their requests go back to the queue)."""
        try:
            return self.spool.spill(records)
        except OSError as exc:
            self.stats.inc_value("livefleet/store/spool_failed", len(records))
            logger.error("Store unavailable and the spool refused %d records (%s): their requests go back "
                         "to the queue", len(records), exc)
            raise StoreUnavailableError(f"MongoDB unavailable and the spool is not writable: {exc}") from exc

    def _reject(self, rejected: list[tuple[StoredRecord, str]]) -> None:
        """Runs on the store thread: records nothing can store, kept in the spool's ``rejected/``."""
        self.spool.reject(rejected)
        self.stats.inc_value("livefleet/store/rejected", len(rejected))

    def _probe_store(self) -> bool:
        """Runs on the store thread: write the spool back if the store answers; True when it is empty."""
        assert self._writer is not None
        if not self._indexes_ready and not ensure_indexes(self._writer.db):
            return False
        self._indexes_ready = True
        return self._replay()

    def _replay(self) -> bool:
        """Write the spool back; True when it was written (or was empty)."""
        assert self._writer is not None
        try:
            result = self.spool.replay(self._write_and_announce, batch=self.batch)
        except StoreUnavailableError as exc:
            self._spooled_since_replay = True
            self._open_until = time.monotonic() + self.config.cooldown
            logger.warning("Spool replay postponed: %s", exc)
            return False
        except OSError as exc:  # the spool's directory itself: never stop the worker for it
            logger.error("Spool replay failed: %s", exc)
            return False
        if result.records:
            logger.info("Replayed %d spooled records from %d files", result.records, result.files)
            self.stats.inc_value("livefleet/store/replayed", result.records)
        if result.errors:
            self.stats.inc_value("livefleet/store/replay_errors", len(result.errors))
            return False
        return True

    def _write_and_announce(self, records: list[StoredRecord]) -> WriteResult:
        result = self._writer.write(records)  # type: ignore[union-attr]
        self._announce(result)
        return result

    def _announce(self, result: WriteResult) -> None:
        """Runs on the store thread, once the batch is in MongoDB: tell the later stages (the feeds)."""
        self.crawler.signals.send_catch_log(batch_stored, result=result)
