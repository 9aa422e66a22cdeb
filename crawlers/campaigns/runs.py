"""One run of a campaign: its seeds pushed, followed to its end, recorded in MongoDB.

A run is a crawl namespace (its id): every seed carries it and every request
and record of the run inherits it, so its progress (``crawl_progress``) and its
stored records (``crawl:<run>:items``) are its own even while other runs share
the queue. The run document, in collection ``campaign_runs``::

    {_id: run id, campaign, firing (the scheduled time, or None for a run asked for by hand),
     trigger: "schedule" | "manual", started_at, ended_at, status, spiders, seeds {spider: [seed]},
     caps {pages, duration_s}, counts {pages, items {collection: n}, dead}, errors [text], notes [text],
     stop {reason, at, pages, pending, removed} (when a cap stopped it: where it stood then),
     epoch (the fleet's epoch in Redis when the run started), state_lost {at, found, reason} (when it changed)}

``status`` is ``running`` until the run ends, then ``done`` (nothing of it is
left in the queue), ``capped_pages`` / ``capped_duration`` (a cap was reached:
the crawl was stopped fleet-wide) or ``failed``. A run whose Redis lost the
fleet's state under it (``crawlers/redis/epoch.py``: the epoch recorded at its
start is gone or changed) would look done, its queue being empty: it is
recorded ``failed``, with ``state_lost`` and an error saying so, never ``done``. A unique index on (campaign,
firing), over scheduled runs only, makes a firing's document the second lock
after Redis's: the document is inserted before any seed is pushed, so a firing
that lost either race enqueues nothing.

Whoever follows a run holds ``campaign_run:<id>:follower`` (a short TTL,
renewed every poll), so a run left without a follower (``campaign run
--no-wait``, a scheduler that died) can be taken over by a scheduler.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from crawlers.campaigns.spec import Campaign, Caps
from crawlers.queue.crawls import crawl_progress, stop_crawl
from crawlers.queue.feeder import push_seeds
from crawlers.redis.epoch import current_epoch, ensure_epoch
from crawlers.redis.keys import FleetKeys, SpiderKeys

logger = logging.getLogger(__name__)

COLLECTION = "campaign_runs"
ENDED = ("done", "capped_pages", "capped_duration", "failed")
#: How long a follower's hold on a run lasts without renewal.
FOLLOWER_TTL_SECONDS = 30
#: ``done`` must be seen this many polls in a row (a seed just taken is not yet queued requests).
DONE_CONFIRMATIONS = 2
#: After a cap stops a run: how long to wait for the requests workers still hold to be dropped or
#: finished, so the recorded counts are final.
DRAIN_SECONDS = 30


class FiringTaken(RuntimeError):
    """The firing already has a run (another scheduler's)."""


def ensure_run_indexes(db: Database[dict[str, Any]]) -> None:
    runs = db[COLLECTION]
    runs.create_index([("campaign", ASCENDING), ("firing", ASCENDING)], unique=True, name="campaign_firing",
                      partialFilterExpression={"firing": {"$type": "date"}})
    runs.create_index([("started_at", DESCENDING)], name="started_at")
    runs.create_index([("status", ASCENDING)], name="status")


def run_id_for(campaign: Campaign, firing: datetime | None, now: datetime) -> str:
    """``<campaign>-<firing as UTC, minute>`` for a scheduled run; ``<campaign>-<now>-<random>`` by hand."""
    if firing is not None:
        return f"{campaign.name}-{firing.astimezone(UTC):%Y%m%dT%H%MZ}"
    return f"{campaign.name}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def start_run(server: redis.Redis, db: Database[dict[str, Any]], prefix: str, spec: Campaign,
              firing: datetime | None, *, now: datetime | None = None) -> str:
    """Record a run of ``spec`` and push its seeds; returns the run id.

    ``firing`` is the scheduled time the run is for (None: a run asked for by
    hand). Raises :class:`FiringTaken` when that firing already has a document.
    """
    started = now or datetime.now(UTC)
    run_id = run_id_for(spec, firing, started)
    seeds = spec.seeds(run_id)
    ensure_run_indexes(db)
    epoch = ensure_epoch(server, prefix)
    document = {
        "_id": run_id,
        "campaign": spec.name,
        "firing": firing.astimezone(UTC) if firing is not None else None,
        "trigger": "schedule" if firing is not None else "manual",
        "started_at": started.astimezone(UTC),
        "ended_at": None,
        "status": "running",
        "spiders": list(seeds),
        "seeds": seeds,
        "priority": spec.priority,
        "caps": {"pages": spec.caps.pages,
                 "duration_s": spec.caps.duration.total_seconds() if spec.caps.duration else None},
        "webhook": spec.webhook.model_dump() if spec.webhook else None,
        "counts": {"pages": 0, "items": {}, "dead": 0},
        "errors": [],
        "notes": spec.notes(),
        "epoch": epoch.id,
    }
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError:
        raise FiringTaken(f"{spec.name}: the firing {firing} already has a run") from None
    if spec.webhook is not None:  # subscribed before any seed is pushed, so no change of the run is missed
        problem = subscribe_webhook(server, prefix, spec)
        if problem:
            logger.error("Campaign %s: %s", spec.name, problem)
            db[COLLECTION].update_one({"_id": run_id}, {"$push": {"errors": problem}})
    try:
        for spider, batch in seeds.items():
            push_seeds(server, SpiderKeys(prefix, spider), batch)
    except redis.RedisError as exc:
        finish_run(db, run_id, "failed", error=f"pushing seeds failed: {exc}")
        raise
    logger.info("Campaign %s: run %s started (%s)", spec.name, run_id,
                ", ".join(f"{len(b)} {s} seeds" for s, b in seeds.items()))
    return run_id


