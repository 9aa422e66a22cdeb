"""Alerts queued once per subscriber, and delivered from Redis to webhooks and chat robots.

:func:`queue_alert` is one script: ``SET NX <prefix>:alerts:sent:<subscriber>:<alert.key>`` (7 days) and,
only when it was set, ``RPUSH`` of the alert to the subscriber's outbox: two workers, or a step redone
after a crash, queue an alert once.

:func:`deliver_pending` sends the outboxes with :func:`crawlers.alerts.robots.send_alert` (its retries).
Each alert is taken by one script that moves it from the outbox into the in-flight hash
(``FleetKeys.alert_inflight``) with the time it was taken, and is dropped from there once sent: a sender
killed mid-send leaves it in flight, and any deliverer puts it back at the head of its outbox once its
lease (:data:`LEASE_MS`, longer than a send with all its retries) is over. So an alert is never lost;
it is sent twice only when its sender died between the robot's answer and the drop (the generic
webhook's ``X-Livefleet-Delivery`` is the alert's key, for receivers that deduplicate). A final failure
is appended to ``<prefix>:alerts:failures``: :func:`alert_failures` lists them and
:func:`replay_failures` puts them back in their outboxes (``livefleet watch alert failures|replay``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis

from crawlers.alerts.robots import Alert, alert_json, send_alert
from crawlers.feeds.urlcheck import AllowList
from crawlers.redis.keys import FleetKeys
from crawlers.watch.lists import _text
from crawlers.watch.subscribing import Subscriber

#: How long an alert is remembered as queued for a subscriber.
ALERT_TTL_S = 7 * 86400
#: How long an alert may be in flight before another deliverer takes it back (a send, with its retries,
#: takes at most attempts x timeout plus the backoff: 3 x 10 s + 1.5 s by default).
LEASE_MS = 120_000

# KEYS: outbox, in-flight hash. ARGV: token, subscriber id. Takes the outbox's first alert into flight.
TAKE = """
local raw = redis.call('LPOP', KEYS[1])
if not raw then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({t = now, o = KEYS[1], s = ARGV[2], r = raw}))
return raw
"""

# KEYS: in-flight hash, outboxes set. ARGV: lease ms. Puts alerts in flight for longer than the lease
# back at the head of their outboxes. Returns how many.
RECOVER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local back = 0
for i = 1, #all, 2 do
  local item = cjson.decode(all[i + 1])
  if now - tonumber(item.t) > tonumber(ARGV[1]) then
    redis.call('LPUSH', item.o, item.r)
    redis.call('SADD', KEYS[2], item.s)
    redis.call('HDEL', KEYS[1], all[i])
    back = back + 1
  end
end
return back
"""


# KEYS: sent marker, outbox, outboxes set. ARGV: TTL s, alert JSON, subscriber id.
QUEUE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
  return 1
