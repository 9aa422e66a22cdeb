"""What every platform spider shares: URLs, request building, and page handling.

A platform spider is thin. It says which request to make for a seed
(``requests_from_seed``) and which requests follow from a page's records
(``follow``); this base class does the rest, the same way for every platform:

* URLs are built from the platform's real host, or from the sandbox when
  ``LIVEFLEET_SANDBOX_URL`` is set (``<sandbox>/<real host>/<path>``): nothing
  else in a spider knows which of the two it talks to.
* Every request carries ``meta["download_slot"] = platform`` (per-platform
  rate limits) and ``meta["livefleet"] = {"kind": ...}`` (which parser to use).
* A page goes through the platform's pure parser. Records are yielded; a
  block or empty page is retried with backoff (the platform's download slot
  slows down while blocks keep coming); a payload that can never parse goes
  to quarantine with its raw bytes; "no such room" is counted, not retried.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import scrapy
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from models.entities import ProductSnapshot, QuarantineRecord, Record, RoomSnapshot
from models.errors import BlockedError, GoneError, PageError, PermanentPageError, RetryablePageError
from settings.defaults import value
from spiders.meta import GAVE_UP_META, PAGE_META, SESSION_META

logger = logging.getLogger(__name__)

Parser = Callable[..., list[Any]]


class PlatformSpider(scrapy.Spider):
    """Base of livefleet's platform spiders."""

    #: One of ``models.platforms.PLATFORMS``.
    platform: ClassVar[str] = ""
    #: Statuses the spider reads itself because the platform puts a block code in them.
    handle_httpstatus_list: ClassVar[list[int]] = []
    #: Longest delay the block backoff puts on the platform's download slot.
    max_block_delay: ClassVar[float] = 8.0
    #: Requests get a session (cookie jar / browser context) from the worker's pool for
    #: this platform (``crawlers.download.sessions``); a blocked session is cooled down.
    use_sessions: ClassVar[bool] = False
    #: The slot's configured delay, remembered while blocks slow it down.
    _base_delay: float | None = None

    def __init__(self, *args: Any, seeds: str | None = None, **kwargs: Any) -> None:
        """``seeds``: a JSON list of seeds, for a crawl run without the shared queue
        (``scrapy crawl <platform> -a seeds='[...]'``); workers take theirs from Redis."""
        super().__init__(*args, **kwargs)
        self._local_seeds: list[dict[str, Any]] = json.loads(seeds) if seeds else []

    async def start(self) -> AsyncIterator[Any]:
        for seed in self._local_seeds:
            for request in self.seed_requests(seed):
                yield request

    def seed_requests(self, seed: dict[str, Any]) -> list[scrapy.Request]:
        """:meth:`requests_from_seed`, and what every seed may say whatever its platform: ``"snapshots":
        false`` (a notify-only watch's check) keeps the pages' records but drops their snapshots (no time
        series is stored for the account)."""
        requests = list(self.requests_from_seed(seed))
        if seed.get("snapshots") is False:
            for request in requests:
                request.meta[PAGE_META] = {**request.meta.get(PAGE_META, {}), "snapshots": False}
        return requests

    # -- to implement per platform ------------------------------------------------------------

    def parse_payload(self, body: bytes, *, url: str, fetched_at: datetime, kind: str) -> list[Any]:
        """Run the platform's pure parser."""
        raise NotImplementedError

    def requests_from_seed(self, seed: dict[str, Any]) -> Iterable[scrapy.Request]:
        """Requests for one seed pushed by ``livefleet crawl``; ValueError for a bad seed."""
        raise NotImplementedError

    def follow(self, response: Response, kind: str, records: list[Any]) -> Iterable[scrapy.Request]:
        """Requests that follow from a parsed page (next page, details)."""
        return ()

    def warmup_request(self, session: str) -> scrapy.Request | None:
        """The first visit that gives a new session its cookies (None: nothing to do)."""
        return None

    async def on_blocked(self, error: BlockedError) -> None:
        """Called before a blocked request is retried (the session is already cooled down)."""

    # -- URLs and requests --------------------------------------------------------------------

    # Settings read once per spider (they are read on every request and every response).
    @functools.cached_property
    def _sandbox_url(self) -> str | None:
        return value(self.settings, "LIVEFLEET_SANDBOX_URL")

    @functools.cached_property
    def _parse_thread_bytes(self) -> int:
        return int(value(self.settings, "LIVEFLEET_PARSE_THREAD_BYTES"))

    def url(self, host: str, path: str, params: dict[str, Any] | None = None) -> str:
        """The URL of ``path`` on the platform's real ``host`` (or its sandbox replica)."""
        sandbox = self._sandbox_url
        base = f"{sandbox.rstrip('/')}/{host}" if sandbox else f"https://{host}"
        query = f"?{urlencode(params, doseq=True)}" if params else ""
        return f"{base}{path}{query}"

    def page_request(self, kind: str, url: str, *, priority: int = 0, dont_filter: bool = False,
                     **context: Any) -> scrapy.Request:
        """A request whose response is parsed as ``kind``; ``context`` must be JSON-able."""
        return scrapy.Request(
            url,
            callback=self.parse_page,
            errback=self.on_error,
            priority=priority,
            dont_filter=dont_filter,
            meta={"download_slot": self.platform, PAGE_META: {"kind": kind, **context}},
        )

    # -- pages --------------------------------------------------------------------------------

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        context = response.meta.get(PAGE_META) or {}
        kind = context.get("kind")
        fetched_at = datetime.now(UTC)
        stats = self.crawler.stats
        try:
            records = await self._parse_off_reactor(response.body, url=response.url, fetched_at=fetched_at,
                                                    kind=kind)
        except BlockedError as exc:
            stats.inc_value(f"livefleet/spider/blocked/{self.platform}")
            self._slow_down(response)
            pool = getattr(self, "sessions", None)
            if pool is not None:  # this visitor is burnt for now: the retry gets another one
                pool.cool_down(response.meta.get(SESSION_META))
            await self.on_blocked(exc)
            for item in self._retry(response, exc):
                yield item
            return
        except RetryablePageError as exc:
            stats.inc_value(f"livefleet/spider/retryable/{self.platform}")
            for item in self._retry(response, exc):
                yield item
            return
        except GoneError as exc:
            stats.inc_value(f"livefleet/spider/gone/{self.platform}")
            logger.debug("Gone: %s", exc)
            return
        except PermanentPageError as exc:
            stats.inc_value(f"livefleet/spider/unparsable/{self.platform}")
            yield self.quarantine(response.url, exc, response.body, fetched_at)
            return
        self._speed_up(response)
        stats.inc_value(f"livefleet/spider/pages/{self.platform}/{kind}")
        records = self.annotate(response, kind, records)
        keep_snapshots = context.get("snapshots") is not False
        for record in records:
            if not keep_snapshots and isinstance(record, RoomSnapshot | ProductSnapshot):
                stats.inc_value(f"livefleet/spider/snapshots_not_kept/{self.platform}")
                continue
            if isinstance(record, Record) and record.collection:  # lists like areas only steer the crawl
                yield record
        for request in self.follow(response, kind, records):
            yield request

    def annotate(self, response: Response, kind: str, records: list[Any]) -> list[Any]:
        """What the crawl knows about a page beyond its payload (the request that led to it),
        added to its records; the default adds nothing. Parsers stay pure functions of the payload."""
        return records

    async def _parse_off_reactor(self, body: bytes, **inputs: Any) -> list[Any]:
        """``parse_payload``, in a thread for a body of ``LIVEFLEET_PARSE_THREAD_BYTES`` or more.

        Parsers are pure functions of their inputs, so a thread is safe; on the reactor
        thread, a large hostile page (megabytes of HTML where JSON was expected) would
        stop every download, heartbeat and lease renewal of the worker until it is done.
        Small bodies parse inline: a thread hop costs more than they do.
        """
        if len(body) < self._parse_thread_bytes:
            return self.parse_payload(body, **inputs)
        self.crawler.stats.inc_value(f"livefleet/spider/parsed_in_thread/{self.platform}")
        return await maybe_deferred_to_future(deferToThread(self.parse_payload, body, **inputs))

    def _retry(self, response: Response, exc: PageError) -> Iterator[Any]:
        retry = get_retry_request(response.request, spider=self, reason=exc.kind)
        if retry is not None:
            retry.meta.pop("download_latency", None)  # the last download's, not this one's
            yield retry
            return
        self.crawler.stats.inc_value(f"livefleet/spider/gave_up/{self.platform}")
        logger.error("Gave up on %s after retries: %s", response.url, exc)
        response.request.meta[GAVE_UP_META] = f"{exc.kind}: {exc}"  # the fleet dead-letters the request
        yield self.quarantine(response.url, exc, response.body, datetime.now(UTC), prefix="GaveUp")

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """Bounded bodies: the platform's ``LIVEFLEET_MAX_RESPONSE_BYTES`` is its crawler's
        ``DOWNLOAD_MAXSIZE`` (a quarter of it ``DOWNLOAD_WARNSIZE``). Scrapy's download handler
        then cancels a longer body (``DownloadCancelledError``, by Content-Length or while
        receiving) and ``HttpCompressionMiddleware`` stops inflating past it (``IgnoreRequest``):
        a compression bomb never reaches memory. Both end in :meth:`on_error` (a command-line
        ``-s DOWNLOAD_MAXSIZE`` still wins)."""
        super().update_settings(settings)
        limit = value(settings, "LIVEFLEET_MAX_RESPONSE_BYTES").get(cls.platform)
        if limit:
            settings.set("DOWNLOAD_MAXSIZE", int(limit), priority="spider")
            settings.set("DOWNLOAD_WARNSIZE", int(limit) // 4, priority="spider")

    def on_error(self, failure: Failure) -> Iterator[Any]:
        """Transport errors that outlived RetryMiddleware: recorded, never silently dropped.

        A body over the size limit is no transport error: it is quarantined at once with the reason
        ``response larger than N bytes`` (never retried: the next answer would be as large)."""
        request = failure.request  # type: ignore[attr-defined]
        oversized = oversize_reason(failure)
        if oversized is not None:
            self.crawler.stats.inc_value(f"livefleet/spider/oversized/{self.platform}")
            logger.warning("Oversized response quarantined: %s (%s)", request.url, oversized)
            reason = PageError(oversized, platform=self.platform, url=request.url)
            yield self.quarantine(request.url, reason, None, datetime.now(UTC), prefix="Oversized")
            return
        self.crawler.stats.inc_value(f"livefleet/spider/failed/{self.platform}")
        logger.error("Request failed for good: %s (%s)", request.url, failure.getErrorMessage())
        response = getattr(failure.value, "response", None)
        body = response.body if response is not None else None
        reason = PageError(f"{failure.type.__name__}: {failure.getErrorMessage()}",
                           platform=self.platform, url=request.url)
        yield self.quarantine(request.url, reason, body, datetime.now(UTC), prefix="GaveUp")

    def quarantine(self, url: str, exc: Exception, body: bytes | None, fetched_at: datetime,
                   prefix: str = "") -> QuarantineRecord:
        reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        payload, encoding = _payload_text(body)
        return QuarantineRecord(
            platform=self.platform,
            spider=self.name,
            url=url,
            reason=f"{prefix}: {reason}" if prefix else reason,
            payload=payload,
            payload_encoding=encoding,
            fetched_at=fetched_at,
            quarantined_at=datetime.now(UTC),
        )

    # -- block backoff ------------------------------------------------------------------------

    def _slot(self, response: Response) -> Any:
        """The download slot the response came through: the platform's, or one egress identity's
        (``<platform>@<identity>``): a block slows down only the address that drew it."""
        engine = getattr(self.crawler, "engine", None)
        key = response.meta.get("download_slot") or self.platform
        return engine.downloader.slots.get(key) if engine else None

    def _slow_down(self, response: Response) -> None:
        """A block raises the platform slot's delay by half (at least to 0.25 s), up to
        ``max_block_delay``; good pages bring it back down by a fifth each. The
        slot slows down while blocks outnumber good pages about one to two, and
        recovers otherwise, so scattered blocks (one burnt session) cost little."""
        slot = self._slot(response)
        if slot is not None:
            if self._base_delay is None:
                self._base_delay = slot.delay
            slot.delay = min(max(slot.delay * 1.5, 0.25), self.max_block_delay)

    def _speed_up(self, response: Response) -> None:
        """Each good page takes a step back toward the configured delay."""
        slot = self._slot(response)
        if slot is not None and self._base_delay is not None and slot.delay > self._base_delay:
            slot.delay = max(self._base_delay, slot.delay * 0.8)


_CANCELLED = re.compile(r"(\d+) bytes which is larger than download max size \((\d+)\)")
_INFLATED = re.compile(r"\((\d+) B compressed, (\d+) B decompressed so far\) exceeded DOWNLOAD_MAXSIZE \((\d+) B\)")


def oversize_reason(failure: Failure) -> str | None:
    """``response larger than N bytes (...)`` when ``failure`` is Scrapy refusing a body over
    ``DOWNLOAD_MAXSIZE`` (the download handler's cancel, or the decompression limit); else None."""
    message = failure.getErrorMessage()
    if failure.check(DownloadCancelledError) and (match := _CANCELLED.search(message)):
        size, limit = match.groups()
        return f"response larger than {limit} bytes ({size} bytes announced or received)"
    if failure.check(IgnoreRequest) and (match := _INFLATED.search(message)):
        compressed, inflated, limit = match.groups()
        return (f"response larger than {limit} bytes after decompression ({compressed} bytes compressed, "
                f"over {inflated} inflated when stopped)")
    return None


def _payload_text(body: bytes | None) -> tuple[str | None, str]:
    if body is None:
        return None, "utf-8"
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"
