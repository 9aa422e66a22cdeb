"""Every Redis key livefleet writes, built in one place from the key prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpiderKeys:
    """Keys shared by all workers of one spider (one platform)."""

    prefix: str
    spider: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{self.spider}:{name}"

    @property
    def requests(self) -> str:
        """Sorted set: the shared request queue (score = priority, then arrival)."""
        return self._key("requests")

    @property
    def sequence(self) -> str:
        """Counter giving FIFO order within one priority."""
        return self._key("seq")

    @property
    def dupefilter(self) -> str:
        """Set of request fingerprints already scheduled."""
        return self._key("dupefilter")

    @property
    def seeds(self) -> str:
        """List of JSON seeds pushed by ``livefleet crawl``, turned into requests by a spider."""
        return self._key("seeds")

    @property
    def stats(self) -> str:
        """Hash of fleet-wide counters for this spider."""
        return self._key("stats")

    def all(self) -> tuple[str, ...]:
        return (self.requests, self.sequence, self.dupefilter, self.seeds, self.stats)
