"""An optional Bloom filter of fingerprints on a plain Redis bitmap (no Redis module).

For very large crawls the seen-set costs about 80-100 bytes per fingerprint; a
Bloom filter sized for the crawl costs under 2 bytes at a 0.1% false-positive
rate, and never forgets a fingerprint it was given (no false negatives). A false
positive means one page the crawl skips although it had not seen it.

* :class:`BloomSpec`: the size of a filter (bits ``m`` and hash count ``k``) for
  a capacity ``n`` and error rate ``p``, and the ``k`` bit offsets of a
  fingerprint. Offsets come from double hashing (Kirsch and Mitzenmacher,
  ``g_i = h1 + i * h2 mod m``) on a 128-bit BLAKE2b digest of the fingerprint:
  any string works, and every process of the fleet computes the same offsets.
* Lua: :data:`BLOOM_LUA` defines ``bloom_create``, ``bloom_set``, ``bloom_add``
  and ``bloom_check`` for bigger scripts to embed (the queue's enqueue and ack
  scripts); :data:`BLOOM_CHECK`, :data:`BLOOM_ADD` and the ``_MANY`` variants are
  the same functions as standalone scripts.
* :class:`BloomFilter`: one filter under one key, for Python callers and tests.

The bitmap is created at its full size in one allocation, then never grows:
Redis grows a bitmap that a ``SETBIT`` reaches past its end with spare room (up
to 1 MB more), which would cost more than half as much again on a
1-million-fingerprint filter. It gets its TTL once, when it is created, so a
crawl's filter expires a fixed time after the crawl started, however busy it is.
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis
from redis.commands.core import Script

#: Redis strings hold at most 512 MB, so a bitmap has at most 2**32 bits.
MAX_BITS = 2**32

if array("I").itemsize != 4:  # pragma: no cover - every platform CPython runs on today
    raise ImportError("crawlers.queue.bloom packs positions as 4-byte unsigned ints (array 'I')")

_LN2 = math.log(2)
_LOW64 = 2**64 - 1  # h1 is the digest's low 64 bits, h2 its high 64 bits

# Positions are bit offsets, given as ARGV[first..last] so that a bigger script can
# pass them beside its own arguments without copying them into a new table.
BLOOM_LUA = """
local function bloom_create(key, bits, ttl)
  if redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('SETBIT', key, bits - 1, 0)
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  return 1
end

local function bloom_set(key, argv, first, last)
  local new = 0
  for i = first, last do
    if redis.call('SETBIT', key, argv[i], 1) == 0 then new = 1 end
  end
  return new
end

local function bloom_add(key, bits, ttl, argv, first, last)
  bloom_create(key, bits, ttl)
  return bloom_set(key, argv, first, last)
end

local function bloom_check(key, argv, first, last)
  for i = first, last do
    if redis.call('GETBIT', key, argv[i]) == 0 then return 0 end
  end
  return 1
