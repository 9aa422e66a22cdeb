"""What each platform's spider starts from, in the user's terms, and how deep it goes.

One model per platform (:class:`DouyinSeeds`, ...) lists the seeds a campaign
may give it (categories, areas, ranking lists, rooms, streamers) and turns them
into the seeds its spider's ``requests_from_seed`` takes. A kind of seed the
spider cannot take is refused with the reason (:data:`REFUSED`); keyword search
is refused everywhere, since no spider crawls search results.

How deep a crawl goes (``depth``) is a level: ``lists`` (only the list pages),
``rooms`` (each listed room's own page), ``streamers`` (and each streamer's
profile), ``shelves`` (and each live room's product shelf), ``products`` (and
each shelf item's detail). :data:`FOLLOW` maps each level onto the spider's
``follow`` list, read off each spider's ``DEFAULT_FOLLOW`` and ``follow()``;
where a spider cannot separate two levels the mapping carries a note.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crawlers.targets import parse_target
from models.platforms import check_keys
from spiders.platforms import PLATFORMS

Depth = Literal["lists", "rooms", "streamers", "shelves", "products"]
DEPTHS: tuple[str, ...] = ("lists", "rooms", "streamers", "shelves", "products")

#: Per platform, depth -> (the spider's ``follow`` list, a note when the mapping is not one to one).
#: A platform missing a depth cannot go that deep.
FOLLOW: dict[str, dict[str, tuple[tuple[str, ...], str | None]]] = {
    "bilibili": {
        "lists": ((), None),
        "rooms": (("rooms",), None),
        "streamers": (("rooms", "streamers"), None),
    },
    "douyin": {
        "lists": ((), None),
        "rooms": (("rooms",), None),
        "streamers": (("rooms", "streamers"), None),
        "shelves": (("rooms", "streamers", "products"),
                    "douyin: the spider fetches a shelf's product details with the shelf (one switch)"),
        "products": (("rooms", "streamers", "products"), None),
    },
    "kuaishou": {
        "lists": ((), None),
        "rooms": (("rooms",), None),
        "streamers": (("rooms", "streamers"), None),
    },
    "taobao": {
        "rooms": ((), "taobao: a room seed always fetches the room and its anchor"),
        "streamers": ((), "taobao: the anchor comes with the room; there is no separate profile page"),
        "shelves": (("products",), "taobao: the spider fetches a shelf's item details with the shelf (one switch)"),
        "products": (("products",), None),
    },
}

#: Why a platform's spider cannot take a kind of seed, per field; the file is refused with this message.
REFUSED: dict[str, dict[str, str]] = {
    "douyin": {},
    "kuaishou": {
        "rankings": "kuaishou has no ranking list in livefleet: its category lists already come ordered by the "
                    "platform; use category_types or categories",
    },
    "bilibili": {
        "rankings": "bilibili has no ranking list in livefleet: its area lists already come sorted by online "
                    "viewers; use areas",
    },
    "taobao": {
        "rankings": "taobao has no ranking list in livefleet; list its rooms by liveId or room URL",
        "categories": "taobao offers no public category lists; list its rooms by liveId or room URL",
        "streamers": "taobao offers no public anchor-to-room lookup; list the anchor's room by liveId or room URL",
    },
}

check_keys(FOLLOW, "crawlers.campaigns.seeds.FOLLOW")
check_keys(REFUSED, "crawlers.campaigns.seeds.REFUSED")

#: Douyin's "recommended" pseudo-partition: every live room, the platform's popular ones first.
DOUYIN_RANKINGS = {"recommended": ("720", "1")}
KUAISHOU_TYPES = {1: "热门", 2: "网游", 3: "单机", 4: "手游", 5: "棋牌", 6: "娱乐", 7: "综合", 8: "文化"}


class Strict(BaseModel):
    """Unknown keys are errors; a validated campaign does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformSeeds(Strict):
    """What one platform's spider should start from; shared by every platform."""

    platform: ClassVar[str] = ""
    #: This platform only; unset: the campaign's.
    depth: Depth | None = None
    max_pages: int | None = Field(default=None, gt=0, le=200)
    #: Keyword search: refused on every platform today (no spider crawls search results).
    keywords: list[str] = []

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError(f"{cls.platform} has no keyword search in livefleet (its spider crawls no search "
                             "results); list categories, rooms or streamers instead")
        return value

    @field_validator("rankings", "categories", "streamers", mode="before", check_fields=False)
    @classmethod
    def _refused(cls, value: Any, info: ValidationInfo) -> Any:
        reason = REFUSED.get(cls.platform, {}).get(str(info.field_name))
        if reason and value:
            raise ValueError(reason)
        return value

    @field_validator("depth")
    @classmethod
    def _depth(cls, value: str | None) -> str | None:
        if value is not None and value not in FOLLOW[cls.platform]:
            deepest = max(FOLLOW[cls.platform], key=DEPTHS.index)
            shallowest = min(FOLLOW[cls.platform], key=DEPTHS.index)
            raise ValueError(f"{cls.platform} crawls from {shallowest} down to {deepest} only, not {value}")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> PlatformSeeds:
        if not self.seed_count():
            raise ValueError(f"no seeds for {self.platform}: give {', '.join(self.seed_fields())}")
        return self

    def seed_fields(self) -> list[str]:
        return [name for name in type(self).model_fields
                if name not in ("depth", "max_pages", "keywords") and name not in REFUSED[self.platform]]

    def seed_count(self) -> int:
        total = 0
        for name in self.seed_fields():
            value = getattr(self, name)
            total += 1 if isinstance(value, str) else len(value)
        return total

    def seeds(self, *, follow: list[str], max_pages: int) -> list[dict[str, Any]]:
        raise NotImplementedError


