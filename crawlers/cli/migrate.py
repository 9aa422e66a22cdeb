"""``livefleet migrate kuaishou-ids [--dry-run]``: re-key stored Kuaishou documents by user id.

Kuaishou streamers and rooms were keyed by the principalId of ``live.kuaishou.com/u/{principalId}``
(a kwaiId, which its owner can change, or else the eid). They are now keyed by the numeric user id
(the identity rule in ``spiders/kuaishou/records.py``). This command moves what is stored:

* **What tells the new key.** An old streamer's ``sec_id`` held the numeric user id whenever the
  payload carried one (``originUserId``/``user_id``); a room stored the new way names its old key in
  ``web_rid``. From these, ``principalId -> user id``. A principalId that maps to two user ids is
  ambiguous and left alone; a document whose principalId maps to none is left as it is (reported).
* **What moves.** ``streamers`` (streamer_id; its ``room_id``; the old ``sec_id``, which was the user
  id, is dropped), ``rooms`` (room_id and streamer_id; the old key kept as ``web_rid``),
  ``room_snapshots`` (room_id) and ``live_sessions`` (room_id, streamer_id; their key is the
  liveStreamId and does not change).
* **Duplicates merge.** Where a document already exists under the new key (crawled after the
  change), the two become one: the newer observation (``fetched_at``) wins field by field, a field
  only the older one has is kept, ``first_seen_at`` is the earliest, ``last_seen_at`` and
  ``peak_viewers`` the largest. Two snapshots of one room at the same instant keep the one already
  under the new key, filled with what only the old one had.
* **Idempotent and restartable.** Snapshots, rooms and sessions move before the streamers the
  mapping is read from, and a moved room still tells its mapping, so a run stopped half-way is
  finished by the next; a second run finds nothing to do.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from crawlers.services.lifecycle import ensure_services
from pipelines.p300_store import close_store, open_store
from settings.config import Config

PLATFORM = "kuaishou"
#: The fields the store keeps as extremes rather than as the newest value.
_EARLIEST, _LATEST = ("first_seen_at",), ("last_seen_at", "peak_viewers")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("migrate", help="re-key stored documents after a key rule changed")
    p.add_argument("migration", choices=["kuaishou-ids"],
                   help="kuaishou-ids: Kuaishou streamers/rooms/snapshots from principalId to the numeric user id")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")


def run(args: argparse.Namespace, config: Config) -> int:
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        counts = migrate_kuaishou_ids(db, dry_run=args.dry_run, log=None if args.json else print)
    finally:
        close_store(client)
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, **counts}, sort_keys=True))
    return 0


def _is_uid(value: Any) -> bool:
    return isinstance(value, str) and value.isdigit()


def principal_map(db: Database) -> tuple[dict[str, str], set[str]]:
    """``principalId -> user id`` from what is stored, and the principalIds that map ambiguously."""
    seen: dict[str, set[str]] = {}
    for doc in db.streamers.find({"platform": PLATFORM}, {"streamer_id": 1, "sec_id": 1}):
        if not _is_uid(doc.get("streamer_id")) and _is_uid(doc.get("sec_id")):
            seen.setdefault(doc["streamer_id"], set()).add(doc["sec_id"])
    for doc in db.rooms.find({"platform": PLATFORM}, {"room_id": 1, "web_rid": 1}):
        if _is_uid(doc.get("room_id")) and doc.get("web_rid") and not _is_uid(doc["web_rid"]):
            seen.setdefault(doc["web_rid"], set()).add(doc["room_id"])
    ambiguous = {p for p, ids in seen.items() if len(ids) > 1}
    return {p: next(iter(ids)) for p, ids in seen.items() if len(ids) == 1}, ambiguous


def _time(doc: dict[str, Any]) -> datetime | None:
    return doc.get("fetched_at") or doc.get("last_seen_at")


def merge_documents(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One document from two of the same entity: the newer wins field by field, nothing is lost."""
    ta, tb = _time(a), _time(b)
    newer, older = (b, a) if ta is None or (tb is not None and tb >= ta) else (a, b)
    merged = {**older, **{k: v for k, v in newer.items() if v is not None}}
    for name in _EARLIEST + _LATEST:
        values = [d[name] for d in (a, b) if d.get(name) is not None]
        if values:
            merged[name] = min(values) if name in _EARLIEST else max(values)
    return merged


def _move(coll: Collection, doc: dict[str, Any], key: dict[str, Any], changes: dict[str, Any],
          drop: tuple[str, ...], dry_run: bool) -> bool:
    """Move ``doc`` to ``key`` (+ ``changes``, less ``drop``); True when it merged into an existing one."""
    moved = {k: v for k, v in doc.items() if k not in drop and k != "_id"} | key | changes
    existing = coll.find_one(key)
    if existing is not None and existing["_id"] == doc["_id"]:
        existing = None
    if dry_run:
        return existing is not None
    if existing is None:
        unset = {name: "" for name in drop if name in doc}
        coll.update_one({"_id": doc["_id"]}, {"$set": key | changes, **({"$unset": unset} if unset else {})})
        return False
    merged = merge_documents({k: v for k, v in existing.items() if k != "_id"}, moved)
    coll.replace_one({"_id": existing["_id"]}, merged | key)
    coll.delete_one({"_id": doc["_id"]})
    return True


