"""The queue's Lua scripts (``crawlers.queue.lease_queue`` runs them), one atomic step each.

Each script gets every key it touches in ``KEYS``, computed by its caller from
``crawlers.redis.keys``: Redis requires it of scripts under replication and in
Cluster (``tests/test_unit_lua_keys.py`` checks that no script builds a key
name). Members of the pending queue are ``"<seq>|<failures>|<json>"``; a leased
record is ``"<score> <member>"``.
"""

from __future__ import annotations

from crawlers.queue.bloom import BLOOM_LUA

NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Split "<seq>|<failures>|<json>".
SPLIT = """
local function split(member)
  local a = string.find(member, '|', 1, true)
  local b = string.find(member, '|', a + 1, true)
  return string.sub(member, 1, a - 1), tonumber(string.sub(member, a + 1, b - 1)), string.sub(member, b + 1)
end
"""

# Move a failed lease's request back to the queue, or to the dead letters. ``queued`` is the
# dedup key of ``crawl``, the crawl the caller read for this lease: a lease of another crawl is
# left alone (-1). Returns 1 (requeued), 2 (dead), 0 (no such lease), -1 (not of ``crawl``).
FAIL = NOW_MS + SPLIT + """
local function fail(leases, leased, requests, dead, queued, crawl, id, max_failures, err, worker)
  local rec = redis.call('HGET', leased, id)
  if not rec then return 0 end
  local sp = string.find(rec, ' ', 1, true)
  local score = string.sub(rec, 1, sp - 1)
  local seq, failures, body = split(string.sub(rec, sp + 1))
  local ok, entry = pcall(cjson.decode, body)
  ok = ok and type(entry) == 'table'
  if ok and (entry['c'] or 'default') ~= crawl then return -1 end
  redis.call('ZREM', leases, id)
  redis.call('HDEL', leased, id)
  if max_failures >= 0 then failures = failures + 1 end
  if max_failures >= 0 and failures >= max_failures then
    if ok and entry['fp'] and entry['fp'] ~= '' then
      redis.call('SREM', queued, entry['fp'])
    end
    redis.call('RPUSH', dead, cjson.encode({entry = body, score = score, error = err, attempts = failures,
                                            worker = worker, at = now_ms() / 1000}))
    return 2
  end
  redis.call('ZADD', requests, score, seq .. '|' .. failures .. '|' .. body)
  return 1
end
"""

# KEYS: requests, seq, queued, seen-set or bloom bitmap.
# ARGV: priority, entry json, fingerprint ('' = none), filter ('1'/'0'), ttl seconds, mode ('set'|'bloom'),
#       [bloom size in bits, bit positions...]
PUSH = """
local fp = ARGV[3]
if fp ~= '' and ARGV[4] == '1' then
  if redis.call('SISMEMBER', KEYS[3], fp) == 1 then return 0 end
  if ARGV[6] == 'bloom' then
    local all = #ARGV > 7
    for i = 8, #ARGV do
      if redis.call('GETBIT', KEYS[4], ARGV[i]) == 0 then all = false; break end
    end
    if all then return 0 end
  elseif redis.call('SISMEMBER', KEYS[4], fp) == 1 then
    return 0
  end
end
if fp ~= '' then
  redis.call('SADD', KEYS[3], fp)
  local ttl = tonumber(ARGV[5])
  if ttl > 0 and redis.call('TTL', KEYS[3]) == -1 then redis.call('EXPIRE', KEYS[3], ttl) end
end
local seq = redis.call('INCR', KEYS[2])
local score = -tonumber(ARGV[1]) * 4294967296 + seq
redis.call('ZADD', KEYS[1], string.format('%.0f', score), seq .. '|0|' .. ARGV[2])
return 1
"""

# KEYS: requests, leases, leased, lease-seq.  ARGV: count, lease ms, worker id.
# Returns [lease id, member, ...].
TAKE = NOW_MS + """
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local out = {}
if #popped == 0 then return out end
local deadline = now_ms() + tonumber(ARGV[2])
for i = 1, #popped, 2 do
  local id = ARGV[3] .. '#' .. redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], deadline, id)
  redis.call('HSET', KEYS[3], id, popped[i + 1] .. ' ' .. popped[i])
  out[#out + 1] = id
  out[#out + 1] = popped[i]
end
return out
"""

