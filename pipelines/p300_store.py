"""Store records in MongoDB: batched, idempotent, off the reactor thread, never lost.

Items wait in a batch that is written when it holds ``LIVEFLEET_STORE_BATCH``
records or every ``LIVEFLEET_STORE_FLUSH_SECONDS``. Writes run on one
dedicated thread (so the reactor never blocks on MongoDB, and writes keep
their order). An item's processing completes only when its batch is stored
or spooled, so a finished item is a durable item, and a slow store slows the
crawl down instead of filling memory.

When the store stays unreachable through the writer's retries, the batch is
spooled to ``<var>/spool`` and the circuit opens: for the next
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

Every batch written (a new one, or one written back from the spool) is then
published, on the same thread, to the feeds and the per-crawl counters in Redis
(:class:`crawlers.feeds.publish.FeedPublisher`, ``LIVEFLEET_FEEDS_ENABLED``):
a change is published only once it is in MongoDB, and a Redis outage holds the
messages (in memory, then under ``<var>/feed-spool``) instead of the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError
from scrapy.crawler import Crawler

from crawlers.feeds.publish import FeedPublisher, publisher_client
from models import documents
from models.entities import QuarantineRecord, Record
from models.errors import StoreUnavailableError
from pipelines.store.ops import StoredRecord
from pipelines.store.spool import Spool
from pipelines.store.writer import BulkWriter

logger = logging.getLogger(__name__)


def mongo_uri_from_settings(settings: Any) -> str:
    """The MongoDB URI a worker uses: the configured one, else the embedded server."""
    uri = settings.get("LIVEFLEET_MONGO_URI")
    if uri:
        return str(uri)
    from crawlers.services.registry import ensure_services

    services = ensure_services(
        Path(settings.get("LIVEFLEET_VAR_DIR") or "var"),
        redis_url=settings.get("LIVEFLEET_REDIS_URL") or None,
        mongo_uri=None,
    )
    return services.mongo_uri


def open_store(uri: str, db_name: str, *, timeout_ms: int = 3000) -> tuple[MongoClient, Any]:
    """Connect with pymongo (hot path) and mongoengine (indexes). No I/O happens yet."""
    client: MongoClient = MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    documents.connect(uri, db_name, timeout_ms=timeout_ms)
    return client, client[db_name]


def close_store(client: MongoClient) -> None:
    """Close what :func:`open_store` opened."""
    client.close()
    documents.disconnect()


def ensure_indexes() -> bool:
    """Create the contract's indexes; False (and a warning) when the store is unreachable."""
    try:
        documents.ensure_indexes()
    except PyMongoError as exc:
        logger.warning("Indexes not created yet, the store is unreachable: %s", exc)
        return False
    return True


