"""A Scrapy add-on that gives a plain ``scrapy crawl`` its Redis and MongoDB.

Components never start servers: they read ``LIVEFLEET_REDIS_URL`` /
``LIVEFLEET_MONGO_URI`` and raise ``NotConfigured`` without them. This add-on's
``update_settings`` runs before any component is built, and is the one place
that fills the two:

1. From the settings ``REDIS_URL`` and ``MONGO_URI`` (``-s REDIS_URL=...``, a
   Scrapyd job's settings; the names scrapy-redis and many projects use): they
   mean what the environment variables of those names mean, so they win over the
   ``REDIS_URL`` / ``MONGO_URI`` of the environment, and no embedded server is
   started for them. ``LIVEFLEET_REDIS_URL`` / ``LIVEFLEET_MONGO_URI`` given
   explicitly (at a priority above the project's settings module, which holds
   the environment's value) are the more specific settings and win over them;
   when the two disagree, one line says which was used.
2. With ``LIVEFLEET_EMBEDDED_SERVICES`` on (the default) and a URL still unset,
   from the shared embedded servers of ``LIVEFLEET_VAR_DIR``, ensured once per
   process.

``livefleet worker`` ensures the embedded servers itself and passes their URLs,
so step 2 does nothing there.

Embedded servers are shared by every livefleet command of the var dir (workers,
the API, ``livefleet crawl``) and this command cannot know whether one of them
is using, or is about to use, the servers it started; so it never stops them.
Instead, when its crawl ends (or, if no crawl ends, the process), it logs one
WARNING line naming the servers *it started* that still run (pid, port) and the
exact command that stops them. Servers it merely reused are not its own and are
not reported.
"""

from __future__ import annotations

import atexit
import logging
import shlex
import sys
import threading
from pathlib import Path
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

from crawlers.redis.connection import redact
from crawlers.services.lifecycle import SERVICE_NAMES, Services, ensure_services, read_record
from crawlers.services.processes import port_from_url
from pipelines.store.spool import pid_alive
from settings.defaults import value

logger = logging.getLogger(__name__)

#: Scrapy settings that name a server the way the environment does, and livefleet's own setting for each.
PLAIN_URL_SETTINGS: tuple[tuple[str, str], ...] = (("REDIS_URL", "LIVEFLEET_REDIS_URL"),
                                                   ("MONGO_URI", "LIVEFLEET_MONGO_URI"))

_lock = threading.Lock()
#: (var dir, redis url, mongo uri) -> the services ensured for them in this process.
_ensured: dict[tuple[str, str | None, str | None], Services] = {}
#: var dir -> names of the embedded servers this process started there and has not reported yet.
_unreported: dict[str, tuple[str, ...]] = {}
_atexit_registered = False


class EmbeddedServices:
    """``ADDONS`` entry: fill the server URLs, and report embedded servers this process started
    (see the module docstring)."""

    def __init__(self, crawler: Crawler | None = None) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def update_settings(self, settings: BaseSettings) -> None:
        take_plain_urls(settings)
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
                if services.started:
                    _remember_started(var_dir, services.started)
            report = var_dir in _unreported
        if report and self.crawler is not None:
            # A strong reference: the signal manager would drop a bound method of a temporary object.
            self.crawler.signals.connect(lambda: report_started_servers(var_dir), signal=signals.engine_stopped,
                                         weak=False)
        for name, url in (("LIVEFLEET_REDIS_URL", services.redis_url), ("LIVEFLEET_MONGO_URI", services.mongo_uri)):
            # The project's settings module defines both (as None): an add-on's priority alone would lose.
            priority = max(settings.getpriority(name) or 0, SETTINGS_PRIORITIES["addon"])
            settings.set(name, url, priority=priority)


def take_plain_urls(settings: BaseSettings) -> None:
    """Set ``LIVEFLEET_REDIS_URL`` / ``LIVEFLEET_MONGO_URI`` from the settings ``REDIS_URL`` / ``MONGO_URI``.

    The livefleet setting keeps its value only when it was given explicitly, i.e. at a
    priority above the project's (``settings.scrapy_settings`` sets it, at the project's
    priority, from the environment variable, which the setting overrides)."""
    for plain_name, own_name in PLAIN_URL_SETTINGS:
        plain = settings.get(plain_name)
        if not plain:
            continue
        plain = str(plain)
        own = settings.get(own_name) or None
        own_priority = settings.getpriority(own_name) or 0
        if own is not None and own_priority > SETTINGS_PRIORITIES["project"]:
            if str(own) != plain:
                logger.warning("Settings %s (%s) and %s (%s) disagree: using %s, the more specific one",
                               own_name, redact(own), plain_name, redact(plain), own_name)
            continue
        if own is not None and str(own) != plain:
            logger.warning("Setting %s (%s) overrides the environment variable %s (%s)",
                           plain_name, redact(plain), plain_name, redact(own))
        settings.set(own_name, plain, priority=max(own_priority, SETTINGS_PRIORITIES["addon"]))


def _remember_started(var_dir: str, names: tuple[str, ...]) -> None:
    global _atexit_registered
    _unreported[var_dir] = tuple(sorted({*_unreported.get(var_dir, ()), *names}, key=SERVICE_NAMES.index))
    if not _atexit_registered:
        # A command whose crawl never ends (``scrapy shell`` without a fetch) still says it.
        atexit.register(report_all_started_servers)
        _atexit_registered = True


def stop_command(var_dir: str) -> str:
    """The shell command that stops the embedded servers of ``var_dir`` (``livefleet services stop``)."""
    script = Path(sys.executable).with_name("livefleet")
    program = shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m crawlers"
    return f"LIVEFLEET_VAR_DIR={shlex.quote(var_dir)} {program} services stop"


def started_servers_line(var_dir: str, names: tuple[str, ...]) -> str | None:
    """The one line about the embedded servers ``names`` of ``var_dir`` that still run; None if none does."""
    running: list[str] = []
    for name in names:
        record = read_record(Path(var_dir), name)
        if record is None or not isinstance(record["pid"], int) or not pid_alive(record["pid"]):
            continue  # stopped meanwhile (or replaced by another command, whose server it is now)
        try:
            port: int | str = port_from_url(str(record["url"]))
        except ValueError:
            port = "?"
        running.append(f"{name} (pid {record['pid']}, port {port})")
    if not running:
        return None
    others = [name for name in SERVICE_NAMES if name not in names and read_record(Path(var_dir), name) is not None]
    also = f" (this also stops the embedded {', '.join(others)} this command reused)" if others else ""
    they, keep = ("they", "keep") if len(running) > 1 else ("it", "keeps")
    return (f"This command started embedded {', '.join(running)} under {var_dir}; {they} {keep} running for every "
            f"livefleet command of that var dir. To stop {'them' if len(running) > 1 else 'it'}: "
            f"{stop_command(var_dir)}{also}")


def report_started_servers(var_dir: str) -> None:
    """Log, once, the line about the embedded servers this process started under ``var_dir``."""
    with _lock:
        names = _unreported.pop(var_dir, ())
    line = started_servers_line(var_dir, names) if names else None
    if line is not None:
        logger.warning("%s", line)


def report_all_started_servers() -> None:
    """At the end of the process: the line for every var dir not reported yet."""
    for var_dir in list(_unreported):
        report_started_servers(var_dir)
