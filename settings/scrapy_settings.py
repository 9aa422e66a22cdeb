"""Scrapy settings for livefleet workers (scrapy.cfg points here).

Values that depend on the deployment come from :class:`settings.config.Config`;
the rest are livefleet's defaults. Our own settings carry the ``LIVEFLEET_``
prefix and are read by components with typed getters in ``from_crawler``.
"""

from settings.config import Config

_config = Config.from_env()

BOT_NAME = "livefleet"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"

# A local HTTP server that can run code, and a telnet console: neither belongs on a fleet worker.
REMOTE_CONTROL_ENABLED = False
TELNETCONSOLE_ENABLED = False
# The platform endpoints we call are JSON APIs; politeness comes from the per-platform
# rate limits below (on by default), not from robots.txt of API hosts.
ROBOTSTXT_OBEY = False

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
DEFAULT_REQUEST_HEADERS = {
    "Accept": "application/json, text/plain, */*",
    "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
}

DOWNLOADER_MIDDLEWARES = {
    # Rendered requests get their browser meta, then a session, then cookies.
    "crawlers.download.browser.RenderMiddleware": 550,
    "crawlers.download.sessions.SessionMiddleware": 600,
    # Platform requests wait for the fleet-wide rate limit (crawlers/download/ratelimit.py) once their
    # session is warm (a session's first requests wait for its warm-up; had they taken their
    # send times before, they would all go at once after it) and before they are signed
    # (signatures carry a timestamp that must not grow stale while the request waits).
    "crawlers.download.ratelimit.FleetRateLimitMiddleware": 620,
    "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
    "crawlers.download.cookies.OfflineCookiesMiddleware": 700,
    # Platform request signing, at download time (only requests marked for it).
    "spiders.taobao.middleware.MtopSignMiddleware": 650,
    "spiders.douyin.middleware.PageSignMiddleware": 650,
}
# Visitor identities (cookie jars / browser contexts) per platform per worker, and how long
# one rests after the platform blocked it.
LIVEFLEET_SESSIONS_PER_PLATFORM = 3
LIVEFLEET_SESSION_COOLDOWN_SECONDS = _config.session_cooldown

# Retried requests carry Scrapy's own retry counter on purpose (get_retry_request).
META_COPY_WARN_SKIP_KEYS = ["retry_times"]

CONCURRENT_REQUESTS = _config.concurrency
DOWNLOAD_TIMEOUT = 20
# 429 and 5xx are passing faults. Block answers (Bilibili's HTTP 412 with code -412, or
# a block code in a 200) are read by the spiders, which retry them with backoff.
RETRY_ENABLED = True
RETRY_TIMES = 6
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]

# Per-platform politeness: every request carries meta["download_slot"] = platform.
LIVEFLEET_RATES = dict(_config.rates)
DOWNLOAD_SLOTS = {
    platform: {"concurrency": _config.concurrency, "delay": (1.0 / rate) if rate else 0.0, "jitter": 0.0}
    for platform, rate in _config.rates.items()
}
# ... and for the whole fleet, however many workers: requests/s per platform from a token bucket
# in Redis (LIVEFLEET_FLEET_RATE_*, unset = the per-worker rate; 0 = none), on top of the slots.
LIVEFLEET_FLEET_RATES = dict(_config.fleet_rates)
# Sends the fleet may make at once after a quiet spell (1: strictly 1/rate apart).
LIVEFLEET_FLEET_BURST = 1.0
# The farthest ahead a worker reserves one send; a longer backlog is re-checked later.
LIVEFLEET_FLEET_MAX_WAIT_SECONDS = 30.0

# The fleet: requests are scheduled through Redis, shared by every worker.
SCHEDULER = "crawlers.queue.scheduler.RedisScheduler"
LIVEFLEET_REDIS_URL = _config.redis_url
LIVEFLEET_KEY_PREFIX = _config.key_prefix
LIVEFLEET_VAR_DIR = str(_config.var_dir)
# Requests a worker takes from Redis per round trip.
LIVEFLEET_PREFETCH = 8
# The fleet's seen-set expires this long after a crawl starts, so a later crawl revisits pages.
LIVEFLEET_SEEN_TTL_SECONDS = _config.seen_ttl
# A request is taken on a lease this long, renewed while its worker lives; an expired lease
# (worker killed) returns the request to the queue.
LIVEFLEET_LEASE_SECONDS = _config.lease_seconds
# Failed deliveries (callback error, item not stored, lease expired) before a dead letter.
LIVEFLEET_MAX_FAILURES = _config.max_failures
# The crawl (dedup namespace) of requests that do not name one.
LIVEFLEET_CRAWL = _config.crawl
# A Bloom filter of this many fingerprints replaces each crawl's seen-set (0 = a plain set).
LIVEFLEET_BLOOM_CAPACITY = _config.bloom_capacity
LIVEFLEET_BLOOM_ERROR_RATE = _config.bloom_error_rate
# Seeds pushed by `livefleet crawl` are taken by whichever worker is idle.
EXTENSIONS = {"crawlers.queue.feeder.SeedFeeder": 500, "crawlers.health.heartbeat.Heartbeat": 510,
              "crawlers.monitor.extension.MonitorServer": 520}
