"""The session builder: reads livefleet's own feeds and keeps ``live_sessions`` up to date.

It consumes the ``room_snapshots`` and ``product_snapshots`` streams through the consumer group
``livefleet-sessions``, like any downstream service. A round:

1. read up to ``count`` messages of each stream;
2. note each message's room (a Kuaishou product snapshot names no room: its product's shop,
   whose seller is the room's owner, does) and the earliest capture time per room;
3. per platform, read what MongoDB holds for those rooms over the affected window (their room
   and product snapshots, room documents and the sessions already stored there) and rebuild
   every session in the window with ``build.sessions_of_room``;
4. write them (one bulk write), then acknowledge the messages.

Why this is safe to kill at any point and to run several times over: a session is always
recomputed from the stored snapshots, never accumulated from messages, so handling a message
twice, or out of order, or after a crash before its acknowledgement (the group hands it out
again), gives the same document. Several builders share the work (the group splits the
messages); two that rebuild the same session at once both compute from MongoDB, and the write
keeps the one computed from more snapshots (``inputs``): a build never replaces a newer one.

A builder alone in its group sees every message, so it keeps the snapshots of the rooms it
builds in memory (the documents the messages carry are the stored ones) and reads MongoDB only
for a room it has not seen since it started; with other consumers in the group (checked every few
seconds) it drops that memory and reads every room's window from MongoDB, which then holds at
least what any message says (the store publishes after its batch is written).

A session whose room stops sending snapshots is closed by the *sweep* (every ``sweep_every``
seconds): live sessions whose last live snapshot is more than ``gap`` older than the newest
snapshot of their platform are rebuilt, which marks them ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bson.codec_options import CodecOptions
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from crawlers.feeds.streams import FeedReader, default_consumer
from crawlers.sessions.build import DEFAULT_GAP, PER_BROADCAST_ROOMS, sessions_of_room
from models.sessions import INDEXES, LiveSession

log = logging.getLogger(__name__)

GROUP = "livefleet-sessions"
FEEDS = ("room_snapshots", "product_snapshots")
#: How far before the earliest new snapshot of a room the builder looks for the session it belongs to.
DEFAULT_LOOKBACK = timedelta(hours=12)
#: Platforms whose shelf readings name no room: the products of the room owner's shop are its shelf.
SHOP_SHELVES = frozenset({"kuaishou"})


def ensure_indexes(db: Database) -> None:
    """The ``live_sessions`` indexes of the contract, and the one the builder reads shelves by."""
    db.live_sessions.create_indexes(INDEXES)
    db.product_snapshots.create_index([("platform", 1), ("room_id", 1), ("captured_at", 1)],
                                      name="platform_room_captured")


#: Per room: the room snapshots and the shelf readings a round's messages carried.
NewDocs = dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


@dataclass
class RoomMemory:
    """What a solo builder holds of one room: every stored snapshot captured since ``lower``."""

    lower: datetime
    snaps: dict[datetime, dict[str, Any]] = field(default_factory=dict)
    shelf: dict[tuple[str, datetime], dict[str, Any]] = field(default_factory=dict)
    touched: float = 0.0

    def add(self, snaps: Iterable[dict[str, Any]], shelf: Iterable[dict[str, Any]]) -> None:
        for doc in snaps:
            self.snaps.setdefault(doc["captured_at"], doc)
        for doc in shelf:
            self.shelf.setdefault((str(doc["product_id"]), doc["captured_at"]), doc)


def _from_message(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A feed message's document as MongoDB returns it (its ``captured_at`` a datetime)."""
    out = {k: v for k, v in doc.items() if k != "type"}
    out["captured_at"] = _when(doc.get("captured_at"))
    return out


