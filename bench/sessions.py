"""Live-session benchmarks (``python -m bench --only sessions``).

Accuracy (``gmv_estimate_error_60s``, ``gmv_bounds_coverage``, ``explanation_timeline_recall``)
--------------------------------------------------------------------------------------------
Sessions of the sandbox's Douyin, Taobao and Kuaishou worlds are sampled at a fixed cadence
(30 s, 60 s, 300 s; each session with its own random phase), from the start of the broadcast until
the first sample after its end, as a monitor would: at each sample the room's status and viewers,
the product being presented and every shelf product's price and sales count *as the sandbox's
answers show them at that moment* (the world methods its routes call: hidden Douyin counts stay
hidden). The snapshots go through the session builder's pure functions
(``crawlers.sessions.build.sessions_of_room``) and the built session is compared with the world's
truth of that session:

* ``gmv_estimate_error_<c>s``: median over sessions of |gmv_estimate - true GMV| / true GMV, where
  the true GMV is that of the products whose sales the shelf shows (the estimate cannot see the
  others); ``..._all_products`` beside it compares with the whole GMV, hidden products included.
* ``gmv_bounds_coverage``: share of sessions (60 s) whose [gmv_low, gmv_high] contains that GMV.
* ``explanation_timeline_recall``: share of true presentations longer than two sampling intervals
  (60 s) found with the right product and a start within one interval, on Douyin (the one platform
  whose answers name the product being presented; the others' timelines are empty).

Throughput (``session_builder_snapshots_per_s``)
-----------------------------------------------
A backlog of room and product snapshots (live broadcasts sampled every minute) is written through
the store and feeds stages into MongoDB and the Redis Streams; then one builder drains the feeds.
Printed beside it: the store's bulk rate on the same records (records/s through the store and
feeds stages) and their ratio (target >= 5).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawlers.sessions.build import sessions_of_room
from sandbox.douyin.world import DouyinWorld
from sandbox.kuaishou.world import KsWorld
from sandbox.sessions import Session
from sandbox.taobao.world import TaoWorld
from sandbox.world import DEFAULT_START

CADENCES = (30, 60, 300)
MINUTE0 = int(DEFAULT_START // 60)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass
class Sampled:
    """What a monitor of one session collected, and the session's truth."""

    platform: str
    room_id: str
    room: dict[str, Any]
    snaps: list[dict[str, Any]] = field(default_factory=list)
    shelf: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)


# -- what each platform's answers show at one moment ---------------------------------------------------------
Reader = Callable[[int], tuple[dict, list[dict]]]


def _first_sessions(world: Any, rooms: list[Any], min_offers: int,
                    reader: Callable[[Any, dict[str, Any]], Reader]) -> Iterator[tuple[Any, Session, Reader, dict]]:
    """Each sound selling room's first session after the world's start (seen whole), with its reader."""
    for room in rooms:
        seller = world.seller(room)
        if getattr(room, "fault", None) or len(seller.offers) < min_offers or seller.schedule.always_since:
            continue
        for start in seller.schedule.starts_between(MINUTE0 + 1, MINUTE0 + 2 * 1440)[:1]:
            session = seller.session(start)
            ids = world.session_ids(room, session)
            yield room, session, reader(room, ids), {**ids, "started_at": _at(ids["started_at"])}


def _douyin(world: DouyinWorld) -> Iterator[tuple[Any, Session, Reader, dict]]:
    def reader(room: Any, ids: dict[str, Any]) -> Reader:
        def read(minute: int) -> tuple[dict, list[dict]]:
            st = world.state(room, minute)
            explaining = st.explaining
            current = str(world.product_by_promotion[explaining][0].product_id) if explaining else None
            shelf = [{"product_id": str(i.product.product_id), "sales": i.sale_num, "price": i.min_price / 100,
                      "room_id": str(st.room_id)} for i in world.cart(room, minute)]
            snap = {"status": "live" if st.live else "ended", "viewers_now": st.user_count or None,
                    "viewers_total": st.total_user or None, "product_count": len(shelf),
                    "current_product_id": current}
            return snap, shelf
        return read

    return _first_sessions(world, world.rooms, 5, reader)


