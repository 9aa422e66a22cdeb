"""``GET /metrics``: the fleet's state for Prometheus, read from Redis at every scrape.

:class:`FleetCollector` is a ``prometheus_client`` custom collector: each scrape reads
what ``livefleet status`` reads (:func:`crawlers.health.status.collect_status`), the
monitors (:class:`crawlers.monitor.registry.Registry`) and the feeds' consumer groups
(:func:`crawlers.feeds.streams.feed_info`). Nothing is counted in the API process itself,
and no thread runs between scrapes: every API process serves the whole fleet's figures,
the same ones, so a restart or a second API process never loses or splits a count.

The counters are the fleet-wide sums the workers' heartbeats flush into Redis
(``crawlers/health/heartbeat.py``); they only grow while the fleet's Redis keeps its
state, and Prometheus' ``rate()`` takes a lost state as a counter reset.

Labels stay few (``docs/metrics.md`` has the table): ``platform`` (the known platforms),
``outcome``, ``state``, ``collection``, ``feed`` (the feeds' collections), ``group`` (at most
:data:`MAX_GROUPS` per feed) and ``identity``: an egress identity's id (``direct`` or
``px-<digest of scheme, host and port>``, never its proxy URL or credentials), at most
:data:`MAX_IDENTITIES` per platform. No worker id and no room id is ever a label.

The route needs the API's bearer token (Prometheus: ``authorization: credentials:``) and
answers ``503`` with one line of text when Redis does not answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from crawlers.feeds.streams import feed_info
from crawlers.health.heartbeat import server_time
from crawlers.health.status import collect_status
from crawlers.monitor.registry import Registry
from crawlers.redis.keys import FleetKeys
from spiders.platforms import PLATFORMS

#: Every metric's name begins with ``<NAMESPACE>_`` (what prometheus_client's ``namespace=`` does).
NAMESPACE = "livefleet"


def _name(name: str) -> str:
    return f"{NAMESPACE}_{name}"


#: Egress identities exported one by one per platform: those with the most requests. The others
#: are added up under ``identity="other"``, so a fleet of thousands of proxies stays a few
#: hundred series (``livefleet_egress_identities`` still counts every identity by state).
MAX_IDENTITIES = 50
#: Consumer groups exported per feed (by name order); ``livefleet_feed_groups`` counts them all.
MAX_GROUPS = 20

#: Page attempt outcomes (``crawlers.health.heartbeat.summarize``) and the ``outcome`` label of each.
_OUTCOMES = {"pages": "parsed", "blocked": "blocked", "retryable": "retryable", "gone": "gone",
             "unparsable": "unparsable", "failed": "failed"}
#: Counters of the store (Scrapy stats ``livefleet/store/<name>``, flushed fleet-wide) and their metric.
_STORE_COUNTERS = {
    "spooled": (_name("store_spooled_records"), "Records spooled to a worker's disk while MongoDB was down."),
    "replayed": (_name("store_replayed_records"), "Spooled records a worker wrote back to MongoDB."),
    "spool_failed": (_name("store_spool_failed_records"),
                     "Records neither stored nor spooled (the spool's disk refused them); their requests go "
                     "back to the queue."),
    "rejected": (_name("store_rejected_records"),
                 "Records MongoDB refused for good, kept in the spool's rejected/ folder."),
    "replay_errors": (_name("store_replay_errors"), "Spool files whose replay failed (kept, tried again)."),
}
_WRITTEN = "livefleet/store/written/"


class FleetCollector:
    """The fleet's metrics, read from Redis under ``prefix`` when collected (see the module docstring).

    Raises :class:`redis.RedisError` from :meth:`collect` when Redis does not answer."""

    def __init__(self, server: redis.Redis, prefix: str, *, interval: float) -> None:
        self.server = server
        self.prefix = prefix
        self.interval = interval
        self.registry = Registry(server, prefix)

    def collect(self) -> Iterator[Metric]:
        fleet = collect_status(self.server, self.prefix, interval=self.interval)
        platforms = {info.spider: name for name, info in PLATFORMS.items()}
        by_platform = {platforms[spider]: found for spider, found in fleet["platforms"].items() if spider in platforms}
        yield from _fleet(fleet, by_platform, platforms)
        yield from _store(by_platform)
        yield from _identities(fleet["identities"])
        yield from self._monitors()
        yield from self._feeds()

    def _monitors(self) -> Iterator[Metric]:
        ticks = CounterMetricFamily(_name("monitor_ticks"), "Monitor ticks claimed (room checks sent), "
                                    "over every monitor of the platform.", labels=["platform"])
        late = CounterMetricFamily(_name("monitor_late_ticks"), "Monitor ticks claimed late: more than a "
                                   "quarter interval after due, or due while the previous one was unanswered.",
                                   labels=["platform"])
        count = GaugeMetricFamily(_name("monitors"), "Monitors by state (active, stopped, expired).",
                                  labels=["platform", "state"])
        overdue = GaugeMetricFamily(_name("monitor_overdue_seconds"), "How long the most overdue monitor tick "
                                    "of the platform has been waiting for a worker to claim it (0: none overdue).",
                                    labels=["platform"])
        sums: dict[str, list[int]] = {name: [0, 0] for name in PLATFORMS}
        states: dict[tuple[str, str], int] = defaultdict(int)
        for monitor in self.registry.list():
            if monitor.platform in sums:
                sums[monitor.platform][0] += monitor.ticks
                sums[monitor.platform][1] += monitor.late
                states[(monitor.platform, monitor.state)] += 1
        keys = FleetKeys(self.prefix)
        with self.server.pipeline(transaction=False) as pipe:
            for name in PLATFORMS:
                pipe.zrange(keys.monitor_due(name), 0, 0, withscores=True)
            oldest = pipe.execute()
        now = server_time(self.server)
        for name, first in zip(PLATFORMS, oldest, strict=True):
            ticks.add_metric([name], sums[name][0])
            late.add_metric([name], sums[name][1])
            for state in ("active", "stopped", "expired"):
                count.add_metric([name, state], states[(name, state)])
            overdue.add_metric([name], round(max(0.0, now - first[0][1] / 1000), 3) if first else 0.0)
        yield from (ticks, late, count, overdue)

    def _feeds(self) -> Iterator[Metric]:
        length = GaugeMetricFamily(_name("feed_messages"), "Messages the feed's stream holds (trimmed to its "
                                   "maximum length).", labels=["feed"])
        groups = GaugeMetricFamily(_name("feed_groups"), "Consumer groups of the feed (all of them; at most "
                                   f"{MAX_GROUPS} are exported one by one).", labels=["feed"])
        pending = GaugeMetricFamily(_name("feed_group_pending_messages"), "Messages handed to a consumer of "
                                    "the group and not acknowledged yet.", labels=["feed", "group"])
        lag = GaugeMetricFamily(_name("feed_group_lag_messages"), "Messages not yet delivered to the group, "
                                "as Redis reports it (Redis 7 and later; absent on older servers).",
                                labels=["feed", "group"])
        age = GaugeMetricFamily(_name("feed_group_lag_seconds"), "Age of the oldest message not yet delivered "
                                "to the group (0: it has been handed everything).", labels=["feed", "group"])
        keys = FleetKeys(self.prefix)
        now = server_time(self.server)
        for feed, info in feed_info(self.server, self.prefix).items():
            length.add_metric([feed], info["length"])
            groups.add_metric([feed], len(info["groups"]))
            for group in sorted(info["groups"], key=lambda g: g["name"])[:MAX_GROUPS]:
                labels = [feed, group["name"]]
                pending.add_metric(labels, group["pending"])
                if group.get("lag") is not None:
                    lag.add_metric(labels, int(group["lag"]))
                # Stream ids begin with their epoch milliseconds: the first one after what the group
                # was last handed tells how old the oldest undelivered message is (one XRANGE step).
                following = self.server.xrange(keys.feed(feed), f"({group['last_delivered']}", "+", count=1)
                waited = now - _id_ms(following[0][0]) / 1000 if following else 0.0
                age.add_metric(labels, round(max(0.0, waited), 3))
        yield from (length, groups, pending, lag, age)


def _id_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


def _fleet(fleet: dict[str, Any], by_platform: dict[str, dict[str, Any]],
           platforms: dict[str, str]) -> Iterator[Metric]:
    """Items, page attempts, queue, leases, dead letters, seeds, workers, lost state."""
    def gauge(name: str, doc: str, read: Callable[[dict[str, Any]], float]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["platform"])
        for platform, found in by_platform.items():
            family.add_metric([platform], read(found))
        return family

    items = CounterMetricFamily(_name("items"), "Items scraped (Scrapy's item_scraped_count), fleet-wide.",
                                labels=["platform"])
    dropped = CounterMetricFamily(_name("items_dropped"), "Items dropped by a pipeline (quarantined or "
                                  "invalid).", labels=["platform"])
    attempts = CounterMetricFamily(_name("page_attempts"), "Page attempts by outcome: parsed, blocked "
                                   "(captcha or block page), retryable, gone, unparsable, failed (transport "
                                   "error after the retries). Errors = retryable + unparsable + failed.",
                                   labels=["platform", "outcome"])
    for platform, found in by_platform.items():
        counters = found["counters"]
        items.add_metric([platform], counters["items"])
        dropped.add_metric([platform], counters["dropped"])
        for key, outcome in _OUTCOMES.items():
            attempts.add_metric([platform, outcome], counters[key])
    yield from (items, dropped, attempts)
    yield gauge(_name("queue_requests"), "Requests waiting in the platform's queue.",
                lambda p: p["queue"]["total"])
    yield gauge(_name("leases"), "Requests leased to workers and not yet acknowledged.", lambda p: p["leased"])
    yield gauge(_name("leases_expired"), "Leases past their deadline (their worker died or hangs; they go "
                "back to the queue).", lambda p: p["leases_expired"])
    yield gauge(_name("dead_letters"), "Requests in the dead-letter list (failed every attempt).",
                lambda p: p["dead_letters"])
    yield gauge(_name("seeds"), "Seeds waiting to be turned into requests.", lambda p: p["seeds"])
    yield gauge(_name("seeds_rejected"), "Seeds refused (kept aside, not crawled).", lambda p: p["seeds_rejected"])
    live = GaugeMetricFamily(_name("workers_live"), "Workers whose heartbeat is current.", labels=["platform"])
    counted = defaultdict(int, {name: 0 for name in by_platform})
    for worker in fleet["workers"]:
        if worker.get("spider") in platforms:
            counted[platforms[worker["spider"]]] += 1
    for platform, number in counted.items():
        live.add_metric([platform], number)
    yield live
    yield from _spool(fleet["workers"])
    yield GaugeMetricFamily(_name("workers_stale"), "Workers seen in the last hour whose heartbeat stopped "
                            "(killed, crashed, hung, cut off).", value=fleet["stale"]["count"])
    yield CounterMetricFamily(_name("state_lost"), "Times a process found the fleet's state gone from Redis "
                              "or replaced (a Redis restarted without its data).",
                              value=fleet["state"]["lost_count"])


def _spool(workers: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """What waits in the store spools, from the live workers' heartbeats: each (host, directory) once,
    since the workers of one machine and var dir share their spool."""
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    for worker in workers:
        spool = worker.get("spool") or {}
        if spool.get("files") is not None and spool.get("bytes") is not None:
            sizes[(str(worker.get("host")), str(spool.get("dir")))] = (int(spool["files"]), int(spool["bytes"]))
    yield GaugeMetricFamily(_name("store_spool_files"), "Files waiting in the store spools of the live workers' "
                            "machines (records kept while MongoDB was down, not yet written back).",
                            value=sum(files for files, _ in sizes.values()))
    yield GaugeMetricFamily(_name("store_spool_bytes"), "Bytes waiting in those spool files.",
                            value=sum(size for _, size in sizes.values()))


def _store(by_platform: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """The store's counters, from the Scrapy stats the workers flushed (``livefleet/store/...``)."""
    written = CounterMetricFamily(_name("store_written_records"), "Records written to MongoDB, by collection.",
                                  labels=["platform", "collection"])
    batches = SummaryMetricFamily(_name("store_batch_seconds"), "Time the store took to write a batch to "
                                  "MongoDB, retries included (mean = sum / count).", labels=["platform"])
    counters = {stat: CounterMetricFamily(name, doc, labels=["platform"]) for stat, (name, doc) in
                _STORE_COUNTERS.items()}
    for platform, found in by_platform.items():
        stats = found["stats"]
        for name, number in sorted(stats.items()):
            collection = name[len(_WRITTEN):]
            if name.startswith(_WRITTEN) and collection.replace("_", "").isalpha():
                written.add_metric([platform, collection], number)
        batches.add_metric([platform], count_value=int(stats.get("livefleet/store/batches", 0)),
                           sum_value=float(stats.get("livefleet/store/batch_seconds", 0.0)))
        for stat, family in counters.items():
            family.add_metric([platform], stats.get(f"livefleet/store/{stat}", 0))
    yield from (written, batches, *counters.values())


