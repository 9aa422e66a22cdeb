"""The monitors, in Redis: add, list, get, stop, and the atomic claim of due ticks.

A monitor is a JSON definition in the hash ``<prefix>:monitors`` (id ->
``{id, platform, target, seed, every_s, until, created_at, webhook}``), a state
hash (ticks, late, pending tick, last room status, ``active``/``stopped``/``expired``)
and its place in ``<prefix>:monitors:due:<platform>``, a sorted set scored by
the time of its next tick (Redis server time, epoch ms). Everything lives in
Redis, so any worker of the platform's spider can serve any monitor, and a
worker that restarts (or dies) loses nothing: the next tick stays due until a
worker claims it.

:data:`CLAIM` is one Lua script: it takes the due monitors of a platform, moves
each to its next slot (``due + every``; a monitor claimed later than a whole
interval skips the slots it missed instead of firing once per slot) and says
for each whether the tick is *late*: claimed more than ``late_fraction`` of an
interval after it was due, or due while the previous tick was still unanswered
(its room page not yet handled). The first tick is never late: it is due when
the monitor is added and waits for the first worker of the platform. A late tick is counted and reported, never
silently absorbed; a tick whose previous one is unanswered is skipped (the
fleet is behind: adding more requests would only put it further behind) unless
the previous one has been unanswered for ``RESEND_AFTER`` intervals (its
requests were lost, e.g. dead-lettered), when it is sent again. A monitor past
its ``until`` is removed from the due set and marked ``expired``.

What a monitor's room is broadcasting is in MongoDB, not here: :func:`current_session` reads the
newest ``live_sessions`` document of what the monitor watches (``livefleet monitor list`` shows it).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from pymongo.database import Database

from crawlers.feeds.urlcheck import check_url
from crawlers.monitor.watched import Target, parse_target
from crawlers.redis.keys import FleetKeys

#: Shortest interval a monitor may ask for.
MIN_EVERY_S = 1.0
#: Longest interval, and longest watch: a monitor is for a live session, not forever (and past
#: these, "1e300" or "10000000d" overflowed the date of its end into a traceback).
MAX_EVERY_S = 24 * 3600.0
MAX_FOR_S = 30 * 86400.0
#: A tick unanswered for this many intervals is sent again (its requests were lost).
RESEND_AFTER = 3
#: Events kept per monitor.
EVENTS_KEPT = 200

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``5m``, ``6h``, ``1d``, ``1h30m`` or a plain number of seconds."""
    raw = str(text).strip().lower()
    try:
        return float(raw)
    except ValueError:
        pass
    parts = _DURATION.findall(raw)
    if not raw or not parts or "".join(n + u for n, u in parts) != raw:
        raise ValueError(f"not a duration: {str(text)[:40]!r} (e.g. 30s, 5m, 6h, 1d, 1h30m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def check_durations(every: float | str, for_: float | str) -> tuple[float, float]:
    """``(every_s, for_s)`` in seconds, each finite and within its bounds; else a one-line
    ``ValueError`` naming the field (``--every``/``--for``; the API names them the same).

    ``float("nan")`` slips past every comparison (``nan < 1`` is false): a NaN interval
    once ran a monitor every millisecond. Bounds: ``every`` 1 s to 1 day, ``for`` up to 30 days.
    """
    out = []
    for name, raw, low, high in (("--every", every, MIN_EVERY_S, MAX_EVERY_S), ("--for", for_, 0.0, MAX_FOR_S)):
        if isinstance(raw, bool):
            raise ValueError(f"{name} must be a duration, got {raw!r}")
        seconds = parse_duration(raw) if isinstance(raw, str) else float(raw)
        if not math.isfinite(seconds):
            raise ValueError(f"{name} must be a finite duration, got {str(raw)[:40]!r}")
        if seconds < low or (low == 0.0 and seconds <= 0):
            raise ValueError(f"{name} must be {'positive' if low == 0.0 else f'at least {low:g}s'}, got {seconds:g}s")
        if seconds > high:
            raise ValueError(f"{name} must be at most {high / 86400:g}d ({high:g}s), got {str(raw)[:40]!r}")
        out.append(seconds)
    return out[0], out[1]


@dataclass
class Monitor:
    """One monitor: its definition and its state as Redis holds them."""

    id: str
    platform: str
    target: dict[str, str]
    seed: dict[str, Any]
    every_s: float
    until: str
    created_at: str
    webhook: str | None = None
    state: str = "active"
    ticks: int = 0
    late: int = 0
    last_tick_at: str | None = None
    last_late_at: str | None = None
    last_late_reason: str | None = None
    last_status: str | None = None
    #: The room the monitor last saw live (kept by the monitor middleware; a streamer's current room).
    live_room_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# KEYS: due zset. ARGV: limit. The ids of the monitors due now (Redis server time), read only: a claim
# then names their state and events keys in its own KEYS, as Redis wants of a script.
DUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
"""

# KEYS: due zset, monitors hash, then per claimed monitor its state hash and events list. ARGV: late
# fraction, resend after, events kept, then the monitors' ids (in the order of their keys). A monitor no
# longer due (another worker claimed it since DUE read it) is passed over. Returns a JSON list of
# {id, tick, late_ms, skipped, send, reason, seed} or {id, expired}.
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local state, events = KEYS[3 + (i - 4) * 2], KEYS[4 + (i - 4) * 2]
  local score = redis.call('ZSCORE', KEYS[1], id)
  local due = score and tonumber(score)
  local raw = due and due <= now and redis.call('HGET', KEYS[2], id)
  if due and due <= now and not raw then
    redis.call('ZREM', KEYS[1], id)
  elseif raw then
    local m = cjson.decode(raw)
    local every = math.max(1, math.floor(m['every_s'] * 1000))
    if now >= m['until_ms'] then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HSET', state, 'state', 'expired', 'ended_ms', now)
      table.insert(out, {id = id, expired = true})
    else
      local late_ms = now - due
      local skipped = math.floor(late_ms / every)
      redis.call('ZADD', KEYS[1], due + every * (skipped + 1), id)
      local pending = tonumber(redis.call('HGET', state, 'pending_tick') or '0')
      local answered = tonumber(redis.call('HGET', state, 'answered_tick') or '0')
      local sent_ms = tonumber(redis.call('HGET', state, 'pending_ms') or '0')
      local unanswered = pending > answered
      local send = (not unanswered) or (now - sent_ms >= every * tonumber(ARGV[2]))
      local reason = false
      if unanswered then
        reason = 'previous tick unanswered'
      elseif pending > 0 and late_ms > every * tonumber(ARGV[1]) then
        reason = 'claimed ' .. late_ms .. ' ms late'
      end
      local tick = 0
      if send then
        tick = redis.call('HINCRBY', state, 'ticks', 1)
        redis.call('HSET', state, 'pending_tick', tick, 'pending_ms', now, 'last_tick_ms', now)
      end
      if reason then
        redis.call('HINCRBY', state, 'late', 1)
        redis.call('HSET', state, 'last_late_ms', now, 'last_late_reason', reason)
        local event = cjson.encode({event = 'late', at_ms = now, reason = reason, skipped = skipped,
                                    sent = send})
        redis.call('LPUSH', events, event)
        redis.call('LTRIM', events, 0, tonumber(ARGV[3]) - 1)
      end
      table.insert(out, {id = id, tick = tick, late_ms = late_ms, skipped = skipped, send = send,
                         reason = reason, seed = m['seed']})
    end
  end
end
return cjson.encode(out)
"""

# KEYS: state hash, events list. ARGV: status, capture time (epoch ms), events kept.
# Returns the previous status ('' when none), or false when a newer capture was already seen.
STATUS = """
local last_ms = tonumber(redis.call('HGET', KEYS[1], 'last_status_ms') or '-1')
local at = tonumber(ARGV[2])
if at <= last_ms then return false end
local previous = redis.call('HGET', KEYS[1], 'last_status') or ''
redis.call('HSET', KEYS[1], 'last_status', ARGV[1], 'last_status_ms', at)
if previous ~= ARGV[1] and (ARGV[1] == 'live' or previous == 'live') then
  local event = ARGV[1] == 'live' and 'stream_started' or 'stream_ended'
  redis.call('LPUSH', KEYS[2], cjson.encode({event = event, at_ms = at, status = ARGV[1], previous = previous}))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
end
return previous
"""

# KEYS: state hash. ARGV: tick. The highest tick whose monitored page was handled.
ANSWER = """
local answered = tonumber(redis.call('HGET', KEYS[1], 'answered_tick') or '0')
if tonumber(ARGV[1]) > answered then redis.call('HSET', KEYS[1], 'answered_tick', ARGV[1]) end
return 1
"""


class Registry:
    """The monitors of one key prefix."""

    def __init__(self, server: redis.Redis, prefix: str) -> None:
        self.server = server
        self.keys = FleetKeys(prefix)
        self._due = server.register_script(DUE)
        self._claim = server.register_script(CLAIM)
        self._status = server.register_script(STATUS)
        self._answer = server.register_script(ANSWER)

    # -- operators -----------------------------------------------------------------------------
    def add(self, platform: str, target: str | Target, every: float | str, for_: float | str,
            webhook: str | None = None, webhook_secret: str | None = None) -> Monitor:
        """Register a monitor; its first tick is due at once. Raises ValueError for bad input.

        A ``webhook`` is subscribed to the monitor's stored changes (``crawlers.feeds.webhooks``),
        its deliveries signed with ``webhook_secret`` (``LIVEFLEET_WEBHOOK_SECRET``)."""
        parsed = target if isinstance(target, Target) else parse_target(platform, target)
        every_s, for_s = check_durations(every, for_)
        if webhook is not None:
            check_url(webhook)  # before anything is stored: a refused URL leaves no monitor behind
            if not webhook_secret:
                raise ValueError("a monitor's webhook is signed with LIVEFLEET_WEBHOOK_SECRET: set it first")
        now_ms = self._now_ms()
        created = _iso(now_ms)
        monitor_id = "m" + secrets.token_hex(5)
        definition = {
            "id": monitor_id, "platform": parsed.platform, "target": parsed.as_dict(), "seed": parsed.seed(),
            "every_s": every_s, "until": _iso(now_ms + for_s * 1000), "until_ms": int(now_ms + for_s * 1000),
            "created_at": created, "webhook": webhook,
        }
        pipe = self.server.pipeline()
        pipe.hset(self.keys.monitors, monitor_id, json.dumps(definition, ensure_ascii=False, sort_keys=True))
        pipe.hset(self.keys.monitor_state(monitor_id), mapping={"state": "active", "ticks": 0, "late": 0})
        pipe.zadd(self.keys.monitor_due(parsed.platform), {monitor_id: now_ms})
        pipe.execute()
        if webhook is not None and webhook_secret:
            from crawlers.feeds.webhooks import register_webhook

            register_webhook(self.server, self.keys.prefix, monitor=monitor_id, url=webhook, secret=webhook_secret)
        monitor = self.get(monitor_id)
        assert monitor is not None
        return monitor

    def get(self, monitor_id: str) -> Monitor | None:
        raw = self.server.hget(self.keys.monitors, monitor_id)
        if raw is None:
            return None
        pipe = self.server.pipeline()
        pipe.hgetall(self.keys.monitor_state(monitor_id))
        pipe.lrange(self.keys.monitor_events(monitor_id), 0, 19)
        state, events = pipe.execute()
        return _monitor(json.loads(raw), state, events, self._now_ms())

    def list(self) -> list[Monitor]:
        """Every monitor (active, stopped or expired), oldest first."""
        definitions = [json.loads(raw) for raw in self.server.hvals(self.keys.monitors)]
        pipe = self.server.pipeline()
        for d in definitions:
            pipe.hgetall(self.keys.monitor_state(d["id"]))
            pipe.lrange(self.keys.monitor_events(d["id"]), 0, 4)
        replies = pipe.execute()
        now_ms = self._now_ms()
        monitors = [_monitor(d, replies[2 * i], replies[2 * i + 1], now_ms) for i, d in enumerate(definitions)]
        return sorted(monitors, key=lambda m: (m.created_at, m.id))

    def stop(self, monitor_id: str) -> Monitor | None:
        """Stop a monitor (its definition and history are kept); None if there is no such monitor."""
        raw = self.server.hget(self.keys.monitors, monitor_id)
        if raw is None:
            return None
        platform = json.loads(raw)["platform"]
        pipe = self.server.pipeline()
        pipe.zrem(self.keys.monitor_due(platform), monitor_id)
        pipe.hset(self.keys.monitor_state(monitor_id), mapping={"state": "stopped", "ended_ms": self._now_ms()})
        pipe.execute()
        return self.get(monitor_id)

    def set_every(self, monitor_id: str, every: float | str) -> Monitor | None:
        """Change a monitor's interval; its next tick keeps its slot, the ones after follow the new
        interval (the claim reads it from the definition). None if there is no such monitor."""
        every_s, _ = check_durations(every, 1)
        key = self.keys.monitors

        def write(pipe: redis.client.Pipeline) -> bool:
            raw = pipe.hget(key, monitor_id)
            if raw is None:
                return False
            definition = json.loads(raw)
            definition["every_s"] = every_s
            pipe.multi()
            pipe.hset(key, monitor_id, json.dumps(definition, ensure_ascii=False, sort_keys=True))
            return True

        if not self.server.transaction(write, key, value_from_callable=True):
            return None
        return self.get(monitor_id)

    # -- workers -------------------------------------------------------------------------------
    def claim(self, platform: str, limit: int = 100, late_fraction: float = 0.25) -> list[dict[str, Any]]:
        """Claim the due ticks of ``platform``'s monitors (atomic across workers)."""
        due_key = self.keys.monitor_due(platform)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in self._due(keys=[due_key], args=[limit])]
        if not ids:
            return []
        keys = [due_key, self.keys.monitors]
        for monitor_id in ids:
            keys += [self.keys.monitor_state(monitor_id), self.keys.monitor_events(monitor_id)]
        raw = self._claim(keys=keys, args=[late_fraction, RESEND_AFTER, EVENTS_KEPT, *ids])
        claims = json.loads(raw)
        return claims if isinstance(claims, list) else []  # cjson encodes an empty table as {}

    def definition(self, monitor_id: str) -> dict[str, Any] | None:
        raw = self.server.hget(self.keys.monitors, monitor_id)
        return json.loads(raw) if raw is not None else None

    def answer(self, monitor_id: str, tick: int) -> None:
        """The room page of ``tick`` was handled."""
        self._answer(keys=[self.keys.monitor_state(monitor_id)], args=[int(tick)])

    def observe_status(self, monitor_id: str, status: str, captured_at: datetime) -> str | None:
        """Record the room status a monitored capture saw; the previous status ('' for none),
        or None when a later capture was already recorded (this one is out of order)."""
        previous = self._status(keys=[self.keys.monitor_state(monitor_id), self.keys.monitor_events(monitor_id)],
                                args=[status, int(captured_at.timestamp() * 1000), EVENTS_KEPT])
        if previous is None:
            return None
        return previous.decode() if isinstance(previous, bytes) else str(previous)

    def _now_ms(self) -> int:
        seconds, micros = self.server.time()
        return int(seconds) * 1000 + int(micros) // 1000


