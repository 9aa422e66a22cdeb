"""The platforms livefleet crawls: the one list.

Everything that means "every platform" (the settings' per-platform rates, the
spiders' registry, the fleet's status and campaign files) takes its names and
their order from :data:`PLATFORMS`; a per-platform table of data (rates, URL
shapes, ...) is keyed by it and checked against it. Adding a platform starts
here (and with a ``spiders/<platform>/`` package: see ``spiders/platforms.py``).
"""

from __future__ import annotations

from typing import Literal, get_args

#: Every platform, in the order livefleet lists them (status tables, ``--help``).
PLATFORMS: tuple[str, ...] = ("bilibili", "douyin", "kuaishou", "taobao")

#: A platform name, as a type (pydantic checks it). The same names as :data:`PLATFORMS`,
#: which :func:`check_keys` and ``tests/test_unit_platforms.py`` hold it to.
Platform = Literal["bilibili", "douyin", "kuaishou", "taobao"]


def check_keys(table: object, what: str) -> None:
    """Raise ``AssertionError`` unless ``table`` (a per-platform mapping or collection) names every platform, once.

    Called at import by modules that keep a per-platform table of data, so a platform
    added to :data:`PLATFORMS` but not to the table (or the other way) fails at once."""
    names = sorted(table)  # type: ignore[call-overload]
    if names != sorted(PLATFORMS):
        missing = sorted(set(PLATFORMS) - set(names))
        extra = sorted(set(names) - set(PLATFORMS))
        raise AssertionError(f"{what}: platforms missing {missing}, unknown {extra} (models/platforms.py)")


assert get_args(Platform) == PLATFORMS, "models.platforms: Platform and PLATFORMS disagree"