def _taobao(world: TaoWorld) -> Iterator[tuple[Any, Session, Reader, dict]]:
    def reader(anchor: Any, ids: dict[str, Any]) -> Reader:
        def read(minute: int) -> tuple[dict, list[dict]]:
            st = world.state(anchor, minute)
            shelf = [{"product_id": str(e.item.item_id), "sales": e.sales, "price": e.price_fen / 100,
                      "room_id": str(anchor.live_id)} for e in world.shelf(anchor, minute)]
            snap = {"status": {1: "live", 2: "ended"}.get(st.room_status, "offline"),
                    "viewers_now": st.join_count or None, "viewers_total": st.view_count or None,
                    "product_count": st.shelf_size}
            return snap, shelf
        return read

    return _first_sessions(world, world.anchors, 5, reader)


def _kuaishou(world: KsWorld) -> Iterator[tuple[Any, Session, Reader, dict]]:
    def reader(room: Any, ids: dict[str, Any]) -> Reader:
        def read(minute: int) -> tuple[dict, list[dict]]:
            st = world.live_now(room, minute)
            shelf = []
            for item in world.on_sale(room, minute):
                price, volume = world.item_now(room, item, minute)
                shelf.append({"product_id": str(item.kwai_item_id), "sales": volume, "price": price / 100,
                              "room_id": str(room.user.user_id)})
            snap = {"status": "live" if st.living else "offline", "viewers_now": st.watching or None,
                    "session_id": ids["session_id"] if st.living else None}
            return snap, shelf
        return read

    return _first_sessions(world, world.rooms, 3, reader)


def sample(platform: str, session: Session, read: Callable[[int], tuple[dict, list[dict]]], ids: dict[str, Any],
           cadence: int, rng: random.Random) -> Sampled:
    """Sample one session every ``cadence`` seconds from its start to the first sample after its end."""
    out = Sampled(platform, ids["room_id"], {"room_id": ids["room_id"], "streamer_id": ids.get("streamer_id"),
                                             "started_at": ids["started_at"]})
    t = session.start * 60 + rng.random() * cadence
    end = session.end * 60
    while True:
        minute = int(t // 60)
        snap, shelf = read(minute)
        at = _at(t)
        out.snaps.append({"platform": platform, "room_id": ids["room_id"], "captured_at": at,
                          **{k: v for k, v in snap.items() if v is not None}})
        if snap["status"] == "live":
            out.shelf += [{"platform": platform, "captured_at": at, "sales_is_lower_bound": False, **p}
                          for p in shelf]
        if t >= end:
            break
        t += cadence
    out.truth = session.truth(session.end + 1, {k: v for k, v in ids.items() if k != "started_at"})
    return out


@dataclass
class Scores:
    errors: list[float] = field(default_factory=list)
    errors_all: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)
    presentations: int = 0
    found: int = 0
    sessions: int = 0
    by_platform: dict[str, list[float]] = field(default_factory=dict)


def score(sampled: Sampled, cadence: int, scores: Scores) -> None:
    truth = sampled.truth
    built = sessions_of_room(sampled.platform, sampled.room_id, sampled.snaps, sampled.shelf, sampled.room,
                             now=sampled.snaps[-1]["captured_at"], computed_at=datetime.now(UTC))
    start = truth["started_at"]
    mine = min(built, key=lambda s: abs(s.first_seen_live_at.timestamp() - start), default=None)
    if mine is None or mine.gmv_estimate is None:
        return
    hidden = set(truth.get("sales_hidden") or ())
    visible = sum(v["gmv"] for pid, v in truth["products"].items() if pid not in hidden)
    if visible <= 0 or truth["gmv"] <= 0:
        return
    scores.sessions += 1
    error = abs(mine.gmv_estimate - visible) / visible
    scores.errors.append(error)
    scores.by_platform.setdefault(sampled.platform, []).append(error)
    scores.errors_all.append(abs(mine.gmv_estimate - truth["gmv"]) / truth["gmv"])
    scores.covered.append(mine.gmv_low is not None and mine.gmv_high is not None
                          and mine.gmv_low - 0.01 <= visible <= mine.gmv_high + 0.01)
    if sampled.platform != "douyin":  # Taobao's and Kuaishou's answers name no presented product
        return
    for p in truth["presented"]:
        to = p["to"] if p["to"] is not None else truth["ended_at"] or start
        if to - p["from"] <= 2 * cadence:
            continue
        scores.presentations += 1
        if any(q.product_id == p["product_id"] and abs(q.from_.timestamp() - p["from"]) <= cadence
               for q in mine.products_presented):
            scores.found += 1