def _target(platform: str, kind: str) -> Any:
    """The type of one room / streamer of ``platform``: an ID or page URL in, the spider's ID out
    (:func:`crawlers.targets.parse_target`, the parser monitors use too)."""

    def check(value: str) -> str:
        return parse_target(platform, value, kind=kind).id

    return Annotated[str, BeforeValidator(_number_text), AfterValidator(check)]


def _number_text(value: Any) -> Any:
    """YAML reads ``5440`` as a number; an ID is text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class DouyinCategory(Strict):
    """A Douyin live category: its partition id and type (``"2823:2"`` for short)."""

    partition: str = Field(pattern=r"^\d{1,12}$")
    type: str = Field(default="1", pattern=r"^\d{1,3}$")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, str | int) and not isinstance(value, bool):
            partition, _, kind = str(value).partition(":")
            return {"partition": partition, "type": kind or "1"}
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value


class DouyinSeeds(PlatformSeeds):
    """Douyin: category partitions, the recommended list, rooms (web_rid or URL), streamers (sec_uid or URL)."""

    platform: ClassVar[str] = "douyin"
    categories: list[DouyinCategory] = []
    rankings: list[Literal["recommended"]] = []
    rooms: list[_target("douyin", "room")] = []  # type: ignore[valid-type]
    streamers: list[_target("douyin", "streamer")] = []  # type: ignore[valid-type]

    def seeds(self, *, follow: list[str], max_pages: int) -> list[dict[str, Any]]:
        partitions = [(c.partition, c.type) for c in self.categories]
        partitions += [DOUYIN_RANKINGS[name] for name in self.rankings if DOUYIN_RANKINGS[name] not in partitions]
        out: list[dict[str, Any]] = [
            {"kind": "category", "partition": p, "partition_type": t, "max_pages": max_pages, "follow": follow}
            for p, t in partitions
        ]
        out += [{"kind": "room", "web_rid": rid, "follow": follow} for rid in _unique(self.rooms)]
        out += [{"kind": "streamer", "sec_uid": uid, "follow": follow} for uid in _unique(self.streamers)]
        return out


class KuaishouSeeds(PlatformSeeds):
    """Kuaishou: category types (1-8, or ``all``), single categories (gameId), rooms and streamers
    (principalId or URL; a streamer's seed is its room page, which carries the profile too)."""

    platform: ClassVar[str] = "kuaishou"
    category_types: Literal["all"] | list[int] = []
    categories: list[str] = []
    rankings: list[str] = []
    rooms: list[_target("kuaishou", "room")] = []  # type: ignore[valid-type]
    #: A streamer's principalId is its room's: the same IDs and URLs (``/u/``, ``/profile/``) as a room.
    streamers: list[_target("kuaishou", "room")] = []  # type: ignore[valid-type]

    @field_validator("category_types")
    @classmethod
    def _types(cls, value: str | list[int]) -> str | list[int]:
        bad = [t for t in value if t not in KUAISHOU_TYPES] if isinstance(value, list) else []
        if bad:
            known = " ".join(f"{k}{v}" for k, v in KUAISHOU_TYPES.items())
            raise ValueError(f"unknown category type(s) {bad} (known: {known}, or all)")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if not re.fullmatch(r"\d{1,20}", c)]
        if bad:
            raise ValueError(f"a kuaishou category is its numeric gameId, got {bad}")
        return value

    def seeds(self, *, follow: list[str], max_pages: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.category_types:
            types = sorted(KUAISHOU_TYPES) if self.category_types == "all" else list(self.category_types)
            out.append({"kind": "categories", "types": types, "max_pages": max_pages, "follow": follow})
        out += [{"kind": "category", "game_id": c, "max_pages": max_pages, "follow": follow} for c in self.categories]
        principals = list(dict.fromkeys([*self.rooms, *self.streamers]))
        out += [{"kind": "room", "principal_id": p, "follow": follow} for p in principals]
        return out


class BilibiliArea(Strict):
    """A Bilibili live area: its parent area and area id (0: the whole parent); ``"2:86"`` or ``2`` for short."""

    parent: int = Field(gt=0)
    area: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"parent": value}
        if isinstance(value, str):
            parent, _, area = value.partition(":")
            if not parent.strip().isdigit() or (area and not area.strip().isdigit()):
                raise ValueError(f"an area is PARENT or PARENT:AREA (numbers), got {value!r}")
            return {"parent": int(parent), "area": int(area or 0)}
        return value


