"""End to end: a real worker crawls a small part of the Bilibili sandbox, and every stored change
is in the feeds, with the crawl that asked for it, and counted for that crawl."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from pymongo import MongoClient

from crawlers.feeds.message import COLLECTIONS
from crawlers.redis.keys import FleetKeys
from tests.crawl_helpers import run_crawl, stat_sum

pytestmark = pytest.mark.integration

KEYS = {"streamers": ("platform", "streamer_id"), "rooms": ("platform", "room_id"),
        "room_snapshots": ("platform", "room_id", "captured_at")}


def _value(value: Any) -> str:
    """A key field as text; times to the millisecond, as MongoDB keeps them."""
    if isinstance(value, str) and value.endswith("Z"):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000).isoformat()
    return str(value)


def test_every_stored_change_of_a_crawl_is_in_its_feed(tmp_path, sandbox, redis_server, redis_client, mongo_server):
    crawl = "feeds-e2e:1"
    prefix, db_name, stats = run_crawl(
        tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili",
        seeds=[{"kind": "area", "parent_area_id": 2, "area_id": 0, "max_pages": 1, "crawl": crawl}])
    keys = FleetKeys(prefix)
    messages = {c: [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis_client.xrange(keys.feed(c))]
                for c in COLLECTIONS}
    written = {c: stat_sum(stats, f"livefleet/store/written/{c}") for c in COLLECTIONS}
    assert written["rooms"] > 10 and written["room_snapshots"] > 10
    # One message per record the store wrote, in its collection's feed.
    assert {c: len(m) for c, m in messages.items()} == written
    counted = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.crawl_items(crawl)).items()}
    assert counted == {c: n for c, n in written.items() if n and c != "quarantine"}
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    try:
        db = client[db_name]
        for collection, key in KEYS.items():
            docs = [json.loads(m["doc"]) for m in messages[collection]]
            published = {tuple(_value(d[f]) for f in key) for d in docs}
            stored = {tuple(_value(doc[f]) for f in key) for doc in db[collection].find()}
            assert published == stored, collection
        ops = Counter((c, m["op"]) for c, ms in messages.items() for m in ms)
        for collection in ("streamers", "rooms"):  # each document was new once: one insert, the rest updates
            assert ops[(collection, "insert")] == db[collection].count_documents({}), collection
            assert ops[(collection, "insert")] + ops[(collection, "update")] == len(messages[collection])
        assert {op for (c, op) in ops if c == "room_snapshots"} == {"insert"}
        assert {m["crawl"] for c in ("streamers", "rooms", "room_snapshots") for m in messages[c]} == {crawl}
    finally:
        client.drop_database(db_name)
        client.close()
