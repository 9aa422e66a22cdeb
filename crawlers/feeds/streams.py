"""Reading a feed with a consumer group: every service reads everything once.

Each service (a ranking job, a dashboard, the webhook dispatcher) reads a
collection's stream ``FleetKeys.feed(collection)`` through its own consumer
group; a group created later starts at the beginning of what the stream still
holds (``XGROUP CREATE .. 0 MKSTREAM``). Inside a group, each message goes to
one consumer, which acknowledges it once handled (``XACK``). A message handed
to a consumer that then died stays pending in the group: after
``claim_idle_ms`` without an acknowledgement any other consumer of the group
takes it over (``XAUTOCLAIM``), so a crash delays messages, never loses them.
A consumer that restarts under its own name first re-reads what it had been
handed and not acknowledged.

    reader = FeedReader(server, "livefleet", "rooms", group="ranking", consumer="ranking-1")
    for message in reader.read(count=100, block_ms=5000):
        handle(message.doc)
        reader.ack([message.id])
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterable
from typing import Any

import redis
from redis.exceptions import ResponseError

from crawlers.feeds.message import COLLECTIONS, FeedMessage
from crawlers.redis.keys import FleetKeys


class FeedReader:
    """One consumer of one consumer group on one collection's feed."""

    def __init__(self, server: redis.Redis, prefix: str, collection: str, group: str, consumer: str, *,
                 claim_idle_ms: int = 60_000, claim_every: float | None = None) -> None:
        if collection not in COLLECTIONS:
            raise ValueError(f"no feed named {collection!r}; feeds: {', '.join(COLLECTIONS)}")
        self.server = server
        self.collection = collection
        self.key = FleetKeys(prefix).feed(collection)
        self.group = group
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        #: Seconds between two looks for stale pending messages of other consumers.
        self.claim_every = claim_idle_ms / 2000 if claim_every is None else claim_every
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._own_cursor: str | None = "0"  # re-read what this consumer was handed before a restart
        self._created = False

    def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; a new group reads from the stream's start."""
        if self._created:
            return
        try:
            self.server.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._created = True

    def read(self, count: int = 100, block_ms: int | None = None) -> list[FeedMessage]:
        """Up to ``count`` messages for this consumer: its own unacknowledged ones after a restart,
        then stale ones of dead consumers, then new ones (waiting up to ``block_ms`` for them)."""
        self.ensure_group()
        if self._own_cursor is not None:
            mine = self._read_group(self._own_cursor, count, None)
            if mine:
                self._own_cursor = mine[-1].id
                return mine
            self._own_cursor = None
        if time.monotonic() >= self._next_claim:
            claimed = self.claim_stale(count)
            if claimed:
                return claimed
            self._next_claim = time.monotonic() + self.claim_every
        return self._read_group(">", count, block_ms)

    def claim_stale(self, count: int = 100) -> list[FeedMessage]:
        """Take over messages other consumers were handed and left unacknowledged for ``claim_idle_ms``."""
        self.ensure_group()
        reply = self.server.xautoclaim(self.key, self.group, self.consumer, self.claim_idle_ms,
                                       start_id=self._claim_cursor, count=count)
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = _text(cursor)
        messages, gone = [], []
        for entry_id, fields in entries:
            if entry_id is None:  # Redis 6.2 answers nil for an entry deleted while pending
                continue
            if fields is None:  # trimmed away (MAXLEN) while pending: nothing left to deliver
                gone.append(entry_id)
            else:
                messages.append(FeedMessage.from_entry(self.collection, entry_id, fields))
        gone += reply[2] if len(reply) > 2 else []  # Redis 7 names deleted ids apart
        if gone:
            self.server.xack(self.key, self.group, *gone)
        return messages

    def ack(self, ids: Iterable[str]) -> int:
        """Acknowledge handled messages; returns how many were pending."""
        ids = list(ids)
        return int(self.server.xack(self.key, self.group, *ids)) if ids else 0

    def pending(self) -> int:
        """Messages handed to consumers of the group and not acknowledged yet."""
        self.ensure_group()
        return int(self.server.xpending(self.key, self.group)["pending"])

    def _read_group(self, start: str, count: int, block_ms: int | None) -> list[FeedMessage]:
        reply = self.server.xreadgroup(self.group, self.consumer, {self.key: start}, count=count, block=block_ms)
        messages = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                if fields:  # a pending entry trimmed away has no fields: acknowledge it, it is gone
                    messages.append(FeedMessage.from_entry(self.collection, entry_id, fields))
                else:
                    self.server.xack(self.key, self.group, entry_id)
        return messages


def default_consumer() -> str:
    """A consumer name for this machine (stable across restarts, so pending messages are re-read)."""
    return socket.gethostname()


def feed_info(server: redis.Redis, prefix: str) -> dict[str, Any]:
    """Per collection: stream length, first and last ids, and each consumer group's pending and consumers."""
    keys = FleetKeys(prefix)
    out: dict[str, Any] = {}
    for collection in COLLECTIONS:
        key = keys.feed(collection)
        if not server.exists(key):
            out[collection] = {"length": 0, "groups": []}
            continue
        info = server.xinfo_stream(key)
        groups = []
        for group in server.xinfo_groups(key):
            name = _text(group["name"])
            consumers = [{"name": _text(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
                         for c in server.xinfo_consumers(key, name)]
            groups.append({"name": name, "pending": int(group["pending"]),
                           "last_delivered": _text(group["last-delivered-id"]),
                           "lag": group.get("lag"), "consumers": consumers})
        out[collection] = {
            "length": int(info["length"]),
            "first": _text(info["first-entry"][0]) if info.get("first-entry") else None,
            "last": _text(info["last-generated-id"]),
            "groups": groups,
        }
    return out


def run_feed_read(server: redis.Redis, prefix: str, collection: str, group: str, consumer: str, *,
                  count: int | None, follow: bool, block_ms: int = 2000) -> int:
    """``livefleet feed read``: print messages as JSON lines, acknowledging each once printed."""
    reader = FeedReader(server, prefix, collection, group, consumer)
    printed = 0
    while count is None or printed < count:
        want = 100 if count is None else min(100, count - printed)
        messages = reader.read(want, block_ms if follow else None)
        if not messages and not follow:
            break
        for message in messages:
            sys.stdout.write(json.dumps(message.to_json_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        reader.ack(m.id for m in messages)
        printed += len(messages)
    return 0


def run_feed_info(server: redis.Redis, prefix: str, *, as_json: bool) -> int:
    """``livefleet feed info``: the feeds, their lengths and consumer groups."""
    info = feed_info(server, prefix)
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{'feed':18s} {'messages':>9s}  groups (pending, consumers)")
    for collection, feed in info.items():
        groups = ", ".join(f"{g['name']} ({g['pending']}, {len(g['consumers'])})" for g in feed["groups"]) or "-"
        print(f"{collection:18s} {feed['length']:>9d}  {groups}")
    return 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
