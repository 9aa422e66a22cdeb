"""Scrapy scheduler on the shared, leased Redis queue.

A worker takes requests on leases (``crawlers.queue.lease_queue.LeaseQueue``) and
settles each one when Scrapy is completely done with it:

* its response was handled and every item it produced went through the
  pipelines (so the store has them): **ack**, and only now is its URL *seen*;
* the callback raised, or an item could not be stored: **release** (back to
  the queue with one more failure; dead letter after ``LIVEFLEET_MAX_FAILURES``);
* the download failed after Scrapy's retries, or the spider gave up on the
  page (``meta["livefleet_gave_up"]``): **dead letter**, for ``livefleet queue retry-dead``;
* it was rescheduled by a retry or a redirect: the lease is handed on to the
  new request, which is queued before the old lease is dropped.

"Completely done" is the moment Scrapy's scraper finishes a response (after
the callback's output and all its items were processed), which this
scheduler observes by wrapping the scraper slot's ``finish_response``.

All Redis traffic runs on one background thread: it keeps a buffer of
``LIVEFLEET_PREFETCH`` leased requests filled (so the engine never waits for
Redis), sends pushes and acks in pipelined batches (one round trip for all the
requests a response produced), renews this worker's leases, and returns
expired leases of dead workers to the queue. Operations are sent in the order
they were made, so a response's new requests are always queued before its own
lease is acknowledged. When Redis is away, operations wait and are retried
with backoff; nothing is dropped. A worker that stops cleanly hands back what
it holds; one that dies is covered by its leases expiring.

A crawl stopped fleet-wide (``crawlers.queue.crawls.stop_crawl``: a campaign
reached its cap) is looked up by the queue thread every
``STOPPED_CHECK_SECONDS``; its requests are then dropped instead of queued,
and its leased ones are acknowledged unprocessed.

A request that cannot travel through Redis, because no other worker could
rebuild it (its callback or errback is not a method of the spider, like the
wrappers ``scrapy check`` puts on its requests and the ``Deferred`` that
``scrapy shell`` puts on its own), is kept in this process instead: a small
in-memory queue, served before the fleet's, without a lease or fleet-wide
dedup. It was made here and only makes sense here; queueing it would leave it
failing to encode forever and the engine waiting for it. ``scrapy shell``
points its request's callback at its ``Deferred`` only just after scheduling
it, so a request without a callback is looked at again one reactor turn later,
before it goes to the queue thread; and a request the queue thread still
fails to encode is handed back and kept here too.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import logging
import os
import queue as stdqueue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

import redis
from scrapy import Request, Spider, signals
from scrapy.core.scheduler import BaseScheduler
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from twisted.python.failure import Failure

from crawlers.queue.config import SchedulerConfig
from crawlers.queue.crawls import stopped_crawls
from crawlers.queue.lease_queue import DedupMode, Leased, LeaseQueue
from crawlers.redis.connection import get_redis
from crawlers.redis.keys import SpiderKeys
from models.errors import StoreUnavailableError
from settings.config import scrapy_check_running
from spiders.base import oversize_reason
from spiders.meta import CRAWL_META, GAVE_UP_META, LEASE_META

logger = logging.getLogger(__name__)

#: How often the queue thread looks up which of this worker's crawls were stopped.
STOPPED_CHECK_SECONDS = 2.0

#: Whether this process has said once why a request stays local (later ones are only counted).
_local_noted = False


def local_reason(request: Request, spider: Spider | None) -> str | None:
    """Why ``request`` cannot go through the fleet's queue (None: it can).

    Another worker rebuilds a queued request by the names of its callback and errback
    (``Request.to_dict(spider=...)``), so each must be a method of the spider; the test is
    the encoder's own, with a shortcut for the usual bound method under its own name."""
    for role in ("callback", "errback"):
        func = getattr(request, role)
        if callable(func) and not _is_spider_method(spider, func):
            return (f"its {role} {getattr(func, '__qualname__', func)!r} is not a method of the spider: no other "
                    "worker could rebuild it")
    return None


def _is_spider_method(spider: Spider | None, func: Any) -> bool:
    """What ``Request.to_dict`` requires of a callback: a method whose function is one of ``spider``'s."""
    function = getattr(func, "__func__", None)
    if spider is None or function is None:
        return False
    if getattr(getattr(spider, getattr(func, "__name__", ""), None), "__func__", None) is function:
        return True
    return any(method.__func__ is function for _, method in inspect.getmembers(spider, inspect.ismethod))