def _snapshots(db: Database, mapping: dict[str, str], dry_run: bool, counts: Counter[str]) -> None:
    for doc in db.room_snapshots.find({"platform": PLATFORM, "room_id": {"$in": list(mapping)}}):
        key = {"platform": PLATFORM, "room_id": mapping[doc["room_id"]], "captured_at": doc["captured_at"]}
        existing = db.room_snapshots.find_one(key)
        if existing is None:
            counts["room_snapshots.rekeyed"] += 1
            if not dry_run:
                db.room_snapshots.update_one({"_id": doc["_id"]}, {"$set": {"room_id": key["room_id"]}})
            continue
        counts["room_snapshots.merged"] += 1
        if not dry_run:
            fill = {k: v for k, v in doc.items() if k != "_id" and existing.get(k) is None and v is not None}
            if fill:
                db.room_snapshots.update_one({"_id": existing["_id"]}, {"$set": fill})
            db.room_snapshots.delete_one({"_id": doc["_id"]})


def _rooms(db: Database, mapping: dict[str, str], dry_run: bool, counts: Counter[str]) -> None:
    for doc in db.rooms.find({"platform": PLATFORM, "room_id": {"$in": list(mapping)}}):
        uid = mapping[doc["room_id"]]
        changes = {"streamer_id": uid, "web_rid": doc.get("web_rid") or doc["room_id"]}
        merged = _move(db.rooms, doc, {"platform": PLATFORM, "room_id": uid}, changes, (), dry_run)
        counts["rooms.merged" if merged else "rooms.rekeyed"] += 1


def _streamers(db: Database, mapping: dict[str, str], dry_run: bool, counts: Counter[str]) -> None:
    for doc in db.streamers.find({"platform": PLATFORM, "streamer_id": {"$in": list(mapping)}}):
        uid = mapping[doc["streamer_id"]]
        changes: dict[str, Any] = {}
        if doc.get("room_id") in mapping:
            changes["room_id"] = mapping[doc["room_id"]]
        # The old sec_id was the user id itself: now the key, so it goes (sec_id is the eid now).
        drop = ("sec_id",) if doc.get("sec_id") == uid else ()
        merged = _move(db.streamers, doc, {"platform": PLATFORM, "streamer_id": uid}, changes, drop, dry_run)
        counts["streamers.merged" if merged else "streamers.rekeyed"] += 1


def _sessions(db: Database, mapping: dict[str, str], dry_run: bool, counts: Counter[str]) -> None:
    for name in ("room_id", "streamer_id"):
        for old, uid in mapping.items():
            where = {"platform": PLATFORM, name: old}
            if dry_run:
                counts[f"live_sessions.{name}"] += db.live_sessions.count_documents(where)
            else:
                done = db.live_sessions.update_many(where, {"$set": {name: uid}})
                counts[f"live_sessions.{name}"] += done.modified_count


def migrate_kuaishou_ids(db: Database, *, dry_run: bool = False,
                         log: Callable[[str], Any] | None = print) -> dict[str, int]:
    """Re-key the Kuaishou documents of ``db``; the counts of what moved (or would move)."""
    mapping, ambiguous = principal_map(db)
    counts: Counter[str] = Counter({"principal_ids_mapped": len(mapping), "principal_ids_ambiguous": len(ambiguous)})
    _snapshots(db, mapping, dry_run, counts)
    _rooms(db, mapping, dry_run, counts)
    _sessions(db, mapping, dry_run, counts)
    _streamers(db, mapping, dry_run, counts)
    left = {"platform": PLATFORM, "streamer_id": {"$not": {"$regex": "^[0-9]+$"}}}
    counts["streamers.left"] = db.streamers.count_documents(left) - (
        counts["streamers.rekeyed"] + counts["streamers.merged"] if dry_run else 0)
    rooms_left = {"platform": PLATFORM, "room_id": {"$not": {"$regex": "^[0-9]+$"}}}
    counts["rooms.left"] = db.rooms.count_documents(rooms_left) - (
        counts["rooms.rekeyed"] + counts["rooms.merged"] if dry_run else 0)
    if log is not None:
        verb = "would re-key" if dry_run else "re-keyed"
        log(f"kuaishou-ids: {len(mapping)} principalIds map to a user id ({len(ambiguous)} ambiguous, left alone)")
        for coll in ("streamers", "rooms", "room_snapshots"):
            log(f"  {coll}: {verb} {counts[coll + '.rekeyed']}, merged into an existing document "
                f"{counts[coll + '.merged']}" + (f", left (no user id known) {counts[coll + '.left']}"
                                                  if coll != "room_snapshots" else ""))
        log(f"  live_sessions: {'would update' if dry_run else 'updated'} room_id {counts['live_sessions.room_id']},"
            f" streamer_id {counts['live_sessions.streamer_id']}")
    return {name: counts[name] for name in sorted(counts)}