def accuracy(streamers: int, seed: int = 11, per_platform: int = 40) -> dict[int, Scores]:
    worlds: list[tuple[str, Any, Callable[[Any], Iterator[Any]]]] = [
        ("douyin", DouyinWorld(seed, streamers), _douyin),
        ("taobao", TaoWorld(seed, streamers), _taobao),
        ("kuaishou", KsWorld(seed, streamers), _kuaishou),
    ]
    results = {c: Scores() for c in CADENCES}
    for platform, world, sessions in worlds:
        picked = [x for _, x in zip(range(per_platform), sessions(world), strict=False)]
        for cadence in CADENCES:
            rng = random.Random(f"{seed}:{platform}:{cadence}")
            for _, session, read, ids in picked:
                score(sample(platform, session, read, ids, cadence, rng), cadence, results[cadence])
    return results


# -- throughput -----------------------------------------------------------------------------------------------
def _time_of(record: Any) -> datetime:
    return getattr(record, "captured_at", None) or record.fetched_at


def throughput(var_dir: Path, rooms: int = 60, minutes: int = 60) -> dict[str, float]:
    """Builder and store rates on one backlog (module docstring): ``warm`` (the builder already
    built the sessions' first minutes, as when it runs beside the fleet) and ``cold`` (a builder
    meeting every room for the first time reads its window from MongoDB once)."""
    from crawlers.redis.connection import get_redis
    from crawlers.services.lifecycle import owned_services
    from crawlers.sessions.service import SessionBuilder
    from pipelines.p300_store import close_store, open_store
    from tests.plugins.store import run_store, store_and_feeds
    from tests.test_integration_sessions import T0, _backlog

    records = _backlog(rooms, minutes)
    split = T0 + timedelta(minutes=rooms + 5)  # every room's first five minutes (rooms start a minute apart)
    head = [r for r in records if _time_of(r) < split]
    tail = [r for r in records if _time_of(r) >= split]
    out: dict[str, float] = {}
    with owned_services(var_dir / "sessions-services") as services:
        def store(batch: list[Any], db: str, prefix: str) -> float:
            stages = store_and_feeds(var_dir, "benchsessions", LIVEFLEET_MONGO_URI=services.mongo_uri,
                                     LIVEFLEET_MONGO_DB=db, LIVEFLEET_REDIS_URL=services.redis_url,
                                     LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_STORE_BATCH=500,
                                     LIVEFLEET_STORE_FLUSH_SECONDS=0.05)
            began = time.perf_counter()
            failed = [r for r in run_store(stages, batch) if isinstance(r, BaseException)]
            if failed:
                raise RuntimeError(f"the store refused {len(failed)} records: {failed[0]!r}")
            return time.perf_counter() - began

        def drain(db_name: str, prefix: str,
                  builder: SessionBuilder | None = None) -> tuple[SessionBuilder, float, int]:
            client, db = open_store(services.mongo_uri, db_name)
            builder = builder or SessionBuilder(db, get_redis(services.redis_url), prefix, consumer="bench")
            before = builder.stats.messages
            began = time.perf_counter()
            builder.drain(count=10000)
            elapsed = time.perf_counter() - began
            close_store(client) if builder is None else None
            return builder, elapsed, builder.stats.messages - before

        # Warm: the first minutes stored and built (untimed), then the rest stored, then drained.
        store(head, "bench_sessions_warm", "bsw")
        builder, _, _ = drain("bench_sessions_warm", "bsw")
        store_s = store(tail, "bench_sessions_warm", "bsw")
        _, build_s, handled = drain("bench_sessions_warm", "bsw", builder)
        out["warm_builder_per_s"] = handled / build_s
        out["store_per_s"] = len(tail) / store_s
        out["warm_snapshots"] = handled
        # Cold: everything stored first, then a new builder.
        store(records, "bench_sessions_cold", "bsc")
        _, cold_s, cold_n = drain("bench_sessions_cold", "bsc")
        out["cold_builder_per_s"] = cold_n / cold_s
    return out