# KEYS: leases, leased, queued, seen-set or bloom.  ARGV: lease id, fingerprint, ttl, mode,
# [bloom size in bits, bit positions...].  The Bloom bitmap is created at full size at once (growing it
# bit by bit would leave Redis up to a megabyte of slack).
# Returns 1 if the lease was still held, 0 if it had expired (the request may run again elsewhere).
ACK = BLOOM_LUA + """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local fp = ARGV[2]
if fp ~= '' then
  redis.call('SREM', KEYS[3], fp)
  if ARGV[4] == 'bloom' then
    bloom_create(KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[3]))
    bloom_set(KEYS[4], ARGV, 6, #ARGV)
  else
    redis.call('SADD', KEYS[4], fp)
  end
  local ttl = tonumber(ARGV[3])
  if ttl > 0 and redis.call('TTL', KEYS[4]) == -1 then redis.call('EXPIRE', KEYS[4], ttl) end
end
return held
"""

# KEYS: leases, leased.  ARGV: lease id.  A lease handed on to its own retry or redirect.
FORGET = """
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# KEYS: leases, leased, requests, dead, the crawl's queued set.
# ARGV: lease id, max failures, error, worker, crawl.
RELEASE = FAIL + """
return fail(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4])
"""

# KEYS: leases, leased.  ARGV: limit.  The expired leases: [id, leased record or false, ...] (read only).
EXPIRED = NOW_MS + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
end
return out
"""

# KEYS: leases, leased, requests, dead, the crawl's queued set.  ARGV: max failures, crawl, lease ids...
# The expired leases of one crawl (read by EXPIRED); one renewed since is left alone.
# Returns [requeued, dead].
REAP = FAIL + """
local now = now_ms()
local requeued, dead = 0, 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local deadline = redis.call('ZSCORE', KEYS[1], id)
  if deadline and tonumber(deadline) <= now then
    local worker = string.match(id, '^(.*)#') or ''
    local r = fail(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], id, tonumber(ARGV[1]), 'lease expired',
                   worker)
    if r == 1 then requeued = requeued + 1 elseif r == 2 then dead = dead + 1 end
    if r == 0 then redis.call('ZREM', KEYS[1], id) end
  end
end
return {requeued, dead}
"""

# KEYS: leases.  ARGV: lease ms, ids...  Returns how many of the ids were still held.
RENEW = NOW_MS + """
local deadline = now_ms() + tonumber(ARGV[1])
local held = 0
for i = 2, #ARGV do
  held = held + redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[i])
end
return held
"""

# KEYS: dead, requests, seq, then the queued sets of the letters' crawls.
# ARGV: pairs of (dead letter as read from the list's head, index in KEYS of its crawl's queued set or 0).
# Letters go back while the list's head is still the one read; returns how many went back.
RETRY_DEAD = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
  local letter = cjson.decode(ARGV[i])
  local body = letter['entry']
  local ok, entry = pcall(cjson.decode, body)
  local queued = tonumber(ARGV[i + 1])
  if queued > 0 and ok and type(entry) == 'table' and entry['fp'] and entry['fp'] ~= '' then
    redis.call('SADD', KEYS[queued], entry['fp'])
  end
  local seq = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[2], letter['score'], seq .. '|0|' .. body)
  n = n + 1
end
return n
"""

# KEYS: requests, the crawl's queued set.  ARGV: pairs of (queue member, its fingerprint or '').
# Takes each member out of the queue and, only if it was still there, its fingerprint out of the queued
# set: a member a worker leased meanwhile keeps its fingerprint queued until that worker settles it, so a
# stopped crawl's progress never reads "nothing pending" while a request of it is still in hand.
# Returns how many members were removed.
REMOVE_QUEUED = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    n = n + 1
    if ARGV[i + 1] ~= '' then redis.call('SREM', KEYS[2], ARGV[i + 1]) end
  end
end
return n
"""
