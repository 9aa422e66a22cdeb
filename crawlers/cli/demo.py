"""``livefleet demo``: a short campaign against the sandbox, on embedded services.

Starts its own Redis and MongoDB-compatible server (under ``<var>/demo``),
the sandbox, and two workers; pushes the campaign's seeds; waits for the
workers to finish the crawl; prints what landed in MongoDB, the last line
being one JSON object of counts per collection. Everything it started is
stopped when it ends, whether it succeeds, fails or is interrupted.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from crawlers.cli.worker import read_worker_stats, stop_worker, worker_command
from crawlers.monitor.registry import Registry
from crawlers.queue.feeder import push_seeds
from crawlers.redis.connection import get_redis, redact
from crawlers.redis.keys import SpiderKeys
from crawlers.reports.summary import collection_counts, platform_counts
from crawlers.services.lifecycle import owned_services
from models.platforms import check_keys
from sandbox.process import start_sandbox
from settings.config import Config, child_environment
from spiders.platforms import platform as get_platform

#: What the demo crawls, per platform: seeds as ``livefleet crawl`` would push them.
DEMO_SEEDS: dict[str, list[dict[str, Any]]] = {
    "bilibili": [{"kind": "areas", "max_pages": 2}],
    "douyin": [{"kind": "category", "partition": "720", "partition_type": "1", "max_pages": 1}],
    "kuaishou": [{"kind": "categories", "types": [1, 6], "max_pages": 1}],
    "taobao": [],
}
check_keys(DEMO_SEEDS, "DEMO_SEEDS")


def account_seeds(sandbox: Any, followed: Iterable[Mapping[str, Any]] = ()) -> dict[str, list[dict[str, Any]]]:
    """Seeds a team would hold rather than discover: the Kuaishou shops that granted livefleet
    an open-platform token, and the Taobao live rooms it follows (Taobao has no public
    anchor-to-room lookup). The demo takes a few of each from the sandbox's world: first the shops
    of the ``followed`` (monitored) Kuaishou sessions, whose item lists, read twice, are their shelf."""
    kuaishou = sandbox.truth("kuaishou")
    taobao = sandbox.truth("taobao")
    owners = [str(s["streamer_id"]) for s in followed]
    shops = sorted((s for s in kuaishou["shops"] if s["items"]),
                   key=lambda s: owners.index(str(s["userId"])) if str(s["userId"]) in owners else len(owners))[:3]
    lives = [life for life in taobao["lives"] if life["roomStatus"] == 1][:12]
    return {
        "kuaishou": [{"kind": "shop", "access_token": s["access_token"], "max_pages": 2} for s in shops],
        "taobao": [{"kind": "room", "live_id": life["liveId"]} for life in lives],
    }


#: The demo's monitors: live rooms per platform, sampled every ``MONITOR_EVERY`` seconds for
#: ``MONITOR_FOR`` seconds, for their sessions. The sandbox's world stands still except that every
#: ``STEP_WALL`` seconds the demo moves it ``STEP_WORLD`` seconds on and notes its truth, so each
#: shelf reading is known to have seen one noted moment of the world (module ``WorldSteps``).
#: The first step waits for every monitor's first look at its room (at most ``FIRST_LOOK_WAIT``
#: seconds after the workers start), then ``STEP_WALL`` more: a followed broadcast that ends in the
#: world's first minute is still seen live, a few times, as its monitor would have seen it. The
#: last step comes ``STEP_WALL`` before the monitors end, so they see what it changed.
MONITORED, MONITOR_EVERY, MONITOR_FOR = 3, 1.0, 45.0
STEP_WALL, STEP_WORLD = 3.0, 60.0
FIRST_LOOK_WAIT = 20.0


def monitor_targets(sandbox: Any) -> dict[str, list[dict[str, Any]]]:
    """The sessions to follow, per platform (the sandbox's truth of each): the live ones whose
    broadcast began last (so the monitor sees nearly all of it), those that sell first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for platform in DEMO_SEEDS:
        truth = sandbox.truth(platform)
        broken = {str(x) for ids in (truth.get("faults") or {}).values() for x in ids}
        live = sorted((s for s in truth["sessions"] if s["status"] == "live"),
                      key=lambda s: (not s["has_shop"], -s["started_at"]))
        out[platform] = [s for s in live if target_of(s) not in broken
                         and target_of(s).split(":")[0] not in broken][:MONITORED]
    return out


def target_of(session: Mapping[str, Any]) -> str:
    """The ID a monitor takes: Douyin's web_rid, Kuaishou's principalId, the room id elsewhere."""
    return str(session.get("web_rid") or session.get("principal_id") or session["room_id"])


def run_demo(config: Config, *, workers: int = 2, streamers: int = 300, timeout: float = 900,
             out: TextIO = sys.stdout, report: list[dict[str, Any]] | None = None,
             world_start: float | None = None) -> int:
    """Run the demo; 0 when every worker ended cleanly. ``report`` (a list) receives the sessions'
    report (``session_report``), for callers that check it. ``world_start`` (epoch seconds, in the
    past) fixes the sandbox world's start, so the same rooms broadcast and sell on every run; by
    default the world starts from the wall clock."""
    var_dir = config.var_dir / "demo"
    if var_dir.exists():
        shutil.rmtree(var_dir)
    logs = var_dir / "log"
    logs.mkdir(parents=True)
    started = time.monotonic()
    with ExitStack() as stack:
        services = stack.enter_context(owned_services(var_dir / "services"))
        say(out, f"redis   {redact(services.redis_url)}")
        say(out, f"mongodb {redact(services.mongo_uri)}")
        # The world's clock is the wall clock's, moved back by the world time the demo's steps add,
        # so the platforms' times (a broadcast's start) are never ahead of when livefleet saw them.
        if world_start is None:
            world_start = time.time() - (MONITOR_FOR / STEP_WALL + 2) * STEP_WORLD
        sandbox = stack.enter_context(
            start_sandbox("--streamers", str(streamers), "--time-scale", "0", "--start", f"{world_start:.0f}",
                          log_path=logs / "sandbox.log")
        )
        say(out, f"sandbox {sandbox.url} ({streamers} streamers per platform)")
        redis = get_redis(services.redis_url)
        registry = Registry(redis, config.key_prefix)
        targets_by_platform = monitor_targets(sandbox)
        accounts = account_seeds(sandbox, targets_by_platform["kuaishou"])
        for name, seeds in DEMO_SEEDS.items():
            seeds = seeds + accounts.get(name, [])
            spider = get_platform(name).spider
            pushed = push_seeds(redis, SpiderKeys(config.key_prefix, spider), seeds)
            say(out, f"seeds   {pushed} for {name}: {json.dumps(seeds, ensure_ascii=False)}")
        steps = WorldSteps(sandbox)
        monitors_added = time.monotonic()
        for name, followed in targets_by_platform.items():
            targets = [target_of(session) for session in followed]
            for target in targets:
                registry.add(name, target, MONITOR_EVERY, MONITOR_FOR)
            say(out, f"monitor {len(targets)} {name} rooms every {MONITOR_EVERY:g}s for {MONITOR_FOR:g}s: "
                     f"{', '.join(targets)}")
        env = child_environment(
            REDIS_URL=services.redis_url,
            MONGO_URI=services.mongo_uri,
            LIVEFLEET_SANDBOX_URL=sandbox.url,
            LIVEFLEET_VAR_DIR=str(var_dir),
            LIVEFLEET_KEY_PREFIX=config.key_prefix,
            LIVEFLEET_MONGO_DB=config.mongo_db,
        )
        spiders = [get_platform(name).spider for name in DEMO_SEEDS]
        procs = []
        for index in range(workers):
            log = stack.enter_context((logs / f"worker-{index + 1}.log").open("wb"))
            # The first worker also builds the live sessions from the feeds (``--sessions``).
            cmd = worker_command(spiders, idle_close=6, stats_file=var_dir / f"worker-{index + 1}-stats.json",
                                 sessions=index == 0)
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
            stack.callback(stop_worker, procs[-1])
        say(out, f"workers {workers} started (logs in {logs})")
        started_workers = time.monotonic()
        deadline = time.monotonic() + timeout
        last = 0.0
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                say(out, f"demo timed out after {timeout:.0f}s")
                return 1
            if not steps.started:
                looked = all(monitor.last_status for monitor in registry.list())
                if looked or time.monotonic() - started_workers > FIRST_LOOK_WAIT:
                    steps.start()
                    waited = time.monotonic() - started_workers
                    say(out, f"world   moves {STEP_WORLD:g}s every {STEP_WALL:g}s from {STEP_WALL:g}s on; "
                             + (f"every monitor had its first look {waited:.1f}s after the workers started"
                                if looked else f"not every monitor had its first look within {FIRST_LOOK_WAIT:g}s"))
            # The last step comes STEP_WALL before the monitors end: they see what it changed (a broadcast that
            # ended in its minute is seen offline, so its session is closed as the truth says).
            if steps.started and time.monotonic() - monitors_added < MONITOR_FOR - STEP_WALL:
                steps.maybe_step()
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                counts = collection_counts(services.mongo_uri, config.mongo_db)
                say(out, "progress " + " ".join(f"{k}={v}" for k, v in counts.items()))
            time.sleep(0.5)
        failed = [p.args for p in procs if p.returncode != 0]
        stats = _worker_stats(var_dir)
        counts = collection_counts(services.mongo_uri, config.mongo_db)
        by_platform = platform_counts(services.mongo_uri, config.mongo_db)
        sessions = session_report(services.mongo_uri, config.mongo_db, steps, targets_by_platform)
    say(out, f"done in {time.monotonic() - started:.1f}s; everything the demo started is stopped")
    for name, per in sorted(by_platform.items()):
        say(out, f"{name:9s} " + " ".join(f"{k}={v}" for k, v in per.items()))
    for key in ("pages", "blocked", "retries", "quarantined", "spooled"):
        say(out, f"{key:9s} {stats.get(key, 0)}")
    requests, rendered = stats.get("requests", 0), stats.get("rendered", 0)
    if requests:
        say(out, f"http_vs_render_share {rendered / requests:.3f} ({rendered} of {requests} requests needed a browser)")
    for text in session_lines(sessions):
        say(out, text)
    if report is not None:
        report.extend(sessions)
    if failed:
        say(out, f"{len(failed)} worker(s) failed; see {logs}")
    out.write(json.dumps(counts) + "\n")
    out.flush()
    return 1 if failed else 0


#: The shelf answers of each platform in the sandbox's served log, the room key they are logged
#: under, and the product id each row names (the id the truth and the stored snapshots use).
SHELF_SERVED = {"douyin": (("promotions", "product_detail"), "room_id", "product_id"),
                "taobao": (("itemlist",), "room_id", "item_id"),
                "kuaishou": (("open.item.list.get", "open.item.get"), "web_rid", "kwaiItemId")}


class WorldSteps:
    """The sandbox's world moved on in steps, with the monitored sessions' true GMV per product at each.

    Between two steps the world stands still, so every shelf answer the sandbox served (its served
    log notes the world time) shows the world of one step: what a product sold between its first
    and its last reading is the difference of its truths at those two steps."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.worlds: list[float] = []
        self.gmv: list[dict[tuple[str, str], dict[str, float]]] = []
        self.started = False
        self._next = 0.0
        self._note()

    def start(self) -> None:
        """Let the world move: its first step comes ``STEP_WALL`` seconds from now."""
        self.started = True
        self._next = time.monotonic() + STEP_WALL

    def _note(self) -> None:
        noted: dict[tuple[str, str], dict[str, float]] = {}
        for platform in DEMO_SEEDS:
            for truth in self.sandbox.truth(platform)["sessions"]:
                if truth["has_shop"]:  # live, or ended while the world moved (its totals then stand)
                    hidden = set(truth.get("sales_hidden") or ())
                    noted[(platform, truth["session_id"])] = {
                        pid: v["gmv"] for pid, v in truth["products"].items() if pid not in hidden}
        self.worlds.append(float(self.sandbox.clock()["world_time"]))
        self.gmv.append(noted)

    def maybe_step(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + STEP_WALL
            self.sandbox.clock(advance_seconds=STEP_WORLD)
            self._note()

    def sold(self, platform: str, session: Mapping[str, Any], read: Iterable[str],
             ended: float | None) -> float | None:
        """True GMV of the products in ``read`` (those the session read twice), each between
        the first and the last of its shelf answers the sandbox served while the broadcast was live
        (before ``ended``, the truth's end, world seconds; a shelf read after it belongs to no
        session): what the session's readings saw."""
        endpoints, key, product_key = SHELF_SERVED.get(platform, ((), "", ""))
        wanted = set(read)
        spans: dict[str, tuple[float, float]] = {}
        for row in self.sandbox.served(platform, room_id=session.get(key)):
            pid = str(row.get(product_key))
            if row.get("endpoint") in endpoints and pid in wanted and (ended is None or row["served_at"] < ended):
                first, last = spans.get(pid, (row["served_at"], row["served_at"]))
                spans[pid] = (min(first, row["served_at"]), max(last, row["served_at"]))
        sid = (platform, session["session_id"])
        total = 0.0
        for pid, (first, last) in spans.items():
            a, b = bisect_right(self.worlds, first) - 1, bisect_right(self.worlds, last) - 1
            if a < 0 or sid not in self.gmv[a] or sid not in self.gmv[b]:
                return None
            total += self.gmv[b][sid].get(pid, 0.0) - self.gmv[a][sid].get(pid, 0.0)
        return round(total, 2) if spans else None


def session_report(mongo_uri: str, db_name: str, steps: WorldSteps,
                   monitored: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per platform: its number of sessions; the top one by estimated GMV (None when no session
    has one), with ``true_gmv``: the sandbox's truth over what that session's readings covered;
    and ``monitored``: each followed session's truth now beside its stored document (or None)."""
    from pymongo import MongoClient

    report = []
    with MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True) as client:
        db = client[db_name]
        for platform in DEMO_SEEDS:
            top = db.live_sessions.find_one({"platform": platform, "gmv_estimate": {"$ne": None}},
                                           sort=[("gmv_estimate", -1)])
            now = {s["session_id"]: s for s in steps.sandbox.truth(platform)["sessions"]}
            # The products the estimate rests on: those the session read twice (``products_sold``).
            read = [p["product_id"] for p in (top or {}).get("products_sold") or []]
            true_gmv = None if top is None else steps.sold(
                platform, top, read, now.get(top["session_id"], {}).get("ended_at"))
            followed = [{"truth": now.get(s["session_id"], s),
                         "stored": db.live_sessions.find_one({"platform": platform, "session_id": s["session_id"]})}
                        for s in monitored.get(platform, ())]
            report.append({"platform": platform, "sessions": db.live_sessions.count_documents({"platform": platform}),
                           "top": top, "true_gmv": true_gmv, "monitored": followed})
    return report


def session_lines(report: Iterable[Mapping[str, Any]]) -> list[str]:
    """The demo's last lines: per platform, its sessions and the top one by GMV next to the truth."""
    lines = []
    for row in report:
        platform, n, top = row["platform"], row["sessions"], row["top"]
        if top is None:
            lines.append(f"sessions {platform:9s} {n} (no shelf read twice in one session: GMV unknown)")
            continue
        true_gmv = "?" if row["true_gmv"] is None else f"{row['true_gmv']:.2f}"
        lines.append(f"sessions {platform:9s} {n}; top by GMV {top['session_id']}: estimate "
                     f"{top['gmv_estimate']:.2f} [{top['gmv_low']}, {top['gmv_high']}]; over its "
                     f"{top['shelf_samples']} shelf readings {top['gmv_observed']:.2f}, sandbox truth {true_gmv}")
    return lines


def say(out: TextIO, line: str) -> None:
    out.write(f"[demo] {line}\n")
    out.flush()


def _worker_stats(var_dir: Path) -> dict[str, int]:
    """Totals of the workers' counters, summed over workers and platforms."""
    totals: dict[str, int] = {}
    for path in var_dir.glob("worker-*-stats.json"):
        for stats in read_worker_stats(path).values():
            for key, value in stats.items():
                if not isinstance(value, int):
                    continue
                name = _summary_key(key)
                if name:
                    totals[name] = totals.get(name, 0) + value
    return totals


def _summary_key(stat: str) -> str | None:
    if stat.startswith("livefleet/spider/pages/"):
        return "pages"
    if stat.startswith("livefleet/spider/blocked/"):
        return "blocked"
    if stat == "retry/count":
        return "retries"
    if stat.startswith("livefleet/quarantine/") and "/reason/" not in stat:
        return "quarantined"
    if stat == "livefleet/store/spooled":
        return "spooled"
    if stat == "downloader/request_count":
        return "requests"
    if stat == "playwright/page_count":
        return "rendered"
    return None


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("demo", help="run a short demo campaign on embedded services")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--streamers", type=int, default=300)
    p.add_argument("--timeout", type=float, default=900)


def run(args: Any, config: Config) -> int:
    # `make demo` may be stopped with SIGTERM: unwind like Ctrl-C so what it started is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    return run_demo(config, workers=args.workers, streamers=args.streamers, timeout=args.timeout)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
