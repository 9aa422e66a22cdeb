"""What the store stored is published: one stream message per record, per-crawl counters, and nothing
lost while Redis is away (real Redis, the real MongoDB-compatible server, the real store and feeds stages)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crawlers.feeds.publish import FeedPublisher, publisher_client
from crawlers.queue.origin import set_origin
from crawlers.redis.keys import FleetKeys
from crawlers.services import EmbeddedRedis
from models.entities import QuarantineRecord, Room, RoomSnapshot, Streamer
from tests.plugins.store import StoreAndFeeds, run_store, store_and_feeds

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _records(n: int, crawl: str | None = "camp:1", monitor: str | None = None) -> list:
    out: list = []
    for i in range(n):
        at = T0 + timedelta(seconds=i)
        room = Room(platform="bilibili", room_id=str(i % 7), viewers_now=i, fetched_at=at, status="live")
        snap = RoomSnapshot(platform="bilibili", room_id=str(i % 7), captured_at=at, viewers_now=i)
        for record in (room, snap):
            set_origin(record, {k: v for k, v in {"crawl": crawl, "monitor": monitor}.items() if v})
        out += [room, snap]
    return out


def _pipeline(tmp_path, redis_url: str, mongo_uri: str, db_name: str, prefix: str, **settings) -> StoreAndFeeds:
    return store_and_feeds(tmp_path, "feedtest", LIVEFLEET_MONGO_URI=mongo_uri, LIVEFLEET_MONGO_DB=db_name,
                          LIVEFLEET_REDIS_URL=redis_url, LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_STORE_BATCH=25,
                          LIVEFLEET_STORE_FLUSH_SECONDS=0.05, **settings)


def _stream(client, prefix: str, collection: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in client.xrange(FleetKeys(prefix).feed(collection))]


def test_every_stored_record_is_published_once_with_its_op_origin_and_document(tmp_path, redis_server,
                                                                               redis_client, mongo_server, mongo_db):
    prefix = f"t{uuid.uuid4().hex[:6]}"
    records = _records(40)
    records.append(Streamer(platform="bilibili", streamer_id="9", nickname="n", fetched_at=T0))  # no origin
    records.append(QuarantineRecord(platform="bilibili", reason="ParseError: x", quarantined_at=T0))
    pipeline = _pipeline(tmp_path, redis_server.url, mongo_server.url, mongo_db.name, prefix)
    results = run_store(pipeline, records)
    assert not [r for r in results if isinstance(r, BaseException)]

    rooms = _stream(redis_client, prefix, "rooms")
    snaps = _stream(redis_client, prefix, "room_snapshots")
    assert len(rooms) == 40 and len(snaps) == 40
    assert {m["op"] for m in snaps} == {"insert"}
    # Each of the 7 rooms was new once: its first message says insert, every later one update.
    first_seen: dict[str, str] = {}
    for m in rooms:
        first_seen.setdefault(json.loads(m["doc"])["room_id"], m["op"])
    assert set(first_seen.values()) == {"insert"} and len(first_seen) == 7
    assert [m["op"] for m in rooms].count("insert") == 7 and [m["op"] for m in rooms].count("update") == 33
    assert {(m["crawl"], "monitor" in m) for m in rooms + snaps} == {("camp:1", False)}
    assert [json.loads(m["doc"]) for m in snaps] == [r.to_json_dict() for r in records[1:80:2]]
    assert json.loads(rooms[0]["doc"])["type"] == "room"
    assert datetime.fromisoformat(rooms[0]["at"]).tzinfo is not None
    (streamer,) = _stream(redis_client, prefix, "streamers")
    assert (streamer["op"], "crawl" in streamer) == ("insert", False)
    (quarantined,) = _stream(redis_client, prefix, "quarantine")
    assert quarantined["op"] == "quarantine"
    # The per-crawl counters count records with a crawl, per collection.
    counts = redis_client.hgetall(FleetKeys(prefix).crawl_items("camp:1"))
    assert counts == {b"rooms": b"40", b"room_snapshots": b"40"}
    # ... and each message was published after its batch was in MongoDB.
    assert mongo_db.room_snapshots.count_documents({}) == 40
    assert pipeline.crawler.stats.get_value("livefleet/feeds/published") == 82


def test_feeds_off_still_count_records_per_crawl(tmp_path, redis_server, redis_client, mongo_server, mongo_db):
    prefix = f"t{uuid.uuid4().hex[:6]}"
    pipeline = _pipeline(tmp_path, redis_server.url, mongo_server.url, mongo_db.name, prefix,
                         LIVEFLEET_FEEDS_ENABLED=False)
    run_store(pipeline, _records(5, crawl="c2"))
    assert not redis_client.exists(FleetKeys(prefix).feed("rooms"))
    assert redis_client.hgetall(FleetKeys(prefix).crawl_items("c2")) == {b"rooms": b"5", b"room_snapshots": b"5"}


def test_streams_are_capped_near_maxlen(redis_server, redis_client):
    prefix = f"t{uuid.uuid4().hex[:6]}"
    publisher = FeedPublisher(publisher_client(redis_server.url), prefix, maxlen=100)
    for _ in range(20):
        assert publisher.publish(_records(50, crawl=None)[::2])  # 50 rooms a batch
    publisher.close()
    length = redis_client.xlen(FleetKeys(prefix).feed("rooms"))
    assert 100 <= length < 300  # MAXLEN ~ trims whole nodes: about 100, never fewer


def test_records_spooled_by_a_store_outage_are_published_when_written_back(tmp_path, redis_server, redis_client,
                                                                            mongo_server, mongo_db):
    prefix = f"t{uuid.uuid4().hex[:6]}"
    mongo_server.stop()
    try:
        pipeline = _pipeline(tmp_path, redis_server.url, mongo_server.url, mongo_db.name, prefix,
                             LIVEFLEET_MONGO_TIMEOUT_MS=300, LIVEFLEET_STORE_RETRIES=1,
                             LIVEFLEET_STORE_HOLD_SECONDS=0.5)
        run_store(pipeline, _records(10))
        assert not redis_client.exists(FleetKeys(prefix).feed("rooms")), "nothing is published before it is stored"
    finally:
        mongo_server.restart()
    again = _pipeline(tmp_path, redis_server.url, mongo_server.url, mongo_db.name, prefix)
    run_store(again, [])  # the next start writes the spool back
    assert again.crawler.stats.get_value("livefleet/store/replayed") == 20
    assert len(_stream(redis_client, prefix, "rooms")) == 10
    assert len(_stream(redis_client, prefix, "room_snapshots")) == 10


def test_redis_away_during_publish_loses_nothing(tmp_path, mongo_server, mongo_db):
    """Redis stops while the store writes: messages are held (memory, then disk when the worker stops)
    and published once Redis is back, each exactly once."""
    prefix = f"t{uuid.uuid4().hex[:6]}"
    with EmbeddedRedis(tmp_path / "redis", persistent=True) as own_redis:
        url = own_redis.url
        batches = [_records(10, crawl=f"run{n}") for n in range(4)]

        async def scenario() -> None:
            pipeline = _pipeline(tmp_path, url, mongo_server.url, mongo_db.name, prefix,
                                 LIVEFLEET_FEED_COOLDOWN_SECONDS=0.2, LIVEFLEET_FEED_BUFFER=1_000_000)
            await pipeline.open_spider()
            await asyncio.gather(*(pipeline.process_item(i) for i in batches[0]))
            await asyncio.to_thread(own_redis.stop)
            # The store goes on while Redis is away: items complete once in MongoDB.
            await asyncio.wait_for(asyncio.gather(*(pipeline.process_item(i) for i in batches[1])), 30)
            assert pipeline.publisher.backlog_size() == 20
            assert pipeline.crawler.stats.get_value("livefleet/feeds/held") == 20
            await asyncio.to_thread(own_redis.restart)
            await asyncio.wait_for(asyncio.gather(*(pipeline.process_item(i) for i in batches[2])), 30)
            await asyncio.to_thread(own_redis.stop)
            await asyncio.wait_for(asyncio.gather(*(pipeline.process_item(i) for i in batches[3])), 30)
            await pipeline.close_spider()  # Redis still away: the backlog goes to disk

        asyncio.run(scenario())
        spilled = list((tmp_path / "feed-spool").glob("*.jsonl"))
        assert len(spilled) == 1
        own_redis.restart()
        # The next worker on this machine publishes the spilled messages before its own.
        later = _pipeline(tmp_path, url, mongo_server.url, mongo_db.name, prefix)
        run_store(later, _records(1, crawl="run9"))
        assert not list((tmp_path / "feed-spool").glob("*.jsonl"))
        client = publisher_client(url)
        try:
            rooms = _stream(client, prefix, "rooms")
            crawls = [m["crawl"] for m in rooms]
            assert sorted(crawls) == sorted([f"run{n}" for n in range(4) for _ in range(10)] + ["run9"])
            assert crawls[-1] == "run9"
            assert len(_stream(client, prefix, "room_snapshots")) == 41
            for n in range(4):
                assert client.hgetall(FleetKeys(prefix).crawl_items(f"run{n}")) == {
                    b"rooms": b"10", b"room_snapshots": b"10"}
        finally:
            client.close()


def test_a_redis_out_of_memory_holds_the_batch_until_it_has_room(redis_server, redis_client):
    prefix = f"t{uuid.uuid4().hex[:6]}"
    publisher = FeedPublisher(publisher_client(redis_server.url), prefix, cooldown=0, backoff=0.01)
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        assert not publisher.publish(_records(3))  # OOM: refused for now, held
        assert publisher.backlog_size() == 6
    finally:
        redis_client.config_set("maxmemory", 0)
        redis_client.config_set("maxmemory-policy", policy)
    assert publisher.publish(_records(1))  # the held batch first, then this one
    publisher.close()
    assert len(_stream(redis_client, prefix, "rooms")) == 4
    assert redis_client.hgetall(FleetKeys(prefix).crawl_items("camp:1")) == {b"rooms": b"4", b"room_snapshots": b"4"}
