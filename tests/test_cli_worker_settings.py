"""``livefleet worker -s NAME=VALUE``: a setting for one worker reaches its Scrapy settings."""

from __future__ import annotations

import argparse
import sys

import pytest

from crawlers.cli import worker
from settings.defaults import value


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    worker.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["worker", *argv])


def test_worker_command_passes_settings_and_the_parser_reads_them_back():
    cmd = worker.worker_command(["bilibili"], watch=True, settings={"LIVEFLEET_MONITORS_ENABLED": "0"})
    assert cmd[:3] == [sys.executable, "-m", "crawlers"]
    args = _parse(*cmd[4:])
    assert args.set == ["LIVEFLEET_MONITORS_ENABLED=0"] and args.watch and args.spider == ["bilibili"]


def test_a_setting_given_with_s_is_what_the_worker_reads(monkeypatch):
    seen = {}

    def fake_run_worker(config, spiders, **kwargs):
        from scrapy.settings import Settings

        settings = Settings(kwargs["overrides"])
        seen["enabled"] = value(settings, "LIVEFLEET_MONITORS_ENABLED")
        return 0

    monkeypatch.setattr(worker, "run_worker", fake_run_worker)
    assert worker.run(_parse("-s", "LIVEFLEET_MONITORS_ENABLED=0"), config=None) == 0
    assert seen["enabled"] is False
    with pytest.raises(ValueError, match="NAME=VALUE"):
        worker.run(_parse("-s", "novalue"), config=None)