def _iso(ms: float) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _monitor(definition: Mapping[str, Any], state: Mapping[Any, Any], events: list[Any], now_ms: int) -> Monitor:
    s = {_text(k): _text(v) for k, v in state.items()}
    status = s.get("state", "active")
    if status == "active" and now_ms >= int(definition.get("until_ms", 0)):
        status = "expired"  # no worker has claimed it since it ran out

    def at(name: str) -> str | None:
        return _iso(int(s[name])) if s.get(name) else None

    decoded = []
    for raw in events:
        event = json.loads(raw)
        if "at_ms" in event:
            event["at"] = _iso(event.pop("at_ms"))
        decoded.append(event)
    return Monitor(
        id=definition["id"], platform=definition["platform"], target=dict(definition["target"]),
        seed=dict(definition["seed"]), every_s=float(definition["every_s"]), until=definition["until"],
        created_at=definition["created_at"], webhook=definition.get("webhook"), state=status,
        ticks=int(s.get("ticks", 0)), late=int(s.get("late", 0)), last_tick_at=at("last_tick_ms"),
        last_late_at=at("last_late_ms"), last_late_reason=s.get("last_late_reason"),
        last_status=s.get("last_status") or None, live_room_id=s.get("live_room_id") or None, events=decoded)


# -- the monitored room's current session (MongoDB) ----------------------------------------------------------------

