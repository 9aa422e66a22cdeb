"""The feed publisher: every stored record to its collection's Redis Stream.

The feeds stage (:class:`crawlers.feeds.pipeline.FeedPipeline`) calls
:meth:`FeedPublisher.publish` on the store's thread right after a batch is in
MongoDB (the store's ``batch_stored`` signal, also for batches written back
from the spool). One pipelined round trip carries, for the whole batch:

* ``XADD FleetKeys.feed(collection) MAXLEN ~ N * doc .. op .. at .. [crawl ..] [monitor ..]``
  per record (when feeds are on; ``MAXLEN ~`` keeps each stream near N messages
  at almost no cost);
* ``HINCRBY FleetKeys.crawl_items(crawl) collection n`` per crawl and
  collection, for records that carry a crawl (``crawlers.queue.origin``).

A stored change is never dropped silently. When Redis does not answer, the
batch is tried again with backoff (a few short attempts: the store thread is
waiting); then it joins the backlog and the publisher stops trying for a
cooldown, so an outage costs the store one short delay, not one per batch.
The backlog is kept in memory up to ``buffer_limit`` messages, and beyond
that (and when the worker stops) it is written to ``<var>/feed-spool`` as
JSON-lines files. The next batch after the cooldown (or the feeds stage's periodic
:meth:`retry_backlog`) publishes the backlog first, oldest first, then the new
batch; files left by a stopped or dead worker on the machine are published by
the next publisher that starts there. Delivery is at least once: a round trip
whose reply was lost is sent again, so a consumer may rarely see a message
twice (the ``doc`` says which record it is).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError, RedisError, TryAgainError
from redis.retry import Retry

from crawlers.feeds.message import message_fields
from crawlers.queue.origin import origin_of
from crawlers.redis.keys import FleetKeys
from models.entities import QuarantineRecord, Record
from pipelines.store.spool import SpoolFiles

logger = logging.getLogger(__name__)

#: Marks a spill file a publisher is sending (the store's spool uses another, so the two never mix).
_CLAIM = ".publishing-"
#: Messages per round trip when the backlog is published.
_CHUNK = 2000
#: Redis refusals that pass with time: the commands are sent again later.
_TRANSIENT_ERRORS = (OutOfMemoryError, ReadOnlyError, BusyLoadingError, TryAgainError)


@dataclass
class _Batch:
    """What one stored batch publishes: stream messages and crawl counter increments."""

    adds: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    counts: list[tuple[str, str, int]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"adds": self.adds, "counts": self.counts}, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> _Batch:
        data = json.loads(line)
        return cls([(k, dict(f)) for k, f in data["adds"]], [(k, f, int(n)) for k, f, n in data["counts"]])


def publisher_client(url: str, *, timeout: float = 2.0) -> redis.Redis:
    """A client of its own, without redis-py's internal retries: the publisher retries, briefly."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                retry=Retry(NoBackoff(), 0), health_check_interval=30)


