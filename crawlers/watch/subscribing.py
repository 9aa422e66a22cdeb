"""Alert subscribers of a watchlist: where its alerts go (a signed webhook, or a DingTalk, Feishu or WeCom robot).

Stored per list in ``<prefix>:watchlist:<name>:subscribers`` (hash id -> JSON), written in the same
transactions as the lists (:mod:`crawlers.watch.lists`), so a change bumps the version workers poll.
Secrets are stored (the sender signs with them) and never shown: :meth:`Subscriber.public` drops the
secret and shows a URL's ``access_token``/``key`` values (and a Feishu hook's token) as ``***``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from crawlers.alerts.robots import EVENTS, KINDS, redact_url
from crawlers.feeds.urlcheck import AllowList, check_url
from crawlers.redis.keys import FleetKeys
from crawlers.watch.lists import _bump, _dumps, _list, _missing, _now, check_name

__all__ = ["Subscriber", "add_subscriber", "remove_subscriber", "subscribers"]


@dataclass(frozen=True)
class Subscriber:
    """Where one list's alerts go. ``secret`` signs them (DingTalk/Feishu "sign", the webhook's HMAC);
    it is never shown: use :meth:`public` for anything printed or served."""

    id: str
    list: str
    kind: str
    url: str
    secret: str | None = field(default=None, repr=False)
    events: tuple[str, ...] = EVENTS
    #: A price_cut alert only for cuts of at least this many percent (None: any cut).
    price_cut_pct: float | None = None
    #: viewers_crossed alerts when a live room's viewers cross one of these, upwards.
    viewers_thresholds: tuple[int, ...] | None = None
    created_at: str = ""

    def public(self) -> dict[str, Any]:
        """The subscriber without its secret, its URL's credentials shown as ``***``."""
        return {"id": self.id, "list": self.list, "kind": self.kind, "url": redact_url(self.url),
                "signed": bool(self.secret), "events": list(self.events), "price_cut_pct": self.price_cut_pct,
                "viewers_thresholds": list(self.viewers_thresholds) if self.viewers_thresholds else None,
                "created_at": self.created_at}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"Subscriber({shown})"

    def stored(self) -> dict[str, Any]:
        data = asdict(self)
        data["events"] = list(self.events)
        data["viewers_thresholds"] = list(self.viewers_thresholds) if self.viewers_thresholds else None
        return data


def _subscriber(raw: bytes | str) -> Subscriber:
    data = json.loads(raw)
    thresholds = data.get("viewers_thresholds")
    return Subscriber(id=data["id"], list=data["list"], kind=data["kind"], url=data["url"], secret=data.get("secret"),
                      events=tuple(data.get("events") or EVENTS), price_cut_pct=data.get("price_cut_pct"),
                      viewers_thresholds=tuple(thresholds) if thresholds else None,
                      created_at=data.get("created_at", ""))


def _events(events: Iterable[str] | str | None) -> tuple[str, ...]:
    if events is None:
        return EVENTS
    names = [e.strip() for e in (events.split(",") if isinstance(events, str) else events) if e.strip()]
    unknown = [e for e in names if e not in EVENTS]
    if unknown or not names:
        raise ValueError(f"unknown event(s) {', '.join(unknown) or '(none given)'}: events are {', '.join(EVENTS)}")
    return tuple(e for e in EVENTS if e in names)  # in the canonical order