#: What is shown of a monitor's current session (fields of ``live_sessions``, SCHEMA.md).
SESSION_SHOWN = ("session_id", "status", "room_id", "started_at", "last_seen_live_at", "viewers_peak", "units_sold",
                 "gmv_estimate", "gmv_low", "gmv_high", "estimator_version")


def session_filter(db: Database[Any], monitor: Monitor) -> dict[str, Any]:
    """The ``live_sessions`` filter of the broadcasts ``monitor`` watches, on its platform.

    A room target matches on ``room_id``, or on ``web_rid`` where the target names the room by its
    second ID (Douyin's stable web_rid, Kuaishou's principalId, a Bilibili short id); a streamer
    target on ``streamer_id``, or on the streamer whose ``sec_id`` it is (a Douyin sec_uid). The room
    the monitor last saw live (``live_room_id``) matches too.
    """
    ident = monitor.target["id"]
    if monitor.target["kind"] == "room":
        either: list[dict[str, Any]] = [{"room_id": ident}, {"web_rid": ident}]
    else:
        known = db.streamers.find({"platform": monitor.platform, "sec_id": ident}, {"_id": 0, "streamer_id": 1})
        either = [{"streamer_id": {"$in": sorted({ident, *(d["streamer_id"] for d in known.limit(10))})}}]
    if monitor.live_room_id:
        either.append({"room_id": monitor.live_room_id})
    return {"platform": monitor.platform, "$or": either}


def current_session(db: Database[Any], monitor: Monitor) -> dict[str, Any] | None:
    """The newest session (by ``last_seen_live_at``) of what ``monitor`` watches, its times as ISO text
    (:data:`SESSION_SHOWN`); None when MongoDB has none: nothing is made up."""
    doc = db.live_sessions.find_one(session_filter(db, monitor), {"_id": 0, **dict.fromkeys(SESSION_SHOWN, 1)},
                                    sort=[("last_seen_live_at", -1), ("session_id", -1)])
    if doc is None:
        return None
    return {name: _iso_time(doc[name]) if isinstance(doc.get(name), datetime) else doc.get(name)
            for name in SESSION_SHOWN}


def current_sessions(db: Database[Any], monitors: list[Monitor]) -> dict[str, dict[str, Any] | None]:
    """:func:`current_session` of each monitor, by monitor ID."""
    return {m.id: current_session(db, m) for m in monitors}


def _iso_time(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