class FeedPublisher:
    """Publishes stored records (see the module docstring). Not thread-safe: one thread at a time uses it."""

    def __init__(self, client: redis.Redis, prefix: str, *, streams: bool = True, maxlen: int = 1_000_000,
                 buffer_limit: int = 10_000, spill_dir: Path | None = None, attempts: int = 3,
                 backoff: float = 0.1, cooldown: float = 5.0, name: str = "store", stats: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.keys = FleetKeys(prefix)
        self.streams = streams
        self.maxlen = maxlen
        self.buffer_limit = max(1, buffer_limit)
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self._spool = SpoolFiles(self.spill_dir, name, _CLAIM) if self.spill_dir else None
        self._spill_failed = False  # the last spill hit a full disk (logged once until one succeeds)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.cooldown = cooldown
        self.name = name
        self.stats = stats
        self.sleep = sleep
        self._backlog: list[_Batch] = []
        self._backlog_messages = 0
        self._retry_at = 0.0  # after a failure: no new attempt before this (monotonic) time
        self._outage_started: float | None = None
        # Spill files wait (ours, or left by a worker that stopped): looked for once, then known.
        self._files_waiting = bool(self._spool and self._spool.pending())

    # -- what the feeds stage calls ---------------------------------------------------------------------------

    def publish(self, records: Sequence[Record | QuarantineRecord], *, created: Set[int] | None = None) -> bool:
        """Publish a stored batch; False when it went to the backlog instead.

        ``created``: ``id()`` of the entity records whose write inserted their document (the
        store's ``WriteResult.created``); their messages say ``insert``, the other entities' ``update``.
        None: not known, every entity message says ``upsert``."""
        batch = self.batch(records, created)
        if not batch.adds and not batch.counts:
            return True
        if self.waiting():
            if time.monotonic() < self._retry_at or not self.retry_backlog():
                self._keep(batch)
                return False
        if self._send([batch], self.attempts):
            self._inc("published", len(batch.adds))
            return True
        self._keep(batch)
        return False

    def retry_backlog(self) -> bool:
        """Publish what waits (files first, then memory), once; True when nothing waits any more."""
        if not self.waiting():
            return True
        published = 0
        if self._spool is not None:
            from_files = self._publish_files(self._spool)
            if from_files is None:
                return False
            published += from_files
        self._files_waiting = False
        if self._backlog:
            if not self._send_chunked(self._backlog):
                return False
            published += self._backlog_messages
            self._backlog, self._backlog_messages = [], 0
        if published:
            self._inc("published", published)
            self._inc("republished", published)
        if self._outage_started is not None:
            logger.info("Feeds: Redis is back after %.0f s; %d held messages published",
                        time.monotonic() - self._outage_started, published)
            self._outage_started = None
        return True

    def waiting(self) -> bool:
        """Whether a backlog (in memory or in spill files) waits to be published."""
        return bool(self._backlog) or self._files_waiting

    def retry_due(self) -> bool:
        """Whether something waits and the cooldown after the last failure is over."""
        return self.waiting() and time.monotonic() >= self._retry_at

    def backlog_size(self) -> int:
        """Messages waiting in memory (spill files not counted)."""
        return self._backlog_messages

    def close(self) -> None:
        """Keep what is still waiting on disk for the next publisher; close the client."""
        if self._backlog and not (time.monotonic() >= self._retry_at and self.retry_backlog()):
            self._spill()
        self.client.close()

    # -- building and sending ---------------------------------------------------------------------------------

    def batch(self, records: Sequence[Record | QuarantineRecord], created: Set[int] | None = None) -> _Batch:
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        batch = _Batch()
        counts: Counter[tuple[str, str]] = Counter()
        for record in records:
            if self.streams:
                batch.adds.append((self.keys.feed(record.collection), message_fields(record, at, created)))
            crawl = origin_of(record).get("crawl")
            if crawl:
                counts[(self.keys.crawl_items(crawl), record.collection)] += 1
        batch.counts = [(key, collection, n) for (key, collection), n in counts.items()]
        return batch

    def _send_chunked(self, batches: list[_Batch]) -> bool:
        chunk: list[_Batch] = []
        size = 0
        for batch in batches:
            chunk.append(batch)
            size += len(batch.adds) + len(batch.counts)
            if size >= _CHUNK:
                if not self._send(chunk, 1):
                    return False
                chunk, size = [], 0
        return not chunk or self._send(chunk, 1)

    def _send(self, batches: list[_Batch], attempts: int) -> bool:
        """One pipelined round trip for ``batches``, tried ``attempts`` times with backoff."""
        delay = self.backoff
        for attempt in range(1, attempts + 1):
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    for batch in batches:
                        for key, fields in batch.adds:
                            pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
                        for key, collection, n in batch.counts:
                            pipe.hincrby(key, collection, n)
                    results = pipe.execute(raise_on_error=False)
                transient = next((r for r in results if isinstance(r, RedisError) and _transient(r)), None)
                if transient is not None:
                    raise transient  # out of memory, read-only replica: later (what landed is sent twice)
            except RedisError as exc:  # connection refused, timeout, Redis loading or read-only
                if self._outage_started is None:
                    logger.warning("Feeds: Redis does not answer (%s); stored changes are held until it does", exc)
                if attempt < attempts:
                    self.sleep(delay)
                    delay *= 2
                continue
            refused = [r for r in results if isinstance(r, Exception)]
            if refused:  # a command Redis refuses for good (a key of another type): retrying cannot help
                self._inc("refused", len(refused))
                logger.error("Feeds: Redis refused %d of %d commands, e.g. %s", len(refused), len(results),
                             refused[0])
            return True
        if self._outage_started is None:
            self._outage_started = time.monotonic()
        self._retry_at = time.monotonic() + self.cooldown
        return False

    # -- the backlog ------------------------------------------------------------------------------------------

    def _publish_files(self, spool: SpoolFiles) -> int | None:
        """Publish the spill files, oldest first: the messages sent, or None once Redis refuses (file given back)."""
        published = 0
        for path in spool.pending():
            claim = spool.claim(path)
            if claim is None:
                continue  # another publisher took it
            batches = _load(claim)
            if not self._send_chunked(batches):
                spool.give_back(claim)
                return None
            claim.unlink()
            published += sum(len(b.adds) for b in batches)
        return published

    def _keep(self, batch: _Batch) -> None:
        self._backlog.append(batch)
        self._backlog_messages += len(batch.adds)
        self._inc("held", len(batch.adds))
        if self._backlog_messages >= self.buffer_limit:
            self._spill()

    def _spill(self) -> None:
        """Move the in-memory backlog to a spill file (kept in memory when there is no spill directory)."""
        if not self._backlog or self._spool is None:
            return
        try:
            self._spool.write(batch.to_json() for batch in self._backlog)
        except OSError as exc:  # disk full: nothing was kept on disk, so the backlog stays in memory
            self._inc("spill_failed", self._backlog_messages)
            if not self._spill_failed:
                logger.error("Feeds: cannot write %d held messages to %s (%s); they stay in memory",
                             self._backlog_messages, self.spill_dir, exc)
            self._spill_failed = True
            return
        self._spill_failed = False
        self._files_waiting = True
        self._inc("spilled", self._backlog_messages)
        logger.warning("Feeds: %d held messages written to %s until Redis is back", self._backlog_messages,
                       self.spill_dir)
        self._backlog, self._backlog_messages = [], 0

    def _inc(self, name: str, count: int) -> None:
        if self.stats is not None and count:
            self.stats.inc_value(f"livefleet/feeds/{name}", count)


def _transient(error: RedisError) -> bool:
    """A refusal that passes: Redis out of memory, unable to persist, read-only (failover), loading."""
    return isinstance(error, _TRANSIENT_ERRORS) or str(error).split(" ", 1)[0] in ("MISCONF", "MASTERDOWN")


def _load(path: Path) -> list[_Batch]:
    batches = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                batches.append(_Batch.from_json(line))
            except (ValueError, KeyError, TypeError):
                logger.error("Feeds: an unreadable line of %s is skipped: %.200s", path, line)
    return batches

