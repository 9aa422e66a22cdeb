"""The platforms livefleet knows, and where each one's parts live.

Adding a platform means adding a ``spiders/<platform>/`` package (``pages.py``
with a pure ``parse``, ``spider.py`` with the spider) and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class PlatformInfo:
    """Where a platform's parsers and spider are."""

    name: str
    spider: str
    pages_module: str

    def pages(self) -> ModuleType:
        return importlib.import_module(self.pages_module)

    @property
    def parse(self) -> Callable[..., list[Any]]:
        return self.pages().parse  # type: ignore[no-any-return]


PLATFORMS: dict[str, PlatformInfo] = {
    "bilibili": PlatformInfo("bilibili", spider="bilibili", pages_module="spiders.bilibili.pages"),
    "douyin": PlatformInfo("douyin", spider="douyin", pages_module="spiders.douyin.pages"),
    "kuaishou": PlatformInfo("kuaishou", spider="kuaishou", pages_module="spiders.kuaishou.pages"),
    "taobao": PlatformInfo("taobao", spider="taobao", pages_module="spiders.taobao.pages"),
}


def platform(name: str) -> PlatformInfo:
    try:
        return PLATFORMS[name]
    except KeyError:
        known = ", ".join(sorted(PLATFORMS))
        raise ValueError(f"unknown platform {name!r} (known: {known})") from None
