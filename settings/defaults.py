"""Every livefleet Scrapy setting (``LIVEFLEET_*``): its default and what it means, in one place.

Components read these settings once, in ``from_crawler`` (or a frozen config's
``from_settings``), through :func:`value`, which takes the default from here:
there is no fallback literal anywhere else, and reading a name that is not
defined here is a ``KeyError``, not a silent ``None``. ``settings.scrapy_settings``
(the project's Scrapy settings module) starts from :data:`DEFAULTS` and puts
the deployment's values (``settings.config.Config``, from the environment) on
top. The README's table of Scrapy settings lists :data:`SETTINGS`; a test keeps
the two in step, and fails on a setting read but not defined here, or defined
here and read nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One setting: its name, its default and what it means."""

    name: str
    default: Any
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    # -- where things are -----------------------------------------------------------------------
    Setting("LIVEFLEET_REDIS_URL", None, "Redis of the fleet (queue, heartbeats, monitors, feeds); set by the "
            "worker from `REDIS_URL`, or the embedded server the worker ensured."),
    Setting("LIVEFLEET_MONGO_URI", None, "MongoDB the store writes to; set by the worker from `MONGO_URI`, or the "
            "embedded server the worker ensured."),
    Setting("LIVEFLEET_MONGO_DB", "livefleet", "Database name inside MongoDB."),
    Setting("LIVEFLEET_MONGO_TIMEOUT_MS", 3000, "How long one store attempt waits for an unreachable MongoDB "
            "before it counts as failed."),
    Setting("LIVEFLEET_KEY_PREFIX", "livefleet", "Prefix of every Redis key livefleet writes."),
    Setting("LIVEFLEET_VAR_DIR", "var", "Where embedded servers keep data, logs, pid records and the spools."),
    Setting("LIVEFLEET_SANDBOX_URL", None, "Send every platform request to this sandbox instead of the real hosts."),
    Setting("LIVEFLEET_EMBEDDED_SERVICES", True, "Let a Scrapy command (`scrapy crawl`, `scrapy shell`) start the "
            "embedded Redis/MongoDB when `LIVEFLEET_REDIS_URL`/`LIVEFLEET_MONGO_URI` are unset (the services "
            "add-on); `livefleet worker` ensures them itself."),
    # -- the queue -----------------------------------------------------------------------------
    Setting("LIVEFLEET_PREFETCH", 8, "Leased requests a worker keeps ready (taken from Redis in one round trip)."),
    Setting("LIVEFLEET_QUEUE_BACKGROUND", True, "Run the worker's Redis traffic on a background thread (off: on "
            "the reactor thread, for tests of the queue's steps)."),
    Setting("LIVEFLEET_QUEUE_POLL_SECONDS", 0.05, "How often a worker's queue thread asks Redis for requests "
            "while it has none, at first."),
    Setting("LIVEFLEET_QUEUE_POLL_MAX_SECONDS", 1.0, "... backing off to this while the queue stays empty."),
    Setting("LIVEFLEET_SEEN_TTL_SECONDS", 12 * 3600, "How long a crawl's seen-set lives, so a later crawl "
            "revisits pages."),
    Setting("LIVEFLEET_LEASE_SECONDS", 60.0, "How long a worker holds a request before the fleet gives it to "
            "another worker (renewed while the worker lives)."),
    Setting("LIVEFLEET_MAX_FAILURES", 3, "Failed deliveries of a request before it becomes a dead letter."),
    Setting("LIVEFLEET_CRAWL", "default", "The crawl (dedup namespace) of requests that do not name one."),
    Setting("LIVEFLEET_BLOOM_CAPACITY", 0, "Fingerprints per crawl for a Bloom filter instead of a seen-set "
            "(0 = a plain set)."),
    Setting("LIVEFLEET_BLOOM_ERROR_RATE", 0.001, "False-positive rate the Bloom filter is sized for."),
    # -- seeds ---------------------------------------------------------------------------------
    Setting("LIVEFLEET_SEEDS_ENABLED", True, "Feed the spider from its seed list in Redis (`livefleet crawl`)."),
    Setting("LIVEFLEET_SEED_BATCH", 16, "Seeds a worker takes from Redis at a time."),
    Setting("LIVEFLEET_POLL_SECONDS", 0.2, "How often an idle worker looks for seeds, at first."),
    Setting("LIVEFLEET_POLL_MAX_SECONDS", 2.0, "... backing off to this while there are none."),
    Setting("LIVEFLEET_IDLE_CLOSE_SECONDS", 0.0, "Close a worker after this many seconds with nothing to do "
            "fleet-wide (0: never)."),
    # -- politeness and sessions -------------------------------------------------------------------
    Setting("LIVEFLEET_FLEET_RATES", {}, "Requests per second per platform for the whole fleet (a token bucket "
            "in Redis; 0 = none); from `LIVEFLEET_FLEET_RATE_<PLATFORM>`."),
    Setting("LIVEFLEET_FLEET_BURST", 1.0, "Sends the fleet may make at once after a quiet spell (1: strictly "
            "1/rate apart)."),
    Setting("LIVEFLEET_FLEET_MAX_WAIT_SECONDS", 30.0, "The farthest ahead a worker reserves one send; a longer "
            "backlog is re-checked later."),
    Setting("LIVEFLEET_SESSIONS_PER_PLATFORM", 3, "Visitor identities (cookie jars / browser contexts) per "
            "platform per worker."),
    Setting("LIVEFLEET_SESSION_COOLDOWN_SECONDS", 60.0, "How long a platform session rests after it drew a "
            "block page."),
    # -- the store -----------------------------------------------------------------------------
    Setting("LIVEFLEET_STORE_BATCH", 500, "Records per bulk write to MongoDB."),
    Setting("LIVEFLEET_STORE_RETRIES", 4, "Attempts of one bulk write before its batch is spooled to disk."),
    Setting("LIVEFLEET_STORE_FLUSH_SECONDS", 1.0, "A batch is written at least this often, full or not."),
    Setting("LIVEFLEET_STORE_COOLDOWN_SECONDS", 10.0, "After the store failed a batch, spool without trying "
            "for this long."),
    Setting("LIVEFLEET_STORE_HOLD_SECONDS", 300.0, "How long an item spooled (not yet in MongoDB) holds its "
            "request before the request goes back to the queue."),
    # -- feeds ---------------------------------------------------------------------------------
    Setting("LIVEFLEET_FEEDS_ENABLED", True, "Publish every stored record to a Redis Stream per collection (the "
            "per-crawl item counters are kept either way); from `LIVEFLEET_FEEDS`."),
    Setting("LIVEFLEET_FEED_MAXLEN", 1_000_000, "Messages each feed stream keeps, about (older ones are trimmed)."),
    Setting("LIVEFLEET_FEED_BUFFER", 10_000, "Messages kept in memory while Redis is away, before they go to "
            "`<var>/feed-spool`."),
    Setting("LIVEFLEET_FEED_COOLDOWN_SECONDS", 5.0, "After a failed publish, leave Redis alone for this long."),
    # -- monitors and health ---------------------------------------------------------------------
    Setting("LIVEFLEET_MONITORS_ENABLED", True, "Every worker serves the due monitor ticks of its spider's "
            "platform."),
    Setting("LIVEFLEET_MONITOR_POLL_SECONDS", 0.25, "How often a worker looks for due monitor ticks."),
    Setting("LIVEFLEET_MONITOR_LATE_FRACTION", 0.25, "A tick claimed later than this share of its interval (or "
            "due while the last is unanswered) is late."),
    Setting("LIVEFLEET_MONITOR_PRIORITY", 1000, "Queue priority of monitor requests."),
    Setting("LIVEFLEET_MONITOR_CLAIM_BATCH", 200, "Due ticks a worker claims at a time."),
    Setting("LIVEFLEET_HEARTBEAT_SECONDS", 5.0, "Seconds between a worker's heartbeats and stats flushes to "
            "Redis (0: off)."),
    # -- the browser ---------------------------------------------------------------------------
    Setting("LIVEFLEET_CHROMIUM", "/usr/bin/chromium", "The Chromium that Playwright drives for pages that need "
            "a browser."),
    Setting("LIVEFLEET_BROWSER_RECYCLE_PAGES", 300, "Pages a browser renders before it is recycled."),
    Setting("LIVEFLEET_BROWSER_MAX_RSS_MB", 1200, "Memory of the browser's processes above which it is "
            "recycled."),
    Setting("LIVEFLEET_BROWSER_RSS_CHECK_PAGES", 50, "The browser's memory is read every this many pages (on a "
            "thread: it costs ~0.1 s of CPU)."),
    Setting("LIVEFLEET_BROWSER_PAGE_USES", 50, "Requests one browser page renders before it is replaced (0: a "
            "new page per request)."),
    Setting("LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS", 10.0, "A reused page is closed after this long unused."),
    Setting("LIVEFLEET_BROWSER_GC_PAGES", 10, "Renders per browser context between two garbage collections of "
            "its renderer (0: never)."),
)

#: name -> default, the starting point of ``settings.scrapy_settings``.
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def value(settings: Mapping[str, Any] | Any, name: str) -> Any:
    """``name`` from Scrapy ``settings``, typed like its default, or the default when unset.

    Raises ``KeyError`` for a name livefleet does not define (a typo must not read as unset)."""
    setting = _BY_NAME[name]
    default = setting.default
    raw = settings.get(name) if settings is not None else None
    if raw is None or raw == "":
        return dict(default) if isinstance(default, dict) else default
    if isinstance(default, bool):
        return settings.getbool(name) if hasattr(settings, "getbool") else _bool(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, dict):
        return settings.getdict(name) if hasattr(settings, "getdict") else dict(raw)
    return raw


def _bool(raw: Any) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(raw)
