"""Webhooks: stored changes of one campaign or one monitor, POSTed, signed, retried, kept when they fail.

A subscription (``register_webhook``; kept in the Redis hash ``FleetKeys.webhooks``)
names a URL, a shared secret and what it follows: a campaign (records whose
crawl is one of the campaign's runs, ``<name>-<YYYYmmddTHHMM..>`` as
``crawlers.campaigns.runs`` names them, or the bare name) or a monitor (records
whose monitor is that id). The dispatcher (``livefleet webhooks``, or
:class:`WebhookDispatcher` in-process) reads every feed through its own
consumer group, and for each subscription with matching messages POSTs one
JSON body per read round and collection::

    {"subscription": "...", "campaign": "...", "monitor": "...", "events": [<feed message>, ...]}

signed with HMAC-SHA256 of ``<timestamp>.<raw body>`` under the secret::

    X-Livefleet-Timestamp: 1795000000
    X-Livefleet-Signature: sha256=<hex>
    X-Livefleet-Delivery: <unique id of this delivery>

A receiver checks the signature with :func:`verify_signature` (or the same
four lines in its own language) and refuses old timestamps, so a captured
request cannot be replayed later. Connection errors, timeouts, 408, 429 and
5xx are retried with exponential backoff up to ``attempts`` times; other
answers are not retried. A delivery that fails for good is appended to the
Redis list ``FleetKeys.webhook_failures``; ``livefleet webhooks failures``
lists them and ``livefleet webhooks replay`` sends them again (with a fresh
timestamp), removing each one that gets through. Feed messages are
acknowledged once delivered or kept as a failure, so a dispatcher that dies
mid-round delivers that round again: receivers may see an event twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis

from crawlers.feeds.message import COLLECTIONS, FeedMessage
from crawlers.feeds.streams import FeedReader
from crawlers.redis.keys import FleetKeys

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Livefleet-Signature"
TIMESTAMP_HEADER = "X-Livefleet-Timestamp"
DELIVERY_HEADER = "X-Livefleet-Delivery"
#: The dispatcher's consumer group on every feed.
GROUP = "livefleet-webhooks"
#: Failed deliveries kept at most (the oldest are dropped beyond).
MAX_FAILURES_KEPT = 100_000
_RUN_SUFFIX = re.compile(r"\d{8}T\d{4}")
_RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


# -- subscriptions ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """Where to send the changes of one campaign or one monitor."""

    id: str
    url: str
    secret: str
    campaign: str | None = None
    monitor: str | None = None
    created_at: str = ""

    def matches(self, message: FeedMessage) -> bool:
        if self.monitor is not None:
            return message.monitor == self.monitor
        return self.campaign is not None and is_campaign_crawl(self.campaign, message.crawl or "")

    def public(self) -> dict[str, Any]:
        """The subscription without its secret (for listings)."""
        return {k: v for k, v in asdict(self).items() if k != "secret" and v is not None}


def is_campaign_crawl(campaign: str, crawl: str) -> bool:
    """Whether ``crawl`` is a run of ``campaign`` (its name, then ``-`` and the run's UTC time)."""
    if crawl == campaign:
        return True
    return crawl.startswith(campaign + "-") and _RUN_SUFFIX.match(crawl, len(campaign) + 1) is not None


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL must be http:// or https:// with a host, got {url!r}")
    return url


def register_webhook(server: redis.Redis, prefix: str, *, campaign: str | None = None, monitor: str | None = None,
                     url: str, secret: str) -> Subscription:
    """Subscribe ``url`` to the changes of a campaign or a monitor (exactly one of them).

    The same (campaign or monitor, url) registered again is the same subscription, with the new secret."""
    if (campaign is None) == (monitor is None):
        raise ValueError("a webhook follows either a campaign or a monitor")
    if not secret:
        raise ValueError("a webhook needs a secret to sign its deliveries")
    check_url(url)
    target = f"campaign:{campaign}" if campaign is not None else f"monitor:{monitor}"
    sub_id = hashlib.sha256(f"{target}\n{url}".encode()).hexdigest()[:16]
    subscription = Subscription(id=sub_id, url=url, secret=secret, campaign=campaign, monitor=monitor,
                                created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    server.hset(FleetKeys(prefix).webhooks, sub_id, json.dumps(asdict(subscription)))
    return subscription


def remove_webhook(server: redis.Redis, prefix: str, sub_id: str) -> bool:
    return bool(server.hdel(FleetKeys(prefix).webhooks, sub_id))


def list_webhooks(server: redis.Redis, prefix: str) -> list[Subscription]:
    raw = server.hgetall(FleetKeys(prefix).webhooks)
    return sorted((Subscription(**json.loads(v)) for v in raw.values()), key=lambda s: s.created_at)


# -- signing ---------------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body), DELIVERY_HEADER: uuid.uuid4().hex}


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str], *, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """What a receiver checks: the signature matches the raw body and timestamp, and the timestamp is recent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# -- delivering ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How one delivery ended."""

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirected webhook is a failed one: the body is not sent anywhere else


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST and return the HTTP status (any status; raises OSError when there is no answer)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def deliver(url: str, secret: str, body: bytes, *, attempts: int = 5, backoff: float = 0.5,
            max_backoff: float = 30.0, timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep,
            send: Callable[[str, bytes, Mapping[str, str], float], int] = post) -> Delivery:
    """POST ``body`` signed, retrying transient failures with exponential backoff."""
    delay = backoff
    status: int | None = None
    error = ""
    for attempt in range(1, max(1, attempts) + 1):
        headers = signed_headers(secret, body)  # a fresh timestamp for every attempt
        try:
            status = send(url, body, headers, timeout)
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, a broken answer
            status, error = None, f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 300:
                return Delivery(True, attempt, status)
            error = f"HTTP {status}"
            if status not in _RETRY_STATUS:
                return Delivery(False, attempt, status, error)
        if attempt < attempts:
            sleep(delay)
            delay = min(delay * 2, max_backoff)
    return Delivery(False, max(1, attempts), status, error)


# -- the dispatcher --------------------------------------------------------------------------------------------


class WebhookDispatcher:
    """Reads the feeds with its own consumer group and delivers matching messages to subscriptions."""

    def __init__(self, server: redis.Redis, prefix: str, *, consumer: str | None = None, count: int = 100,
                 attempts: int = 5, backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0,
                 claim_idle_ms: int = 60_000, threads: int = 8,
                 collections: Iterable[str] = COLLECTIONS) -> None:
        self.server = server
        self.prefix = prefix
        self.keys = FleetKeys(prefix)
        self.count = count
        self.attempts, self.backoff, self.max_backoff, self.timeout = attempts, backoff, max_backoff, timeout
        consumer = consumer or socket.gethostname()
        self.readers = [FeedReader(server, prefix, c, GROUP, consumer, claim_idle_ms=claim_idle_ms)
                        for c in collections]
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="livefleet-webhook")
        self.delivered = self.failed = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def run(self, stop: threading.Event, *, poll: float = 1.0) -> None:
        """Deliver until ``stop`` is set; waits ``poll`` seconds when the feeds are quiet."""
        while not stop.is_set():
            if not self.run_once():
                stop.wait(poll)

    def run_once(self) -> int:
        """One round over every feed; returns how many feed messages were handled."""
        subscriptions = list_webhooks(self.server, self.prefix)
        handled = 0
        for reader in self.readers:
            messages = reader.read(self.count)
            if not messages:
                continue
            jobs = []
            for sub in subscriptions:
                events = [m for m in messages if sub.matches(m)]
                if events:
                    jobs.append(self._pool.submit(self._deliver_events, sub, events))
            for job in jobs:
                job.result()  # delivered, or kept as a failure: either way the messages are handled
            reader.ack(m.id for m in messages)
            handled += len(messages)
        return handled

    def _deliver_events(self, sub: Subscription, events: list[FeedMessage]) -> None:
        body = json.dumps({"subscription": sub.id, "campaign": sub.campaign, "monitor": sub.monitor,
                           "events": [m.to_json_dict() for m in events]}, ensure_ascii=False).encode()
        result = deliver(sub.url, sub.secret, body, attempts=self.attempts, backoff=self.backoff,
                         max_backoff=self.max_backoff, timeout=self.timeout)
        if result.ok:
            self.delivered += 1
            return
        self.failed += 1
        logger.warning("Webhook %s to %s failed after %d attempts (%s): kept for replay", sub.id, sub.url,
                       result.attempts, result.error)
        self._keep_failure(sub, body, result)

    def _keep_failure(self, sub: Subscription, body: bytes, result: Delivery) -> None:
        entry = {"subscription": sub.id, "url": sub.url, "body": body.decode(), "error": result.error,
                 "status": result.status, "attempts": result.attempts,
                 "failed_at": datetime.now(UTC).isoformat(timespec="seconds")}
        with self.server.pipeline(transaction=True) as pipe:
            pipe.rpush(self.keys.webhook_failures, json.dumps(entry, ensure_ascii=False))
            pipe.ltrim(self.keys.webhook_failures, -MAX_FAILURES_KEPT, -1)
            pipe.execute()


