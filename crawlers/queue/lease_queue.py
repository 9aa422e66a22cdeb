"""The shared request queue, with leases: a request is taken on a lease and settled later.

Pending requests wait in a Redis sorted set. Score = ``-priority * 2**32 + seq``,
so higher priorities come first and requests of one priority come out in
arrival order (``seq`` is a Redis counter). A member is ``"<seq>|<failures>|<json>"``:
the sequence makes every entry unique (two equal requests never collapse into
one), the failure count travels with the request, and the JSON is an
:class:`Entry` (the request's ``to_dict()``, its fingerprint and its crawl).

Every step is one Lua script, so it is atomic across the fleet:

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
from crawlers.queue.bloom import BLOOM_LUA, BloomSpec
from crawlers.redis.keys import SpiderKeys

logger = logging.getLogger(__name__)

#: Meta keys that only mean something inside the worker that set them.
WORKER_LOCAL_META = frozenset({"playwright_page_methods", "playwright_page", "download_latency",
                               "livefleet_lease"})
#: Request meta naming the crawl (dedup namespace) a request belongs to.
CRAWL_META = "livefleet_crawl"
#: Request meta: a priority offset (a campaign's priority) added to the request and to all its children.
PRIORITY_META = "livefleet_priority"
#: Request meta holding the lease id of a leased request (worker-local).
LEASE_META = "livefleet_lease"

_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Split "<seq>|<failures>|<json>".
_SPLIT = """
local function split(member)
  local a = string.find(member, '|', 1, true)
  local b = string.find(member, '|', a + 1, true)
  return string.sub(member, 1, a - 1), tonumber(string.sub(member, a + 1, b - 1)), string.sub(member, b + 1)
end
"""

# Move a failed lease's request back to the queue, or to the dead letters.
# Returns 1 (requeued), 2 (dead), 0 (no such lease).
_FAIL = _NOW_MS + _SPLIT + """
local function fail(leases, leased, requests, dead, id, max_failures, err, worker, prefix)
  local rec = redis.call('HGET', leased, id)
  if not rec then return 0 end
  redis.call('ZREM', leases, id)
  redis.call('HDEL', leased, id)
  local sp = string.find(rec, ' ', 1, true)
  local score = string.sub(rec, 1, sp - 1)
  local seq, failures, body = split(string.sub(rec, sp + 1))
  if max_failures >= 0 then failures = failures + 1 end
  if max_failures >= 0 and failures >= max_failures then
    local ok, entry = pcall(cjson.decode, body)
    if ok and entry['fp'] and entry['fp'] ~= '' then
      redis.call('SREM', prefix .. 'dedup:' .. (entry['c'] or 'default') .. ':queued', entry['fp'])
    end
    redis.call('RPUSH', dead, cjson.encode({entry = body, score = score, error = err, attempts = failures,
                                            worker = worker, at = now_ms() / 1000}))
    return 2
  end
  redis.call('ZADD', requests, score, seq .. '|' .. failures .. '|' .. body)
  return 1
end
"""

# KEYS: requests, seq, queued, seen-set or bloom bitmap.
# ARGV: priority, entry json, fingerprint ('' = none), filter ('1'/'0'), ttl seconds, mode ('set'|'bloom'),
#       [bloom size in bits, bit positions...]
_PUSH = """
local fp = ARGV[3]
if fp ~= '' and ARGV[4] == '1' then
  if redis.call('SISMEMBER', KEYS[3], fp) == 1 then return 0 end
  if ARGV[6] == 'bloom' then
    local all = #ARGV > 7
    for i = 8, #ARGV do
      if redis.call('GETBIT', KEYS[4], ARGV[i]) == 0 then all = false; break end
    end
    if all then return 0 end
  elseif redis.call('SISMEMBER', KEYS[4], fp) == 1 then
    return 0
  end
end
if fp ~= '' then
  redis.call('SADD', KEYS[3], fp)
  local ttl = tonumber(ARGV[5])
  if ttl > 0 and redis.call('TTL', KEYS[3]) == -1 then redis.call('EXPIRE', KEYS[3], ttl) end
