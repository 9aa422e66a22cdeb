"""The health of each egress identity toward each platform, fleet-wide, in Redis.

Platforms judge an address per platform (a proxy Douyin has burnt may still be
good for Bilibili), so the record is per (platform, identity): one hash,
``<prefix>:egress:<platform>:<identity>``, that every worker updates with one
atomic Lua step per outcome and reads back every second. Its fields:

* counters ``requests``, ``ok``, ``blocks`` (a captcha or block page, reported
  by the spider through its session pool; counted a success when it downloaded,
  then moved from ``ok`` to ``blocks``), ``errors`` (no answer: connection
  refused or reset, proxy tunnel or auth failure, timeout) and ``latency_ms``
  (sum over ``ok``, so mean latency = latency_ms / ok);
* ``state``: ``ok``; ``cooling`` (``strikes`` failures more than successes, each
  success taking one failure back, so failures in a row or a mostly refused identity: no requests
  until ``cool_until``); ``probing`` (the rest is over and one request, the
  probe, is out: others wait for its answer); ``retired`` (``retire_after``
  rests in a row ended in failed probes: probed again only every
  ``max_cooldown`` seconds). A rest lasts ``cooldown`` seconds, doubled after
  each failed probe, at most ``max_cooldown``. One success brings the identity
  back to ``ok`` and forgets its rests; ``rests_total`` counts every rest it
  ever began (never reset: how often an identity was rested, for operators);
* ``label`` (``scheme://host:port``, never credentials), ``last_error`` (the
  failure's type and message, which Scrapy and Twisted write without
  credentials), ``cool_until`` and ``updated`` (Redis server time, epoch seconds).

Good outcomes are counted in the worker and sent once a second (one call per
identity, not per request); failures are sent at once, since they change the
state. Times come from the Redis server's clock, so workers whose clocks
disagree still agree on when a rest ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from crawlers.redis.keys import FleetKeys

STATES = ("ok", "cooling", "probing", "retired")

_TIME = """
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# KEYS: the health hash, the probe lock.
# ARGV: outcome ('ok'|'block'|'error'), count, latency ms (sum), strikes, cooldown s, max cooldown s,
#       retire after (rests), label, error text, probe ('1': this outcome answers the identity's probe),
#       recounted ('1': these blocks were first counted as successes, when they downloaded: take those back).
# Only a probe's success ends a rest: a request sent before the rest began may still answer well
# during it, and must not cut the rest short.
# Returns {state, seconds of rest left as a string}.
RECORD = _TIME + """
local h = KEYS[1]
local now = now_s()
local outcome = ARGV[1]
local n = tonumber(ARGV[2])
redis.call('HSET', h, 'label', ARGV[8], 'updated', string.format('%.3f', now))
redis.call('HINCRBY', h, 'requests', n)
local state = redis.call('HGET', h, 'state') or 'ok'
if outcome == 'ok' then
  redis.call('HINCRBY', h, 'ok', n)
  redis.call('HINCRBY', h, 'latency_ms', math.floor(tonumber(ARGV[3])))
  if state == 'ok' then
    -- each success takes one strike back: an identity refused far more often than it is answered
    -- still rests, though its rare answers (sent in batches, once a second) fall between the refusals
    local left_strikes = tonumber(redis.call('HGET', h, 'strikes') or '0') - n
    redis.call('HSET', h, 'strikes', math.max(0, left_strikes))
  elseif ARGV[10] == '1' and (state == 'probing' or tonumber(redis.call('HGET', h, 'cool_until') or '0') <= now) then
    redis.call('HSET', h, 'state', 'ok', 'rests', 0, 'cool_until', 0, 'strikes', 0)
    redis.call('DEL', KEYS[2])
    state = 'ok'
  end
  local left = tonumber(redis.call('HGET', h, 'cool_until') or '0') - now
  return {state, string.format('%.3f', math.max(0, state == 'ok' and 0 or left))}
end
redis.call('HINCRBY', h, outcome == 'block' and 'blocks' or 'errors', n)
if ARGV[11] == '1' then
  local back = math.min(n, tonumber(redis.call('HGET', h, 'ok') or '0'))
  redis.call('HINCRBY', h, 'ok', -back)
  redis.call('HINCRBY', h, 'requests', -back)
end
redis.call('HSET', h, 'last_error', ARGV[9], 'last_failure', string.format('%.3f', now))
local rest = false
if state == 'probing' then
  rest = true
elseif state == 'ok' then
  rest = redis.call('HINCRBY', h, 'strikes', n) >= tonumber(ARGV[4])
end
if not rest then
  local left = tonumber(redis.call('HGET', h, 'cool_until') or '0') - now
  return {state, string.format('%.3f', math.max(0, left))}
end
local rests = redis.call('HINCRBY', h, 'rests', 1)
redis.call('HINCRBY', h, 'rests_total', 1)
local cooldown = math.min(tonumber(ARGV[5]) * 2 ^ (rests - 1), tonumber(ARGV[6]))
state = 'cooling'
if rests >= tonumber(ARGV[7]) then
  state = 'retired'
  cooldown = tonumber(ARGV[6])
end
local until_s = string.format('%.3f', now + cooldown)
redis.call('HSET', h, 'state', state, 'cool_until', until_s, 'strikes', 0)
redis.call('DEL', KEYS[2])
return {state, string.format('%.3f', cooldown)}
"""

