"""The shared request queue, with leases: a request is taken on a lease and settled later.

Pending requests wait in a Redis sorted set. Score = ``-priority * 2**32 + seq``,
so higher priorities come first and requests of one priority come out in
arrival order (``seq`` is a Redis counter). A member is ``"<seq>|<failures>|<json>"``:
the sequence makes every entry unique (two equal requests never collapse into
one), the failure count travels with the request, and the JSON is an
:class:`Entry` (the request's ``to_dict()``, its fingerprint and its crawl).

Every step is one Lua script (``crawlers/queue/scripts.py``), so it is atomic across the fleet:

* **push**: skip the request when its fingerprint is already queued or leased
  in its crawl (``dedup:<crawl>:queued``) or was handled in that crawl
  (``dedup:<crawl>:seen``, or the crawl's Bloom filter); otherwise queue it.
* **take**: ZPOPMIN the best requests and record a lease for each (deadline in
  Redis server time, so workers on different machines agree).
* **ack**: the request was handled and its items stored: drop the lease, move
  the fingerprint from *queued* to *seen*. Only now does the URL count as seen.
* **release**: handling failed (the callback raised, an item could not be
  stored): the request goes back with its original score and one more
  failure, or to the dead letters after ``max_failures``.
* **dead**: the request failed after its retries (download errors): dead letter.
* **reap**: leases whose deadline passed (worker killed, machine lost) go back
  to the queue, counted as a failure, so a request that keeps killing its
  worker ends in the dead letters too.
* **renew**: a live worker pushes its leases' deadlines forward.
* **retry_dead**: dead letters go back to the queue (``livefleet queue retry-dead``).

Delivery is at least once; stores are idempotent upserts, so data lands once.

Every script gets every key it touches in ``KEYS`` (Redis requires it of scripts
under replication and in Cluster, where it routes a script by its keys); none
builds a key name. A step that needs a crawl's key for a request it has not
read yet (reap, release without a crawl, retry-dead) reads the request first,
derives its crawl's key here, and the script checks that what it was given is
still what is there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from scrapy import Request, Spider
from scrapy.utils.request import request_from_dict
from scrapy_redis.queue import Base

from crawlers.queue import serialize
from crawlers.queue.bloom import BloomSpec
from crawlers.queue.scripts import ACK, EXPIRED, FORGET, PUSH, REAP, RELEASE, RENEW, RETRY_DEAD, TAKE
from crawlers.redis.keys import SpiderKeys
from spiders.meta import CRAWL_META, LEASE_META, WORKER_LOCAL_HEADERS, WORKER_LOCAL_META

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DedupMode:
    """How a crawl remembers handled fingerprints: a Redis set, or a Bloom filter."""

    ttl: int = 0
    bloom_capacity: int = 0
    bloom_error_rate: float = 0.001

    @property
    def bloom(self) -> bool:
        return self.bloom_capacity > 0


@dataclass
class Leased:
    """A request taken from the queue, with its lease."""

    lease: str
    request: Request
    fingerprint: str
    crawl: str


class LeaseQueue(Base):
    """The leased priority queue of one spider, shared by every worker.

    A scrapy-redis queue (``push``/``pop``/``__len__``/``clear``, JSON serializer)
    whose ``pop`` leases instead of deleting; the scheduler uses the batched
    ``take`` and settles each lease with ``ack``, ``release`` or ``forget``.
    """

    def __init__(self, server: redis.Redis, spider: Spider, keys: SpiderKeys, *, worker: str,
                 lease_seconds: float = 60.0, max_failures: int = 3, dedup: DedupMode | None = None) -> None:
        super().__init__(server, spider, keys.requests, serializer=serialize)
        self.keys = keys
        self.worker = worker
        self.lease_ms = int(lease_seconds * 1000)
        self.max_failures = max(1, max_failures)
        self.dedup = dedup or DedupMode()
        self._scripts = {name: server.register_script(src) for name, src in (
            ("push", PUSH), ("take", TAKE), ("ack", ACK), ("forget", FORGET), ("release", RELEASE),
            ("expired", EXPIRED), ("reap", REAP), ("renew", RENEW))}
        self._bloom: BloomSpec | None = None
        if self.dedup.bloom:
            self._bloom = BloomSpec(self.dedup.bloom_capacity, self.dedup.bloom_error_rate)
        self._bad_logged = False

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, request: Request, fingerprint: str, crawl: str) -> str:
        data = request.to_dict(spider=self.spider)
        # Worker-local state (live browser objects, the last download's latency, the lease) stays behind.
        data["meta"] = {k: v for k, v in data.get("meta", {}).items() if k not in WORKER_LOCAL_META}
        headers = data.get("headers")
        if headers:  # a proxy's credentials never reach Redis
            data["headers"] = {k: v for k, v in headers.items()
                               if (k.decode("latin-1") if isinstance(k, bytes) else str(k)).lower()
                               not in WORKER_LOCAL_HEADERS}
        return serialize.dumps({"fp": fingerprint, "c": crawl, "r": data})

    def decode(self, member: bytes | str) -> tuple[Request, str, str]:
        text = member.decode("utf-8") if isinstance(member, bytes) else member
        body = text.split("|", 2)[2]
        entry = serialize.loads(body)
        request = request_from_dict(entry["r"], spider=self.spider)
        return request, entry.get("fp") or "", entry.get("c") or "default"

    def _seen_key(self, crawl: str) -> str:
        return self.keys.bloom(crawl) if self.dedup.bloom else self.keys.seen(crawl)

    def _seen_args(self, fingerprint: str) -> list[Any]:
        if self._bloom is None or not fingerprint:
            return ["set"]
        return ["bloom", self._bloom.bits, *self._bloom.positions(fingerprint)]

    # -- operations (each takes an optional pipeline, to batch round trips) --------------------

    def push(self, request: Request, fingerprint: str = "", crawl: str = "default", *, client: Any = None) -> Any:
        """Queue ``request`` unless its fingerprint is queued or handled in ``crawl``; 1 if queued."""
        keys = [self.keys.requests, self.keys.sequence, self.keys.queued(crawl), self._seen_key(crawl)]
        args = [request.priority, self.encode(request, fingerprint, crawl), fingerprint,
                "0" if request.dont_filter else "1", self.dedup.ttl, *self._seen_args(fingerprint)]
        return self._scripts["push"](keys=keys, args=args, client=client)

    def take(self, count: int) -> list[Leased]:
        """Lease up to ``count`` requests, best first; atomic across workers."""
        raw = self._scripts["take"](
            keys=[self.keys.requests, self.keys.leases, self.keys.leased, self.keys.lease_sequence],
            args=[count, self.lease_ms, self.worker])
        taken: list[Leased] = []
        for i in range(0, len(raw), 2):
            lease = raw[i].decode() if isinstance(raw[i], bytes) else raw[i]
            try:
                request, fingerprint, crawl = self.decode(raw[i + 1])
            except Exception as exc:  # a request we cannot rebuild is a dead letter, not a loss
                self.release(lease, f"undecodable: {exc}", final=True)
                if not self._bad_logged:
                    logger.error("Undecodable request dead-lettered (%s); further ones are only counted", exc)
                    self._bad_logged = True
                continue
            request.meta[LEASE_META] = lease
            request.meta.setdefault(CRAWL_META, crawl)
            taken.append(Leased(lease, request, fingerprint, crawl))
        return taken

    def pop(self, timeout: int = 0) -> Request | None:
        """scrapy-redis's interface: one leased request (its lease id in ``meta``), or None."""
        taken = self.take(1)
        return taken[0].request if taken else None

    def ack(self, lease: str, fingerprint: str, crawl: str, *, client: Any = None) -> Any:
        keys = [self.keys.leases, self.keys.leased, self.keys.queued(crawl), self._seen_key(crawl)]
        return self._scripts["ack"](keys=keys, args=[lease, fingerprint, self.dedup.ttl,
                                                     *self._seen_args(fingerprint)], client=client)

    def forget(self, lease: str, *, client: Any = None) -> Any:
        """Drop a lease whose request was handed on (its retry or redirect is queued)."""
        return self._scripts["forget"](keys=[self.keys.leases, self.keys.leased], args=[lease], client=client)

    def release(self, lease: str, error: str, *, crawl: str | None = None, final: bool = False,
                failed: bool = True, client: Any = None) -> Any:
        """A failed delivery: back to the queue, or to the dead letters (``final``, or too many
        failures). ``failed=False`` hands a request back untouched (a worker stopping cleanly).

        ``crawl`` is the lease's crawl (the scheduler knows it); without it, the lease is read
        first (one more round trip, outside ``client``). Returns 1 (requeued), 2 (dead), 0 (no
        such lease) or -1 (the lease is of another crawl: nothing done)."""
        if crawl is None:
            crawl = self._crawl_of(self.server.hget(self.keys.leased, lease))
        keys = [self.keys.leases, self.keys.leased, self.keys.requests, self.keys.dead, self.keys.queued(crawl)]
        limit = 0 if final else (self.max_failures if failed else -1)
        args = [lease, limit, error[:2000], self.worker, crawl]
        return self._scripts["release"](keys=keys, args=args, client=client)

    @staticmethod
    def _crawl_of(record: bytes | str | None) -> str:
        """The crawl of a leased record (``"<score> <seq>|<failures>|<json>"``), as the scripts read it."""
        if record is None:
            return "default"
        text = record.decode("utf-8", "replace") if isinstance(record, bytes) else record
        parts = text.split("|", 2)
        return crawl_of_entry(parts[2]) if len(parts) == 3 else "default"

    def renew(self, leases: Sequence[str], *, client: Any = None) -> Any:
        if not leases:
            return 0
        return self._scripts["renew"](keys=[self.keys.leases], args=[self.lease_ms, *leases], client=client)

    def reap(self, limit: int = 500) -> tuple[int, int]:
        """Return expired leases to the queue; (requeued, dead-lettered).

        The expired leases are read first and settled per crawl, each with its crawl's dedup
        key; a lease renewed in between is left alone."""
        raw = self._scripts["expired"](keys=[self.keys.leases, self.keys.leased], args=[limit])
        by_crawl: dict[str, list[str]] = {}
        for i in range(0, len(raw), 2):
            lease = raw[i].decode() if isinstance(raw[i], bytes) else raw[i]
            by_crawl.setdefault(self._crawl_of(raw[i + 1] or None), []).append(lease)
        requeued = dead = 0
        for crawl, leases in by_crawl.items():
            keys = [self.keys.leases, self.keys.leased, self.keys.requests, self.keys.dead, self.keys.queued(crawl)]
            back, lost = self._scripts["reap"](keys=keys, args=[self.max_failures, crawl, *leases])
            requeued, dead = requeued + int(back), dead + int(lost)
        return requeued, dead

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.server.zcard(self.keys.requests))

    def leased_count(self) -> int:
        return int(self.server.zcard(self.keys.leases))

    def clear(self) -> None:
        """Delete the queue. Only explicit admin commands call this, never a worker's shutdown."""
        self.server.delete(self.keys.requests, self.keys.sequence)


