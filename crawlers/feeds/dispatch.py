"""The webhook dispatcher: reads the feeds, queues each subscription's bodies, one worker per subscription.

The reading loop never talks to a receiver. Each round it reads every feed
through the consumer group ``livefleet-webhooks``, builds one body per
subscription with matching messages, and in one Redis transaction appends
each body to its subscription's queue (``<prefix>:webhooks:outbox:<id>``) and
acknowledges the messages. So nothing is lost when the dispatcher dies
(the queue is in Redis), and a receiver that is slow, hangs or refuses
delays nobody else: each active subscription has its own worker thread that
moves one body at a time to its in-flight list
(``<prefix>:webhooks:inflight:<consumer>:<id>``, put back at the head of the
queue when a dispatcher of that name starts again), delivers it (bounded in
time, ``crawlers.feeds.delivery``), then drops it, or keeps it in the
failures list. A queue holds at most ``queue_limit`` bodies: beyond, a body
goes straight to the failures list (for ``livefleet webhooks replay``).

A subscription that cannot be delivered to is parked (``park_webhook``), with
its reason, instead of stopping anything: a URL refused by the check (also
one stored before the check existed: checked at start), or ``park_after``
deliveries in a row that failed. Its events keep waiting in its queue until
it is enabled again. Every delivery is wrapped so that no error of one
subscription reaches the loop; a repeating problem is logged once, then
counted (``delivered``, ``failed``, ``parked``, ``overflowed``, ``errors``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

import redis

from crawlers.feeds.delivery import Delivery, deliver
from crawlers.feeds.message import COLLECTIONS, FeedMessage
from crawlers.feeds.streams import FeedReader
from crawlers.feeds.urlcheck import AllowList, Resolver, UrlRefused, check_url
from crawlers.feeds.webhooks import GROUP, Subscription, keep_failure, list_webhooks, outbox_key, park_webhook
from crawlers.redis.keys import FleetKeys

logger = logging.getLogger(__name__)


def _no_dns(host: str, port: int) -> list[str]:
    raise OSError("names are resolved before each delivery, not here")


class WebhookDispatcher:
    """Reads the feeds with its own consumer group and delivers matching messages to subscriptions."""

    def __init__(self, server: redis.Redis, prefix: str, *, consumer: str | None = None, count: int = 100,
                 attempts: int = 5, backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0,
                 connect_timeout: float = 5.0, claim_idle_ms: int = 60_000, collections: Iterable[str] = COLLECTIONS,
                 allow: AllowList | str | None = None, park_after: int = 10, queue_limit: int = 10_000,
                 poll: float = 0.5, resolver: Resolver | None = None) -> None:
        self.server = server
        self.prefix = prefix
        self.keys = FleetKeys(prefix)
        self.count = count
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.allow = AllowList.of(allow)
        self.park_after, self.queue_limit, self.poll, self.resolver = max(1, park_after), queue_limit, poll, resolver
        self.consumer = consumer or socket.gethostname()
        self.readers = [FeedReader(server, prefix, c, GROUP, self.consumer, claim_idle_ms=claim_idle_ms)
                        for c in collections]
        self.delivered = self.failed = self.parked = self.overflowed = self.errors = 0
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._workers: dict[str, _Worker] = {}
        self._subscriptions: list[Subscription] = []
        self._logged: set[str] = set()

    def count_up(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def log_once(self, key: str, message: str, *args: Any) -> None:
        """A repeating problem is logged once (at WARNING), then only counted (DEBUG)."""
        with self._lock:
            first = key not in self._logged
            self._logged.add(key)
        logger.log(logging.WARNING if first else logging.DEBUG, message, *args)

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop the workers; ``drain``: first let them deliver what waits in their queues (up to ``timeout``).

        Without draining, a delivery under way is abandoned and its body stays
        in flight, put back in the queue when a dispatcher of this name starts."""
        workers = list(self._workers.values())
        if drain:
            self._draining.set()
            for worker in workers:
                worker.wake.set()
            for worker in workers:
                worker.thread.join(timeout)
        for worker in workers:
            worker.stop.set()
        for worker in workers:
            worker.thread.join(max(1.0, self.connect_timeout))
        self._workers.clear()

    def run(self, stop: threading.Event, *, poll: float = 1.0) -> None:
        """Deliver until ``stop`` is set; waits ``poll`` seconds when the feeds are quiet or Redis is away."""
        while not stop.is_set():
            try:
                handled = self.run_once()
            except Exception as exc:  # noqa: BLE001 (Redis away, or a bug: the loop goes on, saying so once)
                self.count_up("errors")
                self.log_once(f"loop:{type(exc).__name__}", "Webhook dispatcher round failed (%s: %s); going on",
                              type(exc).__name__, exc)
                handled = 0
            if not handled:
                stop.wait(poll)

    def run_once(self) -> int:
        """One round over every feed: queue the matching bodies; returns how many feed messages were handled."""
        self._sync()
        handled = 0
        for reader in self.readers:
            messages = reader.read(self.count)
            if not messages:
                continue
            bodies = []
            for sub in self._subscriptions:
                events = [m for m in messages if sub.matches(m)]
                if events:
                    bodies.append((sub, _body(sub, events)))
            self._enqueue(reader, messages, bodies)
            handled += len(messages)
        return handled

    def _sync(self) -> None:
        """Park subscriptions whose stored URL is refused; one worker per active subscription, no more."""
        subscriptions = []
        for sub in list_webhooks(self.server, self.prefix):
            if not sub.parked:
                try:
                    check_url(sub.url, self.allow, resolver=_no_dns)
                except UrlRefused as exc:
                    self._park(sub, str(exc))
                    sub = dataclasses.replace(sub, parked_at="now", parked_reason=str(exc))
            subscriptions.append(sub)
        self._subscriptions = subscriptions
        active = {s.id: s for s in subscriptions if not s.parked}
        for sub_id, worker in list(self._workers.items()):
            if sub_id not in active or not worker.thread.is_alive():
                worker.stop.set()
                del self._workers[sub_id]
        for sub_id, sub in active.items():
            if sub_id in self._workers:
                self._workers[sub_id].sub = sub  # a new secret takes effect with the next delivery
            else:
                self._workers[sub_id] = _Worker(self, sub)

    def _enqueue(self, reader: FeedReader, messages: list[FeedMessage], bodies: list[tuple[Subscription, bytes]]
                 ) -> None:
        with self.server.pipeline(transaction=False) as pipe:
            for sub, _ in bodies:
                pipe.llen(outbox_key(self.prefix, sub.id))
            waiting = pipe.execute()
        with self.server.pipeline(transaction=True) as pipe:
            for (sub, body), queued in zip(bodies, waiting, strict=True):
                if queued >= self.queue_limit:
                    self.count_up("overflowed")
                    self.log_once(f"full:{sub.id}", "Webhook %s: %d deliveries wait already; keeping new ones "
                                  "as failures (livefleet webhooks replay)", sub.id, queued)
                    keep_failure(pipe, self.prefix, sub, body, Delivery(
                        False, 0, None, f"not queued: {queued} deliveries already wait for this receiver"))
                else:
                    pipe.rpush(outbox_key(self.prefix, sub.id), body)
            pipe.xack(reader.key, reader.group, *(m.id for m in messages))
            pipe.execute()
        for sub, _ in bodies:
            worker = self._workers.get(sub.id)
            if worker is not None:
                worker.wake.set()

    def _park(self, sub: Subscription, reason: str) -> None:
        self.count_up("parked")
        park_webhook(self.server, self.prefix, sub.id, reason)


