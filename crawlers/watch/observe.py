"""What a stored document says about a watched room or streamer being live, and which entries it names.

The watcher reads the ``rooms`` and ``streamers`` feeds; each message is one stored document. An
:class:`Observation` is its word on liveness (rooms: ``status``; streamers: ``is_live``), with the IDs it
carries; an :class:`_Index` maps those IDs to the watched entries of a platform (room entries by
``room_id``/``web_rid``, streamer entries by ``streamer_id`` and learned aliases).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crawlers.feeds.message import FeedMessage
from crawlers.watch.lists import WatchEntry

#: Room statuses that mean the stream is not (or no longer) live.
NOT_LIVE = frozenset({"ended", "offline", "replay"})


def _ms(value: Any) -> int | None:
    """Epoch ms of an ISO time (or datetime); None when it is not one."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _id(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class Observation:
    """One stored document's word on whether a room or streamer is live."""

    platform: str
    live: bool
    at_ms: int
    room_id: str | None = None
    web_rid: str | None = None
    streamer_id: str | None = None
    #: Other IDs of the streamer the document names (sec_id, handle).
    aliases: tuple[str, ...] = ()
    #: The platform's own start of the broadcast (rooms documents), ISO.
    started_at: str | None = None
    viewers: int | None = None
    #: The feed it came from: ``rooms`` or ``streamers``.
    source: str = "rooms"

    @classmethod
    def of(cls, message: FeedMessage) -> Observation | None:
        doc = message.doc
        platform = doc.get("platform")
        at = _ms(doc.get("fetched_at") or doc.get("captured_at") or message.at)
        if not platform or at is None:
            return None
        if message.collection == "rooms":
            status = doc.get("status")
            if status != "live" and status not in NOT_LIVE:
                return None
            return cls(platform, status == "live", at, room_id=_id(doc.get("room_id")),
                       web_rid=_id(doc.get("web_rid")), streamer_id=_id(doc.get("streamer_id")),
                       started_at=doc.get("started_at") if isinstance(doc.get("started_at"), str) else None,
                       viewers=doc.get("viewers_now") if isinstance(doc.get("viewers_now"), int) else None)
        if message.collection == "streamers":
            is_live = doc.get("is_live")
            if not isinstance(is_live, bool):
                return None
            aliases = tuple(a for a in (_id(doc.get("sec_id")), _id(doc.get("handle"))) if a)
            return cls(platform, is_live, at, room_id=_id(doc.get("room_id")),
                       streamer_id=_id(doc.get("streamer_id")), aliases=aliases, source="streamers")
        return None


@dataclass
class _Index:
    """One platform's watched entries and the IDs that name them."""

    entries: dict[str, WatchEntry] = field(default_factory=dict)
    rooms: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    streamers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: streamer_id -> entries whose ID is another ID of that streamer (learned aliases).
    by_alias: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    resolved: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, entries: Iterable[WatchEntry]) -> _Index:
        index = cls()
        for entry in entries:
            index.entries[entry.key] = entry
            ident = entry.target["id"]
            (index.rooms if entry.target["kind"] == "room" else index.streamers)[ident].add(entry.key)
        return index

    def match(self, obs: Observation) -> set[str]:
        found: set[str] = set()
        for ident in (obs.room_id, obs.web_rid):
            if ident:
                found |= self.rooms.get(ident, set())
        for ident in (obs.streamer_id, *obs.aliases):
            if ident:
                found |= self.streamers.get(ident, set())
        for ident in (obs.streamer_id, obs.room_id):
            if ident:
                found |= self.by_alias.get(ident, set())
        return found
