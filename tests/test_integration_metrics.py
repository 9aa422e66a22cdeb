"""``GET /metrics`` (crawlers/api/metrics.py) on a hand-built fleet in a real Redis, served by a real
uvicorn; the Grafana dashboard and the Prometheus rules checked against what it exposes."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from crawlers.api.app import ApiContext
from crawlers.api.metrics import MAX_IDENTITIES, FleetCollector
from crawlers.download.egress_health import EgressHealth
from crawlers.health.heartbeat import StatsFlusher, items_minute_key, server_time
from crawlers.monitor.registry import Registry
from crawlers.redis.keys import FleetKeys, SpiderKeys
from models.entities import RoomSnapshot
from tests.plugins.api import Api, free_port, serve_api
from tests.plugins.store import run_store, store_pipeline

pytestmark = pytest.mark.integration

TOKEN = "metrics-token"
ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "livefleet-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOUYIN_ROOM = "https://live.douyin.com/604946797621"
BAND = 2**32
#: Proxies of the hand-built fleet: with the direct identity, four more than are exported one by one.
PROXIES = MAX_IDENTITIES + 3


@pytest.fixture
def fleet(redis_client: redis.Redis) -> str:
    """Queues, leases, dead letters, seeds, flushed stats (the store's too), workers, egress identities,
    monitors and feed consumer groups, as the fleet's components write them."""
    prefix = f"mx{uuid.uuid4().hex[:6]}"
    client = redis_client
    now = server_time(client)
    now_ms = int(now * 1000)
    bili, douyin = SpiderKeys(prefix, "bilibili"), SpiderKeys(prefix, "douyin")
    client.zadd(bili.requests, {f"b{n}": -priority * BAND + n for n, priority in enumerate([10, 10, 0, 0, 0, -5])})
    client.zadd(douyin.requests, {f"d{n}": n for n in range(4)})
    client.zadd(bili.leases, {"1": now_ms + 60_000, "2": now_ms + 30_000, "3": now_ms - 5_000})
    client.rpush(bili.dead, "{}", "{}")
    client.rpush(douyin.seeds, "{}", "{}", "{}")
    client.rpush(f"{douyin.seeds}:rejected", "{}")
    client.hset(bili.stats, mapping={
        "item_scraped_count": 250, "item_dropped_count": 4,
        "livefleet/spider/pages/bilibili/room": 60, "livefleet/spider/pages/bilibili/list": 30,
        "livefleet/spider/blocked/bilibili": 5, "livefleet/spider/retryable/bilibili": 2,
        "livefleet/spider/failed/bilibili": 1, "livefleet/spider/gone/bilibili": 2,
        "livefleet/store/written/rooms": 40, "livefleet/store/written/room_snapshots": 200,
        "livefleet/store/spooled": 12, "livefleet/store/replayed": 10, "livefleet/store/spool_failed": 1,
        "livefleet/store/batch_seconds": "3.5", "livefleet/store/batches": 7})
    client.set(items_minute_key(bili, int(now // 60) - 1), 30)
    workers = FleetKeys(prefix)
    spool = {"dir": "/srv/var/spool", "files": 3, "bytes": 3000}
    beat = {"worker": "a:1:bilibili", "host": "a", "spider": "bilibili", "interval": 5.0, "beat_at": now - 1,
            "spool": spool}
    client.set(workers.worker("a:1:bilibili"), json.dumps(beat), px=15_000)
    # a second worker of machine a shares its spool (counted once); machine b has its own
    client.set(workers.worker("a:2:bilibili"), json.dumps({**beat, "worker": "a:2:bilibili"}), px=15_000)
    client.set(workers.worker("b:4:bilibili"), json.dumps({**beat, "worker": "b:4:bilibili", "host": "b",
                                                          "spool": {**spool, "files": 1, "bytes": 500}}), px=15_000)
    client.zadd(workers.workers, {"a:1:bilibili": now - 1, "a:2:bilibili": now - 1, "b:4:bilibili": now - 1,
                                  "c:3:douyin": now - 60})  # c: stale (no heartbeat)
    health = EgressHealth(client, prefix)
    health.record("bilibili", "direct", "direct", "ok", count=1000, latency_ms=5000)
    for n in range(PROXIES):  # px-0000 the least busy: it and the next three are added up under "other"
        health.record("bilibili", f"px-{n:04d}", f"http://10.9.8.{n}:3128", "ok", count=n + 1, latency_ms=10.0)
    health.record("bilibili", f"px-{PROXIES - 1:04d}", f"http://10.9.8.{PROXIES - 1}:3128", "block", count=4,
                  error="captcha")  # three strikes: it rests
    registry = Registry(client, prefix)
    first, second = (registry.add("douyin", DOUYIN_ROOM, "30s", "6h") for _ in range(2))
    client.hset(workers.monitor_state(first.id), mapping={"ticks": 10, "late": 2})
    client.hset(workers.monitor_state(second.id), mapping={"ticks": 5, "late": 1})
    registry.stop(second.id)
    client.zadd(workers.monitor_due("douyin"), {first.id: now_ms - 90_000})  # 90 s overdue
    feed = workers.feed("rooms")
    for n in range(5):  # 50, 40, 30, 20 and 10 seconds old
        client.xadd(feed, {"doc": "{}"}, id=f"{now_ms - 50_000 + n * 10_000}-0")
    client.xgroup_create(feed, "ranking", id="0")
    client.xreadgroup("ranking", "r1", {feed: ">"}, count=2)  # handed two, acknowledged none
    client.xgroup_create(feed, "archive", id="0")
    handed = client.xreadgroup("archive", "a1", {feed: ">"})
    client.xack(feed, "archive", *[entry_id for entry_id, _ in handed[0][1]])
    return prefix


@pytest.fixture
def api(redis_client: redis.Redis, mongo_db: Any, tmp_path: Path, fleet: str) -> Iterator[Api]:
    context = ApiContext(token=TOKEN, redis=redis_client, db=mongo_db, prefix=fleet, campaigns_dir=tmp_path)
    with serve_api(context) as client:
        yield client


def _get(api: Api, token: str | None = TOKEN, accept: str | None = None) -> tuple[int, str, str]:
    """``GET /metrics``: status, content type and body text."""
    request = urllib.request.Request(api.base + "/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if accept is not None:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read().decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (sample name, labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _exposition(server: redis.Redis, prefix: str) -> str:
    """What the collector exposes, without HTTP (the route serves this very text)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(server, prefix, interval=5.0))
    return generate_latest(registry).decode()


def test_metrics_serve_the_fleet_state_behind_the_token(api, redis_client, fleet):
    assert _get(api, token=None)[0] == 401 and _get(api, token="wrong")[0] == 401
    before = {key: redis_client.dump(key) for key in redis_client.keys("*")}
    code, content_type, text = _get(api)
    assert code == 200 and content_type.startswith("text/plain") and "version=0.0.4" in content_type
    assert {key: redis_client.dump(key) for key in redis_client.keys("*")} == before  # a scrape writes nothing
    got = _samples(text)

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    bili = {"platform": "bilibili"}
    assert value("livefleet_items_total", **bili) == 250 and value("livefleet_items_dropped_total", **bili) == 4
    attempts = {o: value("livefleet_page_attempts_total", **bili, outcome=o)
                for o in ("parsed", "blocked", "retryable", "gone", "unparsable", "failed")}
    assert attempts == {"parsed": 90, "blocked": 5, "retryable": 2, "gone": 2, "unparsable": 0, "failed": 1}
    assert value("livefleet_items_total", platform="kuaishou") == 0  # every platform, crawling or not
    assert (value("livefleet_queue_requests", **bili), value("livefleet_queue_requests", platform="douyin")) == (6, 4)
    assert (value("livefleet_leases", **bili), value("livefleet_leases_expired", **bili)) == (3, 1)
    assert value("livefleet_dead_letters", **bili) == 2
    assert (value("livefleet_seeds", platform="douyin"), value("livefleet_seeds_rejected", platform="douyin")) == (3, 1)
    assert value("livefleet_workers_live", **bili) == 3 and value("livefleet_workers_live", platform="douyin") == 0
    assert (value("livefleet_store_spool_files"), value("livefleet_store_spool_bytes")) == (4, 3500)
    assert value("livefleet_workers_stale") == 1 and value("livefleet_state_lost_total") == 0
    # the store: what the workers flushed
    assert value("livefleet_store_written_records_total", **bili, collection="room_snapshots") == 200
    assert value("livefleet_store_written_records_total", **bili, collection="rooms") == 40
    assert (value("livefleet_store_batch_seconds_count", **bili), value("livefleet_store_batch_seconds_sum", **bili)) \
        == (7, 3.5)
    assert (value("livefleet_store_spooled_records_total", **bili), value("livefleet_store_replayed_records_total",
                                                                          **bili)) == (12, 10)
    assert value("livefleet_store_spool_failed_records_total", **bili) == 1
    # egress: the busiest identities one by one, the rest added up, never a proxy's address
    identities = {dict(labels)["identity"] for (name, labels) in got
                  if name == "livefleet_egress_requests_total" and dict(labels)["platform"] == "bilibili"}
    assert len(identities) == MAX_IDENTITIES + 1 and "other" in identities and "direct" in identities
    assert not {"px-0000", "px-0001", "px-0002", "px-0003"} & identities and "px-0004" in identities
    assert value("livefleet_egress_requests_total", **bili, identity="other", outcome="ok") == 1 + 2 + 3 + 4
    assert value("livefleet_egress_requests_total", **bili, identity="direct", outcome="ok") == 1000
    busiest = f"px-{PROXIES - 1:04d}"
    assert value("livefleet_egress_requests_total", **bili, identity=busiest, outcome="block") == 4
    assert value("livefleet_egress_rests_total", **bili, identity=busiest) == 1
    assert value("livefleet_egress_identities", **bili, state="cooling") == 1
    assert value("livefleet_egress_identities", **bili, state="ok") == 1 + PROXIES - 1  # every one counted
    assert "10.9.8." not in text and "http://" not in text
    # monitors: ticks and late ticks added up over the platform's monitors, the most overdue tick
    douyin = {"platform": "douyin"}
    assert (value("livefleet_monitor_ticks_total", **douyin), value("livefleet_monitor_late_ticks_total", **douyin)) \
        == (15, 3)
    assert value("livefleet_monitors", **douyin, state="active") == 1
    assert value("livefleet_monitors", **douyin, state="stopped") == 1
    assert 90 <= value("livefleet_monitor_overdue_seconds", **douyin) < 120
    # feeds: per consumer group, pending and how old the oldest undelivered message is
    ranking, archive = {"feed": "rooms", "group": "ranking"}, {"feed": "rooms", "group": "archive"}
    assert value("livefleet_feed_messages", feed="rooms") == 5 and value("livefleet_feed_groups", feed="rooms") == 2
    assert value("livefleet_feed_group_pending_messages", **ranking) == 2
    assert value("livefleet_feed_group_pending_messages", **archive) == 0
    assert 30 <= value("livefleet_feed_group_lag_seconds", **ranking) < 60
    assert value("livefleet_feed_group_lag_seconds", **archive) == 0
    # names, help and labels
    families = list(text_string_to_metric_families(text))
    assert all(f.name.startswith("livefleet_") and f.documentation for f in families)
    assert all(s.name.endswith("_total") for f in families if f.type == "counter" for s in f.samples)
    labels = {name for f in families for s in f.samples for name in s.labels}
    assert labels <= {"platform", "outcome", "state", "collection", "identity", "feed", "group", "quantile"}
    # Prometheus asks for OpenMetrics when it can: the same figures in that format
    code, content_type, text = _get(api, accept="application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert code == 200 and content_type.startswith("application/openmetrics-text") and text.endswith("# EOF\n")
    assert re.search(r'^livefleet_items_total\{platform="bilibili"\} 250(\.0)?$', text, re.M)


def test_metrics_answer_503_in_one_line_when_redis_does_not_answer(mongo_db, tmp_path):
    gone = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=2)
    context = ApiContext(token=TOKEN, redis=gone, db=mongo_db, prefix="mxdown", campaigns_dir=tmp_path)
    with serve_api(context) as api:
        assert _get(api, token=None)[0] == 401
        code, content_type, text = _get(api)
    assert code == 503 and content_type.startswith("text/plain")
    assert text.startswith("Redis does not answer: ") and text.count("\n") == 1 and text.endswith("\n")
    gone.close()


def test_store_batch_times_reach_metrics_through_the_heartbeat_flush(tmp_path, mongo_server, mongo_db, redis_client):
    """The store pipeline records its batches' time; a worker's flush adds it to the fleet's stats."""
    pipeline = store_pipeline(tmp_path, "bilibili", LIVEFLEET_MONGO_URI=mongo_server.url,
                              LIVEFLEET_MONGO_DB=mongo_db.name, LIVEFLEET_STORE_BATCH=50,
                              LIVEFLEET_STORE_FLUSH_SECONDS=0.05)
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    run_store(pipeline, [RoomSnapshot(platform="bilibili", room_id=str(n % 7), captured_at=at + timedelta(seconds=n),
                                      status="live", viewers_now=n) for n in range(120)])
    stats = pipeline.crawler.stats.get_stats()
    assert stats["livefleet/store/batches"] >= 3 and stats["livefleet/store/batch_seconds"] > 0
    prefix = f"mx{uuid.uuid4().hex[:6]}"
    StatsFlusher(redis_client, SpiderKeys(prefix, "bilibili"), "w1").flush(stats, server_time(redis_client))
    got = _samples(_exposition(redis_client, prefix))
    bili = frozenset({"platform": "bilibili"}.items())
    assert got[("livefleet_store_batch_seconds_count", bili)] == stats["livefleet/store/batches"]
    assert got[("livefleet_store_batch_seconds_sum", bili)] == pytest.approx(stats["livefleet/store/batch_seconds"])
    snapshots = frozenset({"platform": "bilibili", "collection": "room_snapshots"}.items())
    assert got[("livefleet_store_written_records_total", snapshots)] == 120


# -- the dashboard, the rules and the scrape configuration ----------------------------------------------------

_NAME = re.compile(r"\blivefleet_[a-z0-9_]+")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _balanced(expr: str) -> bool:
    depth: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"[^"]*"', '""', expr):  # brackets inside label values do not count
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return False
    return not depth


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] and p["gridPos"] and p["title"] for p in panels)
    for panel in panels:
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
    return [t["expr"] for p in panels for t in p["targets"]]


def _alert_rules() -> list[dict[str, Any]]:
    """The rules of alerts.yml, checked against the shape of a Prometheus rule file."""
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"} and document["groups"]
    rules = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"} and isinstance(group["name"], str)
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert isinstance(rule["alert"], str) and isinstance(rule["expr"], str)
            assert "for" not in rule or _DURATION.match(rule["for"]), rule
            assert all(isinstance(v, str) for part in ("labels", "annotations") for v in rule.get(part, {}).values())
            assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
            rules.append(rule)
    assert len({r["alert"] for r in rules}) == len(rules)
    return rules


def test_dashboard_and_alert_rules_use_only_exposed_metrics(redis_client, fleet):
    exposed = {name for name, _ in _samples(_exposition(redis_client, fleet))}
    rules = _alert_rules()
    exprs = _dashboard_exprs() + [rule["expr"] for rule in rules]
    for expr in exprs:
        assert _balanced(expr), expr
        assert set(_NAME.findall(expr)) <= exposed, (expr, set(_NAME.findall(expr)) - exposed)
    used = {name for expr in exprs for name in _NAME.findall(expr)}
    for wanted in ("livefleet_items_total", "livefleet_page_attempts_total", "livefleet_queue_requests",
                   "livefleet_leases", "livefleet_dead_letters", "livefleet_store_spooled_records_total",
                   "livefleet_monitor_late_ticks_total", "livefleet_feed_group_lag_seconds"):
        assert wanted in used, wanted
    alerts = {rule["alert"] for rule in rules}
    assert {"LivefleetNoItems", "LivefleetBlockRateHigh", "LivefleetDeadLettersGrowing", "LivefleetSpoolNotDraining",
            "LivefleetFeedLagGrowing"} <= alerts
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert scrape["rule_files"] == ["alerts.yml"]
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    assert "credentials" not in job["authorization"]  # the token lives in a file, not here