def main(line: Callable[..., None], say: Callable[[str], None], *, streamers: int, var_dir: Path,
         quick: bool = False) -> dict[str, float]:
    """Measure and print; returns the figures with targets."""
    say(f"sessions: sampling sandbox sessions at {', '.join(f'{c}s' for c in CADENCES)}")
    began = time.perf_counter()
    results = accuracy(min(streamers, 400), per_platform=15 if quick else 40)
    say(f"sessions: accuracy measured in {time.perf_counter() - began:.1f}s")
    figures: dict[str, float] = {}
    r60 = results[60]
    figures["gmv_estimate_error_60s"] = statistics.median(r60.errors)
    line("gmv_estimate_error_60s", round(figures["gmv_estimate_error_60s"], 4))
    for cadence in CADENCES:
        if cadence != 60:
            line(f"gmv_estimate_error_{cadence}s", round(statistics.median(results[cadence].errors), 4), 1)
    for cadence in CADENCES:
        line(f"gmv_estimate_error_{cadence}s_all_products", round(statistics.median(results[cadence].errors_all), 4), 1)
    for platform, errors in sorted(r60.by_platform.items()):
        line(f"gmv_estimate_error_60s_{platform}", f"{statistics.median(errors):.4f} ({len(errors)} sessions)", 1)
    figures["gmv_bounds_coverage"] = sum(r60.covered) / len(r60.covered)
    line("gmv_bounds_coverage", round(figures["gmv_bounds_coverage"], 3))
    for cadence in (30, 300):
        covered = results[cadence].covered
        line(f"gmv_bounds_coverage_{cadence}s", round(sum(covered) / len(covered), 3), 1)
    figures["explanation_timeline_recall"] = r60.found / max(1, r60.presentations)
    line("explanation_timeline_recall", round(figures["explanation_timeline_recall"], 3))
    line("explanation_presentations_60s",
         f"{r60.found} of {r60.presentations} (Douyin; the others' answers show none)", 1)
    line("sessions_compared_60s", r60.sessions, 1)
    say("sessions: builder throughput on a backlog written through the store and feeds")
    with tempfile.TemporaryDirectory(dir=var_dir) as tmp:
        rates = throughput(Path(tmp), rooms=20 if quick else 60, minutes=30 if quick else 90)
    figures["session_builder_vs_store"] = rates["warm_builder_per_s"] / rates["store_per_s"]
    line("session_builder_vs_store", round(figures["session_builder_vs_store"], 2))
    line("session_builder_snapshots_per_s", round(rates["warm_builder_per_s"]), 1)
    line("store_records_per_s_same_backlog", round(rates["store_per_s"]), 1)
    line("session_builder_backlog_snapshots", int(rates["warm_snapshots"]), 1)
    line("session_builder_cold_snapshots_per_s", round(rates["cold_builder_per_s"]), 1)
    return figures


if __name__ == "__main__":  # pragma: no cover - python -m bench.sessions
    def _line(name: str, value: object, indent: int = 0) -> None:
        print(f"{'  ' * indent}{name}: {value}", flush=True)

    main(_line, lambda text: print(f"# {text}", file=sys.stderr, flush=True), streamers=300,
         var_dir=Path(tempfile.gettempdir()), quick="--quick" in sys.argv)

