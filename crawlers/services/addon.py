"""A Scrapy add-on that gives a plain ``scrapy crawl`` the embedded Redis and MongoDB.

Components never start servers: they read ``LIVEFLEET_REDIS_URL`` /
``LIVEFLEET_MONGO_URI`` and raise ``NotConfigured`` without them. ``livefleet
worker`` ensures the embedded servers itself and passes their URLs, so this
add-on does nothing there. A Scrapy command run from the repository root
(``scrapy crawl bilibili``, ``scrapy shell``) has no such step; with
``LIVEFLEET_EMBEDDED_SERVICES`` on (the default) and a URL unset, this add-on
ensures the shared embedded servers of ``LIVEFLEET_VAR_DIR`` once per process,
before any component is built, and sets the missing URLs.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

from crawlers.redis.connection import redact
from crawlers.services.lifecycle import Services, ensure_services
from settings.defaults import value

logger = logging.getLogger(__name__)

_lock = threading.Lock()
#: (var dir, redis url, mongo uri) -> the services ensured for them in this process.
_ensured: dict[tuple[str, str | None, str | None], Services] = {}


class EmbeddedServices:
    """``ADDONS`` entry: fill unset server URLs from the embedded servers (see the module docstring)."""

    def update_settings(self, settings: BaseSettings) -> None:
        if not value(settings, "LIVEFLEET_EMBEDDED_SERVICES"):
            return
        redis_url = value(settings, "LIVEFLEET_REDIS_URL")  # None when unset
        mongo_uri = value(settings, "LIVEFLEET_MONGO_URI")
        if redis_url and mongo_uri:
            return
        var_dir = str(Path(value(settings, "LIVEFLEET_VAR_DIR")).absolute())
        with _lock:
            services = _ensured.get((var_dir, redis_url, mongo_uri))
            if services is None:
                services = ensure_services(Path(var_dir), redis_url=redis_url, mongo_uri=mongo_uri)
                _ensured[(var_dir, redis_url, mongo_uri)] = services
                logger.info("Embedded services for this Scrapy command: Redis %s, MongoDB %s",
                            redact(services.redis_url), redact(services.mongo_uri))
        for name, url in (("LIVEFLEET_REDIS_URL", services.redis_url), ("LIVEFLEET_MONGO_URI", services.mongo_uri)):
            # The project's settings module defines both (as None): an add-on's priority alone would lose.
            priority = max(settings.getpriority(name) or 0, SETTINGS_PRIORITIES["addon"])
            settings.set(name, url, priority=priority)
