"""The fleet's epoch: noticing a Redis that came back without livefleet's state.

Everything the fleet shares lives in Redis: queues, leases, seen-sets, seeds, dead
letters, monitors, webhook subscriptions. A Redis that restarts without its data (no
persistence, a flush, a new server at the same address) hands every worker an empty
queue, and an empty queue looks exactly like a finished crawl. So the first livefleet
process that uses a Redis writes ``FleetKeys.epoch`` (a random id and when it was made,
never expiring); every worker remembers it when it starts and looks at it again with each
heartbeat (``crawlers/health/heartbeat.py``), and a campaign run stores it in its document
and compares it with each poll (``crawlers/campaigns/runs.py``).

When it is gone or changed, the process that notices:

- appends a loss record to ``FleetKeys.epoch_lost`` (kept, newest first, never expiring:
  ``livefleet status`` shows it from then on, in its table and its JSON),
- logs :func:`loss_message` at ERROR (what was lost and what to do),
- and adopts the epoch that is there now (making one if none is), so it reports each loss
  once.

The check is two reads per heartbeat (GET, and TIME only on a loss); Redis time is used so
records from machines with skewed clocks compare.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

import redis

from crawlers.redis.keys import FleetKeys

#: Loss records kept in ``FleetKeys.epoch_lost`` (older ones are trimmed).
LOSS_RECORDS_KEPT = 100


@dataclass(frozen=True)
class Epoch:
    """One life of the fleet's state in a Redis."""

    id: str
    created_at: float


def _parse(raw: bytes | str | None) -> Epoch | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Epoch(str(data["id"]), float(data["created_at"]))
    except (ValueError, KeyError, TypeError):
        # Something else wrote the key: treat it as an epoch of its own (a change is still noticed).
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return Epoch(text[:64], 0.0)


def _now(server: redis.Redis) -> float:
    seconds, micros = server.time()
    return seconds + micros / 1e6


def current_epoch(server: redis.Redis, prefix: str) -> Epoch | None:
    """The epoch in Redis now, or None (never made, or lost)."""
    return _parse(server.get(FleetKeys(prefix).epoch))


def ensure_epoch(server: redis.Redis, prefix: str) -> Epoch:
    """The epoch in Redis, made now (SET NX: one wins among processes racing) when there is none."""
    key = FleetKeys(prefix).epoch
    fresh = json.dumps({"id": secrets.token_hex(8), "created_at": _now(server)})
    with server.pipeline(transaction=True) as pipe:
        pipe.set(key, fresh, nx=True)
        pipe.get(key)
        _, raw = pipe.execute()
    epoch = _parse(raw)
    assert epoch is not None  # just set, in the same transaction
    return epoch


def lost_records(server: redis.Redis, prefix: str, limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
    """(how many loss records there are, the newest ``limit`` of them)."""
    key = FleetKeys(prefix).epoch_lost
    with server.pipeline(transaction=False) as pipe:
        pipe.llen(key)
        pipe.lrange(key, 0, max(0, limit - 1))
        count, raws = pipe.execute()
    records = []
    for raw in raws:
        try:
            records.append(json.loads(raw))
        except ValueError:
            records.append({"raw": raw.decode(errors="replace")[:200]})
    return int(count), records


def loss_message(loss: dict[str, Any], prefix: str) -> str:
    """What a person must read when the fleet's state is gone: what was lost and what to do."""
    found = "missing" if loss.get("found") is None else f"replaced by epoch {loss['found']}"
    return (f"Redis lost the fleet's state: epoch {loss['lost']} of key prefix {prefix!r} is {found} "
            f"(noticed by {loss['who']}). Everything livefleet kept there is gone: queued and leased requests, "
            "seeds, seen-sets, dead letters, monitors, webhook subscriptions and fleet stats. Crawls in progress "
            "will look finished but are not complete. To do: find out why (a Redis without persistence that "
            "restarted, a FLUSHALL, another server at that address), push the crawls' seeds again "
            "(`livefleet crawl`, `livefleet campaign run`), add the monitors and webhooks again; records already "
            "in MongoDB are kept. `livefleet status` lists this loss.")


class EpochWatch:
    """One process's memory of the epoch, and its check (not thread-safe: one thread calls it)."""

    def __init__(self, server: redis.Redis, prefix: str, who: str) -> None:
        self.server = server
        self.prefix = prefix
        self.who = who
        self.known: Epoch | None = None

    def remember(self) -> Epoch:
        """Take the epoch in Redis (made now if there is none) as this process's."""
        self.known = ensure_epoch(self.server, self.prefix)
        return self.known

    def check(self) -> dict[str, Any] | None:
        """None while the epoch is the one remembered; else the loss record (stored in Redis already)."""
        if self.known is None:
            self.remember()
            return None
        found = current_epoch(self.server, self.prefix)
        if found is not None and found.id == self.known.id:
            return None
        loss = {"at": _now(self.server), "who": self.who, "host": socket.gethostname(), "pid": os.getpid(),
                "lost": self.known.id, "lost_created_at": self.known.created_at,
                "found": found.id if found is not None else None}
        key = FleetKeys(self.prefix).epoch_lost
        with self.server.pipeline(transaction=True) as pipe:
            pipe.lpush(key, json.dumps(loss, sort_keys=True))
            pipe.ltrim(key, 0, LOSS_RECORDS_KEPT - 1)
            pipe.execute()
        self.known = found if found is not None else ensure_epoch(self.server, self.prefix)
        return loss
