"""Logging of the command line and of workers: how loud (``-v``/``-q``) and in which format.

Two formats, chosen by ``LIVEFLEET_LOG_FORMAT`` (``settings/config.py``):

- ``text`` (the default): ``time LEVEL logger: message``, as before;
- ``json``: JSON lines, one object per record with ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
  ``message``, and ``exception`` (the formatted traceback) when the record carries one. A log shipper reads
  them without a parsing rule per message.

Both pass every message and exception text through :func:`crawlers.redis.connection.redact`'s rule for each
URL in it: a Redis or MongoDB URL with a password that reaches a log line loses the password there.

Commands log through :func:`configure` (called once by ``crawlers.cli.main``). A worker's logging is Scrapy's
(``LOG_LEVEL``, ``LOG_FILE`` and friends) from its ``CrawlerProcess`` on (:func:`hand_over_to_scrapy`). Scrapy
builds its root handler's formatter from the ``LOG_FORMAT``/``LOG_DATEFORMAT`` strings, which cannot express
JSON (a message with a quote would break the line), so in JSON mode a handler of ours, configured from the
same settings, stands in for Scrapy's.

How loud: a command logs at ``LIVEFLEET_LOG_LEVEL`` (INFO), except the embedded servers' lifecycle
(``crawlers.services``: "reusing embedded redis at ...", "embedded mongo ready at ..."), which is said only
with ``-v`` (its warnings always are); ``-vv`` is
DEBUG; ``-q`` keeps warnings and errors only.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawlers.redis.connection import redact

if TYPE_CHECKING:
    from scrapy.settings import Settings

#: The loggers whose INFO lines are routine for a person at the command line: shown only with ``-v``. The
#: embedded servers' package: reused, started, ready, stopped (``crawlers/services``: lifecycle, base...).
ROUTINE_LOGGERS = ("crawlers.services",)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A URL inside free text: scheme, ``://``, then up to the next blank or quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***`` (``redact``'s rule)."""
    return _URL.sub(lambda match: redact(match.group(0)), text) if "://" in text else text


class TextFormatter(logging.Formatter):
    """The text format, with credentials scrubbed from the message and the exception."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message`` (and ``exception``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``LIVEFLEET_LOG_FORMAT``'s value (``text`` or ``json``)."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def level_for(base: str, verbose: int, quiet: bool) -> int:
    """The command's root log level: ``base`` (``LIVEFLEET_LOG_LEVEL``), WARNING with ``-q``, at most INFO
    with ``-v`` and DEBUG with ``-vv``."""
    level = logging.getLevelName(base.upper())
    level = level if isinstance(level, int) else logging.INFO
    if quiet:
        return max(level, logging.WARNING)
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return min(level, logging.INFO)
    return level


#: The root handlers this module installed (and may replace or remove).
_OURS: list[logging.Handler] = []


def _add(handler: logging.Handler) -> None:
    _OURS.append(handler)
    logging.getLogger().addHandler(handler)


def _remove_ours() -> None:
    while _OURS:
        logging.getLogger().removeHandler(_OURS.pop())


def configure(*, log_format: str, level: str, verbose: int = 0, quiet: bool = False) -> None:
    """Log a command's records to stderr in ``log_format``; routine service lines only with ``-v``.

    Like :func:`logging.basicConfig`, it leaves a root logger alone that already has handlers someone else
    installed (a test runner's, an embedding program's); the routine loggers are quietened either way."""
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    root = logging.getLogger()
    if any(h not in _OURS for h in root.handlers):
        return
    _remove_ours()  # main() called again in the same process: one handler, on today's stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    _add(handler)
    root.setLevel(level_for(level, verbose, quiet))


def hand_over_to_scrapy(settings: Settings, *, json_lines: bool) -> None:
    """Before a worker's ``CrawlerProcess`` is built from ``settings``: its logging becomes Scrapy's.

    Text: the command's handler goes (Scrapy installs its own root handler; records would print twice).
    JSON: Scrapy builds its handler's formatter from ``LOG_FORMAT`` and reinstalls the handler as each crawler
    is created and again as each starts, so a formatter swapped in would not stay. Instead Scrapy's handler is
    made a ``NullHandler`` (``LOG_ENABLED`` chooses only that) and one JSON handler of ours takes its place,
    built as Scrapy would build it: ``LOG_FILE`` (``LOG_FILE_APPEND``, ``LOG_ENCODING``) or stderr, at
    ``LOG_LEVEL``, with Scrapy's short names under ``LOG_SHORT_NAMES``."""
    from scrapy.utils.log import TopLevelFormatter

    _remove_ours()
    if not json_lines:
        return
    filename = settings.get("LOG_FILE")
    handler: logging.Handler
    if filename:
        handler = logging.FileHandler(filename, mode="a" if settings.getbool("LOG_FILE_APPEND") else "w",
                                      encoding=settings.get("LOG_ENCODING"))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(settings.get("LOG_LEVEL"))
    if settings.getbool("LOG_SHORT_NAMES"):
        handler.addFilter(TopLevelFormatter(["scrapy"]))
    _add(handler)
    settings.set("LOG_ENABLED", False, priority="cmdline")
    settings.set("LOG_FILE", None, priority="cmdline")
