"""The platforms livefleet knows, and where each one's parts live.

Adding a platform means adding its name to ``models/platforms.py`` (the one
list), a ``spiders/<platform>/`` package (``pages.py`` with a pure ``parse``,
``spider.py`` with the spider) and one line here. The registry is kept in the
list's order and checked against it at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from models.platforms import PLATFORMS as PLATFORM_NAMES
from models.platforms import check_keys


@dataclass(frozen=True)
class PlatformInfo:
    """Where a platform's parsers and spider are."""

    name: str
    spider: str
    pages_module: str
    #: The seed field naming a room / a streamer for ``livefleet crawl --room/--streamer``.
    room_key: str | None = None
    streamer_key: str | None = None

    def pages(self) -> ModuleType:
        return importlib.import_module(self.pages_module)

    @property
    def parse(self) -> Callable[..., list[Any]]:
        return self.pages().parse  # type: ignore[no-any-return]


_INFOS: dict[str, PlatformInfo] = {
    "bilibili": PlatformInfo("bilibili", "bilibili", "spiders.bilibili.pages", room_key="room_id", streamer_key="uid"),
    "douyin": PlatformInfo("douyin", "douyin", "spiders.douyin.pages", room_key="web_rid", streamer_key="sec_uid"),
    "kuaishou": PlatformInfo("kuaishou", "kuaishou", "spiders.kuaishou.pages", room_key="principal_id"),
    "taobao": PlatformInfo("taobao", "taobao", "spiders.taobao.pages", room_key="live_id"),
}
check_keys(_INFOS, "spiders.platforms")

#: Every platform's parts, in the order of ``models.platforms.PLATFORMS``.
PLATFORMS: dict[str, PlatformInfo] = {name: _INFOS[name] for name in PLATFORM_NAMES}


def platform(name: str) -> PlatformInfo:
    try:
        return PLATFORMS[name]
    except KeyError:
        known = ", ".join(PLATFORMS)
        raise ValueError(f"unknown platform {name!r} (known: {known})") from None
