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
timestamp), removing each one that gets through.

Only URLs that pass ``crawlers.feeds.urlcheck`` are added or posted to (no
private, loopback or metadata address unless ``LIVEFLEET_WEBHOOK_ALLOW``
names it), and each delivery goes to the address that was checked
(``crawlers.feeds.delivery``). Each subscription has its own queue in Redis
(``<prefix>:webhooks:outbox:<id>``, bounded) and its own worker in the
dispatcher (``crawlers.feeds.dispatch``), so a slow or hanging receiver only
delays its own deliveries. A subscription that can never be delivered to (a
refused or malformed URL, or ``park_after`` deliveries in a row failed) is
*parked*: kept with its reason (``livefleet webhooks list``), its events kept
in its queue, until ``livefleet webhooks enable`` or ``remove``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import redis

from crawlers.feeds.delivery import (  # noqa: F401 (the webhook API in one place)
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    deliver,
    post,
    sign,
    signed_headers,
    verify_signature,
)
from crawlers.feeds.message import FeedMessage
from crawlers.feeds.urlcheck import AllowList, UrlRefused, check_syntax, check_url  # noqa: F401
from crawlers.redis.keys import FleetKeys

logger = logging.getLogger(__name__)

#: The dispatcher's consumer group on every feed.
GROUP = "livefleet-webhooks"
#: Failed deliveries kept at most (the oldest are dropped beyond).
MAX_FAILURES_KEPT = 100_000
_RUN_SUFFIX = re.compile(r"\d{8}T\d{4}")


# -- subscriptions ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """Where to send the changes of one campaign or one monitor; parked ones say why they are."""

    id: str
    url: str
    secret: str
    campaign: str | None = None
    monitor: str | None = None
    created_at: str = ""
    parked_at: str | None = None
    parked_reason: str | None = None

    @property
    def parked(self) -> bool:
        return self.parked_at is not None

    def matches(self, message: FeedMessage) -> bool:
        if self.monitor is not None:
            return message.monitor == self.monitor
        return self.campaign is not None and is_campaign_crawl(self.campaign, message.crawl or "")

    def public(self) -> dict[str, Any]:
        """The subscription without its secret (for listings)."""
        return {k: v for k, v in asdict(self).items() if k != "secret" and v is not None}


_FIELDS = frozenset(f.name for f in fields(Subscription))


def _load(sub_id: str, raw: bytes | str) -> Subscription:
    """A stored subscription; one that cannot be read comes back parked, saying so (never an exception)."""
    try:
        data = json.loads(raw)
        return Subscription(**{k: v for k, v in data.items() if k in _FIELDS})
    except (ValueError, TypeError, AttributeError) as exc:
        return Subscription(id=sub_id, url="", secret="", parked_at="?",
                            parked_reason=f"unreadable subscription ({type(exc).__name__}): remove it")


def is_campaign_crawl(campaign: str, crawl: str) -> bool:
    """Whether ``crawl`` is a run of ``campaign`` (its name, then ``-`` and the run's UTC time)."""
    if crawl == campaign:
        return True
    return crawl.startswith(campaign + "-") and _RUN_SUFFIX.match(crawl, len(campaign) + 1) is not None


