"""Every environment variable livefleet reads, in one place.

This module is the only code in livefleet that reads ``os.environ``. Everything
else receives a :class:`Config` (fleet commands) or Scrapy settings built from
it (spiders, pipelines). The README's configuration table lists ``ENV_VARS``
below; a test keeps the two in step. A variable that sets the Scrapy setting of
its name takes that setting's default (``settings/defaults.py``); the
per-platform variables follow the one platform list (``models/platforms.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from models.platforms import PLATFORMS
from settings.defaults import DEFAULTS

#: Requests per second per worker, per platform (``models/platforms.py`` lists them): the
#: cautious default, unless a platform is known to take more. The live-commerce platforms
#: block faster than Bilibili.
_RATE_DEFAULT = 5.0
_RATE_EXCEPTIONS: dict[str, float] = {"bilibili": 20.0}
assert set(_RATE_EXCEPTIONS) <= set(PLATFORMS), "settings.config: a rate for an unknown platform"
PLATFORM_RATE_DEFAULTS: dict[str, float] = {p: _RATE_EXCEPTIONS.get(p, _RATE_DEFAULT) for p in PLATFORMS}

#: The per-platform rate variables, three per platform (``LIVEFLEET_RATE_<PLATFORM>``,
#: ``LIVEFLEET_IDENTITY_RATE_<PLATFORM>``, ``LIVEFLEET_FLEET_RATE_<PLATFORM>``), in the order of
#: ``models.platforms.PLATFORMS``.
_RATE_VARS: tuple[tuple[str, str, str], ...] = (
    *((f"LIVEFLEET_RATE_{p.upper()}", f"{PLATFORM_RATE_DEFAULTS[p]:g}",
       f"Requests per second per worker and egress identity to {p.capitalize()} (0 = unlimited).")
      for p in PLATFORMS),
    *((f"LIVEFLEET_IDENTITY_RATE_{p.upper()}", f"= `LIVEFLEET_RATE_{p.upper()}`",
       f"Requests per second to {p.capitalize()} through one egress identity (the machine's address or one "
       "proxy) from the whole fleet, however many workers (0 = no fleet-wide limit).") for p in PLATFORMS),
    *((f"LIVEFLEET_FLEET_RATE_{p.upper()}", "0",
       f"An optional ceiling: requests per second to {p.capitalize()} from the whole fleet over all its "
       "identities (0 = none).") for p in PLATFORMS),
)

#: The values of ``LIVEFLEET_LOG_FORMAT``.
LOG_FORMATS = ("text", "json")

#: (variable, default, meaning) for every variable livefleet reads.
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    ("REDIS_URL", "(unset)", "Redis to use. Unset: livefleet starts its own redis-server on 127.0.0.1."),
    ("MONGO_URI", "(unset)", "MongoDB to use. Unset: livefleet starts SecantusDB on 127.0.0.1."),
    ("LIVEFLEET_MONGO_DB", "livefleet", "Database name inside MongoDB."),
    ("LIVEFLEET_VAR_DIR", "./var", "Where embedded servers keep data, logs, pid records and the spool."),
    ("LIVEFLEET_KEY_PREFIX", "livefleet", "Prefix of every Redis key livefleet writes."),
    ("LIVEFLEET_SANDBOX_URL", "(unset)", "Send every platform request to this sandbox instead of the real hosts."),
    *_RATE_VARS,
    ("LIVEFLEET_PROXIES", "(unset)", "Proxies to go out through, comma-separated (`http://[user:pass@]host:port`), "
     "each one egress identity with its own rate, sessions and health; credentials never reach logs, stats or "
     "stored records."),
    ("LIVEFLEET_PROXY_FILE", "(unset)", "A file of proxy URLs, one per line, read again when it changes."),
    ("LIVEFLEET_PROXY_PROVIDER_URL", "(unset)", "A provider's URL answering a list of proxies (text or JSON), "
     "fetched again every minute; a proxy that leaves the list is drained."),
    ("LIVEFLEET_EGRESS_DIRECT", "auto", "Whether the machine's own address is an identity too: `auto` (only "
     "without proxies), `always`, `never`."),
    ("LIVEFLEET_CONCURRENCY", "16", "Concurrent requests per worker."),
    ("LIVEFLEET_SESSION_COOLDOWN_SECONDS", "60", "How long a platform session rests after it drew a block page."),
    ("LIVEFLEET_LEASE_SECONDS", "60", "How long a worker holds a request before the fleet gives it to another "
     "worker (renewed while the worker lives)."),
    ("LIVEFLEET_MAX_FAILURES", "3", "Failed deliveries of a request (callback error, item not stored, lease "
     "expired) before it becomes a dead letter."),
    ("LIVEFLEET_CRAWL", "default", "Crawl name: the dedup namespace of requests whose seed names no crawl."),
    ("LIVEFLEET_SEEN_TTL_SECONDS", "43200", "How long a crawl's seen-set lives, so a later crawl revisits pages."),
    ("LIVEFLEET_BLOOM_CAPACITY", "0", "Fingerprints per crawl for a Bloom filter instead of a seen-set (0 = off)."),
    ("LIVEFLEET_BLOOM_ERROR_RATE", "0.001", "False-positive rate the Bloom filter is sized for."),
    ("LIVEFLEET_STORE_BATCH", "500", "Records per bulk write to MongoDB."),
    ("LIVEFLEET_STORE_RETRIES", "4", "Attempts of one bulk write before its batch is spooled to disk."),
    ("LIVEFLEET_LOG_LEVEL", "INFO", "Log level of livefleet commands and workers."),
    ("LIVEFLEET_LOG_FORMAT", "text", "Log format of livefleet commands and workers: `text`, or `json` for JSON "
     "lines (one object per record: time, level, logger, message, and exception when there is one)."),
    ("LIVEFLEET_CHROMIUM", "/usr/bin/chromium", "The Chromium that Playwright drives for pages that need a browser."),
    ("LIVEFLEET_HEARTBEAT_SECONDS", "5", "Seconds between a worker's heartbeats and stats flushes to Redis."),
    ("LIVEFLEET_FEEDS", "1", "Publish every stored change to a Redis Stream per collection (0 = off)."),
    ("LIVEFLEET_FEED_MAXLEN", "1000000", "Messages each feed stream keeps, about (older ones are trimmed)."),
    ("LIVEFLEET_WEBHOOK_SECRET", "(unset)", "Secret that signs the webhooks of monitors (campaign files name "
     "their own secret's variable); required to add a monitor with a webhook."),
    ("LIVEFLEET_WEBHOOK_ALLOW", "(unset)", "Webhook receivers allowed although their address is not public "
     "(loopback, private, link-local, metadata names...): hosts, host:port or CIDRs, comma-separated, e.g. "
     "`127.0.0.1:8765,hooks.internal,10.1.0.0/16`; every other such URL is refused."),
    ("LIVEFLEET_API_TOKEN", "(unset)", "Bearer token every `livefleet api` call must send; the API refuses to "
     "start without one."),
    ("SCRAPY_CHECK", "(unset)", "Set by `scrapy check` while it runs the spiders' contracts (not for you to "
     "set): the seed feeder is off and the scheduler takes nothing from the fleet's queue, so a check never "
     "consumes the fleet's work."),
    ("LIVEFLEET_WATCH_INTERVAL_SECONDS", "60", "Seconds between two checks of a watched account for going live "
     "(`livefleet watch run`, `livefleet worker --watch`), spread evenly over the interval."),
)

@dataclass(frozen=True)
class Config:
    """livefleet's configuration, read once from the environment."""

    redis_url: str | None = None
    mongo_uri: str | None = None
    mongo_db: str = DEFAULTS["LIVEFLEET_MONGO_DB"]
    var_dir: Path = Path(DEFAULTS["LIVEFLEET_VAR_DIR"])
    key_prefix: str = DEFAULTS["LIVEFLEET_KEY_PREFIX"]
    sandbox_url: str | None = None
    #: Requests per second per worker, per platform; 0 means unlimited.
    rates: Mapping[str, float] = field(default_factory=lambda: dict(PLATFORM_RATE_DEFAULTS))
    #: Requests per second per platform through one egress identity, for the whole fleet (a token
    #: bucket in Redis per platform and identity). Unset, a platform's identity rate is its per-worker
    #: rate: through one address, the fleet is as polite as one worker.
    identity_rates: Mapping[str, float] = field(default_factory=lambda: dict(PLATFORM_RATE_DEFAULTS))
    #: An optional ceiling per platform over all identities; 0 means none (the default).
    fleet_rates: Mapping[str, float] = field(default_factory=lambda: {p: 0.0 for p in PLATFORMS})
    #: Proxies (each an egress identity), a file and a provider URL listing more; direct: auto/always/never.
    proxies: tuple[str, ...] = ()
    proxy_file: str = ""
    proxy_provider_url: str = ""
    egress_direct: str = DEFAULTS["LIVEFLEET_EGRESS_DIRECT"]
    concurrency: int = 16
    session_cooldown: float = DEFAULTS["LIVEFLEET_SESSION_COOLDOWN_SECONDS"]
    lease_seconds: float = DEFAULTS["LIVEFLEET_LEASE_SECONDS"]
    max_failures: int = DEFAULTS["LIVEFLEET_MAX_FAILURES"]
    crawl: str = DEFAULTS["LIVEFLEET_CRAWL"]
    seen_ttl: int = DEFAULTS["LIVEFLEET_SEEN_TTL_SECONDS"]
    bloom_capacity: int = DEFAULTS["LIVEFLEET_BLOOM_CAPACITY"]
    bloom_error_rate: float = DEFAULTS["LIVEFLEET_BLOOM_ERROR_RATE"]
    store_batch: int = DEFAULTS["LIVEFLEET_STORE_BATCH"]
    store_retries: int = DEFAULTS["LIVEFLEET_STORE_RETRIES"]
    log_level: str = "INFO"
    #: ``text`` or ``json`` (JSON lines; ``crawlers/cli/logs.py`` formats them).
    log_format: str = "text"
    chromium: str = DEFAULTS["LIVEFLEET_CHROMIUM"]
    #: Seconds between a worker's heartbeats (and stats flushes); a worker is stale after three.
    heartbeat_seconds: float = DEFAULTS["LIVEFLEET_HEARTBEAT_SECONDS"]
    #: Publish stored changes to the feeds (Redis Streams), each kept near ``feed_maxlen`` messages.
    feeds: bool = DEFAULTS["LIVEFLEET_FEEDS_ENABLED"]
    feed_maxlen: int = DEFAULTS["LIVEFLEET_FEED_MAXLEN"]
    #: The token of the HTTP API (``livefleet api``); None: the API does not start.
    api_token: str | None = None
    #: The HMAC secret of monitors' webhooks.
    webhook_secret: str | None = None
    #: Webhook receivers allowed although not public (``crawlers/feeds/urlcheck.py``); empty: none.
    webhook_allow: str = ""
    #: Seconds between two checks of a watched account (``crawlers/watch``).
    watch_interval: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        rates = {
            platform: _float(env, f"LIVEFLEET_RATE_{platform.upper()}", default)
            for platform, default in PLATFORM_RATE_DEFAULTS.items()
        }
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            mongo_uri=env.get("MONGO_URI") or None,
            mongo_db=env.get("LIVEFLEET_MONGO_DB") or cls.mongo_db,
            var_dir=Path(env.get("LIVEFLEET_VAR_DIR") or cls.var_dir).absolute(),
            key_prefix=env.get("LIVEFLEET_KEY_PREFIX") or cls.key_prefix,
            sandbox_url=(env.get("LIVEFLEET_SANDBOX_URL") or "").rstrip("/") or None,
            rates=rates,
            identity_rates={
                platform: _float(env, f"LIVEFLEET_IDENTITY_RATE_{platform.upper()}", rate)
                for platform, rate in rates.items()
            },
            fleet_rates={platform: _float(env, f"LIVEFLEET_FLEET_RATE_{platform.upper()}", 0.0)
                         for platform in PLATFORMS},
            proxies=tuple(part.strip() for part in (env.get("LIVEFLEET_PROXIES") or "").replace("\n", ",").split(",")
                          if part.strip()),
            proxy_file=env.get("LIVEFLEET_PROXY_FILE") or "",
            proxy_provider_url=env.get("LIVEFLEET_PROXY_PROVIDER_URL") or "",
            egress_direct=(env.get("LIVEFLEET_EGRESS_DIRECT") or cls.egress_direct).strip().lower(),
            concurrency=_int(env, "LIVEFLEET_CONCURRENCY", cls.concurrency),
            session_cooldown=_float(env, "LIVEFLEET_SESSION_COOLDOWN_SECONDS", cls.session_cooldown),
            lease_seconds=_float(env, "LIVEFLEET_LEASE_SECONDS", cls.lease_seconds),
            max_failures=max(1, _int(env, "LIVEFLEET_MAX_FAILURES", cls.max_failures)),
            crawl=env.get("LIVEFLEET_CRAWL") or cls.crawl,
            seen_ttl=_int(env, "LIVEFLEET_SEEN_TTL_SECONDS", cls.seen_ttl),
            bloom_capacity=_int(env, "LIVEFLEET_BLOOM_CAPACITY", cls.bloom_capacity),
            bloom_error_rate=_float(env, "LIVEFLEET_BLOOM_ERROR_RATE", cls.bloom_error_rate),
            store_batch=_int(env, "LIVEFLEET_STORE_BATCH", cls.store_batch),
            store_retries=_int(env, "LIVEFLEET_STORE_RETRIES", cls.store_retries),
            log_level=(env.get("LIVEFLEET_LOG_LEVEL") or cls.log_level).upper(),
            log_format=_choice(env, "LIVEFLEET_LOG_FORMAT", cls.log_format, LOG_FORMATS),
            chromium=env.get("LIVEFLEET_CHROMIUM") or cls.chromium,
            heartbeat_seconds=_float(env, "LIVEFLEET_HEARTBEAT_SECONDS", cls.heartbeat_seconds),
            feeds=_bool(env, "LIVEFLEET_FEEDS", cls.feeds),
            feed_maxlen=_int(env, "LIVEFLEET_FEED_MAXLEN", cls.feed_maxlen),
            api_token=env.get("LIVEFLEET_API_TOKEN") or None,
            webhook_secret=env.get("LIVEFLEET_WEBHOOK_SECRET") or None,
            webhook_allow=env.get("LIVEFLEET_WEBHOOK_ALLOW") or "",
            watch_interval=_float(env, "LIVEFLEET_WATCH_INTERVAL_SECONDS", cls.watch_interval),
        )


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or default).strip().lower()
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if not raw:
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def scrapy_check_running(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is ``scrapy check`` running contracts (Scrapy sets ``SCRAPY_CHECK`` for the run,
    after the settings were loaded: components ask when they are built)."""
    return bool((os.environ if environ is None else environ).get("SCRAPY_CHECK"))


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a livefleet child process: ours, with ``overrides`` set."""
    env = dict(os.environ)
    env.update(overrides)
    return env
