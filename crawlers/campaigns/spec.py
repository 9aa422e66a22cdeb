"""A campaign: what to crawl, when, how deep and how much, checked by pydantic.

The fields are in the user's terms; :meth:`Campaign.seeds` turns them into the
seeds each spider's ``requests_from_seed`` takes (per platform, in
:mod:`crawlers.campaigns.seeds`), every one carrying the run's crawl namespace
and the campaign's priority. Unknown keys are errors, and so is anything a
platform's spider cannot do: a campaign never says more than the fleet does.
A campaign-wide ``depth`` deeper than a platform's spider goes stops at that
platform's deepest level, with a note (:meth:`Campaign.notes`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import Field, field_validator

from crawlers.campaigns.seeds import DEPTHS, FOLLOW, Depth, Platforms, Strict
from spiders.platforms import PLATFORMS

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
#: A schedule must fire within this many years (a leap day fires every 4).
CRON_HORIZON_YEARS = 5
#: Longest run a campaign may ask for ("9999999999999999999h" once overflowed into a traceback).
MAX_DURATION = timedelta(days=30)


class Schedule(Strict):
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
        try:  # "* * 31 2 *" is valid syntax that never fires: it once passed and then killed the scheduler
            croniter(" ".join(fields), datetime(2025, 1, 1, tzinfo=UTC),
                     max_years_between_matches=CRON_HORIZON_YEARS).get_next(datetime)
        except (CroniterBadDateError, ValueError, OverflowError):
            raise ValueError(f"cron expression {value!r} never fires (no date within "
                             f"{CRON_HORIZON_YEARS} years matches it)") from None
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


class Caps(Strict):
    """Limits of one run: pages handled (fleet-wide) and wall-clock duration ("20m", "1h30m", "45s")."""

    pages: int | None = Field(default=None, gt=0, le=100_000_000)
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
                raise ValueError(f"not a duration: {value[:40]!r} (write it like 20m, 1h30m, 45s)")
            seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
        if seconds <= 0:
            raise ValueError("a duration must be longer than zero")
        if seconds > MAX_DURATION.total_seconds():
            raise ValueError(f"a duration is at most {MAX_DURATION.days} days, got {str(value)[:40]!r}")
        return timedelta(seconds=seconds)


class Webhook(Strict):
    """Where the feeds deliver this campaign's stored changes; the secret is named, never written here."""

    url: str
    secret_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError(f"a webhook URL is http(s)://host/path, got {value!r}")
        from crawlers.feeds.urlcheck import UrlRefused, check_syntax

        try:  # its syntax here; where it resolves to is checked when the run subscribes it, and at delivery
            check_syntax(value)
        except UrlRefused as exc:
            raise ValueError(f"a webhook URL is http(s)://host/path livefleet may post to: {exc}") from None
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"secret_env names an environment variable (LIKE_THIS), got {value!r}")
        return value


class Campaign(Strict):
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
