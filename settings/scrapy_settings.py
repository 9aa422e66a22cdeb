"""Scrapy settings for livefleet workers (scrapy.cfg points here).

Values that depend on the deployment come from :class:`settings.config.Config`;
the rest are livefleet's defaults. Our own settings carry the ``LIVEFLEET_``
prefix and are read by components with typed getters in ``from_crawler``.
"""

from settings.config import Config
from settings.defaults import DEFAULTS, value

_config = Config.from_env()

# Every LIVEFLEET_* default (settings/defaults.py, where each is documented); the deployment's
# values below, from the environment, go on top.
globals().update(DEFAULTS)

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
    # Rendered requests get their browser meta, then an identity, a session, then cookies.
    "crawlers.download.render.RenderMiddleware": 550,
    # Platform requests get an egress identity (the machine's address or a proxy), then a session of it.
    "crawlers.download.egress.EgressMiddleware": 590,
    "crawlers.download.sessions.SessionMiddleware": 600,
    # Platform requests wait for the fleet-wide rate limit (crawlers/download/ratelimit.py) once their
    # session is warm (a session's first requests wait for its warm-up; had they taken their
    # send times before, they would all go at once after it) and before they are signed
    # (signatures carry a timestamp that must not grow stale while the request waits).
    "crawlers.download.ratelimit.FleetRateLimitMiddleware": 620,
    "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
    "crawlers.download.cookies.OfflineCookiesMiddleware": 700,
    # Platform request signing, at download time (only requests marked for it). Each its own
    # priority: two equal ones would run in an undefined order.
    "spiders.taobao.middleware.MtopSignMiddleware": 650,
    "spiders.douyin.middleware.PageSignMiddleware": 660,
    "spiders.bilibili.middleware.WbiSignMiddleware": 670,
}
# A plain `scrapy crawl` gets the embedded Redis/MongoDB when their URLs are unset
# (LIVEFLEET_EMBEDDED_SERVICES); `livefleet worker` passes its URLs, and the add-on does nothing.
ADDONS = {"crawlers.services.addon.EmbeddedServices": 0}
# Retried requests carry Scrapy's own retry counter on purpose (get_retry_request).
META_COPY_WARN_SKIP_KEYS = ["retry_times"]

CONCURRENT_REQUESTS = _config.concurrency
DOWNLOAD_TIMEOUT = 20
# Bounded bodies: each platform spider sets its own LIVEFLEET_MAX_RESPONSE_BYTES as its crawler's
# DOWNLOAD_MAXSIZE (spiders/base.py); this is the ceiling for anything else (Scrapy's default is 1 GiB).
DOWNLOAD_MAXSIZE = max(value(None, "LIVEFLEET_MAX_RESPONSE_BYTES").values())
DOWNLOAD_WARNSIZE = DOWNLOAD_MAXSIZE // 4
# 429 and 5xx are passing faults. Block answers (Bilibili's HTTP 412 with code -412, or
# a block code in a 200) are read by the spiders, which retry them with backoff.
RETRY_ENABLED = True
RETRY_TIMES = 6
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]

# Per-platform politeness: every request carries meta["download_slot"] = platform ...
DOWNLOAD_SLOTS = {
    platform: {"concurrency": _config.concurrency, "delay": (1.0 / rate) if rate else 0.0, "jitter": 0.0}
    for platform, rate in _config.rates.items()
}
# ... and for the whole fleet, however many workers, per egress identity (a token bucket in Redis per
# platform and identity), with an optional ceiling per platform, on top of the slots.
LIVEFLEET_IDENTITY_RATES = dict(_config.identity_rates)
LIVEFLEET_FLEET_RATES = dict(_config.fleet_rates)
# The egress identities (crawlers/download/egress.py): the machine's address and/or proxies.
LIVEFLEET_PROXIES = list(_config.proxies)
LIVEFLEET_PROXY_FILE = _config.proxy_file
LIVEFLEET_PROXY_PROVIDER_URL = _config.proxy_provider_url
LIVEFLEET_EGRESS_DIRECT = _config.egress_direct

# The fleet: requests are scheduled through Redis, shared by every worker.
SCHEDULER = "crawlers.queue.scheduler.RedisScheduler"
# Seeds pushed by `livefleet crawl` are taken by whichever worker is idle; heartbeats; monitors.
EXTENSIONS = {"crawlers.queue.feeder.SeedFeeder": 500, "crawlers.health.heartbeat.Heartbeat": 510,
              "crawlers.monitor.extension.MonitorServer": 520}
# Callback output: new requests inherit the page's crawl; only a retry of the page keeps its lease.
# Monitored pages: stream start/end on their rooms, the shelf re-fetched each tick, nothing beyond it.
SPIDER_MIDDLEWARES = {"crawlers.queue.middleware.LeaseSpiderMiddleware": 50,
                      "crawlers.monitor.middleware.MonitorSpiderMiddleware": 60}
# `scrapy check`: contracts that build a callback's request from a seed, through the spider's own
# seed method, and check its records (spiders/contracts.py; docs/scrapy-commands.md).
SPIDER_CONTRACTS = {"spiders.contracts.SeedContract": 10, "spiders.contracts.RecordsContract": 11}
ITEM_PIPELINES = {
    "pipelines.p100_validate.ValidatePipeline": 100,
    "pipelines.p200_quarantine.QuarantinePipeline": 200,
    "pipelines.p300_store.StorePipeline": 300,
    "crawlers.feeds.pipeline.FeedPipeline": 400,
}

# The deployment's values (settings/config.py, from the environment).
LIVEFLEET_REDIS_URL = _config.redis_url
LIVEFLEET_MONGO_URI = _config.mongo_uri
LIVEFLEET_MONGO_DB = _config.mongo_db
LIVEFLEET_KEY_PREFIX = _config.key_prefix
LIVEFLEET_VAR_DIR = str(_config.var_dir)
LIVEFLEET_SANDBOX_URL = _config.sandbox_url
LIVEFLEET_SESSION_COOLDOWN_SECONDS = _config.session_cooldown
LIVEFLEET_SEEN_TTL_SECONDS = _config.seen_ttl
LIVEFLEET_LEASE_SECONDS = _config.lease_seconds
LIVEFLEET_MAX_FAILURES = _config.max_failures
LIVEFLEET_CRAWL = _config.crawl
LIVEFLEET_BLOOM_CAPACITY = _config.bloom_capacity
LIVEFLEET_BLOOM_ERROR_RATE = _config.bloom_error_rate
LIVEFLEET_HEARTBEAT_SECONDS = _config.heartbeat_seconds
LIVEFLEET_STORE_BATCH = _config.store_batch
LIVEFLEET_STORE_RETRIES = _config.store_retries
LIVEFLEET_FEEDS_ENABLED = _config.feeds
LIVEFLEET_FEED_MAXLEN = _config.feed_maxlen
LIVEFLEET_CHROMIUM = _config.chromium

LOG_LEVEL = _config.log_level
LOGSTATS_INTERVAL = 30.0
FEED_EXPORT_ENCODING = "utf-8"
