"""Per-platform session pools: a few cookie jars (and browser contexts) per worker.

A *session* is what a platform sees as one visitor: a Scrapy cookie jar
(``meta["cookiejar"]``) and, for rendered pages, a browser context
(``meta["playwright_context"]``) of the same name. Sites hand their cookies
out on a first visit (Kuaishou's ``did``, Douyin's ``ttwid``, Taobao's mtop
token) and block visitors, not workers; so a worker keeps
``LIVEFLEET_SESSIONS_PER_PLATFORM`` sessions per platform and egress identity
(a session's cookies belong to the address that received them), and:

* each request gets a session when it is about to be downloaded (not when it
  was created: requests travel between workers through Redis, and a session
  only means something inside one worker);
* a new session is warmed up first, with the spider's own
  ``warmup_request(session)`` (the home-page visit that sets the cookies),
  downloaded directly so the cookies land in that session's jar;
* a session whose request drew a captcha or block page is cooled down for
  ``LIVEFLEET_SESSION_COOLDOWN_SECONDS`` (and warmed again afterwards), and the
  block counts against its egress identity; the spider retries the request,
  which then gets another session (and maybe another identity).

Spiders that use it set ``use_sessions = True``; the pool is ``spider.sessions``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawlers.download.identities import DIRECT
from settings.defaults import value
from spiders.meta import EGRESS_META, PINNED_META, SESSION_META

#: Scrapy signal sent when a session draws a block: ``platform``, ``identity`` (the egress
#: middleware, ``crawlers/download/egress.py``, counts it against the identity's health).
identity_blocked = object()

logger = logging.getLogger(__name__)


@dataclass
class Session:
    """One visitor identity of one platform inside this worker, bound to one egress identity."""

    name: str
    identity: str = DIRECT
    warm: bool = False
    cool_until: float = 0.0
    blocks: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionPool:
    """The sessions of one platform in this worker: ``size`` per egress identity, made on first use.

    Platforms tie their cookies to the address that received them (Douyin's ``ttwid``,
    Kuaishou's ``did``), so a session never changes identity: each identity has its own
    sessions (the direct identity's are named ``<platform>-<n>``, a proxy's
    ``<platform>-<identity>-<n>``). ``on_block(identity)`` is called when a session draws a
    block, so the identity's health counts it too.
    """

    def __init__(self, platform: str, size: int, cooldown: float,
                 on_block: Callable[[str], None] | None = None) -> None:
        self.platform = platform
        self.size = max(1, size)
        self.cooldown = cooldown
        self.on_block = on_block
        self._by_identity: dict[str, list[Session]] = {}
        self._turns: dict[str, Iterator[int]] = {}
        self._by_name: dict[str, Session] = {}
        self._of(DIRECT)  # made now, so they can be named before their first use; warmed only when used

    @property
    def sessions(self) -> list[Session]:
        """Every session made so far (the direct identity's first)."""
        return [s for sessions in self._by_identity.values() for s in sessions]

    def _of(self, identity: str) -> list[Session]:
        sessions = self._by_identity.get(identity)
        if sessions is None:
            stem = self.platform if identity == DIRECT else f"{self.platform}-{identity}"
            sessions = [Session(f"{stem}-{n}", identity) for n in range(self.size)]
            self._by_identity[identity] = sessions
            self._turns[identity] = itertools.cycle(range(len(sessions)))
            self._by_name.update((s.name, s) for s in sessions)
        return sessions

    def pick(self, identity: str = DIRECT, now: float | None = None) -> Session:
        """The identity's next session that is not cooling down (else the one that cools down first)."""
        now = time.monotonic() if now is None else now
        sessions = self._of(identity)
        turn = self._turns[identity]
        for _ in range(len(sessions)):
            session = sessions[next(turn)]
            if session.cool_until <= now:
                return session
        return min(sessions, key=lambda s: s.cool_until)

    def get(self, name: str) -> Session | None:
        return self._by_name.get(name)

    def forget(self, identity: str) -> list[str]:
        """Drop an identity's sessions (it left the fleet's list); returns their names."""
        sessions = self._by_identity.pop(identity, [])
        self._turns.pop(identity, None)
        for session in sessions:
            self._by_name.pop(session.name, None)
        return [s.name for s in sessions]

    def cool_down(self, name: str | None, now: float | None = None) -> None:
        """The platform blocked this session: rest it, and warm it again before its next use."""
        session = self.get(name) if name else None
        if session is None:
            return
        now = time.monotonic() if now is None else now
        session.blocks += 1
        session.cool_until = now + self.cooldown
        session.warm = False
        logger.info("Session %s blocked (%d so far): cooling down %.0fs", name, session.blocks, self.cooldown)
        if self.on_block is not None:
            self.on_block(session.identity)


class SessionMiddleware:
    """Downloader middleware giving each request of a session-using spider a warm session."""

    def __init__(self, crawler: Crawler, size: int, cooldown: float) -> None:
        self.crawler = crawler
        self.size = size
        self.cooldown = cooldown

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        size = value(crawler.settings, "LIVEFLEET_SESSIONS_PER_PLATFORM")
        if size <= 0:
            raise NotConfigured("LIVEFLEET_SESSIONS_PER_PLATFORM is 0")
        middleware = cls(crawler, size, value(crawler.settings, "LIVEFLEET_SESSION_COOLDOWN_SECONDS"))
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        return middleware

    def spider_opened(self, spider: Spider) -> None:
        if getattr(spider, "use_sessions", False):
            platform = spider.platform  # type: ignore[attr-defined]

            def blocked(identity: str) -> None:  # the egress middleware counts it against the identity
                self.crawler.signals.send_catch_log(identity_blocked, platform=platform, identity=identity)

            spider.sessions = SessionPool(platform, self.size, self.cooldown,  # type: ignore[attr-defined]
                                          on_block=blocked)

    async def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        pool: SessionPool | None = getattr(spider, "sessions", None)
        if pool is None or request.meta.get(PINNED_META):
            return None
        session = pool.pick(request.meta.get(EGRESS_META) or DIRECT)
        request.meta[SESSION_META] = session.name
        request.meta["cookiejar"] = session.name
        if request.meta.get("playwright"):
            request.meta["playwright_context"] = session.name
        if not session.warm:
            async with session.lock:  # one warm-up per session, however many requests wait for it
                if not session.warm:
                    await self._warm_up(spider, session)
        return None

    async def _warm_up(self, spider: Spider, session: Session) -> None:
        warmup = spider.warmup_request(session.name)  # type: ignore[attr-defined]
        if warmup is not None:
            warmup.meta.update({PINNED_META: True, SESSION_META: session.name, "cookiejar": session.name,
                                "download_slot": spider.platform,  # type: ignore[attr-defined]
                                EGRESS_META: session.identity})
            if warmup.meta.get("playwright"):
                warmup.meta["playwright_context"] = session.name
            try:
                await self.crawler.engine.download_async(warmup)
            except Exception as exc:  # the request goes ahead; a block will cool the session down
                logger.warning("Warm-up of session %s failed: %s", session.name, exc)
                self.crawler.stats.inc_value(f"livefleet/sessions/warmup_failed/{spider.platform}")  # type: ignore[attr-defined]
                return
            self.crawler.stats.inc_value(f"livefleet/sessions/warmed/{spider.platform}")  # type: ignore[attr-defined]
        session.warm = True