def webhook_failures(server: redis.Redis, prefix: str, limit: int = 100) -> list[dict[str, Any]]:
    """The oldest ``limit`` failed deliveries (their bodies included)."""
    return [json.loads(raw) for raw in server.lrange(FleetKeys(prefix).webhook_failures, 0, limit - 1)]


def replay_failures(server: redis.Redis, prefix: str, *, limit: int = 1000, attempts: int = 3,
                    backoff: float = 0.5, timeout: float = 10.0) -> dict[str, int]:
    """Send failed deliveries again to their subscription's current URL and secret.

    Each one that gets through is removed; the rest stay (a subscription that
    no longer exists keeps its failures too, until it is registered again)."""
    key = FleetKeys(prefix).webhook_failures
    subscriptions = {s.id: s for s in list_webhooks(server, prefix)}
    counts = {"delivered": 0, "failed": 0, "no_subscription": 0}
    for raw in server.lrange(key, 0, limit - 1):
        entry = json.loads(raw)
        sub = subscriptions.get(entry["subscription"])
        if sub is None:
            counts["no_subscription"] += 1
            continue
        result = deliver(sub.url, sub.secret, entry["body"].encode(), attempts=attempts, backoff=backoff,
                         timeout=timeout)
        if result.ok:
            server.lrem(key, 1, raw)
            counts["delivered"] += 1
        else:
            counts["failed"] += 1
    return counts
