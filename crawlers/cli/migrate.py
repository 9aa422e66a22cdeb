"""``livefleet migrate kuaishou-ids|product-sales``: repair stored documents after a rule changed.

``livefleet migrate kuaishou-ids [--dry-run] [--json]``: re-key stored Kuaishou documents by user id.
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

``livefleet migrate product-sales [--dry-run] [--json]``: bring stored sales to the contract
(SCHEMA.md, ``products`` and ``product_snapshots``: cumulative sales never go down). Before it,
snapshots kept no ``sales_text``/``sales_is_lower_bound``, ``products.sales`` was the newest count
(a rounded ``6.6万+`` = 66000 replaced an exact 66910 seen before), and a rolling 月销 count went
to ``sales``. For each product and its snapshots (:func:`plan_product_sales`):

* **月销 moves out.** A count whose text says it is rolling (月销, 月售, 30天) moves to
  ``sales_30d``/``sales_30d_text`` on both collections (an existing ``sales_30d`` is kept).
* **Snapshots get their flag.** One without ``sales_is_lower_bound`` gets it from its text, read
  as the parsers read it (``6.6万+``: true; a plain number, or ``1.2万`` without ``+``: false). Old
  snapshots have no text: the one captured when the product's document was fetched, with the
  same count, comes from the same page and takes the product's text (and flag); any other stays
  null (unknown), never guessed.
* **Products keep the best-known count.** ``products.sales`` becomes the largest of its own count
  and its snapshots' (of equal counts an exact one), with the text and flag of the one that gave
  it; its own count without a text showing it was a plain number, so exact. When its own count
  was a 月销 one, snapshots of unknown kind are left out (they may be 月销 counts too).
* **Idempotent.** A second run changes nothing; a product a crawl updates meanwhile is left as
  the store made it (counted; the next run looks again).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from crawlers.services.lifecycle import ensure_services
from models.normalize import MAX_TEXT_CHARS, CountValue, parse_count
from pipelines.p300_store import close_store, open_store
from settings.config import Config
from spiders.payload import ROLLING_SALES_RE

PLATFORM = "kuaishou"
#: The fields the store keeps as extremes rather than as the newest value.
_EARLIEST, _LATEST = ("first_seen_at",), ("last_seen_at", "peak_viewers")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("migrate", help="re-key or repair stored documents after a rule changed")
    p.add_argument("migration", choices=["kuaishou-ids", "product-sales"],
                   help="kuaishou-ids: Kuaishou streamers/rooms/snapshots from principalId to the numeric user id; "
                        "product-sales: products.sales to the best-known count, snapshots' lower-bound flags, "
                        "月销 counts to sales_30d")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")


def run(args: argparse.Namespace, config: Config) -> int:
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        migrate = migrate_product_sales if args.migration == "product-sales" else migrate_kuaishou_ids
        counts = migrate(db, dry_run=args.dry_run, log=None if args.json else print)
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


# --- product-sales ---------------------------------------------------------------------------------

#: The sales fields of products and product snapshots.
_SALES_FIELDS = ("sales", "sales_text", "sales_is_lower_bound", "sales_30d", "sales_30d_text")
#: The words the parsers read around a shown sales count (spiders/taobao/items.py, spiders/douyin/products.py).
_SALES_WORDS_RE = re.compile(
    r"^\s*(?:月销量?|月售出?|近?\s*30\s*天\s*(?:销量|销售|已售|售出)?|已售|总销量|销量|已抢|售出|付款|已拼)\s*[:：]?\s*"
    r"|\s*[件单份]\s*$"
)


def _shown(text: Any) -> CountValue | None:
    """The count a stored sales text shows, read as the parsers read it; None when it cannot be read."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        return None
    try:
        return parse_count(_SALES_WORDS_RE.sub("", text.strip()))
    except ValueError:
        return None


def _text_of(value: int, text: Any) -> CountValue | None:
    """``text`` read, when it shows ``value`` (a text left from another observation shows another)."""
    shown = _shown(text)
    return shown if shown is not None and shown.value == value else None


