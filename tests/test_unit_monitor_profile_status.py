"""A monitored Douyin profile that is no longer live records the end of the stream on the room.

Between streams a profile leads to no room page, so the room's own Room record
never says the stream ended: the middleware reads the profile's Streamer
(``is_live`` False) against the monitor's last status in Redis and yields a
partial Room carrying ``stream_ended_seen_at``. A live profile is never taken
as the start: the room page's Room record is. The middleware runs on the real
Redis of the test session, built from real settings; the partial Room goes
through the contract check and the store's real bulk operations into the
MongoDB-compatible server, which must leave the room's other fields as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import scrapy
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from crawlers.monitor.middleware import MonitorSpiderMiddleware
from crawlers.monitor.registry import Registry
from crawlers.queue.origin import origin_of, set_origin
from models.entities import Room, Streamer
from pipelines.p100_validate import contract_problem
from pipelines.store.ops import writes
from spiders.meta import MONITOR_META, TICK_META

pytestmark = pytest.mark.integration

SEC_UID = "MS4wLjABAAAA" + "x7Qm2pL9vR4sT1uW8yZ0aB3cD6eF5gH2iJ4kL7mN0oP"
UID = "58763916245"
ROOM_ID = "7302148857964645129"
T0 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


class _DouyinSpider(scrapy.Spider):
    name = "douyin"
    platform = "douyin"


@pytest.fixture
def registry(redis_client) -> Registry:
    return Registry(redis_client, "punit")


@pytest.fixture
def middleware(redis_server, registry) -> MonitorSpiderMiddleware:
    crawler = get_crawler(_DouyinSpider, {"LIVEFLEET_REDIS_URL": redis_server.url, "LIVEFLEET_KEY_PREFIX": "punit"})
    crawler.spider = _DouyinSpider()
    built = MonitorSpiderMiddleware.from_crawler(crawler)
    assert built.registry.keys.prefix == registry.keys.prefix  # the fixture's registry sees the same keys
    return built


@pytest.fixture
def monitor(registry) -> str:
    return registry.add("douyin", f"https://www.douyin.com/user/{SEC_UID}", "2s", "10m").id


def _page(monitor: str, kind: str, tick: int = 1) -> TextResponse:
    request = scrapy.Request(f"https://sandbox.test/{kind}/{tick}",
                             meta={MONITOR_META: monitor, TICK_META: tick, "livefleet": {"kind": kind}})
    return TextResponse(request.url, request=request, body=b"{}")


def _run(middleware: MonitorSpiderMiddleware, response: TextResponse, items: Iterable[Any]) -> list[Any]:
    async def result() -> AsyncIterator[Any]:
        for item in items:
            yield item

    async def collect() -> list[Any]:
        return [item async for item in middleware.process_spider_output(response, result())]

    return asyncio.run(collect())


def _profile(at: datetime, *, is_live: bool | None, room_id: str | None = None, uid: str = UID) -> Streamer:
    return Streamer(platform="douyin", streamer_id=uid, sec_id=SEC_UID, handle="lf_demo", nickname="演示主播",
                    followers=1200, is_live=is_live, room_id=room_id, fetched_at=at)


def _room(at: datetime, status: str, room_id: str = ROOM_ID) -> Room:
    return Room(platform="douyin", room_id=room_id, streamer_id=UID, title="新品首发", status=status,
                viewers_now=321, fetched_at=at)


def _events(registry: Registry, monitor: str) -> list[str]:
    found = registry.get(monitor)
    assert found is not None
    return [event["event"] for event in found.events]


def _stat(middleware: MonitorSpiderMiddleware, name: str) -> int:
    return middleware.crawler.stats.get_value(f"livefleet/monitor/{name}", 0)


def test_a_live_profile_is_not_the_start_the_room_page_is(middleware, registry, monitor) -> None:
    profile = _profile(T0, is_live=True, room_id=ROOM_ID)
    assert _run(middleware, _page(monitor, "user_profile"), [profile]) == [profile]
    assert registry.get(monitor).last_status is None and _events(registry, monitor) == []

    room = _room(T0 + timedelta(seconds=1), "live")
    (out,) = _run(middleware, _page(monitor, "room_page"), [room])
    assert out.stream_started_seen_at == room.fetched_at
    assert _events(registry, monitor) == ["stream_started"] and _stat(middleware, "stream_started") == 1


def test_a_profile_no_longer_live_ends_the_room_last_seen_live(middleware, registry, monitor) -> None:
    _run(middleware, _page(monitor, "room_page"), [_room(T0, "live")])
    ended_at = T0 + timedelta(seconds=2)
    profile = _profile(ended_at, is_live=False)  # Douyin sends room_id 0 once the stream is over
    set_origin(profile, {"monitor": monitor})

    out = _run(middleware, _page(monitor, "user_profile", tick=2), [profile])
    assert out[0] is profile and len(out) == 2
    partial = out[1]
    assert partial.to_json_dict() == {
        "type": "room", "platform": "douyin", "room_id": ROOM_ID, "streamer_id": UID,
        "fetched_at": "2026-11-03T12:00:02Z", "stream_ended_seen_at": "2026-11-03T12:00:02Z"}
    assert origin_of(partial) == {"monitor": monitor}
    assert contract_problem(partial, "douyin") is None
    assert _events(registry, monitor) == ["stream_ended", "stream_started"]
    assert registry.get(monitor).last_status == "offline"
    assert _stat(middleware, "stream_ended") == 1 and _stat(middleware, "stream_ended_without_room") == 0

    # The next ticks see the same offline profile: nothing more to record.
    later = _profile(ended_at + timedelta(seconds=2), is_live=False)
    assert _run(middleware, _page(monitor, "user_profile", tick=3), [later]) == [later]
    assert _stat(middleware, "stream_ended") == 1


def test_the_profiles_own_room_id_wins_over_the_remembered_room(middleware, registry, monitor) -> None:
    _run(middleware, _page(monitor, "room_page"), [_room(T0, "live")])
    profile = _profile(T0 + timedelta(seconds=2), is_live=False, room_id="7302148857964645999")
    out = _run(middleware, _page(monitor, "user_profile", tick=2), [profile])
    assert out[1].room_id == "7302148857964645999"


def test_an_end_with_no_room_known_is_an_event_and_a_stat(middleware, registry, monitor) -> None:
    # The live status came from a worker that remembered no room (or from another streamer's room).
    registry.observe_status(monitor, "live", T0)
    profile = _profile(T0 + timedelta(seconds=2), is_live=False)
    assert _run(middleware, _page(monitor, "user_profile", tick=2), [profile]) == [profile]
    assert _events(registry, monitor) == ["stream_ended", "stream_started"]
    assert _stat(middleware, "stream_ended") == 1 and _stat(middleware, "stream_ended_without_room") == 1


def test_another_streamers_room_is_not_ended(middleware, registry, monitor) -> None:
    _run(middleware, _page(monitor, "room_page"), [_room(T0, "live")])
    profile = _profile(T0 + timedelta(seconds=2), is_live=False, uid="99887766")
    assert _run(middleware, _page(monitor, "user_profile", tick=2), [profile]) == [profile]
    assert _stat(middleware, "stream_ended_without_room") == 1


def test_offline_before_any_live_capture_and_unknown_liveness_record_no_end(middleware, registry, monitor) -> None:
    unknown = _profile(T0, is_live=None)
    assert _run(middleware, _page(monitor, "user_profile"), [unknown]) == [unknown]
    assert registry.get(monitor).last_status is None

    offline = _profile(T0 + timedelta(seconds=1), is_live=False)
    assert _run(middleware, _page(monitor, "user_profile", tick=2), [offline]) == [offline]
    assert registry.get(monitor).last_status == "offline" and _events(registry, monitor) == []

    # Going live afterwards is still the room page's start.
    (room,) = _run(middleware, _page(monitor, "room_page", tick=3), [_room(T0 + timedelta(seconds=2), "live")])
    assert room.stream_started_seen_at is not None


def test_a_profile_capture_older_than_the_live_room_page_is_ignored(middleware, registry, monitor) -> None:
    _run(middleware, _page(monitor, "room_page"), [_room(T0 + timedelta(seconds=5), "live")])
    stale = _profile(T0, is_live=False)
    assert _run(middleware, _page(monitor, "user_profile", tick=2), [stale]) == [stale]
    assert registry.get(monitor).last_status == "live" and _stat(middleware, "stream_ended") == 0


def test_a_page_with_its_own_room_speaks_through_the_room(middleware, registry, monitor) -> None:
    _run(middleware, _page(monitor, "room_page"), [_room(T0, "live")])
    at = T0 + timedelta(seconds=2)
    # An ended room page: the Room (status ended) and its anchor (is_live False, derived from the room).
    anchor = _profile(at, is_live=False, room_id=ROOM_ID)
    out = _run(middleware, _page(monitor, "room_page", tick=2), [anchor, _room(at, "ended")])
    assert len(out) == 2 and out[1].stream_ended_seen_at == at
    assert _events(registry, monitor) == ["stream_ended", "stream_started"]
    assert registry.get(monitor).last_status == "ended" and _stat(middleware, "stream_ended") == 1


def test_a_streamer_not_live_beside_a_room_of_unknown_status_ends_nothing(middleware, registry, monitor) -> None:
    _run(middleware, _page(monitor, "room_page"), [_room(T0, "live")])
    at = T0 + timedelta(seconds=2)
    # A room whose status the page does not say plainly: its anchor's is_live False is derived from it, not news.
    out = _run(middleware, _page(monitor, "room_page", tick=2), [_room(at, "unknown"), _profile(at, is_live=False)])
    assert len(out) == 2 and out[0].stream_ended_seen_at is None
    assert registry.get(monitor).last_status == "live" and _stat(middleware, "stream_ended") == 0


def test_pages_of_no_monitor_are_left_alone(middleware, registry) -> None:
    request = scrapy.Request("https://sandbox.test/profile")
    profile = _profile(T0, is_live=False)
    assert _run(middleware, TextResponse(request.url, request=request, body=b"{}"), [profile]) == [profile]


def test_the_store_merges_the_end_into_the_room_and_keeps_its_other_fields(
        middleware, registry, monitor, mongo_db) -> None:
    live = _room(T0, "live")
    (started,) = _run(middleware, _page(monitor, "room_page"), [live])
    _store(mongo_db, [started])
    before = mongo_db.rooms.find_one({"platform": "douyin", "room_id": ROOM_ID}, {"_id": 0})

    ended_at = T0 + timedelta(minutes=3)
    _, partial = _run(middleware, _page(monitor, "user_profile", tick=2), [_profile(ended_at, is_live=False)])
    _store(mongo_db, [partial])
    after = mongo_db.rooms.find_one({"platform": "douyin", "room_id": ROOM_ID}, {"_id": 0})

    def naive(value: datetime) -> datetime:  # the server gives datetimes back without a zone
        return value.astimezone(UTC).replace(tzinfo=None)

    assert after["stream_ended_seen_at"] == naive(ended_at)
    assert after["stream_started_seen_at"] == before["stream_started_seen_at"] == naive(T0)
    assert after["fetched_at"] == after["last_seen_at"] == naive(ended_at)
    moved = {"stream_ended_seen_at", "fetched_at", "last_seen_at"}
    assert {k: v for k, v in after.items() if k not in moved} == {k: v for k, v in before.items() if k not in moved}
    assert after["status"] == "live" and after["title"] == "新品首发" and after["peak_viewers"] == 321


def _store(db: Any, records: list[Any]) -> None:
    db.rooms.bulk_write([write.op for write in writes(records)])
