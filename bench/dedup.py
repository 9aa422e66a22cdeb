"""``dedup_bytes_per_fingerprint``: what remembering a crawled page costs in Redis.

One million fingerprints (sha1 hex of distinct URLs, the shape of Scrapy's
request fingerprints) go into a plain Redis set, the seen-set livefleet keeps by
default, and into the Bloom filter of :mod:`crawlers.queue.bloom` sized for one
million at a 0.1% false-positive rate (``LIVEFLEET_BLOOM_CAPACITY`` /
``LIVEFLEET_BLOOM_ERROR_RATE``). Both are written the way a bulk load would write
them: the set by ``SADD`` of 10,000 members per command, the filter by
:meth:`BloomFilter.add_many` (1,000 fingerprints per script call, 10 calls per
pipeline round trip).

Bytes come from ``MEMORY USAGE key SAMPLES 0`` (every element counted, so exact
for the set, and the bitmap's allocation for the filter); the figure is the
filter's bytes divided by the fingerprints (target <= 3), with the set's beside
it. The false-positive rate is measured on 200,000 fingerprints never inserted,
beside the rate the sizing formula expects; every 100th inserted fingerprint is
checked too, and one the filter does not know (a false negative, which must never
happen) makes the benchmark fail. The Redis is the bench's own embedded server,
started for this benchmark and stopped after it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from crawlers.queue.bloom import BloomFilter, BloomSpec
from crawlers.services import EmbeddedRedis

#: One row of output: name, value, indent (0 = a figure, 1 = a detail of the figure above).
Row = tuple[str, object, int]

ERROR_RATE = 0.001
#: Members per SADD (and the filter's fingerprints per pipeline round trip: 1,000 x 10 calls).
CHUNK = 10_000
SET_KEY = "bench:dedup:set"
BLOOM_KEY = "bench:dedup:bloom"


class DedupBenchError(RuntimeError):
    """The measurement is invalid: a false negative, or fingerprints that were not distinct."""


@dataclass(frozen=True)
class Sizes:
    fingerprints: int
    probes: int


FULL = Sizes(fingerprints=1_000_000, probes=200_000)
QUICK = Sizes(fingerprints=100_000, probes=20_000)


@dataclass(frozen=True)
class DedupResult:
    """What the two structures cost for the same fingerprints."""

    fingerprints: int
    set_bytes: int
    bloom_bytes: int
    spec: BloomSpec
    probes: int
    false_positives: int
    set_insert_s: float
    bloom_insert_s: float
    bloom_check_s: float

    @property
    def bloom_bytes_per_fingerprint(self) -> float:
        return self.bloom_bytes / self.fingerprints

    @property
    def set_bytes_per_fingerprint(self) -> float:
        return self.set_bytes / self.fingerprints

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.probes


def fingerprints(kind: str, start: int, stop: int, step: int = 1) -> Iterator[str]:
    """sha1 hex of distinct URLs: ``kind`` "page" for the inserted ones, "never" for the probes."""
    for i in range(start, stop, step):
        yield hashlib.sha1(f"https://bench.livefleet.test/{kind}/{i}".encode()).hexdigest()


def fill_set(server: redis.Redis, count: int) -> float:
    """SADD ``count`` fingerprints, CHUNK per command, 10 commands per round trip; seconds taken."""
    started = time.perf_counter()
    with server.pipeline(transaction=False) as pipe:
        for n, start in enumerate(range(0, count, CHUNK), 1):
            pipe.sadd(SET_KEY, *fingerprints("page", start, min(start + CHUNK, count)))
            if n % 10 == 0:
                pipe.execute()
        pipe.execute()
    return time.perf_counter() - started


def measure(server: redis.Redis, sizes: Sizes, error_rate: float = ERROR_RATE) -> DedupResult:
    """Fill a set and a Bloom filter with the same fingerprints; measure both; delete both."""
    count = sizes.fingerprints
    spec = BloomSpec(count, error_rate)
    bloom = BloomFilter(server, BLOOM_KEY, spec)
    server.delete(SET_KEY, BLOOM_KEY)
    try:
        set_s = fill_set(server, count)
        stored = int(server.scard(SET_KEY))
        if stored != count:
            raise DedupBenchError(f"the set holds {stored} fingerprints, not {count}: they were not distinct")
        set_bytes = int(server.memory_usage(SET_KEY, samples=0) or 0)
        server.delete(SET_KEY)  # the set's 90 MB need not stay while the filter is measured

        started = time.perf_counter()
        bloom.add_many(fingerprints("page", 0, count))
        bloom_s = time.perf_counter() - started
        bloom_bytes = bloom.memory_bytes()

        started = time.perf_counter()
        false_positives = sum(bloom.contains_many(fingerprints("never", 0, sizes.probes)))
        check_s = time.perf_counter() - started
        sample = list(fingerprints("page", 0, count, 100))
        missing = len(sample) - sum(bloom.contains_many(sample))
        if missing:
            raise DedupBenchError(f"the Bloom filter lost {missing} of {len(sample)} inserted fingerprints")
    finally:
        server.delete(SET_KEY, BLOOM_KEY)
    return DedupResult(
        fingerprints=count, set_bytes=set_bytes, bloom_bytes=bloom_bytes, spec=spec, probes=sizes.probes,
        false_positives=false_positives, set_insert_s=set_s, bloom_insert_s=bloom_s, bloom_check_s=check_s)


def rows(result: DedupResult) -> list[Row]:
    """The figure first, its details below it."""
    spec = result.spec
    return [
        ("dedup_bytes_per_fingerprint", round(result.bloom_bytes_per_fingerprint, 3), 0),
        ("dedup_set_bytes_per_fingerprint", round(result.set_bytes_per_fingerprint, 1), 1),
        ("dedup_bloom_false_positive_rate", f"{result.false_positive_rate:.6f} ({result.false_positives} of "
         f"{result.probes} never inserted; target {spec.error_rate:g}, expected {spec.expected_error_rate():.6f})", 1),
        ("dedup_bloom_bits", spec.bits, 1),
        ("dedup_bloom_hashes", spec.hashes, 1),
        ("dedup_fingerprints", result.fingerprints, 1),
        ("dedup_bloom_bytes", result.bloom_bytes, 1),
        ("dedup_set_bytes", result.set_bytes, 1),
        ("dedup_set_insert_s", round(result.set_insert_s, 2), 1),
        ("dedup_bloom_insert_s", round(result.bloom_insert_s, 2), 1),
        ("dedup_bloom_check_s", f"{result.bloom_check_s:.2f} ({result.probes} fingerprints)", 1),
    ]


def run(quick: bool, var_dir: Path, say: Callable[[str], None] = print) -> list[Row]:
    """Start the bench's own Redis under ``var_dir``, measure, stop it; the rows to print."""
    sizes = QUICK if quick else FULL
    with EmbeddedRedis(var_dir / "redis", log_path=var_dir / "redis.log") as server:
        say(f"dedup: embedded Redis at {server.url}; {sizes.fingerprints} fingerprints into a set, then into a "
            f"Bloom filter for {sizes.fingerprints} at {ERROR_RATE:g}; {sizes.probes} never-inserted probes")
        client = redis.Redis.from_url(server.url, socket_timeout=120)
        try:
            return rows(measure(client, sizes))
        finally:
            client.close()
