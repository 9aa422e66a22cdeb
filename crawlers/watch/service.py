"""The watcher: watched accounts going live start a monitor by themselves; their end stops it; alerts once.

A :class:`Watcher` serves the watchlists (:mod:`crawlers.watch.lists`) of some platforms. Any number
of them may run at once on one Redis (one per worker machine, say): every step below is shared
through Redis, claimed atomically, and safe to repeat after a crash. A round (:meth:`Watcher.step`):

1. **sync**: when a platform's watchlists ``version`` moved, reload :func:`~crawlers.watch.lists.watched`
   and bring the platform's *due set* up to date (``FleetKeys.watch_due(platform)``, a sorted set
   entry key -> next check time, Redis server time in ms). A new entry's first slot is its offset
   within the interval: the entries are ranked by a hash of their key and spread evenly over the
   interval (``rank * interval / n``, plus the hash within its share), so 120 entries at 60 s are
   two a second, never a burst. The add/remove is one script that first checks the version is still
   the one loaded, so a worker with an older copy never removes what a newer one added.
2. **check** (every ``check_every``, by default a twentieth of the interval, at most 5 s, so the entries due
   meanwhile go out together: Bilibili status seeds batch them): :data:`CLAIM` takes the due entries
   and moves each to its next slot (``due + interval``, skipping missed slots) in one script: two
   workers never check the same entry twice in one interval. Entries outside their time window are
   claimed (moved on) but not checked. The checks are pushed as seeds to the platform spider's queue
   (:func:`crawlers.queue.feeder.push_seeds`), the cheapest the spider has (:data:`CHECKS`).
3. **observe**: the ``rooms`` and ``streamers`` feeds are read with the consumer group
   ``livefleet-watch`` (created at the feeds' end: what was stored before the first watcher is history;
   a "live" document captured more than ``fresh_ms`` ago starts nothing). The group shares the messages
   out, so every watcher handles the news of every platform, whichever it checks. A document is mapped
   to entries by the IDs it carries: a room entry by ``room_id`` / ``web_rid`` (Douyin web_rid, Bilibili
   short id, Kuaishou principalId), a streamer entry by ``streamer_id``; IDs a streamer is also known by
   (``sec_id``: Douyin sec_uid, Kuaishou eid; ``handle``) are learned from streamers documents into
   ``FleetKeys.watch_aliases(platform)``, a hash every worker shares. Rooms documents give a status
   (``live``; ``ended``/``offline``/``replay`` mean not live), streamers documents their ``is_live`` (a
   live one starts a stream on Douyin only, :data:`STREAMER_STARTS`: elsewhere the rooms document of the
   same page carries the broadcast's start, which names the session).
4. **transitions**. Seen live (inside its window) with no live record: ``SET NX``
   ``FleetKeys.watch_live(entry)`` (phase ``starting``), so one worker wins; it adds a monitor
   (:class:`crawlers.monitor.registry.Registry`, every ``entry.every_s``, for :data:`MONITOR_FOR_S`,
   stopped explicitly) unless every list holding the entry is notify-only, queues ``stream_started``,
   then marks the record ``live``. Seen not live (captured after the start was seen), or its window
   closed: the record goes ``ending`` (a WATCHed transaction: one worker), the monitor is stopped,
   ``stream_ended`` is queued with the session's summary from MongoDB ``live_sessions``
   (``duration_s``, ``peak_viewers``, ``gmv_estimate``/``gmv_low``/``gmv_high``; None when unknown),
   the record deleted and the capture time of the end kept (``watch_ended``: an older "live" document
   read later does not start it again). A worker that dies half way leaves its record ``starting`` or
   ``ending``: the sweep (every few seconds, over ``watch_lives(platform)``) lets another worker redo
   the step after :data:`STALE_MS`. An entry removed from every list has its monitor stopped (no alert);
   a stream outliving its monitor's ``for`` gets another monitor. On Douyin and Taobao a room id is one
   broadcast: a streamer seen live in another room has ended the last broadcast and begun a new one.
5. **alerts**: :func:`queue_alert`, per subscriber of the entry's lists that takes the event: one script
   ``SET NX <prefix>:alerts:sent:<subscriber>:<alert.key>`` (7 days) and, only when set, ``RPUSH`` of
   the alert to ``<prefix>:alerts:outbox:<subscriber>``. The alert's key is stable across workers (it
   names the broadcast: the record's ``session_id``), so two workers, or a redone step, queue it once.
   :func:`~crawlers.watch.outbox.deliver_pending` sends the outboxes with
   :func:`crawlers.alerts.robots.send_alert` (which retries what may pass later); an alert being sent is
   held in flight under a lease, so one whose sender died is sent by another; a final failure is appended
   to ``<prefix>:alerts:failures`` (``livefleet watch alert failures|replay``).

Checks per platform (:data:`CHECKS`), each a seed with ``follow=[]`` (nothing followed):

* Bilibili streamer (uid): ``{"kind": "status", "uids": [...]}``, ``get_status_info_by_uids``: ONE
  request for up to 50 watched streamers (their room, live status, start time);
* Bilibili room: ``{"kind": "room", "room_id"}``: ``room_init``, one request (status, ids, start);
* Douyin streamer (sec_uid): ``{"kind": "streamer", "sec_uid"}``: the signed profile API, one request
  (``is_live`` and the session's room_id);
* Douyin room (web_rid): ``{"kind": "room", "web_rid"}``: the room page rendered in Chromium: one
  render, the heaviest check of all (prefer watching Douyin streamers);
* Kuaishou room (principalId): ``{"kind": "room", "principal_id"}``: the live page ``/u/<id>`` and the
  profile API, two requests;
* Taobao room (liveId): ``{"kind": "room", "live_id"}``: ``live_detail`` (mtop), one request.

The monitor started for a Bilibili streamer watches the room found live (room pages are cheaper than
a streamer's five); every other entry's monitor watches the entry's own target.

``stream_ended`` waits (at most ``insession.SUMMARY_WAIT_MS``) for the session builder to close the
session, so its summary is whole; during the broadcast, :mod:`crawlers.watch.insession` turns the live
session into shelf and viewer alerts. A tier changed while an entry is live changes its monitor's
interval (the sweep). From one outbox alerts may be sent out of order when several watchers deliver at
once. ``livefleet watch run`` (``crawlers/cli/watch.py``) runs :func:`run_command`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crawlers.alerts.robots import Alert
from crawlers.feeds.message import FeedMessage
from crawlers.feeds.streams import FeedReader, default_consumer
from crawlers.feeds.urlcheck import AllowList
from crawlers.monitor import watched as monitor_targets
from crawlers.monitor.registry import Registry
from crawlers.queue.feeder import push_seeds
from crawlers.redis.keys import FleetKeys, SpiderKeys
from crawlers.watch import lists, subscribing
from crawlers.watch.checks import CHECKS, CLAIM, STATUS_BATCH, SYNC, _hash, check_seeds
from crawlers.watch.insession import EVERY_S as SESSION_EVERY_S
from crawlers.watch.insession import SUMMARY_WAIT_MS, ended_summary, queue_session_alerts
from crawlers.watch.lists import WatchEntry, _text
from crawlers.watch.observe import Observation, _id, _Index, _ms
from crawlers.watch.outbox import ALERT_TTL_S, QUEUE, _fields, deliver_pending, queue_alert
from crawlers.watch.subscribing import Subscriber
from models.platforms import PLATFORMS

log = logging.getLogger(__name__)

__all__ = ["ALERT_TTL_S", "CHECKS", "GROUP", "MONITOR_FOR_S", "STATUS_BATCH", "Observation", "Watcher",
           "check_seeds", "deliver_pending", "queue_alert"]

GROUP = "livefleet-watch"
FEEDS = ("rooms", "streamers")
#: How long a monitor started by the watcher runs at most (it is stopped when the stream ends).
MONITOR_FOR_S = 12 * 3600.0
#: A start or an end left half done this long (its worker died) is redone by another worker.
STALE_MS = 60_000
#: How often an end waiting for its session's summary looks again.
AWAIT_POLL_MS = 5_000
#: Platforms whose room id is per broadcast (``crawlers.sessions.build``): the session id is the room id.
PER_BROADCAST = frozenset({"douyin", "taobao"})
#: Platforms whose check of a streamer may give a streamers document only (Douyin's profile: ``is_live`` and
#: the session's room_id): there a live streamer document starts a stream. Elsewhere the page that says a
#: streamer is live also gives the room with the broadcast's start, which names the session.
STREAMER_STARTS = frozenset({"douyin"})


# KEYS: live record, live set, ended hash. ARGV: record JSON, entry key, capture ms of the observation.
# 1: this worker made the record; 0: there is one; -1: the observation is older than the last end.
START = """
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if tonumber(ARGV[3]) <= last then return -1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SADD', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass
class WatchStats:
    checks: int = 0
    seeds: int = 0
    messages: int = 0
    started: int = 0
    ended: int = 0
    alerts_queued: int = 0
    delivered: int = 0
    delivery_failures: int = 0


