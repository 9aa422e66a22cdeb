"""Configuration: read once from the environment, checked, documented."""

from pathlib import Path

import pytest
from scrapy.settings import Settings

from settings.config import ENV_VARS, Config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_no_environment():
    config = Config.from_env({})
    assert config.redis_url is None and config.mongo_uri is None  # embedded servers
    assert config.mongo_db == "livefleet" and config.key_prefix == "livefleet"
    assert config.rates["bilibili"] == 20.0  # rate limits are on by default
    assert config.var_dir.is_absolute()


def test_values_are_read_and_checked():
    config = Config.from_env({"REDIS_URL": "redis://h:1/0", "LIVEFLEET_RATE_BILIBILI": "0",
                              "LIVEFLEET_SANDBOX_URL": "http://127.0.0.1:9/", "LIVEFLEET_STORE_BATCH": "50"})
    assert config.redis_url == "redis://h:1/0"
    assert config.rates["bilibili"] == 0.0
    assert config.sandbox_url == "http://127.0.0.1:9"
    assert config.store_batch == 50
    with pytest.raises(ValueError, match="LIVEFLEET_STORE_BATCH must be an integer"):
        Config.from_env({"LIVEFLEET_STORE_BATCH": "many"})
    with pytest.raises(ValueError, match="must not be negative"):
        Config.from_env({"LIVEFLEET_RATE_BILIBILI": "-1"})


def test_readme_documents_every_variable_with_its_default():
    text = README.read_text(encoding="utf-8")
    for name, default, meaning in ENV_VARS:
        assert f"| `{name}` | {default} | {meaning} |" in text


def test_scrapy_settings_carry_the_rate_limit_per_platform_slot():
    settings = Settings()
    settings.setmodule("settings.scrapy_settings")
    slots = settings.getdict("DOWNLOAD_SLOTS")
    assert slots["bilibili"]["delay"] == pytest.approx(1 / 20)
    assert settings.get("SCHEDULER") == "crawlers.queue.scheduler.RedisScheduler"
    assert not settings.getbool("REMOTE_CONTROL_ENABLED")
    assert list(settings.getdict("ITEM_PIPELINES")) == [
        "pipelines.p100_validate.ValidatePipeline", "pipelines.p200_quarantine.QuarantinePipeline",
        "pipelines.p300_store.StorePipeline", "crawlers.feeds.pipeline.FeedPipeline"]
