"""``livefleet scheduler``: every campaign of a folder on its cron, each firing once fleet-wide.

Every few seconds the scheduler re-reads the folder (a bad file is reported,
once per change, and skipped; the others keep running) and, for each scheduled
campaign, takes the latest firing at or before now in the campaign's time zone.
Only that one is considered: after downtime the latest missed firing runs, once,
never one run per missed slot.

A firing runs when a scheduler claims it, in one Lua script on Redis: the
firing must be newer than the campaign's last claimed firing (an older firing
never runs, even if it was never claimed) and its own key must not exist
(``SET NX``). The run document's unique (campaign, firing) index is the second
lock. So any number of schedulers may run at once, on any machines.

A campaign is "new" to the fleet until a scheduler records when it first saw it
(``campaign:<name>:since``); firings before that are not missed, just earlier,
and do not run: a new hourly campaign first runs at its next hour (run it now
with ``livefleet campaign run``).

The scheduler follows each run it starts in a thread, and takes over runs left
with no follower (``campaign run --no-wait``, a scheduler that died), recording
their end. The clock is injectable (``clock``) for tests.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from croniter import CroniterBadDateError, croniter
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crawlers.campaigns.loader import Problem, load_folder
from crawlers.campaigns.runs import COLLECTION, FiringTaken, claim_follow, follow_run, followed, start_run
from crawlers.campaigns.spec import CRON_HORIZON_YEARS, Campaign, Schedule
from crawlers.redis.keys import FleetKeys

logger = logging.getLogger(__name__)

#: How long a claimed firing's key lives (longer than any schedule's period that matters).
FIRING_TTL_SECONDS = 30 * 24 * 3600

_CLAIM = """
local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[1]) <= last then return false end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then return false end
redis.call('SET', KEYS[2], ARGV[1])
return tostring(last)
"""

#: Give a claimed firing back (its run could not be recorded): only if no later firing was claimed since.
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  if ARGV[2] == '-1' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[2]) end
end
redis.call('DEL', KEYS[1])
return 1
"""


def latest_firing(schedule: Schedule, now: datetime) -> datetime:
    """The latest time at or before ``now`` that ``schedule`` fires, in its time zone."""
    local = now.astimezone(schedule.zone).replace(microsecond=0) + timedelta(seconds=1)
    # Bounded search: a schedule that never fires raises CroniterBadDateError instead of looping.
    return croniter(schedule.cron, local,  # type: ignore[no-any-return]
                    max_years_between_matches=CRON_HORIZON_YEARS).get_prev(datetime)


class Scheduler:
    """Runs the campaigns of ``directory`` on schedule; see the module docstring."""

    def __init__(self, server: redis.Redis, db: Database[dict[str, Any]], prefix: str, directory: Path, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), name: str = "scheduler",
                 follow: bool = True, poll: float = 2.0) -> None:
        self.server, self.db, self.prefix, self.directory = server, db, prefix, directory
        self.clock, self.name, self.follow, self.poll = clock, name, follow, poll
        self.keys = FleetKeys(prefix)
        self.stop_event = threading.Event()
        self.threads: dict[str, threading.Thread] = {}
        self._claim = server.register_script(_CLAIM)
        self._release = server.register_script(_RELEASE)
        self._reported: dict[str, list[Problem]] = {}
        self._cache: dict[Any, Any] = {}  # parsed files by (path, mtime, size): re-read only when changed

    # -- one pass ---------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Start the runs that are due now; returns their ids."""
        campaigns, problems = load_folder(self.directory, self._cache)
        self._report(problems)
        now = self.clock()
        started = []
        for campaign in campaigns.values():
            if campaign.schedule is None:
                continue
            try:
                run_id = self._maybe_run(campaign, campaign.schedule, now)
            except (redis.RedisError, PyMongoError, OSError) as exc:
                logger.error("Campaign %s: could not start its run: %s", campaign.name, exc)
                continue
            except (CroniterBadDateError, ValueError, OverflowError) as exc:  # one campaign, not the scheduler
                logger.error("Campaign %s: its schedule cannot be followed: %s", campaign.name, exc)
                continue
            if run_id:
                started.append(run_id)
        if self.follow:
            self._adopt_orphans()
        return started

    def _maybe_run(self, campaign: Campaign, schedule: Schedule, now: datetime) -> str | None:
        firing = latest_firing(schedule, now)
        epoch = int(firing.timestamp())
        since_key = self.keys.campaign_since(campaign.name)
        # Rounded up: first seen at 10:00:00.4, the 10:00:00 firing came before the fleet knew it.
        self.server.set(since_key, math.ceil(now.timestamp()), nx=True)
        since = int(self.server.get(since_key) or 0)
        if epoch < since:
            return None
        keys = [self.keys.campaign_firing(campaign.name, epoch), self.keys.campaign_last_firing(campaign.name)]
        previous = self._claim(keys=keys, args=[epoch, self.name, FIRING_TTL_SECONDS])
        if previous is None:
            return None
        try:
            run_id = start_run(self.server, self.db, self.prefix, campaign, firing, now=now)
        except FiringTaken:
            logger.info("Campaign %s: firing %s already ran", campaign.name, firing)
            return None
        except PyMongoError as exc:  # not recorded, so not run: the next pass tries the firing again
            self._release(keys=keys, args=[epoch, previous])
            logger.error("Campaign %s: could not record the run of %s (%s); will retry", campaign.name, firing, exc)
            return None
        logger.info("Campaign %s: firing %s -> run %s", campaign.name, firing.isoformat(), run_id)
        if self.follow:
            self._follow(run_id)
        return run_id

    def _adopt_orphans(self) -> None:
        """Follow running runs that nobody follows (first come, first served across schedulers)."""
        for document in self.db[COLLECTION].find({"status": "running"}, {"_id": 1}):
            run_id = str(document["_id"])
            if run_id in self.threads or followed(self.server, self.prefix, run_id):
                continue
            if claim_follow(self.server, self.prefix, run_id):
                logger.info("Run %s had no follower: following it", run_id)
                self._follow(run_id)

    def _follow(self, run_id: str) -> None:
        def target() -> None:
            try:
                status = follow_run(self.server, self.db, self.prefix, run_id, poll=self.poll,
                                    stop=self.stop_event)
                logger.info("Run %s: %s", run_id, status)
            except Exception:  # a follower thread must not die silently
                logger.exception("Following run %s failed", run_id)

        thread = threading.Thread(target=target, name=f"follow-{run_id}", daemon=True)
        self.threads[run_id] = thread
        thread.start()

    def _report(self, problems: list[Problem]) -> None:
        """Log each bad file's problems when they change, not every pass."""
        by_file: dict[str, list[Problem]] = {}
        for problem in problems:
            by_file.setdefault(problem.file, []).append(problem)
        for file, found in by_file.items():
            if self._reported.get(file) != found:
                logger.error("Skipping %s:\n%s", file, "\n".join(f"  {p}" for p in found))
        self._reported = by_file

    # -- the loop ---------------------------------------------------------------------------

    def running(self) -> list[str]:
        self.threads = {run_id: t for run_id, t in self.threads.items() if t.is_alive()}
        return list(self.threads)

    def run_forever(self, interval: float = 5.0) -> None:
        while not self.stop_event.is_set():
            try:
                self.tick()
            except (redis.RedisError, PyMongoError, OSError) as exc:  # the servers away for a moment: try again
                logger.error("Scheduler pass failed: %s", exc)
            self.running()
            self.stop_event.wait(interval)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the runs being followed to end."""
        for thread in list(self.threads.values()):
            thread.join(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.wait(timeout)