# KEYS: the health hash, the probe lock.  ARGV: lock ttl (s).
# Take the one probe of a rested identity: 1 if this caller sends it, else 0.
PROBE = _TIME + """
local h = KEYS[1]
local state = redis.call('HGET', h, 'state') or 'ok'
if state == 'ok' then return 1 end
if state == 'probing' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
elseif tonumber(redis.call('HGET', h, 'cool_until') or '0') > now_s() then
  return 0
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
redis.call('HSET', h, 'state', 'probing')
return 1
"""


@dataclass(frozen=True)
class HealthPolicy:
    """When an identity rests, for how long, and when it is retired."""

    strikes: int = 3
    cooldown: float = 30.0
    max_cooldown: float = 600.0
    retire_after: int = 4
    probe_ttl: float = 60.0

    def __post_init__(self) -> None:
        if self.strikes < 1 or self.retire_after < 1:
            raise ValueError("strikes and retire_after must be at least 1")
        if not 0 < self.cooldown <= self.max_cooldown:
            raise ValueError("cooldown must be positive and at most max_cooldown")


@dataclass(frozen=True)
class Standing:
    """What one (platform, identity) record said at a refresh."""

    state: str
    #: Seconds of rest left at the refresh (0: none).
    rest_left: float


class EgressHealth:
    """Reads and writes the health records (thread-safe: redis-py's client is)."""

    def __init__(self, server: redis.Redis, prefix: str, policy: HealthPolicy | None = None) -> None:
        self.server = server
        self.keys = FleetKeys(prefix)
        self.policy = policy or HealthPolicy()
        self._record = server.register_script(RECORD)
        self._probe = server.register_script(PROBE)

    def record(self, platform: str, identity: str, label: str, outcome: str, *, count: int = 1,
               latency_ms: float = 0.0, error: str = "", probe: bool = False,
               recounted: bool = False) -> tuple[str, float]:
        """Count ``count`` outcomes (``ok``, ``block`` or ``error``); returns the state and its rest left (s).

        ``probe``: the outcome answers the identity's probe, so a success ends its rest.
        ``recounted``: blocks whose pages were already counted as successes when they downloaded
        (a block page downloads like any page; only the spider knows it for one): those are taken back."""
        if outcome not in ("ok", "block", "error"):
            raise ValueError(f"unknown outcome {outcome!r}")
        p = self.policy
        state, left = self._record(
            keys=[self.keys.egress(platform, identity), self.keys.egress_probe(platform, identity)],
            args=[outcome, count, latency_ms, p.strikes, p.cooldown, p.max_cooldown, p.retire_after, label,
                  error[:300], "1" if probe else "0", "1" if recounted else "0"])
        return _text(state), float(left)

    def take_probe(self, platform: str, identity: str) -> bool:
        """Whether this caller may send the one probe of a rested identity (or it is not resting)."""
        return bool(self._probe(keys=[self.keys.egress(platform, identity),
                                      self.keys.egress_probe(platform, identity)],
                                args=[max(1, round(self.policy.probe_ttl))]))

    def standings(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Standing]:
        """The state of each (platform, identity) now (one round trip); missing records are ``ok``."""
        pairs = list(pairs)
        with self.server.pipeline(transaction=False) as pipe:
            pipe.time()
            for platform, identity in pairs:
                pipe.hmget(self.keys.egress(platform, identity), "state", "cool_until")
            answers = pipe.execute()
        seconds, micros = answers[0]
        now = float(seconds) + float(micros) / 1e6
        found = {}
        for pair, (state, until) in zip(pairs, answers[1:], strict=True):
            rest = max(0.0, float(until or 0) - now)
            found[pair] = Standing(_text(state) if state else "ok", rest)
        return found


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def identity_report(server: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Every health record, for ``livefleet status``: one row per (platform, identity), newest first."""
    keys = FleetKeys(prefix)
    pattern = keys.egress("*", "*")
    found = []
    now = time.time()
    try:
        server_now = server.time()
        now = float(server_now[0]) + float(server_now[1]) / 1e6
    except redis.RedisError:
        pass
    names = [name for name in (_text(key) for key in server.scan_iter(match=pattern, count=500))
             if not name.endswith(":probe")]
    with server.pipeline(transaction=False) as pipe:  # one round trip, however many identities
        for name in names:
            pipe.hgetall(name)
        records = pipe.execute()
    for name, record in zip(names, records, strict=True):
        platform, identity = _split(keys, name)
        raw = {_text(k): _text(v) for k, v in record.items()}
        ok = int(raw.get("ok", 0))
        row: dict[str, Any] = {
            "platform": platform, "identity": identity, "label": raw.get("label", identity),
            "state": raw.get("state", "ok"),
            "requests": int(raw.get("requests", 0)), "ok": ok, "blocks": int(raw.get("blocks", 0)),
            "errors": int(raw.get("errors", 0)), "rests_total": int(raw.get("rests_total", 0)),
            "latency_ms": round(int(raw.get("latency_ms", 0)) / ok, 1) if ok else None,
            "rest_left_s": round(max(0.0, float(raw.get("cool_until", 0) or 0) - now), 1),
            "last_error": raw.get("last_error") or None,
            "updated": float(raw.get("updated", 0) or 0),
        }
        found.append(row)
    found.sort(key=lambda r: (r["platform"], r["label"]))
    return found


def _split(keys: FleetKeys, name: str) -> tuple[str, str]:
    """(platform, identity) of a health key ``<prefix>:egress:<platform>:<identity>``."""
    head = keys.egress("", "")[:-1]  # "<prefix>:egress:"
    platform, _, identity = name[len(head):].partition(":")
    return platform, identity