end
return 0
"""


# KEYS: outbox, outboxes set. ARGV: subscriber id. Forget an outbox that is empty.
FORGET = """
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
"""


def queue_alert(server: redis.Redis, prefix: str, subscriber: Subscriber, alert: Alert, *,
                script: Any = None) -> bool:
    """Queue ``alert`` for ``subscriber`` unless it was queued for it before (7 days); True when queued."""
    keys = FleetKeys(prefix)
    run = script or server.register_script(QUEUE)
    payload = json.dumps({"subscriber": subscriber.id, "list": subscriber.list, "alert": alert_json(alert)},
                         ensure_ascii=False, sort_keys=True)
    done = run(keys=[keys.alert_sent(subscriber.id, alert.key), keys.alert_outbox(subscriber.id),
                     keys.alert_outboxes], args=[ALERT_TTL_S, payload, subscriber.id])
    return bool(int(done))


def _alert_of(data: Mapping[str, Any]) -> Alert:
    return Alert(event=data["event"], platform=data["platform"], streamer_id=data["streamer_id"],
                 streamer_name=data.get("streamer_name"), room_id=data.get("room_id"),
                 session_id=data.get("session_id"), at=datetime.fromisoformat(data["at"]),
                 watchlist=data.get("watchlist"), data=data.get("data") or {})


def deliver_pending(server: redis.Redis, prefix: str, allow: AllowList | str | None = None, *,
                    limit: int = 100, lease_ms: int = LEASE_MS, **send_options: Any) -> dict[str, int]:
    """Send up to ``limit`` queued alerts per subscriber (``send_alert``, with its retries), after putting
    back the alerts whose sender died; an alert that still fails, or whose subscriber is gone, is appended to
    ``<prefix>:alerts:failures``. Returns counts ``{"sent", "failed", "recovered"}``."""
    keys = FleetKeys(prefix)
    forget, take = server.register_script(FORGET), server.register_script(TAKE)
    recovered = int(server.register_script(RECOVER)(keys=[keys.alert_inflight, keys.alert_outboxes],
                                                     args=[lease_ms]))
    counts = {"sent": 0, "failed": 0, "recovered": recovered}
    for raw_sub in server.smembers(keys.alert_outboxes):
        sub_id = _text(raw_sub)
        outbox = keys.alert_outbox(sub_id)
        for _ in range(limit):
            token = uuid.uuid4().hex
            raw = take(keys=[outbox, keys.alert_inflight], args=[token, sub_id])
            if raw is None:
                break
            error = _send(server, keys, sub_id, json.loads(raw), allow, send_options)
            with server.pipeline(transaction=True) as pipe:
                if error is None:
                    counts["sent"] += 1
                else:
                    counts["failed"] += 1
                    failure = {**json.loads(raw), "error": error, "failed_at": datetime.now(UTC).isoformat()}
                    pipe.rpush(keys.alert_failures, json.dumps(failure, ensure_ascii=False, sort_keys=True))
                pipe.hdel(keys.alert_inflight, token)
                pipe.execute()
        forget(keys=[outbox, keys.alert_outboxes], args=[sub_id])
    return counts


def _send(server: redis.Redis, keys: FleetKeys, sub_id: str, item: Mapping[str, Any],
          allow: AllowList | str | None, send_options: Mapping[str, Any]) -> str | None:
    """Send one queued alert to its subscriber (as stored now); the error, or None when it got through."""
    stored = server.hget(keys.watch_subscribers(item["list"]), sub_id)
    if stored is None:
        return "subscriber removed"
    sub = json.loads(stored)
    try:
        alert = _alert_of(item["alert"])
    except (KeyError, ValueError, TypeError) as exc:
        return f"not an alert: {exc}"
    result = send_alert(sub["kind"], sub["url"], sub.get("secret"), alert, allow=allow, **send_options)
    return None if result.ok else (result.error or "not delivered")


def alert_failures(server: redis.Redis, prefix: str, limit: int = 100) -> list[dict[str, Any]]:
    """The latest alerts that could not be delivered (with their error), oldest first."""
    return [json.loads(raw) for raw in server.lrange(FleetKeys(prefix).alert_failures, -limit, -1)]


def replay_failures(server: redis.Redis, prefix: str, limit: int = 1000) -> int:
    """Put up to ``limit`` failed alerts back in their subscribers' outboxes (the next delivery sends them);
    returns how many."""
    keys = FleetKeys(prefix)
    moved = 0
    for _ in range(limit):
        raw = server.lpop(keys.alert_failures)
        if raw is None:
            break
        item = {k: v for k, v in json.loads(raw).items() if k not in ("error", "failed_at")}
        with server.pipeline(transaction=True) as pipe:
            pipe.rpush(keys.alert_outbox(item["subscriber"]), json.dumps(item, ensure_ascii=False, sort_keys=True))
            pipe.sadd(keys.alert_outboxes, item["subscriber"])
            pipe.execute()
        moved += 1
    return moved


def _fields(alert: Alert) -> dict[str, Any]:
    return {"event": alert.event, "platform": alert.platform, "streamer_id": alert.streamer_id,
            "streamer_name": alert.streamer_name, "room_id": alert.room_id, "session_id": alert.session_id,
            "at": alert.at, "watchlist": alert.watchlist, "data": dict(alert.data)}