def _identities(rows: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """Egress identities' outcomes and rests, the busiest :data:`MAX_IDENTITIES` per platform one by one."""
    outcomes = CounterMetricFamily(_name("egress_requests"), "Requests through an egress identity by outcome: "
                                   "ok, block, error (no answer). identity=\"other\" adds up the identities "
                                   "beyond the busiest ones.", labels=["platform", "identity", "outcome"])
    rests = CounterMetricFamily(_name("egress_rests"), "Rests an egress identity began (blocked or failing "
                                "too often).", labels=["platform", "identity"])
    states = GaugeMetricFamily(_name("egress_identities"), "Egress identities by health state (ok, cooling, "
                               "probing, retired), every one of them counted.", labels=["platform", "state"])
    per_platform: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["platform"] in PLATFORMS:
            per_platform[row["platform"]].append(row)
    for platform, found in per_platform.items():
        found.sort(key=lambda r: (-r["requests"], r["identity"]))
        shown, rest = found[:MAX_IDENTITIES], found[MAX_IDENTITIES:]
        if rest:
            shown.append({"identity": "other", **{k: sum(r[k] for r in rest)
                                                  for k in ("ok", "blocks", "errors", "rests_total")}})
        for row in shown:
            for outcome, key in (("ok", "ok"), ("block", "blocks"), ("error", "errors")):
                outcomes.add_metric([platform, row["identity"], outcome], row[key])
            rests.add_metric([platform, row["identity"]], row["rests_total"])
        for state in ("ok", "cooling", "probing", "retired"):
            states.add_metric([platform, state], sum(1 for r in found if r["state"] == state))
    yield from (outcomes, rests, states)


def metrics_route(app: FastAPI, context: Any, authorized: Callable[..., None]) -> None:
    """Add ``GET /metrics`` to ``app``: the fleet under ``context.redis``/``context.prefix``, behind
    ``authorized`` (the API's bearer-token dependency)."""
    registry = CollectorRegistry(auto_describe=False)  # nothing is read from Redis until a scrape
    registry.register(FleetCollector(context.redis, context.prefix, interval=context.heartbeat_seconds))

    @app.get("/metrics", tags=["health"], dependencies=[Depends(authorized)], response_class=PlainTextResponse,
             summary="The fleet's metrics in Prometheus' text format (docs/metrics.md)")
    def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        try:
            body = encode(registry)
        except redis.RedisError as exc:
            reason = " ".join(str(exc).split())[:200]
            return PlainTextResponse(f"Redis does not answer: {reason}\n",
                                     status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(body, media_type=content_type)
