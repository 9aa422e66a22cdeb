"""The shared request queue: a Redis sorted set of JSON-encoded requests.

Score = ``-priority * 2**32 + seq``, so higher priorities come first and
requests of one priority come out in arrival order (``seq`` is a Redis
counter). Enqueueing checks the seen-set and adds to the queue in one Lua
call: one round trip, and two workers can never both add the same request.
Popping uses ZPOPMIN, which is atomic, so no request is handed to two workers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis
from scrapy import Request, Spider
from scrapy.utils.request import request_from_dict

from crawlers.queue import serialize
from crawlers.queue.keys import SpiderKeys

logger = logging.getLogger(__name__)

#: Meta keys that only mean something inside the worker that set them.
WORKER_LOCAL_META = frozenset({"playwright_page_methods", "playwright_page", "download_latency"})

# KEYS: requests zset, seq counter, dupefilter set.
# ARGV: priority, payload, fingerprint ('' = do not filter), seen-set ttl seconds (0 = none).
# The seen-set expires a fixed time after it was created, so a later crawl revisits pages.
_PUSH = """
if ARGV[3] ~= '' then
  if redis.call('SADD', KEYS[3], ARGV[3]) == 0 then return 0 end
  if tonumber(ARGV[4]) > 0 and redis.call('TTL', KEYS[3]) == -1 then
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
end
local seq = redis.call('INCR', KEYS[2])
local score = -tonumber(ARGV[1]) * 4294967296 + seq
redis.call('ZADD', KEYS[1], string.format('%.0f', score), ARGV[2])
return 1
"""


class RequestQueue:
    """The priority queue of one spider, shared by every worker."""

    def __init__(self, server: redis.Redis, spider: Spider, keys: SpiderKeys, seen_ttl: int = 0) -> None:
        self.server = server
        self.seen_ttl = seen_ttl
        self.spider = spider
        self.keys = keys
        self._push = server.register_script(_PUSH)
        self._bad_logged = False

    def __len__(self) -> int:
        return int(self.server.zcard(self.keys.requests))

    def encode(self, request: Request) -> str:
        data = request.to_dict(spider=self.spider)
        # Worker-local state (live browser objects, the last download's latency) stays behind.
        data["meta"] = {k: v for k, v in data.get("meta", {}).items() if k not in WORKER_LOCAL_META}
        return serialize.dumps(data)

    def decode(self, payload: bytes | str) -> Request:
        return request_from_dict(serialize.loads(payload), spider=self.spider)

    def push(self, request: Request, fingerprint: str | None) -> bool:
        """Queue ``request`` unless its fingerprint was seen; True if it was queued."""
        keys = [self.keys.requests, self.keys.sequence, self.keys.dupefilter]
        args: list[Any] = [request.priority, self.encode(request), fingerprint or "", self.seen_ttl]
        return bool(self._push(keys=keys, args=args))

    def push_back(self, requests: Iterable[Request]) -> int:
        """Return requests this worker took but will not process (clean shutdown)."""
        count = 0
        with self.server.pipeline(transaction=False) as pipe:
            for request in requests:
                self._push(keys=[self.keys.requests, self.keys.sequence, self.keys.dupefilter],
                           args=[request.priority, self.encode(request), "", 0], client=pipe)
                count += 1
            pipe.execute()
        return count

    def pop_many(self, count: int) -> list[Request]:
        """Take up to ``count`` requests, best first; atomic across workers."""
        popped = self.server.zpopmin(self.keys.requests, count)
        requests = []
        for payload, _score in popped:
            try:
                requests.append(self.decode(payload))
            except Exception as exc:  # a request we cannot rebuild is kept, not dropped
                self.server.rpush(f"{self.keys.requests}:undecodable", payload)
                if not self._bad_logged:
                    logger.error("Undecodable request moved aside (%s); further ones are only counted", exc)
                    self._bad_logged = True
                if self.spider.crawler.stats:
                    self.spider.crawler.stats.inc_value("livefleet/queue/undecodable")
        return requests

    def clear(self) -> None:
        """Delete the queue. Only explicit admin commands call this, never a worker's shutdown."""
        self.server.delete(self.keys.requests, self.keys.sequence)