def subscribe_webhook(server: redis.Redis, prefix: str, spec: Campaign,
                      environ: Mapping[str, str] | None = None) -> str | None:
    """Subscribe the campaign's webhook to its runs' changes; returns a problem, or None.

    The secret is read from the variable the file names (``secret_env``), else
    ``LIVEFLEET_WEBHOOK_SECRET``; without one, or when the URL is refused (``crawlers.feeds.urlcheck``:
    not a public address, and not in ``LIVEFLEET_WEBHOOK_ALLOW``), the run goes on, unsubscribed, and says so."""
    from crawlers.feeds.webhooks import UrlRefused, register_webhook

    assert spec.webhook is not None
    env = os.environ if environ is None else environ
    name = spec.webhook.secret_env or "LIVEFLEET_WEBHOOK_SECRET"
    secret = env.get(name)
    if not secret:
        return f"webhook {spec.webhook.url} not subscribed: {name} is not set (its deliveries are signed with it)"
    try:
        register_webhook(server, prefix, campaign=spec.name, url=spec.webhook.url, secret=secret)
    except UrlRefused as exc:  # a private or metadata address the operator has not allowed
        return f"webhook not subscribed: {exc}"
    return None


def finish_run(db: Database[dict[str, Any]], run_id: str, status: str, *, progress: dict[str, Any] | None = None,
               error: str | None = None, ended_at: datetime | None = None) -> None:
    update: dict[str, Any] = {"$set": {"status": status, "ended_at": ended_at or datetime.now(UTC)}}
    if progress is not None:
        update["$set"]["counts"] = counts_of(progress)
    if error:
        update["$push"] = {"errors": error}
    db[COLLECTION].update_one({"_id": run_id}, update)


def counts_of(progress: dict[str, Any]) -> dict[str, Any]:
    return {"pages": progress.get("pages"), "items": dict(progress.get("items") or {}),
            "dead": int(progress.get("dead") or 0)}


