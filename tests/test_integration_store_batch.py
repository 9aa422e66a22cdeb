"""The store's batch against the real MongoDB-compatible server: observations of one entity
merged into one upsert with the contract's semantics, and snapshots as plain inserts that a
replay or a retry can send twice."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import InsertOne, UpdateOne

from models.entities import (
    RECORD_TYPES,
    Product,
    ProductSnapshot,
    QuarantineRecord,
    Room,
    RoomSnapshot,
    Streamer,
    merge_records,
    newest_fields,
    present_fields,
)
from pipelines.store.ops import writes
from pipelines.store.spool import Spool

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEY = {"platform": "bilibili", "room_id": "42"}


def _room(at: datetime, **fields: Any) -> Room:
    return Room(platform="bilibili", room_id="42", fetched_at=at, **fields)


def _stored(db: Any, collection: str = "rooms", **key: Any) -> dict[str, Any]:
    doc = db[collection].find_one(key or KEY)
    assert doc is not None
    doc.pop("_id")
    return {name: value.astimezone(UTC) if isinstance(value, datetime) else value for name, value in doc.items()}


# --- merging observations of one entity -----------------------------------------------------------------


def test_two_observations_of_one_room_in_a_batch_are_one_upsert(writer, mongo_db):
    listed = _room(T0, title="list title", viewers_now=120, status="live", streamer_id="7")
    detail = _room(T0 + timedelta(seconds=3), title="detail title", viewers_now=90, likes=5, cover_url="c.jpg")
    assert [len(w.records) for w in writes([listed, detail])] == [1 + 1]
    assert writer.write([listed, detail]) == {"rooms": 2}
    assert _stored(mongo_db) == {
        **KEY, "title": "detail title", "viewers_now": 90, "status": "live", "streamer_id": "7", "likes": 5,
        "cover_url": "c.jpg", "fetched_at": T0 + timedelta(seconds=3), "peak_viewers": 120,
        "first_seen_at": T0, "last_seen_at": T0 + timedelta(seconds=3),
    }


def test_an_older_observation_after_a_newer_one_loses_but_fills_what_is_missing(writer, mongo_db):
    newer = _room(T0 + timedelta(minutes=5), title="now", viewers_now=10)
    older = _room(T0, title="before", viewers_now=500, category="Game")  # arrives later in the batch
    writer.write([newer, older])
    doc = _stored(mongo_db)
    assert (doc["title"], doc["viewers_now"], doc["category"]) == ("now", 10, "Game")
    assert doc["fetched_at"] == T0 + timedelta(minutes=5)
    assert doc["peak_viewers"] == 500  # a max over every observation, whatever its age
    assert (doc["first_seen_at"], doc["last_seen_at"]) == (T0, T0 + timedelta(minutes=5))


def test_a_field_missing_from_the_newest_observation_is_never_erased(writer, mongo_db):
    writer.write([Streamer(platform="bilibili", streamer_id="9", nickname="old", followers=5, fetched_at=T0)])
    batch = [
        Streamer(platform="bilibili", streamer_id="9", nickname="full", followers=1200, bio="hi",
                 fetched_at=T0 + timedelta(seconds=1)),
        Streamer(platform="bilibili", streamer_id="9", nickname="listed", fetched_at=T0 + timedelta(seconds=2)),
    ]
    writer.write(batch)
    doc = _stored(mongo_db, "streamers", platform="bilibili", streamer_id="9")
    assert (doc["nickname"], doc["followers"], doc["bio"]) == ("listed", 1200, "hi")
    assert (doc["first_seen_at"], doc["last_seen_at"]) == (T0, T0 + timedelta(seconds=2))


def test_a_stored_document_newer_than_some_observations_keeps_its_values_against_them(writer, mongo_db):
    writer.write([_room(T0 + timedelta(minutes=2), title="stored", viewers_now=50, likes=1)])
    batch = [
        _room(T0 + timedelta(minutes=1), title="older", likes=99, category="Game"),  # older than the document
        _room(T0 + timedelta(minutes=3), viewers_now=70),  # newer; carries no title
    ]
    writer.write(batch)
    doc = _stored(mongo_db)
    # A naive merge would have put the older observation's title and likes over the stored ones.
    assert (doc["title"], doc["likes"], doc["viewers_now"], doc["category"]) == ("stored", 1, 70, "Game")
    assert doc["peak_viewers"] == 70


def test_same_instant_observations_the_later_in_the_batch_wins(writer, mongo_db):
    writer.write([_room(T0, title="first", status="live"), _room(T0, title="second")])
    doc = _stored(mongo_db)
    assert (doc["title"], doc["status"]) == ("second", "live")


def test_text_that_looks_like_an_operator_is_stored_as_text(writer, mongo_db):
    writer.write([_room(T0, title="$title", category="$$ROOT"), _room(T0 + timedelta(seconds=1), cover_url="$x")])
    doc = _stored(mongo_db)
    assert (doc["title"], doc["category"], doc["cover_url"]) == ("$title", "$$ROOT", "$x")


def test_a_document_without_fetched_at_is_overwritten(writer, mongo_db):
    mongo_db.rooms.insert_one({**KEY, "title": "written by hand", "likes": 3})
    writer.write([_room(T0, title="crawled")])
    doc = _stored(mongo_db)
    assert (doc["title"], doc["likes"], doc["fetched_at"]) == ("crawled", 3, T0)


ROOM_FIELDS: dict[str, Any] = {
    "title": lambda rnd: rnd.choice(["a", "b", "c", "$d"]),
    "status": lambda rnd: rnd.choice(["live", "ended", "offline"]),
    "viewers_now": lambda rnd: rnd.randrange(1000),
    "likes": lambda rnd: rnd.randrange(1000),
    "category": lambda rnd: rnd.choice(["Game", "Music"]),
    "source_url": lambda rnd: f"https://example.invalid/{rnd.randrange(9)}",
}


def _expected(stored: dict[str, Any] | None, batch: list[Room]) -> dict[str, Any]:
    """The contract, computed the slow way: per field, the newest of every value seen wins
    (the stored document's values count as of its fetched_at; a tie goes to the later write)."""
    seen: dict[str, tuple[datetime, int, Any]] = {}
    if stored is not None:
        for name, value in stored.items():
            if name not in KEY and name not in ("peak_viewers", "first_seen_at", "last_seen_at"):
                seen[name] = (stored["fetched_at"], 0, value)
    for order, room in enumerate(batch, start=1):
        for name, value in present_fields(room).items():
            if name not in KEY and (name not in seen or seen[name][:2] <= (room.fetched_at, order)):
                seen[name] = (room.fetched_at, order, value)
    doc = {**KEY, **{name: value for name, (_, _, value) in seen.items()}}
    times = [r.fetched_at for r in batch] + ([stored["first_seen_at"], stored["last_seen_at"]] if stored else [])
    doc["first_seen_at"], doc["last_seen_at"] = min(times), max(times)
    peaks = [r.viewers_now for r in batch if r.viewers_now is not None] + [(stored or {}).get("peak_viewers", -1)]
    if max(peaks) >= 0:
        doc["peak_viewers"] = max(peaks)
    return doc


@pytest.mark.parametrize("seed", range(12))
def test_merged_batches_follow_the_contract_field_by_field(seed, writer, mongo_db):
    rnd = random.Random(seed)

    def observation() -> Room:
        at = T0 + timedelta(minutes=rnd.randrange(6))  # few distinct instants: ties happen
        names = rnd.sample(sorted(ROOM_FIELDS), rnd.randrange(len(ROOM_FIELDS) + 1))
        return _room(at, **{name: ROOM_FIELDS[name](rnd) for name in names})

    stored = None
    for _ in range(3):  # a first batch on an empty store, then batches onto what it left
        batch = [observation() for _ in range(rnd.randrange(1, 6))]
        expected = _expected(stored, batch)
        writer.write(batch)
        stored = _stored(mongo_db)
        assert stored == expected, f"batch {[present_fields(r) for r in batch]}"


def test_newest_fields_keeps_the_time_of_the_record_each_value_came_from():
    records = [_room(T0 + timedelta(seconds=2), title="b"), _room(T0, title="a", likes=3)]
    fields = newest_fields(records)
    assert fields["title"] == ("b", T0 + timedelta(seconds=2))
    assert fields["likes"] == (3, T0)
    assert fields["fetched_at"] == (T0 + timedelta(seconds=2), T0 + timedelta(seconds=2))


def test_merge_records_still_lets_the_first_record_win_for_split_payloads():
    detail = Product(platform="taobao", product_id="1", title="T", fetched_at=T0)
    mdskip = Product(platform="taobao", product_id="1", title="other", price=9.9, fetched_at=T0)
    snapshot = ProductSnapshot(platform="taobao", product_id="1", captured_at=T0, price=9.9)
    merged = merge_records([detail, snapshot, mdskip])
    assert merged == [detail.model_copy(update={"price": 9.9}), snapshot]


def test_present_fields_is_model_dump_without_nones():
    records = [
        _room(T0, title="t", viewers_now=0, viewers_now_is_lower_bound=False),
        Streamer(platform="douyin", streamer_id="1", verified=False, followers=0, fetched_at=T0),
        RoomSnapshot(platform="kuaishou", room_id="3", captured_at=T0, viewers_now=4),
        Product(platform="taobao", product_id="5", price=0.0, fetched_at=T0),
        QuarantineRecord(reason="r", quarantined_at=T0),
    ]
    assert {type(r) for r in records[:4]} < set(RECORD_TYPES.values())
    for record in records:
        assert present_fields(record) == record.model_dump(exclude_none=True)


# --- snapshots: inserts, idempotent ---------------------------------------------------------------------


def _snapshots(n: int, room_id: str = "42") -> list[RoomSnapshot]:
    return [RoomSnapshot(platform="bilibili", room_id=room_id, captured_at=T0 + timedelta(seconds=i),
                         viewers_now=i) for i in range(n)]


def test_snapshots_are_inserts_and_entities_upserts():
    ops = [w.op for w in writes([*_snapshots(2), _room(T0, title="x")])]
    assert [type(op) for op in ops] == [InsertOne, InsertOne, UpdateOne]


def test_the_same_snapshot_batch_written_twice_leaves_one_copy(writer, mongo_db):
    batch = _snapshots(30) + [ProductSnapshot(platform="taobao", product_id="1", captured_at=T0, price=1.5)]
    assert writer.write(batch) == {"room_snapshots": 30, "product_snapshots": 1}
    assert writer.write(batch) == {"room_snapshots": 30, "product_snapshots": 1}  # already stored counts as done
    assert mongo_db.room_snapshots.count_documents({}) == 30
    assert mongo_db.product_snapshots.count_documents({}) == 1
    assert mongo_db.quarantine.count_documents({}) == 0


def test_a_snapshot_twice_in_one_batch_is_stored_once(writer, mongo_db):
    first, second = _snapshots(2)
    writer.write([first, second, first, RoomSnapshot(**{**present_fields(first), "viewers_now": 999})])
    docs = list(mongo_db.room_snapshots.find({}, {"_id": 0}).sort("captured_at", 1))
    assert [d["viewers_now"] for d in docs] == [0, 1]  # the first write of an observation stays


def test_a_replayed_spool_adds_no_duplicates(writer, mongo_db, tmp_path):
    stored_before = _snapshots(50)
    writer.write(stored_before[:20])  # part of the batch made it before the store went away
    spool = Spool(tmp_path / "spool")
    spool.spill(stored_before)  # ... and the whole batch was spooled
    spool.spill(stored_before[40:])  # spooled twice, as a retried flush would
    result = spool.replay(writer.write, batch=7)
    assert (result.files, result.records) == (2, 60)
    assert mongo_db.room_snapshots.count_documents({}) == 50
    assert sorted(d["viewers_now"] for d in mongo_db.room_snapshots.find({})) == list(range(50))
    assert mongo_db.quarantine.count_documents({}) == 0


def test_quarantine_records_are_inserted_once(writer, mongo_db):
    record = QuarantineRecord(platform="bilibili", spider="bilibili", url="https://x", reason="PermanentPageError",
                              payload="<html>", fetched_at=T0, quarantined_at=T0)
    assert writer.write([record, record]) == {"quarantine": 2}
    writer.write([record])
    docs = list(mongo_db.quarantine.find({}, {"_id": 0}))
    assert len(docs) == 1 and docs[0]["payload"] == "<html>"


def test_a_refused_merged_upsert_quarantines_every_record_it_carried(writer, mongo_db):
    mongo_db.command("collMod", "rooms", validator={"title": {"$ne": "refused"}})
    batch = [_room(T0, title="refused"), _room(T0 + timedelta(seconds=1), likes=1),
             Room(platform="bilibili", room_id="43", title="fine", fetched_at=T0)]
    result = writer.write(batch)
    assert result == {"rooms": 1, "quarantine": 2}
    assert [d["room_id"] for d in mongo_db.rooms.find({})] == ["43"]
    kept = sorted(json.loads(d["payload"])["fetched_at"] for d in mongo_db.quarantine.find({}))
    assert kept == ["2026-11-01T12:00:00Z", "2026-11-01T12:00:01Z"]
    # What the feeds publish is what was stored: the room that landed, and the two quarantine records.
    assert [(r.collection, getattr(r, "room_id", None)) for r in result.stored] == [
        ("rooms", "43"), ("quarantine", None), ("quarantine", None)]
    assert [id(r) for r in result.stored[1:]] != [id(r) for r in batch[:2]]
    assert result.created == {id(batch[2])}  # room 43 was new
