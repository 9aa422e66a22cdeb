"""A campaign: what to crawl, when, how deep and how much, checked by pydantic.

The fields are in the user's terms (categories, areas, rooms, streamers, page
URLs); :meth:`Campaign.seeds` turns them into the seeds each spider's
``requests_from_seed`` takes, every one carrying the run's crawl namespace and
the campaign's priority. Unknown keys are errors, and so is anything a
platform's spider cannot do (keyword search, ranking lists it does not crawl,
shelves where it has none): a campaign never says more than the fleet does.

How deep a crawl goes (``depth``) is a level: ``lists`` (only the list pages),
``rooms`` (each listed room's own page), ``streamers`` (and each streamer's
profile), ``shelves`` (and each live room's product shelf), ``products`` (and
each shelf item's detail). Each level is mapped onto the spider's ``follow``
list by :data:`FOLLOW`; where a spider cannot separate two levels the mapping
says so in a note, and where it cannot go as deep, a campaign-wide depth stops
at the platform's deepest level (noted) while a depth asked of that platform
alone is refused.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
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

from crawlers.campaigns.targets import parse_target
from crawlers.platforms import PLATFORMS

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

#: Douyin's "recommended" pseudo-partition: every live room, the platform's popular ones first.
DOUYIN_RANKINGS = {"recommended": ("720", "1")}
KUAISHOU_TYPES = {1: "热门", 2: "网游", 3: "单机", 4: "手游", 5: "棋牌", 6: "娱乐", 7: "综合", 8: "文化"}

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """When a campaign runs: a five-field cron expression read in an IANA time zone."""

    cron: str
    timezone: str = "Asia/Shanghai"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}")
        if not croniter.is_valid(" ".join(fields)):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai or UTC)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Caps(_Strict):
    """Limits of one run: pages handled (fleet-wide) and wall-clock duration ("20m", "1h30m", "45s")."""

    pages: int | None = Field(default=None, gt=0)
    duration: timedelta | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is None or isinstance(value, timedelta):
            return value
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("a duration is a number of seconds or a text like 20m, 1h30m, 45s")
        if isinstance(value, int):
            seconds = value
        else:
            match = _DURATION.fullmatch(value.strip())
            if not value.strip() or not match:
                raise ValueError(f"not a duration: {value!r} (write it like 20m, 1h30m, 45s)")
            seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
        if seconds <= 0:
            raise ValueError("a duration must be longer than zero")
        return timedelta(seconds=seconds)


class Webhook(_Strict):
    """Where the feeds deliver this campaign's stored changes; the secret is named, never written here."""

    url: str
    secret_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError(f"a webhook URL is http(s)://host/path, got {value!r}")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"secret_env names an environment variable (LIKE_THIS), got {value!r}")
        return value


class PlatformSeeds(_Strict):
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
    """The type of one room / streamer of ``platform``: an ID or page URL in, the spider's ID out."""

    def check(value: str) -> str:
        return parse_target(platform, kind, value)

    return Annotated[str, BeforeValidator(_number_text), AfterValidator(check)]


def _number_text(value: Any) -> Any:
    """YAML reads ``5440`` as a number; an ID is text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class DouyinCategory(_Strict):
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
    streamers: list[_target("kuaishou", "streamer")] = []  # type: ignore[valid-type]

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


class BilibiliArea(_Strict):
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


class Platforms(_Strict):
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


class Campaign(_Strict):
    """One campaign file."""

    name: str
    description: str = ""
    #: Unset: the campaign runs only when asked (``livefleet campaign run``); the scheduler skips it.
    schedule: Schedule | None = None
    #: Added to every request of the run (higher goes first, fleet-wide).
    priority: int = Field(default=0, ge=-1000, le=1000)
    depth: Depth = "streamers"
    #: List pages per category / area.
    max_pages: int = Field(default=3, gt=0, le=200)
    caps: Caps = Caps()
    webhook: Webhook | None = None
    platforms: Platforms

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(f"a campaign name is a slug (lowercase letters, digits, '-'; up to 64), got {value!r}")
        return value

    def spiders(self) -> list[str]:
        return [PLATFORMS[name].spider for name in self.platforms.given()]

    def follow_for(self, platform: str) -> tuple[list[str], str | None]:
        """The spider's ``follow`` list for this campaign's depth on ``platform``, and a note when it differs."""
        seeds = self.platforms.given()[platform]
        table = FOLLOW[platform]
        depth = seeds.depth or self.depth
        if depth in table:
            follow, note = table[depth]
            return list(follow), note
        reachable = [d for d in DEPTHS if d in table]
        nearest = reachable[-1] if DEPTHS.index(depth) > DEPTHS.index(reachable[-1]) else reachable[0]
        follow, _note = table[nearest]
        return list(follow), f"{platform}: depth {depth} is out of its spider's reach; it goes to {nearest}"

    def seeds(self, crawl: str) -> dict[str, list[dict[str, Any]]]:
        """The seeds to push per spider, each in ``crawl`` (the run id) with the campaign's priority."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name, seeds in self.platforms.given().items():
            follow, _note = self.follow_for(name)
            batch = seeds.seeds(follow=follow, max_pages=seeds.max_pages or self.max_pages)
            out[PLATFORMS[name].spider] = [{**seed, "crawl": crawl, "priority": self.priority} for seed in batch]
        return out

    def notes(self) -> list[str]:
        """How the depth maps onto each platform where it is not one to one."""
        return [note for name in self.platforms.given() if (note := self.follow_for(name)[1])]
