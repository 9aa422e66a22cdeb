"""Shared machinery of the sandbox's fake worlds: hashing, world time, live schedules.

Every platform world is a pure function of ``(seed, entity, world minute)``: nothing is
stored per request, so the same seed always yields the same world and any moment of it
can be recomputed (the ground truth endpoint and the unit tests rely on this).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

#: Beijing time: the platforms print their wall-clock strings in it.
BEIJING = timezone(timedelta(hours=8))
#: Default world start: a fixed evening (prime time), so a frozen world is reproducible.
DEFAULT_START = datetime(2026, 6, 1, 20, 0, 0, tzinfo=BEIJING).timestamp()
#: What Bilibili prints for "no time" in its string-typed time fields.
ZERO_TIME = "0000-00-00 00:00:00"

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def mix(*parts: int) -> int:
    """A 64-bit hash of integers, stable across runs (unlike ``hash()`` of a str)."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = _splitmix(h ^ (part & _MASK))
    return h


def unit(*parts: int) -> float:
    """A uniform float in [0, 1) determined by ``parts``."""
    return mix(*parts) / 18446744073709551616.0


def text_key(text: str) -> int:
    """A stable integer for a string, to feed ``mix``."""
    return zlib.crc32(text.encode("utf-8"))


def hex_digest(length: int, *parts: int) -> str:
    """``length`` lowercase hex chars derived from ``parts`` (image hashes, session ids)."""
    out: list[str] = []
    counter = 0
    while sum(len(p) for p in out) < length:
        out.append(f"{mix(*parts, counter):016x}")
        counter += 1
    return "".join(out)[:length]


def beijing_text(ts: float) -> str:
    """Unix seconds as the platforms' Beijing ``YYYY-MM-DD HH:MM:SS`` string."""
    return datetime.fromtimestamp(int(ts), tz=UTC).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class WorldClock:
    """World time = start + (wall time elapsed) x scale; scale 0 freezes the world.

    ``wall`` is injectable so tests can drive time without sleeping.
    """

    def __init__(self, start: float, scale: float, wall: Callable[[], float] = time.monotonic) -> None:
        if scale < 0:
            raise ValueError("time scale must be >= 0")
        self._wall = wall
        self._base_world = float(start)
        self._base_wall = wall()
        self._scale = float(scale)

    @property
    def scale(self) -> float:
        """World seconds per wall second."""
        return self._scale

    def now(self) -> float:
        """The current world time in unix seconds."""
        return self._base_world + (self._wall() - self._base_wall) * self._scale

    def minute(self) -> int:
        """The current world minute (unix seconds // 60): the grain of every live value."""
        return int(self.now() // 60)

    def set_scale(self, scale: float) -> None:
        """Change the speed from now on, keeping the current world time (no jump)."""
        if scale < 0:
            raise ValueError("time scale must be >= 0")
        self._base_world = self.now()
        self._base_wall = self._wall()
        self._scale = float(scale)

    def advance(self, seconds: float) -> None:
        """Jump world time forward (or back) by ``seconds``; lets a frozen world move on demand."""
        self._base_world += seconds


@dataclass(frozen=True, slots=True)
class Schedule:
    """When one room is live: world time is cut into slots, each live or not by a hash.

    Slots have a per-room length and phase, so rooms do not all switch at the same
    minute; consecutive live slots form one session whose start is the first slot's start.
    """

    seed: int
    key: int
    slot_minutes: int
    phase: int
    p_live: float
    #: Rooms that never go offline (24/7 channels); ``always_since`` is their session start.
    always_since: int | None = None

    #: A session longer than this many slots is cut (keeps the look-back bounded).
    MAX_SLOTS = 48

    def _slot_live(self, slot: int) -> bool:
        return unit(self.seed, self.key, 0x51, slot) < self.p_live

    def session_start(self, minute: int) -> int | None:
        """The start minute of the session live at ``minute``, or None when offline."""
        if self.always_since is not None:
            return self.always_since if minute >= self.always_since else None
        slot = (minute + self.phase) // self.slot_minutes
        if not self._slot_live(slot):
            return None
        first = slot
        while first > slot - self.MAX_SLOTS and self._slot_live(first - 1):
            first -= 1
        return first * self.slot_minutes - self.phase

    def last_session_start(self, minute: int) -> int | None:
        """The start of the current or most recent session (None if none in the look-back)."""
        if self.always_since is not None:
            return self.session_start(minute)
        slot = (minute + self.phase) // self.slot_minutes
        for back in range(self.MAX_SLOTS):
            probe = (slot - back) * self.slot_minutes - self.phase
            start = self.session_start(probe)
            if start is not None:
                return start
        return None

    def session_end(self, start: int) -> int | None:
        """The first minute after the session that started at ``start`` (None: it never ends).

        Sessions end on slot edges: the first slot whose minutes no longer belong to it.
        """
        if self.always_since is not None:
            return None
        end = start + self.slot_minutes
        for _ in range(self.MAX_SLOTS):
            if self.session_start(end) != start:
                break
            end += self.slot_minutes
        return end

    def starts_between(self, lo: int, hi: int) -> list[int]:
        """The start minutes of the sessions that start within ``[lo, hi]``, in order."""
        if self.always_since is not None:
            return [self.always_since] if lo <= self.always_since <= hi else []
        size, phase = self.slot_minutes, self.phase
        out = []
        for slot in range((lo + phase) // size, (hi + phase) // size + 1):
            first = slot * size - phase
            if lo <= first <= hi and self._slot_live(slot) and self.session_start(first) == first:
                out.append(first)
        return out


def viewers(seed: int, key: int, base: int, session_start: int, minute: int) -> int:
    """Viewers of a live room at ``minute``: a ramp after the start plus per-minute noise."""
    ramp = min(1.0, (minute - session_start + 1) / 30.0)
    drift = 0.8 + 0.4 * unit(seed, key, 0x0D, minute // 15)
    noise = 0.92 + 0.16 * unit(seed, key, 0x0E, minute)
    return max(1, int(base * (0.25 + 0.75 * ramp) * drift * noise))
