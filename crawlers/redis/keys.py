"""Every Redis key livefleet writes, built in one place from the key prefix.

Per spider (one platform): the pending queue, the leases, the dead letters,
the seed list, fleet-wide stats, and the dedup namespaces of each crawl.
Fleet-wide: worker heartbeats and the per-platform rate buckets. Outside the
prefix: scrapy-redis's start-URL key of a spider, read for its producers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpiderKeys:
    """Keys shared by all workers of one spider (one platform)."""

    prefix: str
    spider: str

    @property
    def base(self) -> str:
        """What every key of this spider starts with."""
        return f"{self.prefix}:{self.spider}:"

    def _key(self, name: str) -> str:
        return f"{self.base}{name}"

    @property
    def requests(self) -> str:
        """Sorted set of pending requests (score = -priority * 2**32 + arrival sequence)."""
        return self._key("requests")

    @property
    def sequence(self) -> str:
        """Counter giving FIFO order within one priority."""
        return self._key("seq")

    @property
    def leases(self) -> str:
        """Sorted set: lease id -> deadline (Redis server time, epoch milliseconds)."""
        return self._key("leases")

    @property
    def leased(self) -> str:
        """Hash: lease id -> the leased request (its queue score and queue entry)."""
        return self._key("leased")

    @property
    def lease_sequence(self) -> str:
        """Counter making lease ids unique."""
        return self._key("lease_seq")

    @property
    def dead(self) -> str:
        """List of dead letters: JSON ``{"entry", "score", "error", "attempts", "worker", "at"}``."""
        return self._key("dead")

    def queued(self, crawl: str) -> str:
        """Set of fingerprints queued or leased (not yet handled) in one crawl (passed to the queue's scripts)."""
        return self._key(f"dedup:{crawl}:queued")

    def seen(self, crawl: str) -> str:
        """Set of fingerprints fetched and handled in one crawl."""
        return self._key(f"dedup:{crawl}:seen")

    def bloom(self, crawl: str) -> str:
        """Bitmap of a crawl's Bloom filter of handled fingerprints (when the Bloom filter is on)."""
        return self._key(f"dedup:{crawl}:bloom")

    @property
    def dupefilter(self) -> str:
        """The default crawl's seen-set (what scrapy-redis calls the dupefilter)."""
        return self.seen("default")

    @property
    def seeds(self) -> str:
        """List of JSON seeds pushed by ``livefleet crawl``, turned into requests by a spider."""
        return self._key("seeds")

    @property
    def stats(self) -> str:
        """Hash of fleet-wide counters for this spider (HINCRBY: atomic across workers)."""
        return self._key("stats")

    def all(self) -> tuple[str, ...]:
        return (self.requests, self.sequence, self.leases, self.leased, self.lease_sequence, self.dead,
                self.seeds, self.stats)


#: scrapy-redis's default ``REDIS_START_URLS_KEY``.
START_URLS_KEY_TEMPLATE = "%(name)s:start_urls"


@dataclass(frozen=True)
class StartUrlsKeys:
    """scrapy-redis's start-URL key of one spider, which the seed feeder also reads (``crawlers.queue.start_urls``).

    It carries no livefleet prefix: it is the key scrapy-redis producers already write
    (``REDIS_START_URLS_KEY``, default ``%(name)s:start_urls``), so they need no change to feed a
    livefleet spider.
    """

    #: The key itself: a list, or a set / sorted set with ``REDIS_START_URLS_AS_SET`` / ``..._AS_ZSET``.
    key: str

    @classmethod
    def of(cls, spider: str, template: str = START_URLS_KEY_TEMPLATE) -> StartUrlsKeys:
        """The key of ``spider`` from a ``REDIS_START_URLS_KEY`` template (``%(name)s`` is the spider's name)."""
        return cls(template % {"name": spider})

    @property
    def rejected(self) -> str:
        """List of the entries the seed feeder refused, each moved here unchanged (never left, never dropped)."""
        return f"{self.key}:rejected"


@dataclass(frozen=True)
class FleetKeys:
    """Keys shared by the whole fleet."""

    prefix: str

    @property
    def epoch(self) -> str:
        """JSON ``{"id", "created_at"}`` made when a fleet first uses this Redis; never expires.

        Its disappearance (or replacement) means the Redis came back without the fleet's state
        (``crawlers.redis.epoch``)."""
        return f"{self.prefix}:epoch"

    @property
    def epoch_lost(self) -> str:
        """List of JSON loss records (newest first): each time a process found the epoch gone or changed."""
        return f"{self.prefix}:epoch:lost"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> time of its last heartbeat (epoch seconds)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """JSON heartbeat of one worker (expires when the worker stops beating)."""
        return f"{self.prefix}:worker:{worker_id}"

    def rate(self, platform: str) -> str:
        """The fleet-wide rate limiter state of one platform."""
        return f"{self.prefix}:rate:{platform}"

    def identity_rate(self, platform: str, identity: str) -> str:
        """The fleet-wide rate limiter state of one egress identity toward one platform."""
        return f"{self.prefix}:rate:{platform}:{identity}"

    def egress(self, platform: str, identity: str) -> str:
        """Hash: the health of one egress identity toward one platform (``crawlers.download.egress_health``)."""
        return f"{self.prefix}:egress:{platform}:{identity}"

    def egress_probe(self, platform: str, identity: str) -> str:
        """Set while one worker sends the probe of a rested identity (expires if it never reports)."""
        return f"{self.prefix}:egress:{platform}:{identity}:probe"

    def crawl_items(self, crawl: str) -> str:
        """Hash: collection -> records stored for one crawl (campaign run), HINCRBY by the store."""
        return f"{self.prefix}:crawl:{crawl}:items"

    def crawl_stopped(self, crawl: str) -> str:
        """Set while a crawl is stopped (its cap reached): workers drop its requests."""
        return f"{self.prefix}:crawl:{crawl}:stopped"

    def feed(self, collection: str) -> str:
        """Redis Stream of every stored change of one collection (``crawlers.feeds``)."""
        return f"{self.prefix}:feed:{collection}"

    @property
    def webhooks(self) -> str:
        """Hash: webhook subscription id -> JSON subscription (``crawlers.feeds.webhooks``)."""
        return f"{self.prefix}:webhooks"

    @property
    def webhook_failures(self) -> str:
        """List of JSON webhook deliveries that failed every attempt, kept for ``livefleet webhooks replay``."""
        return f"{self.prefix}:webhooks:failed"

    @property
    def monitors(self) -> str:
        """Hash: monitor id -> JSON definition (``crawlers.monitor.registry``)."""
        return f"{self.prefix}:monitors"

    def monitor_due(self, platform: str) -> str:
        """Sorted set: monitor id -> its next tick (Redis time, epoch ms), one per platform's spider."""
        return f"{self.prefix}:monitors:due:{platform}"

    def monitor_state(self, monitor: str) -> str:
        """Hash of one monitor's state (ticks, late, pending tick, last room status, state)."""
        return f"{self.prefix}:monitor:{monitor}:state"

    def monitor_events(self, monitor: str) -> str:
        """List of one monitor's recent events (JSON, newest first): stream started/ended, late ticks."""
        return f"{self.prefix}:monitor:{monitor}:events"

    @property
    def watchlists(self) -> str:
        """Hash: watchlist name -> JSON definition (platform, state, notify-only, default tier and windows;
        ``crawlers.watch.lists``)."""
        return f"{self.prefix}:watchlists"

    def watch_entries(self, name: str) -> str:
        """Hash of one watchlist's entries: ``platform:kind:id`` -> JSON ``{target, tier, windows, added_at,
        updated_at, source}``."""
        return f"{self.prefix}:watchlist:{name}:entries"

    def watch_subscribers(self, name: str) -> str:
        """Hash of one watchlist's alert subscribers: id -> JSON (kind, URL, secret, events, thresholds)."""
        return f"{self.prefix}:watchlist:{name}:subscribers"

    @property
    def watch_version(self) -> str:
        """Counter INCRed (in the same MULTI) by every change of any watchlist: workers reload when it moves."""
        return f"{self.prefix}:watchlists:version"

    def watch_platform_version(self, platform: str) -> str:
        """Counter INCRed by every change of one platform's watchlists (a worker of that platform polls it)."""
        return f"{self.prefix}:watchlists:version:{platform}"

    def campaign_firing(self, campaign: str, firing: int) -> str:
        """Set (NX) by the scheduler that claims one firing (epoch seconds) of a campaign: it runs once fleet-wide."""
        return f"{self.prefix}:campaign:{campaign}:firing:{firing}"

    def campaign_last_firing(self, campaign: str) -> str:
        """The latest claimed firing of a campaign (epoch seconds): an older firing never runs."""
        return f"{self.prefix}:campaign:{campaign}:last_firing"

    def campaign_since(self, campaign: str) -> str:
        """When a scheduler first saw a campaign (epoch seconds): firings before it are not missed, just earlier."""
        return f"{self.prefix}:campaign:{campaign}:since"

    def campaign_run_follower(self, run_id: str) -> str:
        """Held (with a short TTL, renewed) by the process following a campaign run to its end."""
        return f"{self.prefix}:campaign_run:{run_id}:follower"

    # -- the watcher (crawlers/watch/service.py) and its alert queue ------------------------------------

    def watch_due(self, platform: str) -> str:
        """Sorted set: watched entry key -> its next check (Redis server time, epoch ms); claimed by a script."""
        return f"{self.prefix}:watch:due:{platform}"

    def watch_live(self, entry_key: str) -> str:
        """One watched entry's live record (SET NX by the worker that saw it go live): JSON ``{room_id,
        started_at, monitor_id, ...}``; deleted when its stream ends."""
        return f"{self.prefix}:watch:live:{entry_key}"

    def watch_lives(self, platform: str) -> str:
        """Set of the entry keys of a platform that have a live record (swept for windows closing)."""
        return f"{self.prefix}:watch:lives:{platform}"

    def watch_ended(self, platform: str) -> str:
        """Hash: entry key -> capture time (epoch ms) of the observation that ended its last stream."""
        return f"{self.prefix}:watch:ended:{platform}"

    def watch_aliases(self, platform: str) -> str:
        """Hash: a streamer's other ID (sec_uid, handle) -> its streamer_id, learned from stored streamers."""
        return f"{self.prefix}:watch:aliases:{platform}"

    def alert_sent(self, subscriber: str, alert_key: str) -> str:
        """Set NX (7 days) when an alert is queued for a subscriber: each alert is queued once."""
        return f"{self.prefix}:alerts:sent:{subscriber}:{alert_key}"

    def alert_outbox(self, subscriber: str) -> str:
        """List of alerts (JSON) waiting to be sent to one subscriber."""
        return f"{self.prefix}:alerts:outbox:{subscriber}"

    @property
    def alert_outboxes(self) -> str:
        """Set of the subscribers whose outbox may hold alerts."""
        return f"{self.prefix}:alerts:outboxes"

    @property
    def alert_failures(self) -> str:
        """List of alerts (JSON, with the error) that could not be delivered."""
        return f"{self.prefix}:alerts:failures"

    def watch_marks(self, platform: str) -> str:
        """Hash entry -> JSON {at, peak}: how far a live entry's session has been turned into alerts."""
        return f"{self.prefix}:watch:marks:{platform}"

    @property
    def alert_inflight(self) -> str:
        """Hash of the alerts being sent (token -> JSON: taken at, outbox, subscriber, the alert): an alert
        whose sender died is put back in its outbox when its lease is over."""
        return f"{self.prefix}:alerts:inflight"