def _body(sub: Subscription, events: list[FeedMessage]) -> bytes:
    return json.dumps({"subscription": sub.id, "campaign": sub.campaign, "monitor": sub.monitor,
                       "events": [m.to_json_dict() for m in events]}, ensure_ascii=False).encode()


class _Worker:
    """Delivers one subscription's queue, one body at a time, on its own thread."""

    def __init__(self, dispatcher: WebhookDispatcher, sub: Subscription) -> None:
        self.d, self.sub = dispatcher, sub
        self.stop, self.wake = threading.Event(), threading.Event()
        self.outbox = outbox_key(dispatcher.prefix, sub.id)
        self.inflight = f"{dispatcher.keys.webhooks}:inflight:{dispatcher.consumer}:{sub.id}"
        self.in_a_row = 0
        self.thread = threading.Thread(target=self._run, name=f"livefleet-webhook-{sub.id}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        restored = False
        while not self.stop.is_set():
            try:
                if not restored:  # what a dispatcher of this name had in flight when it stopped goes first
                    while self.d.server.lmove(self.inflight, self.outbox, "RIGHT", "LEFT") is not None:
                        pass
                    restored = True
                self.wake.clear()
                raw = self.d.server.lmove(self.outbox, self.inflight, "LEFT", "RIGHT")
                if raw is None:
                    if self.d._draining.is_set():
                        return
                    self.wake.wait(self.d.poll)
                    continue
                if not self._deliver(raw):
                    return
            except Exception as exc:  # noqa: BLE001 (Redis away, or a bug: this subscription waits, nobody else)
                self.d.count_up("errors")
                self.d.log_once(f"worker:{self.sub.id}:{type(exc).__name__}", "Webhook %s: %s: %s; retrying",
                                self.sub.id, type(exc).__name__, exc)
                self.stop.wait(self.d.poll)

    def _deliver(self, raw: bytes) -> bool:
        """Deliver one body; False when this worker should stop (parked, or the dispatcher is stopping)."""
        d, sub = self.d, self.sub
        try:
            result = deliver(sub.url, sub.secret, raw, attempts=d.attempts, backoff=d.backoff,
                             max_backoff=d.max_backoff, timeout=d.timeout, connect_timeout=d.connect_timeout,
                             sleep=self.stop.wait, allow=d.allow, resolver=d.resolver, cancel=self.stop)
        except Exception as exc:  # noqa: BLE001 (deliver does not raise; should it, the body is kept as failed)
            result = Delivery(False, 1, None, f"{type(exc).__name__}: {exc}")
        if result.ok:
            d.server.lrem(self.inflight, 1, raw)
            d.count_up("delivered")
            self.in_a_row = 0
            return True
        if result.refused:  # the body waits at the head of the queue for the subscription to be enabled
            d.server.lmove(self.inflight, self.outbox, "RIGHT", "LEFT")
            d._park(sub, result.error or "refused")
            return False
        if self.stop.is_set():
            return False  # abandoned mid-delivery: it stays in flight, put back when a dispatcher starts
        with d.server.pipeline(transaction=True) as pipe:
            keep_failure(pipe, d.prefix, sub, raw, result)
            pipe.lrem(self.inflight, 1, raw)
            pipe.execute()
        d.count_up("failed")
        self.in_a_row += 1
        d.log_once(f"failed:{sub.id}", "Webhook %s to %s failed after %d attempts (%s): kept for replay",
                   sub.id, sub.url, result.attempts, result.error)
        if self.in_a_row >= d.park_after:
            d._park(sub, f"{self.in_a_row} deliveries in a row failed, the last: {result.error}")
            return False
        return True
