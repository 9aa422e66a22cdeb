"""The store's settings: one frozen config, its defaults from ``settings/defaults.py``, no server started."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from scrapy.settings import Settings

from pipelines.store.config import StoreConfig, mongo_uri_from_settings
from settings.defaults import DEFAULTS


def test_defaults_come_from_the_settings_module():
    config = StoreConfig.from_settings(Settings({"LIVEFLEET_MONGO_URI": "mongodb://db:27017"}))
    assert config == StoreConfig(
        uri="mongodb://db:27017",
        db=DEFAULTS["LIVEFLEET_MONGO_DB"],
        batch=DEFAULTS["LIVEFLEET_STORE_BATCH"],
        flush_seconds=DEFAULTS["LIVEFLEET_STORE_FLUSH_SECONDS"],
        retries=DEFAULTS["LIVEFLEET_STORE_RETRIES"],
        cooldown=DEFAULTS["LIVEFLEET_STORE_COOLDOWN_SECONDS"],
        spool_dir=Path(DEFAULTS["LIVEFLEET_VAR_DIR"]) / "spool",
        timeout_ms=DEFAULTS["LIVEFLEET_MONGO_TIMEOUT_MS"],
        hold_seconds=DEFAULTS["LIVEFLEET_STORE_HOLD_SECONDS"],
    )


def test_overrides_are_read_and_typed_like_their_defaults(tmp_path):
    # Values as they come from the command line or the environment: strings.
    config = StoreConfig.from_settings(Settings({
        "LIVEFLEET_MONGO_URI": "mongodb://db:27017", "LIVEFLEET_MONGO_DB": "other", "LIVEFLEET_STORE_BATCH": "25",
        "LIVEFLEET_STORE_FLUSH_SECONDS": "0.5", "LIVEFLEET_STORE_RETRIES": "2",
        "LIVEFLEET_STORE_COOLDOWN_SECONDS": "3", "LIVEFLEET_VAR_DIR": str(tmp_path),
        "LIVEFLEET_MONGO_TIMEOUT_MS": "300", "LIVEFLEET_STORE_HOLD_SECONDS": "7",
    }))
    assert (config.db, config.batch, config.flush_seconds, config.retries, config.cooldown, config.spool_dir,
            config.timeout_ms, config.hold_seconds) == ("other", 25, 0.5, 2, 3.0, tmp_path / "spool", 300, 7.0)
    assert [type(getattr(config, f.name)) for f in dataclasses.fields(config)] == [
        str, str, int, float, int, float, type(tmp_path), int, float]


def test_a_batch_holds_at_least_one_record():
    config = StoreConfig.from_settings(Settings({"LIVEFLEET_MONGO_URI": "mongodb://db", "LIVEFLEET_STORE_BATCH": 0}))
    assert config.batch == 1


def test_the_config_is_frozen():
    config = StoreConfig.from_settings(Settings({"LIVEFLEET_MONGO_URI": "mongodb://db"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch = 1  # type: ignore[misc]


@pytest.mark.parametrize("uri", [None, ""])
def test_without_a_mongodb_address_the_store_is_not_configured_and_no_server_starts(tmp_path, uri):
    settings = Settings({"LIVEFLEET_MONGO_URI": uri, "LIVEFLEET_VAR_DIR": str(tmp_path / "var")})
    with pytest.raises(ValueError, match="LIVEFLEET_MONGO_URI is not set"):
        mongo_uri_from_settings(settings)
    with pytest.raises(ValueError, match="LIVEFLEET_MONGO_URI is not set"):
        StoreConfig.from_settings(settings)
    assert not (tmp_path / "var").exists()  # nothing started, nothing written


def test_the_configured_address_is_used_as_it_is():
    assert mongo_uri_from_settings(Settings({"LIVEFLEET_MONGO_URI": "mongodb://a:1,b:2/?replicaSet=r"})) == (
        "mongodb://a:1,b:2/?replicaSet=r")