class Watcher:
    """A watcher checking the entries of ``platforms`` (module docstring); any number may run on one Redis.
    Every watcher handles the feeds' news of every platform (one consumer group shares them out)."""

    def __init__(self, server: redis.Redis, prefix: str, db: Database | None, *, platforms: Sequence[str],
                 check_interval: float = 60.0, consumer: str | None = None, deliver: bool = True,
                 allow: AllowList | str | None = None, claim_idle_ms: int = 60_000,
                 sweep_every: float = 5.0, check_every: float | None = None) -> None:
        if check_interval <= 0:
            raise ValueError("check_interval must be positive")
        self.server = server
        self.prefix = prefix
        self.keys = FleetKeys(prefix)
        self.db = db
        unknown = [p for p in platforms if p not in PLATFORMS]
        if unknown or not platforms:
            raise ValueError(f"unknown platform(s) {', '.join(unknown) or '(none)'}: {', '.join(PLATFORMS)}")
        #: The platforms whose entries this watcher checks. The feeds, the transitions and the sweep cover
        #: every platform: the consumer group is one, so a message it hands this watcher is handled here.
        self.platforms = tuple(platforms)
        self.every_ms = max(1, int(check_interval * 1000))
        self.consumer = consumer or f"{default_consumer()}-watch"
        self.deliver = deliver
        self.allow = allow
        self.sweep_every = sweep_every
        #: How often due checks are claimed: the entries due within it go out together (Bilibili's
        #: status seeds batch them), while the slots stay spread over the interval.
        self.check_every = min(5.0, check_interval / 20) if check_every is None else check_every
        self._next_check = 0.0
        self.registry = Registry(server, prefix)
        self.stats = WatchStats()
        self._sync = server.register_script(SYNC)
        self._claim = server.register_script(CLAIM)
        self._start = server.register_script(START)
        self._queue = server.register_script(QUEUE)
        self._versions: dict[str, int] = {}
        self._index: dict[str, _Index] = {p: _Index() for p in PLATFORMS}
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._known_aliases: dict[tuple[str, str], str] = {}
        self._aliases_read: dict[str, float] = {}
        self._next_sweep = 0.0
        self._next_sessions = 0.0
        #: Seconds between two reads of the live entries' sessions (in-session alerts).
        self.session_every = SESSION_EVERY_S
        #: A "live" document older than this (capture time) starts nothing: it is history, not news.
        self.fresh_ms = max(120_000, 3 * self.every_ms)
        self.readers = [FeedReader(server, prefix, feed, GROUP, self.consumer, claim_idle_ms=claim_idle_ms)
                        for feed in FEEDS]
        for reader in self.readers:  # a new group starts at the feed's end: what was stored before is history
            try:
                server.xgroup_create(reader.key, GROUP, id="$", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- 1. sync --------------------------------------------------------------------------------
    def sync(self) -> bool:
        """Reload the platforms whose watchlists changed and update their due sets; True if any changed."""
        changed = False
        for platform in PLATFORMS:
            current = lists.version(self.server, self.prefix, platform)
            if current == self._versions.get(platform):
                continue
            entries = lists.watched(self.server, self.prefix, platform)
            subs: dict[str, list[Subscriber]] = {}
            for name in sorted({n for e in entries for n in e.lists}):
                try:
                    subs[name] = subscribing.subscribers(self.server, self.prefix, name)
                except ValueError:  # deleted meanwhile: the version moved, the next sync sees it
                    subs[name] = []
            self._index[platform] = _Index.of(entries)
            self._subscribers.update(subs)
            if self._sync_due(platform, current, entries) >= 0:
                self._versions[platform] = current
            changed = True
        return changed

    def _sync_due(self, platform: str, version: int, entries: Sequence[WatchEntry]) -> int:
        due = self.keys.watch_due(platform)
        present = {_text(m) for m in self.server.zrange(due, 0, -1)}
        wanted = {e.key for e in entries}
        ranked = sorted(wanted, key=lambda k: (_hash(k), k))
        share = self.every_ms / max(1, len(ranked))
        offsets = {key: int(rank * share + (_hash(key) % 10_000) / 10_000 * share) % self.every_ms
                   for rank, key in enumerate(ranked)}
        add = [k for k in ranked if k not in present]
        remove = sorted(present - wanted)
        args: list[Any] = [version, self.every_ms, len(add)]
        for key in add:
            args += [key, offsets[key]]
        args += remove
        return int(self._sync(keys=[due, self.keys.watch_platform_version(platform)], args=args))

    # -- 2. checks ------------------------------------------------------------------------------
    def claim(self, platform: str, limit: int = 1000) -> tuple[int, list[str]]:
        """Claim the due checks of ``platform`` (atomic across workers): (server time ms, entry keys)."""
        reply = self._claim(keys=[self.keys.watch_due(platform)], args=[self.every_ms, limit])
        return int(_text(reply[0])), [_text(k) for k in reply[1:]]

    def check(self) -> int:
        """Claim the due entries and push their checks; returns the number of seeds pushed."""
        pushed = 0
        for platform in self.platforms:
            now_ms, claimed = self.claim(platform)
            if not claimed:
                continue
            at = datetime.fromtimestamp(now_ms / 1000, UTC)
            index = self._index[platform]
            due = [index.entries[k] for k in claimed if k in index.entries]
            due = [e for e in due if e.in_window(at)]
            seeds = check_seeds(platform, due)
            if seeds:
                pushed += push_seeds(self.server, SpiderKeys(self.prefix, platform), seeds)
            self.stats.checks += len(due)
        self.stats.seeds += pushed
        return pushed

    # -- 3. observations ------------------------------------------------------------------------
    def observe(self, block_ms: int | None = None, count: int = 500) -> int:
        """Read the feeds, act on what they say; returns the number of messages handled."""
        batches = [(reader, reader.read(count=count, block_ms=None)) for reader in self.readers]
        if block_ms and not any(batch for _, batch in batches):
            batches[0] = (self.readers[0], self.readers[0].read(count=count, block_ms=block_ms))
        messages = [m for _, batch in batches for m in batch]
        if messages:
            self.handle(messages)
            for reader, batch in batches:
                reader.ack(m.id for m in batch)
            self.stats.messages += len(messages)
        return len(messages)

    def handle(self, messages: Sequence[FeedMessage]) -> None:
        observations = []
        learned: set[str] = set()
        for message in messages:
            obs = Observation.of(message)
            if message.collection == "streamers" and self._learn(message.doc):
                learned.add(message.doc["platform"])
            if obs is not None and obs.platform in self._index:
                observations.append(obs)
        if not observations:
            return
        for platform in {o.platform for o in observations}:
            # Aliases other workers learned are read every few seconds; the ones learned here at once.
            if platform in learned or time.monotonic() >= self._aliases_read.get(platform, 0.0):
                self._aliases_read[platform] = time.monotonic() + 5.0
                self._resolve_aliases(platform)
        now_ms = self._now_ms()
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        for obs in sorted(observations, key=lambda o: o.at_ms):
            index = self._index[obs.platform]
            for key in sorted(index.match(obs)):
                entry = index.entries[key]
                if obs.live:
                    if obs.source == "streamers" and obs.platform not in STREAMER_STARTS:
                        continue  # the rooms document of the same page says it, with the broadcast's start
                    if now_ms - obs.at_ms <= self.fresh_ms and entry.in_window(now):
                        self._went_live(entry, obs, now_ms)
                else:
                    self._went_off(entry, obs)

    def _learn(self, doc: Mapping[str, Any]) -> bool:
        """Keep the other IDs a streamers document names (shared hash); True when one was new here."""
        platform, streamer_id = doc.get("platform"), _id(doc.get("streamer_id"))
        if not platform or not streamer_id:
            return False
        new = {}
        for alias in (_id(doc.get("sec_id")), _id(doc.get("handle"))):
            if alias and alias != streamer_id and self._known_aliases.get((platform, alias)) != streamer_id:
                new[alias] = streamer_id
                self._known_aliases[(platform, alias)] = streamer_id
        if new:
            self.server.hset(self.keys.watch_aliases(platform), mapping=new)
        return bool(new)

    def _resolve_aliases(self, platform: str) -> None:
        """Map watched IDs that are a streamer's other ID to its streamer_id (shared hash, all workers)."""
        index = self._index[platform]
        unresolved = sorted({e.target["id"] for e in index.entries.values()} - index.resolved)
        if not unresolved:
            return
        for ident, found in zip(unresolved, self.server.hmget(self.keys.watch_aliases(platform), unresolved),
                                strict=True):
            if found is None:
                continue
            index.resolved.add(ident)
            for key in index.rooms.get(ident, set()) | index.streamers.get(ident, set()):
                index.by_alias[_text(found)].add(key)

    # -- 4. transitions -------------------------------------------------------------------------
    def _went_live(self, entry: WatchEntry, obs: Observation, now_ms: int) -> None:
        room_id = obs.room_id or (entry.target["id"] if entry.target["kind"] == "room" else None)
        started_ms = _ms(obs.started_at) or obs.at_ms
        session_id = None
        if room_id and entry.platform not in PER_BROADCAST:  # there the room id names the broadcast
            session_id = f"{room_id}:{started_ms // 1000}"
        record = {"entry": entry.key, "platform": entry.platform, "room_id": room_id,
                  "streamer_id": obs.streamer_id or (entry.target["id"] if entry.target["kind"] == "streamer"
                                                     else None),
                  "session_id": session_id, "started_at": _iso(started_ms), "seen_ms": obs.at_ms,
                  "monitor_id": None, "notify_only": entry.notify_only, "lists": list(entry.lists),
                  "phase": "starting", "phase_ms": now_ms, "owner": self.consumer}
        start_keys = [self.keys.watch_live(entry.key), self.keys.watch_lives(entry.platform),
                      self.keys.watch_ended(entry.platform)]
        start_args = [json.dumps(record, sort_keys=True), entry.key, obs.at_ms]
        won = int(self._start(keys=start_keys, args=start_args))
        if won == 0 and entry.platform in PER_BROADCAST and room_id:
            # Douyin and Taobao rooms are per broadcast: live in another room means the last one is over.
            raw = self.server.get(self.keys.watch_live(entry.key))
            held = json.loads(raw) if raw is not None else {}
            if held.get("phase") == "live" and held.get("room_id") not in (None, room_id) \
                    and obs.at_ms > int(held.get("seen_ms") or 0):
                self._went_off(entry, obs, reason="new broadcast", any_room=True)
                won = int(self._start(keys=start_keys, args=start_args))
        if won == 1:
            self._finish_start(entry, record, obs)

    def _finish_start(self, entry: WatchEntry, record: dict[str, Any], obs: Observation | None) -> None:
        """Start the monitor (unless notify-only or started already) and queue stream_started, then mark
        the record live. Safe to redo."""
        if not record.get("notify_only") and not record.get("monitor_id"):
            monitor = self.registry.add(entry.platform, self._monitor_target(entry, record), entry.every_s,
                                        MONITOR_FOR_S)
            record["monitor_id"] = monitor.id
            if not self._update(entry.key, lambda r: {**r, "monitor_id": monitor.id, "every_s": entry.every_s}
                                if r.get("phase") == "starting" else None):
                self.registry.stop(monitor.id)  # the stream ended meanwhile
                return
        alert = self._alert("stream_started", entry, record, obs.at_ms if obs else record["seen_ms"], {})
        self._queue_alerts(entry, alert)
        self._update(entry.key, lambda r: {**r, "phase": "live"} if r.get("phase") == "starting" else None)
        self.stats.started += 1
        log.info("watch: %s went live (room %s, monitor %s)", entry.key, record.get("room_id"),
                 record.get("monitor_id"))

    def _monitor_target(self, entry: WatchEntry, record: Mapping[str, Any]) -> monitor_targets.Target:
        if entry.platform == "bilibili" and entry.target["kind"] == "streamer" and record.get("room_id"):
            return monitor_targets.parse_target("bilibili", str(record["room_id"]))
        return monitor_targets.Target(**entry.target)

    def _went_off(self, entry: WatchEntry, obs: Observation | None, *, reason: str = "ended",
                  any_room: bool = False) -> None:
        """The entry's stream is over (seen not live, or its window closed): end it once fleet-wide."""
        now_ms = self._now_ms()

        def take(record: dict[str, Any]) -> dict[str, Any] | None:
            if record.get("phase") != "live":
                return None
            if obs is not None:
                if obs.at_ms <= int(record.get("seen_ms") or 0):
                    return None  # captured before the start was seen
                if not any_room and obs.room_id and record.get("room_id") and obs.room_id != record["room_id"] \
                        and obs.web_rid != record["room_id"]:
                    return None  # another room of the streamer
            ended_ms = now_ms if obs is None else obs.at_ms - 1 if any_room else obs.at_ms
            return {**record, "phase": "ending", "phase_ms": now_ms, "owner": self.consumer,
                    "ended_ms": ended_ms, "reason": reason}

        record = self._update(entry.key, take)
        if record is not None:
            self._finish_end(entry, record)

    def _finish_end(self, entry: WatchEntry | None, record: Mapping[str, Any]) -> None:
        """Stop the monitor, queue stream_ended, delete the record. Safe to redo."""
        key, platform = record["entry"], record["platform"]
        if record.get("monitor_id"):
            self.registry.stop(record["monitor_id"])
        if entry is not None and record.get("reason") != "unwatched":
            session = self._session(record)
            closed = session is not None and session.get("status") == "ended"
            if record.get("reason") == "ended" and session is not None and not closed \
                    and self._now_ms() < int(record["ended_ms"]) + SUMMARY_WAIT_MS:
                # the session builder has not closed the session yet: its summary would be partial
                self._update(key, lambda r: {**r, "awaiting": True} if r.get("phase") == "ending" else None)
                return
            if session is not None and self.db is not None:  # what the session said last, then the end
                queue_session_alerts(self.server, self.keys.watch_marks(platform), self.db, platform,
                                     [{**record, "phase": "live"}], {key: entry}, self._subscribers,
                                     self._queue_one, self._streamer_name)
            alert = self._alert("stream_ended", entry, record, int(record["ended_ms"]), self._summary(session))
            self._queue_alerts(entry, alert)
        pipe = self.server.pipeline(transaction=True)
        pipe.hset(self.keys.watch_ended(platform), key, int(record["ended_ms"]))
        pipe.hdel(self.keys.watch_marks(platform), key)
        pipe.delete(self.keys.watch_live(key))
        pipe.srem(self.keys.watch_lives(platform), key)
        pipe.execute()
        self.stats.ended += 1
        log.info("watch: %s ended (%s; monitor %s stopped)", key, record.get("reason"), record.get("monitor_id"))

    def _update(self, entry_key: str, change: Any) -> dict[str, Any] | None:
        """Apply ``change(record) -> new record | None`` to the live record atomically (WATCH); the new
        record, or None when there is none or ``change`` declined."""
        live_key = self.keys.watch_live(entry_key)

        def write(pipe: redis.client.Pipeline) -> dict[str, Any] | None:
            raw = pipe.get(live_key)
            if raw is None:
                return None
            new = change(json.loads(raw))
            if new is None:
                return None
            pipe.multi()
            pipe.set(live_key, json.dumps(new, sort_keys=True))
            return new  # type: ignore[no-any-return]

        return self.server.transaction(write, live_key, value_from_callable=True)  # type: ignore[no-any-return]

    def sweep(self) -> None:
        """Live records whose window closed, whose entry is no longer watched, or whose start/end was left
        half done by a worker that died (older than STALE_MS)."""
        now_ms = self._now_ms()
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        for platform in PLATFORMS:
            index = self._index[platform]
            for key, raw in self._live_records(platform):
                if raw is None:
                    self.server.srem(self.keys.watch_lives(platform), key)
                    continue
                record = json.loads(raw)
                entry = index.entries.get(key)
                stale = now_ms - int(record.get("phase_ms") or 0) >= STALE_MS
                phase = record.get("phase")
                if phase == "starting" and stale and entry is not None:
                    taken = self._update(key, lambda r: {**r, "phase_ms": now_ms, "owner": self.consumer}
                                         if r.get("phase") == "starting"
                                         and now_ms - int(r.get("phase_ms") or 0) >= STALE_MS else None)
                    if taken is not None:
                        self._finish_start(entry, taken, None)
                elif phase == "ending" and record.get("awaiting") and now_ms - int(record.get("phase_ms") or 0) \
                        >= AWAIT_POLL_MS:
                    taken = self._update(key, lambda r: {**r, "phase_ms": now_ms, "owner": self.consumer}
                                         if r.get("phase") == "ending" and r.get("awaiting") else None)
                    if taken is not None:
                        self._finish_end(entry, taken)
                elif phase == "ending" and stale:
                    taken = self._update(key, lambda r: {**r, "phase_ms": now_ms, "owner": self.consumer}
                                         if r.get("phase") == "ending"
                                         and now_ms - int(r.get("phase_ms") or 0) >= STALE_MS else None)
                    if taken is not None:
                        self._finish_end(entry, taken)
                elif phase == "live" and entry is None and platform in self._versions:
                    self._went_off_record(key, reason="unwatched")
                elif phase == "live" and entry is not None and not entry.in_window(now):
                    self._went_off(entry, None, reason="window closed")
                elif phase == "live" and entry is not None and record.get("monitor_id"):
                    if record.get("every_s") != entry.every_s:
                        self._retier(entry, record)
                    self._renew(entry, record, now_ms)

    def _live_records(self, platform: str) -> list[tuple[str, Any]]:
        """``(entry key, raw live record or None)`` for every entry of ``platform`` in the live set."""
        keys = sorted(_text(k) for k in self.server.smembers(self.keys.watch_lives(platform)))
        return list(zip(keys, self.server.mget([self.keys.watch_live(k) for k in keys]), strict=True)) if keys else []

    def _retier(self, entry: WatchEntry, record: Mapping[str, Any]) -> None:
        """The entry's tier changed while it is live: its monitor takes the new interval from its next slot."""
        self.registry.set_every(record["monitor_id"], entry.every_s)
        self._update(entry.key, lambda r: {**r, "every_s": entry.every_s}
                     if r.get("monitor_id") == record["monitor_id"] else None)
        log.info("watch: %s now sampled every %gs (tier %s)", entry.key, entry.every_s, entry.tier)

    def _renew(self, entry: WatchEntry, record: Mapping[str, Any], now_ms: int) -> None:
        """A stream still live past its monitor's ``for`` (MONITOR_FOR_S): start another monitor. A monitor an
        operator stopped stays stopped."""
        monitor = self.registry.get(record["monitor_id"])
        if monitor is not None and monitor.state != "expired":
            return
        old = record["monitor_id"]
        taken = self._update(entry.key, lambda r: {**r, "monitor_id": None, "phase": "starting", "phase_ms": now_ms,
                                                   "owner": self.consumer}
                             if r.get("phase") == "live" and r.get("monitor_id") == old else None)
        if taken is not None:
            self._finish_start(entry, taken, None)  # stream_started again: the same key, not queued twice

    def _went_off_record(self, key: str, *, reason: str) -> None:
        now_ms = self._now_ms()
        record = self._update(key, lambda r: {**r, "phase": "ending", "phase_ms": now_ms, "owner": self.consumer,
                                              "ended_ms": now_ms, "reason": reason}
                              if r.get("phase") == "live" else None)
        if record is not None:
            self._finish_end(None, record)

    # -- 5. alerts ------------------------------------------------------------------------------
    def _alert(self, event: str, entry: WatchEntry, record: Mapping[str, Any], at_ms: int,
               data: Mapping[str, Any]) -> Alert:
        streamer_id = record.get("streamer_id") or record.get("room_id") or entry.target["id"]
        return Alert(event=event, platform=entry.platform, streamer_id=str(streamer_id),
                     streamer_name=self._streamer_name(entry.platform, record.get("streamer_id")),
                     room_id=record.get("room_id"), session_id=record.get("session_id"),
                     at=datetime.fromtimestamp(at_ms / 1000, UTC), data=data)

    def _queue_alerts(self, entry: WatchEntry, alert: Alert) -> int:
        queued = 0
        for name in entry.lists:
            for sub in self._subscribers.get(name, []):
                if alert.event not in sub.events:
                    continue
                listed = Alert(**{**_fields(alert), "watchlist": name})
                queued += queue_alert(self.server, self.prefix, sub, listed, script=self._queue)
        self.stats.alerts_queued += queued
        return queued

    def _streamer_name(self, platform: str, streamer_id: str | None) -> str | None:
        if self.db is None or not streamer_id:
            return None
        try:
            doc = self.db.streamers.find_one({"platform": platform, "streamer_id": streamer_id}, {"nickname": 1})
        except PyMongoError:
            return None
        return (doc or {}).get("nickname") or None

    def _session(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The broadcast's ``live_sessions`` document (by its session id, else the room's newest); None if none."""
        if self.db is None or not record.get("room_id"):
            return None
        query: dict[str, Any] = {"platform": record["platform"], "room_id": record["room_id"]}
        try:
            doc = None
            if record.get("session_id"):
                doc = self.db.live_sessions.find_one({**query, "session_id": record["session_id"]})
            if doc is None:
                doc = self.db.live_sessions.find_one(query, sort=[("last_seen_live_at", -1)])
        except PyMongoError as exc:
            log.warning("watch: reading live_sessions failed: %s", exc)
            return None
        return doc

    def _summary(self, session: Mapping[str, Any] | None) -> dict[str, Any]:
        """The ended session's figures (None for what is not known)."""
        return {k: _number(v) for k, v in ended_summary(session).items()}

    def session_alerts(self) -> int:
        """Queue the in-session alerts of every live entry (``crawlers.watch.insession``)."""
        if self.db is None:
            return 0
        queued = 0
        for platform in PLATFORMS:
            records = [json.loads(raw) for _, raw in self._live_records(platform) if raw]
            if not records:
                continue
            queued += queue_session_alerts(
                self.server, self.keys.watch_marks(platform), self.db, platform, records,
                self._index[platform].entries, self._subscribers, self._queue_one, self._streamer_name)
        self.stats.alerts_queued += queued
        return queued

    def _queue_one(self, sub: Subscriber, alert: Alert, watchlist: str) -> bool:
        return queue_alert(self.server, self.prefix, sub, Alert(**{**_fields(alert), "watchlist": watchlist}),
                           script=self._queue)

    def deliver_alerts(self) -> dict[str, int]:
        counts = deliver_pending(self.server, self.prefix, self.allow)
        self.stats.delivered += counts["sent"]
        self.stats.delivery_failures += counts["failed"]
        return counts

    # -- the loop -------------------------------------------------------------------------------
    def step(self, block_ms: int | None = None, *, deliver: bool | None = None) -> None:
        """One round: sync, checks, feeds and transitions, the sweep (every few seconds), and delivery
        (``deliver``, default the watcher's own setting; :meth:`run` delivers in a thread of its own)."""
        self.sync()
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.check_every
            self.check()
        self.observe(block_ms=block_ms)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.sweep_every
            self.sweep()
        if time.monotonic() >= self._next_sessions:
            self._next_sessions = time.monotonic() + self.session_every
            self.session_alerts()
        if self.deliver if deliver is None else deliver:
            self.deliver_alerts()

    def run(self, stop: threading.Event, *, block_ms: int = 500, deliver_every: float = 1.0) -> WatchStats:
        """Rounds until ``stop`` is set; Redis or MongoDB away: wait a second and go on. Alerts are delivered
        by a thread of their own (a slow robot, retried with backoff, does not hold up the checks)."""
        sender = None
        if self.deliver:
            sender = threading.Thread(target=self._deliver_loop, args=(stop, deliver_every), daemon=True,
                                      name="watch-alerts")
            sender.start()
        while not stop.is_set():
            try:
                self.step(block_ms=block_ms, deliver=False)
            except (redis.RedisError, PyMongoError, OSError) as exc:
                log.warning("watcher: %s; retrying", exc)
                stop.wait(1.0)
        if sender is not None:
            sender.join(timeout=30)
        return self.stats

    def _deliver_loop(self, stop: threading.Event, every: float) -> None:
        while not stop.is_set():
            try:
                self.deliver_alerts()
            except redis.RedisError as exc:
                log.warning("watcher: delivering alerts: %s; retrying", exc)
            stop.wait(every)

    def _now_ms(self) -> int:
        seconds, micros = self.server.time()
        return int(seconds) * 1000 + int(micros) // 1000


def _number(value: Any) -> Any:
    """A stored figure as JSON takes it (MongoDB's Decimal128 as a float); None stays None."""
    if value is None or isinstance(value, int | float):
        return value
    if hasattr(value, "to_decimal"):
        value = value.to_decimal()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def run_command(config: Any, platforms: Sequence[str], interval: float, consumer: str | None = None) -> int:
    """``livefleet watch run``: a watcher of ``platforms`` until SIGINT/SIGTERM (the fleet's Redis and
    MongoDB from ``config``, started when embedded)."""
    import signal

    from crawlers.redis.connection import get_redis
    from crawlers.services.lifecycle import ensure_services
    from pipelines.p300_store import close_store, open_store

    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    try:
        watcher = Watcher(get_redis(services.redis_url), config.key_prefix, db, platforms=platforms,
                          check_interval=interval, consumer=consumer, allow=config.webhook_allow)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        print(f"watching {', '.join(platforms)} (checks every {interval:g}s, key prefix {config.key_prefix!r}); "
              "Ctrl-C stops", flush=True)
        stats = watcher.run(stop)
        print(f"checked {stats.checks} entries ({stats.seeds} seeds); {stats.started} streams started, "
              f"{stats.ended} ended; {stats.alerts_queued} alerts queued, {stats.delivered} delivered, "
              f"{stats.delivery_failures} failed")
        return 0
    finally:
        close_store(client)