@dataclass
class _InFlight:
    """A leased request this worker handed to the engine and has not settled yet."""

    fingerprint: str
    crawl: str
    error: str | None = None
    counts: bool = True  # whether the error counts toward a dead letter
    handed_on: bool = False


class RedisScheduler(BaseScheduler):
    """Schedules through ``<prefix>:<spider>:requests`` with leases, per-crawl dedup and dead letters."""

    def __init__(self, crawler: Crawler, config: SchedulerConfig) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self.server = get_redis(config.redis_url)
        self.prefix = config.prefix
        self.prefetch = config.prefetch
        self.lease_seconds = config.lease_seconds
        self.max_failures = config.max_failures
        self.default_crawl = config.crawl or "default"
        self.dedup = DedupMode(ttl=config.seen_ttl, bloom_capacity=config.bloom_capacity,
                               bloom_error_rate=config.bloom_error_rate)
        self.background = config.background
        self.poll, self.poll_max = config.poll, config.poll_max
        self.worker_id = ""
        self.queue: LeaseQueue | None = None
        self._ready: deque[Leased] = deque()
        self._inflight: dict[str, _InFlight] = {}
        self._ops: stdqueue.SimpleQueue[tuple[Any, ...] | None] = stdqueue.SimpleQueue()
        self._unsent = 0  # pushes made but not yet in Redis
        self._unsent_lock = threading.Lock()
        self._remote_pending = 0  # queue length last seen in Redis
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._want = threading.Event()
        self._crawls: set[str] = set()  # crawls (other than the default) this worker has seen
        self._stopped: frozenset[str] = frozenset()  # ... and those stopped fleet-wide
        self._next_stopped_check = 0.0
        # Requests kept in this process (see the module docstring): (-priority, arrival, request).
        self._local: list[tuple[int, int, Request]] = []
        self._local_order = itertools.count()
        self._local_seen: set[str] = set()
        # Requests the queue thread could not encode, handed back to the reactor thread: (request, reason).
        self._diverted: stdqueue.SimpleQueue[tuple[Request, str]] = stdqueue.SimpleQueue()
        #: ``scrapy check`` runs contracts: every request stays in this process and the fleet's queue is not
        #: touched (taking from it would consume, and drop, other workers' work).
        self.checking = scrapy_check_running()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        scheduler = cls(crawler, SchedulerConfig.from_settings(crawler.settings))
        crawler.signals.connect(scheduler._spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(scheduler._spider_error, signal=signals.spider_error)
        crawler.signals.connect(scheduler._item_error, signal=signals.item_error)
        return scheduler

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self, spider: Spider) -> None:
        keys = SpiderKeys(self.prefix, spider.name)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{spider.name}"
        self.server.ping()
        self.queue = LeaseQueue(self.server, spider, keys, worker=self.worker_id, lease_seconds=self.lease_seconds,
                                max_failures=self.max_failures, dedup=self.dedup)
        if self.checking:
            logger.info("scrapy check: requests stay in this process; the fleet's queue is not read")
            return
        requeued, dead = self.queue.reap()
        if requeued or dead:
            logger.warning("Expired leases of stopped workers: %d requeued, %d dead-lettered", requeued, dead)
        self._remote_pending = len(self.queue)
        if self._remote_pending:
            logger.info("Joining a crawl in progress: %d requests queued in %s", self._remote_pending, keys.requests)
        if self.background:
            self._thread = threading.Thread(target=self._run, name=f"livefleet-queue-{spider.name}", daemon=True)
            self._thread.start()

    def close(self, reason: str) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._ops.put(None)
            self._thread.join(timeout=60)
            self._thread = None
        if self.queue is None:
            return
        # Hand back what this worker took but will not finish: not a failure.
        held = [(item.lease, item.crawl) for item in self._ready]
        held += [(lease, state.crawl) for lease, state in self._inflight.items()]
        self._ready.clear()
        self._inflight.clear()
        for attempt in range(5):
            try:
                with self.server.pipeline(transaction=False) as pipe:
                    for lease, crawl in held:
                        self.queue.release(lease, f"returned by {self.worker_id}", crawl=crawl, failed=False,
                                           client=pipe)
                    pipe.execute()
                break
            except redis.RedisError as exc:
                logger.warning("Returning %d leases failed (%s); retrying", len(held), exc)
                time.sleep(0.5 * (attempt + 1))
        else:
            logger.error("Could not return %d leases: they come back when they expire", len(held))
            return
        if held:
            logger.info("Returned %d leased requests to the shared queue", len(held))

    def _spider_opened(self, spider: Spider) -> None:
        """Observe the end of each response's processing (see the module docstring)."""
        slot = self.crawler.engine.scraper.slot
        finish = slot.finish_response

        def finish_response(result: Response | Failure, request: Request) -> None:
            finish(result, request)
            self._settle(result, request)

        slot.finish_response = finish_response  # type: ignore[method-assign]

    # -- Scrapy's scheduler interface -----------------------------------------------------------

    def enqueue_request(self, request: Request) -> bool:
        assert self.queue is not None, "scheduler not opened"
        fingerprint = self.crawler.request_fingerprinter.fingerprint(request).hex()
        crawl = request.meta.get(CRAWL_META) or self.default_crawl
        lease = request.meta.pop(LEASE_META, None)
        if crawl != self.default_crawl:
            self._crawls.add(crawl)
            if crawl in self._stopped:
                self.stats.inc_value("livefleet/queue/dropped_stopped")
                return False
        reason = "scrapy check runs in this process" if self.checking else local_reason(request, self.crawler.spider)
        if reason is not None:
            return self._keep_local(request, fingerprint, reason)
        handed_on = None
        if lease is not None:
            state = self._inflight.get(lease)
            if state is not None and not state.handed_on:  # a retry or redirect of a leased request
                state.handed_on = True
                handed_on = lease
        with self._unsent_lock:
            self._unsent += 1
        if request.callback is None and self.background:
            from twisted.internet import reactor

            if reactor.running:  # type: ignore[attr-defined]
                # It may get its callback right after this (scrapy shell): look again on the next turn.
                reactor.callLater(0, self._push_when_settled, request, fingerprint,  # type: ignore[attr-defined]
                                  crawl, handed_on)
                return True
        self._push(request, fingerprint, crawl, handed_on)
        return True

    def _push(self, request: Request, fingerprint: str, crawl: str, handed_on: str | None) -> None:
        """Queue ``request``; then drop the lease it was handed on from (a retry's or redirect's)."""
        self._submit(("push", request, fingerprint, crawl))
        if handed_on is not None:
            self._submit(("forget", handed_on))

    def _push_when_settled(self, request: Request, fingerprint: str, crawl: str, handed_on: str | None) -> None:
        """Queue a request scheduled without a callback, unless it has since got one no other worker could rebuild."""
        reason = local_reason(request, self.crawler.spider)
        if reason is None:
            self._push(request, fingerprint, crawl, handed_on)
            return
        if handed_on is not None:
            self._submit(("forget", handed_on))
        self._keep_local(request, fingerprint, reason)
        with self._unsent_lock:
            self._unsent -= 1
        slot = getattr(self.crawler.engine, "_slot", None)
        if slot is not None:
            slot.nextcall.schedule()

    def _keep_local(self, request: Request, fingerprint: str, reason: str, *, dedup: bool = True) -> bool:
        """Schedule ``request`` in this process's memory (deduplicated within it, unless ``dont_filter``)."""
        global _local_noted
        if dedup and not request.dont_filter:
            if fingerprint in self._local_seen:
                self.stats.inc_value("livefleet/queue/local_duplicate")
                return False
            self._local_seen.add(fingerprint)
        if not _local_noted:
            _local_noted = True
            logger.info("Request %s kept in this process, not the fleet's queue: %s. Further ones are only "
                        "counted (livefleet/queue/local).", request.url, reason)
        self.stats.inc_value("livefleet/queue/local")
        heapq.heappush(self._local, (-request.priority, next(self._local_order), request))
        return True

    def _take_diverted(self) -> None:
        """Keep locally what the queue thread could not encode (on the reactor thread, like the local queue)."""
        while not self._diverted.empty():
            request, reason = self._diverted.get_nowait()
            self._keep_local(request, "", reason, dedup=False)

    def next_request(self) -> Request | None:
        self._take_diverted()
        if self._local:  # made here, for here: ahead of the fleet's queue
            return heapq.heappop(self._local)[2]
        if not self._ready:
            if self.background:
                self._want.set()
                self._ops.put(("want",))
                return None
            self._take()
            if not self._ready:
                return None
        item = self._ready.popleft()
        while item.crawl in self._stopped:  # its crawl was stopped: settled without being fetched
            self.stats.inc_value("livefleet/queue/dropped_stopped")
            self._submit(("ack", item.lease, item.fingerprint, item.crawl))
            if not self._ready:
                return None
            item = self._ready.popleft()
        self._inflight[item.lease] = _InFlight(item.fingerprint, item.crawl)
        self.stats.inc_value("livefleet/queue/dequeued")
        if len(self._ready) <= self.prefetch // 2 and self.background:
            self._ops.put(("want",))
        return item.request

    def has_pending_requests(self) -> bool:
        self._take_diverted()
        return bool(self._local) or bool(self._ready) or self._unsent > 0 or self._remote_pending > 0

    def __len__(self) -> int:
        self._take_diverted()
        return len(self._local) + len(self._ready) + self._unsent + self._remote_pending

    @property
    def prefetched(self) -> int:
        """Requests this worker has leased but not started yet."""
        return len(self._ready)

    @property
    def leased(self) -> int:
        """Leases this worker holds (prefetched plus in progress)."""
        return len(self._ready) + len(self._inflight)

    def fleet_busy(self) -> bool:
        """Whether any worker of the fleet holds a lease or any request is queued (one Redis call)."""
        assert self.queue is not None
        with self.server.pipeline(transaction=False) as pipe:
            pipe.zcard(self.queue.keys.requests)
            pipe.zcard(self.queue.keys.leases)
            queued, leased = pipe.execute()
        self._remote_pending = int(queued)
        return bool(queued or leased)

    # -- settling -------------------------------------------------------------------------------

    def _request_of(self, response: Any) -> Request | None:
        return getattr(response, "request", None)

    def _spider_error(self, failure: Failure, response: Any, spider: Spider) -> None:
        self._mark_failed(self._request_of(response), f"callback error: {failure.type.__name__}: "
                                                       f"{failure.getErrorMessage()}")

    def _item_error(self, item: Any, response: Any, spider: Spider, failure: Failure) -> None:
        # The store being away is not the request's fault: it goes back without a failure counted.
        self._mark_failed(self._request_of(response), f"item not stored: {failure.type.__name__}: "
                                                       f"{failure.getErrorMessage()}",
                          counts=not failure.check(StoreUnavailableError))

    def _mark_failed(self, request: Request | None, error: str, counts: bool = True) -> None:
        lease = request.meta.get(LEASE_META) if request is not None else None
        state = self._inflight.get(lease) if lease else None
        if state is not None and state.error is None:
            state.error, state.counts = error, counts

    def _settle(self, result: Response | Failure, request: Request) -> None:
        lease = request.meta.get(LEASE_META)
        state = self._inflight.pop(lease, None) if lease else None
        if state is None or state.handed_on:
            return
        if isinstance(result, Failure):
            if result.check(IgnoreRequest) or oversize_reason(result) is not None:
                # Ignored, or a body over the size limit that the spider quarantined: fetching it
                # again would give the same answer, so it is done, not failed.
                self._submit(("ack", lease, state.fingerprint, state.crawl))
            else:
                error = f"download failed: {result.type.__name__}: {result.getErrorMessage()}"
                self._submit(("release", lease, state.crawl, error, True))
        elif state.error is not None:
            self._submit(("release", lease, state.crawl, state.error, False, state.counts))
        elif request.meta.get(GAVE_UP_META):
            self._submit(("release", lease, state.crawl, f"gave up: {request.meta[GAVE_UP_META]}", True))
        else:
            self._submit(("ack", lease, state.fingerprint, state.crawl))

    # -- Redis traffic --------------------------------------------------------------------------

    def _submit(self, op: tuple[Any, ...]) -> None:
        if self.background:
            self._ops.put(op)
        else:
            self._send([op])

    def _send(self, ops: list[tuple[Any, ...]]) -> None:
        """Send operations in one pipeline, in order. Raises RedisError (the caller retries)."""
        assert self.queue is not None
        kinds = []
        diverted = 0
        with self.server.pipeline(transaction=False) as pipe:
            for op in ops:
                kind = op[0]
                if kind == "push":
                    try:
                        self.queue.push(op[1], op[2], op[3], client=pipe)
                    except (TypeError, ValueError) as exc:  # it changed after it was scheduled: kept here
                        self._divert(op[1], f"it could not be encoded for the fleet's queue ({exc})")
                        diverted += 1
                        continue
                elif kind == "forget":
                    self.queue.forget(op[1], client=pipe)
                elif kind == "ack":
                    self.queue.ack(op[1], op[2], op[3], client=pipe)
                elif kind == "release":
                    self.queue.release(op[1], op[3], crawl=op[2], final=op[4],
                                       failed=op[5] if len(op) > 5 else True, client=pipe)
                else:
                    continue
                kinds.append(op)
            if diverted:
                with self._unsent_lock:
                    self._unsent -= diverted
            if not kinds:
                return
            pipe.zcard(self.queue.keys.requests)
            results = pipe.execute()
        self._remote_pending = int(results[-1])
        pushes = 0
        for op, result in zip(kinds, results, strict=False):
            kind = op[0]
            if kind == "push":
                pushes += 1
                self.stats.inc_value("livefleet/queue/enqueued" if result else "livefleet/queue/duplicate")
            elif kind == "ack":
                self.stats.inc_value("livefleet/queue/acked" if result else "livefleet/queue/acked_late")
            elif kind == "release" and int(result) > 0:  # -1: the lease's crawl was not the one given
                self.stats.inc_value("livefleet/queue/dead" if result == 2 else "livefleet/queue/released")
        if pushes:
            with self._unsent_lock:
                self._unsent -= pushes

    def _divert(self, request: Request, reason: str) -> None:
        """Hand a request the queue cannot take back to the reactor thread, and wake the engine for it."""
        self._diverted.put((request, reason))
        if self.background:
            self._wake_engine()

    def _take(self) -> int:
        assert self.queue is not None
        self._refresh_stopped()
        wanted = self.prefetch - len(self._ready)
        if wanted <= 0:
            return 0
        taken = self.queue.take(wanted)
        self._ready.extend(taken)
        self._crawls.update(item.crawl for item in taken if item.crawl != self.default_crawl)
        if not taken:
            self._remote_pending = len(self.queue)
        return len(taken)

    def _refresh_stopped(self) -> None:
        """Look up which of this worker's crawls are stopped fleet-wide (every ``STOPPED_CHECK_SECONDS``)."""
        now = time.monotonic()
        if self._crawls and now >= self._next_stopped_check:
            self._stopped = frozenset(stopped_crawls(self.server, self.prefix, list(self._crawls)))
            self._next_stopped_check = now + STOPPED_CHECK_SECONDS

    def _run(self) -> None:
        """The queue thread: batches operations, keeps the prefetch buffer full, renews and reaps leases."""
        assert self.queue is not None
        backlog: list[tuple[Any, ...]] = []
        wait = self.poll
        next_take = 0.0
        renew_every = max(0.2, self.lease_seconds / 3)
        next_renew = time.monotonic() + renew_every
        next_reap = time.monotonic() + renew_every * 1.5
        error_wait = 0.1
        while True:
            stopping = self._stopping.is_set()
            try:
                op = self._ops.get(timeout=0 if backlog else wait)
                if op is not None:
                    backlog.append(op)
                while len(backlog) < 1000:
                    op = self._ops.get_nowait()
                    if op is not None:
                        backlog.append(op)
            except stdqueue.Empty:
                pass
            try:
                if backlog:
                    pushed = any(op[0] == "push" for op in backlog)
                    self._send(backlog)
                    backlog = []
                    if pushed:  # our own new requests: take them without waiting for the next poll
                        next_take, wait = 0.0, self.poll
                if stopping:
                    return
                now = time.monotonic()
                want = self._want.is_set() or len(self._ready) <= self.prefetch // 2
                if want and now >= next_take:
                    was_empty = not self._ready
                    if self._take():
                        self._want.clear()
                        wait = 0.0 if len(self._ready) < self.prefetch else self.poll
                        if was_empty:
                            self._wake_engine()
                    else:  # nothing queued anywhere: look again later, less often while it stays so
                        next_take = now + wait
                        wait = min(max(wait * 2, self.poll), self.poll_max)
                else:
                    wait = self.poll if not self._ready else min(self.poll * 4, self.poll_max)
                if now >= next_renew:
                    held = [item.lease for item in list(self._ready)] + list(self._inflight)
                    self.queue.renew(held)
                    next_renew = now + renew_every
                if now >= next_reap:
                    requeued, dead = self.queue.reap()
                    if requeued or dead:
                        logger.warning("Expired leases: %d requeued, %d dead-lettered", requeued, dead)
                        self.stats.inc_value("livefleet/queue/expired", requeued + dead)
                    next_reap = now + renew_every * 1.5
                error_wait = 0.1
            except redis.RedisError as exc:
                if stopping and error_wait > 5:
                    logger.error("Redis unreachable at shutdown: %d operations not sent", len(backlog))
                    return
                logger.warning("Redis unavailable (%s): retrying in %.1fs, %d operations kept",
                               exc, error_wait, len(backlog))
                time.sleep(error_wait)
                error_wait = min(error_wait * 2, 10.0)
            except Exception:  # a bug here must not silently stop the worker's queue
                logger.exception("Queue thread error")
                time.sleep(1.0)

    def _wake_engine(self) -> None:
        from twisted.internet import reactor

        def wake() -> None:
            slot = getattr(self.crawler.engine, "_slot", None)
            if slot is not None:
                slot.nextcall.schedule()

        reactor.callFromThread(wake)  # type: ignore[attr-defined]