end
"""

#: KEYS[1] = bitmap; ARGV = the positions of one fingerprint. 1 if every bit is set.
BLOOM_CHECK = BLOOM_LUA + """
return bloom_check(KEYS[1], ARGV, 1, #ARGV)
"""

#: KEYS[1] = bitmap; ARGV = bits, ttl seconds (0 = none), then the positions of one
#: fingerprint. Creates the bitmap (full size, TTL once) if missing, sets the bits;
#: 1 if the fingerprint was new (some bit was still 0).
BLOOM_ADD = BLOOM_LUA + """
return bloom_add(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV, 3, #ARGV)
"""

# The bulk scripts take the positions packed, 4 bytes each (little-endian; a position
# is below 2**32), k per fingerprint: a bulk load then costs Python and Redis one
# argument per call instead of k per fingerprint, and runs several times faster.

#: KEYS[1] = bitmap; ARGV = bits, ttl, k, packed positions. How many fingerprints were new.
BLOOM_ADD_MANY = BLOOM_LUA + """
local key, k, packed = KEYS[1], tonumber(ARGV[3]), ARGV[4]
bloom_create(key, tonumber(ARGV[1]), tonumber(ARGV[2]))
local new, at = 0, 1
while at < #packed do
  local fresh, position = 0, 0
  for _ = 1, k do
    position, at = struct.unpack('<I4', packed, at)
    if redis.call('SETBIT', key, position, 1) == 0 then fresh = 1 end
  end
  new = new + fresh
end
return new
"""

#: KEYS[1] = bitmap; ARGV = k, packed positions. A 0/1 per fingerprint, in order.
BLOOM_CHECK_MANY = BLOOM_LUA + """
local key, k, packed = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local found, at = {}, 1
while at < #packed do
  local all, position = 1, 0
  for _ = 1, k do
    position, at = struct.unpack('<I4', packed, at)
    if all == 1 and redis.call('GETBIT', key, position) == 0 then all = 0 end
  end
  found[#found + 1] = all
end
return found
"""


@dataclass(frozen=True)
class BloomSpec:
    """How big a filter is for ``capacity`` fingerprints at ``error_rate`` false positives."""

    capacity: int
    error_rate: float

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"a Bloom filter needs a capacity of at least 1, not {self.capacity}")
        if not 0.0 < self.error_rate < 1.0:
            raise ValueError(f"a Bloom filter's error rate is between 0 and 1 (exclusive), not {self.error_rate}")
        if self.bits > MAX_BITS:
            raise ValueError(
                f"a Bloom filter of {self.capacity} fingerprints at error rate {self.error_rate:g} needs "
                f"{self.bits} bits; a Redis bitmap holds at most 2**32 ({MAX_BITS}): lower the capacity "
                "or raise the error rate"
            )

    @cached_property
    def bits(self) -> int:
        """m = ceil(-n ln p / (ln 2)^2): the fewest bits that reach the error rate at capacity."""
        return math.ceil(-self.capacity * math.log(self.error_rate) / _LN2**2)

    @cached_property
    def hashes(self) -> int:
        """k = round(m / n * ln 2): the number of bits per fingerprint that minimises false positives."""
        return max(1, round(self.bits / self.capacity * _LN2))

    @property
    def bytes(self) -> int:
        """Size of the bitmap in Redis (before the allocator's rounding)."""
        return (self.bits + 7) // 8

    def expected_error_rate(self, count: int | None = None) -> float:
        """(1 - e^(-k n / m))^k: the false-positive rate expected after ``count`` (default: capacity) adds."""
        n = self.capacity if count is None else count
        return (1.0 - math.exp(-self.hashes * n / self.bits)) ** self.hashes

    def positions(self, fingerprint: str) -> list[int]:
        """The ``k`` bit offsets of ``fingerprint``: ``(h1 + i * h2) mod m`` for i in 0..k-1."""
        digest = int.from_bytes(hashlib.blake2b(fingerprint.encode("utf-8"), digest_size=16).digest(), "little")
        m = self.bits
        position = (digest & _LOW64) % m  # h1
        # A step of 0 would put all k offsets on one bit; 1..m-1 keeps them apart.
        step = (digest >> 64) % (m - 1) + 1 if m > 1 else 0  # h2
        out = []
        for _ in range(self.hashes):  # h1 + i * h2 mod m, one addition at a time
            out.append(position)
            position = (position + step) % m
        return out


def lua_positions_args(spec: BloomSpec, fingerprint: str) -> list[int]:
    """ARGV of :data:`BLOOM_CHECK` for ``fingerprint`` (of :data:`BLOOM_ADD` after ``bits, ttl``)."""
    return spec.positions(fingerprint)


class BloomFilter:
    """A Bloom filter of fingerprints in the Redis bitmap at ``key``.

    ``ttl`` (seconds, 0 = none) is given to the bitmap once, when an add creates it;
    later adds never extend it. Thread-safe as far as the Redis client is.
    """

    #: Fingerprints per script call in :meth:`add_many` / :meth:`contains_many`.
    CALL_SIZE = 1000
    #: Script calls per pipeline round trip.
    CALLS_PER_PIPELINE = 10

    def __init__(self, server: redis.Redis, key: str, spec: BloomSpec, ttl: int = 0) -> None:
        if ttl < 0:
            raise ValueError(f"ttl is seconds >= 0 (0 = none), not {ttl}")
        self.server = server
        self.key = key
        self.spec = spec
        self.ttl = int(ttl)
        self._add = server.register_script(BLOOM_ADD)
        self._check = server.register_script(BLOOM_CHECK)
        self._add_many = server.register_script(BLOOM_ADD_MANY)
        self._check_many = server.register_script(BLOOM_CHECK_MANY)

    def __repr__(self) -> str:
        return (f"BloomFilter({self.key!r}, capacity={self.spec.capacity}, error_rate={self.spec.error_rate:g}, "
                f"bits={self.spec.bits}, hashes={self.spec.hashes}, ttl={self.ttl})")

    def add(self, fingerprint: str) -> bool:
        """Add ``fingerprint``; True if it was new (not, as far as the filter can tell, added before)."""
        args = [self.spec.bits, self.ttl, *self.spec.positions(fingerprint)]
        return bool(self._add(keys=[self.key], args=args))

    def contains(self, fingerprint: str) -> bool:
        """True if ``fingerprint`` was added (or is a false positive); False means never added."""
        return bool(self._check(keys=[self.key], args=self.spec.positions(fingerprint)))

    def add_many(self, fingerprints: Iterable[str]) -> int:
        """Add every fingerprint, a pipeline of script calls per round trip; how many were new."""
        head = [self.spec.bits, self.ttl, self.spec.hashes]
        return sum(self._run_batched(self._add_many, head, fingerprints))

    def contains_many(self, fingerprints: Iterable[str]) -> list[bool]:
        """:meth:`contains` of each fingerprint, in order, batched like :meth:`add_many`."""
        found: list[bool] = []
        for reply in self._run_batched(self._check_many, [self.spec.hashes], fingerprints):
            found.extend(bool(x) for x in reply)
        return found

    def memory_bytes(self) -> int:
        """Bytes the bitmap takes in Redis (``MEMORY USAGE key SAMPLES 0``); 0 if it does not exist."""
        return int(self.server.memory_usage(self.key, samples=0) or 0)

    def clear(self) -> None:
        """Delete the bitmap (it is created again, full size, by the next add)."""
        self.server.delete(self.key)

    def _run_batched(self, script: Script, head: Sequence[int], fingerprints: Iterable[str]) -> list[Any]:
        """Call ``script`` with ``head`` and the packed positions of CALL_SIZE fingerprints at a time."""
        replies: list[Any] = []
        positions = self.spec.positions
        packed = array("I")  # native order; byteswapped below on a big-endian machine
        calls = 0
        with self.server.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                packed.extend(positions(fingerprint))
                if len(packed) == self.CALL_SIZE * self.spec.hashes:
                    script(keys=[self.key], args=[*head, _little_endian(packed)], client=pipe)
                    packed, calls = array("I"), calls + 1
                    if calls == self.CALLS_PER_PIPELINE:
                        replies.extend(pipe.execute())
                        calls = 0
            if packed:
                script(keys=[self.key], args=[*head, _little_endian(packed)], client=pipe)
            replies.extend(pipe.execute())
        return replies


def _little_endian(positions: array) -> bytes:
    """The 4-byte little-endian words the bulk scripts unpack."""
    if sys.byteorder == "big":
        positions.byteswap()
    return positions.tobytes()
