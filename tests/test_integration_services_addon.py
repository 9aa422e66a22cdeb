"""The embedded servers are started by the services add-on (explicitly), never by a component."""

from __future__ import annotations

from pathlib import Path

import pytest
import scrapy
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawlers.download.ratelimit import FleetRateLimitMiddleware
from crawlers.queue.scheduler import RedisScheduler
from crawlers.redis.connection import redis_url_from_settings
from crawlers.services import EmbeddedMongo, EmbeddedRedis, read_record, stop_services
from crawlers.services.addon import EmbeddedServices

pytestmark = pytest.mark.integration


def _settings(var_dir: Path, **values: object) -> Settings:
    settings = Settings()
    settings.setmodule("settings.scrapy_settings", priority="project")
    settings.set("LIVEFLEET_VAR_DIR", str(var_dir), priority="cmdline")
    for name, value in values.items():
        settings.set(name, value, priority="cmdline")
    return settings


def test_the_addon_is_registered():
    settings = Settings()
    settings.setmodule("settings.scrapy_settings")
    assert "crawlers.services.addon.EmbeddedServices" in settings.getdict("ADDONS")


def test_the_addon_fills_unset_urls_from_the_var_dirs_embedded_services(tmp_path: Path):
    var_dir = tmp_path / "var"
    try:
        settings = _settings(var_dir, LIVEFLEET_REDIS_URL=None, LIVEFLEET_MONGO_URI=None)
        EmbeddedServices().update_settings(settings)
        redis_url, mongo_uri = settings.get("LIVEFLEET_REDIS_URL"), settings.get("LIVEFLEET_MONGO_URI")
        assert redis_url == read_record(var_dir, "redis")["url"]  # type: ignore[index]
        assert mongo_uri == read_record(var_dir, "mongo")["url"]  # type: ignore[index]
        assert EmbeddedRedis.ping(redis_url) and EmbeddedMongo.ping(mongo_uri, timeout=5.0)
        again = _settings(var_dir, LIVEFLEET_REDIS_URL=None, LIVEFLEET_MONGO_URI=None)
        EmbeddedServices().update_settings(again)  # once per process: the same servers
        assert again.get("LIVEFLEET_REDIS_URL") == redis_url
    finally:
        stop_services(var_dir)


@pytest.mark.parametrize("values", [
    {"LIVEFLEET_REDIS_URL": "redis://127.0.0.1:1/0", "LIVEFLEET_MONGO_URI": "mongodb://127.0.0.1:1/"},
    {"LIVEFLEET_EMBEDDED_SERVICES": False, "LIVEFLEET_REDIS_URL": None, "LIVEFLEET_MONGO_URI": None},
])
def test_the_addon_does_nothing_when_urls_are_set_or_it_is_off(tmp_path: Path, values: dict[str, object]):
    settings = _settings(tmp_path / "var", **values)
    EmbeddedServices().update_settings(settings)
    assert settings.get("LIVEFLEET_REDIS_URL") == values["LIVEFLEET_REDIS_URL"]
    assert settings.get("LIVEFLEET_MONGO_URI") == values["LIVEFLEET_MONGO_URI"]
    assert not (tmp_path / "var").exists()  # nothing started, nothing recorded


def test_components_without_a_url_raise_not_configured_and_start_nothing(tmp_path: Path):
    var_dir = tmp_path / "var"
    values = {"LIVEFLEET_VAR_DIR": str(var_dir), "LIVEFLEET_FLEET_RATES": {"bilibili": 5}}
    with pytest.raises(NotConfigured, match="LIVEFLEET_REDIS_URL is not set"):
        redis_url_from_settings(Settings(values))
    with pytest.raises(NotConfigured, match="LIVEFLEET_REDIS_URL is not set"):
        RedisScheduler.from_crawler(get_crawler(scrapy.Spider, values))
    with pytest.raises(NotConfigured, match="LIVEFLEET_REDIS_URL is not set"):
        FleetRateLimitMiddleware.from_crawler(get_crawler(scrapy.Spider, values))
    assert not var_dir.exists()