def follow_run(server: redis.Redis, db: Database[dict[str, Any]], prefix: str, run_id: str, *,
               poll: float = 2.0, stop: threading.Event | None = None,
               monotonic: Callable[[], float] = time.monotonic,
               on_progress: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Poll a run's crawl until it is done or a cap is reached (then stop it fleet-wide); record its end.

    Returns the final status. ``stop`` set: return ``running`` without ending
    the run (its follower hold lapses and another process may take it over).
    Caps are measured from the run's ``started_at`` for the duration, and over
    the whole fleet for pages.
    """
    runs = db[COLLECTION]
    document = runs.find_one({"_id": run_id})
    if document is None:
        raise ValueError(f"no campaign run {run_id!r}")
    if document["status"] in ENDED:
        return str(document["status"])
    spiders = list(document["spiders"])
    caps = document.get("caps") or {}
    hold = FleetKeys(prefix).campaign_run_follower(run_id)
    started = _aware(document["started_at"])
    elapsed_before = max(0.0, (datetime.now(UTC) - started).total_seconds())
    origin = monotonic() - elapsed_before
    done_seen = 0
    try:
        while True:
            server.set(hold, "1", ex=FOLLOWER_TTL_SECONDS)
            lost = _state_lost(server, prefix, document.get("epoch"))
            if lost is not None:
                logger.error("Run %s: %s", run_id, lost)
                runs.update_one({"_id": run_id}, {"$set": {"state_lost": {
                    "at": datetime.now(UTC), "epoch": document.get("epoch"), "reason": lost}}})
                finish_run(db, run_id, "failed", error=lost)
                return "failed"
            progress = crawl_progress(server, prefix, spiders, run_id)
            runs.update_one({"_id": run_id}, {"$set": {"counts": counts_of(progress)}})
            if on_progress is not None:
                on_progress(progress)
            done_seen = done_seen + 1 if progress["done"] else 0
            status = None
            if done_seen >= DONE_CONFIRMATIONS:
                status = "done"
            elif caps.get("pages") and (progress["pages"] or 0) >= caps["pages"]:
                status = "capped_pages"
            elif caps.get("duration_s") and monotonic() - origin >= caps["duration_s"]:
                status = "capped_duration"
            if status is not None:
                if status != "done":
                    progress = _stop(server, db, prefix, spiders, run_id, status, progress, poll=poll,
                                     monotonic=monotonic)
                finish_run(db, run_id, status, progress=progress)
                return status
            if stop is not None and stop.wait(poll):
                return "running"
            if stop is None:
                time.sleep(poll)
    except (redis.RedisError, OSError) as exc:
        logger.error("Following run %s failed: %s", run_id, exc)
        finish_run(db, run_id, "failed", error=f"following the run failed: {exc}")
        return "failed"
    finally:
        try:
            server.delete(hold)
        except redis.RedisError:
            pass


def _state_lost(server: redis.Redis, prefix: str, epoch: str | None) -> str | None:
    """Why the run's Redis no longer holds its state (its start's epoch gone or changed), or None.

    A run started before epochs were recorded (``epoch`` None) is not checked."""
    if not epoch:
        return None
    found = current_epoch(server, prefix)
    if found is not None and found.id == epoch:
        return None
    now = "missing" if found is None else f"replaced by epoch {found.id}"
    return (f"Redis state lost: the fleet's epoch {epoch} of the run's start is {now}, so its queued requests, "
            "leases and seen-sets are gone and the run is not complete (push its seeds again: run the campaign "
            "again)")


def _stop(server: redis.Redis, db: Database[dict[str, Any]], prefix: str, spiders: list[str], run_id: str,
          status: str, progress: dict[str, Any], *, poll: float, monotonic: Callable[[], float]) -> dict[str, Any]:
    """Stop a capped run fleet-wide, note where it stood, and let what workers still hold drain (bounded)."""
    removed = stop_crawl(server, prefix, spiders, run_id, reason=status)
    logger.info("Run %s reached its cap (%s): stopped, %s", run_id, status, removed)
    db[COLLECTION].update_one({"_id": run_id}, {"$set": {"stop": {
        "reason": status, "at": datetime.now(UTC), "pages": progress["pages"], "pending": progress["pending"],
        "removed": removed}}})
    deadline = monotonic() + DRAIN_SECONDS
    while True:
        progress = crawl_progress(server, prefix, spiders, run_id)
        if progress["pending"] == 0 or monotonic() >= deadline:
            return progress
        time.sleep(min(poll, 0.5))


def followed(server: redis.Redis, prefix: str, run_id: str) -> bool:
    """Whether some process follows the run now."""
    return bool(server.exists(FleetKeys(prefix).campaign_run_follower(run_id)))


def claim_follow(server: redis.Redis, prefix: str, run_id: str) -> bool:
    """Take over following a run nobody follows (SET NX); the follower renews it from then on."""
    return bool(server.set(FleetKeys(prefix).campaign_run_follower(run_id), "1", nx=True, ex=FOLLOWER_TTL_SECONDS))


def recent_runs(db: Database[dict[str, Any]], *, campaign: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    query = {"campaign": campaign} if campaign else {}
    return list(db[COLLECTION].find(query, {"seeds": 0}).sort("started_at", DESCENDING).limit(limit))


def _aware(value: datetime) -> datetime:
    """pymongo hands back naive UTC datetimes unless asked otherwise."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def caps_text(caps: Caps) -> str:
    parts = []
    if caps.pages:
        parts.append(f"{caps.pages} pages")
    if caps.duration:
        parts.append(f"{caps.duration}")
    return ", ".join(parts) or "none"
