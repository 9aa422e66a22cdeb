"""Spider middleware: what a monitored page's output becomes.

For a page fetched for a monitor (``meta["livefleet_monitor"]``):

* the tick is *answered* once its root page (the room page the extension
  scheduled) has been handled, so the next tick is not counted late;
* every Room record's status is compared with the last status the monitor saw
  (kept in Redis, so any worker compares with what any other worker saw; a
  capture older than one already recorded is ignored). Not live -> live sets
  ``stream_started_seen_at``, live -> not live sets ``stream_ended_seen_at``,
  both to the capture's ``fetched_at``, and the event is recorded on the
  monitor; the platform's own ``started_at``/``ended_at`` are left as they are.
  The room last seen live is remembered in the monitor's state, for the end below;
* a Streamer record saying the streamer is not live (``is_live`` False; None
  says nothing), on a page with no Room record of its own, is an "offline"
  capture: a Douyin profile between streams, which leads to no room page. Live
  -> offline records the end on the monitor and yields, after the page's
  records, a partial Room of the streamer's current-or-last room
  (``Streamer.room_id``, else the room this monitor last saw live when it is
  the streamer's) carrying only its key, ``streamer_id``, ``fetched_at`` and
  ``stream_ended_seen_at`` (the capture's ``fetched_at``); the store merges it
  into the room document field by field, its status untouched. No room known:
  the event only, counted (``livefleet/monitor/stream_ended_without_room``).
  A live Streamer is not read: the room page's Room record marks the start,
  on the room. A page that has Room records speaks through them (its
  Streamers' ``is_live`` is derived from the room's status);
* new requests keep the monitor's id and tick and bypass dedup
  (``dont_filter``), so the shelf is fetched again each tick; requests of a
  kind beyond the room and its shelf (product details, streamer profiles) are
  dropped and counted (``livefleet/monitor/dropped``): a monitor watches one
  room, it does not crawl around it.

Pages no monitor asked for pass through untouched, without a Redis call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Self, TypeVar

import redis
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.settings import Settings

from crawlers.monitor.registry import Registry
from crawlers.queue.origin import origin_of, set_origin
from crawlers.redis.connection import get_redis, redis_url_from_settings
from models.entities import Room, Streamer
from models.platforms import check_keys
from settings.config import scrapy_check_running
from settings.defaults import value
from spiders.meta import MONITOR_META, PAGE_META, ROOT_META, TICK_META

logger = logging.getLogger(__name__)

#: Page kinds a monitor follows, per platform: the room and its shelf (None: no limit).
MONITOR_KINDS: dict[str, frozenset[str]] = {
    "douyin": frozenset({"room_page", "shelf", "user_profile"}),
    "taobao": frozenset({"live_detail", "live_stats", "item_list"}),
    "bilibili": frozenset({"room_init", "room_info", "info_by_room", "room_info_old", "user_card", "master_info"}),
    "kuaishou": frozenset({"live_page", "live_detail", "profile"}),
}
check_keys(MONITOR_KINDS, "crawlers.monitor.middleware.MONITOR_KINDS")
#: Statuses that say nothing about whether the room is live.
_NO_STATUS = frozenset({"unknown"})
#: Fields of the monitor's state hash: the room it last saw live and that room's streamer ("" if unknown).
LIVE_ROOM = "live_room_id"
LIVE_ROOM_STREAMER = "live_room_streamer_id"

T = TypeVar("T")


def registry_from_settings(settings: Settings) -> Registry:
    """The monitor registry of the worker's Redis and key prefix (for this middleware and the
    :mod:`~crawlers.monitor.extension`); ``NotConfigured`` when ``LIVEFLEET_MONITORS_ENABLED`` is off."""
    if not value(settings, "LIVEFLEET_MONITORS_ENABLED"):
        raise NotConfigured("LIVEFLEET_MONITORS_ENABLED is off")
    if scrapy_check_running():  # contracts run on their own requests: no monitor is served
        raise NotConfigured("scrapy check")
    return Registry(get_redis(redis_url_from_settings(settings)), value(settings, "LIVEFLEET_KEY_PREFIX"))


class MonitorSpiderMiddleware:
    """Stream start/end on monitored rooms, shelf re-fetched each tick, nothing followed beyond it."""

    def __init__(self, crawler: Crawler, registry: Registry) -> None:
        self.crawler = crawler
        self.registry = registry
        self._failing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, registry_from_settings(crawler.settings))

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        monitor = response.meta.get(MONITOR_META)
        if not monitor:
            async for item in result:
                yield item
            return
        tick = response.meta.get(TICK_META)
        platform = getattr(self.crawler.spider, "platform", "")
        allowed = MONITOR_KINDS.get(platform)
        stats = self.crawler.stats
        has_room = False
        not_live: list[Streamer] = []
        async for item in result:
            if isinstance(item, Request):
                if item.url != response.request.url:  # a retry of this page keeps what it has
                    kind = (item.meta.get(PAGE_META) or {}).get("kind")
                    if allowed is not None and kind not in allowed:
                        stats.inc_value(f"livefleet/monitor/dropped/{kind}")
                        continue
                    item.dont_filter = True
                    item.priority = max(item.priority, response.request.priority)
                    item.meta.setdefault(MONITOR_META, monitor)
                    if tick is not None:
                        item.meta.setdefault(TICK_META, tick)
            elif isinstance(item, Room):
                has_room = True
                if item.status is not None and item.status not in _NO_STATUS:
                    await self._observe(monitor, item)
            elif isinstance(item, Streamer) and item.is_live is False:
                not_live.append(item)
            yield item
        for streamer in not_live if not has_room else ():
            ended = await self._observe_offline(monitor, streamer)
            if ended is not None:
                yield ended
        if tick is not None and response.meta.get(ROOT_META):
            await self._redis(self.registry.answer, monitor, int(tick))
        stats.inc_value("livefleet/monitor/pages")

    async def _observe(self, monitor: str, room: Room) -> None:
        previous = await self._redis(self._room_status, monitor, room)
        if previous is None or previous == room.status:
            return
        if room.status == "live":
            room.stream_started_seen_at = room.fetched_at
            self.crawler.stats.inc_value("livefleet/monitor/stream_started")
            logger.info("Monitor %s: room %s %s is live (was %s)", monitor, room.platform, room.room_id,
                        previous or "not seen")
        elif previous == "live":
            room.stream_ended_seen_at = room.fetched_at
            self.crawler.stats.inc_value("livefleet/monitor/stream_ended")
            logger.info("Monitor %s: room %s %s is no longer live (%s)", monitor, room.platform, room.room_id,
                        room.status)

    async def _observe_offline(self, monitor: str, streamer: Streamer) -> Room | None:
        """A not-live capture of the streamer: after a live one, the end, and the partial Room that records it."""
        seen = await self._redis(self._streamer_offline, monitor, streamer)
        if seen is None or seen[0] != "live":
            return None
        stats = self.crawler.stats
        stats.inc_value("livefleet/monitor/stream_ended")
        room_id = streamer.room_id or seen[1]
        if room_id is None:
            stats.inc_value("livefleet/monitor/stream_ended_without_room")
            logger.info("Monitor %s: streamer %s %s is no longer live; no room known to record it on", monitor,
                        streamer.platform, streamer.streamer_id)
            return None
        logger.info("Monitor %s: streamer %s %s is no longer live (room %s)", monitor, streamer.platform,
                    streamer.streamer_id, room_id)
        room = Room(platform=streamer.platform, room_id=room_id, streamer_id=streamer.streamer_id,
                    fetched_at=streamer.fetched_at, stream_ended_seen_at=streamer.fetched_at)
        set_origin(room, origin_of(streamer))
        return room

    # -- Redis, in a worker thread ---------------------------------------------------------------
    def _room_status(self, monitor: str, room: Room) -> str | None:
        """Record a Room's status; a live room accepted in order becomes the monitor's live room."""
        previous = self.registry.observe_status(monitor, str(room.status), room.fetched_at)
        if previous is not None and room.status == "live":
            self.registry.server.hset(self.registry.keys.monitor_state(monitor),
                                      mapping={LIVE_ROOM: room.room_id, LIVE_ROOM_STREAMER: room.streamer_id or ""})
        return previous

    def _streamer_offline(self, monitor: str, streamer: Streamer) -> tuple[str | None, str | None]:
        """Record "offline"; (the previous status, the room last seen live when it was this streamer's)."""
        previous = self.registry.observe_status(monitor, "offline", streamer.fetched_at)
        if previous != "live":
            return previous, None
        room_id, owner = self.registry.server.hmget(self.registry.keys.monitor_state(monitor),
                                                    [LIVE_ROOM, LIVE_ROOM_STREAMER])
        if not room_id or (owner and _text(owner) != streamer.streamer_id):
            return previous, None
        return previous, _text(room_id)

    async def _redis(self, call: Callable[..., T], *args: Any) -> T | None:
        """Run a registry call off the reactor; a Redis outage is logged once and counted, the page goes on."""
        try:
            value: T = await asyncio.to_thread(call, *args)
        except redis.RedisError as exc:
            if not self._failing:
                logger.warning("Monitor state unreachable in Redis: %s", exc)
            self._failing = True
            self.crawler.stats.inc_value("livefleet/monitor/redis_failed")
            return None
        self._failing = False
        return value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
