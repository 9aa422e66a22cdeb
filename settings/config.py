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
    ("LIVEFLEET_CONCURRENCY", "16", "Concurrent requests per worker."),
    ("LIVEFLEET_SESSION_COOLDOWN_SECONDS", "60", "How long a platform session rests after it drew a block page."),
    ("LIVEFLEET_STORE_BATCH", "500", "Records per bulk write to MongoDB."),
    ("LIVEFLEET_STORE_RETRIES", "4", "Attempts of one bulk write before its batch is spooled to disk."),
    ("LIVEFLEET_LOG_LEVEL", "INFO", "Log level of livefleet commands and workers."),
    ("LIVEFLEET_CHROMIUM", "/usr/bin/chromium", "The Chromium that Playwright drives for pages that need a browser."),
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
    concurrency: int = 16
    session_cooldown: float = 60.0
    store_batch: int = 500
    store_retries: int = 4
    log_level: str = "INFO"
    chromium: str = "/usr/bin/chromium"

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
            concurrency=_int(env, "LIVEFLEET_CONCURRENCY", 16),
            session_cooldown=_float(env, "LIVEFLEET_SESSION_COOLDOWN_SECONDS", 60.0),
            store_batch=_int(env, "LIVEFLEET_STORE_BATCH", 500),
            store_retries=_int(env, "LIVEFLEET_STORE_RETRIES", 4),
            log_level=(env.get("LIVEFLEET_LOG_LEVEL") or "INFO").upper(),
            chromium=env.get("LIVEFLEET_CHROMIUM") or "/usr/bin/chromium",
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
