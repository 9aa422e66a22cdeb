"""Campaign runs and the scheduler on real Redis and MongoDB (and a real worker for the page cap).

The scheduler's clock is injected: firings are decided by the time the test
says, while the locks (Redis, the run document's unique index) are the real ones.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from pymongo import MongoClient

from crawlers.campaigns.cron import Scheduler
from crawlers.campaigns.loader import parse_campaign
from crawlers.campaigns.runs import COLLECTION, follow_run, start_run
from crawlers.queue.crawls import crawl_progress
from crawlers.redis.keys import SpiderKeys
from tests.crawl_helpers import Fleet

pytestmark = pytest.mark.integration

EVERY_HOUR = """\
name: {name}
schedule: {{cron: "0 * * * *", timezone: UTC}}
priority: 3
caps: {{duration: 1s}}
platforms:
  bilibili: {{rooms: [5440], depth: rooms}}
"""


class Clock:
    """A settable clock shared by schedulers."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def prefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


def _folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / f"{name}.yaml").write_text(EVERY_HOUR.format(name=name))
    return folder


def _seeds(redis_client, prefix: str, spider: str = "bilibili") -> list[dict]:
    return [json.loads(raw) for raw in redis_client.lrange(SpiderKeys(prefix, spider).seeds, 0, -1)]


def test_two_schedulers_at_once_start_one_run_per_firing(tmp_path, redis_client, mongo_db, prefix):
    folder = _folder(tmp_path, "hourly")
    clock = Clock(datetime(2026, 3, 1, 9, 59, 50, tzinfo=UTC))
    schedulers = [Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, name=f"s{i}", follow=False)
                  for i in range(2)]
    for scheduler in schedulers:  # both see the campaign before its first firing
        assert scheduler.tick() == []
    started: list[str] = []
    for hour in range(10, 15):
        clock.now = datetime(2026, 3, 1, hour, 0, 1, tzinfo=UTC)
        barrier = threading.Barrier(len(schedulers))

        def tick(scheduler: Scheduler, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            started.extend(scheduler.tick())

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    runs = list(mongo_db[COLLECTION].find({}, {"firing": 1, "campaign": 1}))
    assert sorted(started) == sorted(r["_id"] for r in runs)
    assert sorted(r["firing"].hour for r in runs) == [10, 11, 12, 13, 14]
    seeds = _seeds(redis_client, prefix)
    assert sorted(s["crawl"] for s in seeds) == sorted(started)  # each firing's seed pushed once
    assert {s["priority"] for s in seeds} == {3}


def test_after_downtime_only_the_latest_missed_firing_runs_and_never_an_older_one(
        tmp_path, redis_client, mongo_db, prefix):
    folder = _folder(tmp_path, "hourly")
    clock = Clock(datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC))
    scheduler = Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, follow=False)
    assert scheduler.tick() == ["hourly-20260301T1000Z"]
    assert scheduler.tick() == []
    clock.now = datetime(2026, 3, 1, 15, 20, tzinfo=UTC)  # down from 10:00 to 15:20: five firings missed
    assert scheduler.tick() == ["hourly-20260301T1500Z"]
    assert scheduler.tick() == []
    late = Scheduler(redis_client, mongo_db, prefix, folder, clock=Clock(datetime(2026, 3, 1, 12, 30, tzinfo=UTC)),
                     follow=False)  # a scheduler whose clock lags: its 12:00 is older than the 15:00 claimed
    assert late.tick() == []
    assert mongo_db[COLLECTION].count_documents({}) == 2
    assert len(_seeds(redis_client, prefix)) == 2


def test_a_new_campaign_waits_for_its_next_firing(tmp_path, redis_client, mongo_db, prefix):
    folder = _folder(tmp_path, "hourly")
    clock = Clock(datetime(2026, 3, 1, 10, 40, tzinfo=UTC))
    scheduler = Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, follow=False)
    assert scheduler.tick() == []  # 10:00 was before the fleet knew the campaign
    clock.now = datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC)
    assert scheduler.tick() == ["hourly-20260301T1100Z"]


def test_a_campaign_first_seen_within_its_firings_second_waits_too(tmp_path, redis_client, mongo_db, prefix):
    """First seen at 10:00:00.4: the 10:00:00 firing was 0.4 s before the fleet knew the campaign."""
    folder = _folder(tmp_path, "hourly")
    clock = Clock(datetime(2026, 3, 1, 10, 0, 0, 400_000, tzinfo=UTC))
    scheduler = Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, follow=False)
    assert scheduler.tick() == []
    clock.now = datetime(2026, 3, 1, 11, 0, 0, 300_000, tzinfo=UTC)
    assert scheduler.tick() == ["hourly-20260301T1100Z"]


def test_the_run_document_is_a_second_lock(tmp_path, redis_client, mongo_db, prefix):
    """With Redis's claim gone (flushed), the unique (campaign, firing) document still refuses a second run."""
    folder = _folder(tmp_path, "hourly")
    clock = Clock(datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC))
    assert Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, follow=False).tick()
    redis_client.flushdb()
    redis_client.set(f"{prefix}:campaign:hourly:since", 0)
    assert Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, follow=False).tick() == []
    assert mongo_db[COLLECTION].count_documents({}) == 1
    assert _seeds(redis_client, prefix) == []  # the losing firing enqueued nothing


