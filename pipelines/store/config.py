"""The store's settings, read once into a frozen :class:`StoreConfig`.

Every value comes through :func:`settings.defaults.value`, so each default is
defined (and documented) once, in ``settings/defaults.py``. The store needs a
MongoDB address and never starts a server for one: ``livefleet worker`` passes
``LIVEFLEET_MONGO_URI``, and for a bare Scrapy command the services add-on
(``crawlers.services.addon``) ensures the embedded server and sets it before
the pipelines are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from settings.defaults import value


def mongo_uri_from_settings(settings: Any) -> str:
    """``LIVEFLEET_MONGO_URI``; a ``ValueError`` with the reason when it is not set.

    Not :class:`NotConfigured`: Scrapy would turn that into a warning and crawl on with
    no store, fetching pages whose records then go nowhere."""
    uri = value(settings, "LIVEFLEET_MONGO_URI")
    if not uri:
        raise ValueError("LIVEFLEET_MONGO_URI is not set: the store has no MongoDB to write to "
                            "(`livefleet worker` sets it; for `scrapy crawl` enable the services add-on "
                            "with LIVEFLEET_EMBEDDED_SERVICES)")
    return str(uri)


@dataclass(frozen=True)
class StoreConfig:
    """What :class:`pipelines.p300_store.StorePipeline` is configured with (see ``settings/defaults.py``)."""

    #: MongoDB to write to (``LIVEFLEET_MONGO_URI``).
    uri: str
    #: Database name (``LIVEFLEET_MONGO_DB``).
    db: str
    #: Records per bulk write (``LIVEFLEET_STORE_BATCH``, at least 1).
    batch: int
    #: A batch is written at least this often (``LIVEFLEET_STORE_FLUSH_SECONDS``).
    flush_seconds: float
    #: Attempts of one bulk write before the batch is spooled (``LIVEFLEET_STORE_RETRIES``).
    retries: int
    #: After a failed batch, spool without trying for this long (``LIVEFLEET_STORE_COOLDOWN_SECONDS``).
    cooldown: float
    #: Where batches wait while MongoDB is away (``<LIVEFLEET_VAR_DIR>/spool``).
    spool_dir: Path
    #: How long one attempt waits for an unreachable MongoDB (``LIVEFLEET_MONGO_TIMEOUT_MS``).
    timeout_ms: int
    #: How long a spooled item holds its request (``LIVEFLEET_STORE_HOLD_SECONDS``).
    hold_seconds: float

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        """Read Scrapy ``settings``; ``ValueError`` without ``LIVEFLEET_MONGO_URI``."""
        return cls(
            uri=mongo_uri_from_settings(settings),
            db=str(value(settings, "LIVEFLEET_MONGO_DB")),
            batch=max(1, value(settings, "LIVEFLEET_STORE_BATCH")),
            flush_seconds=value(settings, "LIVEFLEET_STORE_FLUSH_SECONDS"),
            retries=value(settings, "LIVEFLEET_STORE_RETRIES"),
            cooldown=value(settings, "LIVEFLEET_STORE_COOLDOWN_SECONDS"),
            spool_dir=spool_dir(settings),
            timeout_ms=value(settings, "LIVEFLEET_MONGO_TIMEOUT_MS"),
            hold_seconds=value(settings, "LIVEFLEET_STORE_HOLD_SECONDS"),
        )


def spool_dir(settings: Any) -> Path:
    """Where the store spools records while MongoDB is down (``<LIVEFLEET_VAR_DIR>/spool``)."""
    return Path(value(settings, "LIVEFLEET_VAR_DIR")) / "spool"