# Monitors (crawlers/monitor): every worker serves the due ticks of its spider's platform.
LIVEFLEET_MONITORS_ENABLED = True
LIVEFLEET_MONITOR_POLL_SECONDS = 0.25
# A tick claimed later than this share of its interval (or due while the last is unanswered) is late.
LIVEFLEET_MONITOR_LATE_FRACTION = 0.25
LIVEFLEET_MONITOR_PRIORITY = 1000
LIVEFLEET_MONITOR_CLAIM_BATCH = 200
LIVEFLEET_SEEDS_ENABLED = True
LIVEFLEET_SEED_BATCH = 16
# A worker with nothing in hand polls Redis this often, backing off to the max while quiet.
LIVEFLEET_POLL_SECONDS = 0.2
LIVEFLEET_POLL_MAX_SECONDS = 2.0
# Close a worker after this many seconds with nothing to do fleet-wide (0: never).
LIVEFLEET_IDLE_CLOSE_SECONDS = 0
LIVEFLEET_SANDBOX_URL = _config.sandbox_url
# Every this many seconds a worker writes its heartbeat (stale after three missed) and adds
# its stats' growth to the fleet-wide stats in Redis (crawlers/health/heartbeat.py; 0: off).
LIVEFLEET_HEARTBEAT_SECONDS = _config.heartbeat_seconds

# Callback output: new requests inherit the page's crawl; only a retry of the page keeps its lease.
# Monitored pages: stream start/end on their rooms, the shelf re-fetched each tick, nothing beyond it.
SPIDER_MIDDLEWARES = {"crawlers.queue.middleware.LeaseSpiderMiddleware": 50,
                      "crawlers.monitor.middleware.MonitorSpiderMiddleware": 60}
ITEM_PIPELINES = {
    "pipelines.p100_validate.ValidatePipeline": 100,
    "pipelines.p200_quarantine.QuarantinePipeline": 200,
    "pipelines.p300_store.StorePipeline": 300,
}
LIVEFLEET_MONGO_URI = _config.mongo_uri
LIVEFLEET_MONGO_DB = _config.mongo_db
LIVEFLEET_STORE_BATCH = _config.store_batch
LIVEFLEET_STORE_RETRIES = _config.store_retries
LIVEFLEET_STORE_FLUSH_SECONDS = 1.0
# How long one attempt waits for an unreachable MongoDB before it counts as failed.
LIVEFLEET_MONGO_TIMEOUT_MS = 3000
# After the store failed a batch, spool without trying for this long.
LIVEFLEET_STORE_COOLDOWN_SECONDS = 10.0
# Feeds (crawlers/feeds): every stored record is published to a Redis Stream per collection
# (LIVEFLEET_FEEDS=0: off; the per-crawl item counters are kept either way), each stream
# trimmed to about LIVEFLEET_FEED_MAXLEN messages.
LIVEFLEET_FEEDS_ENABLED = _config.feeds
LIVEFLEET_FEED_MAXLEN = _config.feed_maxlen
# While Redis is away, messages wait in memory up to this many, then in <var>/feed-spool;
# after a failed attempt the publisher leaves Redis alone for this long.
LIVEFLEET_FEED_BUFFER = 10_000
LIVEFLEET_FEED_COOLDOWN_SECONDS = 5.0

# The browser (only for spiders that render: see crawlers/download/browser.py).
LIVEFLEET_CHROMIUM = _config.chromium
LIVEFLEET_BROWSER_RECYCLE_PAGES = 300
LIVEFLEET_BROWSER_MAX_RSS_MB = 1200
# Rendered pages are reused (crawlers/download/pages.py): a page renders this many requests
# (0: a new page per request) and is closed after this long unused.
LIVEFLEET_BROWSER_PAGE_USES = 50
LIVEFLEET_BROWSER_PAGE_IDLE_SECONDS = 10.0
# Renders per browser context between two garbage collections of its renderer (0: never).
LIVEFLEET_BROWSER_GC_PAGES = 10

LOG_LEVEL = _config.log_level
LOGSTATS_INTERVAL = 30.0
FEED_EXPORT_ENCODING = "utf-8"
