"""The checks of watched entries: the cheapest request each platform offers, spread evenly over the interval.

:data:`SYNC` keeps a platform's due set (entry -> next check time) in step with its watchlists;
:data:`CLAIM` takes the due entries and moves each to its next slot in one script, so two workers never
check an entry twice in one interval; :func:`check_seeds` turns the claimed entries into seeds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from crawlers.watch.lists import WatchEntry

#: Status seeds carry at most this many uids (the Bilibili spider's ``STATUS_BATCH``).
STATUS_BATCH = 50


#: (platform, kind) -> what a check fetches and costs (the module docstring says more).
CHECKS: dict[tuple[str, str], str] = {
    ("bilibili", "streamer"): "status seed (get_status_info_by_uids): 1 request per 50 uids",
    ("bilibili", "room"): "room seed, follow []: room_init, 1 request",
    ("douyin", "streamer"): "streamer seed, follow []: the signed profile API, 1 request",
    ("douyin", "room"): "room seed, follow []: the room page rendered in Chromium, 1 render",
    ("kuaishou", "room"): "room seed, follow []: live page + profile API, 2 requests",
    ("taobao", "room"): "room seed, follow []: live_detail (mtop), 1 request",
}


# KEYS: due zset, the platform's watchlists version. ARGV: the version loaded, interval ms, number of
# entries to add n, then n pairs (entry key, offset ms within the interval), then the entries to remove.
# Returns -1 (and changes nothing) when the version moved since it was loaded, else how many were added.
SYNC = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local every = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local added = 0
for i = 4, 3 + n * 2, 2 do
  local first = now - (now % every) + tonumber(ARGV[i + 1])
  if first < now then first = first + every end
  added = added + redis.call('ZADD', KEYS[1], 'NX', first, ARGV[i])
end
for i = 4 + n * 2, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
return added
"""


# KEYS: due zset. ARGV: interval ms, limit. Takes the due entries and moves each to its next slot
# (skipping the slots it missed). Returns {now ms, entry keys...}.
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local every = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {tostring(now)}
for i = 1, #due, 2 do
  local score = tonumber(due[i + 1])
  local skipped = math.floor((now - score) / every)
  redis.call('ZADD', KEYS[1], string.format('%d', score + every * (skipped + 1)), due[i])
  table.insert(out, due[i])
end
return out
"""


def check_seeds(platform: str, entries: Sequence[WatchEntry]) -> list[dict[str, Any]]:
    """The seeds checking ``entries`` (:data:`CHECKS`): Bilibili streamers 50 to a status seed, every
    other entry its own seed following nothing. A notify-only entry's check keeps no snapshots
    (``"snapshots": false``: the rooms' state is stored, no time series)."""
    seeds: list[dict[str, Any]] = []
    uids: dict[bool, list[str]] = {False: [], True: []}
    for entry in entries:
        if platform == "bilibili" and entry.target["kind"] == "streamer":
            uids[entry.notify_only].append(entry.target["id"])
        else:
            seed = entry.as_target().seed([])
            seeds.append({**seed, "snapshots": False} if entry.notify_only else seed)
    for notify_only, batch in uids.items():
        ordered = sorted(set(batch), key=int)
        for i in range(0, len(ordered), STATUS_BATCH):
            seed: dict[str, Any] = {"kind": "status", "uids": ordered[i:i + STATUS_BATCH], "follow": []}
            seeds.append({**seed, "snapshots": False} if notify_only else seed)
    return seeds


def _hash(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest()[:12], 16)