class BilibiliSeeds(PlatformSeeds):
    """Bilibili: areas (``all``, or parent/area ids), rooms (id or URL), streamers (uid or space URL)."""

    platform: ClassVar[str] = "bilibili"
    areas: Literal["all"] | list[BilibiliArea] = []
    rankings: list[str] = []
    rooms: list[_target("bilibili", "room")] = []  # type: ignore[valid-type]
    streamers: list[_target("bilibili", "streamer")] = []  # type: ignore[valid-type]

    def seeds(self, *, follow: list[str], max_pages: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.areas == "all":
            out.append({"kind": "areas", "max_pages": max_pages, "follow": follow})
        else:
            out += [{"kind": "area", "parent_area_id": a.parent, "area_id": a.area, "max_pages": max_pages,
                     "follow": follow} for a in self.areas]
        out += [{"kind": "room", "room_id": r, "follow": follow} for r in _unique(self.rooms)]
        out += [{"kind": "streamer", "uid": u, "follow": follow} for u in _unique(self.streamers)]
        return out


class TaobaoSeeds(PlatformSeeds):
    """Taobao Live: rooms (liveId or room URL); no categories, rankings or streamer lookup exist."""

    platform: ClassVar[str] = "taobao"
    rooms: list[_target("taobao", "room")] = []  # type: ignore[valid-type]
    categories: list[Any] = []
    rankings: list[Any] = []
    streamers: list[Any] = []

    def seeds(self, *, follow: list[str], max_pages: int) -> list[dict[str, Any]]:
        return [{"kind": "room", "live_id": r, "follow": follow} for r in _unique(self.rooms)]


class Platforms(Strict):
    douyin: DouyinSeeds | None = None
    kuaishou: KuaishouSeeds | None = None
    bilibili: BilibiliSeeds | None = None
    taobao: TaobaoSeeds | None = None

    @model_validator(mode="after")
    def _some(self) -> Platforms:
        if not self.given():
            raise ValueError(f"no platform: give at least one of {', '.join(PLATFORMS)}")
        return self

    def given(self) -> dict[str, PlatformSeeds]:
        return {name: seeds for name in PLATFORMS if (seeds := getattr(self, name, None)) is not None}


check_keys(Platforms.model_fields, "crawlers.campaigns.seeds.Platforms")