end
local seq = redis.call('INCR', KEYS[2])
local score = -tonumber(ARGV[1]) * 4294967296 + seq
redis.call('ZADD', KEYS[1], string.format('%.0f', score), seq .. '|0|' .. ARGV[2])
return 1
"""

# KEYS: requests, leases, leased, lease-seq.  ARGV: count, lease ms, worker id.
# Returns [lease id, member, ...].
_TAKE = _NOW_MS + """
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local out = {}
if #popped == 0 then return out end
local deadline = now_ms() + tonumber(ARGV[2])
for i = 1, #popped, 2 do
  local id = ARGV[3] .. '#' .. redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], deadline, id)
  redis.call('HSET', KEYS[3], id, popped[i + 1] .. ' ' .. popped[i])
  out[#out + 1] = id
  out[#out + 1] = popped[i]
end
return out
"""

# KEYS: leases, leased, queued, seen-set or bloom.  ARGV: lease id, fingerprint, ttl, mode,
# [bloom size in bits, bit positions...].  The Bloom bitmap is created at full size at once (growing it
# bit by bit would leave Redis up to a megabyte of slack).
# Returns 1 if the lease was still held, 0 if it had expired (the request may run again elsewhere).
_ACK = BLOOM_LUA + """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local fp = ARGV[2]
if fp ~= '' then
  redis.call('SREM', KEYS[3], fp)
  if ARGV[4] == 'bloom' then
    bloom_create(KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[3]))
    bloom_set(KEYS[4], ARGV, 6, #ARGV)
  else
    redis.call('SADD', KEYS[4], fp)
  end
  local ttl = tonumber(ARGV[3])
  if ttl > 0 and redis.call('TTL', KEYS[4]) == -1 then redis.call('EXPIRE', KEYS[4], ttl) end
end
return held
"""

# KEYS: leases, leased.  ARGV: lease id.  A lease handed on to its own retry or redirect.
_FORGET = """
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# KEYS: leases, leased, requests, dead.  ARGV: lease id, max failures, error, worker, key prefix.
_RELEASE = _FAIL + """
return fail(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5])
"""

# KEYS: leases, leased, requests, dead.  ARGV: max failures, limit, key prefix.  Returns [requeued, dead].
_REAP = _FAIL + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[2]))
local requeued, dead = 0, 0
for _, id in ipairs(ids) do
  local worker = string.match(id, '^(.*)#') or ''
  local r = fail(KEYS[1], KEYS[2], KEYS[3], KEYS[4], id, tonumber(ARGV[1]), 'lease expired', worker, ARGV[3])
  if r == 1 then requeued = requeued + 1 elseif r == 2 then dead = dead + 1 end
  if r == 0 then redis.call('ZREM', KEYS[1], id) end
end
return {requeued, dead}
"""

# KEYS: leases.  ARGV: lease ms, ids...  Returns how many of the ids were still held.
_RENEW = _NOW_MS + """
local deadline = now_ms() + tonumber(ARGV[1])
local held = 0
for i = 2, #ARGV do
  held = held + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return held
"""

# KEYS: dead, requests, seq.  ARGV: limit, the spider's key base.  Returns how many went back.
_RETRY_DEAD = """
local n = 0
for i = 1, tonumber(ARGV[1]) do
  local raw = redis.call('LPOP', KEYS[1])
  if not raw then break end
  local letter = cjson.decode(raw)
  local body = letter['entry']
  local ok, entry = pcall(cjson.decode, body)
  if ok and entry['fp'] and entry['fp'] ~= '' then
    redis.call('SADD', ARGV[2] .. 'dedup:' .. (entry['c'] or 'default') .. ':queued', entry['fp'])
  end
  local seq = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[2], letter['score'], seq .. '|0|' .. body)
  n = n + 1
end
return n
"""


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
            ("push", _PUSH), ("take", _TAKE), ("ack", _ACK), ("forget", _FORGET), ("release", _RELEASE),
            ("reap", _REAP), ("renew", _RENEW))}
        self._bloom: BloomSpec | None = None
        if self.dedup.bloom:
            self._bloom = BloomSpec(self.dedup.bloom_capacity, self.dedup.bloom_error_rate)
        self._bad_logged = False

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, request: Request, fingerprint: str, crawl: str) -> str:
        data = request.to_dict(spider=self.spider)
        # Worker-local state (live browser objects, the last download's latency, the lease) stays behind.
        data["meta"] = {k: v for k, v in data.get("meta", {}).items() if k not in WORKER_LOCAL_META}
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

    def release(self, lease: str, error: str, *, final: bool = False, failed: bool = True,
                client: Any = None) -> Any:
        """A failed delivery: back to the queue, or to the dead letters (``final``, or too many
        failures). ``failed=False`` hands a request back untouched (a worker stopping cleanly)."""
        keys = [self.keys.leases, self.keys.leased, self.keys.requests, self.keys.dead]
        limit = 0 if final else (self.max_failures if failed else -1)
        args = [lease, limit, error[:2000], self.worker, self.keys.base]
        return self._scripts["release"](keys=keys, args=args, client=client)

    def renew(self, leases: Sequence[str], *, client: Any = None) -> Any:
        if not leases:
            return 0
        return self._scripts["renew"](keys=[self.keys.leases], args=[self.lease_ms, *leases], client=client)

    def reap(self, limit: int = 500) -> tuple[int, int]:
        """Return expired leases to the queue; (requeued, dead-lettered)."""
        keys = [self.keys.leases, self.keys.leased, self.keys.requests, self.keys.dead]
        requeued, dead = self._scripts["reap"](keys=keys, args=[self.max_failures, limit, self.keys.base])
        return int(requeued), int(dead)

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.server.zcard(self.keys.requests))

    def leased_count(self) -> int:
        return int(self.server.zcard(self.keys.leases))

    def clear(self) -> None:
        """Delete the queue. Only explicit admin commands call this, never a worker's shutdown."""
        self.server.delete(self.keys.requests, self.keys.sequence)


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


def retry_dead(server: redis.Redis, keys: SpiderKeys, limit: int = 1_000_000) -> int:
    """Put dead letters back into the queue (``livefleet queue retry-dead``)."""
    script = server.register_script(_RETRY_DEAD)
    return int(script(keys=[keys.dead, keys.requests, keys.sequence], args=[limit, keys.base]))