@dataclass
class BuildStats:
    """What the builder did (``livefleet sessions run`` prints it; the benchmark reads it)."""

    messages: int = 0
    rooms: int = 0
    sessions_written: int = 0
    stale_writes: int = 0
    rounds: int = 0
    rooms_read: int = 0
    rooms_from_memory: int = 0
    by_platform: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class SessionBuilder:
    """One builder: a consumer of the ``livefleet-sessions`` group (module docstring)."""

    def __init__(self, db: Database, server: redis.Redis | None, prefix: str, *, consumer: str | None = None,
                 gap: timedelta = DEFAULT_GAP, lookback: timedelta = DEFAULT_LOOKBACK,
                 claim_idle_ms: int = 60_000, sweep_every: float = 30.0) -> None:
        # Stored datetimes come back timezone-aware (UTC), whatever client the caller opened.
        self.db = db.with_options(codec_options=CodecOptions(tz_aware=True, tzinfo=UTC))
        self.gap = gap
        self.lookback = lookback
        self.sweep_every = sweep_every
        self.stats = BuildStats()
        self.latest: dict[str, datetime] = {}
        self._next_sweep = 0.0
        self._memory: dict[tuple[str, str], RoomMemory] = {}
        self._solo_until = 0.0
        self._solo = False
        consumer = consumer or f"{default_consumer()}-sessions"
        self.consumer = consumer
        self.readers = [FeedReader(server, prefix, feed, GROUP, consumer, claim_idle_ms=claim_idle_ms)
                        for feed in FEEDS] if server is not None else []
        ensure_indexes(self.db)

    # -- one round ----------------------------------------------------------------------------------
    def step(self, count: int = 2000, block_ms: int | None = 1000) -> int:
        """Read, rebuild, write, acknowledge; returns the number of messages handled."""
        # Every feed without waiting; only when all are empty, wait on the first (a message on another
        # waits at most block_ms).
        batches = [(reader, reader.read(count=count, block_ms=None)) for reader in self.readers]
        if block_ms and batches and not any(batch for _, batch in batches):
            batches[0] = (self.readers[0], self.readers[0].read(count=count, block_ms=block_ms))
        messages = [m for _, batch in batches for m in batch]
        if messages:
            touched, new = self._rooms_of([m.doc for m in messages])
            self.rebuild(touched, new=new if self._is_solo() else None)
            for reader, batch in batches:
                reader.ack(m.id for m in batch)
            self.stats.messages += len(messages)
            self.stats.rounds += 1
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.sweep_every
            self.sweep()
        return len(messages)

    def run(self, stop: threading.Event, *, count: int = 2000, block_ms: int = 1000) -> BuildStats:
        """Rounds until ``stop`` is set (``livefleet sessions run``, or a worker's thread)."""
        while not stop.is_set():
            try:
                self.step(count=count, block_ms=block_ms)
            except (redis.RedisError, PyMongoError, OSError) as exc:  # Redis or MongoDB away: wait, then go on
                log.warning("session builder: %s; retrying", exc)
                stop.wait(1.0)
        return self.stats

    def drain(self, *, count: int = 2000) -> BuildStats:
        """Rounds until the feeds have nothing new for this builder (tests, demo, benchmark)."""
        while self.step(count=count, block_ms=None):
            pass
        return self.stats

    # -- what changed -----------------------------------------------------------------------------
    def _rooms_of(self, docs: Iterable[Mapping[str, Any]]) -> tuple[dict[tuple[str, str], datetime], NewDocs]:
        """``(platform, room_id) -> earliest capture`` of the rooms these snapshot documents concern,
        and the documents per room (room snapshots, shelf readings)."""
        touched: dict[tuple[str, str], datetime] = {}
        new: NewDocs = defaultdict(lambda: ([], []))
        shop_products: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for raw in docs:
            platform, at = raw.get("platform"), _when(raw.get("captured_at"))
            if not platform or at is None:
                continue
            if at > self.latest.get(platform, at - timedelta(seconds=1)):
                self.latest[platform] = at
            doc = _from_message(raw)
            room_id = doc.get("room_id")
            is_product = "product_id" in doc
            if room_id is None and is_product:
                if platform in SHOP_SHELVES:
                    shop_products[platform][str(doc["product_id"])].append(doc)
                continue
            if room_id is not None:
                key = (platform, str(room_id))
                touched[key] = min(at, touched.get(key, at))
                new[key][1 if is_product else 0].append(doc)
        for platform, products in shop_products.items():
            for found in self.db.products.find({"platform": platform, "product_id": {"$in": list(products)}},
                                               {"product_id": 1, "shop_id": 1}):
                if found.get("shop_id"):  # the seller's user id is the room's key (records.py identity rule)
                    key = (platform, str(found["shop_id"]))
                    for doc in products[str(found["product_id"])]:
                        touched[key] = min(doc["captured_at"], touched.get(key, doc["captured_at"]))
                        new[key][1].append(doc)
        return touched, new

    def _is_solo(self) -> bool:
        """Whether this builder is the only consumer of its group (checked every 5 s)."""
        now = time.monotonic()
        if now >= self._solo_until and self.readers:
            self._solo_until = now + 5.0
            names: set[str] = set()
            for reader in self.readers:
                reader.ensure_group()
                names |= {_text(c["name"]) for c in reader.server.xinfo_consumers(reader.key, GROUP)}
            solo = names <= {self.consumer}
            if not solo:
                self._memory.clear()
            self._solo = solo
        return self._solo and bool(self.readers)

    # -- rebuilding ---------------------------------------------------------------------------------
    def rebuild(self, touched: Mapping[tuple[str, str], datetime], *, force: bool = False,
                new: NewDocs | None = None) -> list[LiveSession]:
        """Rebuild every session of these rooms from ``since - gap`` (extended back to the start of
        a stored session still open then); write them; returns what was written. ``new``: the
        snapshots the messages carried, per room, for a solo builder's memory (None: read MongoDB)."""
        by_platform: dict[str, dict[str, datetime]] = defaultdict(dict)
        for (platform, room_id), since in touched.items():
            by_platform[platform][room_id] = since
        written: list[LiveSession] = []
        for platform, rooms in by_platform.items():
            written += self._rebuild_platform(platform, rooms, force=force, new=new)
        self.stats.rooms += len(touched)
        self._forget()
        return written

    def _forget(self) -> None:
        """Drop the memory of rooms not touched for ``lookback`` of wall time (bounded memory)."""
        if len(self._memory) > 1000:
            oldest = time.monotonic() - self.lookback.total_seconds()
            for key in [k for k, m in self._memory.items() if m.touched < oldest]:
                del self._memory[key]

    def _rebuild_platform(self, platform: str, rooms: Mapping[str, datetime], *, force: bool,
                          new: NewDocs | None) -> list[LiveSession]:
        db, gap = self.db, self.gap
        ids = list(rooms)
        start = {room: since - gap for room, since in rooms.items()}
        remembered = {room: m for room in ids if new is not None
                      and (m := self._memory.get((platform, room))) is not None and m.lower <= start[room]}
        unread = [room for room in ids if room not in remembered]
        snaps: dict[str, list[dict[str, Any]]] = defaultdict(list)
        shelves: dict[str, list[dict[str, Any]]] = defaultdict(list)
        room_docs = {d["room_id"]: d for d in db.rooms.find({"platform": platform, "room_id": {"$in": ids}})}
        if unread:
            # A stored session still open around the window's start: read it from its first snapshot.
            for doc in db.live_sessions.find(
                    {"platform": platform, "room_id": {"$in": unread},
                     "last_seen_live_at": {"$gte": min(start[r] for r in unread)}},
                    {"room_id": 1, "first_seen_live_at": 1, "started_at": 1, "last_seen_live_at": 1}):
                room = doc["room_id"]
                if doc["last_seen_live_at"] >= start[room]:
                    begin = min(x for x in (doc.get("first_seen_live_at"), doc.get("started_at")) if x is not None)
                    start[room] = min(start[room], begin - gap)
            lower = min(start[r] for r in unread)
            for doc in db.room_snapshots.find({"platform": platform, "room_id": {"$in": unread},
                                               "captured_at": {"$gte": lower}}, {"_id": 0}):
                if doc["captured_at"] >= start[doc["room_id"]]:
                    snaps[doc["room_id"]].append(doc)
            for room, docs in self._shelves(platform, unread, room_docs, start, lower).items():
                shelves[room] = docs
            self.stats.rooms_read += len(unread)
            if new is not None:
                for room in unread:
                    memory = self._memory[(platform, room)] = RoomMemory(lower=start[room])
                    memory.add(snaps.get(room, ()), shelves.get(room, ()))
        for room, memory in remembered.items():
            memory.add(*new[(platform, room)])  # type: ignore[index]
            snaps[room] = [d for d in memory.snaps.values() if d["captured_at"] >= memory.lower]
            shelves[room] = list(memory.shelf.values())
            self.stats.rooms_from_memory += 1
        for room in ids:
            if (memory := self._memory.get((platform, room))) is not None:
                memory.touched = time.monotonic()
        now = self.latest.get(platform) or max((s["captured_at"] for v in snaps.values() for s in v),
                                               default=datetime.now(UTC))
        computed_at = datetime.now(UTC)
        sessions: list[LiveSession] = []
        for room in ids:
            if snaps.get(room):
                sessions += sessions_of_room(platform, room, snaps[room], shelves.get(room, []), room_docs.get(room),
                                             now=now, computed_at=computed_at, gap=gap)
        if platform not in PER_BROADCAST_ROOMS:
            self._drop_provisional(platform, ids, start, sessions)
        return self._write(sessions, force=force)

    def _shelves(self, platform: str, ids: list[str], rooms: Mapping[str, Mapping[str, Any]],
                 start: Mapping[str, datetime], lower: datetime) -> dict[str, list[dict[str, Any]]]:
        shelves: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if platform in SHOP_SHELVES:
            sellers = {str(rooms[r].get("streamer_id") or r): r for r in ids if r in rooms} or {r: r for r in ids}
            products = {d["product_id"]: sellers[str(d["shop_id"])]
                        for d in self.db.products.find({"platform": platform, "shop_id": {"$in": list(sellers)}},
                                                       {"product_id": 1, "shop_id": 1})}
            query: dict[str, Any] = {"platform": platform, "product_id": {"$in": list(products)},
                                     "captured_at": {"$gte": lower}}
            owner = lambda doc: products.get(doc["product_id"])  # noqa: E731
        else:
            query = {"platform": platform, "room_id": {"$in": ids}, "captured_at": {"$gte": lower}}
            owner = lambda doc: doc.get("room_id")  # noqa: E731
        if platform in SHOP_SHELVES and not query["product_id"]["$in"]:
            return shelves
        for doc in self.db.product_snapshots.find(query, {"_id": 0}):
            room = owner(doc)
            if room is not None and doc["captured_at"] >= start[room]:
                shelves[room].append(doc)
        return shelves

    @staticmethod
    def _inputs(session: LiveSession) -> int:
        """How much a session's build saw (a later build of it sees at least as much): live
        snapshots, then shelf samples, then whether its end was seen."""
        return session.samples * 1_000_000 + session.shelf_samples * 10 + (session.status == "ended")

    def _drop_provisional(self, platform: str, ids: list[str], start: Mapping[str, datetime],
                          sessions: list[LiveSession]) -> None:
        """A provisional session the new build no longer has (its run now shows the platform's ID)."""
        kept = {s.session_id for s in sessions}
        stale = [doc["_id"] for doc in self.db.live_sessions.find(
            {"platform": platform, "room_id": {"$in": ids}, "session_id_provisional": True},
            {"room_id": 1, "session_id": 1, "first_seen_live_at": 1})
            if doc["session_id"] not in kept and doc["first_seen_live_at"] >= start[doc["room_id"]]]
        if stale:
            self.db.live_sessions.delete_many({"_id": {"$in": stale}})

    def _write(self, sessions: list[LiveSession], *, force: bool) -> list[LiveSession]:
        if not sessions:
            return []
        ops = []
        for session in sessions:
            doc = session.to_document()
            doc["inputs"] = self._inputs(session)
            key = {"platform": session.platform, "session_id": session.session_id}
            guard = {} if force else {"$or": [{"inputs": {"$lte": doc["inputs"]}}, {"inputs": {"$exists": False}}]}
            # The whole document (absent figures as null), so a replacement equals a $set of it; cheaper.
            ops.append(ReplaceOne({**key, **guard}, doc, upsert=True))
        try:
            result = self.db.live_sessions.bulk_write(ops, ordered=False)
            written = result.upserted_count + result.matched_count
        except BulkWriteError as exc:  # a newer build is stored: the guard kept it
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != 11000]
            if others:
                raise
            self.stats.stale_writes += len(errors)
            written = len(ops) - len(errors)
        self.stats.sessions_written += written
        for session in sessions:
            self.stats.by_platform[session.platform] += 1
        return sessions

    def sweep(self) -> int:
        """Rebuild live sessions not seen live for ``gap`` (as of their platform's newest snapshot)."""
        touched: dict[tuple[str, str], datetime] = {}
        for platform, latest in self.latest.items():
            for doc in self.db.live_sessions.find({"status": "live", "platform": platform,
                                                   "last_seen_live_at": {"$lt": latest - self.gap}},
                                                  {"room_id": 1, "last_seen_live_at": 1}):
                touched[(platform, doc["room_id"])] = doc["last_seen_live_at"]
        if touched:
            self.rebuild(touched)
        return len(touched)


def rebuild_since(db: Database, since: datetime, *, platform: str | None = None,
                  gap: timedelta = DEFAULT_GAP) -> BuildStats:
    """``livefleet sessions rebuild --since``: every session of every room with snapshots since
    ``since``, recomputed from MongoDB by this version of the builder and written over the stored ones."""
    builder = SessionBuilder(db, None, "", gap=gap)
    db = builder.db
    query: dict[str, Any] = {"captured_at": {"$gte": since}}
    if platform:
        query["platform"] = platform
    first: dict[tuple[str, str], datetime] = {}
    for doc in db.room_snapshots.find(query, {"platform": 1, "room_id": 1, "captured_at": 1}):
        key = (doc["platform"], doc["room_id"])
        first[key] = min(doc["captured_at"], first.get(key, doc["captured_at"]))
        latest = builder.latest.get(doc["platform"], doc["captured_at"])
        builder.latest[doc["platform"]] = max(doc["captured_at"], latest)
    rooms = sorted(first)
    for i in range(0, len(rooms), 500):
        builder.rebuild({key: first[key] for key in rooms[i:i + 500]}, force=True)
    return builder.stats