def _is_rolling(text: Any) -> bool:
    return isinstance(text, str) and ROLLING_SALES_RE.match(text) is not None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sales_update(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    """The ``$set``/``$unset`` taking a document's sales fields from ``before`` to ``after`` (None: none)."""
    def same(a: Any, b: Any) -> bool:
        return a == b and type(a) is type(b)

    set_ = {k: v for k, v in after.items() if v is not None and not same(before.get(k), v)}
    unset = {k: "" for k, v in after.items() if v is None and before.get(k) is not None}
    update = ({"$set": set_} if set_ else {}) | ({"$unset": unset} if unset else {})
    return update or None


#: The counts ``product-sales`` reports (always all of them).
_SALES_COUNTS = (
    "products.with_snapshots", "products.updated", "products.sales_from_snapshot", "products.rolling_moved",
    "products.changed_meanwhile", "product_snapshots.updated", "product_snapshots.rolling_moved",
    "product_snapshots.flag_derived", "product_snapshots.flag_unknown", "product_snapshots.left_out_unknown_kind",
)


@dataclass
class SalesPlan:
    """What :func:`plan_product_sales` would change: one update per document, and the counts."""

    product: dict[str, Any] | None = None
    snapshots: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def plan_product_sales(product: dict[str, Any] | None, snapshots: list[dict[str, Any]]) -> SalesPlan:
    """The changes that bring one product (its document, or None) and its snapshots to the contract.

    * A count whose text says it is rolling (月销, 月售, 30天) moves to ``sales_30d``/``sales_30d_text``.
    * A snapshot without ``sales_is_lower_bound`` gets it from its text, read as the parsers read
      it (``+``: a lower bound; a plain number or ``1.2万``: not). Snapshots stored before they kept
      a text have none: the one captured when the product's document was fetched, with the same
      count, comes from the same page, so the product's text and flag are its own (copied); any
      other keeps a null flag (unknown), never guessed.
    * The product's own count: its text, when the text shows that count, tells its flag. Without
      one (no text, or a text left by an older observation: the store once kept each field's newest
      value apart), the parsers read it from a plain number, so it is exact, when that is what the
      document says: it has no snapshots, or one from its own page shows the count. Otherwise
      (a count this migration took from a snapshot of unknown kind) its flag stays unknown.
    * ``products.sales`` becomes the largest of its own count and its snapshots' (of equal counts,
      an exact one over a lower bound, then its own), with the text and flag of the one that gave
      it. When the product was seen with a rolling count (its own, or its ``sales_30d_text``),
      snapshots of unknown kind are left out: they may be 月销 counts too, and a rolling count
      never goes in ``sales``.
    """
    plan = SalesPlan()
    counts = plan.counts
    fetched = product.get("fetched_at") if product is not None else None
    value = product.get("sales") if product is not None else None
    text = product.get("sales_text") if product is not None else None
    flag = product.get("sales_is_lower_bound") if product is not None else None

    def from_own_page(snap: dict[str, Any]) -> bool:
        return fetched is not None and snap.get("captured_at") == fetched and snap.get("sales") == value

    # The product's own count: (value, text, flag), or rolling.
    own: tuple[int, str | None, bool | None] | None = None
    own_rolling = False
    if _count(value):
        shown = _text_of(value, text)
        if shown is not None and _is_rolling(text):
            own_rolling = True
        elif shown is not None:
            own = (value, text, flag if isinstance(flag, bool) else shown.is_lower_bound)
        elif text is None and isinstance(flag, bool):
            own = (value, None, flag)
        else:
            plain = not snapshots or any(from_own_page(snap) for snap in snapshots)
            own = (value, None, False if plain else None)

    # A product seen with a 月销 count (now or moved before): its snapshots of unknown kind may be 月销 ones.
    rolling_seen = own_rolling or (product is not None and _is_rolling(product.get("sales_30d_text")))
    best = own
    for snap in snapshots:
        before = {name: snap.get(name) for name in _SALES_FIELDS}
        after = dict(before)
        s_value, s_text, s_flag = snap.get("sales"), snap.get("sales_text"), snap.get("sales_is_lower_bound")
        if _count(s_value):
            same_page = s_text is None and not isinstance(s_flag, bool) and from_own_page(snap)
            if same_page and (own_rolling or (own is not None and own[1] is not None)):
                s_text = after["sales_text"] = text
            if _is_rolling(s_text):
                if after["sales_30d"] is None:
                    after.update(sales_30d=s_value, sales_30d_text=s_text)
                after.update(sales=None, sales_text=None, sales_is_lower_bound=None)
                counts["product_snapshots.rolling_moved"] += 1
            else:
                if not isinstance(s_flag, bool):
                    shown = _text_of(s_value, s_text)
                    if shown is not None:
                        s_flag = shown.is_lower_bound
                    elif same_page and own is not None:
                        s_flag = own[2]
                    if s_flag is None:
                        counts["product_snapshots.flag_unknown"] += 1
                    else:
                        after["sales_is_lower_bound"] = s_flag
                        counts["product_snapshots.flag_derived"] += 1
                if s_flag is None and rolling_seen:
                    counts["product_snapshots.left_out_unknown_kind"] += 1
                elif (best is None or s_value > best[0]
                      or (s_value == best[0] and best[2] is not False and s_flag is False)):
                    best = (s_value, after.get("sales_text"), s_flag)
        update = _sales_update(before, after)
        if update is not None:
            plan.snapshots.append((snap["_id"], update))

    if product is not None:
        p_after = {name: product.get(name) for name in _SALES_FIELDS}
        if own_rolling:
            if p_after["sales_30d"] is None:
                p_after.update(sales_30d=value, sales_30d_text=text)
            p_after.update(sales=None, sales_text=None, sales_is_lower_bound=None)
            counts["products.rolling_moved"] += 1
        if best is not None:
            if best is not own:
                counts["products.sales_from_snapshot"] += 1
            p_after.update(sales=best[0], sales_text=best[1], sales_is_lower_bound=best[2])
        plan.product = _sales_update(product, p_after)
    return plan


def _apply_sales(db: Database, product: dict[str, Any] | None, snapshots: list[dict[str, Any]], dry_run: bool,
                 counts: Counter[str]) -> None:
    plan = plan_product_sales(product, snapshots)
    counts.update(plan.counts)
    counts["product_snapshots.updated"] += len(plan.snapshots)
    if plan.product is not None:
        counts["products.updated"] += 1
    if dry_run:
        return
    for snap_id, update in plan.snapshots:
        db.product_snapshots.update_one({"_id": snap_id}, update)
    if plan.product is not None and product is not None:
        # Only over the count read: a crawl storing a larger one meanwhile keeps it (the next run sees it).
        done = db.products.update_one({"_id": product["_id"], "sales": product.get("sales")}, plan.product)
        if done.matched_count == 0:
            counts["products.updated"] -= 1
            counts["products.changed_meanwhile"] += 1


def _snapshot_groups(db: Database) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(product key, its snapshots in capture order)`` for every product that has snapshots."""
    projection = {name: 1 for name in ("platform", "product_id", "captured_at", *_SALES_FIELDS)}
    cursor = db.product_snapshots.find({}, projection).sort(
        [("platform", 1), ("product_id", 1), ("captured_at", 1)])
    for (platform, product_id), group in itertools.groupby(cursor, key=lambda d: (d["platform"], d["product_id"])):
        yield {"platform": platform, "product_id": product_id}, list(group)


def migrate_product_sales(db: Database, *, dry_run: bool = False,
                          log: Callable[[str], Any] | None = print) -> dict[str, int]:
    """Bring stored products and product snapshots to the sales contract; the counts of what changed
    (or would change). Idempotent: a second run changes nothing."""
    counts: Counter[str] = Counter(dict.fromkeys(_SALES_COUNTS, 0))
    for key, snapshots in _snapshot_groups(db):
        counts["products.with_snapshots"] += 1
        _apply_sales(db, db.products.find_one(key), snapshots, dry_run, counts)
    # Products without snapshots: only their own count (a 月销 text, a flag) can change.
    for product in db.products.find({"$or": [{"sales": {"$exists": True}}, {"sales_text": {"$exists": True}}]}):
        key = {"platform": product["platform"], "product_id": product["product_id"]}
        if db.product_snapshots.find_one(key, {"_id": 1}) is None:
            _apply_sales(db, product, [], dry_run, counts)
    if log is not None:
        verb = "would update" if dry_run else "updated"
        log(f"product-sales: {verb} {counts['products.updated']} products "
            f"({counts['products.sales_from_snapshot']} to a larger count from their snapshots, "
            f"{counts['products.rolling_moved']} 月销 counts moved to sales_30d)")
        log(f"  product_snapshots: {verb} {counts['product_snapshots.updated']} "
            f"(lower-bound flag derived {counts['product_snapshots.flag_derived']}, left unknown "
            f"{counts['product_snapshots.flag_unknown']}; 月销 counts moved to sales_30d "
            f"{counts['product_snapshots.rolling_moved']})")
        if counts["products.changed_meanwhile"]:
            log(f"  products a crawl changed meanwhile, left for the next run: {counts['products.changed_meanwhile']}")
    return {name: counts[name] for name in sorted(counts)}
