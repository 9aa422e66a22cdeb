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
    Setting("LIVEFLEET_REDIS_URL", None, "Redis of the fleet (queue, heartbeats, monitors, feeds), for every "
            "component that talks to it (`crawlers/redis/connection.py`); set by `livefleet worker` from "
            "`REDIS_URL`, or the embedded server it ensured."),
    Setting("LIVEFLEET_MONGO_URI", None, "MongoDB the store pipeline (`pipelines/p300_store.py`) writes to; set "
            "by `livefleet worker` from `MONGO_URI`, or the embedded server it ensured."),
    Setting("LIVEFLEET_MONGO_DB", "livefleet", "Database name inside MongoDB (the store pipeline)."),
    Setting("LIVEFLEET_MONGO_TIMEOUT_MS", 3000, "How long one attempt of the store pipeline waits for an "
            "unreachable MongoDB before it counts as failed."),
    Setting("LIVEFLEET_KEY_PREFIX", "livefleet", "Prefix of every Redis key livefleet writes (every component "
            "that talks to Redis)."),
    Setting("LIVEFLEET_VAR_DIR", "var", "Where embedded servers keep data, logs, pid records and the spools "
            "(the services, the store pipeline's spool)."),
    Setting("LIVEFLEET_SANDBOX_URL", None, "Send every platform request to this sandbox instead of the real "
            "hosts (the spiders' URLs, `spiders/base.py`)."),
    Setting("LIVEFLEET_PARSE_THREAD_BYTES", 262_144, "Response bodies of this many bytes or more are parsed in a "
            "thread, not on the reactor, so a large hostile page cannot stall a worker's downloads and "
            "heartbeat (`spiders/base.py`)."),
    Setting("LIVEFLEET_API_MAX_BODY_BYTES", 65_536, "Largest request body `livefleet api` reads; a larger one "
            "gets 413 before it is read or parsed, and a body without a valid token is never read "
            "(`crawlers/api/guard.py`)."),
    Setting("LIVEFLEET_EMBEDDED_SERVICES", True, "Let a Scrapy command (`scrapy crawl`, `scrapy shell`) start the "
            "embedded Redis/MongoDB when `LIVEFLEET_REDIS_URL`/`LIVEFLEET_MONGO_URI` are unset (the services "
            "add-on, `crawlers/services/`); `livefleet worker` ensures them itself."),
    # -- the queue (the scheduler, crawlers/queue/scheduler.py) ---------------------------------------
    Setting("LIVEFLEET_PREFETCH", 8, "Leased requests the queue scheduler keeps ready (taken from Redis in one "
            "round trip)."),
    Setting("LIVEFLEET_QUEUE_BACKGROUND", True, "Run the queue scheduler's Redis traffic on a background thread "
            "(off: on the reactor thread, for tests of the queue's steps)."),
    Setting("LIVEFLEET_QUEUE_POLL_SECONDS", 0.05, "How often the queue scheduler's thread asks Redis for requests "
            "while it has none, at first."),
    Setting("LIVEFLEET_QUEUE_POLL_MAX_SECONDS", 1.0, "... backing off to this while the queue stays empty (the "
            "queue scheduler)."),
    Setting("LIVEFLEET_SEEN_TTL_SECONDS", 12 * 3600, "How long a crawl's seen-set lives, so a later crawl "
            "revisits pages (the queue scheduler's dedup)."),
    Setting("LIVEFLEET_LEASE_SECONDS", 60.0, "How long a worker holds a request before the fleet gives it to "
            "another worker (renewed while the worker lives; the queue scheduler)."),
    Setting("LIVEFLEET_MAX_FAILURES", 3, "Failed deliveries of a request before the queue scheduler makes it a "
            "dead letter."),
    Setting("LIVEFLEET_CRAWL", "default", "The crawl (dedup namespace) the queue scheduler gives requests that "
            "do not name one."),
    Setting("LIVEFLEET_BLOOM_CAPACITY", 0, "Fingerprints per crawl for a Bloom filter instead of a seen-set "
            "(0 = a plain set; the queue scheduler's dedup)."),
    Setting("LIVEFLEET_BLOOM_ERROR_RATE", 0.001, "False-positive rate the Bloom filter is sized for (the queue "
            "scheduler's dedup)."),
    # -- seeds (the seed feeder, crawlers/queue/feeder.py) ----------------------------------------------
    Setting("LIVEFLEET_SEEDS_ENABLED", True, "Feed the spider from its seed list in Redis (`livefleet crawl`): "
            "the seed feeder extension."),
    Setting("LIVEFLEET_SEED_BATCH", 16, "Seeds the seed feeder takes from Redis at a time."),
    Setting("LIVEFLEET_POLL_SECONDS", 0.2, "How often the seed feeder of an idle worker looks for seeds and "
            "queued requests, at first (not the queue scheduler's: `LIVEFLEET_QUEUE_POLL_SECONDS`)."),
    Setting("LIVEFLEET_POLL_MAX_SECONDS", 2.0, "... backing off to this while there are none (the seed feeder)."),
    Setting("LIVEFLEET_IDLE_CLOSE_SECONDS", 3.0, "The seed feeder closes a worker after this many seconds with "
            "nothing to do fleet-wide (0: never), so a one-off `scrapy crawl SPIDER -a seeds=...` ends when its "
            "seeds are done; `livefleet worker` sets its `--idle-close` (default 0: run until stopped)."),
    # -- politeness and sessions (crawlers/download/) ----------------------------------------------------
    Setting("LIVEFLEET_IDENTITY_RATES", {}, "Requests per second per platform through one egress identity, for "
            "the whole fleet (a token bucket in Redis per platform and identity; 0 = none), for the fleet rate "
            "limiter (`crawlers/download/ratelimit.py`); from `LIVEFLEET_IDENTITY_RATE_<PLATFORM>`."),
    Setting("LIVEFLEET_IDENTITY_RATE_OVERRIDES", {}, "Rates for named identities: `{\"<id> or scheme://host:port\": "
            "{\"<platform>\": rate}}` (a proxy that takes more or less than the others; the fleet rate limiter)."),
    Setting("LIVEFLEET_FLEET_RATES", {}, "An optional ceiling per platform over all identities of the fleet "
            "(requests per second; 0 = none), for the fleet rate limiter; from "
            "`LIVEFLEET_FLEET_RATE_<PLATFORM>`."),
    Setting("LIVEFLEET_FLEET_BURST", 1.0, "Sends the fleet rate limiter lets go at once after a quiet spell (1: "
            "strictly 1/rate apart)."),
    Setting("LIVEFLEET_FLEET_MAX_WAIT_SECONDS", 30.0, "The farthest ahead the fleet rate limiter reserves one "
            "send; a longer backlog is re-checked later."),
    Setting("LIVEFLEET_SESSIONS_PER_PLATFORM", 3, "Visitor sessions (cookie jars / browser contexts) per "
            "platform and egress identity, per worker (the session middleware, `crawlers/download/sessions.py`)."),
    Setting("LIVEFLEET_SESSION_COOLDOWN_SECONDS", 60.0, "How long the session middleware rests a platform "
            "session after it drew a block page."),
    # -- egress identities (the egress middleware, crawlers/download/egress.py) ---------------------------
    Setting("LIVEFLEET_PROXIES", [], "Proxy URLs, each one egress identity (`http://[user:pass@]host:port`; "
            "HTTP proxies, plain and CONNECT); from `LIVEFLEET_PROXIES`, comma-separated."),
    Setting("LIVEFLEET_PROXY_FILE", "", "A file of proxy URLs, one per line (`#` comments), read again when it "
            "changes."),
    Setting("LIVEFLEET_PROXY_PROVIDER_URL", "", "A provider's URL answering a list of proxies (text, one per "
            "line, or JSON), fetched again every `LIVEFLEET_PROXY_REFRESH_SECONDS`."),
    Setting("LIVEFLEET_PROXY_REFRESH_SECONDS", 60.0, "How often the egress middleware asks the proxy provider "
            "again (a proxy that leaves the list is drained: no new requests, those under way finish)."),
    Setting("LIVEFLEET_EGRESS_DIRECT", "auto", "Whether the machine's own address is an identity: `auto` (only "
            "when no proxy is configured), `always` or `never`."),
    Setting("LIVEFLEET_EGRESS_STRIKES", 3, "Failures (blocks, connection or proxy errors) beyond its successes, "
            "each success taking one back, after which an identity rests, fleet-wide, toward that platform."),
    Setting("LIVEFLEET_EGRESS_COOLDOWN_SECONDS", 30.0, "An identity's first rest; doubled after each failed "
            "probe."),
    Setting("LIVEFLEET_EGRESS_MAX_COOLDOWN_SECONDS", 600.0, "The longest rest, and how often a retired identity "
            "is probed."),
    Setting("LIVEFLEET_EGRESS_RETIRE_AFTER", 4, "Rests in a row (each ended by a failed probe) after which an "
            "identity is retired: it comes back only when a probe succeeds."),
    # -- the store (the store pipeline, pipelines/p300_store.py) ------------------------------------------
    Setting("LIVEFLEET_STORE_BATCH", 500, "Records per bulk write of the store pipeline to MongoDB."),
    Setting("LIVEFLEET_STORE_RETRIES", 4, "Attempts of one bulk write before the store pipeline spools its "
            "batch to disk."),
    Setting("LIVEFLEET_STORE_FLUSH_SECONDS", 1.0, "The store pipeline writes a batch at least this often, full "
            "or not."),
    Setting("LIVEFLEET_STORE_COOLDOWN_SECONDS", 10.0, "After a batch failed, the store pipeline spools without "
            "trying MongoDB for this long."),
    Setting("LIVEFLEET_STORE_HOLD_SECONDS", 300.0, "How long the store pipeline holds an item spooled (not yet "
            "in MongoDB) before failing it, so its request goes back to the queue."),
    Setting("LIVEFLEET_QUARANTINE_PAYLOAD_BYTES", 256 * 1024, "Bytes of a raw payload a quarantine record keeps "
            "(the quarantine and store pipelines); a longer body keeps this prefix with its full size and sha256, "
            "so any record fits MongoDB and the spool."),
    # -- bounded bodies (the platform spiders, spiders/base.py) ---------------------------------------------
    Setting("LIVEFLEET_MAX_RESPONSE_BYTES", {"bilibili": 2 * 1024 * 1024, "douyin": 16 * 1024 * 1024,
                                             "kuaishou": 8 * 1024 * 1024, "taobao": 16 * 1024 * 1024},
            "Largest response body per platform, after decompression (the spider's `DOWNLOAD_MAXSIZE`; a quarter "
            "of it is its `DOWNLOAD_WARNSIZE`); a larger body or a compression bomb is quarantined as "
            "\"response larger than N bytes\", never retried. About 20 times the largest real page (fixtures: "
            "Bilibili JSON 29 KB, Kuaishou 108 KB, Douyin 196 KB, Taobao 812 KB)."),
    # -- feeds (published by the store pipeline, crawlers/feeds/) -----------------------------------------
    Setting("LIVEFLEET_FEEDS_ENABLED", True, "Publish every stored record to a Redis Stream per collection (the "
            "per-crawl item counters are kept either way); from `LIVEFLEET_FEEDS`."),
    Setting("LIVEFLEET_FEED_MAXLEN", 1_000_000, "Messages each feed stream keeps, about (older ones are trimmed)."),
    Setting("LIVEFLEET_FEED_BUFFER", 10_000, "Messages the feed publisher keeps in memory while Redis is away, "
            "before they go to `<var>/feed-spool`."),
    Setting("LIVEFLEET_FEED_COOLDOWN_SECONDS", 5.0, "After a failed publish, the feed publisher leaves Redis "
            "alone for this long."),
    # -- monitors and health (crawlers/monitor/, crawlers/health/) ----------------------------------------
    Setting("LIVEFLEET_MONITORS_ENABLED", True, "Every worker serves the due monitor ticks of its spider's "
            "platform (the monitor extension and spider middleware)."),
    Setting("LIVEFLEET_MONITOR_POLL_SECONDS", 0.25, "How often the monitor extension looks for due ticks."),
    Setting("LIVEFLEET_MONITOR_LATE_FRACTION", 0.25, "A tick the monitor extension claims later than this share "
            "of its interval (or due while the last is unanswered) is late."),
    Setting("LIVEFLEET_MONITOR_PRIORITY", 1000, "Queue priority the monitor extension adds to monitor requests."),
    Setting("LIVEFLEET_MONITOR_CLAIM_BATCH", 200, "Due ticks the monitor extension claims at a time."),
    Setting("LIVEFLEET_HEARTBEAT_SECONDS", 5.0, "Seconds between a worker's heartbeats and stats flushes to "
            "Redis (the heartbeat extension, `crawlers/health/heartbeat.py`; 0: off)."),
    # -- the browser (crawlers/download/browser.py, pages.py) -------------------------------------------
    Setting("LIVEFLEET_CHROMIUM", "/usr/bin/chromium", "The Chromium that Playwright drives for pages that need "
            "a browser (the Douyin spider's browser settings)."),
    Setting("LIVEFLEET_BROWSER_RECYCLE_PAGES", 300, "Pages a browser renders before the browser handler recycles "
            "it."),
    Setting("LIVEFLEET_BROWSER_MAX_RSS_MB", 1200, "Memory of the browser's processes above which the browser "
            "handler recycles it."),
    Setting("LIVEFLEET_BROWSER_RSS_CHECK_PAGES", 50, "The browser handler reads the browser's memory every this "
            "many pages (on a thread: it costs ~0.1 s of CPU)."),
    Setting("LIVEFLEET_BROWSER_PAGE_USES", 50, "Requests one browser page renders before the page pool replaces "
            "it (0: a new page per request)."),
    Setting("LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS", 10.0, "The page pool closes a reused page after this long "
            "unused."),
    Setting("LIVEFLEET_BROWSER_GC_PAGES", 10, "Renders per browser context between two garbage collections of "
            "its renderer by the page pool (0: never)."),
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
        return dict(default) if isinstance(default, dict) else list(default) if isinstance(default, list) else default
    if isinstance(default, bool):
        return settings.getbool(name) if hasattr(settings, "getbool") else _bool(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, dict):
        return settings.getdict(name) if hasattr(settings, "getdict") else dict(raw)
    if isinstance(default, list):
        if hasattr(settings, "getlist"):
            return settings.getlist(name)
        return [part.strip() for part in raw.split(",") if part.strip()] if isinstance(raw, str) else list(raw)
    return raw


def _bool(raw: Any) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(raw)


def shown(default: Any) -> str:
    """A default as the README's table of Scrapy settings writes it."""
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, dict) and not default:
        return "(none)"
    if isinstance(default, list | str) and not default:
        return "(unset)"
    return str(default)


def readme_table() -> str:
    """The README's table of Scrapy settings, from :data:`SETTINGS` (``python -m settings.defaults`` prints it)."""
    rows = [f"| `{s.name}` | {shown(s.default)} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(["| setting | default | meaning |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(readme_table())