def test_a_bad_file_is_skipped_and_the_others_run(tmp_path, redis_client, mongo_db, prefix, caplog):
    folder = _folder(tmp_path, "good")
    (folder / "broken.yaml").write_text(EVERY_HOUR.format(name="broken").replace("0 * * * *", "0 * *"))
    clock = Clock(datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC))
    scheduler = Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, follow=False)
    with caplog.at_level("ERROR"):
        assert scheduler.tick() == ["good-20260301T1000Z"]
    assert "broken.yaml:2: schedule.cron" in caplog.text
    (folder / "broken.yaml").write_text(EVERY_HOUR.format(name="broken"))  # fixed: read again next pass
    clock.now += timedelta(hours=1)
    assert sorted(scheduler.tick()) == ["broken-20260301T1100Z", "good-20260301T1100Z"]


def test_the_scheduler_follows_its_runs_and_takes_over_orphans(tmp_path, redis_client, mongo_db, prefix):
    folder = _folder(tmp_path, "hourly")
    clock = Clock(datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC))
    orphan = start_run(redis_client, mongo_db, prefix, parse_campaign(EVERY_HOUR.format(name="byhand")), None)
    scheduler = Scheduler(redis_client, mongo_db, prefix, folder, clock=clock, poll=0.2)
    try:
        run_id = scheduler.tick()[0]
        # Both followed: its own run and the orphan (their follower threads may already have ended the runs,
        # started at the test clock's time, so `running()` would race them).
        assert sorted(scheduler.threads) == sorted([run_id, orphan])
        scheduler.wait(timeout=30)  # no worker: each run ends at its one-second duration cap
    finally:
        scheduler.stop()
    for rid in (run_id, orphan):
        document = mongo_db[COLLECTION].find_one({"_id": rid})
        assert document["status"] == "capped_duration", document
        assert document["ended_at"] >= document["started_at"]
        assert crawl_progress(redis_client, prefix, ["bilibili"], rid)["seeds"] == 0  # stopped: seeds taken out
    assert redis_client.exists(f"{prefix}:crawl:{run_id}:stopped")


def test_a_page_cap_stops_the_crawl_fleet_wide(tmp_path, sandbox, redis_server, mongo_server):
    fleet = Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili", rate=5)
    campaign = parse_campaign("""
name: capped
caps: {pages: 8}
platforms:
  bilibili: {areas: all, depth: streamers, max_pages: 2}
""")
    server = redis_lib.Redis.from_url(redis_server.url)
    client = MongoClient(mongo_server.url)
    db = client[fleet.db_name]
    try:
        fleet.start(1, idle_close=2)
        run_id = start_run(server, db, fleet.prefix, campaign, None)
        assert follow_run(server, db, fleet.prefix, run_id, poll=0.5) == "capped_pages"
        document = db[COLLECTION].find_one({"_id": run_id})
        assert document["status"] == "capped_pages" and document["ended_at"] is not None
        stop = document["stop"]
        assert stop["reason"] == "capped_pages" and stop["pages"] >= 8
        assert stop["removed"]["requests"] > 0  # the run's queued requests were taken out of the queue
        # Nothing of the run is left; the worker, with nothing to do, closes by itself.
        fleet.wait(timeout=120)
        progress = crawl_progress(server, fleet.prefix, ["bilibili"], run_id)
        assert progress["seeds"] == 0 and progress["pending"] == 0 and progress["stopped"]
        # Uncapped, the crawl would have handled at least every page then known (handled or pending), and
        # discovered more; stopped, it handled fewer (workers drop a stopped crawl's requests within seconds).
        assert progress["pages"] < stop["pages"] + stop["pending"], (stop, progress)
        assert document["counts"]["pages"] == progress["pages"]  # recorded once the held requests drained
    finally:
        fleet.stop()
        client.drop_database(fleet.db_name)
        client.close()
        server.close()


WITH_WEBHOOK = EVERY_HOUR + """\
webhook: {{url: "https://hooks.example.com/camp", secret_env: CAMP_HOOK_SECRET}}
"""


@pytest.mark.parametrize("firing", [None, datetime(2026, 11, 24, 9, 0, tzinfo=UTC)])
def test_a_campaigns_webhook_is_subscribed_to_its_runs_before_any_seed_is_pushed(
        redis_client, mongo_db, prefix, monkeypatch, firing):
    from crawlers.feeds.message import FeedMessage
    from crawlers.feeds.webhooks import list_webhooks

    campaign = parse_campaign(WITH_WEBHOOK.format(name="hooked"))
    monkeypatch.delenv("CAMP_HOOK_SECRET", raising=False)
    unsigned = start_run(redis_client, mongo_db, prefix, campaign, firing)
    assert list_webhooks(redis_client, prefix) == []  # no secret: not subscribed, and the run says why
    (error,) = mongo_db[COLLECTION].find_one({"_id": unsigned})["errors"]
    assert "CAMP_HOOK_SECRET is not set" in error
    mongo_db[COLLECTION].delete_many({})

    monkeypatch.setenv("CAMP_HOOK_SECRET", "s3")
    run_id = start_run(redis_client, mongo_db, prefix, campaign, firing)
    (subscription,) = list_webhooks(redis_client, prefix)
    assert (subscription.campaign, subscription.url, subscription.secret) == ("hooked", "https://hooks.example.com/camp",
                                                                              "s3")
    assert mongo_db[COLLECTION].find_one({"_id": run_id})["errors"] == []

    def message(crawl: str) -> FeedMessage:
        return FeedMessage(id="1-0", collection="rooms", op="upsert", at="", doc={}, crawl=crawl)

    # Whatever the run's name (by hand or scheduled), its changes reach the campaign's webhook; another
    # campaign's whose name starts the same do not.
    assert subscription.matches(message(run_id))
    assert not subscription.matches(message(run_id.replace("hooked", "hooked-two", 1)))
