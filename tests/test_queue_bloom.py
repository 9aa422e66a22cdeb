"""The Bloom filter on a plain Redis bitmap: sizing, bit offsets, and the filter against a real Redis."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawlers.queue.bloom import (
    BLOOM_ADD,
    BLOOM_CHECK,
    BLOOM_LUA,
    MAX_BITS,
    BloomFilter,
    BloomSpec,
    lua_positions_args,
)

integration = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def fingerprints(tag: str, count: int) -> list[str]:
    """Request-fingerprint-like strings: sha1 hex of distinct strings."""
    return [hashlib.sha1(f"{tag}-{i}".encode()).hexdigest() for i in range(count)]


# ------------------------------------------------------------------ sizing


@pytest.mark.parametrize(
    ("capacity", "error_rate", "bits", "hashes"),
    [
        # The textbook values (m = ceil(-n ln p / ln2^2), k = round(m/n ln2)).
        (1_000, 0.01, 9_586, 7),
        (10_000, 0.0001, 191_702, 13),
        (1_000_000, 0.001, 14_377_588, 10),
        (1, 0.5, 2, 1),
    ],
)
def test_sizing_matches_the_formulas(capacity, error_rate, bits, hashes):
    spec = BloomSpec(capacity, error_rate)
    assert (spec.bits, spec.hashes) == (bits, hashes)
    assert spec.bytes == (bits + 7) // 8
    assert spec.expected_error_rate() <= error_rate * 1.05  # ceil(m) and round(k) cost at most a few percent


def test_a_million_fingerprints_at_one_in_a_thousand_fit_in_under_two_bytes_each():
    spec = BloomSpec(1_000_000, 0.001)
    assert spec.bytes / 1_000_000 < 1.8


def test_specs_a_redis_bitmap_cannot_hold_are_refused():
    largest = BloomSpec(298_000_000, 0.001)
    assert largest.bits <= MAX_BITS
    with pytest.raises(ValueError, match=r"2\*\*32"):
        BloomSpec(299_000_000, 0.001)
    with pytest.raises(ValueError, match=r"2\*\*32"):
        BloomSpec(10**12, 0.01)


@pytest.mark.parametrize(("capacity", "error_rate"), [(0, 0.01), (-5, 0.01), (100, 0.0), (100, 1.0), (100, 1.5)])
def test_nonsense_specs_are_refused(capacity, error_rate):
    with pytest.raises(ValueError):
        BloomSpec(capacity, error_rate)


# ------------------------------------------------------------------ bit offsets


def test_positions_are_pinned():
    # Filters live in Redis across worker upgrades: a change of the hashing would
    # make every fingerprint already added look new. These values must never change.
    spec = BloomSpec(1_000, 0.01)
    assert spec.positions("a" * 40) == [7076, 1620, 5750, 294, 4424, 8554, 3098]
    assert spec.positions("") == [3174, 5531, 7888, 659, 3016, 5373, 7730]
    assert spec.positions("直播间") == [2244, 6436, 1042, 5234, 9426, 4032, 8224]


def test_positions_are_the_same_in_another_process():
    # Python's own hash() of a str changes per process (PYTHONHASHSEED); the offsets must not.
    spec = BloomSpec(1_000_000, 0.001)
    sample = fingerprints("proc", 5)
    code = (
        "import json, sys\nfrom crawlers.queue.bloom import BloomSpec\n"
        "spec = BloomSpec(1_000_000, 0.001)\n"
        "print(json.dumps([spec.positions(fp) for fp in json.loads(sys.argv[1])]))"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(sample)], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=REPO)
    assert json.loads(out.stdout) == [spec.positions(fp) for fp in sample]


def test_positions_are_k_distinct_offsets_within_the_bitmap():
    spec = BloomSpec(50_000, 0.001)
    sample = fingerprints("range", 2_000)
    all_positions = [spec.positions(fp) for fp in sample]
    assert all(len(p) == spec.hashes for p in all_positions)
    assert all(0 <= x < spec.bits for p in all_positions for x in p)
    distinct = sum(len(set(p)) == spec.hashes for p in all_positions)
    assert distinct >= len(sample) - 2
    # Different fingerprints land on different offsets (no collapse onto a few bits).
    total = len(sample) * spec.hashes
    assert len({x for p in all_positions for x in p}) > 0.95 * total


def test_positions_follow_double_hashing():
    spec = BloomSpec(10_000, 0.001)
    p = spec.positions("https://live.bilibili.com/5440")
    step = (p[1] - p[0]) % spec.bits
    assert step != 0
    assert p == [(p[0] + i * step) % spec.bits for i in range(spec.hashes)]


def test_lua_positions_args_are_the_positions():
    spec = BloomSpec(1_000, 0.01)
    assert lua_positions_args(spec, "abc") == spec.positions("abc")


# ------------------------------------------------------------------ the filter on Redis


@integration
def test_add_and_contains(redis_client):
    bloom = BloomFilter(redis_client, "t:bloom", BloomSpec(1_000, 0.01))
    assert not bloom.contains("fp-1")
    assert bloom.add("fp-1") is True
    assert bloom.add("fp-1") is False
    assert bloom.contains("fp-1") is True
    assert bloom.add("fp-2") is True


@integration
def test_no_false_negatives_on_twenty_thousand_adds(redis_client):
    spec = BloomSpec(20_000, 0.001)
    bloom = BloomFilter(redis_client, "t:bloom", spec)
    added = fingerprints("in", 20_000)
    assert bloom.add_many(added) > 20_000 - 50  # a few look added already: false positives while filling
    assert all(bloom.contains_many(added))
    # The packed bulk path and the single-fingerprint scripts agree bit for bit.
    assert all(bloom.contains(fp) for fp in added[::997])
    assert bloom.add_many(added[:3_000]) == 0
    assert not any(bloom.add(fp) for fp in added[::1_999])


@integration
def test_add_many_counts_new_fingerprints_also_within_one_batch(redis_client):
    bloom = BloomFilter(redis_client, "t:bloom", BloomSpec(10_000, 0.0001))
    bloom.CALL_SIZE = 7  # several script calls and pipeline round trips
    batch = fingerprints("dup", 50)
    assert bloom.add_many(batch + batch[:20] + fingerprints("more", 10)) == 60
    assert bloom.add_many([]) == 0
    assert bloom.contains_many([]) == []
    assert bloom.contains_many(batch[:3] + fingerprints("never", 3)) == [True] * 3 + [False] * 3


@integration
def test_measured_false_positive_rate_is_near_the_target(redis_client):
    spec = BloomSpec(20_000, 0.01)
    bloom = BloomFilter(redis_client, "t:bloom", spec)
    bloom.add_many(fingerprints("in", 20_000))
    found = bloom.contains_many(fingerprints("out", 20_000))
    rate = sum(found) / len(found)
    assert spec.error_rate / 2 <= rate <= spec.error_rate * 2, rate


@integration
def test_bitmap_is_created_at_full_size_in_one_allocation(redis_client):
    spec = BloomSpec(1_000_000, 0.001)
    bloom = BloomFilter(redis_client, "t:bloom", spec)
    assert bloom.memory_bytes() == 0
    bloom.add("first")
    assert redis_client.strlen("t:bloom") == spec.bytes
    # Grown bit by bit, Redis would keep up to 1 MB spare: about 2.8 MB here instead of 1.8.
    assert spec.bytes <= bloom.memory_bytes() <= spec.bytes * 1.01
    size = bloom.memory_bytes()
    bloom.add_many(fingerprints("fill", 5_000))
    assert bloom.memory_bytes() == size


@integration
def test_ttl_is_set_once_when_created_and_never_refreshed(redis_client):
    key = "t:bloom"
    bloom = BloomFilter(redis_client, key, BloomSpec(1_000, 0.01), ttl=3_600)
    bloom.add("a")
    assert 3_590 <= redis_client.ttl(key) <= 3_600
    redis_client.expire(key, 60)  # as if the crawl had run for 59 minutes
    bloom.add("b")
    bloom.add_many(fingerprints("x", 100))
    assert 0 < redis_client.ttl(key) <= 60
    redis_client.delete(key)  # expired: the next add starts a new filter with a new TTL
    bloom.add_many(["c"])
    assert 3_590 <= redis_client.ttl(key) <= 3_600
    assert not bloom.contains("a")


@integration
def test_no_ttl_means_the_bitmap_persists(redis_client):
    bloom = BloomFilter(redis_client, "t:bloom", BloomSpec(1_000, 0.01))
    bloom.add("a")
    assert redis_client.ttl("t:bloom") == -1
    with pytest.raises(ValueError):
        BloomFilter(redis_client, "t:other", BloomSpec(1_000, 0.01), ttl=-1)


@integration
def test_standalone_scripts_through_register_script(redis_client):
    spec = BloomSpec(1_000, 0.01)
    add = redis_client.register_script(BLOOM_ADD)
    check = redis_client.register_script(BLOOM_CHECK)
    args = lua_positions_args(spec, "fp")
    assert check(keys=["t:bloom"], args=args) == 0
    assert add(keys=["t:bloom"], args=[spec.bits, 0, *args]) == 1
    assert add(keys=["t:bloom"], args=[spec.bits, 0, *args]) == 0
    assert check(keys=["t:bloom"], args=args) == 1
    # A filter written by the scripts is the same filter BloomFilter reads.
    assert BloomFilter(redis_client, "t:bloom", spec).contains("fp")


# A bigger script embedding the snippet, the way the queue embeds it: the positions
# sit after the script's own arguments.
# KEYS: bitmap, list. ARGV: payload, bits, ttl, positions...
_ENQUEUE_ONCE = BLOOM_LUA + """
if bloom_check(KEYS[1], ARGV, 4, #ARGV) == 1 then return 0 end
bloom_add(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV, 4, #ARGV)
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""


@integration
def test_snippet_embeds_in_a_bigger_script(redis_client):
    spec = BloomSpec(1_000, 0.01)
    enqueue = redis_client.register_script(_ENQUEUE_ONCE)
    with redis_client.pipeline(transaction=False) as pipe:
        for fp in ["a", "b", "a", "c", "b"]:
            enqueue(keys=["t:bloom", "t:queue"], args=[f"request {fp}", spec.bits, 600, *lua_positions_args(spec, fp)],
                    client=pipe)
        assert pipe.execute() == [1, 1, 0, 1, 0]
    assert redis_client.lrange("t:queue", 0, -1) == [b"request a", b"request b", b"request c"]
    assert 590 <= redis_client.ttl("t:bloom") <= 600
    assert BloomFilter(redis_client, "t:bloom", spec).contains_many(["a", "b", "c", "d"]) == [True, True, True, False]
