"""``livefleet campaign validate|run|runs`` and ``livefleet scheduler``: the command side of campaigns."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pymongo import MongoClient
from pymongo.database import Database

from crawlers.api.documents import utc_ready
from crawlers.campaigns.loader import CampaignError, load_campaign, load_folder
from crawlers.campaigns.runs import follow_run, recent_runs, start_run
from crawlers.campaigns.spec import Campaign
from crawlers.cli.output import add_row, progress, show, table
from crawlers.redis.connection import get_redis, redact
from settings.config import Config, child_environment

logger = logging.getLogger(__name__)


def validate(target: Path, out: TextIO | None = None) -> int:
    """Check a campaign file, or every file of a folder; print what each valid one would push."""
    out = out or sys.stdout
    if target.is_dir():
        campaigns, problems = load_folder(target)
    else:
        try:
            campaigns, problems = {target: load_campaign(target)}, []
        except CampaignError as exc:
            campaigns, problems = {}, exc.problems
    for path, campaign in campaigns.items():
        seeds = campaign.seeds("<run>")
        when = (f"'{campaign.schedule.cron}' ({campaign.schedule.timezone})" if campaign.schedule
                else "by hand only")
        counts = ", ".join(f"{len(batch)} {spider}" for spider, batch in seeds.items())
        out.write(f"ok   {path}: {campaign.name}, {when}, seeds: {counts}\n")
        for note in campaign.notes():
            out.write(f"     note: {note}\n")
    for problem in problems:
        out.write(f"bad  {problem}\n")
    out.flush()
    return 1 if problems else 0


@contextmanager
def _stores(config: Config) -> Iterator[tuple[Any, Database[dict[str, Any]], str, str]]:
    from crawlers.services.lifecycle import ensure_services

    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client: MongoClient[dict[str, Any]] = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        yield get_redis(services.redis_url), client[config.mongo_db], services.redis_url, services.mongo_uri
    finally:
        client.close()


def run_campaign(config: Config, path: Path, *, workers: int = 0, wait: bool = True, poll: float = 2.0,
                 out: TextIO | None = None) -> int:
    """``livefleet campaign run``: one run of the campaign now; with ``workers``, local workers serve it."""
    out = out or sys.stdout
    campaign = load_campaign(path)  # CampaignError (a ValueError): nothing is pushed
    with ExitStack() as stack:
        server, db, redis_url, mongo_uri = stack.enter_context(_stores(config))
        if workers:
            _start_workers(stack, config, campaign, workers, redis_url, mongo_uri)
        else:
            _warn_without_workers(server, config, campaign)
        run_id = start_run(server, db, config.key_prefix, campaign, None)
        out.write(f"run {run_id} started: "
                  + ", ".join(f"{len(b)} {s} seeds" for s, b in campaign.seeds(run_id).items()) + "\n")
        for note in campaign.notes():
            out.write(f"note: {note}\n")
        out.flush()
        if not wait:
            out.write("not waiting: a running `livefleet scheduler` follows the run and records its end\n")
            return 0
        status = _follow(server, db, config, run_id, poll, out)
        document = db["campaign_runs"].find_one({"_id": run_id}, {"seeds": 0}) or {}
    out.write(json.dumps(_jsonable(document), ensure_ascii=False) + "\n")
    out.flush()
    return 1 if status == "failed" else 0


def _follow(server: Any, db: Database[dict[str, Any]], config: Config, run_id: str, poll: float,
            out: TextIO) -> str:
    """Follow the run to its end; its progress as a bar on a terminal (stderr), else a line every 5 seconds
    on ``out`` (``progress pages=... pending=... seeds=... items=... dead=...``), which a log or a pipe keeps.
    Returns the run's final status."""
    bar = progress()
    if bar is None:
        last = [0.0]

        def line(counts: dict[str, Any]) -> None:
            if time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                out.write(f"progress pages={counts['pages']} pending={counts['pending']} seeds={counts['seeds']} "
                          f"items={sum(counts['items'].values())} dead={counts['dead']}\n")
                out.flush()

        return follow_run(server, db, config.key_prefix, run_id, poll=poll, on_progress=line)
    with bar:
        # Pages done of pages known so far: the total grows as pages find more pages, so the bar may step back.
        task = bar.add_task(f"run {run_id}", total=None, detail="")

        def draw(counts: dict[str, Any]) -> None:
            done = int(counts["pages"])
            bar.update(task, completed=done, total=done + int(counts["pending"]) + int(counts["seeds"]) or None,
                       detail=f"items {sum(counts['items'].values())}, dead {counts['dead']}")

        return follow_run(server, db, config.key_prefix, run_id, poll=poll, on_progress=draw)


