"""Every environment variable livefleet reads, in one place.

This module is the only code in livefleet that reads ``os.environ``. Everything
else receives a :class:`Config` (fleet commands) or Scrapy settings built from
it (spiders, pipelines). The README's configuration table lists ``ENV_VARS``
below; a test keeps the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: (variable, default, meaning) for every variable livefleet reads.
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    ("REDIS_URL", "(unset)", "Redis to use. Unset: livefleet starts its own redis-server on 127.0.0.1."),
    ("MONGO_URI", "(unset)", "MongoDB to use. Unset: livefleet starts SecantusDB on 127.0.0.1."),
    ("LIVEFLEET_MONGO_DB", "livefleet", "Database name inside MongoDB."),
    ("LIVEFLEET_VAR_DIR", "./var", "Where embedded servers keep data, logs, pid records and the spool."),
    ("LIVEFLEET_KEY_PREFIX", "livefleet", "Prefix of every Redis key livefleet writes."),
    ("LIVEFLEET_SANDBOX_URL", "(unset)", "Send every platform request to this sandbox instead of the real hosts."),
    ("LIVEFLEET_RATE_BILIBILI", "20", "Requests per second per worker to Bilibili (0 = unlimited)."),
    ("LIVEFLEET_RATE_DOUYIN", "5", "Requests per second per worker to Douyin (0 = unlimited)."),
    ("LIVEFLEET_RATE_KUAISHOU", "5", "Requests per second per worker to Kuaishou (0 = unlimited)."),
    ("LIVEFLEET_RATE_TAOBAO", "5", "Requests per second per worker to Taobao (0 = unlimited)."),
    ("LIVEFLEET_FLEET_RATE_BILIBILI", "= `LIVEFLEET_RATE_BILIBILI`",
     "Requests per second to Bilibili from the whole fleet, however many workers (0 = no fleet-wide limit)."),
    ("LIVEFLEET_FLEET_RATE_DOUYIN", "= `LIVEFLEET_RATE_DOUYIN`",
     "Requests per second to Douyin from the whole fleet, however many workers (0 = no fleet-wide limit)."),
    ("LIVEFLEET_FLEET_RATE_KUAISHOU", "= `LIVEFLEET_RATE_KUAISHOU`",
     "Requests per second to Kuaishou from the whole fleet, however many workers (0 = no fleet-wide limit)."),
    ("LIVEFLEET_FLEET_RATE_TAOBAO", "= `LIVEFLEET_RATE_TAOBAO`",
     "Requests per second to Taobao from the whole fleet, however many workers (0 = no fleet-wide limit)."),
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
    ("LIVEFLEET_CHROMIUM", "/usr/bin/chromium", "The Chromium that Playwright drives for pages that need a browser."),
    ("LIVEFLEET_HEARTBEAT_SECONDS", "5", "Seconds between a worker's heartbeats and stats flushes to Redis."),
    ("LIVEFLEET_FEEDS", "1", "Publish every stored change to a Redis Stream per collection (0 = off)."),
    ("LIVEFLEET_FEED_MAXLEN", "1000000", "Messages each feed stream keeps, about (older ones are trimmed)."),
    ("LIVEFLEET_WEBHOOK_SECRET", "(unset)", "Secret that signs the webhooks of monitors (campaign files name "
     "their own secret's variable); required to add a monitor with a webhook."),
    ("LIVEFLEET_API_TOKEN", "(unset)", "Bearer token every `livefleet api` call must send; the API refuses to "
     "start without one."),
)

#: Requests per second per worker. The live-commerce platforms block faster than Bilibili.
PLATFORM_RATE_DEFAULTS: dict[str, float] = {"bilibili": 20.0, "douyin": 5.0, "kuaishou": 5.0, "taobao": 5.0}


@dataclass(frozen=True)
class Config:
    """livefleet's configuration, read once from the environment."""

    redis_url: str | None = None
    mongo_uri: str | None = None
    mongo_db: str = "livefleet"
    var_dir: Path = Path("var")
    key_prefix: str = "livefleet"
    sandbox_url: str | None = None
    #: Requests per second per worker, per platform; 0 means unlimited.
    rates: Mapping[str, float] = field(default_factory=lambda: dict(PLATFORM_RATE_DEFAULTS))
    #: Requests per second per platform for the whole fleet (a token bucket in Redis); 0 means none.
    #: Unset, a platform's fleet rate is its per-worker rate: the fleet is as polite as one worker.
    fleet_rates: Mapping[str, float] = field(default_factory=lambda: dict(PLATFORM_RATE_DEFAULTS))
    concurrency: int = 16
    session_cooldown: float = 60.0
    lease_seconds: float = 60.0
    max_failures: int = 3
    crawl: str = "default"
    seen_ttl: int = 12 * 3600
    bloom_capacity: int = 0
    bloom_error_rate: float = 0.001
    store_batch: int = 500
    store_retries: int = 4
    log_level: str = "INFO"
    chromium: str = "/usr/bin/chromium"
    #: Seconds between a worker's heartbeats (and stats flushes); a worker is stale after three.
    heartbeat_seconds: float = 5.0
    #: Publish stored changes to the feeds (Redis Streams), each kept near ``feed_maxlen`` messages.
    feeds: bool = True
    feed_maxlen: int = 1_000_000
    #: The token of the HTTP API (``livefleet api``); None: the API does not start.
    api_token: str | None = None
    #: The HMAC secret of monitors' webhooks.
    webhook_secret: str | None = None

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
            mongo_db=env.get("LIVEFLEET_MONGO_DB") or "livefleet",
            var_dir=Path(env.get("LIVEFLEET_VAR_DIR") or "var").absolute(),
            key_prefix=env.get("LIVEFLEET_KEY_PREFIX") or "livefleet",
            sandbox_url=(env.get("LIVEFLEET_SANDBOX_URL") or "").rstrip("/") or None,
            rates=rates,
            fleet_rates={
                platform: _float(env, f"LIVEFLEET_FLEET_RATE_{platform.upper()}", rate)
                for platform, rate in rates.items()
            },
            concurrency=_int(env, "LIVEFLEET_CONCURRENCY", 16),
            session_cooldown=_float(env, "LIVEFLEET_SESSION_COOLDOWN_SECONDS", 60.0),
            lease_seconds=_float(env, "LIVEFLEET_LEASE_SECONDS", 60.0),
            max_failures=max(1, _int(env, "LIVEFLEET_MAX_FAILURES", 3)),
            crawl=env.get("LIVEFLEET_CRAWL") or "default",
            seen_ttl=_int(env, "LIVEFLEET_SEEN_TTL_SECONDS", 12 * 3600),
            bloom_capacity=_int(env, "LIVEFLEET_BLOOM_CAPACITY", 0),
            bloom_error_rate=_float(env, "LIVEFLEET_BLOOM_ERROR_RATE", 0.001),
            store_batch=_int(env, "LIVEFLEET_STORE_BATCH", 500),
            store_retries=_int(env, "LIVEFLEET_STORE_RETRIES", 4),
            log_level=(env.get("LIVEFLEET_LOG_LEVEL") or "INFO").upper(),
            chromium=env.get("LIVEFLEET_CHROMIUM") or "/usr/bin/chromium",
            heartbeat_seconds=_float(env, "LIVEFLEET_HEARTBEAT_SECONDS", 5.0),
            feeds=(env.get("LIVEFLEET_FEEDS") or "1").strip().lower() not in ("0", "false", "no", "off"),
            feed_maxlen=_int(env, "LIVEFLEET_FEED_MAXLEN", 1_000_000),
            api_token=env.get("LIVEFLEET_API_TOKEN") or None,
            webhook_secret=env.get("LIVEFLEET_WEBHOOK_SECRET") or None,
        )


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


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a livefleet child process: ours, with ``overrides`` set."""
    env = dict(os.environ)
    env.update(overrides)
    return env