def register_webhook(server: redis.Redis, prefix: str, *, campaign: str | None = None, monitor: str | None = None,
                     url: str, secret: str, allow: AllowList | str | None = None) -> Subscription:
    """Subscribe ``url`` to the changes of a campaign or a monitor (exactly one of them).

    The URL must pass :func:`check_url` (``allow``: the operator's allow-list,
    by default ``LIVEFLEET_WEBHOOK_ALLOW``); UrlRefused (a ValueError) says why
    not. The same (campaign or monitor, url) registered again is the same
    subscription, with the new secret, and no longer parked."""
    if (campaign is None) == (monitor is None):
        raise ValueError("a webhook follows either a campaign or a monitor")
    if not secret:
        raise ValueError("a webhook needs a secret to sign its deliveries")
    check_url(url, allow)
    target = f"campaign:{campaign}" if campaign is not None else f"monitor:{monitor}"
    sub_id = hashlib.sha256(f"{target}\n{url}".encode()).hexdigest()[:16]
    subscription = Subscription(id=sub_id, url=url, secret=secret, campaign=campaign, monitor=monitor,
                                created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    server.hset(FleetKeys(prefix).webhooks, sub_id, json.dumps(asdict(subscription)))
    return subscription


def outbox_key(prefix: str, sub_id: str) -> str:
    """List: the bodies waiting for one subscription's worker (oldest first)."""
    return f"{FleetKeys(prefix).webhooks}:outbox:{sub_id}"


def remove_webhook(server: redis.Redis, prefix: str, sub_id: str) -> bool:
    """Remove a subscription and the deliveries waiting for it (its kept failures stay, for the record)."""
    with server.pipeline(transaction=True) as pipe:
        pipe.hdel(FleetKeys(prefix).webhooks, sub_id)
        pipe.delete(outbox_key(prefix, sub_id))
        removed, _ = pipe.execute()
    return bool(removed)


def list_webhooks(server: redis.Redis, prefix: str) -> list[Subscription]:
    raw = server.hgetall(FleetKeys(prefix).webhooks)
    subs = (_load(k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items())
    return sorted(subs, key=lambda s: (s.created_at, s.id))


def park_webhook(server: redis.Redis, prefix: str, sub_id: str, reason: str) -> bool:
    """Stop delivering to a subscription, keeping it with ``reason``; its events wait in its queue."""
    key = FleetKeys(prefix).webhooks
    raw = server.hget(key, sub_id)
    if raw is None:
        return False
    try:
        data = json.loads(raw)
        data.update(parked_at=datetime.now(UTC).isoformat(timespec="seconds"), parked_reason=reason)
    except (ValueError, TypeError, AttributeError):
        return False  # unreadable: listed as parked already, nothing to write back
    server.hset(key, sub_id, json.dumps(data))
    logger.error("Webhook %s parked: %s (livefleet webhooks enable --id %s once fixed, or remove)",
                 sub_id, reason, sub_id)
    return True


def enable_webhook(server: redis.Redis, prefix: str, sub_id: str, allow: AllowList | str | None = None) -> Subscription:
    """Deliver to a parked subscription again (its waiting events first); its URL must pass the check now."""
    key = FleetKeys(prefix).webhooks
    raw = server.hget(key, sub_id)
    if raw is None:
        raise ValueError(f"no webhook subscription {sub_id!r}")
    sub = _load(sub_id, raw)
    if not sub.url:
        raise ValueError(f"webhook subscription {sub_id!r} cannot be read: remove it")
    check_url(sub.url, allow)
    sub = Subscription(**{**asdict(sub), "parked_at": None, "parked_reason": None})
    server.hset(key, sub_id, json.dumps(asdict(sub)))
    return sub


# -- failures --------------------------------------------------------------------------------------------------


def keep_failure(pipe: Any, prefix: str, sub: Subscription, body: bytes | str, result: Delivery) -> None:
    """Queue (on ``pipe``) a failed delivery into the failures list, for ``livefleet webhooks replay``."""
    key = FleetKeys(prefix).webhook_failures
    entry = {"subscription": sub.id, "url": sub.url, "body": body.decode() if isinstance(body, bytes) else body,
             "error": result.error, "status": result.status, "attempts": result.attempts,
             "failed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    pipe.rpush(key, json.dumps(entry, ensure_ascii=False))
    pipe.ltrim(key, -MAX_FAILURES_KEPT, -1)


def webhook_failures(server: redis.Redis, prefix: str, limit: int = 100) -> list[dict[str, Any]]:
    """The oldest ``limit`` failed deliveries (their bodies included)."""
    return [json.loads(raw) for raw in server.lrange(FleetKeys(prefix).webhook_failures, 0, limit - 1)]


def replay_failures(server: redis.Redis, prefix: str, *, limit: int = 1000, attempts: int = 3,
                    backoff: float = 0.5, timeout: float = 10.0,
                    allow: AllowList | str | None = None) -> dict[str, int]:
    """Send failed deliveries again to their subscription's current URL and secret.

    Each one that gets through is removed; the rest stay (a subscription that
    no longer exists keeps its failures too, until it is registered again; a
    parked one's stay, counted as failed, until it is enabled)."""
    key = FleetKeys(prefix).webhook_failures
    allowed = AllowList.of(allow)
    subscriptions = {s.id: s for s in list_webhooks(server, prefix)}
    counts = {"delivered": 0, "failed": 0, "no_subscription": 0}
    for raw in server.lrange(key, 0, limit - 1):
        entry = json.loads(raw)
        sub = subscriptions.get(entry["subscription"])
        if sub is None:
            counts["no_subscription"] += 1
            continue
        result = Delivery(False, 0, error=sub.parked_reason) if sub.parked else deliver(
            sub.url, sub.secret, entry["body"].encode(), attempts=attempts, backoff=backoff, timeout=timeout,
            allow=allowed)
        if result.ok:
            server.lrem(key, 1, raw)
            counts["delivered"] += 1
        else:
            counts["failed"] += 1
    return counts


def __getattr__(name: str) -> Any:
    """``WebhookDispatcher`` lives in ``crawlers.feeds.dispatch`` (imported lazily: it imports this module)."""
    if name == "WebhookDispatcher":
        from crawlers.feeds.dispatch import WebhookDispatcher

        return WebhookDispatcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