def _start_workers(stack: ExitStack, config: Config, campaign: Campaign, count: int, redis_url: str,
                   mongo_uri: str) -> None:
    from crawlers.cli.worker import stop_worker, worker_command

    logs = config.var_dir / "log"
    logs.mkdir(parents=True, exist_ok=True)
    env = child_environment(REDIS_URL=redis_url, MONGO_URI=mongo_uri, LIVEFLEET_VAR_DIR=str(config.var_dir),
                            LIVEFLEET_KEY_PREFIX=config.key_prefix, LIVEFLEET_MONGO_DB=config.mongo_db)
    for index in range(count):
        log = stack.enter_context((logs / f"campaign-{campaign.name}-worker-{index + 1}.log").open("wb"))
        proc = subprocess.Popen(worker_command(campaign.spiders()), env=env, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(stop_worker, proc)
    logger.info("%d local worker(s) started for %s (logs in %s)", count, ", ".join(campaign.spiders()), logs)


def _warn_without_workers(server: Any, config: Config, campaign: Campaign) -> None:
    from crawlers.health.status import collect_status

    status = collect_status(server, config.key_prefix, interval=config.heartbeat_seconds,
                            spiders=campaign.spiders())
    live = {w.get("spider") for w in status["workers"] if w.get("state") == "live"}
    missing = [s for s in campaign.spiders() if s not in live]
    if missing:
        print(f"livefleet campaign run: warning: no live worker for {', '.join(missing)}; the run's seeds wait "
              "until one starts (livefleet worker, or campaign run --workers N)", file=sys.stderr)


def list_runs(config: Config, *, as_json: bool, campaign: str | None = None, limit: int = 20,
              out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with _stores(config) as (_server, db, _redis_url, _mongo_uri):
        runs = recent_runs(db, campaign=campaign, limit=limit)
    if as_json:
        out.write(json.dumps([_jsonable(r) for r in runs], ensure_ascii=False) + "\n")
        return 0
    if not runs:
        out.write("no campaign runs yet\n")
        return 0
    grid = table(["run", "status", "started", "ended", "pages", "items", "dead", "errors"], right=range(4, 8))
    for run in runs:
        counts = run.get("counts") or {}
        add_row(grid, [str(run["_id"]), run["status"], _when(run.get("started_at")), _when(run.get("ended_at")),
                       str(counts.get("pages") if counts.get("pages") is not None else "-"),
                       str(sum((counts.get("items") or {}).values())), str(counts.get("dead", 0)),
                       str(len(run.get("errors") or []))])
    show(grid, stream=out)
    return 0


def run_scheduler(config: Config, directory: Path, *, once: bool = False, interval: float = 5.0) -> int:
    from crawlers.campaigns.cron import Scheduler

    with _stores(config) as (server, db, redis_url, _mongo_uri):
        scheduler = Scheduler(server, db, config.key_prefix, directory, name=f"{socket.gethostname()}:{os.getpid()}")
        logger.info("Scheduler on %s: campaigns in %s, every %.0fs", redact(redis_url), directory, interval)
        if once:
            started = scheduler.tick()
            logger.info("Started %d run(s): %s; following them to their end", len(started), ", ".join(started))
            scheduler.wait()
            return 0
        signal.signal(signal.SIGTERM, lambda *_: scheduler.stop_event.set())
        try:
            scheduler.run_forever(interval)
        except KeyboardInterrupt:
            pass
        finally:
            # Runs still going keep running in the fleet; their follower holds lapse and the next scheduler
            # takes them over.
            scheduler.stop(timeout=5)
    return 0


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return f"{aware:%Y-%m-%d %H:%M:%S}"


def _jsonable(document: dict[str, Any]) -> dict[str, Any]:
    return utc_ready(document)  # type: ignore[no-any-return]


# -- the command line (crawlers/cli/main.py adds these parsers and dispatches here) ---------------------


def add_parsers(sub: Any) -> None:
    """``campaign validate|run|runs`` and ``scheduler``."""
    p = sub.add_parser("campaign", help="campaign files: validate, run one now, list recent runs")
    actions = p.add_subparsers(dest="campaign_action", required=True, metavar="ACTION")
    a = actions.add_parser("validate", help="check a campaign file, or every file of a folder")
    a.add_argument("target", type=Path, metavar="FILE|DIR")
    a = actions.add_parser("run", help="run a campaign now and follow it to its end")
    a.add_argument("file", type=Path, metavar="FILE")
    a.add_argument("--workers", type=int, default=0, help="start N local workers for the run (default: none)")
    a.add_argument("--no-wait", action="store_true", help="push the seeds and return (a scheduler follows the run)")
    a = actions.add_parser("runs", help="recent campaign runs (newest first)")
    a.add_argument("--campaign", help="only this campaign")
    a.add_argument("--limit", type=int, default=20)
    a.add_argument("--json", action="store_true", help="one JSON document")

    p = sub.add_parser("scheduler", help="run every campaign of a folder on its schedule")
    p.add_argument("--dir", type=Path, default=Path("settings/campaigns"), help="default: settings/campaigns")
    p.add_argument("--once", action="store_true", help="one pass: start what is due, follow it to its end, exit")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")


def run(args: Any, config: Config) -> int:
    if args.command == "scheduler":
        return run_scheduler(config, args.dir, once=args.once, interval=args.interval)
    action = args.campaign_action
    if action == "validate":
        return validate(args.target)
    if action == "run":
        return run_campaign(config, args.file, workers=args.workers, wait=not args.no_wait)
    if action == "runs":
        return list_runs(config, as_json=args.json, campaign=args.campaign, limit=args.limit)
    raise AssertionError(action)
