"""What a monitor may watch: a platform's room URL, profile URL or bare ID, checked before anything is fetched.

The text is read by :func:`crawlers.targets.parse_target`, the one parser of
room/profile URLs and IDs (campaign files use it too): see there what is
accepted and refused. What is the monitor's own: a watched target becomes the
seed its platform's spider already takes (``room`` or ``streamer``), with
``follow`` limited to the shelf: a monitor watches one room and its products,
not the streamers and rooms around it. A Douyin streamer's profile names no
room page of its own (only the session's ``room_id``), so its seed also follows
``rooms``: the spider goes profile -> the live room by the streamer's handle -> shelf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crawlers import targets
from crawlers.targets import PLATFORM_HOSTS, TargetError
from models.platforms import check_keys

__all__ = ["FOLLOW", "PLATFORM_HOSTS", "SHELF", "Target", "TargetError", "parse_target"]

#: What a monitored page may lead to: the room's shelf ("products") where the platform has one.
SHELF = {"douyin": ("products",), "kuaishou": ("rooms",), "taobao": ("products",), "bilibili": ("rooms",)}
check_keys(SHELF, "crawlers.monitor.watched.SHELF")
#: Where a target's own page is not the room: what it follows to reach the room, then the shelf.
FOLLOW = {("douyin", "streamer"): ("rooms", "products")}


@dataclass(frozen=True)
class Target(targets.Target):
    """One account or room to watch; its seed follows the room and shelf unless told otherwise."""

    def seed(self, follow: Sequence[str] | None = None) -> dict[str, Any]:
        """The seed the platform's spider takes for this target, following the room and shelf only by default."""
        if follow is None:
            follow = FOLLOW.get((self.platform, self.kind), SHELF[self.platform])
        return super().seed(follow)


def parse_target(platform: str, text: str) -> Target:
    """The target ``text`` names on ``platform`` (:func:`crawlers.targets.parse_target`), as a monitor's."""
    return Target(**targets.parse_target(platform, text).as_dict())
