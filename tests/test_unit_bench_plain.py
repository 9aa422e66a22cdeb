"""The bench's plain-Scrapy side is plain: it starts no server of its own.

Its settings are livefleet's, so the services add-on (``ADDONS``) sees them too; with the
add-on on, the plain crawl started the embedded Redis and SecantusDB in the project's var
dir and left them running after ``make bench``, which stops only the servers it owns.
"""

from __future__ import annotations

from bench.crawl_run import plain_settings
from crawlers.services.addon import EmbeddedServices
from crawlers.services.lifecycle import stop_services
from settings.defaults import value


def test_the_plain_crawl_starts_no_embedded_server(tmp_path):
    settings = plain_settings("http://127.0.0.1:1", 16)
    settings.set("LIVEFLEET_VAR_DIR", str(tmp_path), priority="cmdline")
    try:
        EmbeddedServices().update_settings(settings)
        assert value(settings, "LIVEFLEET_REDIS_URL") is None
        assert value(settings, "LIVEFLEET_MONGO_URI") is None
    finally:
        stopped = stop_services(tmp_path)  # what a wrong answer started, so the failure leaks nothing
    assert stopped == []
