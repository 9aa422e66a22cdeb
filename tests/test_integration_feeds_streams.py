"""Consumer groups on the feeds (real Redis): each group reads every message once, a crashed
consumer's messages go to another, a restarted one re-reads what it held."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crawlers.feeds.publish import FeedPublisher, publisher_client
from crawlers.feeds.streams import FeedReader, feed_info
from models.entities import RoomSnapshot
from tests.crawl_helpers import wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _publish(url: str, prefix: str, n: int) -> None:
    publisher = FeedPublisher(publisher_client(url), prefix)
    try:
        for start in range(0, n, 50):
            publisher.publish([RoomSnapshot(platform="douyin", room_id=str(i), captured_at=T0 + timedelta(seconds=i),
                                            viewers_now=i) for i in range(start, min(n, start + 50))])
    finally:
        publisher.close()


def _drain(reader: FeedReader, count: int = 40) -> list[str]:
    ids = []
    while messages := reader.read(count):
        reader.ack(m.id for m in messages)
        ids += [m.id for m in messages]
    return ids


@pytest.fixture
def prefix(redis_server) -> str:
    value = f"t{uuid.uuid4().hex[:6]}"
    _publish(redis_server.url, value, 300)
    return value


def test_two_groups_each_read_every_message_exactly_once(redis_server, redis_client, prefix):
    every = [entry_id.decode() for entry_id, _ in redis_client.xrange(f"{prefix}:feed:room_snapshots")]
    assert len(every) == 300
    a1, a2 = (FeedReader(redis_client, prefix, "room_snapshots", "ranking", c) for c in ("a1", "a2"))
    b1 = FeedReader(redis_client, prefix, "room_snapshots", "dashboard", "b1")
    seen_a: list[str] = []
    while True:  # two consumers of one group take turns: they share the messages
        got = [m for reader in (a1, a2) for m in reader.read(25)]
        if not got:
            break
        for reader in (a1, a2):
            reader.ack(m.id for m in got)
        seen_a += [m.id for m in got]
    seen_b = _drain(b1)
    assert sorted(seen_a) == sorted(every) and len(set(seen_a)) == 300
    assert seen_b == every  # one consumer alone reads in stream order
    message = b1.claim_stale()  # nothing pending anywhere
    assert message == [] and a1.pending() == 0 and b1.pending() == 0
    _publish(redis_server.url, prefix, 10)  # later messages: each group reads them once more
    assert len(_drain(a2)) == 10 and len(_drain(b1)) == 10 and _drain(a1) == []


def test_a_crashed_consumers_messages_are_claimed_by_another(redis_client, prefix):
    crashed = FeedReader(redis_client, prefix, "room_snapshots", "alerts", "w1")
    held = crashed.read(120)  # handed over, never acknowledged: the consumer dies here
    assert len(held) == 120
    other = FeedReader(redis_client, prefix, "room_snapshots", "alerts", "w2", claim_idle_ms=300, claim_every=0.1)
    first = other.read(200)
    assert {m.id for m in first}.isdisjoint(m.id for m in held), "not stale yet: only new messages"
    other.ack(m.id for m in first)
    wait_for("the held messages to go stale", lambda: len(redis_client.xpending_range(
        other.key, other.group, "-", "+", 200, idle=300)) == len(held), 10, interval=0.02)
    rest = _drain(other, 100)
    assert sorted(rest) == sorted(m.id for m in held)
    assert other.pending() == 0
    assert len({m.id for m in first} | set(rest)) == 300


def test_a_restarted_consumer_first_rereads_what_it_held(redis_client, prefix):
    before = FeedReader(redis_client, prefix, "room_snapshots", "jobs", "j1")
    held = before.read(30)
    after = FeedReader(redis_client, prefix, "room_snapshots", "jobs", "j1")  # same name, new process
    again = after.read(100)
    assert [m.id for m in again] == [m.id for m in held]
    assert [m.doc for m in again] == [m.doc for m in held]
    after.ack(m.id for m in again)
    assert len(_drain(after)) == 270 and after.pending() == 0  # then the rest, once each


def test_a_group_created_later_reads_what_the_stream_still_holds_and_info_shows_groups(redis_client, prefix):
    _drain(FeedReader(redis_client, prefix, "room_snapshots", "early", "e"))
    late = FeedReader(redis_client, prefix, "room_snapshots", "late", "l")
    first = late.read(5)
    assert first[0].doc["room_id"] == "0" and first[0].op == "insert" and first[0].collection == "room_snapshots"
    info = feed_info(redis_client, prefix)
    snaps = info["room_snapshots"]
    assert snaps["length"] == 300 and info["rooms"] == {"length": 0, "groups": []}
    groups = {g["name"]: g for g in snaps["groups"]}
    assert groups["early"]["pending"] == 0 and groups["late"]["pending"] == 5
    assert [c["name"] for c in groups["late"]["consumers"]] == ["l"]


def test_unknown_collections_are_refused(redis_client):
    with pytest.raises(ValueError, match="no feed named 'shops'"):
        FeedReader(redis_client, "x", "shops", "g", "c")