def crawl_of_entry(body: str) -> str:
    """The crawl of a queue entry's JSON (``"default"`` when it names none or cannot be read)."""
    try:
        entry = json.loads(body)
    except ValueError:
        return "default"
    return str(entry.get("c") or "default") if isinstance(entry, dict) else "default"


def dead_letters(server: redis.Redis, keys: SpiderKeys, limit: int = 100) -> list[dict[str, Any]]:
    """The oldest dead letters, decoded for people: URL, error, attempts, worker, time."""
    letters = []
    for raw in server.lrange(keys.dead, 0, max(0, limit - 1)):
        letter = json.loads(raw)
        try:
            entry = json.loads(letter["entry"])
            url = entry["r"].get("url")
        except (ValueError, KeyError, TypeError):
            url = None
        letters.append({"url": url, "error": letter.get("error"), "attempts": letter.get("attempts"),
                        "worker": letter.get("worker"), "at": letter.get("at")})
    return letters


def retry_dead(server: redis.Redis, keys: SpiderKeys, limit: int = 1_000_000, *, batch: int = 500) -> int:
    """Put dead letters back into the queue (``livefleet queue retry-dead``).

    Letters are read from the list's head in batches; each batch goes back in one script
    given the queued sets of the batch's crawls, while the head is still what was read."""
    script = server.register_script(RETRY_DEAD)
    moved = 0
    while moved < limit:
        letters = server.lrange(keys.dead, 0, min(batch, limit - moved) - 1)
        if not letters:
            break
        crawl_keys: list[str] = []
        args: list[Any] = []
        for raw in letters:
            try:
                crawl = crawl_of_entry(json.loads(raw)["entry"])
            except (ValueError, KeyError, TypeError):
                args += [raw, 0]
                continue
            key = keys.queued(crawl)
            if key not in crawl_keys:
                crawl_keys.append(key)
            args += [raw, 4 + crawl_keys.index(key)]  # KEYS: dead, requests, seq, then these
        moved += int(script(keys=[keys.dead, keys.requests, keys.sequence, *crawl_keys], args=args))
    return moved