class StorePipeline:
    """The last pipeline: writes records and quarantine records to MongoDB."""

    def __init__(self, crawler: Crawler, uri: str, db_name: str, *, batch: int, flush_seconds: float,
                 retries: int, cooldown: float, spool_dir: Path, timeout_ms: int = 3000,
                 hold_seconds: float = 300.0, publisher: FeedPublisher | None = None) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.uri = uri
        self.db_name = db_name
        self.batch = max(1, batch)
        self.flush_seconds = flush_seconds
        self.retries = retries
        self.cooldown = cooldown
        self.timeout_ms = timeout_ms
        self.spool = Spool(spool_dir, name=crawler.spider.name if crawler.spider else "store")
        self._pending: list[tuple[StoredRecord, asyncio.Future[None]]] = []
        self._inflight: set[asyncio.Future[Any]] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="livefleet-store")
        self._client: MongoClient | None = None
        self._writer: BulkWriter | None = None
        self._open_until = 0.0  # circuit breaker: spool without trying until this time
        self._spooled_since_replay = False
        self._indexes_ready = False
        self._timer: asyncio.Task[None] | None = None
        self.hold_seconds = hold_seconds
        self._held: list[tuple[float, list[asyncio.Future[None]]]] = []  # spooled, not yet in MongoDB
        self._probing = False
        #: Publishes what was stored to the feeds and per-crawl counters (None: no Redis configured).
        self.publisher = publisher

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        s = crawler.settings
        var_dir = Path(s.get("LIVEFLEET_VAR_DIR") or "var")
        return cls(
            crawler,
            uri=mongo_uri_from_settings(s),
            db_name=s.get("LIVEFLEET_MONGO_DB") or "livefleet",
            batch=s.getint("LIVEFLEET_STORE_BATCH", 500),
            flush_seconds=s.getfloat("LIVEFLEET_STORE_FLUSH_SECONDS", 1.0),
            retries=s.getint("LIVEFLEET_STORE_RETRIES", 4),
            cooldown=s.getfloat("LIVEFLEET_STORE_COOLDOWN_SECONDS", 10.0),
            spool_dir=var_dir / "spool",
            timeout_ms=s.getint("LIVEFLEET_MONGO_TIMEOUT_MS", 3000),
            hold_seconds=s.getfloat("LIVEFLEET_STORE_HOLD_SECONDS", 300.0),
            publisher=feed_publisher(crawler, var_dir),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def open_spider(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open)
        self._timer = loop.create_task(self._flush_periodically())

    def _open(self) -> None:
        self._client, db = open_store(self.uri, self.db_name, timeout_ms=self.timeout_ms)
        self._writer = BulkWriter(db, retries=self.retries)
        self._indexes_ready = ensure_indexes()
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
        if self.publisher is not None:
            self.publisher.close()
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
            await asyncio.sleep(self.flush_seconds)
            self._flush()
            self._give_up_held()
            if self.publisher is not None and self.publisher.retry_due() and not self._inflight:
                asyncio.get_running_loop().run_in_executor(self._executor, self.publisher.retry_backlog)
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
                    self._held.append((time.monotonic() + self.hold_seconds, [done for _, done in batch]))
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
            self.spool.spill(records)
            return Counter(), True, False
        try:
            if not self._indexes_ready and not ensure_indexes():
                raise StoreUnavailableError("cannot create indexes")
            self._indexes_ready = True
            written = self._writer.write(records)
        except StoreUnavailableError as exc:
            path = self.spool.spill(records)
            self._open_until = time.monotonic() + self.cooldown
            self._spooled_since_replay = True
            logger.error("Store unavailable (%s): %d records spooled to %s", exc, len(records), path)
            return Counter(), True, False
        self._publish(records)
        replayed = False
        if self._spooled_since_replay:
            self._spooled_since_replay = False
            replayed = self._replay()
        return written, False, replayed

    def _probe_store(self) -> bool:
        """Runs on the store thread: write the spool back if the store answers; True when it is empty."""
        try:
            if not self._indexes_ready and not ensure_indexes():
                return False
        except PyMongoError:
            return False
        self._indexes_ready = True
        return self._replay()

    def _replay(self) -> bool:
        """Write the spool back; True when it was written (or was empty)."""
        assert self._writer is not None
        try:
            result = self.spool.replay(self._write_and_publish, batch=self.batch)
        except StoreUnavailableError as exc:
            self._spooled_since_replay = True
            self._open_until = time.monotonic() + self.cooldown
            logger.warning("Spool replay postponed: %s", exc)
            return False
        if result.records:
            logger.info("Replayed %d spooled records from %d files", result.records, result.files)
            self.stats.inc_value("livefleet/store/replayed", result.records)
        return True

    def _write_and_publish(self, records: list[StoredRecord]) -> Counter[str]:
        written = self._writer.write(records)  # type: ignore[union-attr]
        self._publish(records)
        return written

    def _publish(self, records: list[StoredRecord]) -> None:
        """Runs on the store thread, once ``records`` are in MongoDB."""
        if self.publisher is not None:
            stored = self._writer.stored if self._writer is not None else records
            self.publisher.publish(stored, created=self._writer.created if self._writer else None)


def feed_publisher(crawler: Crawler, var_dir: Path) -> FeedPublisher | None:
    """The store's publisher to the feeds and per-crawl counters, when the worker has a Redis.

    A fleet worker always has one (``LIVEFLEET_REDIS_URL``). Without it (a bare
    Scrapy crawler, a store test) nothing is published."""
    s = crawler.settings
    url = s.get("LIVEFLEET_REDIS_URL")
    if not url:
        return None
    return FeedPublisher(
        publisher_client(str(url)),
        s.get("LIVEFLEET_KEY_PREFIX") or "livefleet",
        streams=s.getbool("LIVEFLEET_FEEDS_ENABLED", True),
        maxlen=s.getint("LIVEFLEET_FEED_MAXLEN", 1_000_000),
        buffer_limit=s.getint("LIVEFLEET_FEED_BUFFER", 10_000),
        spill_dir=var_dir / "feed-spool",
        cooldown=s.getfloat("LIVEFLEET_FEED_COOLDOWN_SECONDS", 5.0),
        name=crawler.spider.name if crawler.spider else "store",
        stats=crawler.stats,
    )