def _thresholds(values: Iterable[int | str] | str | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    raw = values.split(",") if isinstance(values, str) else list(values)
    out = set()
    for value in raw:
        text = str(value).strip().replace("_", "")
        if not text.isdigit() or int(text) <= 0:
            raise ValueError(f"a viewers threshold is a positive whole number, got {str(value)[:30]!r}")
        out.add(int(text))
    if not out:
        raise ValueError("no viewers thresholds given")
    return tuple(sorted(out))


def add_subscriber(server: redis.Redis, prefix: str, name: str, kind: str, url: str, secret: str | None = None,
                   events: Iterable[str] | str | None = None, price_cut_pct: float | None = None,
                   viewers_thresholds: Iterable[int | str] | str | None = None, *,
                   allow: AllowList | str | None = None) -> str:
    """Subscribe ``url`` to the alerts of list ``name``; returns the subscriber's id.

    ``kind``: one of :data:`KINDS`. The URL must pass :func:`crawlers.feeds.urlcheck.check_url` as webhooks
    do (no loopback, private or metadata address unless ``allow``, by default ``LIVEFLEET_WEBHOOK_ALLOW``,
    names it). A ``webhook`` needs a ``secret`` (its deliveries are signed). ``events`` default to all of
    :data:`EVENTS`; ``price_cut_pct`` (0-100) and ``viewers_thresholds`` refine price_cut and
    viewers_crossed, which must then be among the events. The same (list, kind, URL) again is the same
    subscriber, replaced."""
    keys = FleetKeys(prefix)
    check_name(name)
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}: one of {', '.join(KINDS)}")
    check_url(url, allow)
    if kind == "webhook" and not secret:
        raise ValueError("a webhook subscriber's deliveries are signed: give it a secret "
                         "(--secret, or LIVEFLEET_WEBHOOK_SECRET)")
    chosen = _events(events)
    pct: float | None = None
    if price_cut_pct is not None:
        pct = float(price_cut_pct)
        if not 0 < pct < 100:  # NaN fails too
            raise ValueError(f"--price-cut-pct is a percentage above 0 and below 100, got {price_cut_pct!r}")
        if "price_cut" not in chosen:
            raise ValueError("--price-cut-pct refines price_cut alerts, which this subscriber does not take")
    thresholds = _thresholds(viewers_thresholds)
    if thresholds is not None and "viewers_crossed" not in chosen:
        raise ValueError("--viewers refines viewers_crossed alerts, which this subscriber does not take")
    sub_id = "s" + hashlib.sha256(f"{name}\n{kind}\n{url}".encode()).hexdigest()[:11]

    def write(pipe: redis.client.Pipeline) -> str:
        raw = pipe.hget(keys.watchlists, name)
        if raw is None:
            raise _missing(name)
        subscriber = Subscriber(id=sub_id, list=name, kind=kind, url=url, secret=secret or None, events=chosen,
                                price_cut_pct=pct, viewers_thresholds=thresholds, created_at=_now(server))
        pipe.multi()
        pipe.hset(keys.watch_subscribers(name), sub_id, _dumps(subscriber.stored()))
        _bump(pipe, keys, _list(raw).platform)
        return sub_id

    return server.transaction(write, keys.watchlists, value_from_callable=True)  # type: ignore[no-any-return]


def remove_subscriber(server: redis.Redis, prefix: str, name: str, sub_id: str) -> bool:
    """Remove one subscriber of list ``name``; False if it has no such subscriber."""
    keys = FleetKeys(prefix)
    check_name(name)

    def write(pipe: redis.client.Pipeline) -> bool:
        raw = pipe.hget(keys.watchlists, name)
        if raw is None:
            raise _missing(name)
        if not pipe.hexists(keys.watch_subscribers(name), sub_id):
            return False
        pipe.multi()
        pipe.hdel(keys.watch_subscribers(name), sub_id)
        _bump(pipe, keys, _list(raw).platform)
        return True

    return server.transaction(write, keys.watchlists, keys.watch_subscribers(name),  # type: ignore[no-any-return]
                              value_from_callable=True)


def subscribers(server: redis.Redis, prefix: str, name: str) -> list[Subscriber]:
    """The subscribers of list ``name``, oldest first. They carry their secrets (for the sender): print
    :meth:`Subscriber.public` only."""
    keys = FleetKeys(prefix)
    if not server.hexists(keys.watchlists, check_name(name)):
        raise _missing(name)
    found = [_subscriber(raw) for raw in server.hvals(keys.watch_subscribers(name))]
    return sorted(found, key=lambda s: (s.created_at, s.id))
